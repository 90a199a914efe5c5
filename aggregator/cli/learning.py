"""The learning commands: train a digest's models, and eval them against the editor's decisions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from aggregator.cli.common import DigestOption, progress_bar, reports_errors, rich_console, rich_table, runtime, say, warn
from aggregator.models import Edition


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


def _edition(text: str, option: str) -> Edition:
    try:
        return Edition(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


@reports_errors
def evaluate(
    ctx: typer.Context,
    old: Annotated[str | None, typer.Option("--from", help="An older version of a digest: learn from it alone ... (with --replay: the first edition to predict).", show_default=False)] = None,
    new: Annotated[Path | None, typer.Option("--to", help="... and predict what this newer version added, and where it filed it.", show_default=False)] = None,
    loo: Annotated[bool, typer.Option("--loo", help="Leave one out over one imported edition's picks.")] = False,
    replay: Annotated[bool, typer.Option("--replay", help="Walk the editions in order, each predicted by a model trained on every decision before it (the default; --from E starts at edition E).")] = False,
    edition: Annotated[str | None, typer.Option("--edition", help="The edition for --loo, YYYY-MM or YYYY-Www (default: the newest).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the model page (the replay, calibration, sections, sources) to this self-contained HTML file.", show_default=False)] = None,
    digest: DigestOption = None,
) -> None:
    """Judge the model on the editor's decisions beside the baselines: edition by edition (--replay, the
    default), --from/--to, or --loo."""
    import dataclasses
    import json as jsonlib

    from aggregator.learn.jobs import evaluate_editions, evaluate_loo, evaluate_old_new, scope_of

    if html is not None and (loo or new is not None):
        raise typer.BadParameter("the model page shows the replay: use it without --to or --loo", param_hint="--html")
    if replay and (loo or new is not None):
        raise typer.BadParameter("--replay walks every edition: use it without --to or --loo", param_hint="--replay")
    first = None
    if replay and old is not None:
        first, old = _edition(old, "--from"), None
    if (old is None) != (new is None):
        raise typer.BadParameter("--from and --to go together", param_hint="--from/--to")
    if old is not None and loo:
        raise typer.BadParameter("use either --from/--to or --loo", param_hint="--loo")
    chosen = None if edition is None else _edition(edition, "--edition")
    with runtime(ctx) as rt:
        scope = scope_of(rt.config, rt.config.digest(digest))
        with progress_bar(ctx, "evaluating") as progress:
            if old is not None and new is not None:
                report = evaluate_old_new(rt.store, Path(old), new, now=rt.clock(), progress=progress, scope=scope)
            elif loo:
                report = evaluate_loo(rt.store, chosen, now=rt.clock(), progress=progress, scope=scope)
            elif html is not None:
                from aggregator.web.model_page import write_page

                report, seconds = write_page(rt.store, rt.config, rt.config.digest(digest), html, now=rt.clock(),
                                             progress=progress, first=first)
                if not ctx.obj.quiet:  # standard error when standard output is the JSON
                    (warn if as_json else say)(f"wrote {html}: the model page, computed in {seconds:.1f} s")
            else:
                report = evaluate_editions(rt.store, now=rt.clock(), progress=progress, scope=scope, first=first)
    if as_json:
        sys.stdout.write(jsonlib.dumps(dataclasses.asdict(report), indent=2, ensure_ascii=False) + "\n")
        return
    if not report.splits and not report.skipped:
        say("nothing to evaluate: import digests of at least two months first (or use --from/--to, --loo)")
        return
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    console = rich_console()
    if len(report.splits) > 1 and not loo:
        table = rich_table(("edition", "trained on", "picks", "non-picks", "leaf acc", "top acc", "AP", "cut P", "cut R",
                            "cut F1", "site rate AP", "site rate F1"), justify="right")
        for name, trained, f, rule in report.splits:
            table.add_row(name, str(trained), str(f.picks), str(f.non_picks), fmt(f.leaf_accuracy),
                          fmt(f.top_accuracy), fmt(f.average_precision), fmt(f.cut_precision), fmt(f.cut_recall),
                          fmt(f.cut_f1), fmt(rule and rule.average_precision), fmt(rule and rule.cut_f1))
        console.print(table)
    say(f"{report.scenario}: {len(report.splits)} split(s), pooled")
    table = rich_table(("method", "picks", "leaf acc", "top acc", "leaf F1", "non-picks", "AP", "selected", "cut P",
                    "cut R", "cut F1"), justify="right")
    for f in report.methods:
        table.add_row(f.method, str(f.picks), fmt(f.leaf_accuracy), fmt(f.top_accuracy), fmt(f.leaf_macro_f1),
                      str(f.non_picks), fmt(f.average_precision), str(f.selected), fmt(f.cut_precision),
                      fmt(f.cut_recall), fmt(f.cut_f1))
    console.print(table)
    if report.calibration:
        table = rich_table(("P(pick)", "posts", "mean P", "picked"), justify="right")
        for name, n, mean_p, rate in report.calibration:
            table.add_row(name, str(n), f"{mean_p:.2f}", f"{rate:.2f}")
        say("calibration of the model's P(pick):")
        console.print(table)
    for line in report.skipped:
        warn(f"skipped {line}")
