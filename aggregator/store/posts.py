"""The posts domain: new posts of a fetch stored, and posts read back as candidates and background."""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, TextClause, bindparam, func, select, text, update
from sqlalchemy.engine import Connection

from aggregator.models import DEFAULT_DIGEST, Candidate, ParsedPost
from aggregator.store import tables
from aggregator.store.database import Database, chunks
from aggregator.store.tables import UTCDateTime

_POSTS, _FEEDS, _LABELS = tables.posts, tables.feeds, tables.labels
_P, _F, _L = _POSTS.c, _FEEDS.c, _LABELS.c
_WHEN = func.coalesce(_P.published_at, _P.first_seen_at)  # a post's date: published, or first seen without one


def _with_feed(*, inner: bool = False) -> Select[Any]:
    """Posts with what candidate() reads of them and their feed (outer-joined unless `inner`), by post id."""
    columns = (_P.id, _P.url, _P.title, _P.summary, _P.source, _P.published_at, _P.first_seen_at,
               _F.source.label("feed_source"), _F.name.label("feed_name"))
    return select(*columns).select_from(_POSTS.join(_FEEDS, _P.feed_id == _F.id, isouter=not inner))


class Posts(Database):
    """Posts: what was fetched, read back for drafts and training."""

    def picked_urls(self, *, digest: str = DEFAULT_DIGEST) -> list[str]:
        """The links of every post the digest picked."""
        query = (select(_P.url).join(_LABELS, _L.post_id == _P.id)
                 .where(_L.selected.is_(True), _L.digest == digest, _P.url.is_not(None)).distinct())
        with self.transaction() as s:
            return sorted(u for u in s.scalars(query) if u)

    def fetched_urls(self) -> list[str]:
        """The links of every post fetched from a feed: where the feeds' posts live."""
        query = select(_P.url).where(_P.feed_id.is_not(None), _P.url.is_not(None))
        with self.transaction() as s:
            return [u for u in s.scalars(query) if u]

    # -- posts ----------------------------------------------------------------------------

    def count_posts(self) -> int:
        with self.transaction() as s:
            return s.scalar(select(func.count(_P.id))) or 0

    def candidates(self, start: datetime, end: datetime, *, also: Sequence[int] = (),
                   feeds: Collection[str] | None = None) -> list[Candidate]:
        """Posts fetched from `feeds` (names; all feeds when None) dated in [start, end): by published date,
        or first-seen date where the feed gave none; plus the posts whose ids are in `also`."""
        wanted = (_WHEN >= start) & (_WHEN < end) & _P.feed_id.is_not(None)
        if feeds is not None:
            wanted &= _F.name.in_(sorted(feeds))
        query = _with_feed().where(wanted | _P.id.in_(list(also)) if also else wanted).order_by(_WHEN.desc(), _P.id)
        with self.transaction() as s:
            return [candidate(r, r.feed_source, r.feed_name) for r in s.execute(query)]

    def post_by_url(self, url: str) -> Candidate | None:
        """The stored post with this canonical URL, or None."""
        with self.transaction() as s:
            found = s.execute(_with_feed().where(_P.url == url)).first()
            return candidate(found, found.feed_source, found.feed_name) if found is not None else None

    def own_texts(self, post_ids: Sequence[int]) -> dict[int, str]:
        """post id -> the post's own text as its feed or page gave it ("" for one known only from a digest)."""
        out: dict[int, str] = {}
        with self.transaction() as s:
            for chunk in chunks(list(post_ids)):
                out.update((pid, text) for pid, text in s.execute(select(_P.id, _P.summary).where(_P.id.in_(chunk))))
        return out

    def last_change(self) -> datetime | None:
        """When the posts or the editor's decisions last changed: a post first seen, a label written."""
        with self.transaction() as s:
            seen = s.scalar(select(func.max(_P.first_seen_at)))
            decided = s.scalar(select(func.max(_L.updated_at)))
        found = [t for t in (seen, decided) if t is not None]
        return max(found) if found else None

    def count_labels(self) -> int:
        """How many decisions are stored, of every digest (an undo that removes one changes it)."""
        with self.transaction() as s:
            return s.scalar(select(func.count()).select_from(_LABELS)) or 0

    def fetched_posts(self, *, before: datetime | None = None, feeds: Collection[str] | None = None) -> list[Candidate]:
        """Every post fetched from a feed (not known only from a digest), dated before `before` and from
        `feeds` (names) when given: the background that tells the priority model what an ordinary post looks like."""
        query = _with_feed(inner=True).order_by(_P.id)
        if before is not None:
            query = query.where(_WHEN < before)
        if feeds is not None:
            query = query.where(_F.name.in_(sorted(feeds)))
        with self.transaction() as s:
            return [candidate(r, r.feed_source, r.feed_name) for r in s.execute(query)]


