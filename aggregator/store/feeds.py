"""The feeds domain: feeds.yaml synced to rows, due feeds, fetch outcomes recorded, health and yield."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row

from aggregator.errors import StoreError
from aggregator.links import Site
from aggregator.models import DEFAULT_DIGEST, FeedConfig, FeedState, FetchResult, ParsedPost
from aggregator.store.database import POSTS_TURN, SYNC_TURN, Database, take_turns
from aggregator.store import tables
from aggregator.store.posts import add_posts


@dataclass(frozen=True)
class Check:
    """A successful fetch that brought nothing new (a 304, or the same body as last time)."""

    feed: FeedState
    result: FetchResult
    next_check: datetime
    checked_at: datetime | None = None  # when the answer came; the time of the write if None


@dataclass(frozen=True)
class Fetched:
    """A fetch with something to record: a new body's posts, or an error."""

    feed: FeedState
    result: FetchResult
    posts: Sequence[ParsedPost]
    next_check: datetime
    error: str | None
    title: str | None = None
    body_sha256: str | None = None
    checked_at: datetime | None = None  # when the answer came; the time of the write if None
    fingerprints: str | None = None  # of the body's entries (poll/fingerprints.py); None: leave them as they are


@dataclass(frozen=True)
class FeedHealth:
    """A feed's row as `aggregator feeds` shows it."""

    name: str
    url: str
    source: str
    active: bool
    last_checked_at: datetime | None
    last_success_at: datetime | None
    last_status: int | None
    last_error: str | None
    error_count: int
    next_check_at: datetime | None
    gone: bool
    posts: int
    picks: int = 0  # its posts that an imported digest selected (any digest)
    last_fetched_by: str | None = None  # the poller that last recorded a fetch of it
    claimed_by: str | None = None  # the poller holding it now (PostgreSQL), until claimed_until
    claimed_until: datetime | None = None


# The polling pass reads and writes feed rows through the table itself (SQLAlchemy Core): plain tuples and
# one executemany per batch, with none of the ORM's per-object bookkeeping.
_FEEDS, _POSTS, _LABELS = tables.feeds, tables.posts, tables.labels
# A poller records a feed only while no other poller holds it: one that stalled past its lease and resumed
# must not overwrite (or clear the claim of) the poller that took the feed over. Without claims (SQLite, a
# single process) claimed_by is NULL and every record goes through.
_UNCLAIMED_OR_MINE = or_(_FEEDS.c.claimed_by.is_(None), _FEEDS.c.claimed_by == bindparam("me"))
_UPDATE_FEED_BY_ID = update(_FEEDS).where(_FEEDS.c.id == bindparam("feed_id"), _UNCLAIMED_OR_MINE)
STATE_COLUMNS = tuple(_FEEDS.c[f.name] for f in fields(FeedState))  # what a pass reads of a feed, by name


def feed_state(row: Row[Any]) -> FeedState:
    """A feed's row, read with STATE_COLUMNS (or a statement returning those columns), as a pass needs it."""
    return FeedState(**{f.name: getattr(row, f.name) for f in fields(FeedState)})


