"""Training and applying the section and priority models, with their reasons in words."""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from threadpoolctl import threadpool_limits

from aggregator import __version__
from aggregator.errors import ModelError
from aggregator.learn.features import (HANGUL_MARK, LEXICON_COLUMNS, LEXICON_SCALE, META_MARK, PREFIX_MARK,
                                       TOPIC_KEYS, ai_words, build_features, matrix, matrix_and_words,
                                       opening_as_title, title_only)
from aggregator.learn.priority import PriorityModel, fit_priority
from aggregator.learn.sections import SectionModel, fit_sections, heading_name, section_key
from aggregator.links import Site
from aggregator.models import Candidate, Label, Prediction, SectionPath

FORMAT_VERSION = 4  # of the files learn/model_file.py writes (4: the priority knows sites' pick rates and scope)
N_REASONS = 3
PREDICT_BATCH = 8192

META_KEYS = (
    "format",
    "trained_at",
    "sklearn_version",
    "python_version",
    "aggregator_version",
    "seed",
    "n_examples",
    "n_positives",
    "n_negatives",
    "label_counts",
    "sections",
    "priority_mode",
    "model_sha256",
)

# --- training -----------------------------------------------------------------------------------


def train(labels: Sequence[Label], *, background: Sequence[Candidate] = (), seed: int = 0, now: datetime) -> Model:
    """Fit both models on the editor's decisions, with `background` (fetched posts nobody decided on)
    as what an ordinary post looks like. Input order does not matter.

    Runs on one thread: with two BLAS/OpenMP threads on two cores, fitting 10k labels took 7-19 s
    instead of 5 s whenever another process was busy too (measured with benchmarks/bench_classify.py).

    Sections are learned from the picks' titles, hosts and sites only, never from editor summaries (the
    draft has none) nor openings (digest-only picks have none, so a model trained on a mix would
    read the presence of text as a section cue). A section on a post that was not selected is ignored.
    """
    with threadpool_limits(limits=1):
        labelled = {lb.candidate.url for lb in labels}
        extra = sorted({c.url: c for c in background if c.url not in labelled}.values(), key=_candidate_order)
        return _train(sorted(labels, key=_label_order), extra, seed=seed, now=now)


def _train(ordered: list[Label], background: list[Candidate], *, seed: int, now: datetime) -> Model:
    if not any(label.selected for label in ordered):
        raise ModelError("no selected posts to learn from: import a digest first")
    sectioned = [lb for lb in ordered if lb.selected and lb.section]
    if not sectioned:
        raise ModelError("no selected posts with a section to learn from: import a digest first")

    candidates = [lb.candidate for lb in ordered] + background
    features = build_features()
    x = matrix(features, candidates, fit=True)
    rows = [i for i, lb in enumerate(ordered) if lb.selected and lb.section]
    paths = [tuple(lb.section or ()) for lb in sectioned]
    sites = [(site.host, site.key) for site in (Site.of(lb.candidate.url) for lb in sectioned)]
    section_model = fit_sections(title_only(x[rows]), paths, np.ones(len(rows)), sites, features, seed)

    selected = np.array([lb.selected for lb in ordered] + [False] * len(background))
    known = np.array([True] * len(ordered) + [False] * len(background))
    all_sites = [Site.of(c.url).key for c in candidates]
    priority_model = fit_priority(x, selected, known, all_sites, [c.url for c in candidates], seed)

    picks_by_site: dict[str, Counter[str]] = defaultdict(Counter)
    for lb in ordered:
        picks_by_site[Site.of(lb.candidate.url).key][section_key(lb.section) if lb.selected and lb.section else ""] += 1
    state = {
        "features": features,
        "section": section_model,
        "priority": priority_model,
        "sites": {k: dict(v) for k, v in sorted(picks_by_site.items())},
    }
    n_pos = int(selected.sum())
    meta = {
        "format": FORMAT_VERSION,
        "trained_at": now.isoformat(),
        "sklearn_version": sklearn.__version__,
        "python_version": sys.version.split()[0],
        "numpy_version": np.__version__,
        "aggregator_version": __version__,
        "seed": seed,
        "n_examples": len(ordered),
        "n_positives": n_pos,
        "n_negatives": len(ordered) - n_pos,
        "n_background": len(background),
        "n_sectioned": len(sectioned),
        "label_counts": dict(sorted(Counter(section_key(p) for p in paths).items())),
        "sections": [list(s) for s in section_model.leaves],
        "exclusive_sections": section_model.exclusive,
        "priority_mode": priority_model.kind,
        "n_features": len(features.vocabulary_),
        "model_sha256": None,  # filled in by save()
    }
    return Model(state, meta)


