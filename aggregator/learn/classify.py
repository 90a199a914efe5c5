"""The section and priority models: features of a post, sections through the taxonomy's structure, a calibrated pick probability."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import warnings
from collections import Counter, defaultdict
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
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from aggregator import __version__
from aggregator.errors import ModelError
from aggregator.learn import lexicon
from aggregator.models import Candidate, Label, Prediction, SectionPath

FORMAT_VERSION = 2
MODEL_FILE = "model.joblib"
META_FILE = "meta.json"

SECTION_SEP = " > "
TITLE_CHARS = 300  # what the model reads of a title ...
SUMMARY_CHARS = 300  # ... and of a summary: the opening says what a post is about, and it bounds the cost
MAX_FEATURES = 2**18
SECTION_C = 10.0  # inverse L2 strength; TF-IDF rows are unit length, so weak regularisation suits
PRIORITY_C = 1.0
MAX_ITER = 1000
MIN_PER_CLASS = 5  # picks and known non-picks needed before priority is a classifier
MIN_BACKGROUND = 50  # undecided fetched posts needed to learn priority from them alone: fewer say little
CV_FOLDS = 5  # out-of-fold scores calibrate the priority
PRIOR_WEIGHT = 2.0  # a section name's built-in vocabulary counts as this many examples of it ...
PRIOR_TERM_WEIGHT = 0.1  # ... and each of its words as this many (0: the words as one example)
LEXICON_SCALE = 0.5  # a lexicon feature's value when a group's terms occur (TF-IDF rows have unit length)
EXCLUSIVE_MIN = 3  # picks, all from one site, that make a section that site's own ("3. AWS ML Only")
BACKGROUND_WEIGHT = 0.3  # weight of a background post as a non-pick when known non-picks exist
CUT_FLOOR = 0.25  # the draft never selects a post less likely than this to be picked
PRIOR_CUT = 0.5  # the cut before anything but picks is known
SECTION_CLASS_WEIGHT = "balanced"  # a section's few picks weigh as much as a big one's: the prior is not the answer
FLAT_WEIGHT = 1.0  # the leaf classifier's say beside the top-level and topic classifiers
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
_STATE_KEYS = ("features", "sections", "section", "priority", "sites")

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]*)[^/?#]*([^?#]*)")  # host, path
_WORD = re.compile(r"\w\w+")
_HANGUL = re.compile("[\uac00-\ud7a3]")
_HANGUL_PAIR = re.compile("(?=([\uac00-\ud7a3]{2}))")  # overlapping syllable bigrams
_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)*\.?\s*")
_HANGUL_MARK = "~"
_PREFIX_MARK = "^"
_META_MARK = "="
_PREFIX = 5  # "recommendation" and "recommender" share "recom": a cheap stem for tiny corpora

# The dense lexicon columns appended to the TF-IDF features, in order.
_TOPIC_KEYS = [t.key for t in lexicon.TOPICS]
_KIND_KEYS = [t.key for t in lexicon.KINDS]
_GROUPS = lexicon.Groups({**{f"topic:{t.key}": t.terms for t in lexicon.TOPICS},
                          **{f"kind:{t.key}": t.terms for t in lexicon.KINDS},
                          "scope": lexicon.SCOPE, "weak": lexicon.WEAK_SCOPE, "open": lexicon.OPEN})
_SCOPE_WORDS = lexicon.Matcher([*lexicon.SCOPE, *lexicon.WEAK_SCOPE])
LEXICON_COLUMNS = (
    [f"topic:{k}" for k in _TOPIC_KEYS]
    + [f"kind:{k}" for k in _KIND_KEYS]
    + ["scope:title", "scope:opening", "open:code", "host:research"]
    + [f"topic:{k}:opening" for k in _TOPIC_KEYS]
)


# --- what the models see -------------------------------------------------------------------------


def title_document(c: Candidate) -> str:
    """What the TF-IDF features read: the title and where the post comes from. The opening is read only
    through the lexicon: boilerplate ("Amazon SageMaker is a fully managed service ...") opens many
    unrelated posts, and posts known only from a digest have no opening at all.

    Where a post comes from is its link's host and site only. The source and feed names differ between a
    post known from a digest (the source the editor printed, no feed) and the same post fetched (the
    feed's source and name), and the house style prints no source in "3. AWS ML Only": a model that read
    them would learn the editor's formatting, not the post."""
    tokens = [t for t in feed_tokens(c) if t.startswith(("host=", "site="))]
    return f"{_clip(c.title, TITLE_CHARS)}\n\n{' '.join(tokens)}"


def _clip(text: str, limit: int) -> str:
    """Whitespace collapsed to single spaces, cut to `limit` characters."""
    return " ".join(text[: 4 * limit].split())[:limit]


def site_of(url: str) -> tuple[str, str]:
    """(host, host plus first path segment): "aws.amazon.com", "aws.amazon.com/blogs" (skips "/ko/" and years)."""
    match = _URL.match(url)
    host = match.group(1).lower().removeprefix("www.") if match else ""
    if not host:
        return "", ""
    segments = [s for s in match.group(2).split("/") if s and len(s) != 2 and not s.isdigit()]  # type: ignore[union-attr]
    return host, f"{host}/{segments[0].lower()}" if segments else host


def feed_tokens(c: Candidate) -> list[str]:
    """Where a post comes from: host, host plus first path segment, source and feed names."""
    host, site = site_of(c.url)
    tokens = []
    if host:
        tokens.append(f"host={host}")
        if site != host:
            tokens.append(f"site={site}")
    for key, value in (("source", c.source), ("feed", c.feed or "")):
        value = "_".join(value.lower().split())
        if value:
            tokens.append(f"{key}={value}")
    return tokens


def analyze(doc: str) -> list[str]:
    """Features of a document from `title_document` (title, an empty line, host and site tokens): words,
    title word bigrams, five-letter word prefixes, feed tokens, and Hangul syllable bigrams (Korean
    attaches particles to words: 서빙을, 서빙으로).

    Character n-grams over the whole text would read Korean and English alike, but cost ~30 s per
    100k candidates here, so only Hangul gets them.
    """
    title, _, rest = doc.lower().partition("\n")
    body, _, feed = rest.partition("\n")
    title_words = _WORD.findall(title)
    features = _WORD.findall(body)
    features += title_words
    features += [f"{a} {b}" for a, b in zip(title_words, title_words[1:])]
    features += [_PREFIX_MARK + w[:_PREFIX] for w in title_words if len(w) > _PREFIX and w.isascii()]
    features += feed.split()
    if _HANGUL.search(title) or _HANGUL.search(body):
        features += [_HANGUL_MARK + p for p in _HANGUL_PAIR.findall(f"{title} {body}")]
    return features


def build_features() -> TfidfVectorizer:
    """TF-IDF over `analyze` features of title documents; fitted once per training and shared by every model.

    Character 2-4-grams of the title beside these were measured (eval on the seeds and two curated
    histories): +0.03 leaf accuracy on the seeds, -0.01 on NLP-Paper-News, and scoring 100k posts
    took 13.2 s instead of 6.1 s; left out."""
    return TfidfVectorizer(analyzer=analyze, sublinear_tf=True, max_features=MAX_FEATURES, dtype=np.float64)


def lexicon_features(c: Candidate) -> list[float]:
    """The `LEXICON_COLUMNS` of one post: which built-in vocabulary groups its title and opening use."""
    title = dict(zip(_GROUPS.names, _GROUPS.counts(_clip(c.title, TITLE_CHARS))))
    opening = dict(zip(_GROUPS.names, _GROUPS.counts(_clip(c.summary, SUMMARY_CHARS)))) if c.summary else {}
    row = [min(title[f"topic:{k}"], 2) / 2 for k in _TOPIC_KEYS]
    row += [min(title[f"kind:{k}"], 2) / 2 for k in _KIND_KEYS]
    row += [_scope(title), _scope(opening),
            float(bool(title["open"] or opening.get("open") or "github.com" in c.url)),
            float(_research_lab(c.url))]
    row += [min(opening.get(f"topic:{k}", 0), 2) / 2 for k in _TOPIC_KEYS]
    return row


def _research_lab(url: str) -> bool:
    """Whether a link points into a research lab's site: by its host (ai.googleblog.com, deepmind.com)
    or a leading path segment named "research" (microsoft.com/en-us/research/blog/...)."""
    match = _URL.match(url)
    if not match:
        return False
    host = match.group(1).lower()
    segments = match.group(2).lower().split("/")[1:4]
    return any(h in host for h in lexicon.RESEARCH_HOSTS) or "research" in segments


def _scope(counts: dict[str, int]) -> float:
    """1 when a text has a strong AI/ML word or two weak ones, 0.5 for one weak word, else 0."""
    return min(counts.get("scope", 0) + counts.get("weak", 0) / 2, 1.0)


def section_key(section: SectionPath) -> str:
    return SECTION_SEP.join(section)


def _name(heading: str) -> str:
    """A heading without its number: "2.4. Training, Inference and MLOps" -> "training, inference and mlops"."""
    return _NUMBER.sub("", heading).strip().casefold()


def _matrix(features: TfidfVectorizer, candidates: Sequence[Candidate]) -> sp.csr_matrix:
    """TF-IDF of the title documents with the lexicon columns appended."""
    x = features.transform([title_document(c) for c in candidates])
    lex = np.array([lexicon_features(c) for c in candidates], dtype=np.float64).reshape(len(candidates), -1)
    return sp.hstack([x, sp.csr_matrix(lex * LEXICON_SCALE)], format="csr")


def _title_only(x: sp.csr_matrix) -> sp.csr_matrix:
    """The columns a title gives: the opening's lexicon columns zeroed (sections are read from titles)."""
    x = x.tocsr(copy=True)
    n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
    keep = np.ones(x.shape[1])
    keep[n_tfidf + LEXICON_COLUMNS.index("scope:opening")] = 0
    for k in _TOPIC_KEYS:
        keep[n_tfidf + LEXICON_COLUMNS.index(f"topic:{k}:opening")] = 0
    return (x @ sp.diags(keep)).tocsr()


def _opening_as_title(x: sp.csr_matrix) -> sp.csr_matrix:
    """The opening's topic columns moved into the title's topic columns: used to file a post whose title
    says nothing the section model knows."""
    x = x.tolil(copy=True)
    n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
    for k in _TOPIC_KEYS:
        src = n_tfidf + LEXICON_COLUMNS.index(f"topic:{k}:opening")
        dst = n_tfidf + LEXICON_COLUMNS.index(f"topic:{k}")
        x[:, dst] = x[:, src]
    return _title_only(x.tocsr())


# --- sections -------------------------------------------------------------------------------------


class SectionModel:
    """P(leaf section | post): a flat classifier over the leaves, times a top-level classifier and a
    topic classifier when the taxonomy is two-level. Topic subsections that repeat under several
    parents ("CV" under "1. Research" and "2. Business Cases") share one topic class, so what is
    learned about NLP under one parent helps the others. A section whose picks all come from one site
    (the house style's "3. AWS ML Only") is closed to posts from any other site."""

    def __init__(self, leaves: list[SectionPath], flat: LogisticRegression | None, top: LogisticRegression | None,
                 topic: LogisticRegression | None, exclusive: dict[str, str]) -> None:
        self.leaves = leaves
        self.flat, self.top, self.topic = flat, top, topic
        self.exclusive = exclusive  # section key (top or leaf) -> the one site allowed in it

    def proba(self, x: sp.csr_matrix, sites: Sequence[tuple[str, str]]) -> np.ndarray:
        n = x.shape[0]
        log_p = np.zeros((n, len(self.leaves)))
        factored = self.top is not None and self.topic is not None
        if self.flat is not None:
            log_p += (FLAT_WEIGHT if factored else 1.0) * _log(_proba_in(self.flat, x, [section_key(s) for s in self.leaves]))
        if self.top is not None and self.topic is not None:
            log_p += _log(_proba_in(self.top, x, [s[0] for s in self.leaves]))
            log_p += _log(_proba_in(self.topic, x, [_name(s[-1]) for s in self.leaves]))
        open_ = log_p.copy()
        for j, leaf in enumerate(self.leaves):
            for key in (leaf[0], section_key(leaf)):
                allowed = self.exclusive.get(key)
                if allowed is not None:
                    closed = np.array([allowed not in site for site in sites], dtype=bool)
                    log_p[closed, j] = -np.inf
        nowhere = np.isinf(log_p).all(axis=1)  # every section closed to this site: the closures cannot apply
        log_p[nowhere] = open_[nowhere]
        log_p -= log_p.max(axis=1, keepdims=True)
        p = np.exp(log_p)
        return p / p.sum(axis=1, keepdims=True)


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-12, 1.0))


