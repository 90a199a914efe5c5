"""Making an edition's draft (gather its posts, place them, render in the digest's style, write safely, with a manifest) and publishing it into the running file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from aggregator.config import Config, DigestSettings
from aggregator.files import atomic_write
from aggregator.errors import DigestError
from aggregator.learn.labels import align_section, sections_without_source
from aggregator.learn.jobs import scope_of, section_emoji, taxonomy
from aggregator.models import Candidate, DraftItem, Edition, Prediction, SectionPath
from aggregator.digest.render import entry_line, render_footnote, render_json, render_markdown, render_weekly
from aggregator.store import Store

if TYPE_CHECKING:
    from aggregator.digest import publish
    from aggregator.learn.classify import Model

Format = Literal["markdown", "json"]


def place_unranked(candidates: Sequence[Candidate], section: str) -> list[DraftItem]:
    """Without a trained model every post is selected into one section."""
    return [DraftItem(c, Prediction(section=(section,))) for c in candidates]


def place_ranked(candidates: Sequence[Candidate], predictions: Sequence[Prediction], *, count: int | None,
                 min_priority: float | None, decided: Mapping[int, SectionPath | None] | None = None) -> list[DraftItem]:
    """Rank by priority (ties by URL, so drafts are reproducible) and select those whose priority
    reaches `min_priority`, at most `count` of them. Posts the editor already decided on (`decided`:
    post id -> their section, or None for left out) keep that decision. Every candidate is returned."""
    decided = decided or {}
    order = sorted(range(len(candidates)), key=lambda i: (-(predictions[i].priority or 0.0), candidates[i].url))
    forced = sum(1 for c in candidates if decided.get(c.id) is not None)
    room = (len(order) if count is None else max(count, 0)) - forced
    floor = min_priority if min_priority is not None else float("-inf")
    items = []
    for i in order:
        post, prediction = candidates[i], predictions[i]
        if post.id in decided:
            section = decided[post.id]
            if section is not None:
                prediction = replace(prediction, section=section, section_confidence=1.0)
            items.append(DraftItem(post, prediction, section is not None))
            continue
        chosen = room > 0 and (prediction.priority or 0.0) >= floor
        room -= chosen
        items.append(DraftItem(post, prediction, chosen))
    return items


@dataclass(frozen=True)
class Draft:
    """A rendered draft and what it holds."""

    edition: Edition
    text: str
    items: tuple[DraftItem, ...]

    @property
    def selected_urls(self) -> list[str]:
        return [i.candidate.url for i in self.items if i.selected]


@dataclass(frozen=True)
class Placement:
    """An edition's posts placed for its draft, before rendering: the items, the taxonomy they are filed
    under, the draft's header note and the sections printed without a source."""

    items: tuple[DraftItem, ...]
    tree: tuple[SectionPath, ...]
    note: str
    no_source: tuple[str, ...]


def make_draft(store: Store, config: Config, edition: Edition, fmt: Format, *, model: Model | None = None,
               count: int | None = None, min_priority: float | None = None,
               digest: DigestSettings | None = None, replay: Mapping[str, SectionPath] | None = None) -> Draft:
    """Render the draft of `edition` (a month "YYYY-MM", or an ISO week "YYYY-Www" for a weekly digest) of `digest`
    (default: the only one) in the digest's style, as `place_draft` places it."""
    digest = digest or config.digest(None)
    placed = place_draft(store, config, edition, model=model, count=count, min_priority=min_priority, digest=digest,
                         replay=replay)
    items, tree, note = placed.items, placed.tree, placed.note
    if fmt == "json":
        return Draft(edition, render_json(items), items)
    start, _ = edition.bounds()
    scope = scope_of(config, digest)
    shown = [i for i in items if i.selected] + [i for i in items if not i.selected][: config.draft.below_cut]
    if digest.style == "footnote":
        text = render_footnote(shown, title=digest.title, when=start, tags=digest.tags, taxonomy=tree, note=note,
                               emoji=section_emoji(store, scope))
    elif digest.style == "weekly":
        text = render_weekly(shown, title=digest.title, when=start, category=digest.category or digest.title,
                             tags=digest.tags, link_label=digest.link_label, taxonomy=tree, note=note)
    else:
        text = render_markdown(shown, title=digest.title, taxonomy=tree, no_source_sections=list(placed.no_source),
                               note=note)
    return Draft(edition, text, items)


