"""Training and applying the section and priority models that place candidates in a draft."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from aggregator import __version__
from aggregator.errors import ModelError
from aggregator.models import Candidate, Label, Prediction, SectionPath

FORMAT_VERSION = 1
MODEL_FILE = "model.joblib"
META_FILE = "meta.json"

SECTION_SEP = " > "
TITLE_CHARS = 300  # what the model reads of a title ...
SUMMARY_CHARS = 300  # ... and of a summary: the opening says what a post is about, and it bounds the cost
MAX_FEATURES = 2**18
SECTION_C = 10.0  # inverse L2 strength; TF-IDF rows are unit length, so weak regularisation suits
PRIORITY_C = 1.0
MAX_ITER = 1000
MIN_PER_CLASS = 5  # positives and negatives needed each before priority becomes a classifier
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
_STATE_KEYS = (
    "features",
    "section_clf",
    "sections",
    "section_weights",
    "priority_clf",
    "centroids",
    "similarity_ref",
)

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]*)[^/?#]*([^?#]*)")  # host, path
_WORD = re.compile(r"\w\w+")
_HANGUL = re.compile("[\uac00-\ud7a3]")
_HANGUL_PAIR = re.compile("(?=([\uac00-\ud7a3]{2}))")  # overlapping syllable bigrams
_REASON_SPLIT = re.compile(r"[ /]")  # "aws.amazon.com/blogs" repeats "aws.amazon.com"
_HANGUL_MARK = "~"
_META_MARK = "="
_NOT_A_REASON = 2


# --- what the model sees -------------------------------------------------------------------------


def candidate_text(c: Candidate) -> str:
    """The document the models read for a candidate: title, summary opening and feed tokens, one per line."""
    return _document(c, extra="")


def _document(c: Candidate, extra: str) -> str:
    title = _clip(c.title, TITLE_CHARS)
    body = _clip(c.summary, SUMMARY_CHARS)
    if extra:
        body = f"{body} {_clip(extra, SUMMARY_CHARS)}"
    return f"{title}\n{body}\n{' '.join(_feed_tokens(c))}"


def _clip(text: str, limit: int) -> str:
    """Whitespace collapsed to single spaces, cut to `limit` characters."""
    return " ".join(text[: 4 * limit].split())[:limit]


def _feed_tokens(c: Candidate) -> list[str]:
    """Where a post comes from: host, host plus first path segment, source and feed names."""
    tokens = []
    match = _URL.match(c.url)
    host = match.group(1).lower().removeprefix("www.") if match else ""
    if host:
        tokens.append(f"host={host}")
        segments = [s for s in match.group(2).split("/") if s and len(s) != 2 and not s.isdigit()]
        if segments:  # "aws.amazon.com/blogs", "medium.com/airbnb-engineering"; skips "/ko/" and years
            tokens.append(f"site={host}/{segments[0].lower()}")
    for key, value in (("source", c.source), ("feed", c.feed or "")):
        value = "_".join(value.lower().split())
        if value:
            tokens.append(f"{key}={value}")
    return tokens


def analyze(doc: str) -> list[str]:
    """Features of a document from `candidate_text`: words of title and summary, title word bigrams,
    feed tokens, and Hangul syllable bigrams (Korean attaches particles to words: 서빙을, 서빙으로).

    Character n-grams over the whole text would read Korean and English alike, but cost ~30 s per
    100k candidates here, so only Hangul gets them.
    """
    title, _, rest = doc.lower().partition("\n")
    body, _, feed = rest.partition("\n")
    title_words = _WORD.findall(title)
    features = _WORD.findall(body)
    features += title_words  # title words count twice: titles say most
    features += [f"{a} {b}" for a, b in zip(title_words, title_words[1:])]
    features += feed.split()
    if _HANGUL.search(title) or _HANGUL.search(body):
        features += [_HANGUL_MARK + p for p in _HANGUL_PAIR.findall(f"{title} {body}")]
    return features


def build_features() -> TfidfVectorizer:
    """TF-IDF over `analyze` features; fitted once on every labelled post and shared by both models."""
    return TfidfVectorizer(
        analyzer=analyze, sublinear_tf=True, max_features=MAX_FEATURES, dtype=np.float64
    )


def build_section_pipeline(seed: int = 0) -> Pipeline:
    """The section model: TF-IDF features -> multinomial logistic regression over leaf sections."""
    clf = LogisticRegression(C=SECTION_C, max_iter=MAX_ITER, random_state=seed)
    return Pipeline([("features", build_features()), ("clf", clf)])


def build_priority_classifier(seed: int = 0) -> LogisticRegression:
    """The priority model when there are enough positives and negatives: P(selected) on the same features."""
    return LogisticRegression(
        C=PRIORITY_C, class_weight="balanced", max_iter=MAX_ITER, random_state=seed
    )


def section_key(section: SectionPath) -> str:
    return SECTION_SEP.join(section)


# --- training -----------------------------------------------------------------------------------


def train(labels: Sequence[Label], *, seed: int = 0, now: datetime) -> Model:
    """Fit both models on the editor's decisions. Input order does not matter.

    Runs on one thread: with two BLAS/OpenMP threads on two cores, fitting 10k labels took 7-19 s
    instead of 5 s whenever another process was busy too (measured with benchmarks/bench_classify.py).

    The vocabulary and IDF are fitted on every labelled post (selected or not), so the priority
    model also knows the words of posts the editor left out. The section classifier learns from
    selected posts with a section; each one with an editor summary is seen twice, without and with
    the summary appended, at half weight each, so the summary enriches the vocabulary while the
    model still fits documents shaped like candidates. The priority classifier is fitted on
    candidate documents only: only selected posts have summaries, so they would leak the answer.
    A section on a post that was not selected is ignored.
    """
    with threadpool_limits(limits=1):
        return _train(sorted(labels, key=_label_order), seed=seed, now=now)


def _train(ordered: list[Label], *, seed: int, now: datetime) -> Model:
    if not any(label.selected for label in ordered):
        raise ModelError("no selected posts to learn from: import a digest first")
    sectioned = [lb for lb in ordered if lb.selected and lb.section]
    if not sectioned:
        raise ModelError("no selected posts with a section to learn from: import a digest first")

    base_docs = [candidate_text(lb.candidate) for lb in ordered]
    enriched = [lb for lb in sectioned if lb.editor_summary.strip()]
    extra_docs = [_document(lb.candidate, lb.editor_summary) for lb in enriched]

    section_pipeline = build_section_pipeline(seed)
    features: TfidfVectorizer = section_pipeline.named_steps["features"]
    x_all = features.fit_transform(base_docs + extra_docs)
    x_base, x_extra = x_all[: len(base_docs)], x_all[len(base_docs) :]

    sectioned_rows = [i for i, lb in enumerate(ordered) if lb.selected and lb.section]
    x_section = sp.vstack([x_base[sectioned_rows], x_extra]).tocsr()
    y_section = [section_key(lb.section) for lb in sectioned] + [
        section_key(lb.section) for lb in enriched
    ]
    weights = np.array(
        [0.5 if lb.editor_summary.strip() else 1.0 for lb in sectioned] + [0.5] * len(enriched)
    )
    path_of = {section_key(lb.section): tuple(lb.section) for lb in sectioned}
    sections = sorted(path_of)  # LogisticRegression.classes_ has the same order
    section_clf: LogisticRegression | None = None
    if len(sections) == 1:
        section_weights = _unit_rows(np.asarray(x_section.mean(axis=0)))
    else:
        section_clf = section_pipeline.named_steps["clf"]
        section_clf.fit(x_section, y_section, sample_weight=weights)
        section_weights = _class_weights(section_clf)

    selected = np.array([lb.selected for lb in ordered])
    n_pos, n_neg = int(selected.sum()), int((~selected).sum())
    priority_clf: LogisticRegression | None = None
    centroids: np.ndarray | None = None
    similarity_ref = 0.0
    if n_pos >= MIN_PER_CLASS and n_neg >= MIN_PER_CLASS:
        priority_clf = build_priority_classifier(seed).fit(x_base, selected)
        mode = "classifier"
    else:
        positive_rows = x_base[np.flatnonzero(selected)]
        centroids = _centroids(positive_rows, [lb.section for lb in ordered if lb.selected])
        similarity_ref = float(np.median(_similarity(positive_rows, centroids)))
        mode = "similarity"

    state = {
        "features": features,
        "section_clf": section_clf,
        "sections": [path_of[s] for s in sections],
        "section_weights": section_weights,
        "priority_clf": priority_clf,
        "centroids": centroids,
        "similarity_ref": similarity_ref,
    }
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
        "n_negatives": n_neg,
        "n_sectioned": len(sectioned),
        "n_with_editor_summary": len(enriched),
        "label_counts": dict(sorted(Counter(section_key(lb.section) for lb in sectioned).items())),
        "sections": [list(s) for s in state["sections"]],
        "priority_mode": mode,
        "n_features": len(features.vocabulary_),
        "model_sha256": None,  # filled in by save()
    }
    return Model(state, meta)


def _label_order(label: Label) -> tuple[Any, ...]:
    c = label.candidate
    return (
        c.url,
        c.title,
        c.summary,
        c.source,
        c.feed or "",
        c.published.isoformat(),
        c.id,
        label.section or (),
        label.selected,
        label.editor_summary,
    )


def _class_weights(clf: LogisticRegression) -> np.ndarray:
    """One weight row per class (a binary model stores one row, for the second class)."""
    coef = np.asarray(clf.coef_)
    return np.vstack([-coef[0], coef[0]]) if coef.shape[0] == 1 else coef


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1.0, norms)


def _centroids(rows: sp.csr_matrix, sections: list[SectionPath | None]) -> np.ndarray:
    """Unit-length mean vector of the selected posts of each section (and of those without one)."""
    keys = sorted({section_key(s) if s else "" for s in sections})
    groups = [[i for i, s in enumerate(sections) if (section_key(s) if s else "") == k] for k in keys]
    return _unit_rows(np.vstack([np.asarray(rows[g].mean(axis=0)) for g in groups]))


def _similarity(x: sp.csr_matrix, centroids: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row to the nearest centroid (rows are unit length already)."""
    return np.asarray(x @ centroids.T).max(axis=1)


