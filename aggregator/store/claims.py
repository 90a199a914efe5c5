"""The claims of several pollers on one PostgreSQL database: leases on due feeds (SKIP LOCKED, a per-host cap counted across pollers)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.exc import SQLAlchemyError

from aggregator.models import FeedState
from aggregator.store.database import CLAIM_TURN, Database, take_turns
from aggregator.store.feeds import feed_state
from aggregator.store.schema import UTCDateTime

_ELIGIBLE = """f.active AND (f.claimed_until IS NULL OR f.claimed_until <= :now)
    AND (f.last_checked_at IS NULL OR f.last_checked_at < :started) AND {which}"""
_DUE = "NOT f.gone AND (f.next_check_at IS NULL OR f.next_check_at <= :now)"

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
_RELEASE = text("UPDATE feeds SET claimed_by = NULL, claimed_until = NULL "
                "WHERE id IN :ids AND claimed_by = :worker").bindparams(bindparam("ids", expanding=True))


def _statement(sql: str, names: Sequence[str], everything: bool) -> str:
    which = "f.name IN :names" if names else "NOT f.gone" if everything else _DUE
    return sql.replace("{which}", which)


class FeedClaims(Database):
    """Leases on due feeds, for pollers sharing one PostgreSQL database."""

    def claim_feeds(self, *, worker: str, now: datetime, until: datetime, started: datetime, room: int,
                    per_host: int, names: Sequence[str] = (), everything: bool = False) -> tuple[list[FeedState], bool]:
        """Claim up to `room` feeds for `worker` until `until`: due ones (every one with `everything`, the named
        ones with `names`) not fetched since `started`; and, when none could be claimed, whether any such feed
        is left that the per-host cap keeps back for now. Claims take turns under a transaction advisory
        lock, so the cap counts exactly."""
        binds = [bindparam("now", type_=UTCDateTime()), bindparam("started", type_=UTCDateTime()),
                 *([bindparam("names", expanding=True)] if names else [])]
        claim_sql = text(_statement(_CLAIM, names, everything)).bindparams(*binds, bindparam("until", type_=UTCDateTime()))
        waiting_sql = text(_statement(_WAITING, names, everything)).bindparams(*binds)
        values = dict(worker=worker, now=now, until=until, started=started, room=room, per_host=per_host,
                      scan=max(4 * room, 64), **({"names": list(names)} if names else {}))
        with self.session() as s:
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
