"""The digest commands: import-digest and import-history (the editor's decisions), draft, publish and audit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aggregator.cli.common import (DigestOption, WeekOption, chosen_edition, progress_bar, reports_errors, rich_console,
                                   rich_table, runtime, say, warn)
from aggregator.errors import DigestError

if TYPE_CHECKING:
    from aggregator.store.labels import ImportReport


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
        edition = chosen_edition(settings, month, week, default=False)
        style = style or (settings.style if rt.config.digests else None)
        failed = []
        for file in files:  # each file is imported whole or not at all, and reported on its own line
            try:
                report = import_digest_file(rt.store, file, edition=edition, style=style, now=rt.clock(),  # type: ignore[arg-type]
                                            scope=scope_of(rt.config, settings))
            except DigestError as exc:
                warn(f"error: {exc}")
                failed.append(str(file))
                continue
            for r in report.editions:
                _say_edition(f"{file}: {r.edition}", r, "entries", partial="an edition it only cites")
            if report.truncated:
                warn(f"{file}: warning: {report.truncated} entries had a title, source, heading or summary cut to "
                     "the limits (README, Limits)")
        if failed:
            warn(f"{len(files) - len(failed)} of {len(files)} files imported; not imported: {', '.join(failed)}")
            raise typer.Exit(1)


@reports_errors
def import_history(
    ctx: typer.Context,
    repo: Annotated[Path, typer.Argument(help="A local git repository holding the editor's running digest.")],
    file: Annotated[str, typer.Option("--file", help="The digest's path inside the repository.")] = "README.md",
    since: Annotated[str | None, typer.Option("--since", help="Read only the commits after REV (a commit, branch or tag): the entries REV's version lists keep the decisions already stored for them, as do the other picks of the editions the later commits touch. For a quick update after a full import.", metavar="REV", show_default=False)] = None,
    digest: DigestOption = None,
) -> None:
    """Read every commit of the running digest as the editor's decisions: when each entry first appeared,
    where it ended up, and what was dropped. Shows "commit i of n" on a terminal."""
    from aggregator.learn.jobs import import_history as run_import, scope_of

    with runtime(ctx) as rt:
        scope = scope_of(rt.config, rt.config.digest(digest))
        with progress_bar(ctx, "reading history", "commit") as progress:
            report = run_import(rt.store, repo, file, now=rt.clock(), scope=scope, since=since, progress=progress)
    read = f" ({report.parsed} distinct, each parsed once)" if report.parsed < report.versions else ""
    say(f"{repo}: {report.versions} versions of {file}{read}" + (f" after {since}" if since else ""))
    for edition, r, moved in report.editions:
        _say_edition(str(edition), r, "picks", f"; {moved} moved between sections in the history" if moved else "",
                     partial="too few entries to speak for the edition")
    if report.changed_before:
        warn(f"{report.changed_before} entries listed at {since} were dropped or moved after it; their editions "
             "come before it: run without --since to record that")


def _say_edition(where: str, r: ImportReport, what: str, more: str = "", *, partial: str) -> None:
    """One line of what an import did to one edition, and one per desk decision it kept or replaced."""
    if r.unchanged:
        say(f"{where}: unchanged ({r.entries} {what})")
    else:
        say(f"{where}: {r.entries} {what}; {r.added} added, {r.moved} moved, {r.removed} removed"
            + (f"; {r.new_posts} posts known only from the digest" if what == "entries" else "") + more
            + ("" if r.covered else f"; {partial}: nothing left out"))
    for url in r.kept:
        say(f"{where}: kept the desk's decision on {url}, made after the digest's")
    for url in r.overrode:
        warn(f"{where}: replaced the desk's earlier decision on {url}")


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
    no_train: Annotated[bool, typer.Option("--no-train", help="Use the saved model as it is, even when posts or decisions changed since it was trained.")] = False,
) -> None:
    """Write the draft of one edition of a digest in its style, ranked and placed by its trained model
    (trained again first when posts or decisions changed since, unless --no-train)."""
    from aggregator.digest.draft import default_path, make_draft, save_draft, write_new

    if fmt not in ("markdown", "json"):
        raise typer.BadParameter("must be markdown or json", param_hint="--format")
    replay = None
    if from_manifest is not None:
        from aggregator.digest.manifest import selection

        recorded_digest, recorded_edition, replay = selection(from_manifest)
        digest = digest or recorded_digest
        if month is None and week is None:
            month, week = (None, recorded_edition) if recorded_edition.weekly else (recorded_edition, None)
    with runtime(ctx) as rt:
        settings = rt.config.digest(digest)
        edition = chosen_edition(settings, month, week, default=True)
        assert edition is not None
        model, trained = rt.fresh_model(settings, train=not no_train and replay is None)
        if replay is not None and from_manifest is not None:  # its sections must be the digest's
            from aggregator.digest.manifest import check_sections
            from aggregator.learn.jobs import scope_of, taxonomy

            known = [*taxonomy(rt.store, scope_of(rt.config, settings)), *(model.sections if model else ())]
            check_sections(from_manifest, replay, [*known, (rt.config.draft.section,)] if known else ())
        if trained and not ctx.obj.quiet:
            warn(trained)  # standard error: standard output may be the JSON draft
        result = make_draft(rt.store, rt.config, edition, fmt, model=model,  # type: ignore[arg-type]
                            count=max_posts, min_priority=min_priority, digest=settings, replay=replay)
        if output == "-" or (output is None and fmt == "json"):
            sys.stdout.write(result.text)
            return
        path = Path(output) if output else default_path(rt.config, edition, fmt, settings)  # type: ignore[arg-type]
        if fmt == "markdown" and output is None:  # the drafts folder's copy: recorded, with its manifest
            save_draft(rt.store, rt.config, settings, result, model, path, rt.clock(), force=force)
        else:
            write_new(path, result.text, force=force)
        say(f"wrote {path} ({len(result.selected_urls)} of {len(result.items)} posts selected)")


@reports_errors
def publish(
    ctx: typer.Context,
    into: Annotated[Path, typer.Option("--into", help="The running digest file (the editor's README) to add the entries to.")],
    month: Annotated[str | None, typer.Option("--month", help="The month, YYYY-MM (default: this month).", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the change as a unified diff; write nothing.")] = False,
    commit: Annotated[bool, typer.Option("--commit", help="Then commit the file alone in its git repository (refused when other changes are staged there).")] = False,
    digest: DigestOption = None,
) -> None:
    """Put a month's accepted entries (the draft's selections and the editor's decisions) into the running file."""
    if commit and dry_run:
        raise typer.BadParameter("--dry-run writes nothing, so there is nothing to commit", param_hint="--commit")
    from aggregator.digest.draft import publish_plan

    with runtime(ctx) as rt:
        settings = rt.config.digest(digest)
        edition = chosen_edition(settings, month, None, default=True)
        assert edition is not None
        result = publish_plan(rt.store, rt.config, edition, into, model=rt.load_model(settings), digest=settings,
                              dry_run=dry_run, now=rt.clock(), commit=commit)
    if dry_run:
        sys.stdout.write(result)
    else:
        say(result)


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
    console = rich_console()
    if report.uncovered:
        say("sites of picks that no feed covers:")
        table = rich_table(("site", "picks", "example", "advertised feed"), overflow="fold")
        for u in report.uncovered:
            table.add_row(u.site, str(u.picks), u.example, u.feed or ("-" if discover else "(--discover)"))
        console.print(table)
    else:
        say("every site the picks come from is covered by a feed")
    if report.idle:
        say(f"feeds with no pick since {report.since:%Y-%m-%d}:")
        table = rich_table(("feed", "posts fetched"), justify="right")
        for idle in report.idle:
            table.add_row(idle.feed, str(idle.posts))
        console.print(table)
