"""The daemon's clock: decides when the jobs run (APScheduler), and stops them cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("aggregator.scheduler")


@dataclass(frozen=True)
class Job:
    """A callable run every `every` seconds, first at start-up."""

    name: str
    every: int
    run: Callable[[], None]


def _guarded(job: Job) -> Callable[[], None]:
    def call() -> None:
        try:
            job.run()
        except Exception:  # a bug in one tick must not kill the daemon; it is logged in full
            log.exception("job %s failed", job.name)

    return call


def run_daemon(jobs: Sequence[Job], stop: threading.Event, *, install_signals: bool = True) -> None:
    """Run the jobs on their intervals until `stop` is set (by SIGINT/SIGTERM or the caller).

    Each job runs at most once at a time; missed runs are coalesced into one. On stop, running jobs
    see the same event and wind down; this returns when they have.
    """
    scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={"coalesce": True, "max_instances": 1})
    now = datetime.now(timezone.utc)
    for job in jobs:
        scheduler.add_job(_guarded(job), "interval", seconds=job.every, id=job.name, name=job.name,
                          next_run_time=now, misfire_grace_time=None)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping after in-flight work", signal.Signals(signum).name)
        stop.set()

    previous = {}
    if install_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    scheduler.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        scheduler.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")
