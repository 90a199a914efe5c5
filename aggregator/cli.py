"""The `aggregator` command line: parses options, calls one job, prints the outcome."""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterator, ParamSpec, Sequence

import typer

from aggregator.config import DigestSettings, add_feeds, load_config
from aggregator.models import FeedOutcome, PassSummary, edition_bounds, month_bounds, month_of, week_bounds, week_of
from aggregator.errors import AggregatorError, BusyError, DigestError
from aggregator.opml import read_opml, write_opml
from aggregator.runtime import Runtime, utc_now
from aggregator.store.feeds import FeedHealth

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

app = typer.Typer(
    help="Poll AI/ML blogs' feeds into a database and draft the monthly digest.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
feeds_app = typer.Typer(help="Show feed health, reset a failing feed, move subscriptions in and out as OPML.")
app.add_typer(feeds_app, name="feeds")

P = ParamSpec("P")


def say(text: str) -> None:
    """One line on standard output, as written (no markup)."""
    typer.echo(text)


def warn(text: str) -> None:
    """One line on standard error, as written."""
    typer.echo(text, err=True)


def _console() -> Console:
    """rich, for the progress bar and tables only: plain lines (all that cron sees) never import it."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def _table(columns: Sequence[str], *, show_edge: bool = True, **column_options: Any) -> Table:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=show_edge)
    for name in columns:
        table.add_column(name, **column_options)
    return table


@dataclass
class Options:
    config: Path
    db: str | None
    quiet: bool

    @property
    def interactive(self) -> bool:
        return not self.quiet and sys.stdout.isatty()


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[str | None, typer.Option("--db", envvar="AGGREGATOR_DB", help="SQLAlchemy database URL (default: the SQLite file aggregator.db beside feeds.yaml).", show_default=False)] = None,
    config: Annotated[Path, typer.Option("--config", envvar="AGGREGATOR_CONFIG", help="The feeds.yaml to use.")] = Path("feeds.yaml"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the final summary; no progress.")] = False,
) -> None:
    ctx.obj = Options(config=config, db=db, quiet=quiet)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def reports_errors(command: Callable[P, None]) -> Callable[P, None]:
    """Turn library errors into one line on stderr and exit status 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except AggregatorError as exc:
            warn(f"error: {exc}")
            raise typer.Exit(1) from None

    return wrapper


@contextmanager
def runtime(ctx: typer.Context, worker_id: str | None = None) -> Iterator[Runtime]:
    opts: Options = ctx.obj
    with Runtime(load_config(opts.config), opts.db, worker_id=worker_id) as rt:
        yield rt


WorkerIdOption = Annotated[str | None, typer.Option("--worker-id", help="This poller's name in logs and in `aggregator feeds` (default: host name and process id).", show_default=False)]


def _say(ctx: typer.Context, text: str) -> None:
    if not ctx.obj.quiet:
        say(text)


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
    with Progress(*columns, console=_console(), transient=True) as bar:
        task = bar.add_task("feeds", total=None)

        def tick(outcome: FeedOutcome) -> None:
            report(outcome)
            bar.advance(task)

        return rt.poll(names=names, everything=everything, wait=wait, progress=tick,
                       on_start=lambda n: bar.update(task, total=n))


@contextmanager
def _progress(ctx: typer.Context, what: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar for long work on a terminal; nothing in cron, with --quiet or when output is piped."""
    if not ctx.obj.interactive:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=_console(),
                  transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@app.command()
@reports_errors
def init(ctx: typer.Context) -> None:
    """Create or upgrade the database and register the feeds of feeds.yaml."""
    with runtime(ctx) as rt:
        store = rt.store  # opening migrates and syncs the feeds
        say(f"database ready: {store.where} ({len(store.feed_names())} feeds)")


@app.command()
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


@app.command()
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


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "-"
    seconds = (value - now).total_seconds()
    span = abs(seconds)
    text = f"{span / 86400:.1f}d" if span >= 86400 else f"{span / 3600:.1f}h" if span >= 3600 else f"{span / 60:.0f}m"
    return f"in {text}" if seconds > 0 else f"{text} ago"


@feeds_app.callback(invoke_without_command=True)
@reports_errors
def feeds(ctx: typer.Context) -> None:
    """Each feed's health: last check, status, errors, next check, posts stored."""
    if ctx.invoked_subcommand is not None:
        return
    with runtime(ctx) as rt:
        broken_after = rt.config.defaults.broken_after
        now = rt.clock()
        table = _table(("feed", "state", "checked", "by", "status", "errors", "next check", "claim", "posts", "picks",
                        "last error"), show_edge=False, overflow="fold")
        hints = []
        for h in rt.store.feed_health():
            if not h.active:
                continue
            claim = (f"{h.claimed_by}, ends {_when(h.claimed_until, now)}"
                     if h.claimed_by and h.claimed_until and h.claimed_until > now else "-")
            table.add_row(h.name, _state(h, broken_after), _when(h.last_checked_at, now), h.last_fetched_by or "-",
                          str(h.last_status or "-"), str(h.error_count),
                          "parked (feeds reset)" if h.gone else _when(h.next_check_at, now), claim, str(h.posts),
                          str(h.picks), h.last_error or "")
            advertised = re.search(r"advertises a feed at (\S+)", h.last_error or "")
            if advertised:
                hints.append(f"{h.name}: {h.url} is a web page; use the feed it advertises instead: {advertised[1]}")
        _console().print(table)
        for hint in hints:
            say(hint)


def _state(h: FeedHealth, broken_after: int) -> str:
    """gone (410: parked until reset), rate-limited (429), broken (errors >= broken_after), failing, ok, new."""
    if h.gone:
        return "gone"
    if h.error_count and h.last_status == 429:
        return "rate-limited"
    if h.error_count >= broken_after:
        return "broken"
    return "failing" if h.error_count else "ok" if h.last_checked_at else "new"


@feeds_app.command("reset")
@reports_errors
def feeds_reset(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The feed's name in feeds.yaml.")]) -> None:
    """Clear a feed's errors and poll it at the next pass."""
    with runtime(ctx) as rt:
        if not rt.store.reset_feed(name, rt.clock()):
            raise AggregatorError(f"no feed named {name!r}")
        say(f"{name}: reset; it will be polled at the next pass")


@feeds_app.command("import-opml")
@reports_errors
def feeds_import_opml(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="An OPML file from another feed reader.")]) -> None:
    """Add the OPML file's feeds to feeds.yaml (appended; comments and order kept; known URLs skipped)."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise AggregatorError(f"{file}: cannot read: {exc.strerror or exc}") from None
    notes: list[str] = []
    added = add_feeds(ctx.obj.config, read_opml(data, path=str(file), notes=notes))
    for note in notes:
        warn(f"warning: {note}")
    say(f"added {len(added)} feeds to {ctx.obj.config}")


@feeds_app.command("export-opml")
@reports_errors
def feeds_export_opml(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--out", help="Write here instead of standard output.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """Print the subscriptions of feeds.yaml as OPML 2.0."""
    from aggregator.files import atomic_write

    config = load_config(ctx.obj.config)
    text = write_opml(config.feed_configs(), title=config.draft.title, now=utc_now())
    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write(output, text.encode("utf-8"), replace=force)
        _say(ctx, f"wrote {len(config.feeds)} feeds to {output}")


DigestOption = Annotated[str | None, typer.Option("--digest", help="Which digest of feeds.yaml (may be left out when there is one).", show_default=False)]
WeekOption = Annotated[str | None, typer.Option("--week", help="The ISO week, YYYY-Www, of a weekly digest.", show_default=False)]


def _edition(digest: DigestSettings, month: str | None, week: str | None, *, default: bool) -> str | None:
    """The edition --month or --week names, checked against the digest's cadence; this one by default."""
    if digest.cadence == "weekly":
        if month is not None:
            raise typer.BadParameter(f"digest {digest.name!r} is weekly: use --week YYYY-Www", param_hint="--month")
        if week is not None:
            try:
                week_bounds(week)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--week") from None
        return week or (week_of(utc_now()) if default else None)
    if week is not None:
        raise typer.BadParameter(f"digest {digest.name!r} is monthly: use --month YYYY-MM", param_hint="--week")
    if month is not None:
        _check_month(month)
    return month or (month_of(utc_now()) if default else None)


@app.command("import-digest")
@reports_errors
def import_digest(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Digest Markdown files: published digests or edited drafts.")],
    month: Annotated[str | None, typer.Option("--month", help="The month the digest is for, YYYY-MM (default: from the file name or its entries).", show_default=False)] = None,
    week: WeekOption = None,
    style: Annotated[str | None, typer.Option("--style", help="house, footnote or weekly (default: the digest's, else detected).", show_default=False)] = None,
    digest: DigestOption = None,
) -> None:
    """Read past digests (or edited drafts) as the editor's decisions: what was kept, moved, added, removed."""
    from aggregator.learn.jobs import import_digest_file, scope_of

    if style not in (None, "house", "footnote", "weekly"):
        raise typer.BadParameter("must be house, footnote or weekly", param_hint="--style")
    with runtime(ctx) as rt:
        settings = rt.config.digest(digest)
        _edition(settings, month, week, default=False)
        style = style or (settings.style if rt.config.digests else None)
        failed = []
        for file in files:  # each file is imported whole or not at all, and reported on its own line
            try:
                report = import_digest_file(rt.store, file, month=month, style=style, now=rt.clock(),  # type: ignore[arg-type]
                                            scope=scope_of(rt.config, settings), week=week)
            except DigestError as exc:
                warn(f"error: {exc}")
                failed.append(str(file))
                continue
            if report.unchanged:
                say(f"{file}: {report.month}: unchanged ({report.entries} entries)")
            else:
                say(f"{file}: {report.month}: {report.entries} entries; {report.added} added, {report.moved} moved, "
                    f"{report.removed} removed; {report.new_posts} posts known only from the digest")
            if report.truncated:
                warn(f"{file}: warning: {report.truncated} entries had a title, source, heading or summary cut to "
                     "the limits (README, Limits)")
        if failed:
            warn(f"{len(files) - len(failed)} of {len(files)} files imported; not imported: {', '.join(failed)}")
            raise typer.Exit(1)


@app.command("import-history")
@reports_errors
def import_history(
    ctx: typer.Context,
    repo: Annotated[Path, typer.Argument(help="A local git repository holding the editor's running digest.")],
    file: Annotated[str, typer.Option("--file", help="The digest's path inside the repository.")] = "README.md",
    digest: DigestOption = None,
) -> None:
    """Read every commit of the running digest as the editor's decisions: when each entry first appeared,
    where it ended up, and what was dropped."""
    from aggregator.learn.jobs import import_history as run_import, scope_of

    with runtime(ctx) as rt:
        report = run_import(rt.store, repo, file, now=rt.clock(), scope=scope_of(rt.config, rt.config.digest(digest)))
    say(f"{repo}: {report.versions} versions of {file}")
    for edition, r, moved in report.editions:
        if r.unchanged:
            say(f"{edition}: unchanged ({r.entries} picks)")
        else:
            say(f"{edition}: {r.entries} picks; {r.added} added, {r.moved} moved, {r.removed} removed"
                + (f"; {moved} moved between sections in the history" if moved else ""))


@app.command()
@reports_errors
def train(ctx: typer.Context, digest: DigestOption = None) -> None:
    """Train a digest's section and priority models on its imported decisions, and save them."""
    from aggregator.learn.jobs import scope_of, train_model
    from aggregator.learn.model_file import save

    with runtime(ctx) as rt:
        settings = rt.config.digest(digest)
        model = train_model(rt.store, now=rt.clock(), scope=scope_of(rt.config, settings))
        save(model, rt.model_dir(settings))
        meta = model.meta
        say(f"trained on {meta['n_examples']} decisions ({meta['n_positives']} picks, {meta['n_negatives']} non-picks) "
            f"and {meta['n_background']} undecided fetched posts, over {len(meta['sections'])} sections; "
            f"saved to {rt.model_dir(settings)}")
        say({"classifier": "priority: picks against known non-picks, calibrated on held-out folds",
             "background": "priority: picks against the undecided fetched posts (no known non-picks yet), "
                           "calibrated on held-out folds",
             "prior": "priority: only picks are known and too few posts have been fetched to learn from, so "
                      "priority is a prior from AI/ML vocabulary and the sites you pick from; fetch, then train "
                      "again"}[meta["priority_mode"]])


@app.command("eval")
@reports_errors
def evaluate(
    ctx: typer.Context,
    old: Annotated[Path | None, typer.Option("--from", help="An older version of a digest: learn from it alone ...", show_default=False)] = None,
    new: Annotated[Path | None, typer.Option("--to", help="... and predict what this newer version added, and where it filed it.", show_default=False)] = None,
    loo: Annotated[bool, typer.Option("--loo", help="Leave one out over one imported edition's picks.")] = False,
    edition: Annotated[str | None, typer.Option("--edition", help="The edition for --loo, YYYY-MM or YYYY-Www (default: the newest).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    digest: DigestOption = None,
) -> None:
    """Judge the model on the editor's decisions beside the baselines: month by month (default), --from/--to, or --loo."""
    import dataclasses
    import json as jsonlib

    from aggregator.learn.jobs import evaluate_loo, evaluate_months, evaluate_old_new, scope_of

    if (old is None) != (new is None):
        raise typer.BadParameter("--from and --to go together", param_hint="--from/--to")
    if old is not None and loo:
        raise typer.BadParameter("use either --from/--to or --loo", param_hint="--loo")
    if edition is not None:
        try:
            edition_bounds(edition)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--edition") from None
    with runtime(ctx) as rt:
        scope = scope_of(rt.config, rt.config.digest(digest))
        with _progress(ctx, "evaluating") as progress:
            if old is not None and new is not None:
                report = evaluate_old_new(rt.store, old, new, now=rt.clock(), progress=progress, scope=scope)
            elif loo:
                report = evaluate_loo(rt.store, edition, now=rt.clock(), progress=progress, scope=scope)
            else:
                report = evaluate_months(rt.store, now=rt.clock(), progress=progress, scope=scope)
    if as_json:
        sys.stdout.write(jsonlib.dumps(dataclasses.asdict(report), indent=2, ensure_ascii=False) + "\n")
        return
    if not report.splits and not report.skipped:
        say("nothing to evaluate: import digests of at least two months first (or use --from/--to, --loo)")
        return
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    console = _console()
    if len(report.splits) > 1 and not loo:
        table = _table(("month", "trained on", "picks", "non-picks", "leaf acc", "top acc", "AP", "cut F1"),
                       justify="right")
        for name, trained, f in report.splits:
            table.add_row(name, str(trained), str(f.picks), str(f.non_picks), fmt(f.leaf_accuracy),
                          fmt(f.top_accuracy), fmt(f.average_precision), fmt(f.cut_f1))
        console.print(table)
    say(f"{report.scenario}: {len(report.splits)} split(s), pooled")
    table = _table(("method", "picks", "leaf acc", "top acc", "leaf F1", "non-picks", "AP", "selected", "cut P",
                    "cut R", "cut F1"), justify="right")
    for f in report.methods:
        table.add_row(f.method, str(f.picks), fmt(f.leaf_accuracy), fmt(f.top_accuracy), fmt(f.leaf_macro_f1),
                      str(f.non_picks), fmt(f.average_precision), str(f.selected), fmt(f.cut_precision),
                      fmt(f.cut_recall), fmt(f.cut_f1))
    console.print(table)
    if report.calibration:
        table = _table(("P(pick)", "posts", "mean P", "picked"), justify="right")
        for name, n, mean_p, rate in report.calibration:
            table.add_row(name, str(n), f"{mean_p:.2f}", f"{rate:.2f}")
        say("calibration of the model's P(pick):")
        console.print(table)
    for line in report.skipped:
        warn(f"skipped {line}")


def _check_month(month: str) -> None:
    try:
        month_bounds(month)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--month") from None


@app.command()
@reports_errors
def draft(
    ctx: typer.Context,
    month: Annotated[str | None, typer.Option("--month", help="The month of a monthly digest, YYYY-MM (default: this month).", show_default=False)] = None,
    week: WeekOption = None,
    digest: DigestOption = None,
    output: Annotated[str | None, typer.Option("--out", help="File to write, or - for standard output (default: the digest's drafts folder, EDITION.md; standard output for json).", show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", help="markdown or json.")] = "markdown",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing draft file.")] = False,
    from_manifest: Annotated[Path | None, typer.Option("--manifest", help="Re-render the selection a manifest recorded (its digest and edition unless given).", show_default=False)] = None,
    max_posts: Annotated[int | None, typer.Option("--max", min=0, help="Select at most N posts (default: every post above the model's cut).", show_default=False)] = None,
    min_priority: Annotated[float | None, typer.Option("--min-priority", min=0.0, max=1.0, help="Select the posts with at least this priority instead of the model's cut.", show_default=False)] = None,
) -> None:
    """Write the draft of one edition of a digest in its style, ranked and placed by its trained model."""
    from aggregator.digest.draft import default_path, make_draft, write_new

    if fmt not in ("markdown", "json"):
        raise typer.BadParameter("must be markdown or json", param_hint="--format")
    replay = None
    if from_manifest is not None:
        from aggregator.digest.manifest import selection

        recorded_digest, recorded_edition, replay = selection(from_manifest)
        digest = digest or recorded_digest
        if month is None and week is None:
            month, week = (None, recorded_edition) if "W" in recorded_edition else (recorded_edition, None)
    with runtime(ctx) as rt:
        settings = rt.config.digest(digest)
        edition = _edition(settings, month, week, default=True)
        assert edition is not None
        model = rt.load_model(settings)
        result = make_draft(rt.store, rt.config, edition, fmt, model=model,  # type: ignore[arg-type]
                            count=max_posts, min_priority=min_priority, digest=settings, replay=replay)
        if output == "-" or (output is None and fmt == "json"):
            sys.stdout.write(result.text)
            return
        path = Path(output) if output else default_path(rt.config, edition, fmt, settings)  # type: ignore[arg-type]
        write_new(path, result.text, force=force)
        if fmt == "markdown" and output is None:
            from aggregator.digest.draft import write_manifest
            from aggregator.digest.manifest import path_for

            rt.store.record_draft(edition, str(path), result.text, rt.clock(), result.selected_urls,
                                  digest=settings.name)
            write_manifest(rt.store, rt.config, settings, edition, result.items, model, path, path_for(path), rt.clock())
        say(f"wrote {path} ({len(result.selected_urls)} of {len(result.items)} posts selected)")


@app.command()
@reports_errors
def publish(
    ctx: typer.Context,
    into: Annotated[Path, typer.Option("--into", help="The running digest file (the editor's README) to add the entries to.")],
    month: Annotated[str | None, typer.Option("--month", help="The month, YYYY-MM (default: this month).", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the change as a unified diff; write nothing.")] = False,
    digest: DigestOption = None,
) -> None:
    """Put a month's accepted entries (the draft's selections and the editor's decisions) into the running file."""
    from aggregator.digest.draft import publish_plan

    with runtime(ctx) as rt:
        settings = rt.config.digest(digest)
        edition = _edition(settings, month, None, default=True)
        assert edition is not None
        result = publish_plan(rt.store, rt.config, edition, into, model=rt.load_model(settings), digest=settings,
                              dry_run=dry_run, now=rt.clock())
    if dry_run:
        sys.stdout.write(result)
    else:
        say(result)


@app.command()
@reports_errors
def audit(
    ctx: typer.Context,
    months: Annotated[int, typer.Option("--months", min=1, help="How many recent months a feed must have supplied a pick in.")] = 6,
    discover: Annotated[bool, typer.Option("--discover", help="Fetch each uncovered site's home page and name the feed it advertises.")] = False,
    digest: DigestOption = None,
) -> None:
    """The sources of the digest's picks that no feed covers, and the feeds that supplied no pick lately."""
    from aggregator.audit import run_audit

    with runtime(ctx) as rt:
        report = run_audit(rt.store, rt.config, rt.config.digest(digest), months=months, now=rt.clock(),
                           discover=discover)
    console = _console()
    if report.uncovered:
        say("sites of picks that no feed covers:")
        table = _table(("site", "picks", "example", "advertised feed"), overflow="fold")
        for u in report.uncovered:
            table.add_row(u.site, str(u.picks), u.example, u.feed or ("-" if discover else "(--discover)"))
        console.print(table)
    else:
        say("every site the picks come from is covered by a feed")
    if report.idle:
        say(f"feeds with no pick since {report.since:%Y-%m-%d}:")
        table = _table(("feed", "posts fetched"), justify="right")
        for idle in report.idle:
            table.add_row(idle.feed, str(idle.posts))
        console.print(table)


@app.command()
@reports_errors
def review(
    ctx: typer.Context,
    month: Annotated[str | None, typer.Option("--month", help="The edition to open, YYYY-MM (default: this month).", show_default=False)] = None,
    week: WeekOption = None,
    digest: DigestOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8765,
    token: Annotated[str | None, typer.Option("--token", envvar="AGGREGATOR_DESK_TOKEN", help="A secret every request must carry (generated and printed once when --host is not loopback).", show_default=False)] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the desk in the browser.")] = False,
) -> None:
    """Serve the review desk: accept, move and reject an edition's candidates in the browser, each decision stored at once."""
    import secrets

    from aggregator.errors import ModelError
    from aggregator.web.app import LOOPBACK, serve
    from aggregator.web.desk import Desk

    if token is not None and len(token) < 16:
        raise typer.BadParameter("a token needs at least 16 characters", param_hint="--token")
    if host not in LOOPBACK and token is None:
        token = secrets.token_urlsafe(24)
    with runtime(ctx) as rt:
        settings = rt.config.digest(digest)
        edition = _edition(settings, month, week, default=True)
        try:
            model = rt.load_model(settings)
        except ModelError as exc:
            warn(f"warning: {exc}; the desk shows the posts unranked until you retrain")
            model = None
        desk = Desk(rt.store, rt.config, settings, model=model, model_dir=rt.model_dir(settings), clock=rt.clock)

        serve(desk, host=host, port=port, token=token, start=f"/edition/{edition}", open_browser=open_browser,
              ready=lambda url: say(f"the desk for {edition} is at {url} (Ctrl-C stops it)"))


def main() -> None:
    """Console entry point. Ends with os._exit once output is flushed, as mypy does: tearing down the
    interpreter (every SQLAlchemy and httpx object freed one by one) took 0.1 s of each cron run."""
    code: int | str | None = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe (`draft --out - | head`): nothing more can be said
        code = code or 1
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)
