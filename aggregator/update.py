"""One polling pass over the due feeds (fetch -> parse -> store) and the rule for when to poll next."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator.errors import ParseError
from aggregator.fetch import Fetcher
from aggregator.models import FeedOutcome, FeedState, FetchResult, PassSummary
from aggregator.parse import parse_feed
from aggregator.store import Store

Clock = Callable[[], datetime]
Progress = Callable[[FeedOutcome], None]

RETRY_AFTER_CAP = timedelta(days=7)  # a server may ask us to wait; not for longer than this


@dataclass(frozen=True)
class Schedule:
    """When feeds are polled."""

    interval: int = 3600  # seconds between polls of a healthy feed (feeds.yaml may override per feed)
    max_backoff: int = 86400  # longest wait between retries of a failing feed
    concurrency: int = 8  # feeds fetched at once


def next_check(now: datetime, *, interval: int, errors: int, max_backoff: int,
               retry_after: datetime | None = None) -> datetime:
    """The next poll time: the interval when healthy, doubling per consecutive error up to max_backoff,
    and never before a server's Retry-After (itself capped at a week)."""
    if errors <= 0:
        wait_s = interval
    else:
        wait_s = min(interval * 2 ** min(errors - 1, 30), max(max_backoff, interval))
    when = now + timedelta(seconds=wait_s)
    if retry_after is not None:
        when = max(when, min(retry_after, now + RETRY_AFTER_CAP))
    return when


def _apply(store: Store, feed: FeedState, result: FetchResult, schedule: Schedule, now: datetime) -> FeedOutcome:
    """Parse a fetch result and record it with its posts; one transaction per feed."""
    interval = feed.interval or schedule.interval
    error, posts, title, warning = result.error, (), None, None
    if error is None and result.body is not None:
        try:
            parsed = parse_feed(result.body, url=result.url, content_type=result.content_type)
            posts, title, warning = parsed.posts, parsed.title, parsed.warning
        except ParseError as exc:
            error = str(exc)
    errors = feed.error_count + 1 if error else 0
    when = next_check(now, interval=interval, errors=errors, max_backoff=schedule.max_backoff,
                      retry_after=result.retry_after)
    new = store.record_fetch(feed, result, posts, now=now, next_check=when, error=error, title=title)
    if result.gone:
        return FeedOutcome(feed.name, "gone", 0, error)
    if error:
        return FeedOutcome(feed.name, "error", 0, error)
    if result.status == 304:
        return FeedOutcome(feed.name, "not_modified", 0, None)
    return FeedOutcome(feed.name, "ok", new, warning)


def run_pass(
    store: Store,
    fetcher: Fetcher,
    feeds: Sequence[FeedState],
    *,
    clock: Clock,
    schedule: Schedule | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> PassSummary:
    """Fetch the given feeds concurrently, then parse and store each as it arrives.

    One broken feed never stops the others: its error is recorded on its row. When `stop` (by default
    the fetcher's own event) is set, feeds not yet fetched are left for the next pass and in-flight
    ones are abandoned unrecorded; everything already stored stays committed.
    """
    schedule = schedule or Schedule()
    stop = stop or fetcher.stop  # the fetcher watches the same event while reading bodies
    outcomes: list[FeedOutcome] = []
    with ThreadPoolExecutor(max_workers=schedule.concurrency, thread_name_prefix="fetch") as pool:
        pending: dict[Future[FetchResult], FeedState] = {}
        queue = deque(feeds)
        try:
            while (queue or pending) and not stop.is_set():
                while queue and len(pending) < schedule.concurrency * 2:
                    feed = queue.popleft()
                    pending[pool.submit(fetcher.fetch, feed, clock())] = feed
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    feed = pending.pop(future)
                    if stop.is_set():
                        break
                    outcome = _apply(store, feed, future.result(), schedule, clock())
                    outcomes.append(outcome)
                    if progress:
                        progress(outcome)
        finally:
            for future in pending:
                future.cancel()
    return PassSummary(tuple(outcomes))