def candidate(post: Any, feed_source: str | None, feed_name: str | None) -> Candidate:
    """A post (a row of _with_feed(), or a PostRow) as a candidate of a draft."""
    return Candidate(post.id, post.url or "", post.title, post.summary,
                     feed_source if feed_source is not None else post.source,
                     post.published_at or post.first_seen_at, feed_name)


_STORED = (_P.id, _P.url, _P.key, _P.feed_id, _P.content_hash)
_NEW_POST = ("feed_id", "key", "url", "title", "summary", "author", "source", "published_at", "first_seen_at",
             "content_hash")
_ROWS_PER_INSERT = 64  # 10 columns each: under the 999 bound variables of old SQLite builds


@functools.lru_cache(maxsize=8)
def _insert_posts(rows: int) -> TextClause:
    """One INSERT of `rows` new posts, binds named "<column>_<row>" (SQLAlchemy's executemany would send
    each row as its own SQLite step, and every step lets the fetch threads take the GIL)."""
    values = ", ".join("(" + ", ".join(f":{name}_{i}" for name in _NEW_POST) + ")" for i in range(rows))
    dates = [bindparam(f"{name}_{i}", type_=UTCDateTime()) for i in range(rows)
             for name in ("published_at", "first_seen_at")]
    return text(f"INSERT INTO posts ({', '.join(_NEW_POST)}) VALUES {values}").bindparams(*dates)


def add_posts(s: Connection, feed_id: int, posts: Sequence[ParsedPost], now: datetime) -> int:
    """Insert posts not stored yet (by canonical link anywhere, or by key in this feed), many rows per
    statement; refresh changed ones. A date in the future is taken as the time the post was first seen.

    Rows are read as plain tuples, and one INSERT carries many rows."""
    if not posts:
        return 0
    urls = sorted({p.url for p in posts if p.url})
    keys = sorted({p.key for p in posts})
    by_url: dict[str, Any] = {}
    by_key: dict[str, Any] = {}
    for chunk in chunks(urls):
        by_url.update((r.url, r) for r in s.execute(select(*_STORED).where(_P.url.in_(chunk))))
    for chunk in chunks(keys):
        query = select(*_STORED).where(_P.feed_id == feed_id, _P.key.in_(chunk))
        by_key.update((r.key, r) for r in s.execute(query))
    new: list[dict[str, Any]] = []
    changed: dict[int, dict[str, Any]] = {}
    seen_urls: set[str] = set()
    seen_keys: set[str] = set()
    for post in posts:
        published = min(post.published, now) if post.published else None
        row = (by_url.get(post.url) if post.url else None) or by_key.get(post.key)
        if row is not None:
            by_key.setdefault(post.key, row)  # later entries of this batch with the same guid are this post too
            if row.content_hash != post.content_hash and row.feed_id == feed_id:
                update_ = dict(id=row.id, title=post.title, summary=post.summary, author=post.author,
                               content_hash=post.content_hash, updated_at=now)
                if published:
                    update_["published_at"] = published
                changed[row.id] = update_
            continue
        if post.key in seen_keys or (post.url and post.url in seen_urls):
            continue  # the same post twice in one body: the first one wins
        seen_keys.add(post.key)
        if post.url:
            seen_urls.add(post.url)
        new.append(dict(feed_id=feed_id, key=post.key, url=post.url, title=post.title, summary=post.summary,
                        author=post.author, source="", published_at=published, first_seen_at=now,
                        content_hash=post.content_hash))
    start = 0
    while start < len(new):  # statements of 64, 32, ... 1 rows: seven shapes to compile and cache, not ninety
        size = min(_ROWS_PER_INSERT, 1 << (len(new) - start).bit_length() - 1)
        chunk = new[start:start + size]
        s.execute(_insert_posts(size), {f"{name}_{i}": row[name] for i, row in enumerate(chunk) for name in row})
        start += size
    for update_ in changed.values():
        s.execute(update(_POSTS).where(_P.id == update_.pop("id")).values(**update_))
    return len(new)
