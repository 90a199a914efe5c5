"""Judging models on the editor's real decisions: the splits (edition by edition, old to new version, leave one out), the baselines, and the figures."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, f1_score
from sklearn.pipeline import FeatureUnion
from threadpoolctl import threadpool_limits

from aggregator.errors import ModelError
from aggregator.learn import classify
from aggregator.learn.sections import section_key
from aggregator.links import Site
from aggregator.models import Candidate, Edition, Label, SectionPath

METHODS = ("model", "majority", "host", "flat", "site rate")
"""The trained model, then the baselines: the most frequent section, the most frequent section of the
post's site, a plain TF-IDF (characters 2-4 and words) + logistic regression over title, source and host,
and for priority the one-line rule "how often do I pick from this site"."""

CALIBRATION_BINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)
CONFUSION_SPLITS = 6  # the section confusion matrix counts the picks of this many last splits


@dataclass(frozen=True)
class Split:
    """One train/test split: decisions to learn from, fetched posts nobody decided on, decisions to predict."""

    name: str
    train: tuple[Label, ...]
    background: tuple[Candidate, ...]
    test: tuple[Label, ...]


def fingerprint(split: Split, methods: Sequence[str], seed: int) -> str:
    """A digest of everything a split's guesses depend on (its decisions, background and test posts, the
    methods and the seed), so that a replay computed again reuses the splits nothing changed in (pure)."""
    h = hashlib.sha256(repr((split.name, tuple(methods), seed)).encode("utf-8"))
    for part in (split.train, split.test):
        for lb in part:
            c = lb.candidate
            h.update(repr((c.url, c.title, c.summary, c.source, c.published.isoformat(), lb.section, lb.selected,
                           lb.editor_summary)).encode("utf-8"))
        h.update(b"\x00")
    for c in split.background:
        h.update(repr((c.url, c.title, c.summary, c.source, c.published.isoformat())).encode("utf-8"))
    return h.hexdigest()


ReplayCache = MutableMapping[str, dict[str, list["Guess"]] | str]  # split fingerprint -> guesses, or why it was skipped


@dataclass(frozen=True)
class Guess:
    """What a method said of one test post: its section, P(pick), and whether the cut selected it."""

    section: SectionPath
    priority: float
    selected: bool


Predictor = Callable[[Sequence[Candidate]], list[Guess]]


# --- the methods ----------------------------------------------------------------------------------


def fit_model(split: Split, *, now: datetime, seed: int = 0) -> Predictor:
    model = classify.train(split.train, background=split.background, seed=seed, now=now)

    def predict(candidates: Sequence[Candidate]) -> list[Guess]:
        predictions = model.predict(candidates)
        threshold, _ = model.cut([p.priority or 0.0 for p in predictions])
        return [Guess(p.section, p.priority or 0.0, (p.priority or 0.0) >= threshold) for p in predictions]

    return predict


def _picks(split: Split) -> list[Label]:
    return [lb for lb in split.train if lb.selected and lb.section]


def fit_majority(split: Split) -> Predictor:
    """Every post in the most frequent section, every post selected (the old "as many as last time" floor)."""
    counts = Counter(tuple(lb.section or ()) for lb in _picks(split))
    top = min(counts, key=lambda s: (-counts[s], s))
    return lambda candidates: [Guess(top, 1.0, True) for _ in candidates]


def _keys(c: Candidate) -> list[str]:
    """A post's host and site, once each (one key when the site is the host)."""
    site = Site.of(c.url)
    return list(dict.fromkeys((site.host, site.key)))


def fit_host(split: Split) -> Predictor:
    """The section the post's site (else host) was filed under most often; P(pick) is the site's pick rate
    among decided and background posts, selected above one half."""
    sections: dict[str, Counter[SectionPath]] = {}
    picked: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for lb in split.train:
        for key in _keys(lb.candidate):
            seen[key] += 1
            if lb.selected and lb.section:
                picked[key] += 1
                sections.setdefault(key, Counter())[tuple(lb.section)] += 1
    for c in split.background:
        for key in _keys(c):
            seen[key] += 1
    overall = Counter(tuple(lb.section or ()) for lb in _picks(split))
    base = (sum(picked.values()) + 1) / (len(split.train) + len(split.background) + 2)

    def guess(c: Candidate) -> Guess:
        site = Site.of(c.url)
        key = site.key if site.key in sections else site.host
        counts = sections.get(key, overall)
        rate = (picked[key] + base) / (seen[key] + 1) if key in seen else base
        return Guess(min(counts, key=lambda s: (-counts[s], s)), rate, rate >= 0.5)

    return lambda candidates: [guess(c) for c in candidates]


