"""The learning jobs: importing digests as labels, training the models, and evaluating them on the store's decisions."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.errors import DigestError, ModelError
from aggregator.learn.digest_reader import read_digest
from aggregator.learn.labels import align_section, covered_months, digest_month, import_entries
from aggregator.models import Candidate, Digest, DigestStyle, Label, SectionPath, month_bounds
from aggregator.store import ImportReport, Store

if TYPE_CHECKING:
    from aggregator.learn.classify import Model
    from aggregator.learn.evaluate import Report

Progress = Callable[[int, int], None] | None


def import_digest_file(store: Store, path: Path, *, month: str | None, style: DigestStyle | None,
                       now: datetime) -> ImportReport:
    """Read one digest file and record its selections; nothing is stored when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DigestError(f"{path}: cannot read: {exc}") from None
    digest = read_digest(text, path=str(path), style=style, month=month)
    which = digest_month(digest, str(path), month)
    if which is None:
        raise DigestError(f"{path}: cannot tell which month this digest is for; pass --month YYYY-MM")
    entries = import_entries(digest, which)
    if not entries:
        raise DigestError(f"{path}: no entries with an http(s) URL")
    covers = covered_months([e.month for e in digest.entries]) or [which]
    if which not in covers:
        covers = sorted({*covers, which})
    return store.import_digest(month=which, path=str(path), style=digest.style, title=digest.title,
                               sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                               sections=digest.sections, covers=covers, entries=entries, now=now)


def taxonomy(store: Store) -> tuple[SectionPath, ...]:
    """The section tree drafts use: that of the newest imported digest which has numbered sections,
    else of the newest one with any."""
    digests = [d for d in store.digests() if d.sections]
    numbered = [d for d in digests if any(s and s[0][:1].isdigit() for s in d.sections)]
    chosen = (numbered or digests)[-1:]
    return chosen[0].sections if chosen else ()


def aligned_labels(store: Store) -> list[tuple[str, Label]]:
    """Every (month, label), sections mapped onto the current taxonomy."""
    tree = taxonomy(store)
    out = []
    for month, label in store.training_labels():
        if label.section is not None:
            label = Label(label.candidate, align_section(label.section, tree), label.selected, label.editor_summary)
        out.append((month, label))
    return out


def train_model(store: Store, *, now: datetime) -> Model:
    """Fit the models on every decision, with the fetched posts nobody decided on as background."""
    from aggregator.learn.classify import train

    labels = [label for _month, label in aligned_labels(store)]
    return train(labels, background=store.fetched_posts(), now=now)


def _read(path: Path, month: str | None = None) -> tuple[Digest, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DigestError(f"{path}: cannot read: {exc}") from None
    digest = read_digest(text, path=str(path), style=None, month=month)
    which = digest_month(digest, str(path), month)
    if which is None:
        raise DigestError(f"{path}: cannot tell which month this digest is for")
    return digest, which


def _as_labels(digest: Digest, month: str, tree: Sequence[SectionPath], fetched: dict[str, Candidate]) -> list[Label]:
    """A digest's entries as picks; a post that was fetched is read as its feed gave it (with its opening)."""
    out = []
    for e in import_entries(digest, month):
        candidate = fetched.get(e.url) or Candidate(0, e.url, e.title, "", e.source, e.published)
        out.append(Label(candidate, align_section(e.section, tree), True))
    return out


def evaluate_months(store: Store, *, now: datetime, last: int | None = None, progress: Progress = None) -> Report:
    """Month by month: learn from the months before m, predict m's decisions (only the `last` months
    when given); every method on the same splits."""
    from aggregator.learn.evaluate import monthly_splits, run

    splits = list(monthly_splits(aligned_labels(store), store.fetched_posts(), lambda m: month_bounds(m)[1]))
    splits = splits[-last:] if last else splits
    return run("month by month", splits, now=now, progress=progress)


def evaluate_old_new(store: Store, old: Path, new: Path, *, now: datetime, progress: Progress = None) -> Report:
    """Learn from an older version of a digest (read from its file, not imported), predict what the newer added."""
    from aggregator.learn.evaluate import old_to_new, run

    old_digest, old_month = _read(old)
    new_digest, new_month = _read(new)
    background = store.fetched_posts()
    fetched = {c.url: c for c in background}
    tree = new_digest.sections
    covers = covered_months([e.month for e in new_digest.entries]) or [new_month]
    split = old_to_new(_as_labels(old_digest, old_month, tree, fetched), _as_labels(new_digest, new_month, tree, fetched),
                       background, [month_bounds(m) for m in covers])
    if not split.test:
        raise DigestError(f"{new}: adds no entry to {old}")
    return run(f"{old.name} -> {new.name}", [split], now=now, progress=progress)


def evaluate_loo(store: Store, edition: str | None, *, now: datetime, progress: Progress = None) -> Report:
    """Leave one out over one imported edition's picks (default: the newest), everything else learned."""
    from aggregator.learn.evaluate import leave_one_out, run

    labels = aligned_labels(store)
    editions = sorted({m for m, lb in labels if lb.selected})
    if not editions:
        raise ModelError("nothing to evaluate: import a digest first")
    edition = edition or editions[-1]
    if edition not in editions:
        raise ModelError(f"no imported digest for {edition} (imported: {', '.join(editions)})")
    splits = list(leave_one_out(labels, store.fetched_posts(), edition))
    return run(f"leave one out, {edition}", splits, now=now, progress=progress)
