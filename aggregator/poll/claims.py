"""Several pollers on one PostgreSQL database: leases on due feeds (SKIP LOCKED, a per-host cap) and the advisory locks of once-per-period work."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import bindparam, text
from sqlalchemy.exc import SQLAlchemyError

from aggregator.errors import StoreError
from aggregator.models import FeedState
from aggregator.store.database import CLAIM_TURN, LOCK_CLASS, take_turns
from aggregator.store import Store
from aggregator.store.schema import UTCDateTime

# A feed URL's host name, lower-cased, as fetch.py keys its per-host limit (an IPv6 literal keeps its brackets).
_HOST = r"lower(substring(f.url from '^[^:/?#]+://(?:[^/?#@]*@)?(\[[^]]*\]|[^/?#:]*)'))"

_ELIGIBLE = """f.active AND (f.claimed_until IS NULL OR f.claimed_until <= :now)
    AND (f.last_checked_at IS NULL OR f.last_checked_at < :started) AND {which}"""
_DUE = "NOT f.gone AND (f.next_check_at IS NULL OR f.next_check_at <= :now)"

# The claim: due feeds not claimed by anyone, the oldest due first, at most `per_host` claimed per host across
# every poller (the claims already held count), locked with SKIP LOCKED and leased to this poller until :until.
# Only the first :scan eligible feeds are looked at, so a claim costs the same however many feeds are due.
_CLAIM = f"""
WITH held AS (
    SELECT {_HOST} AS host, count(*) AS n FROM feeds f WHERE f.claimed_until > :now GROUP BY 1
), eligible AS (
    SELECT f.id, f.url, f.next_check_at FROM feeds f WHERE {_ELIGIBLE}
    ORDER BY f.next_check_at NULLS FIRST, f.id LIMIT :scan
), ranked AS (
    SELECT f.id, f.next_check_at,
           coalesce(held.n, 0) + row_number() OVER (PARTITION BY {_HOST} ORDER BY f.next_check_at NULLS FIRST, f.id)
               AS slot
    FROM eligible f LEFT JOIN held ON held.host = {_HOST}
), chosen AS (
    SELECT id FROM ranked WHERE slot <= :per_host ORDER BY next_check_at NULLS FIRST, id LIMIT :room
)
UPDATE feeds SET claimed_by = :worker, claimed_until = :until
WHERE id IN (SELECT f.id FROM feeds f WHERE f.id IN (SELECT id FROM chosen) FOR UPDATE SKIP LOCKED)
RETURNING id, name, url, etag, last_modified, error_count, interval, body_sha256, next_check_at
"""
_WAITING = f"SELECT EXISTS (SELECT 1 FROM feeds f WHERE {_ELIGIBLE})"
_RELEASE = text("UPDATE feeds SET claimed_by = NULL, claimed_until = NULL "
                "WHERE id IN :ids AND claimed_by = :worker").bindparams(bindparam("ids", expanding=True))


def _statement(sql: str, names: Sequence[str], everything: bool) -> str:
    which = "f.name IN :names" if names else "NOT f.gone" if everything else _DUE
    return sql.replace("{which}", which)


def claim(store: Store, *, worker: str, now: datetime, until: datetime, started: datetime, room: int, per_host: int,
          names: Sequence[str] = (), everything: bool = False) -> tuple[list[FeedState], bool]:
    """Claim up to `room` feeds for `worker` until `until`: due ones (every one with `everything`, the named
    ones with `names`) not fetched since `started`; and, when none could be claimed, whether any such feed
    is left that the per-host cap keeps back for now. Claims take turns under a transaction advisory lock, so the cap counts exactly."""
    binds = [bindparam("now", type_=UTCDateTime()), bindparam("started", type_=UTCDateTime()),
             *([bindparam("names", expanding=True)] if names else [])]
    claim_sql = text(_statement(_CLAIM, names, everything)).bindparams(*binds, bindparam("until", type_=UTCDateTime()))
    waiting_sql = text(_statement(_WAITING, names, everything)).bindparams(*binds)
    values = dict(worker=worker, now=now, until=until, started=started, room=room, per_host=per_host,
                  scan=max(4 * room, 64), **({"names": list(names)} if names else {}))
    with store.session() as s:
        take_turns(s, CLAIM_TURN)
        rows = list(s.execute(claim_sql, values))
        waiting = not rows and bool(s.scalar(waiting_sql, values))  # asked only when it matters
    rows.sort(key=lambda r: (r.next_check_at is not None, r.next_check_at or now, r.id))
    return [FeedState(*row[:8]) for row in rows], waiting


def release(store: Store, worker: str, ids: Sequence[int]) -> None:
    """Give back the claims `worker` still holds on these feeds (fetched or not), so others may take them now."""
    if ids:
        try:
            with store.engine.begin() as conn:
                conn.execute(_RELEASE, {"ids": list(ids), "worker": worker})
        except SQLAlchemyError:
            pass  # the database is gone: the leases run out by themselves


class Claims:
    """One pass's share of the due feeds on PostgreSQL: claimed a few at a time, as the pass has room (run_pass's `more`)."""

    def __init__(self, store: Store, *, worker: str, clock: Callable[[], datetime], lease: int, per_host: int,
                 names: Sequence[str] = (), everything: bool = False) -> None:
        self.store, self.worker, self.clock = store, worker, clock
        self.lease, self.per_host = timedelta(seconds=lease), per_host
        self.names, self.everything = tuple(names), everything
        self.started = clock()
        self.waiting = False  # feeds are left that the per-host cap keeps back for now
        self.taken: list[int] = []

    def take(self, room: int) -> list[FeedState]:
        now = self.clock()
        feeds, self.waiting = claim(self.store, worker=self.worker, now=now, until=now + self.lease,
                                    started=self.started, room=room, per_host=self.per_host, names=self.names,
                                    everything=self.everything)
        self.taken += [feed.id for feed in feeds]
        return feeds

    def release(self) -> None:
        """Give back what was claimed and not recorded (a stop, an error): recorded feeds are released already."""
        release(self.store, self.worker, self.taken)


@contextmanager
def once_at_a_time(store: Store, name: str) -> Iterator[bool]:
    """Hold the cluster-wide lock `name` for the block: True when this process took it, False when another
    process holds it (the caller skips the work). A session advisory lock on PostgreSQL, gone with its
    connection even on kill -9; on SQLite always True (one machine, one daemon: the behaviour of before)."""
    if store.engine.dialect.name != "postgresql":
        yield True
        return
    try:
        conn = store.engine.connect()
    except SQLAlchemyError as exc:
        raise StoreError(f"{store.where}: {exc}") from None
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