# --- prediction ---------------------------------------------------------------------------------


class Model:
    """The fitted section and priority models, with their metadata.

    `meta` is what meta.json holds: trained_at, versions, label counts per section, n_examples,
    n_positives, n_negatives, priority_mode ("classifier" or "similarity"), and so on.
    """

    def __init__(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self._state = state
        self.meta = meta
        self.features: TfidfVectorizer = state["features"]
        self.sections: list[SectionPath] = [tuple(s) for s in state["sections"]]
        self._display, self._rank = _feature_display(self.features.get_feature_names_out())

    @property
    def section_pipeline(self) -> Pipeline | None:
        """The fitted section model as one Pipeline over `candidate_text` documents; None with one section."""
        clf = self._state["section_clf"]
        return None if clf is None else Pipeline([("features", self.features), ("clf", clf)])

    @property
    def priority_mode(self) -> str:
        return "classifier" if self._state["priority_clf"] is not None else "similarity"

    def predict(self, candidates: Sequence[Candidate]) -> list[Prediction]:
        """Section, confidence, priority and reasons for each candidate, in input order."""
        out: list[Prediction] = []
        for start in range(0, len(candidates), PREDICT_BATCH):
            batch = candidates[start : start + PREDICT_BATCH]
            x = self.features.transform([candidate_text(c) for c in batch])
            out.extend(self._predict_rows(x))
        return out

    def _predict_rows(self, x: sp.csr_matrix) -> list[Prediction]:
        st = self._state
        if st["section_clf"] is None:
            chosen = np.zeros(x.shape[0], dtype=np.intp)
            confidence = np.ones(x.shape[0])
        else:
            proba = st["section_clf"].predict_proba(x)
            chosen = proba.argmax(axis=1)
            confidence = proba[np.arange(x.shape[0]), chosen]
        if st["priority_clf"] is not None:
            priority = st["priority_clf"].predict_proba(x)[:, 1]
        else:
            priority = _squash(_similarity(x, st["centroids"]), st["similarity_ref"])
        reasons = _reasons(x, chosen, st["section_weights"], self._display, self._rank)
        sections = self.sections
        return [
            Prediction(section=sections[k], section_confidence=c, priority=p, reasons=r)
            for k, c, p, r in zip(chosen.tolist(), confidence.tolist(), priority.tolist(), reasons)
        ]


def _squash(similarity: np.ndarray, ref: float) -> np.ndarray:
    """Map similarity to 0..1, 0.5 at the median similarity of the selected posts themselves."""
    r = similarity / (ref if ref > 0 else 1.0)
    return r / (1.0 + r)


def _feature_display(names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Readable text of each feature, and its rank as a reason: content words and feed tokens (0)
    before Hangul syllable pairs (1); stop words and numbers (2) are never shown."""
    display, rank = [], np.zeros(len(names), dtype=np.int8)
    for i, name in enumerate(names):
        if name.startswith(_HANGUL_MARK):
            display.append(name[len(_HANGUL_MARK) :])
            rank[i] = 1
        elif _META_MARK in name and " " not in name:
            display.append(name.split(_META_MARK, 1)[1])
        else:
            display.append(name)
            if all(w in ENGLISH_STOP_WORDS or w.isdigit() for w in name.split()):
                rank[i] = _NOT_A_REASON
    return display, rank


def _reasons(
    x: sp.csr_matrix,
    chosen: np.ndarray,
    weights: np.ndarray,
    display: list[str],
    rank: np.ndarray,
) -> list[tuple[str, ...]]:
    """The features that pushed each row most towards its chosen section (weight x tf-idf > 0)."""
    x = x.tocsr()
    n = x.shape[0]
    rows = np.repeat(np.arange(n), np.diff(x.indptr))
    cols = x.indices
    contribution = x.data * weights[chosen[rows], cols]
    helps = (contribution > 0) & (rank[cols] < _NOT_A_REASON)
    rows, cols, contribution = rows[helps], cols[helps], contribution[helps]
    # per row: words before syllables, then by contribution, ties by column (deterministic)
    order = np.lexsort((cols, -contribution, rank[cols], rows))
    cols_sorted = cols[order].tolist()
    bounds = np.searchsorted(rows[order], np.arange(n + 1)).tolist()
    out = []
    for i in range(n):
        chosen_texts: list[str] = []
        used: set[str] = set()  # words already shown: no "sagemaker" then "amazon sagemaker"
        for col in cols_sorted[bounds[i] : bounds[i + 1]]:
            text = display[col]
            words = set(_REASON_SPLIT.split(text))
            if not words & used:
                chosen_texts.append(text)
                used |= words
                if len(chosen_texts) == N_REASONS:
                    break
        out.append(tuple(chosen_texts))
    return out


# --- persistence --------------------------------------------------------------------------------


def save(model: Model, directory: Path) -> None:
    """Write model.joblib, then meta.json into `directory`, replacing what was there.

    The model file's SHA-256 goes into `model.meta["model_sha256"]` and meta.json, so `load` can
    tell a damaged or half-written model from a good one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    model_path, meta_path = directory / MODEL_FILE, directory / META_FILE
    tmp_model = model_path.with_name(MODEL_FILE + ".tmp")
    joblib.dump(model._state, tmp_model, compress=3)
    digest = _sha256(tmp_model)
    os.replace(tmp_model, model_path)
    model.meta["model_sha256"] = digest
    tmp_meta = meta_path.with_name(META_FILE + ".tmp")
    tmp_meta.write_text(json.dumps(model.meta, indent=2, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp_meta, meta_path)


def load(directory: Path) -> Model:
    """Read a model written by `save`; ModelError if it is missing, damaged or from another scikit-learn.

    The SHA-256 check catches damage, not tampering: joblib files run code when loaded, so only
    load models this program wrote.
    """
    retrain = "run `aggregator train` again"
    if not directory.is_dir():
        raise ModelError(f"no model in {directory}: run `aggregator train` first")
    model_path, meta_path = directory / MODEL_FILE, directory / META_FILE
    for path in (meta_path, model_path):
        if not path.is_file():
            raise ModelError(f"model in {directory} is incomplete ({path.name} is missing); {retrain}")
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"model in {directory} has a damaged {META_FILE}; {retrain}") from e
    if not isinstance(meta, dict):
        raise ModelError(f"model in {directory} has a damaged {META_FILE}; {retrain}")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ModelError(f"model in {directory} lacks {', '.join(missing)} in {META_FILE}; {retrain}")
    if meta["format"] != FORMAT_VERSION:
        raise ModelError(
            f"model in {directory} has format {meta['format']}, this aggregator reads {FORMAT_VERSION}; {retrain}"
        )
    if _major_minor(str(meta["sklearn_version"])) != _major_minor(sklearn.__version__):
        raise ModelError(
            f"model in {directory} was trained with scikit-learn {meta['sklearn_version']} "
            f"(installed: {sklearn.__version__}); {retrain}"
        )
    if _sha256(model_path) != meta["model_sha256"]:
        raise ModelError(f"model in {directory} is damaged ({MODEL_FILE} does not match {META_FILE}); {retrain}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            state = joblib.load(model_path)
    except Exception as e:  # a damaged pickle can raise nearly anything; all mean "retrain"
        raise ModelError(f"model in {directory} cannot be read ({type(e).__name__}); {retrain}") from e
    if not isinstance(state, dict) or any(k not in state for k in _STATE_KEYS):
        raise ModelError(f"model in {directory} is not an aggregator model; {retrain}")
    return Model(state, meta)


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