def _proba_in(clf: LogisticRegression, x: sp.csr_matrix, names: list[str]) -> np.ndarray:
    """Columns of predict_proba for `names` (classes the classifier never saw get a small probability)."""
    proba = clf.predict_proba(x)
    index = {c: i for i, c in enumerate(clf.classes_.tolist())}
    out = np.full((x.shape[0], len(names)), 1e-3)
    for j, name in enumerate(names):
        if name in index:
            out[:, j] = proba[:, index[name]]
    return out


def _fit_classes(x: sp.csr_matrix, y: list[str], weights: np.ndarray, seed: int) -> LogisticRegression | None:
    if len(set(y)) < 2:
        return None
    clf = LogisticRegression(C=SECTION_C, class_weight=SECTION_CLASS_WEIGHT, max_iter=MAX_ITER, random_state=seed)
    return clf.fit(x, y, sample_weight=weights)


def _prior_rows(names: list[str], groups: Sequence[lexicon.Topic],
                features: TfidfVectorizer) -> tuple[list[sp.csr_matrix], list[str], list[float]]:
    """Pseudo-examples for each class whose name matches a built-in topic: one holding only its lexicon
    column (worth PRIOR_WEIGHT examples), and one per vocabulary word as a one-word title (worth
    PRIOR_TERM_WEIGHT each), so that each word, not only the group, leans towards the class. Only for
    classes organised by topic: when fewer than half the names match, the names that do ("MLOps" beside
    "Papers" and "News") would pull every ML post their way."""
    rows, labels, weights = [], [], []
    matched = {name: lexicon.matches(name, groups) for name in sorted(set(names))}
    if sum(t is not None for t in matched.values()) * 2 < len(matched):
        return rows, labels, weights  # not organised by these topics ("Papers", "News", "MLOps"): no prior
    for name, topic in matched.items():
        if topic is None:
            continue
        column = f"topic:{topic.key}" if f"topic:{topic.key}" in LEXICON_COLUMNS else f"kind:{topic.key}"
        lex = np.zeros((1, len(LEXICON_COLUMNS)))
        lex[0, LEXICON_COLUMNS.index(column)] = LEXICON_SCALE
        terms = list(topic.terms) if PRIOR_TERM_WEIGHT else [" ".join(topic.terms)]
        text = features.transform([t + "\n\n" for t in terms])
        rows.append(sp.hstack([features.transform(["\n\n"]), sp.csr_matrix(lex)], format="csr"))
        rows.append(sp.hstack([text, sp.csr_matrix((len(terms), len(LEXICON_COLUMNS)))], format="csr"))
        labels += [name] * (1 + len(terms))
        weights += [PRIOR_WEIGHT] + [PRIOR_TERM_WEIGHT or PRIOR_WEIGHT] * len(terms)
    return rows, labels, weights