SITE_RATE_MIN_PICKS = 2  # the site-rate rule selects from sites with at least this many past picks


def fit_site_rate(split: Split) -> Predictor:
    """The editor's one-line rule, "how often do I pick from this site": P(pick) is the share of the site's
    posts they picked, picks / (posts seen + 1), so that where nothing but picks is known it ranks sites by
    their number of past picks; selected from sites with at least SITE_RATE_MIN_PICKS picks. Sections as `host`."""
    host = fit_host(split)
    picked: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for lb in split.train:
        seen[Site.of(lb.candidate.url).key] += 1
        picked[Site.of(lb.candidate.url).key] += int(lb.selected)
    for c in split.background:
        seen[Site.of(c.url).key] += 1

    def predict(candidates: Sequence[Candidate]) -> list[Guess]:
        out = []
        for c, g in zip(candidates, host(candidates)):
            key = Site.of(c.url).key
            rate = picked[key] / (seen[key] + 1)
            out.append(Guess(g.section, rate, picked[key] >= SITE_RATE_MIN_PICKS))
        return out

    return predict


def _flat_text(c: Candidate) -> str:
    return f"{c.title} {c.source} {Site.of(c.url).host}"


def fit_flat(split: Split, *, seed: int = 0) -> Predictor:
    """TF-IDF over characters 2-4 and words of title, source and host, then logistic regression: one for
    sections over the picks, one for picks against everything else (known non-picks and background)."""
    def features() -> FeatureUnion:
        return FeatureUnion([("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)),
                             ("words", TfidfVectorizer(sublinear_tf=True))])

    picks = _picks(split)
    labels = [section_key(lb.section or ()) for lb in picks]
    paths = {section_key(lb.section or ()): tuple(lb.section or ()) for lb in picks}
    section_features = features().fit([_flat_text(lb.candidate) for lb in picks])
    section_clf = None
    if len(set(labels)) > 1:
        section_clf = LogisticRegression(C=10.0, max_iter=1000, random_state=seed)
        section_clf.fit(section_features.transform([_flat_text(lb.candidate) for lb in picks]), labels)
    docs = [_flat_text(lb.candidate) for lb in split.train] + [_flat_text(c) for c in split.background]
    y = np.array([lb.selected for lb in split.train] + [False] * len(split.background))
    priority_features = priority_clf = None
    if 0 < y.sum() < len(y):
        priority_features = features().fit(docs)
        priority_clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000, random_state=seed)
        priority_clf.fit(priority_features.transform(docs), y)

    def predict(candidates: Sequence[Candidate]) -> list[Guess]:
        if not candidates:
            return []
        texts = [_flat_text(c) for c in candidates]
        if section_clf is None:
            guessed = [labels[0]] * len(texts)
        else:
            guessed = section_clf.predict(section_features.transform(texts)).tolist()
        if priority_clf is None or priority_features is None:
            p = np.ones(len(texts))
        else:
            p = priority_clf.predict_proba(priority_features.transform(texts))[:, 1]
        return [Guess(paths[g], float(q), bool(q >= 0.5)) for g, q in zip(guessed, p.tolist())]

    return predict


def fit(method: str, split: Split, *, now: datetime, seed: int = 0) -> Predictor:
    if method == "model":
        return fit_model(split, now=now, seed=seed)
    if method == "majority":
        return fit_majority(split)
    if method == "host":
        return fit_host(split)
    if method == "flat":
        return fit_flat(split, seed=seed)
    if method == "site rate":
        return fit_site_rate(split)
    raise ValueError(f"unknown method {method!r}")


# --- the figures ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one method got right over one or more splits."""

    sections: list[tuple[SectionPath, SectionPath]] = field(default_factory=list)  # (truth, guess) of picks
    decisions: list[tuple[bool, float, bool]] = field(default_factory=list)  # (picked, P(pick), selected)
    has_negatives: bool = False  # whether any split of this tally had non-picks (else priority figures mean nothing)

    def add(self, test: Sequence[Label], guesses: Sequence[Guess]) -> None:
        has_neg = False
        for lb, g in zip(test, guesses):
            if lb.selected and lb.section:
                self.sections.append((tuple(lb.section), g.section))
            self.decisions.append((lb.selected, g.priority, g.selected))
            has_neg |= not lb.selected
        self.has_negatives |= has_neg


