"""What every command shares: the global options, output lines, error reporting, the runtime, rich tables, the edition options."""

from __future__ import annotations

import functools
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterator, ParamSpec, Sequence

import typer

from aggregator.config import DigestSettings, load_config
from aggregator.errors import AggregatorError
from aggregator.models import Edition
from aggregator.runtime import Runtime, utc_now

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

P = ParamSpec("P")


def say(text: str) -> None:
    """One line on standard output, as written (no markup)."""
    typer.echo(text)


def warn(text: str) -> None:
    """One line on standard error, as written."""
    typer.echo(text, err=True)


def inform(ctx: typer.Context, text: str) -> None:
    """One line on standard output unless --quiet."""
    if not ctx.obj.quiet:
        say(text)


def rich_console() -> Console:
    """rich, for the progress bar and tables only: plain lines (all that cron sees) never import it."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def rich_table(columns: Sequence[str], *, show_edge: bool = True, **column_options: Any) -> Table:
    """A borderless rich table with these columns."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=show_edge)
    for name in columns:
        table.add_column(name, **column_options)
    return table


@dataclass
class Options:
    """The options given before the command (`aggregator --config ... COMMAND`), kept in `ctx.obj`."""

    config: Path
    db: str | None
    quiet: bool

    @property
    def interactive(self) -> bool:
        return not self.quiet and sys.stdout.isatty()


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
def progress_bar(ctx: typer.Context, what: str, unit: str | None = None) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar for long work on a terminal ("reading history: commit 12 of 400" with a unit); nothing
    in cron, with --quiet or when output is piped."""
    if not ctx.obj.interactive:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), *(() if unit else (MofNCompleteColumn(),)),
               TimeElapsedColumn())
    with Progress(*columns, console=rich_console(), transient=True) as bar:
        task = bar.add_task(what, total=None)

        def advance(done: int, total: int) -> None:
            described = f"{what}: {unit} {done:,} of {total:,}" if unit else what
            bar.update(task, completed=done, total=total, description=described)

        yield advance


@contextmanager
def runtime(ctx: typer.Context, worker_id: str | None = None) -> Iterator[Runtime]:
    """The configuration and database the global options name, closed when the command ends."""
    opts: Options = ctx.obj
    with Runtime(load_config(opts.config), opts.db, worker_id=worker_id) as rt:
        yield rt


DigestOption = Annotated[str | None, typer.Option("--digest", help="Which digest of feeds.yaml (may be left out when there is one).", show_default=False)]
WeekOption = Annotated[str | None, typer.Option("--week", help="The ISO week, YYYY-Www, of a weekly digest.", show_default=False)]


def chosen_edition(digest: DigestSettings, month: str | None, week: str | None, *, default: bool) -> Edition | None:
    """The edition --month or --week names, checked against the digest's cadence; this one by default."""
    given, option, other = (week, "--week", month) if digest.cadence == "weekly" else (month, "--month", week)
    if other is not None:
        form, hint = ("--week YYYY-Www", "--month") if digest.cadence == "weekly" else ("--month YYYY-MM", "--week")
        raise typer.BadParameter(f"digest {digest.name!r} is {digest.cadence}: use {form}", param_hint=hint)
    if given is None:
        return Edition.of(digest.cadence, utc_now()) if default else None
    try:
        return Edition.named(given, digest.cadence)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