def place_draft(store: Store, config: Config, edition: Edition, *, model: Model | None = None, count: int | None = None,
                min_priority: float | None = None, digest: DigestSettings | None = None,
                replay: Mapping[str, SectionPath] | None = None) -> Placement:
    """Place the posts of `edition` (a month "YYYY-MM", or an ISO week "YYYY-Www" for a weekly digest) of `digest`
    (default: the only one) that its feeds stored for it, by `model` when there is one. A selected post
    the editor wrote a summary for carries that summary.

    A model's draft selects the posts likely enough to be picked (the model's cut, see `Model.cut`).
    `min_priority` replaces that threshold; `count` alone selects the `count` highest priorities, and
    with `min_priority` caps how many pass it. `replay` (URL -> section, from a manifest) selects exactly
    those posts under those sections instead.
    """
    digest = digest or config.digest(None)
    scope = scope_of(config, digest)
    start, end = edition.bounds()
    imported = store.edition_labels(edition, digest=digest.name)  # what this edition's imported digest decided
    candidates = store.candidates(start, end, also=sorted(imported), feeds=scope.feeds)
    # The edition's posts: those its date puts in it that no other edition decided on, and those decided in
    # it (`entry_edition`'s rule, which also filed every imported entry): a post is offered in one edition.
    elsewhere = store.decided_elsewhere(edition, [c.id for c in candidates if c.id not in imported], digest=digest.name)
    candidates = [c for c in candidates if c.id not in elsewhere]
    if model is None:
        items = place_unranked(candidates, config.draft.section)
        note = f"aggregator draft for {edition}: {len(items)} posts; no model yet, run `aggregator train` to rank them"
        tree: tuple[SectionPath, ...] = ()
        no_source: list[str] = []
    else:
        tree = taxonomy(store, scope) or tuple(model.sections)
        decided = {pid: (align_section(section, tree) if section else None) for pid, section in imported.items()}
        predictions = model.predict(candidates)
        threshold, how = model.cut([p.priority or 0.0 for c, p in zip(candidates, predictions) if c.id not in decided])
        if min_priority is not None:
            threshold, how = min_priority, f"selected: priority >= {min_priority:.2f} (--min-priority)"
            if count is not None:
                how += f", at most {count} (--max)"
        elif count is not None:
            threshold, how = float("-inf"), f"selected: the {count} highest priorities (--max)"
        items = place_ranked(candidates, predictions, count=count, min_priority=threshold, decided=decided)
        chosen = sum(i.selected for i in items)
        note = (f"aggregator draft for {edition}: {chosen} of {len(items)} posts selected; {how}; "
                f"model trained {model.meta.get('trained_at', '?')[:19]} ({model.priority_mode})")
        no_source = sections_without_source(store.printed_sources(digest=digest.name))
    if replay is not None:
        tree = tree or taxonomy(store, scope)
        items = [DraftItem(i.candidate, replace(i.prediction, section=replay[i.candidate.url]), True)
                 if i.candidate.url in replay else DraftItem(i.candidate, i.prediction, False) for i in items]
        missing = len(set(replay) - {i.candidate.url for i in items})
        note = (f"aggregator draft for {edition}: the selection of a manifest, {len(replay) - missing} posts"
                + (f" ({missing} no longer stored)" if missing else ""))
    summaries = store.editor_summaries(edition, digest=digest.name)  # the editor's own words, where they wrote some
    items = [DraftItem(replace(i.candidate, summary=summaries[i.candidate.id]), i.prediction, i.selected)
             if i.selected and summaries.get(i.candidate.id) else i for i in items]
    return Placement(tuple(items), tuple(tree), note, tuple(no_source))


def write_manifest(store: Store, config: Config, digest: DigestSettings, edition: Edition, items: Sequence[DraftItem],
                   model: Model | None, output: Path, target: Path, now: datetime) -> None:
    """The manifest of what `output` was made from, written to `target`."""
    from aggregator.digest import manifest

    data = manifest.build(config, digest, edition, items, store.feed_health(), model.meta if model else None, now=now,
                          output=str(output))
    manifest.write(target, data)


def default_path(config: Config, edition: Edition, fmt: Format, digest: DigestSettings | None = None) -> Path:
    return config.drafts_dir(digest or config.digest(None)) / f"{edition}.{'json' if fmt == 'json' else 'md'}"


def write_new(path: Path, text: str, *, force: bool) -> None:
    """Write a draft file; refuse to replace an existing one unless `force` (the editor edits these)."""
    if (path.exists() or path.is_symlink()) and not force:
        raise DigestError(f"{path}: already exists and may hold the editor's edits; pass --force to overwrite")
    atomic_write(path, text.encode("utf-8"))


def unedited_text(store: Store, path: Path, edition: Edition, digest: DigestSettings) -> str | None:
    """The draft file's text as aggregator last wrote it ("" when there is no file), or None when the
    editor changed it since: such a file is theirs, not to be replaced. DigestError when it cannot be read."""
    if not path.exists():
        return ""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DigestError(f"cannot read it ({exc})") from None
    return text if store.is_unedited_draft(edition, text, digest=digest.name) else None