class Feeds(Database):
    """Feeds: their rows, due feeds, fetch outcomes, health."""

    def sync_feeds(self, feeds: Iterable[FeedConfig], now: datetime) -> None:
        """Make the feeds table match feeds.yaml: add new feeds (due now), update changed ones.
        An unchanged feeds.yaml (every run of cron) reads the table and writes nothing."""
        wanted = {f.name: f for f in feeds}
        t = _FEEDS
        with self.transaction() as s:
            take_turns(s, SYNC_TURN)
            rows = {row.name: row for row in s.execute(select(t.c.id, t.c.name, t.c.config_url, t.c.source,
                                                              t.c.interval, t.c.active))}
            new = [dict(name=name, config_url=feed.url, url=feed.url, host=Site.of(feed.url).hostname, source=feed.source,
                        interval=feed.interval, next_check_at=now, created_at=now) for name, feed in wanted.items() if name not in rows]
            if new:
                s.execute(insert(t), new)
            for name, row in rows.items():
                feed = wanted.get(name)
                values: dict[str, Any] = {}
                if feed is None:
                    values = {"active": False} if row.active else {}
                else:
                    if row.config_url != feed.url:  # the editor changed the URL: start afresh there
                        values.update(config_url=feed.url, url=feed.url, host=Site.of(feed.url).hostname, etag=None, last_modified=None,
                                      error_count=0, gone=False, next_check_at=now)
                    if (row.source, row.interval, row.active) != (feed.source, feed.interval, True):
                        values.update(source=feed.source, interval=feed.interval, active=True)
                if values:
                    s.execute(update(t).where(t.c.id == row.id).values(**values))

    def feeds_due(self, now: datetime, *, names: Sequence[str] | None = None, everything: bool = False) -> list[FeedState]:
        """Feeds to poll now: due ones (or all with `everything`), never gone ones unless named."""
        t = _FEEDS
        query = select(*STATE_COLUMNS).where(t.c.active.is_(True)).order_by(t.c.id)
        if names:
            query = query.where(t.c.name.in_(names))
        else:
            query = query.where(t.c.gone.is_(False))
            if not everything:
                query = query.where((t.c.next_check_at.is_(None)) | (t.c.next_check_at <= now))
        with self.transaction() as s:
            return [feed_state(row) for row in s.execute(query)]

    def entry_fingerprints(self, feed_id: int) -> str | None:
        """The fingerprints of the entries of the feed's last body parsed (read when a new body came)."""
        with self.transaction() as s:
            return s.scalar(select(_FEEDS.c.entry_fingerprints).where(_FEEDS.c.id == feed_id))

    def feed_names(self) -> list[str]:
        with self.transaction() as s:
            return list(s.scalars(select(_FEEDS.c.name).where(_FEEDS.c.active.is_(True)).order_by(_FEEDS.c.id)))

    def record_fetch(
        self,
        feed: FeedState,
        result: FetchResult,
        posts: Sequence[ParsedPost],
        *,
        now: datetime,
        next_check: datetime,
        error: str | None,
        title: str | None = None,
        body_sha256: str | None = None,
    ) -> int:
        """Save one feed's fetch outcome and its posts in one transaction; return how many posts are new."""
        fetched = Fetched(feed, result, tuple(posts), next_check, error, title, body_sha256)
        return self.record_fetches([fetched], now=now)[0]

    def record_fetches(self, batch: Sequence[Fetched], *, now: datetime) -> list[int]:
        """Save several feeds' fetch outcomes and posts in one transaction; how many posts each added.
        Pollers sharing a PostgreSQL database take turns (so two never add the same story's link at once)."""
        with self.transaction() as s:
            take_turns(s, POSTS_TURN)
            return [_record_one(s, fetched, now, self.worker) for fetched in batch]

    def record_checks(self, checks: Sequence[Check], *, now: datetime) -> None:
        """Record many fetches that brought nothing new, in one transaction (a warm pass is mostly these)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # one executemany per set of columns
        for check in checks:
            when = check.checked_at or now
            row = dict(_answered(check.result, usable=True), feed_id=check.feed.id, last_checked_at=when,
                       next_check_at=check.next_check, error_count=0, last_error=None, last_success_at=when,
                       me=self.worker or "", **_released(self.worker))
            groups.setdefault(tuple(row), []).append(row)
        if groups:
            with self.transaction() as s:
                for rows in groups.values():
                    s.execute(_UPDATE_FEED_BY_ID, rows)

    def reset_feed(self, name: str, now: datetime) -> bool:
        """Clear a feed's errors and make it due now; False when no such feed."""
        with self.transaction() as s:
            reset = update(_FEEDS).where(_FEEDS.c.name == name).values(error_count=0, last_error=None, gone=False,
                                                                       next_check_at=now)
            return s.execute(reset).rowcount > 0

    def feed_health(self) -> list[FeedHealth]:
        f, p = _FEEDS.c, _POSTS.c
        counts = select(p.feed_id, func.count(p.id).label("n")).group_by(p.feed_id).subquery()
        picked = (select(p.feed_id, func.count(func.distinct(p.id)).label("p"))
                  .join(_LABELS, _LABELS.c.post_id == p.id).where(_LABELS.c.selected.is_(True))
                  .group_by(p.feed_id).subquery())
        query = (select(_FEEDS, func.coalesce(counts.c.n, 0).label("n_posts"), func.coalesce(picked.c.p, 0).label("n_picks"))
                 .outerjoin(counts, counts.c.feed_id == f.id).outerjoin(picked, picked.c.feed_id == f.id))
        with self.transaction() as s:
            return [
                FeedHealth(r.name, r.url, r.source, r.active, r.last_checked_at, r.last_success_at, r.last_status,
                           r.last_error, r.error_count, r.next_check_at, r.gone, r.n_posts, r.n_picks, r.last_fetched_by,
                           r.claimed_by, r.claimed_until)
                for r in s.execute(query.order_by(f.id))
            ]

    def feed_yield(self, since: datetime, *, digest: str = DEFAULT_DIGEST) -> list[tuple[str, int, int]]:
        """(feed name, posts fetched since `since`, those of them the digest picked) for every active feed."""
        f, p, label = _FEEDS.c, _POSTS.c, _LABELS.c
        when = func.coalesce(p.published_at, p.first_seen_at)
        fetched = (select(p.feed_id, func.count(p.id).label("n")).where(when >= since)
                   .group_by(p.feed_id).subquery())
        picked = (select(p.feed_id, func.count(func.distinct(p.id)).label("p"))
                  .join(_LABELS, label.post_id == p.id)
                  .where(label.selected.is_(True), label.digest == digest, when >= since)
                  .group_by(p.feed_id).subquery())
        query = (select(f.name, func.coalesce(fetched.c.n, 0), func.coalesce(picked.c.p, 0))
                 .outerjoin(fetched, fetched.c.feed_id == f.id).outerjoin(picked, picked.c.feed_id == f.id)
                 .where(f.active.is_(True)).order_by(f.id))
        with self.transaction() as s:
            return [(name, int(n), int(p)) for name, n, p in s.execute(query)]


