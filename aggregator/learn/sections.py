"""P(section | post) through the taxonomy's structure: leaves, top levels, topics shared by several parents, one-site sections."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from aggregator.learn import lexicon
from aggregator.learn.features import LEXICON_COLUMNS, LEXICON_SCALE
from aggregator.learn.labels import number_and_name
from aggregator.learn.linear import Linear
from aggregator.models import SectionPath

SECTION_SEP = " > "
SECTION_C = 10.0  # inverse L2 strength; TF-IDF rows are unit length, so weak regularisation suits
MAX_ITER = 1000
PRIOR_WEIGHT = 2.0  # a section name's built-in vocabulary counts as this many examples of it ...
PRIOR_TERM_WEIGHT = 0.1  # ... and each of its words as this many (0: the words as one example)
EXCLUSIVE_MIN = 3  # picks, all from one site, that make a section that site's own ("3. AWS ML Only")
SECTION_CLASS_WEIGHT = "balanced"  # a section's few picks weigh as much as a big one's: the prior is not the answer
FLAT_WEIGHT = 1.0  # the leaf classifier's say beside the top-level and topic classifiers

def section_key(section: SectionPath) -> str:
    return SECTION_SEP.join(section)


def heading_name(heading: str) -> str:
    """A heading without its number: "2.4. Training, Inference and MLOps" -> "training, inference and mlops"."""
    return number_and_name(heading)[1]


class SectionModel:
    """P(leaf section | post): a flat classifier over the leaves, times a top-level classifier and a
    topic classifier when the taxonomy is two-level. Topic subsections that repeat under several
    parents ("CV" under "1. Research" and "2. Business Cases") share one topic class, so what is
    learned about NLP under one parent helps the others. A section whose picks all come from one site
    (the house style's "3. AWS ML Only") is closed to posts from any other site."""

    def __init__(self, leaves: list[SectionPath], flat: Linear | None, top: Linear | None,
                 topic: Linear | None, exclusive: dict[str, str]) -> None:
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
            log_p += _log(_proba_in(self.topic, x, [heading_name(s[-1]) for s in self.leaves]))
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


def _proba_in(clf: Linear, x: sp.csr_matrix, names: list[str]) -> np.ndarray:
    """Columns of predict_proba for `names` (classes the classifier never saw get a small probability)."""
    proba = clf.predict_proba(x)
    index = {c: i for i, c in enumerate(clf.classes_.tolist())}
    out = np.full((x.shape[0], len(names)), 1e-3)
    for j, name in enumerate(names):
        if name in index:
            out[:, j] = proba[:, index[name]]
    return out


def _fit_classes(x: sp.csr_matrix, y: list[str], weights: np.ndarray, seed: int) -> Linear | None:
    """A logistic regression over `y`, fitted on the columns its rows use (`Linear.fit_on`; the vocabulary
    also holds every background post's words, most of them never in a pick's title)."""
    if len(set(y)) < 2:
        return None
    x = x.tocsr()
    used = np.unique(x.indices)
    used = used if len(used) else np.arange(x.shape[1])  # rows without a word: the solver still needs a column
    clf = LogisticRegression(C=SECTION_C, class_weight=SECTION_CLASS_WEIGHT, max_iter=MAX_ITER, random_state=seed)
    return Linear.fit_on(clf, x, y, weights, used)


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
                    features: TfidfVectorizer, seed: int) -> Linear | None:
    """A classifier over `y`, with the built-in vocabulary of the classes it knows as extra examples."""
    extra, extra_y, extra_w = _prior_rows(y, groups, features)
    if not extra:
        return _fit_classes(x, y, weights, seed)
    return _fit_classes(sp.vstack([x, *extra]).tocsr(), y + extra_y, np.concatenate([weights, extra_w]), seed)


def fit_sections(x: sp.csr_matrix, paths: list[SectionPath], weights: np.ndarray, sites: list[tuple[str, str]],
                  features: TfidfVectorizer, seed: int) -> SectionModel:
    leaves = sorted(set(paths))
    keys = [section_key(p) for p in paths]
    flat = _fit_classes(x, keys, weights, seed)
    top = topic = None
    two_level = all(len(p) >= 2 for p in leaves)
    if two_level:
        tops = [p[0] for p in paths]
        names = [heading_name(p[-1]) for p in paths]
        topic = _fit_with_prior(x, names, weights, lexicon.TOPICS, features, seed)
        top = _fit_with_prior(x, tops, weights, lexicon.KINDS, features, seed)
        if top is None or topic is None:
            top = topic = None
    else:
        flat = _fit_with_prior(x, keys, weights, lexicon.TOPICS, features, seed)
    return SectionModel(leaves, flat, top, topic, _exclusive_sections(paths, sites))