def _exclusive_sections(paths: list[SectionPath], sites: list[tuple[str, str]]) -> dict[str, str]:
    """Sections (top or leaf) that belong to one site: at least EXCLUSIVE_MIN picks, all from that site,
    and either the heading names the site ("3. AWS ML Only", aws.amazon.com) or the site's posts are also
    filed elsewhere (so the editor keeps its own section for them by choice). A "Papers" section that
    happens to hold only arxiv.org links is neither: it stays open to papers from anywhere."""
    by_section: dict[str, set[str]] = defaultdict(set)
    count: Counter[str] = Counter()
    sections_of: dict[str, set[str]] = defaultdict(set)
    for path, (host, site) in zip(paths, sites):
        for key in {path[0], section_key(path)}:
            by_section[key].add(site or host)
            count[key] += 1
        sections_of[site or host].add(path[0])
    out = {}
    for key, found in sorted(by_section.items()):
        if len(found) != 1 or count[key] < EXCLUSIVE_MIN:
            continue
        site = next(iter(found))
        heading = key.split(SECTION_SEP)[-1]
        named = bool(set(lexicon.words(heading)) & set(site.split("/")[0].split(".")))
        if named or len(sections_of[site]) > 1:
            out[key] = site
    return out


def _fit_with_prior(x: sp.csr_matrix, y: list[str], weights: np.ndarray, groups: Sequence[lexicon.Topic],
                    features: TfidfVectorizer, seed: int) -> LogisticRegression | None:
    """A classifier over `y`, with the built-in vocabulary of the classes it knows as extra examples."""
    extra, extra_y, extra_w = _prior_rows(y, groups, features)
    if not extra:
        return _fit_classes(x, y, weights, seed)
    return _fit_classes(sp.vstack([x, *extra]).tocsr(), y + extra_y, np.concatenate([weights, extra_w]), seed)


