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
from typing import Protocol

from aggregator.errors import ParseError
from aggregator.poll.fetch import Fetcher
from aggregator.models import FeedOutcome, FeedState, FetchResult, ParsedFeed, PassSummary
from aggregator.store.feeds import Check, Fetched
from aggregator.store import Store
from aggregator.poll.workers import parser_pool

Clock = Callable[[], datetime]
Progress = Callable[[FeedOutcome], None]

RETRY_AFTER_CAP = timedelta(days=7)  # a server may ask us to wait; not for longer than this
RATE_LIMIT_CAP = 4 * 3600  # a 429 without Retry-After backs off on its own, shorter cap (seconds)
PARSE_HERE_FIRST = 32  # changed bodies parsed here (~6 ms each) before worker processes (~0.3 s to start) pay
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
    error, posts, title, warning = result.error, (), None, None
    if isinstance(parsed, ParseError):
        error, digest = str(parsed), None
    elif parsed is not None:
        posts, title, warning = parsed.posts, parsed.title, parsed.warning
    fetched = Fetched(feed, result, posts, _when(feed, result, error, schedule, now), error, title, digest, now)
    return fetched, warning


def _outcome(fetched: Fetched, new: int, warning: str | None) -> FeedOutcome:
    if fetched.result.gone:
        return FeedOutcome(fetched.feed.name, "gone", 0, fetched.error)
    if fetched.error:
        return FeedOutcome(fetched.feed.name, "error", 0, fetched.error)
    return FeedOutcome(fetched.feed.name, "ok", new, warning)


def _parse_here(result: FetchResult) -> ParsedFeed | ParseError:
    from aggregator.poll.parse import parse_feed  # imported when a body changed: a pass of 304s never needs it

    try:
        return parse_feed(result.body or b"", url=result.url, content_type=result.content_type)
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


def run_pass(
    store: Store,
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
    schedule = schedule or Schedule()
    stop = stop or fetcher.stop  # the fetcher watches the same event while reading bodies
    outcomes: list[FeedOutcome] = []
    queue = deque(feeds)
    fetching: dict[Future[FetchResult], FeedState] = {}
    parsing: dict[Future[ParsedFeed], tuple[FeedState, FetchResult, str]] = {}
    pool: ProcessPoolExecutor | None = None
    parsed_here = 0

    unchanged: list[Check] = []  # 304s and bodies seen before: written together, in one transaction
    changed: list[tuple[Fetched, str | None]] = []  # new bodies and errors: likewise, a few feeds at a time

    def finish(feed: FeedState, result: FetchResult, parsed: ParsedFeed | ParseError | None,
               digest: str | None = None) -> None:
        now = clock()
        if parsed is None and result.error is None:  # a 304, or a body seen before
            unchanged.append(Check(feed, result, _when(feed, result, None, schedule, now), now))
        else:
            changed.append(_fetched(feed, result, parsed, digest, schedule, now))
        if len(unchanged) >= CHECKS_PER_WRITE or len(changed) >= FETCHES_PER_WRITE:
            flush()

    def flush() -> None:
        if changed:
            news = store.record_fetches([fetched for fetched, _ in changed], now=clock())
            for (fetched, warning), new in zip(changed, news):
                report(_outcome(fetched, new, warning))
            changed.clear()
        if unchanged:
            store.record_checks(unchanged, now=clock())
            for check in unchanged:
                report(FeedOutcome(check.feed.name, "not_modified"))
            unchanged.clear()

    def report(outcome: FeedOutcome) -> None:
        outcomes.append(outcome)
        if progress:
            progress(outcome)

    def refill() -> bool:
        """Take more feeds from `more` when there is room; False once it has none left for this pass."""
        if more is None:
            return False
        if len(queue) + len(fetching) <= schedule.concurrency and len(parsing) < 4 * schedule.parse_workers:
            flush()
            taken = more.take(schedule.concurrency * 3 // 2 - len(queue) - len(fetching))
            queue.extend(taken)
            if not taken and not more.waiting:
                return False
        if not (queue or fetching or parsing):
            stop.wait(0.2)  # every feed left is on a host at its limit: ask again shortly
        return True

    _fewer_malloc_arenas()
    with ThreadPoolExecutor(max_workers=schedule.concurrency, thread_name_prefix="fetch") as threads:
        try:
            while not stop.is_set():
                if not refill():
                    more = None
                if not (queue or fetching or parsing):
                    if more is None:
                        break
                    continue
                while (queue and len(fetching) < SUBMITTED_PER_THREAD * schedule.concurrency
                       and len(parsing) < 4 * schedule.parse_workers):
                    feed = queue.popleft()
                    fetching[threads.submit(_fetch_now, fetcher, feed, clock)] = feed
                done, _ = wait([*fetching, *parsing], timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    if stop.is_set():
                        break
                    if future in fetching:
                        feed, result = fetching.pop(future), future.result()
                        digest = _new_body(feed, result)
                        if digest is None:
                            finish(feed, result, None)
                        elif schedule.parse_workers <= 1 or parsed_here < PARSE_HERE_FIRST:
                            parsed_here += 1
                            finish(feed, result, _parse_here(result), digest)
                        else:
                            try:
                                from aggregator.poll.parse import parse_feed

                                pool = pool or parser_pool(schedule.parse_workers)
                                parsing[pool.submit(parse_feed, result.body, url=result.url,
                                                    content_type=result.content_type)] = (feed, result, digest)
                            except (BrokenProcessPool, OSError):  # no workers: parse here, as with one core
                                schedule = replace(schedule, parse_workers=1)
                                finish(feed, result, _parse_here(result), digest)
                    else:
                        feed, result, digest = parsing.pop(future)
                        try:
                            parsed: ParsedFeed | ParseError = future.result()
                        except ParseError as exc:
                            parsed = exc
                        except Exception as exc:  # a parser process died (out of memory, say)
                            parsed = ParseError(f"the parser failed: {type(exc).__name__}: {exc}")
                        finish(feed, result, parsed, digest)
                if not fetching and not parsing:
                    flush()  # a quiet moment, or the end: the progress shows these feeds now
        finally:
            for future in [*fetching, *parsing]:
                future.cancel()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        flush()  # what completed before a stop is still recorded
    return PassSummary(tuple(outcomes))
