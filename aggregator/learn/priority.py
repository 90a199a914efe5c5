"""P(the editor picks a post): learned from known non-picks, from undecided fetched posts, or a first-day prior; its calibration and the cut."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from aggregator.learn.features import LEXICON_COLUMNS, LEXICON_SCALE
from aggregator.learn.linear import Linear

PRIORITY_C = 1.0
MAX_ITER = 1000
MIN_PER_CLASS = 5  # picks and known non-picks needed before priority is a classifier
MIN_BACKGROUND = 50  # undecided fetched posts needed to learn priority from them alone: fewer say little
CV_FOLDS = 5  # out-of-fold scores calibrate the priority
BACKGROUND_WEIGHT = 0.3  # weight of a background post as a non-pick when known non-picks exist
CUT_FLOOR = 0.25  # the draft never selects a post less likely than this to be picked
PRIOR_CUT = 0.5  # the cut before anything but picks is known


class PriorityModel(ABC):
    """P(the editor picks the post), of one of three kinds (`kind`, as meta.json names it), which
    `fit_priority` chooses: `Classifier`, `Background` or `Prior`."""

    kind: ClassVar[str]

    @abstractmethod
    def proba(self, x: sp.csr_matrix, sites: Sequence[str], urls: Sequence[str]) -> np.ndarray:
        """P(pick) of each row; `sites` (host plus first path segment) tell the prior which sites the editor
        reads, `urls` which rows were background posts in training (scored out of fold)."""

    @abstractmethod
    def cut(self, priorities: Sequence[float]) -> tuple[float, str]:
        """The probability a post needs to be selected, and how it was chosen, in words."""


@dataclass(frozen=True, eq=False)
class Learned(PriorityModel):
    """A classifier of picks, Platt-calibrated on out-of-fold scores; `held_out` keeps the out-of-fold
    score of each background post of training (by URL), which scores it instead of `clf`."""

    clf: Linear
    platt: tuple[float, float]
    held_out: Mapping[str, float]

    def calibrated(self, x: sp.csr_matrix, urls: Sequence[str]) -> np.ndarray:
        """The calibrated P(labelled a pick) of each row."""
        a, b = self.platt
        raw = self.clf.decision_function(x)
        for i, url in enumerate(urls):
            if url in self.held_out:
                raw[i] = self.held_out[url]
        return 1.0 / (1.0 + np.exp(-(a * raw + b)))

    def cut(self, priorities: Sequence[float]) -> tuple[float, str]:
        """With calibrated probabilities the cut maximises the expected F1 of the selection (the expected
        number of picks selected over the mean of selected and expected picks; Lipton et al., 2014:
        the best threshold is half the best F1), never below CUT_FLOOR."""
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


@dataclass(frozen=True, eq=False)
class Classifier(Learned):
    """Picks against known non-picks (removed entries, and fetched posts of the months a digest covers
    that it left out), background posts counting as weak non-picks; calibrated on the known decisions."""

    kind: ClassVar[str] = "classifier"

    def proba(self, x: sp.csr_matrix, sites: Sequence[str], urls: Sequence[str]) -> np.ndarray:
        return self.calibrated(x, urls)


@dataclass(frozen=True, eq=False)
class Background(Learned):
    """No known non-picks yet, but at least MIN_BACKGROUND fetched posts nobody decided on: picks against
    those (positive-unlabelled learning). g = P(labelled | post) is calibrated out of fold,
    `labelled_share` (c) is its mean over the picks, and a post not yet decided on is picked with
    probability (1-c)/c * g/(1-g) (Elkan and Noto, 2008), which holds when the labelled picks are a
    random sample of all picks."""

    kind: ClassVar[str] = "background"
    labelled_share: float

    def proba(self, x: sp.csr_matrix, sites: Sequence[str], urls: Sequence[str]) -> np.ndarray:
        g = self.calibrated(x, urls)
        c = self.labelled_share
        return np.clip((1.0 - c) / c * g / np.maximum(1.0 - g, 1e-9), 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class Prior(PriorityModel):
    """Nothing but picks is known (and fewer than MIN_BACKGROUND fetched posts): a post that uses AI/ML
    vocabulary (built in) or comes from a site the editor has picked from (`picked_sites`) gets a
    middling score, raised by its likeness to past picks (cosine to the picks' unit `centroid`, relative
    to the picks' median `ref`); any other post a low one. Not calibrated."""

    kind: ClassVar[str] = "prior"
    centroid: np.ndarray
    ref: float
    picked_sites: frozenset[str]

    def proba(self, x: sp.csr_matrix, sites: Sequence[str], urls: Sequence[str]) -> np.ndarray:
        n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
        lex = np.asarray(x[:, n_tfidf:].todense())
        scope = lex[:, LEXICON_COLUMNS.index("scope:title")] + lex[:, LEXICON_COLUMNS.index("scope:opening")]
        in_scope = scope >= LEXICON_SCALE - 1e-9  # a strong word, or weak ones in both title and opening
        in_scope |= np.array([site in self.picked_sites for site in sites], dtype=bool)
        similarity = np.asarray(x[:, :n_tfidf] @ self.centroid).ravel()
        closeness = np.clip(similarity / (self.ref if self.ref > 0 else 1.0), 0.0, 1.0)
        return np.where(in_scope, 0.5 + 0.3 * closeness, 0.02 + 0.2 * closeness)

    def cut(self, priorities: Sequence[float]) -> tuple[float, str]:
        return PRIOR_CUT, (f"selected: priority >= {PRIOR_CUT:.2f}; no non-picks known yet, so priority is a "
                           "prior from the digest's vocabulary, not a probability (fetch, then train again)")


def fit_priority(x: sp.csr_matrix, selected: np.ndarray, known: np.ndarray, sites: list[str], urls: list[str],
                 seed: int) -> PriorityModel:
    """The kind of priority the decisions allow, fitted. `known`: rows that are decisions (picks and known
    non-picks); the others are background.

    A background post is usually also a candidate of the draft (this month's fetched posts), and the
    final classifier has learned it as a non-pick: scoring it with that classifier would push every such
    post down, picks-to-be most of all. So each background post keeps the score of the fold that did
    not see it (cross-fitting)."""
    n_pos = int(selected.sum())
    n_known_neg = int((known & ~selected).sum())
    n_background = int((~known).sum())
    if n_pos < MIN_PER_CLASS or (n_known_neg < MIN_PER_CLASS and n_background < MIN_BACKGROUND):
        return _fit_prior(x, selected, sites)
    if n_known_neg >= MIN_PER_CLASS:
        weights = np.where(known, 1.0, BACKGROUND_WEIGHT)
        scores = _out_of_fold(x, selected, weights, seed)
        platt = _platt(scores[known], selected[known], seed)
        return Classifier(_final_classifier(x, selected, weights, seed), platt, _held_out(urls, scores, known))
    weights = np.ones(len(selected))
    scores = _out_of_fold(x, selected, weights, seed)
    platt = _platt(scores, selected, seed)
    g = 1.0 / (1.0 + np.exp(-(platt[0] * scores[selected] + platt[1])))
    return Background(_final_classifier(x, selected, weights, seed), platt, _held_out(urls, scores, known),
                      min(max(float(g.mean()), 1e-3), 1 - 1e-3))


def _fit_prior(x: sp.csr_matrix, selected: np.ndarray, sites: list[str]) -> Prior:
    """The picks' unit centroid in the text features, their median likeness to it, and their sites."""
    n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
    picks = x[np.flatnonzero(selected), :n_tfidf]
    centroid = np.asarray(picks.mean(axis=0)).ravel()
    norm = np.linalg.norm(centroid)
    centroid = centroid / norm if norm else centroid
    ref = float(np.median(np.asarray(picks @ centroid).ravel())) if picks.shape[0] else 0.0
    return Prior(centroid, ref, frozenset(site for site, chosen in zip(sites, selected.tolist()) if chosen))


def _final_classifier(x: sp.csr_matrix, y: np.ndarray, w: np.ndarray, seed: int) -> Linear:
    return Linear.from_sklearn(_priority_classifier(seed).fit(x, y, sample_weight=w))


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


def _held_out(urls: list[str], scores: np.ndarray, known: np.ndarray) -> dict[str, float]:
    """URL -> out-of-fold score of every background post."""
    return {url: float(score) for url, score, k in zip(urls, scores.tolist(), known.tolist()) if not k and url}
