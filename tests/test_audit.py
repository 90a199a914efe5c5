"""The audit: sources of the picks that no feed covers, the feeds their pages advertise (fetched under the polling limits), feeds that supply no pick, picks per feed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import DATA, FEEDS, NOW, FeedServer, RawServer, run_cli

from aggregator.audit import advertised, uncovered_sites
from aggregator.learn.reading import read_digest
from aggregator.links import Site
from aggregator.poll.fetch import Fetcher, FetchSettings, deadline_transport

DIGESTS = DATA / "digests"
run = run_cli

COVERED = {"netflixtechblog.com": "https://netflixtechblog.com/feed",
           "medium.com/airbnb-engineering": "https://medium.com/feed/airbnb-engineering",
           "aws.amazon.com": "https://aws.amazon.com/blogs/machine-learning/feed/"}


def test_the_audit_lists_exactly_the_hosts_no_feed_covers_with_their_pick_counts(home: Path) -> None:
    feeds = "".join(f"  - name: F{i}\n    url: {url}\n" for i, url in enumerate(COVERED.values()))
    (home / "feeds.yaml").write_text("feeds:\n" + feeds, encoding="utf-8")
    assert run(home, "import-digest", str(DIGESTS / "house_2022-12.md")).exit_code == 0
    expected: dict[str, int] = {}
    for e in read_digest((DIGESTS / "house_2022-12.md").read_text(encoding="utf-8")).entries:
        host = Site.of(e.url).host
        publication = f"{host}/{e.url.split('/')[3]}" if host == "medium.com" else host
        if host not in COVERED and publication not in COVERED:
            expected[publication] = expected.get(publication, 0) + 1
    result = run(home, "audit")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = {}
    for line in lines[lines.index("sites of picks that no feed covers:") + 2:]:
        words = line.split()
        if len(words) >= 2 and words[1].isdigit():
            rows[words[0]] = int(words[1])
        elif line.startswith("feeds with no pick"):
            break
    assert rows == expected
    assert "(--discover)" in result.output


def test_uncovered_sites_count_picks_per_host_and_per_publication_on_shared_hosts() -> None:
    picked = ["https://netflixtechblog.com/a-1", "https://netflixtechblog.com/b-2", "https://medium.com/airbnb-engineering/x",
              "https://medium.com/pinterest-engineering/y", "https://medium.com/pinterest-engineering/z",
              "https://huggingface.co/blog/rlhf"]
    found = uncovered_sites(picked, ["https://netflixtechblog.com/c-3"], ["https://medium.com/feed/airbnb-engineering"])
    assert [(u.site, u.picks) for u in found] == [("medium.com/pinterest-engineering", 2), ("huggingface.co", 1)]


def test_discover_names_the_feed_an_uncovered_sites_page_advertises(home: Path, feed_server: FeedServer) -> None:
    page = b'<html><head><link rel="alternate" type="application/rss+xml" href="/blog/feed.xml"></head></html>'
    root = feed_server.serve("/", page, content_type="text/html")
    digest = home / "2022-12.md"
    digest.write_text(f"## 1. Posts\n### 1.1. All\n* [A Post (Dec 2022)]({root}blog/post-1)\n", encoding="utf-8")
    assert run(home, "import-digest", str(digest)).exit_code == 0
    result = run(home, "audit", "--discover")
    assert result.exit_code == 0 and f"{root}blog/feed.xml" in result.output.replace("\n", "").replace("│", "").replace(" ", "")


def test_feeds_shows_how_many_picks_each_feed_supplied(home: Path, feed_server: FeedServer) -> None:
    url = feed_server.serve("/ml.xml", FEEDS / "ml.rdf.xml", content_type="application/rdf+xml")
    (home / "feeds.yaml").write_text(f"feeds:\n  - name: ML\n    url: {url}\n    source: Google\n", encoding="utf-8")
    assert run(home, "-q", "fetch").exit_code == 0
    assert run(home, "import-digest", str(DIGESTS / "house_2022-12.md")).exit_code == 0
    table = run(home, "feeds").output
    assert "picks" in table.splitlines()[0]
    row = next(line for line in table.splitlines() if line.strip().startswith("ML"))
    assert " 3 " in row  # the three posts of the feed that the digest also lists
    idle = run(home, "audit", "--months", "1")
    assert idle.exit_code == 0


# --- --discover: a site's page fetched under the polling limits -----------------------------------------

PAGE = b'<html><head><link rel="alternate" type="application/rss+xml" href="/blog/feed.xml"></head></html>'


class Counting(httpx.BaseTransport):
    """The fetcher's own transport, counting the requests sent and the body bytes read off the wire."""

    def __init__(self) -> None:
        self.inner, self.requests, self.read = deadline_transport(4), 0, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        response = self.inner.handle_request(request)
        return httpx.Response(response.status_code, headers=response.headers, extensions=response.extensions,
                              stream=_Counted(response.stream, self))  # type: ignore[arg-type]

    def close(self) -> None:
        self.inner.close()


class _Counted(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, counting: Counting) -> None:
        self.inner, self.counting = inner, counting

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.counting.read += len(chunk)
            yield chunk

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def counting() -> Counting:
    return Counting()


def fetcher(transport: Counting, **limits: float) -> Fetcher:
    return Fetcher(FetchSettings(**{"timeout": 5, "connect_timeout": 1, **limits}), transport=transport)  # type: ignore[arg-type]


def test_discover_finds_the_advertised_feed_after_a_redirect_as_the_poller(feed_server: FeedServer,
                                                                           counting: Counting) -> None:
    feed_server.serve("/", b"", status=301, headers={"Location": "/blog/"})
    feed_server.serve("/blog/", PAGE, content_type="text/html")
    with fetcher(counting) as f:
        assert advertised(f, feed_server.url("/"), NOW) == feed_server.url("/blog/feed.xml")
    hit = feed_server.hits_for("/blog/")[0]
    assert hit.headers["user-agent"] == FetchSettings().user_agent and "text/html" in hit.headers["accept"]


def test_a_page_over_the_size_cap_gives_no_feed_and_is_not_read_past_the_cap(
        raw_server: Callable[..., RawServer], counting: Counting) -> None:
    page = raw_server("flood_body")  # advertises a feed in its first bytes, then never ends
    with fetcher(counting, max_bytes=100_000) as f:
        assert f.fetch_page(page.url, NOW).error == "body is over the 100000-byte limit (cut off)"
        assert advertised(f, page.url, NOW) is None
    assert 2 * 100_000 < counting.read <= 2 * (100_000 + 65_536)  # each read stops within one socket read of the cap


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "file:///etc/passwd", "javascript:alert(1)"])
def test_a_page_that_is_not_http_is_refused_without_a_request(url: str, counting: Counting) -> None:
    with fetcher(counting) as f:
        assert advertised(f, url, NOW) is None
        assert f.fetch_page(url, NOW).error == f"not an http(s) URL, refused: {url}"
    assert counting.requests == 0


@pytest.mark.parametrize("mode", ["trickle_headers", "trickle_body"])
def test_a_slow_page_stops_at_the_deadline(raw_server: Callable[..., RawServer], counting: Counting, mode: str) -> None:
    page = raw_server(mode, pace=0.1)  # each byte well within the per-read timeout
    with fetcher(counting, timeout=1) as f:
        assert advertised(f, page.url, NOW) is None
        assert f.fetch_page(page.url, NOW).error == "took longer than 1 s in total (cut off)"
