"""One polling pass over the due feeds (fetch -> parse -> store) and the rule for when to poll next."""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from aggregator.errors import ParseError
from aggregator.poll.fetch import Fetcher
from aggregator.models import FeedOutcome, FeedState, FetchResult, ParsedFeed, PassSummary
from aggregator.store.feeds import Check, Fetched
from aggregator.store import PollingStore
from aggregator.poll.fingerprints import Known
from aggregator.poll.fingerprints import load as load_fingerprints
from aggregator.poll.workers import can_fork, forked_parser_pool, parser_pool

Clock = Callable[[], datetime]
Progress = Callable[[FeedOutcome], None]

RETRY_AFTER_CAP = timedelta(days=7)  # a server may ask us to wait; not for longer than this
RATE_LIMIT_CAP = 4 * 3600  # a 429 without Retry-After backs off on its own, shorter cap (seconds)
# When parse workers pay (benchmarks/bench_workers.py, 2 cores): a body takes about 5.5 ms of CPU to parse
# here. Two workers forked from this process answer within about 0.07 s for 0.02 s of CPU; two from a forkserver
# (the only safe way once fetch threads run) within 0.3 to 0.6 s for 0.15 s of CPU, the server included. Either
# adds about 38 MiB (PSS).
FORK_WORKERS_FROM = 32  # feeds never parsed before (cold) in a pass's first list: fork workers before fetching
PARSE_HERE_FIRST = 128  # bodies parsed here before a forkserver's workers take the rest: its start costs as much
# time as 60 to 90 parses, so a pass with a hundred changed bodies (5% of 2,000 feeds) parses them all here
CHECKS_PER_WRITE = 100  # unchanged feeds recorded per transaction
FETCHES_PER_WRITE = 20  # feeds with new bodies or errors recorded per transaction
SUBMITTED_PER_THREAD = 2  # fetches handed to the thread pool per fetch thread: one running, one waiting, so the
# threads go on while this thread parses or writes (a 500-feed pass with 25 changed bodies: 1.04 s -> 0.99 s)


class FeedSource(Protocol):
    """Where a pass gets more feeds while it runs (claims.Claims on PostgreSQL)."""

    waiting: bool  # feeds are left that cannot be taken yet (their hosts are busy): ask again shortly

    def take(self, room: int) -> list[FeedState]: ...


@dataclass(frozen=True)
class Schedule:
    """When feeds are polled, and how much of the machine a pass uses."""

    interval: int = 3600  # seconds between polls of a healthy feed (feeds.yaml may override per feed)
    max_backoff: int = 86400  # longest wait between retries of a failing feed
    concurrency: int = 64  # feeds fetched at once
    parse_workers: int = field(default_factory=lambda: os.cpu_count() or 1)  # processes parsing; 1 = in this one


def next_check(now: datetime, *, interval: int, errors: int, max_backoff: int,
               retry_after: datetime | None = None, rate_limited: bool = False) -> datetime:
    """The next poll time: the interval when healthy, doubling per consecutive error up to max_backoff
    (RATE_LIMIT_CAP for a 429), and never before a server's Retry-After (itself capped at a week)."""
    cap = min(max_backoff, RATE_LIMIT_CAP) if rate_limited else max_backoff
    if errors <= 0:
        wait_s = interval
    else:
        wait_s = min(interval * 2 ** min(errors - 1, 30), max(cap, interval))
    when = now + timedelta(seconds=wait_s)
    if retry_after is not None:
        when = max(when, min(retry_after, now + RETRY_AFTER_CAP))
    return when


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _new_body(feed: FeedState, result: FetchResult) -> str | None:
    """The SHA-256 of a body that differs from the last one parsed (servers without conditional GET resend
    it); None for no body or the same one."""
    if result.error is not None or result.body is None:
        return None
    digest = body_sha256(result.body)
    return digest if digest != feed.body_sha256 else None