def save_draft(store: Store, config: Config, digest: DigestSettings, draft: Draft, model: Model | None, path: Path,
               now: datetime, *, force: bool) -> None:
    """Write a Markdown draft into the drafts folder (as `write_new`), record it in the store (so that
    `is_unedited_draft` tells it from the editor's edits later) and write its manifest beside it."""
    from aggregator.digest.manifest import path_for

    write_new(path, draft.text, force=force)
    store.record_draft(draft.edition, str(path), draft.text, now, draft.selected_urls, digest=digest.name)
    write_manifest(store, config, digest, draft.edition, draft.items, model, path, path_for(path), now)


def refresh_draft(store: Store, config: Config, edition: Edition, now: datetime, model: Model | None = None,
                  digest: DigestSettings | None = None) -> str:
    """Rewrite an edition's Markdown draft for the daemon, unless the editor changed the file since
    aggregator last wrote it. Returns a one-line account of what happened."""
    digest = digest or config.digest(None)
    path = default_path(config, edition, "markdown", digest)
    try:
        if unedited_text(store, path, edition, digest) is None:
            return f"draft {path} left alone: it was edited since aggregator wrote it"
    except DigestError as exc:
        return f"draft {path} left alone: {exc}"
    draft = make_draft(store, config, edition, "markdown", model=model, digest=digest)
    save_draft(store, config, digest, draft, model, path, now, force=True)  # unedited, or not there: replace it
    return f"draft {path} written ({len(draft.selected_urls)} of {len(draft.items)} posts selected)"


def publish_plan(store: Store, config: Config, edition: Edition, into: Path, *, model: Model | None,
                 digest: DigestSettings | None = None, dry_run: bool = False, now: datetime | None = None,
                 commit: bool = False) -> str:
    """Insert the edition's accepted entries into the running file `into` (or, with `dry_run`, return the
    unified diff that would make). The entries are the draft's selections with the editor's decisions
    applied, printed as the draft prints them (the editor's own summary where they wrote one). With
    `commit`, the file alone is then committed to its git repository (refused, before anything is written,
    when that repository has other staged changes). Returns a one-line account, or the diff."""
    from aggregator.digest import publish

    digest = digest or config.digest(None)
    if digest.style != "house":
        raise DigestError(f"digest {digest.name!r} is in the {digest.style} style; publish writes into house-style files")
    placed = place_draft(store, config, edition, model=model, digest=digest)
    scope = scope_of(config, digest)
    tree = placed.tree or taxonomy(store, scope)  # the placement's, or (no model) the imported digests' own
    no_source = set(sections_without_source(store.printed_sources(digest=digest.name)))
    entries = []
    for item in placed.items:
        if not item.selected:
            continue
        post = item.candidate
        section = align_section(item.prediction.section, tree)
        line = entry_line(DraftItem(post, item.prediction), with_source=section[0] not in no_source)
        if line.startswith("* "):
            entries.append(publish.Entry(section, post.url, line))
    old, sha = publish.read(into)
    plan = publish.plan(old, entries, tree, path=str(into))
    if dry_run:
        return publish.diff(old, plan.text, str(into))
    if commit:
        from aggregator.digest.commit import check

        check(into)  # before the file changes
    if plan.added:
        publish.write_if_unchanged(into, plan.text, sha)
    if now is not None:
        target = into.with_name(f"{into.stem}.{edition}.manifest.json")
        write_manifest(store, config, digest, edition, placed.items, model, into, target, now)
    made = f"; created {', '.join(' > '.join(s) for s in plan.created)}" if plan.created else ""
    account = f"{into}: {plan.added} entries added, {plan.present} already there{made}"
    if commit:
        account += "; " + _commit_published(into, edition, plan, digest)
    return account


def commit_message(edition: Edition, title: str, added: int, present: int, created: Sequence[SectionPath]) -> str:
    """The commit message of a publish: the edition and its counts on the first line (pure)."""
    message = f"{title} {edition}: {added} entries added, {present} already there"
    if created:
        message += "\n\nNew sections: " + ", ".join(" > ".join(s) for s in created)
    return message


def _commit_published(into: Path, edition: Edition, plan: publish.Plan, digest: DigestSettings) -> str:
    from aggregator.digest.commit import commit_file

    if not plan.added:
        return "nothing to commit"
    message = commit_message(edition, digest.title or digest.name, plan.added, plan.present, plan.created)
    return f"committed {commit_file(into, message)[:12]}"
