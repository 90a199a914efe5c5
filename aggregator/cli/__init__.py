"""The `aggregator` command line: the command tree, the global options and the entry point; each command group's module parses options, calls one job and prints the outcome."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Annotated

import typer

from aggregator.cli import polling
from aggregator.cli.common import Options

# The commands a cron or daemon poller runs. Invoked by name, they are served by a tree of these alone, so a
# polling process never imports the other commands' modules (the digests, learning, desk and feeds groups).
POLLING_COMMANDS = {"init": polling.init, "fetch": polling.fetch, "run": polling.run}
# The global options that take a value; every other global option is a flag.
_VALUED_OPTIONS = ("--db", "--config")
_FLAG_OPTIONS = ("--quiet", "-q")


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


def command_tree(polling_only: bool = False) -> typer.Typer:
    """The command tree, in the order `aggregator --help` lists it (the feeds group last); with `polling_only`,
    the polling commands alone."""
    tree = typer.Typer(
        help="Poll AI/ML blogs' feeds into a database and draft the monthly digest.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    tree.callback()(main_options)
    for name, command in POLLING_COMMANDS.items():
        tree.command(name)(command)
    if polling_only:
        return tree
    from aggregator.cli import desk, digests, feeds, learning

    feeds_app = typer.Typer(help="Show feed health, reset a failing feed, move subscriptions in and out as OPML.")
    tree.add_typer(feeds_app, name="feeds")
    tree.command("import-digest")(digests.import_digest)
    tree.command("import-history")(digests.import_history)
    tree.command("train")(learning.train)
    tree.command("eval")(learning.evaluate)
    tree.command("draft")(digests.draft)
    tree.command("publish")(digests.publish)
    tree.command("audit")(digests.audit)
    tree.command("review")(desk.review)
    tree.command("add")(desk.add)
    feeds_app.callback(invoke_without_command=True)(feeds.feeds)
    feeds_app.command("reset")(feeds.feeds_reset)
    feeds_app.command("import-opml")(feeds.feeds_import_opml)
    feeds_app.command("export-opml")(feeds.feeds_export_opml)
    return tree


def named_command(args: Sequence[str]) -> str | None:
    """The command the arguments name after the global options, or None when they name none or an option is
    not a global one (then the whole tree reads them, and says what is wrong)."""
    at = _command_at(args)
    return None if at is None else args[at]


def _command_at(args: Sequence[str]) -> int | None:
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _VALUED_OPTIONS:
            i += 2
        elif arg in _FLAG_OPTIONS or arg.startswith(tuple(f"{o}=" for o in _VALUED_OPTIONS)):
            i += 1
        elif arg.startswith("-"):
            return None
        else:
            return i
    return None


def _polling_call(args: Sequence[str]) -> Callable[[], None]:
    """What a polling command's arguments make it do: read from its typer declarations without typer, whose
    conversion of each value loads pydantic (cli/lean.py), when they are plain options; else the polling tree."""
    at = _command_at(args)
    assert at is not None
    tree = command_tree(polling_only=True)
    from aggregator.cli import lean

    return lean.call(tree, main_options, POLLING_COMMANDS[args[at]], args[:at], args[at + 1:]) or tree


def __getattr__(name: str) -> typer.Typer:
    """`app`, the whole command tree, built when first asked for (tests and tools invoke it)."""
    if name == "app":
        tree = globals()["app"] = command_tree()
        return tree
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console entry point. Ends with os._exit once output is flushed, as mypy does: tearing down the
    interpreter (every SQLAlchemy and httpx object freed one by one) took 0.1 s of each cron run."""
    code: int | str | None = 0
    try:
        args = sys.argv[1:]
        (_polling_call(args) if named_command(args) in POLLING_COMMANDS else command_tree())()
    except SystemExit as exc:
        code = exc.code
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe (`draft --out - | head`): nothing more can be said
        code = code or 1
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)