def _when(feed: FeedState, result: FetchResult, error: str | None, schedule: Schedule, now: datetime) -> datetime:
    errors = feed.error_count + 1 if error else 0
    return next_check(now, interval=feed.interval or schedule.interval, errors=errors,
                      max_backoff=schedule.max_backoff, retry_after=result.retry_after,
                      rate_limited=result.status == 429)


def _fetched(feed: FeedState, result: FetchResult, parsed: ParsedFeed | ParseError | None, digest: str | None,
             schedule: Schedule, now: datetime) -> tuple[Fetched, str | None]:
    """What to record of a failed fetch (parsed is None) or a parsed body, and the parser's warning."""
    error, posts, title, warning, prints = result.error, (), None, None, None
    if isinstance(parsed, ParseError):
        error, digest = str(parsed), None
    elif parsed is not None:
        posts, title, warning, prints = parsed.posts, parsed.title, parsed.warning, parsed.fingerprints
    fetched = Fetched(feed, result, posts, _when(feed, result, error, schedule, now), error, title, digest, now,
                      prints)
    return fetched, warning


def _outcome(fetched: Fetched, new: int, warning: str | None) -> FeedOutcome:
    if fetched.result.gone:
        return FeedOutcome(fetched.feed.name, "gone", 0, fetched.error)
    if fetched.error:
        return FeedOutcome(fetched.feed.name, "error", 0, fetched.error)
    return FeedOutcome(fetched.feed.name, "ok", new, warning)


def expected_bodies(feeds: Sequence[FeedState] | deque[FeedState]) -> int:
    """How many of these feeds will surely bring a body to parse: those never parsed before."""
    return sum(1 for feed in feeds if feed.body_sha256 is None)


def _parse_here(result: FetchResult, known: Known) -> ParsedFeed | ParseError:
    from aggregator.poll.parse import parse_feed  # imported when a body changed: a pass of 304s never needs it

    try:
        return parse_feed(result.body or b"", url=result.url, content_type=result.content_type, known=known)
    except ParseError as exc:
        return exc


def _fetch_now(fetcher: Fetcher, feed: FeedState, clock: Clock) -> FetchResult:
    """Fetch with the time the request starts (a fetch may wait in the pool's queue behind another)."""
    return fetcher.fetch(feed, clock())


def _fewer_malloc_arenas() -> None:
    """glibc gives every thread that allocates its own malloc arena, each keeping freed memory: about 7 MiB
    over 32 fetch threads. Threads that mostly wait on sockets need only two (no-op off glibc)."""
    try:
        ctypes.CDLL(None).mallopt(-8, 2)  # -8 is M_ARENA_MAX in glibc's malloc.h
    except (OSError, AttributeError):
        pass


