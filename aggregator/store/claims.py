"""The claims of several pollers on one PostgreSQL database: leases on due feeds (SKIP LOCKED, a per-host cap counted across pollers), and the running passes' starts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from sqlalchemy import bindparam, text
from sqlalchemy.exc import SQLAlchemyError

from aggregator.errors import StoreError
from aggregator.models import FeedState
from aggregator.store.database import CLAIM_TURN, LOCK_CLASS, Database, short_error, take_turns
from aggregator.store.feeds import feed_state
from aggregator.store.tables import UTCDateTime

_DUE = "NOT f.gone AND (f.next_check_at IS NULL OR f.next_check_at <= :now)"
# A feed is never fetched twice in one pass (checked since :started), nor, when it is not due, again after a pass
# that was running when this one started checked it (since :round, the earliest such start): "every feed" means
# every feed once, however many pollers share the work.
_ELIGIBLE = f"""f.active AND (f.claimed_until IS NULL OR f.claimed_until <= :now)
    AND (f.last_checked_at IS NULL OR f.last_checked_at < :round
         OR (f.last_checked_at < :started AND {_DUE})) AND {{which}}"""

# The claim: due feeds not claimed by anyone, the oldest due first, at most `per_host` claimed per host across
# every poller (the claims already held count), locked with SKIP LOCKED and leased to this poller until :until.
# Only the first :scan eligible feeds are looked at, so a claim costs the same however many feeds are due.
# f.host is written in Python as links.Site.of(url).hostname, the key of the fetcher's own per-host limit.
_CLAIM = f"""
WITH held AS (
    SELECT f.host, count(*) AS n FROM feeds f WHERE f.claimed_until > :now GROUP BY f.host
), eligible AS (
    SELECT f.id, f.host, f.next_check_at FROM feeds f WHERE {_ELIGIBLE}
    ORDER BY f.next_check_at NULLS FIRST, f.id LIMIT :scan
), ranked AS (
    SELECT f.id, f.next_check_at,
           coalesce(held.n, 0) + row_number() OVER (PARTITION BY f.host ORDER BY f.next_check_at NULLS FIRST, f.id)
               AS slot
    FROM eligible f LEFT JOIN held ON held.host = f.host
), chosen AS (
    SELECT id FROM ranked WHERE slot <= :per_host ORDER BY next_check_at NULLS FIRST, id LIMIT :room
)
UPDATE feeds SET claimed_by = :worker, claimed_until = :until
WHERE id IN (SELECT f.id FROM feeds f WHERE f.id IN (SELECT id FROM chosen) FOR UPDATE SKIP LOCKED)
RETURNING id, name, url, etag, last_modified, error_count, interval, body_sha256, next_check_at
"""
_WAITING = f"SELECT EXISTS (SELECT 1 FROM feeds f WHERE {_ELIGIBLE})"
# A running pass holds a shared session advisory lock (PASS_CLASS, its start in whole seconds since 1970), gone with
# its connection even on kill -9; pg_locks shows the second key as objid, an unsigned 32-bit oid (until 2106).
PASS_CLASS = LOCK_CLASS + 1
_PASS_KEY = "CAST(:a AS integer), CAST(:b AS integer)"
_EARLIEST_PASS = text("""SELECT min(objid::text::bigint) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2
    AND classid = CAST(:a AS oid) AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())""")
_RELEASE = text("UPDATE feeds SET claimed_by = NULL, claimed_until = NULL "
                "WHERE id IN :ids AND claimed_by = :worker").bindparams(bindparam("ids", expanding=True))


def _statement(sql: str, names: Sequence[str], everything: bool) -> str:
    which = "f.name IN :names" if names else "NOT f.gone" if everything else _DUE
    return sql.replace("{which}", which)


class FeedClaims(Database):
    """Leases on due feeds, for pollers sharing one PostgreSQL database."""

    def join_passes(self, started: datetime) -> tuple[datetime, Callable[[], None]]:
        """Mark a pass that started at `started` as running until the returned function is called (or its
        process ends), and say when the earliest pass running now started (`started` when none did before it).
        Without PostgreSQL (one pass at a time) nothing is marked."""
        if self.engine.dialect.name != "postgresql":
            return started, lambda: None
        second = int(started.timestamp())
        key = {"a": PASS_CLASS, "b": second - 2**32 if second >= 2**31 else second}
        try:
            conn = self.engine.connect()
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {short_error(exc)}") from None
        try:
            take_turns(conn, CLAIM_TURN)  # a pass joining and a claim never interleave
            earliest = conn.scalar(_EARLIEST_PASS, key)
            conn.execute(text(f"SELECT pg_advisory_lock_shared({_PASS_KEY})"), key)
            conn.commit()
        except SQLAlchemyError as exc:
            conn.invalidate()
            raise StoreError(f"{self.where}: {short_error(exc)}") from None

        def leave() -> None:
            try:
                conn.execute(text(f"SELECT pg_advisory_unlock_shared({_PASS_KEY})"), key)
                conn.commit()
                conn.close()
            except SQLAlchemyError:
                conn.invalidate()  # the database is gone, and the lock with it

        if earliest is None:
            return started, leave
        return min(started, datetime.fromtimestamp(earliest, timezone.utc)), leave

    def claim_feeds(self, *, worker: str, now: datetime, until: datetime, started: datetime, room: int,
                    per_host: int, names: Sequence[str] = (), everything: bool = False,
                    round_started: datetime | None = None) -> tuple[list[FeedState], bool]:
        """Claim up to `room` feeds for `worker` until `until`: due ones (every one with `everything`, the named
        ones with `names`) not fetched since `started`, nor, unless due, since `round_started` (when the
        earliest pass running as this one started began: join_passes); and, when none could be claimed, whether
        any such feed is left that the per-host cap keeps back for now. Claims take turns under a transaction
        advisory lock, so the cap counts exactly."""
        binds = [bindparam("now", type_=UTCDateTime()), bindparam("started", type_=UTCDateTime()),
                 bindparam("round", type_=UTCDateTime()), *([bindparam("names", expanding=True)] if names else [])]
        claim_sql = text(_statement(_CLAIM, names, everything)).bindparams(*binds, bindparam("until", type_=UTCDateTime()))
        waiting_sql = text(_statement(_WAITING, names, everything)).bindparams(*binds)
        values = dict(worker=worker, now=now, until=until, started=started, round=min(round_started or started, started),
                      room=room, per_host=per_host,
                      scan=max(4 * room, 64), **({"names": list(names)} if names else {}))
        with self.transaction() as s:
            take_turns(s, CLAIM_TURN)
            rows = list(s.execute(claim_sql, values))
            waiting = not rows and bool(s.scalar(waiting_sql, values))  # asked only when it matters
        rows.sort(key=lambda r: (r.next_check_at is not None, r.next_check_at or now, r.id))
        return [feed_state(row) for row in rows], waiting

    def release_claims(self, worker: str, ids: Sequence[int]) -> None:
        """Give back the claims `worker` still holds on these feeds (fetched or not), so others may take them now."""
        if ids:
            try:
                with self.engine.begin() as conn:
                    conn.execute(_RELEASE, {"ids": list(ids), "worker": worker})
            except SQLAlchemyError:
                pass  # the database is gone: the leases run out by themselves
