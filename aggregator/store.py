"""The database: tables, migrations and every query but the claims of several pollers (claims.py)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TextClause,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    false,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from aggregator.errors import BusyError, ConflictError, StoreError
from aggregator.learn.labels import ImportEntry
from aggregator.models import (
    DEFAULT_DIGEST,
    Candidate,
    FeedConfig,
    FeedState,
    FetchResult,
    Label,
    ParsedPost,
    SectionPath,
    month_bounds,
)

_CHUNK = 500  # rows per IN (...) query; well under every backend's parameter limit
CHANGED_ELSEWHERE = "changed elsewhere (another tab or an import) since this page was loaded; reload to see it"
_IMPORT_TRIES = 5  # an import racing a polling pass for the same new URLs runs again this often at most


class _Raced(Exception):
    """Another writer committed a post with one of the URLs this transaction was adding."""


LOCK_CLASS = 1634166642  # 0x61676772, "aggr": the first key of every PostgreSQL advisory lock aggregator takes
MIGRATE_TURN, SYNC_TURN, CLAIM_TURN, POSTS_TURN = 1, 2, 3, 4  # second keys of the locks that make processes take turns


def take_turns(conn: Connection | Session, turn: int) -> None:
    """On PostgreSQL, wait for the other processes' transactions of this kind (the lock ends with this
    transaction): migrations, feeds.yaml syncs, claims and writes of new posts by several pollers run one
    by one (each a few milliseconds; parsing and fetching, the slow parts, stay parallel)."""
    dialect = conn.dialect if isinstance(conn, Connection) else conn.get_bind().dialect
    if dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(CAST(:a AS integer), CAST(:b AS integer))"),
                     {"a": LOCK_CLASS, "b": turn})


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC and gives them back aware, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass UTC-aware datetimes")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class FeedRow(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config_url: Mapped[str] = mapped_column(Text)  # as written in feeds.yaml
    url: Mapped[str] = mapped_column(Text)  # where we poll now (moves on permanent redirects)
    source: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str | None] = mapped_column(Text)
    interval: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # still listed in feeds.yaml
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    gone: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    body_sha256: Mapped[str | None] = mapped_column(String(64))  # of the last body parsed; an equal one is skipped
    claimed_by: Mapped[str | None] = mapped_column(String(200))  # the poller fetching it now (PostgreSQL: claims.py)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)  # when that claim lapses
    last_fetched_by: Mapped[str | None] = mapped_column(String(200))  # the poller that last recorded a fetch

    posts: Mapped[list[PostRow]] = relationship(back_populates="feed")


# The polling pass reads and writes feed rows through the table itself (SQLAlchemy Core): plain tuples and
# one executemany per batch, with none of the ORM's per-object bookkeeping.
_FEEDS = FeedRow.__table__
_UPDATE_FEED_BY_ID = update(_FEEDS).where(_FEEDS.c.id == bindparam("feed_id"))


class PostRow(Base):
    __tablename__ = "posts"
    __table_args__ = (UniqueConstraint("feed_id", "key", name="uq_posts_feed_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id"), index=True)
    key: Mapped[str] = mapped_column(Text)  # identity within the feed (guid, link or hash)
    url: Mapped[str | None] = mapped_column(Text, unique=True)  # canonical link: identity across feeds
    title: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(200), default="")  # for posts known only from a digest
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    content_hash: Mapped[str] = mapped_column(String(64), default="")

    feed: Mapped[FeedRow | None] = relationship(back_populates="posts")


class DraftRow(Base):
    """The last draft aggregator wrote of one edition of one digest."""

    __tablename__ = "drafts"

    digest: Mapped[str] = mapped_column(String(100), primary_key=True)
    month: Mapped[str] = mapped_column(String(10), primary_key=True)  # the edition: "2022-12" or "2023-W40"
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)
    selected_urls: Mapped[str | None] = mapped_column(Text)  # JSON list: what the draft offered the editor


class DigestRow(Base):
    """One imported edition of a digest: the latest version of it that was imported."""

    __tablename__ = "digests"

    digest: Mapped[str] = mapped_column(String(100), primary_key=True)
    month: Mapped[str] = mapped_column(String(10), primary_key=True)  # the edition: "2022-12" or "2023-W40"
    path: Mapped[str] = mapped_column(Text)
    style: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64))
    sections: Mapped[str] = mapped_column(Text)  # JSON list of section paths, in order
    covers: Mapped[str] = mapped_column(Text)  # JSON list of the months whose posts the editor chose from
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    emoji: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # JSON: section name -> its heading's emoji


class LabelRow(Base):
    """The editor's decision on one post in one edition of one digest."""

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("digest", "post_id", "month", name="uq_labels_digest_post_month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(100), index=True, server_default=DEFAULT_DIGEST)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    month: Mapped[str] = mapped_column(String(10), index=True)  # the edition
    selected: Mapped[bool] = mapped_column(Boolean)
    section: Mapped[str | None] = mapped_column(Text)  # JSON list of headings; None when not selected
    editor_summary: Mapped[str] = mapped_column(Text, default="")
    printed_source: Mapped[str] = mapped_column(Text, default="")  # the source label the digest printed
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # raised by every change


class DeskActionRow(Base):
    """One decision the review desk made, with the label state it replaced (JSON, None: no label), for undo."""

    __tablename__ = "desk_actions"
    __table_args__ = (Index("ix_desk_actions_digest_month", "digest", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(100))
    month: Mapped[str] = mapped_column(String(10))
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    action: Mapped[str] = mapped_column(String(20))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer)  # the label's revision this action left
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    undone: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


metadata = Base.metadata
def migrations_dir() -> Path:
    """Where the Alembic scripts are: the top-level migrations/ folder, installed as aggregator.migrations."""
    import aggregator.migrations

    return Path(aggregator.migrations.__file__).parent


SCHEMA_VERSION = "0006"  # the newest revision in migrations/versions (a test keeps the two in step)


@dataclass(frozen=True)
class ImportReport:
    """What importing one digest changed."""

    month: str
    entries: int
    added: int = 0  # newly selected posts
    moved: int = 0  # selected before, now in another section
    removed: int = 0  # offered or selected before, now left out: negatives
    new_posts: int = 0  # posts known only from the digest
    unchanged: bool = False
    truncated: int = 0  # entries whose title, source, heading or summary was cut to the limits


@dataclass(frozen=True)
class Decision:
    """The editor's decision on one post in one edition, as the desk shows it; revision 0: none yet."""

    selected: bool | None = None  # None: undecided
    section: SectionPath | None = None
    summary: str = ""
    revision: int = 0
    order: int = 0  # the label's id: decided rows keep the order they were first decided in

    def as_json(self) -> str | None:
        if self.selected is None:
            return None
        return json.dumps({"selected": self.selected, "section": list(self.section or ()), "summary": self.summary},
                          ensure_ascii=False)


@dataclass(frozen=True)
class DeskResult:
    """What a desk action left: the row's decision and the action's id in the log (for undo)."""

    decision: Decision
    action_id: int


@dataclass(frozen=True)
class DigestInfo:
    """An imported digest, as training and drafting use it."""

    month: str
    sections: tuple[SectionPath, ...]
    covers: tuple[str, ...]
    selected: int
    emoji: tuple[tuple[str, str], ...] = ()  # section name -> the emoji its heading wears (footnote style)


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


def _sqlite_pragmas(busy_timeout: float) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    return on_connect


@contextmanager
def _transactional_ddl(conn: Connection) -> Iterator[None]:
    """On SQLite, run the block in one explicit write transaction, DDL included: pysqlite otherwise commits
    each CREATE/ALTER on its own, and a process killed half-way through a migration would leave half a
    schema with no version recorded. (Only here: the usual implicit BEGIN suits the other transactions.)"""
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.dbapi_connection
    raw.isolation_level = None
    conn.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        raw.isolation_level = ""  # the COMMIT or ROLLBACK at the end of engine.begin() ends it


def describe_db(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class Store:
    """A database of feeds and posts, opened from a SQLAlchemy URL."""

    def __init__(self, url: str, *, busy_timeout: float = 30.0, worker: str | None = None) -> None:
        """`busy_timeout`: how long a write waits for another process's write on SQLite before failing;
        `worker`: the poller's name, recorded on every feed whose fetch it records."""
        self.url = url
        self.worker = worker
        self.where = describe_db(url)
        try:
            self.engine: Engine = create_engine(url)
        except (ArgumentError, SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"{self.where}: cannot open database: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas(busy_timeout))
            database = self.engine.url.database
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {_short(exc)}") from None

    @contextmanager
    def polling_lock(self, *, wait: float = 0.0, stop: threading.Event | None = None) -> Iterator[None]:
        """Hold the database's polling lock, so that only one pass runs at a time (cron, the daemon, by hand).

        SQLite: an flock on a `.lock` file beside the database, which vanishes with its process, even on
        kill -9. Waits up to `wait` seconds, then raises BusyError. (PostgreSQL needs none: pollers share
        the due feeds by claims, claims.py.)"""
        give_up = time.monotonic() + wait
        while (release := self._try_lock()) is None:
            if time.monotonic() >= give_up or (stop is not None and stop.is_set()):
                raise BusyError(f"{self.where}: another polling pass is running on this database; "
                                "this one stops without fetching (try again when it ends)")
            time.sleep(0.2)
        try:
            yield
        finally:
            release()

    def _try_lock(self) -> Callable[[], None] | None:
        dialect, database = self.engine.dialect.name, self.engine.url.database
        if dialect == "sqlite" and database and database != ":memory:":
            import fcntl

            path = Path(database).expanduser().with_name(Path(database).name + ".lock")
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StoreError(f"{path}: cannot create the polling lock file: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            return lambda: os.close(fd)  # closing the file releases the lock
        return lambda: None

    # -- schema ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest version (Alembic), refusing unknown future versions."""
        if self._schema_is_current():
            return  # the common case, answered without importing Alembic (a quarter of a second)
        from alembic import command
        from alembic.config import Config as AlembicConfig
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(migrations_dir()))
        scripts = ScriptDirectory.from_config(cfg)
        try:
            with self.engine.begin() as conn, _transactional_ddl(conn):
                take_turns(conn, MIGRATE_TURN)
                current = MigrationContext.configure(conn).get_current_heads()
                known = {s.revision for s in scripts.walk_revisions()}
                unknown = [rev for rev in current if rev not in known]
                if unknown:
                    raise StoreError(
                        f"{self.where}: schema version {unknown[0]} is newer than this aggregator knows; "
                        "upgrade aggregator (nothing was changed)"
                    )
                if set(current) != set(scripts.get_heads()):
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {_short(exc)}") from None

    def _schema_is_current(self) -> bool:
        try:
            with self.engine.connect() as conn:
                return list(conn.scalars(text("SELECT version_num FROM alembic_version"))) == [SCHEMA_VERSION]
        except SQLAlchemyError:  # no table yet, or not a database at all: migrate() will say which
            return False

    # -- feeds ----------------------------------------------------------------------------

    def sync_feeds(self, feeds: Iterable[FeedConfig], now: datetime) -> None:
        """Make the feeds table match feeds.yaml: add new feeds (due now), update changed ones.
        An unchanged feeds.yaml (every run of cron) reads the table and writes nothing."""
        wanted = {f.name: f for f in feeds}
        t = _FEEDS
        with self.session() as s:
            take_turns(s, SYNC_TURN)
            rows = {row.name: row for row in s.execute(select(t.c.id, t.c.name, t.c.config_url, t.c.source,
                                                              t.c.interval, t.c.active))}
            new = [dict(name=name, config_url=feed.url, url=feed.url, source=feed.source, interval=feed.interval,
                        next_check_at=now, created_at=now) for name, feed in wanted.items() if name not in rows]
            if new:
                s.execute(insert(t), new)
            for name, row in rows.items():
                feed = wanted.get(name)
                values: dict[str, Any] = {}
                if feed is None:
                    values = {"active": False} if row.active else {}
                else:
                    if row.config_url != feed.url:  # the editor changed the URL: start afresh there
                        values.update(config_url=feed.url, url=feed.url, etag=None, last_modified=None,
                                      error_count=0, gone=False, next_check_at=now)
                    if (row.source, row.interval, row.active) != (feed.source, feed.interval, True):
                        values.update(source=feed.source, interval=feed.interval, active=True)
                if values:
                    s.execute(update(t).where(t.c.id == row.id).values(**values))

    def feeds_due(self, now: datetime, *, names: Sequence[str] | None = None, everything: bool = False) -> list[FeedState]:
        """Feeds to poll now: due ones (or all with `everything`), never gone ones unless named."""
        t = _FEEDS
        query = (select(t.c.id, t.c.name, t.c.url, t.c.etag, t.c.last_modified, t.c.error_count, t.c.interval,
                        t.c.body_sha256).where(t.c.active.is_(True)).order_by(t.c.id))
        if names:
            query = query.where(t.c.name.in_(names))
        else:
            query = query.where(t.c.gone.is_(False))
            if not everything:
                query = query.where((t.c.next_check_at.is_(None)) | (t.c.next_check_at <= now))
        with self.session() as s:
            return [FeedState(*row) for row in s.execute(query)]

    def feed_names(self) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(FeedRow.name).where(FeedRow.active.is_(True)).order_by(FeedRow.id)))

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
        with self.session() as s:
            take_turns(s, POSTS_TURN)
            return [_record_one(s, fetched, now, self.worker) for fetched in batch]

    def record_checks(self, checks: Sequence[Check], *, now: datetime) -> None:
        """Record many fetches that brought nothing new, in one transaction (a warm pass is mostly these)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # one executemany per set of columns
        for check in checks:
            when = check.checked_at or now
            row = dict(_answered(check.result, usable=True), feed_id=check.feed.id, last_checked_at=when,
                       next_check_at=check.next_check, error_count=0, last_error=None, last_success_at=when,
                       **_released(self.worker))
            groups.setdefault(tuple(row), []).append(row)
        if groups:
            with self.session() as s:
                for rows in groups.values():
                    s.execute(_UPDATE_FEED_BY_ID, rows)

    def reset_feed(self, name: str, now: datetime) -> bool:
        """Clear a feed's errors and make it due now; False when no such feed."""
        with self.session() as s:
            row = s.scalar(select(FeedRow).where(FeedRow.name == name))
            if row is None:
                return False
            row.error_count, row.last_error, row.gone, row.next_check_at = 0, None, False, now
            return True

    def feed_health(self) -> list[FeedHealth]:
        counts = select(PostRow.feed_id, func.count(PostRow.id).label("n")).group_by(PostRow.feed_id).subquery()
        picked = (select(PostRow.feed_id, func.count(func.distinct(PostRow.id)).label("p"))
                  .join(LabelRow, LabelRow.post_id == PostRow.id).where(LabelRow.selected.is_(True))
                  .group_by(PostRow.feed_id).subquery())
        query = (select(FeedRow, func.coalesce(counts.c.n, 0), func.coalesce(picked.c.p, 0))
                 .outerjoin(counts, counts.c.feed_id == FeedRow.id).outerjoin(picked, picked.c.feed_id == FeedRow.id))
        with self.session() as s:
            return [
                FeedHealth(r.name, r.url, r.source, r.active, r.last_checked_at, r.last_success_at, r.last_status,
                           r.last_error, r.error_count, r.next_check_at, r.gone, n, p, r.last_fetched_by,
                           r.claimed_by, r.claimed_until)
                for r, n, p in s.execute(query.order_by(FeedRow.id))
            ]

    def feed_yield(self, since: datetime, *, digest: str = DEFAULT_DIGEST) -> list[tuple[str, int, int]]:
        """(feed name, posts fetched since `since`, those of them the digest picked) for every active feed."""
        when = func.coalesce(PostRow.published_at, PostRow.first_seen_at)
        fetched = (select(PostRow.feed_id, func.count(PostRow.id).label("n")).where(when >= since)
                   .group_by(PostRow.feed_id).subquery())
        picked = (select(PostRow.feed_id, func.count(func.distinct(PostRow.id)).label("p"))
                  .join(LabelRow, LabelRow.post_id == PostRow.id)
                  .where(LabelRow.selected.is_(True), LabelRow.digest == digest, when >= since)
                  .group_by(PostRow.feed_id).subquery())
        query = (select(FeedRow.name, func.coalesce(fetched.c.n, 0), func.coalesce(picked.c.p, 0))
                 .outerjoin(fetched, fetched.c.feed_id == FeedRow.id).outerjoin(picked, picked.c.feed_id == FeedRow.id)
                 .where(FeedRow.active.is_(True)).order_by(FeedRow.id))
        with self.session() as s:
            return [(name, int(n), int(p)) for name, n, p in s.execute(query)]

    def picked_urls(self, *, digest: str = DEFAULT_DIGEST) -> list[str]:
        """The links of every post the digest picked."""
        query = (select(PostRow.url).join(LabelRow, LabelRow.post_id == PostRow.id)
                 .where(LabelRow.selected.is_(True), LabelRow.digest == digest, PostRow.url.is_not(None)).distinct())
        with self.session() as s:
            return sorted(u for u in s.scalars(query) if u)

    def fetched_urls(self) -> list[str]:
        """The links of every post fetched from a feed: where the feeds' posts live."""
        query = select(PostRow.url).where(PostRow.feed_id.is_not(None), PostRow.url.is_not(None))
        with self.session() as s:
            return [u for u in s.scalars(query) if u]

    # -- posts ----------------------------------------------------------------------------

    def count_posts(self) -> int:
        with self.session() as s:
            return s.scalar(select(func.count(PostRow.id))) or 0

    def candidates(self, start: datetime, end: datetime, *, also: Sequence[int] = (),
                   feeds: Collection[str] | None = None) -> list[Candidate]:
        """Posts fetched from `feeds` (names; all feeds when None) dated in [start, end): by published date,
        or first-seen date where the feed gave none; plus the posts whose ids are in `also`."""
        when = func.coalesce(PostRow.published_at, PostRow.first_seen_at)
        wanted = (when >= start) & (when < end) & PostRow.feed_id.is_not(None)
        if feeds is not None:
            wanted &= FeedRow.name.in_(sorted(feeds))
        query = (
            select(PostRow, FeedRow.name, FeedRow.source)
            .outerjoin(FeedRow, PostRow.feed_id == FeedRow.id)
            .where(wanted | PostRow.id.in_(list(also)) if also else wanted)
            .order_by(when.desc(), PostRow.id)
        )
        with self.session() as s:
            return [_candidate(p, feed_source, feed_name) for p, feed_name, feed_source in s.execute(query)]

    # -- drafts ---------------------------------------------------------------------------

    def is_unedited_draft(self, month: str, text: str, *, digest: str = DEFAULT_DIGEST) -> bool:
        """Whether `text` is exactly what aggregator last wrote as the edition's draft."""
        with self.session() as s:
            row = s.get(DraftRow, (digest, month))
            return row is not None and row.sha256 == _sha256(text)

    def draft_written_at(self, month: str, *, digest: str = DEFAULT_DIGEST) -> datetime | None:
        with self.session() as s:
            row = s.get(DraftRow, (digest, month))
            return row.written_at if row else None

    def record_draft(self, month: str, path: str, text: str, now: datetime, selected: Sequence[str] = (), *,
                     digest: str = DEFAULT_DIGEST) -> None:
        with self.session() as s:
            s.merge(DraftRow(digest=digest, month=month, path=path, sha256=_sha256(text), written_at=now,
                             selected_urls=json.dumps(sorted(selected))))

    # -- digests and labels -----------------------------------------------------------------

    def import_digest(self, *, month: str, path: str, style: str, title: str, sha256: str,
                      sections: Sequence[SectionPath], covers: Sequence[str], entries: Sequence[ImportEntry],
                      now: datetime, digest: str = DEFAULT_DIGEST,
                      emoji: Sequence[tuple[str, str]] = (), left_out: Sequence[ImportEntry] = ()) -> ImportReport:
        """Record a digest's selections as labels, in one transaction.

        Posts never fetched are created from what the digest says. Posts the editor had selected in an
        earlier version of this month's digest, or that aggregator's draft offered, and that are now
        missing become negative labels. Importing the same text again changes nothing. When a polling
        pass stores one of the digest's posts meanwhile (the same URL, committed first), the
        transaction is run again and finds it. `left_out`: entries the editor listed once and dropped
        (read from a file's history), non-picks of this edition.
        """
        for attempt in range(_IMPORT_TRIES):
            try:
                return self._import_digest(month=month, path=path, style=style, title=title, sha256=sha256,
                                           sections=sections, covers=covers, entries=entries, now=now, digest=digest,
                                           emoji=emoji, left_out=left_out)
            except _Raced:
                if attempt == _IMPORT_TRIES - 1:
                    raise StoreError(f"{self.where}: other writers kept storing this digest's posts; try again") from None
        raise AssertionError("unreachable")

    def _import_digest(self, *, month: str, path: str, style: str, title: str, sha256: str,
                       sections: Sequence[SectionPath], covers: Sequence[str], entries: Sequence[ImportEntry],
                       now: datetime, digest: str, emoji: Sequence[tuple[str, str]],
                       left_out: Sequence[ImportEntry]) -> ImportReport:
        try:
            with self._sessions.begin() as s:
                take_turns(s, POSTS_TURN)  # beside pollers adding the same links on PostgreSQL
                return self._import_in(s, month=month, path=path, style=style, title=title, sha256=sha256,
                                       sections=sections, covers=covers, entries=entries, now=now, digest=digest,
                                       emoji=emoji, left_out=left_out)
        except IntegrityError as exc:
            if "url" in str(exc.orig).lower():
                raise _Raced() from None
            raise StoreError(f"{self.where}: {_short(exc)}") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {_short(exc)}") from None

    def _import_in(self, s: Session, *, month: str, path: str, style: str, title: str, sha256: str,
                   sections: Sequence[SectionPath], covers: Sequence[str], entries: Sequence[ImportEntry],
                   now: datetime, digest: str, emoji: Sequence[tuple[str, str]],
                   left_out: Sequence[ImportEntry]) -> ImportReport:
        existing = s.get(DigestRow, (digest, month))
        if existing is not None and existing.sha256 == sha256:
            return ImportReport(month, len(entries), unchanged=True)
        posts = _posts_for(s, [*entries, *left_out], now)
        mine = (LabelRow.digest == digest) & (LabelRow.month == month)
        labels = {row.post_id: row for row in s.scalars(select(LabelRow).where(mine))}
        history = _desk_revisions(s, digest, month)
        offered = set()
        draft = s.get(DraftRow, (digest, month))
        if draft is not None and draft.selected_urls:
            urls = json.loads(draft.selected_urls)
            offered = {p.id for chunk in _chunks(urls) for p in s.scalars(select(PostRow).where(PostRow.url.in_(chunk)))}
        added = moved = 0
        chosen = set()
        for entry in entries:
            post = posts[entry.url]
            chosen.add(post.id)
            section = json.dumps(list(entry.section), ensure_ascii=False)
            row = labels.get(post.id)
            summary = "" if _is_opening(entry.editor_summary, post.summary) else entry.editor_summary
            if row is None:
                s.add(LabelRow(digest=digest, post_id=post.id, month=month, selected=True, section=section,
                               editor_summary=summary, printed_source=entry.source, updated_at=now,
                               revision=history.get(post.id, 0) + 1))
                added += 1
                continue
            if not row.selected:
                added += 1
            elif row.section != section:
                moved += 1
            summary = summary or (row.editor_summary if summary != entry.editor_summary else "")
            if (row.selected, row.section, row.editor_summary) != (True, section, summary):
                row.revision += 1
            row.selected, row.section, row.editor_summary = True, section, summary
            row.printed_source, row.updated_at = entry.source, now
        removed = 0
        rejected = {posts[e.url].id for e in left_out}  # dropped from the file in its history
        for post_id in (offered | rejected | {pid for pid, row in labels.items() if row.selected}) - chosen:
            row = labels.get(post_id)
            if row is None:
                s.add(LabelRow(digest=digest, post_id=post_id, month=month, selected=False, section=None, editor_summary="",
                               printed_source="", updated_at=now, revision=history.get(post_id, 0) + 1))
            elif row.selected:
                row.selected, row.section, row.updated_at, row.revision = False, None, now, row.revision + 1
            else:
                continue
            removed += 1
        new_posts = sum(1 for p in posts.values() if p.feed_id is None and p.first_seen_at == now)
        s.merge(DigestRow(digest=digest, month=month, path=path, style=style, title=title, sha256=sha256,
                          sections=json.dumps([list(x) for x in sections], ensure_ascii=False),
                          covers=json.dumps(list(covers)), imported_at=now,
                          emoji=json.dumps(dict(emoji), ensure_ascii=False)))
        return ImportReport(month, len(entries), added, moved, removed, new_posts)

    def digests(self, *, digest: str = DEFAULT_DIGEST) -> list[DigestInfo]:
        """A digest's imported editions, oldest first, with how many posts each selected."""
        counts = (select(LabelRow.month, func.count(LabelRow.id))
                  .where(LabelRow.selected.is_(True), LabelRow.digest == digest).group_by(LabelRow.month))
        with self.session() as s:
            selected = dict(s.execute(counts).all())
            query = select(DigestRow).where(DigestRow.digest == digest).order_by(DigestRow.month)
            return [DigestInfo(d.month, tuple(tuple(x) for x in json.loads(d.sections)), tuple(json.loads(d.covers)),
                               selected.get(d.month, 0), tuple(json.loads(d.emoji or "{}").items()))
                    for d in s.scalars(query)]

    def edition_labels(self, month: str, *, digest: str = DEFAULT_DIGEST) -> dict[int, SectionPath | None]:
        """post id -> its section in the edition's imported digest, or None when that digest left it out."""
        query = (select(LabelRow.post_id, LabelRow.selected, LabelRow.section)
                 .where(LabelRow.month == month, LabelRow.digest == digest))
        with self.session() as s:
            return {pid: (tuple(json.loads(sec)) if selected and sec else None) for pid, selected, sec in s.execute(query)}

    def editor_summaries(self, month: str, *, digest: str = DEFAULT_DIGEST) -> dict[int, str]:
        """post id -> the summary the editor wrote for it in the edition (only where they wrote one)."""
        query = (select(LabelRow.post_id, LabelRow.editor_summary)
                 .where(LabelRow.month == month, LabelRow.digest == digest, LabelRow.selected.is_(True)))
        with self.session() as s:
            return {pid: text for pid, text in s.execute(query) if text}

    def selected_elsewhere(self, month: str, post_ids: Sequence[int], *, digest: str = DEFAULT_DIGEST) -> set[int]:
        """Those of `post_ids` that another edition of the digest already published."""
        found: set[int] = set()
        with self.session() as s:
            for chunk in _chunks(list(post_ids)):
                query = select(LabelRow.post_id).where(LabelRow.post_id.in_(chunk), LabelRow.month != month,
                                                       LabelRow.selected.is_(True), LabelRow.digest == digest)
                found.update(s.scalars(query))
        return found

    # -- the review desk ---------------------------------------------------------------------

    def decisions(self, month: str, *, digest: str = DEFAULT_DIGEST) -> dict[int, Decision]:
        """post id -> the editor's decision in one edition (imported or made on the desk)."""
        query = select(LabelRow).where(LabelRow.month == month, LabelRow.digest == digest)
        with self.session() as s:
            return {row.post_id: _decision(row) for row in s.scalars(query)}

    def decision(self, month: str, post_id: int, *, digest: str = DEFAULT_DIGEST) -> Decision:
        """The editor's decision on one post in one edition (revision 0 when there is none)."""
        query = select(LabelRow).where(LabelRow.month == month, LabelRow.digest == digest, LabelRow.post_id == post_id)
        with self.session() as s:
            row = s.scalars(query).one_or_none()
            return _decision(row) if row is not None else Decision()

    def decide(self, month: str, post_id: int, after: Decision, *, revision: int, action: str, now: datetime,
               digest: str = DEFAULT_DIGEST) -> DeskResult:
        """Record the editor's decision on one post, in one transaction, logged for undo; ConflictError
        when the row's revision is no longer `revision` (another tab or an import changed it)."""
        try:
            with self._sessions.begin() as s:
                row = _label_for_update(s, digest, month, post_id)
                before = _decision(row) if row is not None else Decision()
                if before.revision != revision:
                    raise ConflictError(CHANGED_ELSEWHERE)
                result = _set_label(s, row, digest, month, post_id, after, now)
                entry = DeskActionRow(digest=digest, month=month, post_id=post_id, action=action, before=before.as_json(),
                                      after=result.as_json(), revision=result.revision, at=now)
                s.add(entry)
                s.flush()
                return DeskResult(result, entry.id)
        except IntegrityError:  # another writer created the label first
            raise ConflictError(CHANGED_ELSEWHERE) from None
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {_short(exc)}") from None

    def undo(self, month: str, action_id: int, *, now: datetime, digest: str = DEFAULT_DIGEST) -> tuple[int, DeskResult]:
        """Put back the state a desk action replaced; (its post id, the result). ConflictError when the
        action is unknown, already undone, or the row changed after it."""
        try:
            with self._sessions.begin() as s:
                done = s.get(DeskActionRow, action_id)
                if done is None or done.digest != digest or done.month != month or done.action == "undo":
                    raise ConflictError(f"no desk action {action_id} in {month} to undo")
                if done.undone:
                    raise ConflictError("that action was already undone")
                row = _label_for_update(s, digest, month, done.post_id)
                current = _decision(row) if row is not None else Decision()
                same_row = ((DeskActionRow.digest == digest) & (DeskActionRow.month == month)
                            & (DeskActionRow.post_id == done.post_id) & (DeskActionRow.id > done.id))
                later = s.scalars(select(DeskActionRow).where(same_row).order_by(DeskActionRow.id)).all()
                # Undone in order, newest first, and only while nothing else (another tab, an import) changed the row.
                if (current.revision != (later[-1].revision if later else done.revision)
                        or any(a.action != "undo" and not a.undone for a in later)):
                    raise ConflictError("the row changed after that action (another tab or an import); reload to see it")
                restored = _decision_from_json(done.before)
                result = _set_label(s, row, digest, month, done.post_id, restored, now)
                done.undone = True
                entry = DeskActionRow(digest=digest, month=month, post_id=done.post_id, action="undo",
                                      before=current.as_json(), after=result.as_json(), revision=result.revision, at=now)
                s.add(entry)
                s.flush()
                return done.post_id, DeskResult(result, entry.id)
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {_short(exc)}") from None

    def printed_sources(self, *, digest: str = DEFAULT_DIGEST) -> list[tuple[SectionPath, str]]:
        """(section, printed source label) of every selected label: how the editor labels entries."""
        query = (select(LabelRow.section, LabelRow.printed_source)
                 .where(LabelRow.selected.is_(True), LabelRow.digest == digest))
        with self.session() as s:
            return [(tuple(json.loads(sec)), src) for sec, src in s.execute(query) if sec]

    def last_change(self) -> datetime | None:
        """When the posts or the editor's decisions last changed: a post first seen, a label written."""
        with self.session() as s:
            seen = s.scalar(select(func.max(PostRow.first_seen_at)))
            decided = s.scalar(select(func.max(LabelRow.updated_at)))
        found = [t for t in (seen, decided) if t is not None]
        return max(found) if found else None

    def fetched_posts(self, *, before: datetime | None = None, feeds: Collection[str] | None = None) -> list[Candidate]:
        """Every post fetched from a feed (not known only from a digest), dated before `before` and from
        `feeds` (names) when given: the background that tells the priority model what an ordinary post looks like."""
        when = func.coalesce(PostRow.published_at, PostRow.first_seen_at)
        query = (select(PostRow, FeedRow.source, FeedRow.name).join(FeedRow, PostRow.feed_id == FeedRow.id)
                 .order_by(PostRow.id))
        if before is not None:
            query = query.where(when < before)
        if feeds is not None:
            query = query.where(FeedRow.name.in_(sorted(feeds)))
        with self.session() as s:
            return [_candidate(p, feed_source, feed_name) for p, feed_source, feed_name in s.execute(query)]

    def training_labels(self, *, digest: str = DEFAULT_DIGEST, feeds: Collection[str] | None = None) -> list[tuple[str, Label]]:
        """(edition, label) for every decision of a digest: selections, removals, and the unselected posts
        stored from the months its imported editions cover (from its `feeds` when given)."""
        with self.session() as s:
            out: list[tuple[str, Label]] = []
            query = (select(LabelRow, PostRow, FeedRow.source, FeedRow.name)
                     .join(PostRow, LabelRow.post_id == PostRow.id).where(LabelRow.digest == digest)
                     .outerjoin(FeedRow, PostRow.feed_id == FeedRow.id).order_by(LabelRow.month, PostRow.id))
            labelled: set[int] = set()
            for label, post, feed_source, feed_name in s.execute(query):
                labelled.add(post.id)
                candidate = _candidate(post, feed_source, feed_name)
                section = tuple(json.loads(label.section)) if label.section else None
                out.append((label.month, Label(candidate, section, label.selected, label.editor_summary)))
            for edition in s.scalars(select(DigestRow).where(DigestRow.digest == digest)):
                for month in json.loads(edition.covers):
                    start, end = month_bounds(month)
                    when = func.coalesce(PostRow.published_at, PostRow.first_seen_at)
                    query = (select(PostRow, FeedRow.source, FeedRow.name).join(FeedRow, PostRow.feed_id == FeedRow.id)
                             .where(when >= start, when < end).order_by(PostRow.id))
                    if feeds is not None:
                        query = query.where(FeedRow.name.in_(sorted(feeds)))
                    for post, feed_source, feed_name in s.execute(query):
                        if post.id not in labelled:
                            labelled.add(post.id)
                            out.append((edition.month, Label(_candidate(post, feed_source, feed_name), None, False)))
            return out


def _decision(row: LabelRow) -> Decision:
    section = tuple(json.loads(row.section)) if row.selected and row.section else None
    return Decision(row.selected, section, row.editor_summary or "", row.revision, row.id)


def _decision_from_json(text: str | None) -> Decision:
    if text is None:
        return Decision()
    data = json.loads(text)
    return Decision(bool(data["selected"]), tuple(data["section"]) or None, data.get("summary", ""))


def _label_for_update(s: Session, digest: str, month: str, post_id: int) -> LabelRow | None:
    query = select(LabelRow).where(LabelRow.digest == digest, LabelRow.month == month, LabelRow.post_id == post_id)
    return s.scalars(query.with_for_update()).one_or_none()


def _desk_revisions(s: Session, digest: str, month: str, post_id: int | None = None) -> dict[int, int]:
    """The highest label revision the desk's actions left on each post of an edition (or on one post): a
    label created again goes on from there, so a page that saw an older state of the row is refused."""
    query = (select(DeskActionRow.post_id, func.max(DeskActionRow.revision))
             .where(DeskActionRow.digest == digest, DeskActionRow.month == month).group_by(DeskActionRow.post_id))
    if post_id is not None:
        query = query.where(DeskActionRow.post_id == post_id)
    return {post: revision or 0 for post, revision in s.execute(query)}


def _set_label(s: Session, row: LabelRow | None, digest: str, month: str, post_id: int, after: Decision,
               now: datetime) -> Decision:
    """Write `after` into the label row (creating or deleting it); the decision as stored."""
    if after.selected is None:
        if row is not None:
            s.delete(row)
        return Decision()
    section = json.dumps(list(after.section), ensure_ascii=False) if after.selected and after.section else None
    if row is None:  # revisions go on from the row's history, so a page that saw an older state of it is refused
        row = LabelRow(digest=digest, post_id=post_id, month=month, selected=after.selected, section=section,
                       editor_summary=after.summary, printed_source="", updated_at=now,
                       revision=_desk_revisions(s, digest, month, post_id).get(post_id, 0) + 1)
        s.add(row)
    else:
        row.selected, row.section, row.editor_summary = after.selected, section, after.summary
        row.updated_at, row.revision = now, row.revision + 1
    s.flush()
    return _decision(row)


def _is_opening(summary: str, post_text: str) -> bool:
    """True when a digest line's summary is only the opening of the post's own text (as a draft prints
    it, perhaps cut short with "…"): the feed's words, not the editor's."""
    said = " ".join(summary.split()).rstrip("…").rstrip()
    return bool(said) and " ".join(post_text.split()).startswith(said)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _candidate(post: PostRow, feed_source: str | None, feed_name: str | None) -> Candidate:
    return Candidate(post.id, post.url or "", post.title, post.summary,
                     feed_source if feed_source is not None else post.source,
                     post.published_at or post.first_seen_at, feed_name)


def _posts_for(s: Session, entries: Sequence[ImportEntry], now: datetime) -> dict[str, PostRow]:
    """The stored post of every entry's URL, creating the ones never fetched."""
    urls = [e.url for e in entries]
    found = {p.url: p for chunk in _chunks(urls) for p in s.scalars(select(PostRow).where(PostRow.url.in_(chunk)))}
    for entry in entries:
        if entry.url not in found:
            post = PostRow(feed_id=None, key="digest:" + entry.url, url=entry.url, title=entry.title, summary="",
                           author="", source=entry.source, published_at=entry.published, first_seen_at=now,
                           content_hash="")
            s.add(post)
            found[entry.url] = post
    s.flush()
    return found


def _short(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig) if orig is not None else str(exc).splitlines()[0]


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
        values["url"] = result.permanent_url
    return values


def _released(worker: str | None) -> dict[str, Any]:
    """What recording a fetch sets besides its outcome: the claim given up, the poller that fetched."""
    return dict(claimed_by=None, claimed_until=None, last_fetched_by=worker)


def _record_one(s: Session, fetched: Fetched, now: datetime, worker: str | None) -> int:
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
    if s.execute(update(_FEEDS).where(_FEEDS.c.id == feed.id).values(**values)).rowcount == 0:
        raise StoreError(f"feed {feed.name!r} vanished during the pass")
    return _add_posts(s, feed.id, fetched.posts, now)


_STORED = (PostRow.id, PostRow.url, PostRow.key, PostRow.feed_id, PostRow.content_hash)
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


def _add_posts(s: Session, feed_id: int, posts: Sequence[ParsedPost], now: datetime) -> int:
    """Insert posts not stored yet (by canonical link anywhere, or by key in this feed), many rows per
    statement; refresh changed ones. A date in the future is taken as the time the post was first seen.

    Rows are read as plain tuples, not ORM objects, and one INSERT carries many rows."""
    if not posts:
        return 0
    urls = sorted({p.url for p in posts if p.url})
    keys = sorted({p.key for p in posts})
    by_url: dict[str, Any] = {}
    by_key: dict[str, Any] = {}
    for chunk in _chunks(urls):
        by_url.update((r.url, r) for r in s.execute(select(*_STORED).where(PostRow.url.in_(chunk))))
    for chunk in _chunks(keys):
        query = select(*_STORED).where(PostRow.feed_id == feed_id, PostRow.key.in_(chunk))
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
        s.execute(update(PostRow).where(PostRow.id == update_.pop("id")).values(**update_))
    return len(new)
