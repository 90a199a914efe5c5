"""The learning jobs: importing digests as labels, training the models, and the month-by-month backtest."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aggregator.learn.digest_reader import read_digest
from aggregator.errors import DigestError, ModelError
from aggregator.learn.labels import align_section, covered_months, digest_month, import_entries
from aggregator.models import DigestStyle, Label, SectionPath
from aggregator.store import ImportReport, Store


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


@dataclass(frozen=True)
class MonthScore:
    """Backtest figures for one month: trained on the months before it."""

    month: str
    train_labels: int
    selected: int
    negatives: int
    section_accuracy: float | None
    section_macro_f1: float | None
    precision_at_k: float | None
    recall_at_k: float | None
    average_precision: float | None


def backtest(labels: Sequence[tuple[str, Label]], *, now: datetime, seed: int = 0) -> list[MonthScore]:
    """For each month m with history before it: train on earlier months, score m's decisions."""
    from sklearn.metrics import average_precision_score, f1_score

    from aggregator.learn.classify import train

    months = sorted({m for m, _ in labels})
    scores = []
    for month in months[1:]:
        history = [lb for m, lb in labels if m < month]
        test = [lb for m, lb in labels if m == month]
        try:
            model = train(history, seed=seed, now=now)
        except ModelError:
            continue
        predictions = model.predict([lb.candidate for lb in test])
        chosen = [(lb, p) for lb, p in zip(test, predictions) if lb.selected and lb.section]
        accuracy = f1 = None
        if chosen:
            truth = [" > ".join(lb.section or ()) for lb, _ in chosen]
            guess = [" > ".join(p.section) for _, p in chosen]
            accuracy = sum(t == g for t, g in zip(truth, guess)) / len(chosen)
            f1 = float(f1_score(truth, guess, labels=sorted(set(truth)), average="macro", zero_division=0))
        selected = [lb.selected for lb in test]
        n_sel, n_neg = sum(selected), len(selected) - sum(selected)
        p_at_k = r_at_k = ap = None
        if n_sel and n_neg:
            order = sorted(range(len(test)), key=lambda i: -(predictions[i].priority or 0.0))
            hits = sum(selected[i] for i in order[:n_sel])
            p_at_k = r_at_k = hits / n_sel  # k = the number the editor selected, so both coincide
            ap = float(average_precision_score(selected, [p.priority or 0.0 for p in predictions]))
        scores.append(MonthScore(month, len(history), n_sel, n_neg, accuracy, f1, p_at_k, r_at_k, ap))
    return scores
