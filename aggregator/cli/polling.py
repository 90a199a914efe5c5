"""The polling commands: init (the database), fetch (one pass, for cron) and run (the daemon)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from aggregator.cli.common import reports_errors, rich_console, runtime, say, warn
from aggregator.errors import BusyError
from aggregator.models import FeedOutcome, PassSummary
from aggregator.runtime import Runtime


WorkerIdOption = Annotated[str | None, typer.Option("--worker-id", help="This poller's name in logs and in `aggregator feeds` (default: host name and process id).", show_default=False)]


def _summary_line(summary: PassSummary) -> str:
    return (f"{len(summary.outcomes)} feeds: {summary.count('ok')} ok, {summary.count('not_modified')} not modified, "
            f"{summary.count('error') + summary.count('gone')} failed; {summary.new_posts} new posts")


def _poll(ctx: typer.Context, rt: Runtime, names: list[str], everything: bool, wait: float = 0.0) -> PassSummary:
    def report(outcome: FeedOutcome) -> None:
        if outcome.status in ("error", "gone"):
            warn(f"{outcome.feed}: {outcome.message}")
        elif outcome.message and not ctx.obj.quiet:
            warn(f"{outcome.feed}: warning: {outcome.message}")

    if not ctx.obj.interactive:
        return rt.poll(names=names, everything=everything, wait=wait, progress=report)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("fetching"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=rich_console(), transient=True) as bar:
        task = bar.add_task("feeds", total=None)

        def tick(outcome: FeedOutcome) -> None:
            report(outcome)
            bar.advance(task)

        return rt.poll(names=names, everything=everything, wait=wait, progress=tick,
                       on_start=lambda n: bar.update(task, total=n))


@reports_errors
def init(ctx: typer.Context) -> None:
    """Create or upgrade the database and register the feeds of feeds.yaml."""
    with runtime(ctx) as rt:
        store = rt.polling_store  # opening migrates and syncs the feeds
        say(f"database ready: {store.where} ({len(store.feed_names())} feeds)")


@reports_errors
def fetch(
    ctx: typer.Context,
    feed: Annotated[list[str] | None, typer.Option("--feed", help="Poll only this feed (by name); repeatable.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Poll every feed, due or not.")] = False,
    wait: Annotated[float, typer.Option("--wait", min=0.0, help="SQLite: if another pass is running on the database, wait up to this many seconds for it (default: exit at once with an error). PostgreSQL: passes share the feeds and never wait.")] = 0.0,
    worker_id: WorkerIdOption = None,
) -> None:
    """One polling pass over the feeds that are due: for cron. Exit 0 even when some feeds fail."""
    with runtime(ctx, worker_id) as rt:
        summary = _poll(ctx, rt, feed or [], everything, wait)
        say(_summary_line(summary))


@reports_errors
def run(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Poll the due feeds once, write the current drafts, and exit.")] = False,
    digest: Annotated[str | None, typer.Option("--digest", help="Refresh only this digest's drafts (default: every digest's).", show_default=False)] = None,
    worker_id: WorkerIdOption = None,
) -> None:
    """The daemon: poll due feeds every tick and keep every digest's current draft fresh, until SIGINT/SIGTERM."""
    with runtime(ctx, worker_id) as rt:
        only = rt.config.digest(digest).name if digest is not None else None
        if once:
            summary = _poll(ctx, rt, [], False)
            say(_summary_line(summary))
            for message in rt.refresh_drafts(only=only):
                say(message)
            return
        from aggregator.scheduler import Job, run_daemon

        log = logging.getLogger("aggregator")

        def poll_job() -> None:
            try:
                summary = rt.poll(progress=lambda o: log.warning("%s: %s: %s", rt.worker_id, o.feed, o.message) if o.status in ("error", "gone") else None)
            except BusyError as exc:  # a cron or hand-started pass is running: skip this tick
                log.warning("%s: %s", rt.worker_id, exc)
                return
            if summary.outcomes:
                log.info("%s: %s", rt.worker_id, _summary_line(summary))

        def draft_job() -> None:
            for message in rt.refresh_drafts(only=only):
                log.info("%s: %s", rt.worker_id, message)

        store = rt.store  # fail fast on a bad database, before the scheduler starts
        log.info("daemon %s started on %s: tick every %ss, drafts every %ss", rt.worker_id, store.where,
                 rt.config.defaults.tick, rt.config.draft.refresh)
        run_daemon([Job("poll", rt.config.defaults.tick, poll_job), Job("draft", rt.config.draft.refresh, draft_job)], rt.stop)
