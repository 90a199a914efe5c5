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

from aggregator.learn.features import LEXICON_COLUMNS, scope_evidence, title_only
from aggregator.learn.linear import Linear

PRIORITY_C = 1.0
MAX_ITER = 1000
MIN_PER_CLASS = 5  # picks and known non-picks needed before priority is a classifier
MIN_BACKGROUND = 50  # undecided fetched posts needed to learn priority from them alone: fewer say little
CV_FOLDS = 5  # out-of-fold scores calibrate the priority ...
LARGE = 20_000  # ... and three folds do above this many posts, where each fold still learns from thousands
BACKGROUND_WEIGHT = 0.3  # weight of a background post as a non-pick when known non-picks exist
CUT_FLOOR = 0.25  # the draft never selects a post less likely than this to be picked
PRIOR_CUT = 0.5  # the cut before anything but picks is known
CALIBRATION_C = 1.0  # the calibration's three weights, regularised: where the site alone separates the
# decisions (picks from sites with no other posts), its weight must not grow without bound
OFF_SCOPE_SHARE = 0.1  # what a hiring, event or culture post keeps of its P(pick)
SHRINK = 4.0  # a site's pick rate starts as this many posts' worth of the digest's overall rate
REPEATS = 5  # below SMALL posts, out-of-fold scores are averaged over this many shufflings of the folds: with
SMALL = 5_000  # a few dozen decisions, one shuffling moved house December's AP between 0.56 and 0.69 by seed alone


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


@dataclass(frozen=True)
class SiteRates:
    """How often the editor picks from each site: picks over posts seen from it (decided or fetched),
    shrunk toward the digest's overall rate by SHRINK posts' worth of it, so that a site seen once says
    little and a site seen fifty times says what it is."""

    picks: Mapping[str, int]
    posts: Mapping[str, int]
    overall: float

    @classmethod
    def count(cls, sites: Sequence[str], picked: np.ndarray) -> SiteRates:
        picks: dict[str, int] = {}
        posts: dict[str, int] = {}
        for site, chosen in zip(sites, picked.tolist()):
            posts[site] = posts.get(site, 0) + 1
            picks[site] = picks.get(site, 0) + int(chosen)
        overall = float(picked.mean()) if len(picked) else 0.0
        return cls(picks, posts, min(max(overall, 1e-3), 1 - 1e-3))

    def logit(self, sites: Sequence[str], leave_out: np.ndarray | None = None) -> np.ndarray:
        """log-odds of each site's rate; with `leave_out` (whether each row was a pick of the counts), each
        row's own post is taken out of its site's counts, as for a post the counts never saw."""
        own_pick = leave_out.astype(np.float64) if leave_out is not None else np.zeros(len(sites))
        own_post = 1.0 if leave_out is not None else 0.0
        picks = np.array([self.picks.get(s, 0) for s in sites], dtype=np.float64) - own_pick
        posts = np.array([self.posts.get(s, 0) for s in sites], dtype=np.float64) - own_post
        rate = (picks + SHRINK * self.overall) / (posts + SHRINK)
        rate = np.clip(rate, 1e-3, 1 - 1e-3)
        return np.log(rate / (1 - rate))


