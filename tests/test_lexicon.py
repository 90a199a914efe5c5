"""The built-in vocabulary: how terms are found in English and Korean text, and which section names it knows."""

from __future__ import annotations

import re

import pytest

from aggregator.learn import lexicon


def test_english_terms_match_whole_words_with_an_optional_plural() -> None:
    m = lexicon.Matcher(["model", "gpu", "feature store"])
    assert m.found("Serving Models on GPUs with a Feature Store") == {"model", "gpu", "feature store"}
    assert m.found("remodelled gpuless features stored") == set()  # no partial words


def test_korean_terms_match_inside_words_as_particles_attach() -> None:
    m = lexicon.Matcher(["추천", "서빙"])
    assert m.found("추천으로 모델 서빙을 바꾸다") == {"추천", "서빙"}
    assert m.count("디자인 원칙") == 0


def test_phrases_sharing_their_beginnings_are_found_longest_first_as_a_plain_list_finds_them() -> None:
    """The merged expression (one branch per common beginning) finds what trying each term in turn,
    longest first, finds: the longest term that ends on a word boundary, with its optional plural."""
    terms = ["language model", "large language model", "large language models are", "feature store",
             "feature stores api", "open-source", "open-source model", "a/b test"]
    plain = re.compile(r"(?<![a-z0-9])(?:" + "|".join(re.escape(t) + "s?" for t in sorted(terms, key=len, reverse=True))
                       + r")(?![a-z0-9])")
    m = lexicon.Matcher(terms)
    for text in ["Large language models are here", "large language modelsx", "a feature stores api and feature stores",
                 "open-source models from open-sourced labs", "A/B tests", "large language"]:
        assert m.found(text) == set(plain.findall(text.lower())), text
    assert m.found("Large language models are here") == {"large language models are"}
    assert m.found("open-source models from open-sourced labs") == {"open-source models"}


def test_a_phrase_counts_for_the_groups_of_its_words() -> None:
    groups = lexicon.Groups({"nlp": ["language"], "scope": ["language model"]})
    assert groups.counts("A small language model") == [1, 1]
    assert groups.counts("Sign language interpreters") == [1, 0]
    assert groups.counts("Small language models") == [1, 1]


@pytest.mark.parametrize("heading, key", [
    ("1.1. CV", "cv"), ("1.2. NLP", "nlp"), ("2.3. RecSys, etc.", "recsys"),
    ("2.4. Training, Inference and MLOps", "mlops"), ("⚙️ **MLOps**", "mlops"), ("3. AWS ML Only", None),
    ("💡 **News**", None),
])
def test_section_names_map_to_built_in_topics(heading: str, key: str | None) -> None:
    topic = lexicon.matches(heading, lexicon.TOPICS)
    assert (topic.key if topic else None) == key


def test_top_level_names_map_to_kinds() -> None:
    assert lexicon.matches("1. Research", lexicon.KINDS).key == "research"  # type: ignore[union-attr]
    assert lexicon.matches("2. Business Cases and Implementations", lexicon.KINDS).key == "business"  # type: ignore[union-attr]


@pytest.mark.parametrize("title", [
    "Autoencoders and Diffusers: A Brief Comparison",
    "Automatically Retrain NNs with Renate",
    "MoE with Expert Choice Routing",
    "Accelerating Text Generation with Confident Adaptive Language Modeling (CALM)",
    "Introducing Fortuna: A Library for Uncertainty Quantification",
    "How to Evaluate the Quality of the Synthetic Data",
])
def test_the_vocabulary_of_the_digests_past_picks_puts_their_titles_in_scope(title: str) -> None:
    """Real titles the house digest picked: each reads as AI/ML from its title alone, so a draft never
    gives one the reason "little or no AI/ML vocabulary"."""
    scope = lexicon.Matcher([*lexicon.SCOPE])
    assert scope.found(title), title


def test_a_digest_pick_in_scope_gets_no_little_vocabulary_reason() -> None:
    from datetime import datetime, timezone

    from aggregator.learn import classify
    from aggregator.models import Candidate, Label

    when = datetime(2022, 12, 1, tzinfo=timezone.utc)
    picks = [Label(Candidate(i, f"https://blog{i % 3}.example.com/p{i}", f"Serving language models {i}", "", "", when),
                   ("1. Research",) if i % 2 else ("2. Business",), True) for i in range(12)]
    model = classify.train(picks, now=when)
    post = Candidate(99, "https://eugeneyan.com/writing/autoencoders-vs-diffusers/",
                     "Autoencoders and Diffusers: A Brief Comparison", "", "", when)
    reasons = model.predict([post])[0].reasons
    assert not any("little or no AI/ML vocabulary" in r for r in reasons), reasons
    assert any(r.startswith("AI/ML words:") and "autoencoder" in r for r in reasons), reasons
