"""Adding a post no feed carries, by its URL, as a pick: the page fetched once and read, the post stored
once, and the pick recorded through the desk's decisions so that it is a label like any accept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator.config import Config, DigestSettings
from aggregator.errors import AddError
from aggregator.limits import MAX_SUMMARY, MAX_TITLE, MAX_URL, cap
from aggregator.links import Site, canonical_url
from aggregator.models import Candidate, Edition, SectionPath
from aggregator.poll.fetch import Fetcher, FetchSettings
from aggregator.store import Store
from aggregator.store.decisions import PagePost, Picked

if TYPE_CHECKING:
    from aggregator.learn.classify import Model


@dataclass(frozen=True)
class Preview:
    """A page as the editor sees it before adding it: what it says of itself, and where the model files it."""

    url: str  # canonical
    title: str
    summary: str  # the post's own text: the page's description or opening
    source: str
    published: datetime | None
    section: SectionPath | None  # the model's section for it, when there is a model
    stored: bool = False  # the URL is stored already: nothing was fetched, and nothing will be stored again
    error: str | None = None  # why the page could not be read (one line): the editor adds it by hand

    def post(self) -> PagePost:
        return PagePost(self.url, self.title, self.summary, self.source, self.published)


@dataclass(frozen=True)
class Added:
    """A pick made from a URL."""

    post: int
    edition: Edition
    section: SectionPath
    title: str
    new: bool  # stored just now (False: the URL was stored already and only became a pick)
    action: int  # the desk action, for undo
    revision: int


def check_url(url: str) -> str:
    """The canonical form of a URL the editor gave; AddError for anything that is no http(s) link."""
    canonical = canonical_url(url.strip()) if len(url) <= MAX_URL else None
    if canonical is None:
        raise AddError(f"{url[:200]!r} is not an http(s) URL")
    return canonical


def page_settings(config: Config) -> FetchSettings:
    """The polling limits (size cap, total deadline, per-host limit, User-Agent) with fetch.allow_private."""
    return FetchSettings.for_pages(config.defaults, config.fetch.allow_private)


def preview(store: Store, url: str, *, fetcher: Fetcher, model: Model | None, now: datetime) -> Preview:
    """What the page at `url` says of itself, fetched once under the polling limits; a URL already stored
    is read from the store instead. A page that cannot be had or read is a Preview with `error` set."""
    from aggregator.poll.page import is_html, read_page

    url = check_url(url)
    known = stored_preview(store, url, model=model)
    if known is not None:
        return known
    page = fetcher.fetch_page(url, now)
    fallback = Site.of(url).host
    if page.error is not None or page.body is None:
        return Preview(url, "", "", fallback, None, None, error=page.error or f"HTTP {page.status}: no page")
    if not is_html(page.content_type):
        kind = (page.content_type or "").split(";", 1)[0].strip()
        return Preview(url, "", "", fallback, None, None, error=f"not a web page ({kind[:80]}): add it by hand")
    text = read_page(page.body, page.content_type)
    found = Preview(url, text.title, text.summary, text.site_name or fallback, text.published, None)
    return Preview(**{**found.__dict__, "section": predicted(model, candidate_of(found, now))})


def stored_preview(store: Store, url: str, *, model: Model | None) -> Preview | None:
    """The preview of a URL (canonical) that is stored already, read from the store; None when it is not."""
    known = store.post_by_url(url)
    if known is None:
        return None
    return Preview(url, known.title, known.summary, known.source, known.published, predicted(model, known), stored=True)


def candidate_of(page: Preview, now: datetime) -> Candidate:
    return Candidate(0, page.url, page.title, page.summary, page.source, page.published or now)


def predicted(model: Model | None, post: Candidate) -> SectionPath | None:
    """The section the model files a post under; None without a model or a title."""
    if model is None or not post.title:
        return None
    return model.predict([post])[0].section


def choose_section(given: str | None, suggested: SectionPath | None, sections: Sequence[SectionPath]) -> SectionPath:
    """The section a pick goes under: the one given ("2. Cases > 2.4. MLOps", or its last heading alone)
    when it is one of `sections`, else the model's; AddError naming the way out otherwise."""
    if not given:
        if suggested is None:
            raise AddError("no model yet to choose a section: give one (--section)")
        return suggested
    wanted = " ".join(given.split())
    exact = [s for s in sections if " > ".join(s) == wanted]
    last = [s for s in sections if s[-1] == wanted]
    if exact or len(last) == 1:
        return (exact or last)[0]
    some = "; ".join(" > ".join(s) for s in sections[:8])
    raise AddError(f"section {wanted[:200]!r} is not one of the digest's: {some}" + (" …" if len(sections) > 8 else ""))