@dataclass(frozen=True)
class Figures:
    """A method's scores: sections of the picks, and (where non-picks exist) the ranking and the cut."""

    method: str
    picks: int
    non_picks: int
    leaf_accuracy: float | None
    top_accuracy: float | None
    leaf_macro_f1: float | None
    average_precision: float | None
    cut_precision: float | None
    cut_recall: float | None
    cut_f1: float | None
    selected: int


def figures(method: str, tally: Tally) -> Figures:
    leaf = top = macro = None
    if tally.sections:
        truth = [section_key(t) for t, _ in tally.sections]
        guess = [section_key(g) for _, g in tally.sections]
        leaf = sum(t == g for t, g in zip(truth, guess)) / len(truth)
        top = sum(t[:1] == g[:1] for t, g in tally.sections) / len(tally.sections)
        macro = float(f1_score(truth, guess, labels=sorted(set(truth)), average="macro", zero_division=0))
    picked = [d[0] for d in tally.decisions]
    n_pick = sum(picked)
    n_non = len(picked) - n_pick
    selected = sum(d[2] for d in tally.decisions)
    ap = precision = recall = f1 = None
    if n_pick and n_non:
        ap = float(average_precision_score(picked, [d[1] for d in tally.decisions]))
        hits = sum(d[0] and d[2] for d in tally.decisions)
        precision = hits / selected if selected else 0.0
        recall = hits / n_pick
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    elif n_pick:
        recall = sum(d[2] for d in tally.decisions) / n_pick
    return Figures(method, n_pick, n_non, leaf, top, macro, ap, precision, recall, f1, selected)


def calibration(tally: Tally) -> list[tuple[str, int, float, float]]:
    """(bin, posts, mean P(pick), share picked) for each non-empty probability bin."""
    rows = []
    for lo, hi in zip(CALIBRATION_BINS, CALIBRATION_BINS[1:]):
        inside = [(picked, p) for picked, p, _ in tally.decisions if lo <= p < hi]
        if inside:
            rows.append((f"{lo:.1f}-{min(hi, 1.0):.1f}", len(inside), float(np.mean([p for _, p in inside])),
                         float(np.mean([picked for picked, _ in inside]))))
    return rows


@dataclass(frozen=True)
class SplitFigures:
    """Every method's figures on one split (one edition of a replay)."""

    name: str
    trained: int  # decisions learned from
    methods: tuple[Figures, ...]


@dataclass(frozen=True)
class Confusion:
    """The model's sections of the picks of the last splits against the editor's: (truth, guess, picks)."""

    splits: tuple[str, ...]
    sections: tuple[str, ...]  # every section that is a truth or a guess, sorted
    cells: tuple[tuple[str, str, int], ...]  # non-zero cells only


def confusion(pairs: Sequence[tuple[SectionPath, SectionPath]], splits: Sequence[str] = ()) -> Confusion:
    """The confusion matrix of (truth, guess) section pairs (pure)."""
    counts = Counter((section_key(t), section_key(g)) for t, g in pairs)
    names = sorted({name for pair in counts for name in pair})
    return Confusion(tuple(splits), tuple(names), tuple((t, g, n) for (t, g), n in sorted(counts.items())))


@dataclass(frozen=True)
class Report:
    """Figures of every method over all splits pooled, per-split figures of the model (and of the site-rate
    rule), every method's per-split figures, the model's calibration and its section confusion matrix
    over the last CONFUSION_SPLITS splits."""

    scenario: str
    methods: tuple[Figures, ...]
    splits: tuple[tuple[str, int, Figures, Figures | None], ...]  # (split name, training decisions, the model's
    # figures, and the site-rate rule's beside them when it ran)
    calibration: tuple[tuple[str, int, float, float], ...]
    skipped: tuple[str, ...] = ()
    per_split: tuple[SplitFigures, ...] = ()
    confusion: Confusion = field(default_factory=lambda: Confusion((), (), ()))


