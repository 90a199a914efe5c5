"""One polling pass's share of the due feeds on PostgreSQL: claimed a few at a time as the pass has room, none fetched in another pass running as it started."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from aggregator.models import FeedState
from aggregator.store import PollingStore


class Claims:
    """The feeds one pass claims from a shared database (run_pass's `more`), and gives back when it ends."""

    def __init__(self, store: PollingStore, *, worker: str, clock: Callable[[], datetime], lease: int, per_host: int,
                 names: Sequence[str] = (), everything: bool = False) -> None:
        self.store, self.worker, self.clock = store, worker, clock
        self.lease, self.per_host = timedelta(seconds=lease), per_host
        self.names, self.everything = tuple(names), everything
        self.started = clock()
        # Another pass running now may have fetched some feeds already: `--all` leaves those to it unless due.
        earliest, self._leave = store.join_passes(self.started)
        self.round_started = earliest if everything and not names else self.started
        self.waiting = False  # feeds are left that the per-host cap keeps back for now
        self.taken: list[int] = []

    def take(self, room: int) -> list[FeedState]:
        now = self.clock()
        feeds, self.waiting = self.store.claim_feeds(worker=self.worker, now=now, until=now + self.lease,
                                                     started=self.started, room=room, per_host=self.per_host,
                                                     names=self.names, everything=self.everything,
                                                     round_started=self.round_started)
        self.taken += [feed.id for feed in feeds]
        return feeds

    def release(self) -> None:
        """Give back what was claimed and not recorded (a stop, an error): recorded feeds are released already;
        and end this pass's mark as running."""
        try:
            self.store.release_claims(self.worker, self.taken)
        finally:
            self._leave()