def sections_of(store: Store, config: Config, digest: DigestSettings, model: Model | None) -> tuple[SectionPath, ...]:
    """The sections a pick can be filed under: the leaves of the digest's taxonomy (or the model's), else
    the draft's one section."""
    from aggregator.learn.jobs import scope_of, taxonomy
    from aggregator.learn.labels import leaves

    tree = taxonomy(store, scope_of(config, digest)) or (tuple(model.sections) if model is not None else ())
    return leaves(tree) if tree else ((config.draft.section,),)


def add_pick(store: Store, config: Config, digest: DigestSettings, edition: Edition, page: Preview, *,
             title: str | None = None, summary: str | None = None, section: str | None = None,
             model: Model | None, now: datetime) -> Added:
    """Store the post `page` read (unless its URL is stored) with the editor's `title`, and make it a pick
    of `edition` under `section` (else the model's), with `summary` as the editor's own line when it
    differs from the post's own text. Nothing is stored when it is refused (AddError, ConflictError)."""
    title = cap(" ".join((title or "").split()), MAX_TITLE) or page.title  # left empty: the page's (or the stored) title
    if not title and not page.stored:
        raise AddError(f"{page.url}: " + (f"{page.error}; " if page.error else "the page gives no title; ")
                       + "a title is required to add it")
    said = cap(" ".join((summary or "").split()), MAX_SUMMARY)
    own = page.summary
    suggested = page.section if title == page.title else predicted(model, candidate_of(
        Preview(page.url, title, own, page.source, page.published, None), now))
    where = choose_section(section, suggested, sections_of(store, config, digest, model))
    published = min(page.published, now) if page.published else None  # a date to come is taken as now, as for feeds
    start, end = edition.bounds()
    if published is None and not start <= now < end:
        published = start  # added later for a past edition, as an imported digest's entry is dated
    post = PagePost(page.url, title, own, page.source, published)
    editor_line = "" if " ".join(own.split()).startswith(said.rstrip("…").rstrip()) else said  # unedited: the post's own
    picked: Picked = store.pick_post(edition, post, section=where, summary=editor_line, now=now, digest=digest.name)
    return Added(picked.post_id, edition, picked.result.decision.section or where, title, picked.new,
                 picked.result.action_id, picked.result.decision.revision)


def by_hand(url: str) -> Preview:
    """A preview for an entry the editor types in (title and URL), without fetching anything."""
    url = check_url(url)
    return Preview(url, "", "", Site.of(url).host, None, None, error="added by hand")


def add_url(store: Store, config: Config, digest: DigestSettings, edition: Edition, url: str, *,
            title: str | None = None, summary: str | None = None, section: str | None = None,
            model: Model | None, now: datetime) -> tuple[Added, Preview]:
    """`aggregator add`: fetch the page once (unless the URL is stored), read it, and add it as a pick; a
    page that cannot be read is added by hand when `title` is given, else AddError says why in one line."""
    with Fetcher(page_settings(config)) as fetcher:
        page = preview(store, url, fetcher=fetcher, model=model, now=now)
    if not title and not page.stored and (page.error is not None or not page.title):
        raise AddError(f"{page.url}: {page.error or 'the page gives no title'}; give --title to add it by hand")
    return add_pick(store, config, digest, edition, page, title=title, summary=summary, section=section,
                    model=model, now=now), page