def run(scenario: str, splits: Sequence[Split], *, now: datetime, seed: int = 0,
        methods: Sequence[str] = METHODS, progress: Callable[[int, int], None] | None = None,
        cache: ReplayCache | None = None) -> Report:
    """Fit every method on each split's training part and score it on the test part. With `cache`, a split
    whose `fingerprint` is in it is not fitted again (its guesses are taken from it), and the cache ends
    holding the splits of this run alone: after one decision in the newest edition, a replay fits that
    edition's split only."""
    kept: dict[str, dict[str, list[Guess]] | str] = {}
    tallies = {m: Tally() for m in methods}
    per_split = []
    every_method: list[SplitFigures] = []
    model_sections: list[tuple[str, list[tuple[SectionPath, SectionPath]]]] = []
    skipped = []
    with threadpool_limits(limits=1):
        for i, split in enumerate(splits):
            if progress:
                progress(i, len(splits))
            key = fingerprint(split, methods, seed) if cache is not None else ""
            done = cache.get(key) if cache is not None else None
            if done is None:
                done = _guesses(split, methods, now=now, seed=seed)
            kept[key] = done
            if isinstance(done, str):
                skipped.append(f"{split.name}: {done}")
                continue
            own: dict[str, Figures] = {}
            for m, guesses in done.items():
                tallies[m].add(split.test, guesses)
                alone = Tally()
                alone.add(split.test, guesses)
                own[m] = figures(m, alone)
                if m == "model":
                    model_sections.append((split.name, alone.sections))
            every_method.append(SplitFigures(split.name, len(split.train), tuple(own[m] for m in methods)))
            if "model" in own:
                per_split.append((split.name, len(split.train), own["model"], own.get("site rate")))
    if progress:
        progress(len(splits), len(splits))
    if cache is not None:
        cache.clear()
        cache.update(kept)
    model_tally = tallies.get("model", Tally())
    last = model_sections[-CONFUSION_SPLITS:]
    return Report(scenario, tuple(figures(m, tallies[m]) for m in methods), tuple(per_split),
                  tuple(calibration(model_tally)) if model_tally.has_negatives else (), tuple(skipped),
                  tuple(every_method), confusion([p for _, pairs in last for p in pairs], [name for name, _ in last]))


def _guesses(split: Split, methods: Sequence[str], *, now: datetime, seed: int) -> dict[str, list[Guess]] | str:
    """Every method's guesses on the split's test posts, or why the split cannot be learned from."""
    candidates = [lb.candidate for lb in split.test]
    try:
        predictors = {m: fit(m, split, now=now, seed=seed) for m in methods}
    except ModelError as exc:
        return str(exc)
    return {m: list(predict(candidates)) for m, predict in predictors.items()}


# --- the splits -----------------------------------------------------------------------------------


def edition_splits(labels: Sequence[tuple[Edition, Label]], background: Sequence[Candidate]) -> Iterator[Split]:
    """For each edition e after the first: learn from the editions before it, predict e's decisions.
    Background: fetched posts nobody decided on, up to the end of e (as the daemon would have them)."""
    decided = {lb.candidate.url for _, lb in labels}
    editions = sorted({e for e, _ in labels})
    for edition in editions[1:]:
        _, end = edition.bounds()
        train = tuple(lb for e, lb in labels if e < edition)
        test = tuple(lb for e, lb in labels if e == edition)
        extra = tuple(c for c in background if c.published < end and c.url not in decided)
        yield Split(edition, train, extra, test)


def leave_one_out(labels: Sequence[tuple[Edition, Label]], background: Sequence[Candidate], edition: Edition) -> Iterator[Split]:
    """One split per pick of `edition`: it (and every n-th of the edition's non-picks) held out, everything else learned."""
    own = [lb for m, lb in labels if m == edition]
    others = [lb for m, lb in labels if m != edition]
    picks = [lb for lb in own if lb.selected]
    non_picks = [lb for lb in own if not lb.selected]
    decided = {lb.candidate.url for _, lb in labels}
    extra = tuple(c for c in background if c.url not in decided)
    for i, pick in enumerate(picks):
        held = [pick] + non_picks[i :: len(picks)]
        held_urls = {lb.candidate.url for lb in held}
        train = tuple(others + [lb for lb in own if lb.candidate.url not in held_urls])
        yield Split(f"{edition} #{i + 1}", train, extra, tuple(held))


def old_to_new(old: Sequence[Label], new: Sequence[Label], background: Sequence[Candidate],
               new_months: Sequence[tuple[datetime, datetime]]) -> Split:
    """Learn from an older version of a digest; predict what the newer version added (and where it filed
    it) and, among fetched posts of the newer version's months, what it left out."""
    old_urls = {lb.candidate.url for lb in old}
    new_urls = {lb.candidate.url for lb in new}
    added = [lb for lb in new if lb.candidate.url not in old_urls]
    left_out = [Label(c, None, False) for c in background
                if c.url not in new_urls and c.url not in old_urls
                and any(start <= c.published < end for start, end in new_months)]
    extra = tuple(c for c in background if c.url not in old_urls)
    return Split("old -> new", tuple(old), extra, tuple(added + left_out))
