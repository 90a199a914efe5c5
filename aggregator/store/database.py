"""Opening the database: engine, transactions, migrations, and the locks that make processes take turns."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, create_engine, event, insert, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from aggregator.errors import BusyError, StoreError
from aggregator.store.tables import SCHEMA_VERSION, metadata, migrations_dir

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

D = TypeVar("D", bound="Database")
_CHUNK = 500  # rows per IN (...) query; well under every backend's parameter limit

# Alembic's table of the schema's version, as Alembic makes it (alembic.ddl.impl.DefaultImpl.version_table_impl;
# tests/test_store.py compares the two): a new database gets it, stamped, without importing Alembic.
_ALEMBIC_VERSION = Table("alembic_version", MetaData(), Column("version_num", String(32), nullable=False),
                         PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))

_HELD_LOCKS: set[int] = set()  # the files of the SQLite polling locks this process holds


def _drop_inherited_locks() -> None:
    """In a child forked while a pass holds the polling lock (its parse workers): close the child's copy of the
    lock's file, so that the lock ends with the pass's process alone, however long a worker outlives it."""
    for fd in _HELD_LOCKS:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)

LOCK_CLASS = 1634166642  # 0x61676772, "aggr": the first key of every PostgreSQL advisory lock aggregator takes
MIGRATE_TURN, SYNC_TURN, CLAIM_TURN, POSTS_TURN = 1, 2, 3, 4  # second keys of the locks that make processes take turns


def take_turns(conn: Connection | Session, turn: int) -> None:
    """On PostgreSQL, wait for the other processes' transactions of this kind (the lock ends with this
    transaction): migrations, feeds.yaml syncs, claims and writes of new posts by several pollers run one
    by one (each a few milliseconds; parsing and fetching, the slow parts, stay parallel)."""
    dialect = conn.dialect if isinstance(conn, Connection) else conn.get_bind().dialect  # a Session
    if dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(CAST(:a AS integer), CAST(:b AS integer))"),
                     {"a": LOCK_CLASS, "b": turn})


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


def chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class Database:
    """A database opened from a SQLAlchemy URL: the base every domain of the store builds on."""

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

    @cached_property
    def _sessions(self) -> sessionmaker[Session]:
        """The ORM's sessions, for the domains that read and write rows as objects (labels, the desk's
        decisions); made on first use, so that a polling pass, all SQLAlchemy Core, never imports the ORM."""
        from sqlalchemy.orm import sessionmaker

        return sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def opened_as(self, kind: type[D]) -> D:
        """This open database as `kind`, a composition of more domains, on the same engine (an in-memory
        SQLite database stays the same one); this object stays usable."""
        view = kind.__new__(kind)
        view.__dict__.update(self.__dict__)
        return view

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def store_errors(self) -> Iterator[None]:
        """The block's database errors as one StoreError naming the database."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {short_error(exc)}") from None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction on a Core connection: committed on success, rolled back on any error."""
        with self.store_errors(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction of the ORM: committed on success, rolled back on any error."""
        with self.store_errors(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def polling_lock(self, *, wait: float = 0.0, stop: threading.Event | None = None) -> Iterator[None]:
        """Hold the database's polling lock, so that only one pass runs at a time (cron, the daemon, by hand).

        SQLite: an flock on a `.lock` file beside the database, which vanishes with its process, even on
        kill -9. Waits up to `wait` seconds, then raises BusyError. (PostgreSQL needs none: pollers share
        the due feeds by claims, store/claims.py.)"""
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

    @contextmanager
    def once_at_a_time(self, name: str) -> Iterator[bool]:
        """Hold the cluster-wide lock `name` for the block: True when this process took it, False when another
        process holds it (the caller skips the work). A session advisory lock on PostgreSQL, gone with its
        connection even on kill -9; on SQLite always True (one machine, one daemon)."""
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        try:
            conn = self.engine.connect()
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {exc}") from None
        key = {"a": LOCK_CLASS, "name": name}
        try:
            held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(CAST(:a AS integer), hashtext(:name))"), key))
            conn.commit()
            yield held
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(CAST(:a AS integer), hashtext(:name))"), key)
                conn.commit()
        finally:
            conn.close()

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
            _HELD_LOCKS.add(fd)

            def release() -> None:  # closing the file releases the lock
                _HELD_LOCKS.discard(fd)
                os.close(fd)

            return release
        return lambda: None

    # -- schema ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest version (Alembic), refusing unknown future versions; a new, empty
        database gets the newest schema at once."""
        if self._schema_is_current() or self._made_new():
            return  # answered without importing Alembic (a quarter of a second, 10 MiB)
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
                cfg.attributes["connection"] = conn
                if set(current) != set(scripts.get_heads()):
                    command.upgrade(cfg, "head")
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {short_error(exc)}") from None

    def _made_new(self) -> bool:
        """When the database has no table at all, give it the tables as store/tables.py declares them,
        stamped with the newest revision (the same schema as every migration run in turn, which a test keeps
        true), at a fraction of the cost of rebuilding tables migration by migration; False otherwise."""
        with self.store_errors(), self.engine.begin() as conn, _transactional_ddl(conn):
            take_turns(conn, MIGRATE_TURN)
            if inspect(conn).get_table_names():
                return False
            metadata.create_all(conn)
            _ALEMBIC_VERSION.create(conn)
            conn.execute(insert(_ALEMBIC_VERSION).values(version_num=SCHEMA_VERSION))
            return True

    def _schema_is_current(self) -> bool:
        try:
            with self.engine.connect() as conn:
                return list(conn.scalars(text("SELECT version_num FROM alembic_version"))) == [SCHEMA_VERSION]
        except SQLAlchemyError:  # no table yet, or not a database at all: migrate() will say which
            return False


def short_error(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig) if orig is not None else str(exc).splitlines()[0]