def _fit_sections(x: sp.csr_matrix, paths: list[SectionPath], weights: np.ndarray, sites: list[tuple[str, str]],
                  features: TfidfVectorizer, seed: int) -> SectionModel:
    leaves = sorted(set(paths))
    keys = [section_key(p) for p in paths]
    flat = _fit_classes(x, keys, weights, seed)
    top = topic = None
    two_level = all(len(p) >= 2 for p in leaves)
    if two_level:
        tops = [p[0] for p in paths]
        names = [_name(p[-1]) for p in paths]
        topic = _fit_with_prior(x, names, weights, lexicon.TOPICS, features, seed)
        top = _fit_with_prior(x, tops, weights, lexicon.KINDS, features, seed)
        if top is None or topic is None:
            top = topic = None
    else:
        flat = _fit_with_prior(x, keys, weights, lexicon.TOPICS, features, seed)
    return SectionModel(leaves, flat, top, topic, _exclusive_sections(paths, sites))


# --- priority -------------------------------------------------------------------------------------


class PriorityModel:
    """P(the editor picks the post).

    - "classifier": picks against known non-picks (removed entries, and fetched posts of the months a
      digest covers that it left out), background posts counting as weak non-picks; Platt-calibrated on
      out-of-fold scores of the known decisions.
    - "background": no known non-picks yet, but at least MIN_BACKGROUND fetched posts nobody decided on:
      picks against those (positive-unlabelled learning). g = P(labelled | post) is calibrated out of
      fold, c is its mean over the picks, and a post not yet decided on is picked with probability
      (1-c)/c * g/(1-g) (Elkan and Noto, 2008), which holds when the labelled picks are a random sample
      of all picks.
    - "prior": nothing but picks is known (and fewer than MIN_BACKGROUND fetched posts): a post that
      uses AI/ML vocabulary (built in) or comes from a
      site the editor has picked from gets a middling score, raised by its likeness to past picks; any
      other post a low one. Not calibrated.
    """

    def __init__(self, mode: str, clf: LogisticRegression | None, platt: tuple[float, float], scale: float,
                 centroid: np.ndarray | None, ref: float, picked_sites: frozenset[str] = frozenset(),
                 held_out: dict[str, float] | None = None) -> None:
        self.mode, self.clf, self.platt, self.scale = mode, clf, platt, scale
        self.centroid, self.ref, self.picked_sites = centroid, ref, picked_sites
        self.held_out = held_out or {}

    def proba(self, x: sp.csr_matrix, sites: Sequence[str], urls: Sequence[str]) -> np.ndarray:
        """P(pick) of each row; `sites` (host plus first path segment) tell the prior which sites the editor
        reads, `urls` which rows were background posts in training (scored out of fold)."""
        if self.clf is not None:
            a, b = self.platt
            raw = self.clf.decision_function(x)
            for i, url in enumerate(urls):
                if url in self.held_out:
                    raw[i] = self.held_out[url]
            g = 1.0 / (1.0 + np.exp(-(a * raw + b)))
            if self.mode == "background":  # Elkan and Noto: P(pick | x, not yet labelled) = (1-c)/c * g/(1-g)
                c = self.scale
                return np.clip((1.0 - c) / c * g / np.maximum(1.0 - g, 1e-9), 0.0, 1.0)
            return g
        n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
        lex = np.asarray(x[:, n_tfidf:].todense())
        scope = lex[:, LEXICON_COLUMNS.index("scope:title")] + lex[:, LEXICON_COLUMNS.index("scope:opening")]
        in_scope = scope >= LEXICON_SCALE - 1e-9  # a strong word, or weak ones in both title and opening
        in_scope |= np.array([site in self.picked_sites for site in sites], dtype=bool)
        similarity = np.asarray(x[:, :n_tfidf] @ self.centroid).ravel() if self.centroid is not None else np.zeros(x.shape[0])
        closeness = np.clip(similarity / (self.ref if self.ref > 0 else 1.0), 0.0, 1.0)
        return np.where(in_scope, 0.5 + 0.3 * closeness, 0.02 + 0.2 * closeness)

    def cut(self, priorities: Sequence[float]) -> tuple[float, str]:
        """The probability a post needs to be selected, and how it was chosen, in words.

        With calibrated probabilities the cut maximises the expected F1 of the selection (the expected
        number of picks selected over the mean of selected and expected picks; Lipton et al., 2014:
        the best threshold is half the best F1), never below CUT_FLOOR."""
        if self.mode == "prior":
            return PRIOR_CUT, (f"selected: priority >= {PRIOR_CUT:.2f}; no non-picks known yet, so priority is a "
                               "prior from the digest's vocabulary, not a probability (fetch, then train again)")
        p = np.sort(np.asarray(priorities, dtype=np.float64))[::-1]
        expected = float(p.sum())
        if not len(p) or expected <= 0:
            return 1.0, "selected: nothing (no post has a chance of being picked)"
        f1 = 2 * np.cumsum(p) / (np.arange(1, len(p) + 1) + expected)
        best = float(f1.max())
        threshold = max(best / 2, CUT_FLOOR)
        return threshold, (f"selected: P(pick) >= {threshold:.2f}, the cut that maximises the expected F1 "
                           f"({best:.2f}) given the calibrated probabilities; about {expected:.1f} picks expected "
                           f"among these {len(p)} posts")


