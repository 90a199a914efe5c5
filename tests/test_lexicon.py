"""The built-in vocabulary: how terms are found in English and Korean text, and which section names it knows."""

from __future__ import annotations

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