def _answered(result: FetchResult, *, usable: bool) -> dict[str, Any]:
    """What an answer changes on its feed's row: status, validators, a permanent move, gone."""
    values: dict[str, Any] = dict(last_status=result.status, gone=result.gone)
    if result.status == 200 and not usable:  # a body we could not use: ask for all of it next time
        values.update(etag=None, last_modified=None)
    else:
        if result.etag is not None or result.status == 200:
            values["etag"] = result.etag
        if result.last_modified is not None or result.status == 200:
            values["last_modified"] = result.last_modified
    if result.permanent_url:
        values.update(url=result.permanent_url, host=Site.of(result.permanent_url).hostname)
    return values


def _released(worker: str | None) -> dict[str, Any]:
    """What recording a fetch sets besides its outcome: the claim given up, the poller that fetched."""
    return dict(claimed_by=None, claimed_until=None, last_fetched_by=worker)


def _record_one(s: Connection, fetched: Fetched, now: datetime, worker: str | None) -> int:
    """One feed's fetch outcome on its row (its claim released), and its posts; how many posts are new."""
    feed, result, error = fetched.feed, fetched.result, fetched.error
    now = fetched.checked_at or now
    values = _answered(result, usable=error is None)
    values.update(last_checked_at=now, next_check_at=fetched.next_check, **_released(worker))
    if error is None:
        values.update(error_count=0, last_error=None, last_success_at=now)
    else:
        values.update(error_count=_FEEDS.c.error_count + 1, last_error=error)
    if fetched.title:
        values["title"] = fetched.title
    if fetched.body_sha256:
        values["body_sha256"] = fetched.body_sha256
    if fetched.fingerprints is not None and error is None:
        values["entry_fingerprints"] = fetched.fingerprints
    recorded = update(_FEEDS).where(_FEEDS.c.id == feed.id, _UNCLAIMED_OR_MINE).values(**values)
    if s.execute(recorded, {"me": worker or ""}).rowcount == 0:
        if s.scalar(select(_FEEDS.c.id).where(_FEEDS.c.id == feed.id)) is None:
            raise StoreError(f"feed {feed.name!r} vanished during the pass")
        # Another poller claimed the feed after this one's lease ran out: its row is theirs now; the posts
        # this late fetch found are stored all the same (once each, by link and key).
    return add_posts(s, feed.id, fetched.posts, now)


