"""What the models read of a post: its title and origin as TF-IDF features, and the built-in vocabulary's columns."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from aggregator.learn import lexicon
from aggregator.links import Site
from aggregator.models import Candidate

TITLE_CHARS = 300  # what the models read of a title ...
SUMMARY_CHARS = 300  # ... and of a summary: the opening says what a post is about, and it bounds the cost
MAX_FEATURES = 2**18
LEXICON_SCALE = 0.5  # a lexicon feature's value when a group's terms occur (TF-IDF rows have unit length)

_WORD = re.compile(r"\w\w+")
_HANGUL = re.compile("[\uac00-\ud7a3]")
_HANGUL_PAIR = re.compile("(?=([\uac00-\ud7a3]{2}))")  # overlapping syllable bigrams
HANGUL_MARK = "~"  # feature names: a Hangul syllable pair ...
PREFIX_MARK = "^"  # ... a word's first letters ...
META_MARK = "="  # ... where the post comes from (host=, site=)
_PREFIX = 5  # "recommendation" and "recommender" share "recom": a cheap stem for tiny corpora

# The dense lexicon columns appended to the TF-IDF features, in order.
TOPIC_KEYS = [t.key for t in lexicon.TOPICS]
KIND_KEYS = [t.key for t in lexicon.KINDS]
_GROUPS = lexicon.Groups({**{f"topic:{t.key}": t.terms for t in lexicon.TOPICS},
                          **{f"kind:{t.key}": t.terms for t in lexicon.KINDS},
                          "scope": lexicon.SCOPE, "weak": lexicon.WEAK_SCOPE, "open": lexicon.OPEN,
                          "off": lexicon.OFF_SCOPE})
_SCOPE_TERMS = frozenset(t.lower() for t in [*lexicon.SCOPE, *lexicon.WEAK_SCOPE])
LEXICON_COLUMNS = (
    [f"topic:{k}" for k in TOPIC_KEYS]
    + [f"kind:{k}" for k in KIND_KEYS]
    + ["scope:title", "scope:opening", "open:code", "host:research"]
    + [f"topic:{k}:opening" for k in TOPIC_KEYS]
    + ["offscope"]  # 1: a hiring, event or culture word in the title, 0.5: in the opening only
)


def title_document(c: Candidate) -> str:
    """What the TF-IDF features read: the title and where the post comes from. The opening is read only
    through the lexicon: boilerplate ("Amazon SageMaker is a fully managed service ...") opens many
    unrelated posts, and posts known only from a digest have no opening at all.

    Where a post comes from is its link's host and site only. The source and feed names differ between a
    post known from a digest (the source the editor printed, no feed) and the same post fetched (the
    feed's source and name), and the house style prints no source in "3. AWS ML Only": a model that read
    them would learn the editor's formatting, not the post."""
    tokens = [t for t in feed_tokens(c) if t.startswith(("host=", "site="))]
    return f"{clip(c.title, TITLE_CHARS)}\n\n{' '.join(tokens)}"


def clip(text: str, limit: int) -> str:
    """Whitespace collapsed to single spaces, cut to `limit` characters."""
    return " ".join(text[: 4 * limit].split())[:limit]


def feed_tokens(c: Candidate) -> list[str]:
    """Where a post comes from: host, host plus first path segment, source and feed names."""
    site = Site.of(c.url)
    tokens = []
    if site.host:
        tokens.append(f"host={site.host}")
        if site.key != site.host:
            tokens.append(f"site={site.key}")
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
    features += [PREFIX_MARK + w[:_PREFIX] for w in title_words if len(w) > _PREFIX and w.isascii()]
    features += feed.split()
    if _HANGUL.search(title) or _HANGUL.search(body):
        features += [HANGUL_MARK + p for p in _HANGUL_PAIR.findall(f"{title} {body}")]
    return features


def build_features() -> TfidfVectorizer:
    """TF-IDF over `analyze` features of title documents; fitted once per training and shared by every model.

    Character 2-4-grams of the title beside these were measured (eval on the seeds and two curated
    histories): +0.03 leaf accuracy on the seeds, -0.01 on NLP-Paper-News, and scoring 100k posts
    took 13.2 s instead of 6.1 s; left out."""
    return TfidfVectorizer(analyzer=analyze, sublinear_tf=True, max_features=MAX_FEATURES, dtype=np.float64)


def lexicon_reading(c: Candidate) -> tuple[list[float], set[str]]:
    """The `LEXICON_COLUMNS` of one post (which built-in vocabulary groups its title and opening use), and
    the vocabulary's terms found in them (`ai_words` picks the AI/ML ones): one pass gives both."""
    title_counts, title_terms = _GROUPS.read(clip(c.title, TITLE_CHARS))
    title = dict(zip(_GROUPS.names, title_counts))
    opening: dict[str, int] = {}
    terms = title_terms
    if c.summary:
        opening_counts, opening_terms = _GROUPS.read(clip(c.summary, SUMMARY_CHARS))
        opening = dict(zip(_GROUPS.names, opening_counts))
        terms = terms | opening_terms
    row = [min(title[f"topic:{k}"], 2) / 2 for k in TOPIC_KEYS]
    row += [min(title[f"kind:{k}"], 2) / 2 for k in KIND_KEYS]
    row += [_scope(title), _scope(opening),
            float(bool(title["open"] or opening.get("open") or "github.com" in c.url)),
            float(_research_lab(c.url))]
    row += [min(opening.get(f"topic:{k}", 0), 2) / 2 for k in TOPIC_KEYS]
    row += [1.0 if title["off"] else 0.5 if opening.get("off") else 0.0]
    return row, terms


def ai_words(terms: set[str]) -> list[str]:
    """The AI/ML words (lexicon.SCOPE and WEAK_SCOPE, a plural as found) among terms `lexicon_reading` found, sorted."""
    return sorted(t for t in terms if t in _SCOPE_TERMS or (t.endswith("s") and t[:-1] in _SCOPE_TERMS))


def _research_lab(url: str) -> bool:
    """Whether a link points into a research lab's site: by its host (ai.googleblog.com, deepmind.com)
    or a leading path segment named "research" (microsoft.com/en-us/research/blog/...)."""
    site = Site.of(url)
    segments = site.path.lower().split("/")[1:4]
    return any(h in site.hostname for h in lexicon.RESEARCH_HOSTS) or "research" in segments


def _scope(counts: dict[str, int]) -> float:
    """1 when a text has a strong AI/ML word or two weak ones, 0.5 for one weak word, else 0."""
    return min(counts.get("scope", 0) + counts.get("weak", 0) / 2, 1.0)


def scope_evidence(x: sp.csr_matrix) -> np.ndarray:
    """Whether each row's text puts the post in an AI/ML digest's scope, from the lexicon columns: 1 for a
    strong AI/ML word in its title or opening (or weak ones in both), 0.5 for one weak word, 0 for none,
    and -1 for a hiring, event or culture post: one whose title says so ("AI 연구 인턴 채용"), or whose
    opening says so while nothing in it is strongly AI/ML. The script the text is written in plays no part."""
    n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
    lex = np.asarray(x[:, n_tfidf:].todense()) / LEXICON_SCALE
    scope = np.minimum(lex[:, LEXICON_COLUMNS.index("scope:title")] + lex[:, LEXICON_COLUMNS.index("scope:opening")], 1.0)
    off = lex[:, LEXICON_COLUMNS.index("offscope")]  # 1: in the title, 0.5: in the opening only
    return np.where((off >= 1.0 - 1e-9) | ((off > 0) & (scope < 1.0 - 1e-9)), -1.0, scope)


def matrix(features: TfidfVectorizer, candidates: Sequence[Candidate], *, fit: bool = False) -> sp.csr_matrix:
    """TF-IDF of the title documents with the lexicon columns appended; with `fit`, the TF-IDF is fitted
    on these documents first (in the same pass over them)."""
    return matrix_and_words(features, candidates, fit=fit)[0]


def matrix_and_words(features: TfidfVectorizer, candidates: Sequence[Candidate], *,
                     fit: bool = False) -> tuple[sp.csr_matrix, list[set[str]]]:
    """`matrix`, and the vocabulary's terms found in each candidate (`lexicon_reading`)."""
    docs = [title_document(c) for c in candidates]
    x = features.fit_transform(docs) if fit else features.transform(docs)
    readings = [lexicon_reading(c) for c in candidates]
    lex = np.array([row for row, _ in readings], dtype=np.float64).reshape(len(candidates), -1)
    return sp.hstack([x, sp.csr_matrix(lex * LEXICON_SCALE)], format="csr"), [terms for _, terms in readings]


def title_only(x: sp.csr_matrix) -> sp.csr_matrix:
    """The columns a title gives: the opening's lexicon columns zeroed (sections are read from titles)."""
    x = x.tocsr(copy=True)
    n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
    keep = np.ones(x.shape[1])
    keep[n_tfidf + LEXICON_COLUMNS.index("scope:opening")] = 0
    for k in TOPIC_KEYS:
        keep[n_tfidf + LEXICON_COLUMNS.index(f"topic:{k}:opening")] = 0
    return (x @ sp.diags(keep)).tocsr()


def opening_as_title(x: sp.csr_matrix) -> sp.csr_matrix:
    """The opening's topic columns moved into the title's topic columns: used to file a post whose title
    says nothing the section model knows."""
    x = x.tolil(copy=True)
    n_tfidf = x.shape[1] - len(LEXICON_COLUMNS)
    for k in TOPIC_KEYS:
        src = n_tfidf + LEXICON_COLUMNS.index(f"topic:{k}:opening")
        dst = n_tfidf + LEXICON_COLUMNS.index(f"topic:{k}")
        x[:, dst] = x[:, src]
    return title_only(x.tocsr())
