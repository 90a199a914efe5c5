"""The feeds commands: each feed's health, reset, and the subscriptions in and out as OPML."""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from aggregator.cli.common import inform, reports_errors, rich_console, rich_table, runtime, say, warn
from aggregator.config import add_feeds, load_config
from aggregator.errors import AggregatorError
from aggregator.opml import read_opml, write_opml
from aggregator.runtime import utc_now
from aggregator.store.feeds import FeedHealth


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "-"
    seconds = (value - now).total_seconds()
    span = abs(seconds)
    text = f"{span / 86400:.1f}d" if span >= 86400 else f"{span / 3600:.1f}h" if span >= 3600 else f"{span / 60:.0f}m"
    return f"in {text}" if seconds > 0 else f"{text} ago"


@reports_errors
def feeds(ctx: typer.Context) -> None:
    """Each feed's health: last check, status, errors, next check, posts stored."""
    if ctx.invoked_subcommand is not None:
        return
    with runtime(ctx) as rt:
        broken_after = rt.config.defaults.broken_after
        now = rt.clock()
        table = rich_table(("feed", "state", "checked", "by", "status", "errors", "next check", "claim", "posts", "picks",
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
        rich_console().print(table)
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


@reports_errors
def feeds_reset(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The feed's name in feeds.yaml.")]) -> None:
    """Clear a feed's errors and poll it at the next pass."""
    with runtime(ctx) as rt:
        if not rt.store.reset_feed(name, rt.clock()):
            raise AggregatorError(f"no feed named {name!r}")
        say(f"{name}: reset; it will be polled at the next pass")


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
        inform(ctx, f"wrote {len(config.feeds)} feeds to {output}")