@dataclass(frozen=True, eq=False)
class Learned(PriorityModel):
    """A classifier of picks by their titles and sites, combined with the site's pick rate and the text's
    scope evidence (features.scope_evidence) by a logistic calibration fitted on out-of-fold scores:
    P = 1 / (1 + exp(-(a text + b site + c scope + d))). `held_out` keeps the out-of-fold text score of
    each background post of training (by URL), which scores it instead of `clf`.

    The classifier reads titles only (features.title_only): posts known only from a digest have no
    opening, so one that read openings would learn "has an opening" as "not picked"."""

    clf: Linear
    platt: tuple[float, float, float, float]
    held_out: Mapping[str, float]
    rates: SiteRates

    def calibrated(self, x: sp.csr_matrix, sites: Sequence[str], urls: Sequence[str]) -> np.ndarray:
        """The calibrated P(labelled a pick) of each row."""
        raw = self.clf.decision_function(title_only(x))
        for i, url in enumerate(urls):
            if url in self.held_out:
                raw[i] = self.held_out[url]
        return _combine(self.platt, raw, self.rates.logit(sites), scope_evidence(x))

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
        return self.calibrated(x, sites, urls)


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
        g = self.calibrated(x, sites, urls)
        c = self.labelled_share
        return np.clip((1.0 - c) / c * g / np.maximum(1.0 - g, 1e-9), 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class Prior(PriorityModel):
    """Nothing but picks is known (and fewer than MIN_BACKGROUND fetched posts): a post that uses AI/ML
    vocabulary (built in), or comes from a site the editor has picked from (`picked_sites`) and is no
    hiring, event or culture post, gets a middling score, raised by its likeness to past picks (cosine
    to the picks' unit `centroid`, relative to the picks' median `ref`); any other post a low one. Not
    calibrated."""

    kind: ClassVar[str] = "prior"
    centroid: np.ndarray
    ref: float
    picked_sites: frozenset[str]

    def proba(self, x: sp.csr_matrix, sites: Sequence[str], urls: Sequence[str]) -> np.ndarray:
        n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
        scope = scope_evidence(x)
        in_scope = scope >= 1.0 - 1e-9  # a strong word, or weak ones in both title and opening
        in_scope |= np.array([site in self.picked_sites for site in sites], dtype=bool) & (scope >= 0)
        similarity = np.asarray(x[:, :n_tfidf] @ self.centroid).ravel()
        # Likeness to past picks, up to twice the picks' own median: within one site, the posts most like
        # the picks still rank first (clipped at the median, every post of a picked site scored the same).
        closeness = np.clip(similarity / (self.ref if self.ref > 0 else 1.0), 0.0, 2.0) / 2
        return np.where(in_scope, 0.5 + 0.4 * closeness, 0.02 + 0.3 * closeness)

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
    rates = SiteRates.count(sites, selected)
    site_logit = rates.logit(sites, leave_out=selected)
    scope = scope_evidence(x)
    xt = title_only(x)
    columns = _shared(xt)
    if n_known_neg >= MIN_PER_CLASS:
        weights = np.where(known, 1.0, BACKGROUND_WEIGHT)
        scores = _out_of_fold(xt, selected, weights, seed, columns)
        platt = _calibration(scores[known], site_logit[known], scope[known], selected[known], seed)
        return Classifier(_final_classifier(xt, selected, weights, seed, columns), platt, _held_out(urls, scores, known), rates)
    weights = np.ones(len(selected))
    scores = _out_of_fold(xt, selected, weights, seed, columns)
    platt = _calibration(scores, site_logit, scope, selected, seed)
    g = _combine(platt, scores[selected], site_logit[selected], scope[selected])
    return Background(_final_classifier(xt, selected, weights, seed, columns), platt, _held_out(urls, scores, known), rates,
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


def _final_classifier(x: sp.csr_matrix, y: np.ndarray, w: np.ndarray, seed: int, columns: np.ndarray) -> Linear:
    """The text classifier on every row, over `columns` (`_shared`); its weights are zero elsewhere."""
    return Linear.fit_on(_priority_classifier(seed), x, y, w, columns)


def _shared(x: sp.csr_matrix) -> np.ndarray:
    """Columns that at least two rows use: the text classifier reads these alone, since a word of one post
    could teach nothing but that post's own decision, and such words cost the solver most of its time
    (with 50,000 fetched posts, four columns in five)."""
    shared = np.flatnonzero(np.bincount(x.tocsr().indices, minlength=x.shape[1]) >= 2)
    return shared if len(shared) else np.arange(x.shape[1])  # nothing shared: the solver needs a column


def _calibration(scores: np.ndarray, site_logit: np.ndarray, scope: np.ndarray, y: np.ndarray,
                 seed: int) -> tuple[float, float, float, float]:
    """(a, b, c, d) of P = 1 / (1 + exp(-(a text + b site + c scope + d))), fitted on out-of-fold text scores,
    the sites' left-out pick rates and the scope evidence: how much each says, on posts the text model did not see."""
    z = np.column_stack([scores, site_logit, scope])
    lr = LogisticRegression(C=CALIBRATION_C, max_iter=MAX_ITER, random_state=seed).fit(z, y)
    a, b, c = (float(v) for v in lr.coef_[0])
    return a, b, c, float(lr.intercept_[0])


def _combine(platt: tuple[float, float, float, float], scores: np.ndarray, site_logit: np.ndarray,
             scope: np.ndarray) -> np.ndarray:
    """The calibrated P(pick); a post the vocabulary puts out of scope (hiring, events, culture: scope -1)
    keeps OFF_SCOPE_SHARE of it. The editor's decisions rarely hold such posts of the sites they pick
    from, so the calibration cannot learn this veto from them; the vocabulary knows it."""
    a, b, c, d = platt
    p = 1.0 / (1.0 + np.exp(-(a * scores + b * site_logit + c * scope + d)))
    return np.where(scope < 0, p * OFF_SCOPE_SHARE, p)


def _out_of_fold(x: sp.csr_matrix, y: np.ndarray, w: np.ndarray, seed: int, columns: np.ndarray) -> np.ndarray:
    """Decision scores of each row from a classifier (over `columns`) that did not see it; below SMALL rows,
    the mean over REPEATS shufflings of the folds, so that which fold a post fell in hardly moves its score."""
    folds = min(CV_FOLDS if len(y) <= LARGE else 3, int(y.sum()), int((~y).sum()))
    scores = np.zeros(len(y))
    x = x[:, columns]
    repeats = REPEATS if len(y) <= SMALL else 1
    for r in range(repeats):
        for fit_rows, test_rows in StratifiedKFold(folds, shuffle=True, random_state=seed + r).split(np.zeros(len(y)), y):
            clf = _priority_classifier(seed).fit(x[fit_rows], y[fit_rows], sample_weight=w[fit_rows])
            scores[test_rows] += clf.decision_function(x[test_rows]) / repeats
    return scores


def _priority_classifier(seed: int) -> LogisticRegression:
    return LogisticRegression(C=PRIORITY_C, class_weight="balanced", max_iter=MAX_ITER, random_state=seed)


def _held_out(urls: list[str], scores: np.ndarray, known: np.ndarray) -> dict[str, float]:
    """URL -> out-of-fold score of every background post."""
    return {url: float(score) for url, score, k in zip(urls, scores.tolist(), known.tolist()) if not k and url}
