"""Which of the editor's sources the feeds miss, and which feeds earn their place: the audit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator.config import Config, DigestSettings
from aggregator.links import Site
from aggregator.models import month_bounds, month_of
from aggregator.poll.fetch import Fetcher, FetchSettings
from aggregator.store import Store


@dataclass(frozen=True)
class Uncovered:
    """A site the digest's picks come from that no feed covers."""

    site: str  # host, or host plus first path segment ("medium.com/airbnb-engineering")
    picks: int
    example: str  # one picked link from it
    feed: str | None = None  # the feed its page advertises, when --discover found one


@dataclass(frozen=True)
class Idle:
    """A feed that supplied no pick in the audited months."""

    feed: str
    posts: int  # what it cost: posts fetched in those months


@dataclass(frozen=True)
class Audit:
    uncovered: tuple[Uncovered, ...]
    idle: tuple[Idle, ...]
    since: datetime


def uncovered_sites(picked: Sequence[str], fetched: Sequence[str], feed_urls: Sequence[str]) -> list[Uncovered]:
    """The hosts (or, on hosts of many publications, the publications) that picked links come from and
    no feed covers, most picks first (pure). A feed covers the host of its own URL and of the posts it
    delivered, except a feed of one publication (medium.com/feed/NAME), which covers that publication."""
    publications = {p for p in (Site.of(u).feed_publication for u in feed_urls) if p}
    shared = {p.split("/", 1)[0] for p in publications}
    hosts = {Site.of(u).host for u in [*fetched, *feed_urls]} - shared
    counts: Counter[str] = Counter()
    example: dict[str, str] = {}
    for url in picked:
        site = Site.of(url)
        if not site.host or site.host in hosts or site.publication in publications:
            continue
        key = site.publication if site.host in shared else site.host
        counts[key] += 1
        example.setdefault(key, url)
    return [Uncovered(site, n, example[site]) for site, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def idle_feeds(yields: Sequence[tuple[str, int, int]]) -> list[Idle]:
    """The feeds with no pick, costliest first (pure)."""
    return [Idle(name, posts) for name, posts, picks in sorted(yields, key=lambda y: (-y[1], y[0])) if picks == 0]


def with_feeds(found: Sequence[Uncovered], fetch_page: Callable[[str], str | None]) -> list[Uncovered]:
    """Each uncovered site with the feed its home page advertises, where `fetch_page` finds one."""
    out = []
    for item in found:
        scheme = item.example.split("://", 1)[0]
        host = item.example.split("://", 1)[1].split("/", 1)[0]
        home = f"{scheme}://{host}/" + (item.site.split("/", 1)[1] + "/" if "/" in item.site else "")
        out.append(Uncovered(item.site, item.picks, item.example, fetch_page(home)))
    return out


def run_audit(store: Store, config: Config, digest: DigestSettings, *, months: int, now: datetime,
              discover: bool = False) -> Audit:
    """The audit of one digest: uncovered sites of its picks (with their advertised feeds when `discover`),
    and its feeds without a pick in the last `months` months."""
    feeds = config.digest_feeds(digest)
    feed_urls = [f.url for f in config.feeds if feeds is None or f.name.strip() in feeds]
    found = uncovered_sites(store.picked_urls(digest=digest.name), store.fetched_urls(), feed_urls)
    if discover:
        with Fetcher(FetchSettings.of(config.defaults)) as fetcher:
            found = with_feeds(found, lambda url: advertised(fetcher, url, now))
    since = month_bounds(month_of(now))[0]
    for _ in range(months - 1):
        since = month_bounds(month_of(since - timedelta(days=1)))[0]
    yields = [y for y in store.feed_yield(since, digest=digest.name) if feeds is None or y[0] in feeds]
    return Audit(tuple(found), tuple(idle_feeds(yields)), since)


def advertised(fetcher: Fetcher, url: str, now: datetime) -> str | None:
    """The feed the web page at `url` advertises, fetched under the polling limits (http(s) only, size cap,
    total deadline, per-host limit); None when the page cannot be had whole or names no feed."""
    from aggregator.poll.parse import advertised_feed  # the HTML parser, only for --discover

    page = fetcher.fetch_page(url, now)
    if page.status != 200 or page.body is None:
        return None
    return advertised_feed(page.body, page.url)