def _candidate_order(c: Candidate) -> tuple[Any, ...]:
    return (c.url, c.title, c.summary, c.source, c.feed or "", c.published.isoformat(), c.id)


def _label_order(label: Label) -> tuple[Any, ...]:
    return (*_candidate_order(label.candidate), label.section or (), label.selected, label.editor_summary)


# --- prediction ---------------------------------------------------------------------------------


class Model:
    """The fitted section and priority models, with their metadata.

    `meta` is what meta.json holds: trained_at, versions, label counts per section, n_examples,
    n_positives, n_negatives, n_background, priority_mode ("classifier", "background" or "prior"), and so on.
    """

    def __init__(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self._state = state
        self.meta = meta
        self.features: TfidfVectorizer = state["features"]
        self._section: SectionModel = state["section"]
        self.sections: list[SectionPath] = list(self._section.leaves)
        self._priority: PriorityModel = state["priority"]
        self._sites: dict[str, dict[str, int]] = state["sites"]
        self._names = [n for n in self.features.get_feature_names_out()] + list(LEXICON_COLUMNS)
        self._display = [_display(n) for n in self._names]

    @property
    def priority_mode(self) -> str:
        """Which kind of priority model the decisions allowed: "classifier", "background" or "prior"."""
        return self._priority.kind

    def cut(self, priorities: Sequence[float]) -> tuple[float, str]:
        """The priority a post needs to be selected among `priorities`, and why (see PriorityModel.cut)."""
        return self._priority.cut(priorities)

    def predict(self, candidates: Sequence[Candidate]) -> list[Prediction]:
        """Section, confidence, priority and reasons for each candidate, in input order."""
        out: list[Prediction] = []
        for start in range(0, len(candidates), PREDICT_BATCH):
            batch = candidates[start : start + PREDICT_BATCH]
            out.extend(self._predict_batch(batch, *matrix_and_words(self.features, batch)))
        return out

    def _predict_batch(self, batch: Sequence[Candidate], x: sp.csr_matrix, terms: list[set[str]]) -> list[Prediction]:
        sites = [(site.host, site.key) for site in (Site.of(c.url) for c in batch)]
        site_keys = [key for _, key in sites]
        titled = title_only(x)
        proba = self._section.proba(titled, site_keys)
        blind = self._title_says_nothing(x)
        if blind.any():  # a title the section model cannot read: let the opening's vocabulary speak
            rows = np.flatnonzero(blind)
            proba[rows] = self._section.proba(opening_as_title(x[rows]), [site_keys[i] for i in rows])
        chosen = proba.argmax(axis=1)
        confidence = proba[np.arange(len(batch)), chosen]
        priority = self._priority.proba(x, site_keys, [c.url for c in batch])
        n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
        lex = np.asarray(x[:, n_tfidf:].todense())
        scope = lex[:, LEXICON_COLUMNS.index("scope:title")] + lex[:, LEXICON_COLUMNS.index("scope:opening")]
        has_code = lex[:, LEXICON_COLUMNS.index("open:code")] > 0
        words = self._section_words(titled, [self.sections[k] for k in chosen.tolist()], [c.title for c in batch])
        out = []
        for i in range(len(batch)):
            section = self.sections[int(chosen[i])]
            reasons = ([f"{section[-1]}: {', '.join(words[i])}"] if words[i] else [])
            reasons += self._site_reason(site_keys[i], section)
            if scope[i] < LEXICON_SCALE - 1e-9:
                reasons.append("little or no AI/ML vocabulary in title or opening")
            else:
                reasons.append("AI/ML words: " + ", ".join(ai_words(terms[i])[:N_REASONS]))
            if has_code[i]:
                reasons.append("code, a library or weights published")
            out.append(Prediction(section=section, section_confidence=float(confidence[i]),
                                  priority=float(priority[i]), reasons=tuple(reasons)))
        return out

    def _title_says_nothing(self, x: sp.csr_matrix) -> np.ndarray:
        """Rows whose title has no word the models were trained on and no built-in topic word."""
        n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
        words = np.array([META_MARK not in n for n in self._names[:n_tfidf]])  # not host= or site=
        has_word = np.asarray(x[:, :n_tfidf] @ words.astype(np.float64)).ravel() > 0
        topics = [n_tfidf + LEXICON_COLUMNS.index(f"topic:{k}") for k in TOPIC_KEYS]
        has_topic = np.asarray(x[:, topics].sum(axis=1)).ravel() > 0
        return ~has_word & ~has_topic

    def _site_reason(self, site: str, section: SectionPath) -> list[str]:
        """What the editor did with this site's posts before, in words."""
        history = self._sites.get(site)
        if not history:
            return []
        picks = sum(n for k, n in history.items() if k)
        same = history.get(section_key(section), 0)
        left_out = history.get("", 0)
        text = f"{site}: {picks} past picks"
        if same:
            text += f", {same} in {section[-1]}"
        if left_out:
            text += f", {left_out} left out"
        return [text]

    def _section_words(self, x: sp.csr_matrix, sections: list[SectionPath], titles: list[str]) -> list[list[str]]:
        """For each row, the title words that pushed it most towards its section in the flat and topic models.
        A Hangul syllable pair is shown only where a title word starts with it (학습 of 학습하는, not 하는)."""
        x = x.tocsr()
        contribution = np.zeros(x.nnz)
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        for clf, names in ((self._section.flat, [section_key(s) for s in sections]),
                           (self._section.topic, [heading_name(s[-1]) for s in sections])):
            if clf is None:
                continue
            weights = clf.class_rows()
            index = {c: i for i, c in enumerate(clf.classes_.tolist())}
            cls = np.array([index.get(n, -1) for n in names])
            known = cls[rows] >= 0
            contribution[known] += x.data[known] * weights[cls[rows][known], x.indices[known]]
        order = np.lexsort((x.indices, -contribution, rows))
        bounds = np.searchsorted(rows[order], np.arange(x.shape[0] + 1)).tolist()
        cols, values = x.indices[order].tolist(), contribution[order].tolist()
        out = []
        for i in range(x.shape[0]):
            shown: list[str] = []
            used: set[str] = set()
            for col, value in zip(cols[bounds[i] : bounds[i + 1]], values[bounds[i] : bounds[i + 1]]):
                if value <= 0 or len(shown) == N_REASONS:
                    break
                text = self._display[col]
                if text is None or set(text.split()) & used:
                    continue
                if self._names[col].startswith(HANGUL_MARK) and not any(
                        w.startswith(text) for w in titles[i].split()):
                    continue
                shown.append(text)
                used |= set(text.split())
            out.append(shown)
        return out


def _display(name: str) -> str | None:
    """A feature as an editor reads it, or None when it means nothing to them."""
    if name.startswith(HANGUL_MARK):
        return name[1:]
    if name.startswith("topic:") and name.count(":") == 1:
        return f"{name[6:]} vocabulary"
    if name.startswith(PREFIX_MARK) or META_MARK in name or name in LEXICON_COLUMNS:
        return None
    if all(w in ENGLISH_STOP_WORDS or w.isdigit() for w in name.split()):
        return None
    return name