def _platt(scores: np.ndarray, y: np.ndarray, seed: int) -> tuple[float, float]:
    """Sigmoid calibration of raw scores: (a, b) with P = 1 / (1 + exp(-(a s + b)))."""
    lr = LogisticRegression(C=1e4, max_iter=MAX_ITER, random_state=seed).fit(scores.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _out_of_fold(x: sp.csr_matrix, y: np.ndarray, w: np.ndarray, seed: int) -> np.ndarray:
    """Decision scores of each row from a classifier that did not see it."""
    folds = min(CV_FOLDS, int(y.sum()), int((~y).sum()))
    scores = np.zeros(len(y))
    for fit_rows, test_rows in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        clf = _priority_classifier(seed).fit(x[fit_rows], y[fit_rows], sample_weight=w[fit_rows])
        scores[test_rows] = clf.decision_function(x[test_rows])
    return scores


def _priority_classifier(seed: int) -> LogisticRegression:
    return LogisticRegression(C=PRIORITY_C, class_weight="balanced", max_iter=MAX_ITER, random_state=seed)


def _fit_priority(x: sp.csr_matrix, selected: np.ndarray, known: np.ndarray, sites: list[str], urls: list[str],
                  seed: int) -> PriorityModel:
    """`known`: rows that are decisions (picks and known non-picks); the others are background.

    A background post is usually also a candidate of the draft (this month's fetched posts), and the
    final classifier has learned it as a non-pick: scoring it with that classifier would push every such
    post down, picks-to-be most of all. So each background post keeps the score of the fold that did
    not see it (cross-fitting)."""
    n_pos = int(selected.sum())
    n_known_neg = int((known & ~selected).sum())
    n_background = int((~known).sum())
    n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
    if n_pos < MIN_PER_CLASS or (n_known_neg < MIN_PER_CLASS and n_background < MIN_BACKGROUND):
        picks = x[np.flatnonzero(selected), :n_tfidf]
        centroid = np.asarray(picks.mean(axis=0)).ravel()
        norm = np.linalg.norm(centroid)
        centroid = centroid / norm if norm else centroid
        ref = float(np.median(np.asarray(picks @ centroid).ravel())) if picks.shape[0] else 0.0
        picked = frozenset(site for site, chosen in zip(sites, selected.tolist()) if chosen)
        return PriorityModel("prior", None, (1.0, 0.0), 1.0, centroid, ref, picked)
    if n_known_neg >= MIN_PER_CLASS:
        weights = np.where(known, 1.0, BACKGROUND_WEIGHT)
        scores = _out_of_fold(x, selected, weights, seed)
        platt = _platt(scores[known], selected[known], seed)
        clf = _priority_classifier(seed).fit(x, selected, sample_weight=weights)
        return PriorityModel("classifier", clf, platt, 1.0, None, 0.0, held_out=_held_out(urls, scores, known))
    weights = np.ones(len(selected))
    scores = _out_of_fold(x, selected, weights, seed)
    platt = _platt(scores, selected, seed)
    g = 1.0 / (1.0 + np.exp(-(platt[0] * scores[selected] + platt[1])))
    clf = _priority_classifier(seed).fit(x, selected, sample_weight=weights)
    return PriorityModel("background", clf, platt, min(max(float(g.mean()), 1e-3), 1 - 1e-3), None, 0.0,
                         held_out=_held_out(urls, scores, known))


def _held_out(urls: list[str], scores: np.ndarray, known: np.ndarray) -> dict[str, float]:
    """URL -> out-of-fold score of every background post."""
    return {url: float(score) for url, score, k in zip(urls, scores.tolist(), known.tolist()) if not k and url}


# --- training -----------------------------------------------------------------------------------


def train(labels: Sequence[Label], *, background: Sequence[Candidate] = (), seed: int = 0, now: datetime) -> Model:
    """Fit both models on the editor's decisions, with `background` (fetched posts nobody decided on)
    as what an ordinary post looks like. Input order does not matter.

    Runs on one thread: with two BLAS/OpenMP threads on two cores, fitting 10k labels took 7-19 s
    instead of 5 s whenever another process was busy too (measured with benchmarks/bench_classify.py).

    Sections are learned from the picks' titles and sources only, never from editor summaries (the
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
    features.fit([title_document(c) for c in candidates])
    x = _matrix(features, candidates)
    rows = [i for i, lb in enumerate(ordered) if lb.selected and lb.section]
    paths = [tuple(lb.section or ()) for lb in sectioned]
    sites = [site_of(lb.candidate.url) for lb in sectioned]
    section_model = _fit_sections(_title_only(x[rows]), paths, np.ones(len(rows)), sites, features, seed)

    selected = np.array([lb.selected for lb in ordered] + [False] * len(background))
    known = np.array([True] * len(ordered) + [False] * len(background))
    all_sites = [site or host for host, site in (site_of(c.url) for c in candidates)]
    priority_model = _fit_priority(x, selected, known, all_sites, [c.url for c in candidates], seed)

    picks_by_site: dict[str, Counter[str]] = defaultdict(Counter)
    for lb in ordered:
        host, site = site_of(lb.candidate.url)
        picks_by_site[site or host][section_key(lb.section) if lb.selected and lb.section else ""] += 1
    state = {
        "features": features,
        "sections": [list(s) for s in section_model.leaves],
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
        "priority_mode": priority_model.mode,
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
        self.sections: list[SectionPath] = [tuple(s) for s in state["sections"]]
        self._section: SectionModel = state["section"]
        self._priority: PriorityModel = state["priority"]
        self._sites: dict[str, dict[str, int]] = state["sites"]
        self._names = [n for n in self.features.get_feature_names_out()] + list(LEXICON_COLUMNS)
        self._display = [_display(n) for n in self._names]

    @property
    def priority_mode(self) -> str:
        return self._priority.mode

    def cut(self, priorities: Sequence[float]) -> tuple[float, str]:
        """The priority a post needs to be selected among `priorities`, and why (see PriorityModel.cut)."""
        return self._priority.cut(priorities)

    def predict(self, candidates: Sequence[Candidate]) -> list[Prediction]:
        """Section, confidence, priority and reasons for each candidate, in input order."""
        out: list[Prediction] = []
        for start in range(0, len(candidates), PREDICT_BATCH):
            batch = candidates[start : start + PREDICT_BATCH]
            out.extend(self._predict_batch(batch, _matrix(self.features, batch)))
        return out

    def _predict_batch(self, batch: Sequence[Candidate], x: sp.csr_matrix) -> list[Prediction]:
        sites = [site_of(c.url) for c in batch]
        site_keys = [site or host for host, site in sites]
        titled = _title_only(x)
        proba = self._section.proba(titled, site_keys)
        blind = self._title_says_nothing(x)
        if blind.any():  # a title the section model cannot read: let the opening's vocabulary speak
            rows = np.flatnonzero(blind)
            proba[rows] = self._section.proba(_opening_as_title(x[rows]), [site_keys[i] for i in rows])
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
                found = sorted(_SCOPE_WORDS.found(f"{batch[i].title} {_clip(batch[i].summary, SUMMARY_CHARS)}"))
                reasons.append("AI/ML words: " + ", ".join(found[:N_REASONS]))
            if has_code[i]:
                reasons.append("code, a library or weights published")
            out.append(Prediction(section=section, section_confidence=float(confidence[i]),
                                  priority=float(priority[i]), reasons=tuple(reasons)))
        return out

    def _title_says_nothing(self, x: sp.csr_matrix) -> np.ndarray:
        """Rows whose title has no word the models were trained on and no built-in topic word."""
        n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
        words = np.array([not n.startswith(("host=", "site=", "source=", "feed=")) for n in self._names[:n_tfidf]])
        has_word = np.asarray(x[:, :n_tfidf] @ words.astype(np.float64)).ravel() > 0
        topics = [n_tfidf + LEXICON_COLUMNS.index(f"topic:{k}") for k in _TOPIC_KEYS]
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
                           (self._section.topic, [_name(s[-1]) for s in sections])):
            if clf is None:
                continue
            weights = _class_weights(clf)
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
                if self._names[col].startswith(_HANGUL_MARK) and not any(
                        w.startswith(text) for w in titles[i].split()):
                    continue
                shown.append(text)
                used |= set(text.split())
            out.append(shown)
        return out


def _class_weights(clf: LogisticRegression) -> np.ndarray:
    """One weight row per class (a binary model stores one row, for the second class)."""
    coef = np.asarray(clf.coef_)
    return np.vstack([-coef[0], coef[0]]) if coef.shape[0] == 1 else coef


def _display(name: str) -> str | None:
    """A feature as an editor reads it, or None when it means nothing to them."""
    if name.startswith(_HANGUL_MARK):
        return name[1:]
    if name.startswith("topic:") and name.count(":") == 1:
        return f"{name[6:]} vocabulary"
    if name.startswith(_PREFIX_MARK) or _META_MARK in name or name in LEXICON_COLUMNS:
        return None
    if all(w in ENGLISH_STOP_WORDS or w.isdigit() for w in name.split()):
        return None
    return name


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