class _Pass:
    """One pass's moving parts, stage by stage: feeds queued, fetches in flight (threads), parses in flight
    (processes), and what is done but not yet written. Every method runs on the pass's own thread."""

    def __init__(self, store: PollingStore, fetcher: Fetcher, feeds: Sequence[FeedState], *, clock: Clock,
                 schedule: Schedule, stop: threading.Event, progress: Progress | None, more: FeedSource | None) -> None:
        self.store, self.fetcher, self.clock, self.schedule = store, fetcher, clock, schedule
        self.stop, self.progress, self.more = stop, progress, more
        self.queue = deque(feeds)
        self.fetching: dict[Future[FetchResult], FeedState] = {}
        self.parsing: dict[Future[ParsedFeed], tuple[FeedState, FetchResult, str]] = {}
        self.pool: ProcessPoolExecutor | None = None
        self.forked = False  # the pool's workers were forked from this process
        self.parsed_here = 0
        self.unchanged: list[Check] = []  # 304s and bodies seen before: written together, in one transaction
        self.changed: list[tuple[Fetched, str | None]] = []  # new bodies and errors: likewise, a few feeds at a time
        self.outcomes: list[FeedOutcome] = []
        self.entries_read = self.entries_unchanged = 0  # of the bodies parsed: entries read in full, and left as they were

    # -- stage 1: take feeds ---------------------------------------------------------------

    def refill(self) -> None:
        """Take more feeds from `more` when there is room; forget `more` once it has none left for this pass."""
        if self.more is None:
            return
        concurrency = self.schedule.concurrency
        if len(self.queue) + len(self.fetching) <= concurrency and len(self.parsing) < 4 * self.schedule.parse_workers:
            self.flush()
            taken = self.more.take(concurrency * 3 // 2 - len(self.queue) - len(self.fetching))
            self.queue.extend(taken)
            if not taken and not self.more.waiting:
                self.more = None
                return
        if not self.busy():
            self.stop.wait(0.2)  # every feed left is on a host at its limit: ask again shortly

    def busy(self) -> bool:
        return bool(self.queue or self.fetching or self.parsing)

    # -- stage 2: fetch (threads) ----------------------------------------------------------

    def submit_fetches(self, threads: ThreadPoolExecutor) -> None:
        # With parse workers, a fetch's body may wait for them in this process: fetches and parses in flight
        # together are held to `concurrency`, so that a cold pass holds that many bodies at most, not twice as many
        held = len(self.fetching) + len(self.parsing) if self.pool is not None else len(self.fetching)
        room = self.schedule.concurrency if self.pool is not None else SUBMITTED_PER_THREAD * self.schedule.concurrency
        while (self.queue and held < room and len(self.parsing) < 4 * self.schedule.parse_workers):
            held += 1
            feed = self.queue.popleft()
            self.fetching[threads.submit(_fetch_now, self.fetcher, feed, self.clock)] = feed

    def wait(self) -> set[Future[Any]]:
        """The fetches and parses done within half a second (none when nothing finished)."""
        done, _ = wait([*self.fetching, *self.parsing], timeout=0.5, return_when=FIRST_COMPLETED)
        return done

    # -- stage 3: parse (here, or in worker processes) -------------------------------------

    def fork_workers(self) -> None:
        """Before the first fetch: fork the parse workers from this process when the pass will parse many bodies
        (feeds never parsed before) and forking is safe; otherwise bodies are parsed here until there are many."""
        if (self.schedule.parse_workers > 1 and expected_bodies(self.queue) >= FORK_WORKERS_FROM and can_fork()):
            try:
                self.pool, self.forked = forked_parser_pool(self.schedule.parse_workers), True
            except (BrokenProcessPool, OSError):  # no workers: parse here, as with one core
                self.schedule = replace(self.schedule, parse_workers=1)

    def fetched(self, future: Future[FetchResult]) -> None:
        """A fetch came back: record it as unchanged, parse it here, or hand it to the parse workers."""
        feed, result = self.fetching.pop(future), future.result()
        digest = _new_body(feed, result)
        if digest is None:
            self.finish(feed, result, None)
            return
        known = self.known(feed)
        if self.pool is None and (self.schedule.parse_workers <= 1 or self.parsed_here < PARSE_HERE_FIRST):
            self.parsed_here += 1
            self.finish(feed, result, _parse_here(result, known), digest)
        else:
            try:
                from aggregator.poll.parse import parse_feed

                self.pool = self.pool or parser_pool(self.schedule.parse_workers)
                self.parsing[self.pool.submit(parse_feed, result.body, url=result.url, content_type=result.content_type,
                                              known=known)] = (feed, result, digest)
            except (BrokenProcessPool, OSError):  # no workers: parse here, as with one core
                self.schedule = replace(self.schedule, parse_workers=1)
                self.finish(feed, result, _parse_here(result, known), digest)

    def known(self, feed: FeedState) -> Known:
        """The fingerprints of the entries of the feed's last body (none for a feed never parsed: no query)."""
        if feed.body_sha256 is None:
            return {}
        return load_fingerprints(self.store.entry_fingerprints(feed.id))

    def parsed(self, future: Future[ParsedFeed]) -> None:
        feed, result, digest = self.parsing.pop(future)
        try:
            parsed: ParsedFeed | ParseError = future.result()
        except ParseError as exc:
            parsed = exc
        except Exception as exc:  # a parser process died (out of memory, say)
            parsed = ParseError(f"the parser failed: {type(exc).__name__}: {exc}")
        self.finish(feed, result, parsed, digest)

    # -- stage 4: write (this thread, in batches) ------------------------------------------

    def finish(self, feed: FeedState, result: FetchResult, parsed: ParsedFeed | ParseError | None,
               digest: str | None = None) -> None:
        now = self.clock()
        if isinstance(parsed, ParsedFeed):
            self.entries_read += parsed.read
            self.entries_unchanged += parsed.unchanged
        if parsed is None and result.error is None:  # a 304, or a body seen before
            self.unchanged.append(Check(feed, result, _when(feed, result, None, self.schedule, now), now))
        else:
            self.changed.append(_fetched(feed, result, parsed, digest, self.schedule, now))
        if len(self.unchanged) >= CHECKS_PER_WRITE or len(self.changed) >= FETCHES_PER_WRITE:
            self.flush()

    def flush(self) -> None:
        if self.changed:
            news = self.store.record_fetches([fetched for fetched, _ in self.changed], now=self.clock())
            for (fetched, warning), new in zip(self.changed, news):
                self.report(_outcome(fetched, new, warning))
            self.changed.clear()
        if self.unchanged:
            self.store.record_checks(self.unchanged, now=self.clock())
            for check in self.unchanged:
                self.report(FeedOutcome(check.feed.name, "not_modified"))
            self.unchanged.clear()

    def report(self, outcome: FeedOutcome) -> None:
        self.outcomes.append(outcome)
        if self.progress:
            self.progress(outcome)

    def abandon(self) -> None:
        """Cancel what is in flight (a stop, an error) and end the parse workers."""
        for future in [*self.fetching, *self.parsing]:
            future.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def run_pass(
    store: PollingStore,
    fetcher: Fetcher,
    feeds: Sequence[FeedState],
    *,
    clock: Clock,
    schedule: Schedule | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    more: FeedSource | None = None,
) -> PassSummary:
    """Fetch the given feeds concurrently (threads), parse new bodies on every core (processes, once
    more than a few bodies changed), and store each feed as its result arrives (this thread: one writer).
    With `more`, feeds are also taken from it whenever no more than `concurrency` are queued or in flight
    (up to half as many again, so that the fetch slots stay full), what is done being recorded first
    (which ends its claims), until it has none left.

    One broken feed never stops the others: its error is recorded on its row. When `stop` (by default
    the fetcher's own event) is set, feeds not yet fetched are left for the next pass and in-flight
    ones are abandoned unrecorded; everything already stored stays committed. `clock` is read by the
    fetch threads too (each request's own start time).
    """
    stop = stop or fetcher.stop  # the fetcher watches the same event while reading bodies
    run = _Pass(store, fetcher, feeds, clock=clock, schedule=schedule or Schedule(), stop=stop, progress=progress,
                more=more)
    run.fork_workers()  # before _fewer_malloc_arenas and the fetch threads: the workers inherit neither
    _fewer_malloc_arenas()
    with ThreadPoolExecutor(max_workers=run.schedule.concurrency, thread_name_prefix="fetch") as threads:
        try:
            while not stop.is_set():
                run.refill()
                if not run.busy():
                    if run.more is None:
                        break
                    continue
                run.submit_fetches(threads)
                for future in run.wait():
                    if stop.is_set():
                        break
                    if future in run.fetching:
                        run.fetched(future)
                    else:
                        run.parsed(future)
                if not run.fetching and not run.parsing:
                    run.flush()  # a quiet moment, or the end: the progress shows these feeds now
        finally:
            run.abandon()
        run.flush()  # what completed before a stop is still recorded
    workers = run.schedule.parse_workers if run.pool is not None else 0
    return PassSummary(tuple(run.outcomes), parse_workers=workers, parse_workers_forked=run.forked,
                       entries_read=run.entries_read, entries_unchanged=run.entries_unchanged)
