"""Tests for aggregator.learn.classify on a small hand-made corpus whose structure is known."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.learn import classify, features, model_file, priority
from aggregator.errors import ModelError
from aggregator.models import Candidate, Label, Prediction
from aggregator.links import Site

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
PUBLISHED = datetime(2024, 5, 10, tzinfo=timezone.utc)

R_CV = ("1. Research", "1.1. CV")
R_NLP = ("1. Research", "1.2. NLP")
R_ETC = ("1. Research", "1.3. RecSys, etc.")
B_CV = ("2. Business Cases and Implementations", "2.1. CV")
B_NLP = ("2. Business Cases and Implementations", "2.2. NLP")
B_REC = ("2. Business Cases and Implementations", "2.3. RecSys, etc.")
B_OPS = ("2. Business Cases and Implementations", "2.4. Training, Inference and MLOps")
AWS_REC = ("3. AWS ML Only", "3.3. RecSys, etc.")
AWS_OPS = ("3. AWS ML Only", "3.4. Training, Inference and MLOps")

AWS = "https://aws.amazon.com/blogs/machine-learning/"
AWS_KO = "https://aws.amazon.com/ko/blogs/machine-learning/"

# (section or None when the editor left the post out, url, title, summary, source)
CORPUS: list[tuple[tuple[str, str] | None, str, str, str, str]] = [
    (AWS_OPS, AWS + "deploy-real-time-endpoints", "Getting started with deploying real-time models on Amazon SageMaker",
     "Deploy a model to a SageMaker real-time inference endpoint and autoscale it.", "AWS"),
    (AWS_OPS, AWS + "warm-pools", "Best practices for Amazon SageMaker Training managed warm pools",
     "Reuse training infrastructure between SageMaker training jobs to cut start-up time.", "AWS"),
    (AWS_OPS, AWS + "serverless-inference", "Deploy Amazon SageMaker Autopilot models to serverless inference endpoints",
     "Serverless inference on SageMaker scales to zero between requests.", "AWS"),
    (AWS_OPS, AWS + "inferentia-bytedance", "ByteDance saves 60% on inference costs using AWS Inferentia",
     "Inf1 instances on Amazon EC2 and SageMaker endpoints for lower latency inference.", "AWS"),
    (AWS_OPS, AWS + "model-registry-mlops", "Build a cross-account MLOps workflow using the Amazon SageMaker model registry",
     "SageMaker Pipelines and the model registry automate training and deployment across accounts.", "AWS"),
    (AWS_OPS, AWS + "triton-multi-model", "Serve multiple models with Amazon SageMaker and Triton Inference Server",
     "Multi-model endpoints on SageMaker host many models behind one endpoint.", "AWS"),
    (AWS_OPS, AWS_KO + "sagemaker-shadow-testing", "Amazon SageMaker 섀도 테스트로 모델 업데이트의 영향 줄이기",
     "SageMaker 엔드포인트에서 새 모델을 섀도 배포로 검증합니다.", "AWS"),
    (AWS_REC, AWS + "personalize-recommendations", "Power recommendations with Amazon Personalize",
     "Amazon Personalize trains recommender models for personalized recommendations.", "AWS"),
    (AWS_REC, AWS + "imdb-knowledge-graph", "Power recommendations and search using an IMDb knowledge graph on Amazon Neptune",
     "Knowledge graph embeddings on Amazon Neptune ML for recommendations.", "AWS"),
    (B_OPS, "https://hyperconnect.github.io/2022/12/13/infra-cost-optimization.html", "ML 모델 서빙 비용 1/4로 줄이기",
     "추론 서버를 GPU에서 전용 가속기로 옮겨 모델 서빙 비용을 줄인 경험을 공유합니다.", "하이퍼커넥트"),
    (B_OPS, "https://helloworld.kurly.com/blog/second-mlops/", "Kurly만의 MLOps 구축하기 - Kubeflow 도입기",
     "쿠버네티스 위에 Kubeflow 파이프라인으로 모델 학습과 서빙을 자동화했습니다.", "컬리"),
    (B_OPS, "https://medium.com/coupang-engineering/ml-platform", "쿠팡 ML 플랫폼: 모델 서빙과 트래픽 처리 비용 효율화",
     "20개 이상의 모델 서빙 인프라와 추론 트래픽 처리를 효율화한 ML 플랫폼 이야기입니다.", "쿠팡"),
    (B_OPS, "https://www.uber.com/blog/michelangelo-model-serving/", "Scaling model serving at Uber with Michelangelo",
     "How we serve thousands of models online with low latency model serving and a feature store.", "Uber"),
    (B_OPS, "https://doordash.engineering/2023/gpu-inference/", "How DoorDash cut model inference latency with GPU serving",
     "Our ML platform team moved model serving to GPUs and batched inference requests.", "DoorDash"),
    (B_OPS, "https://netflixtechblog.com/metaflow-deployment", "Supporting diverse ML systems at Netflix with Metaflow",
     "Our ML platform schedules training pipelines and deploys models to production serving.", "Netflix"),
    (B_OPS, "https://engineering.atspotify.com/kubeflow-pipelines", "How we built our ML platform on Kubeflow Pipelines",
     "Kubeflow pipelines let our teams train, deploy and monitor models; an MLOps story.", "Spotify"),
    (B_REC, "https://medium.com/pinterest-engineering/homefeed", "How Pinterest uses realtime user actions in homefeed recommendation",
     "A transformer over recent user actions improves homefeed ranking and engagement.", "Pinterest"),
    (B_REC, "https://netflixtechblog.com/personalized-artwork-ranking", "Personalized ranking of titles on the Netflix homepage",
     "Recommendation and ranking models personalize the rows members see.", "Netflix"),
    (B_REC, "https://medium.com/airbnb-engineering/search-ranking-embeddings", "Embedding-based retrieval for Airbnb search ranking",
     "Listing embeddings power candidate retrieval and ranking in search.", "Airbnb"),
    (B_REC, "https://tech.example-shop.co.kr/recsys", "개인화 추천 시스템 적용기",
     "사용자 행동 로그로 추천 모델을 학습하고 개인화 랭킹을 적용했습니다.", "예시쇼핑"),
    (B_NLP, "https://medium.com/airbnb-engineering/text-generation-support", "How AI text generation models are reshaping customer support at Airbnb",
     "Fine-tuned text generation models answer customer questions and rank help content.", "Airbnb"),
    (B_NLP, "https://tech.scatterlab.co.kr/luda-gen-1/", "루다 생성 기반 챗봇 도입기",
     "검색 대신 생성 언어 모델 기반 챗봇으로 대화를 만듭니다.", "스캐터랩"),
    (B_NLP, "https://engineering.linkedin.com/query-understanding", "Query understanding for LinkedIn job search",
     "Language models classify and rewrite search queries for job seekers.", "LinkedIn"),
    (B_CV, "https://netflixtechblog.com/video-downscaler", "Improving Netflix video quality with neural networks",
     "A neural video downscaler improves picture quality for streaming.", "Netflix"),
    (B_CV, "https://blog.dramancompany.com/2022/11/rio-card-recognition", "AI 명함 촬영 인식 앱 적용기",
     "명함 이미지 인스턴스 세그멘테이션 모델을 온디바이스로 추론합니다.", "드라마앤컴퍼니"),
    (B_CV, "https://medium.com/airbnb-engineering/photo-quality", "When a picture is worth more than words: photo quality at Airbnb",
     "Image embeddings and aesthetic scores for listing photos.", "Airbnb"),
    (R_NLP, "https://ai.googleblog.com/2022/12/calm.html", "Accelerating text generation with confident adaptive language modeling",
     "Early exit decoding speeds up large language model text generation.", "Google"),
    (R_NLP, "https://huggingface.co/blog/rlhf", "Illustrating reinforcement learning from human feedback for language models",
     "RLHF tunes a language model with a reward model trained on human preferences.", "HuggingFace"),
    (R_NLP, "https://openai.com/blog/instruction-following/", "Aligning language models to follow instructions",
     "Instruction tuning of GPT language models with human feedback.", "OpenAI"),
    (R_NLP, "https://ai.googleblog.com/2022/11/mixture-of-experts.html", "Mixture-of-experts language models with expert choice routing",
     "Sparse mixture of experts transformers for efficient language model pretraining.", "Google"),
    (R_CV, "https://ai.facebook.com/blog/data2vec-2/", "Data2vec 2.0: self-supervised learning for vision",
     "Self-supervised pretraining of vision transformers on images.", "Meta"),
    (R_CV, "https://ai.googleblog.com/2022/10/image-diffusion.html", "Text-to-image diffusion models with latent guidance",
     "Diffusion models generate images from text prompts.", "Google"),
    (R_CV, "https://bair.berkeley.edu/blog/segmentation/", "Open-vocabulary image segmentation",
     "Segmentation of objects in images from language descriptions; code and checkpoints released.", "BAIR"),
    (R_ETC, "https://www.deepmind.com/blog/stratego", "Mastering Stratego, a game of imperfect information",
     "Reinforcement learning agents reach expert level at the board game Stratego.", "DeepMind"),
    (R_ETC, "https://ai.facebook.com/blog/protein-folding/", "Protein structure prediction with a language model",
     "Evolutionary-scale protein folding predictions for millions of proteins.", "Meta"),
    (None, "https://css-tricks.com/container-queries", "A guide to CSS container queries",
     "Style components with CSS container queries and responsive layouts.", "CSS-Tricks"),
    (None, "https://css-tricks.com/flexbox-guide", "A complete guide to flexbox",
     "CSS flexbox layout properties for frontend developers.", "CSS-Tricks"),
    (None, "https://frontend.example.dev/react-hooks", "Understanding React hooks",
     "useEffect and useState explained for frontend web developers.", "Frontend Weekly"),
    (None, "https://blog.example-corp.com/hiring-2024", "We are hiring frontend engineers",
     "Join our design team; open positions for frontend engineers and designers.", "Example Corp"),
    (None, "https://blog.example-corp.com/conference-recap", "Our conference recap: talks, swag and the party",
     "Highlights of our annual user conference and the after party.", "Example Corp"),
    (None, "https://marketing.example.com/webinar", "Join our webinar on marketing automation",
     "Register for a webinar about email marketing campaigns.", "Example Marketing"),
    (None, "https://tech.example-shop.co.kr/hiring", "프론트엔드 개발자 채용 공고",
     "디자인 시스템과 웹 프론트엔드를 함께 만들 개발자를 찾습니다.", "예시쇼핑"),
    (None, "https://blog.example.dev/postgres-indexes", "Postgres index tuning for web apps",
     "B-tree and GIN indexes for faster SQL queries in your web app.", "Example Dev"),
]


def _candidate(i: int, url: str, title: str, summary: str, source: str) -> Candidate:
    return Candidate(id=i, url=url, title=title, summary=summary, source=source, published=PUBLISHED)


def make_labels(with_negatives: bool = True) -> list[Label]:
    labels = []
    for i, (section, url, title, summary, source) in enumerate(CORPUS):
        if section is None and not with_negatives:
            continue
        c = _candidate(i, url, title, summary, source)
        labels.append(Label(candidate=c, section=section, selected=section is not None))
    return labels


NEW_SAGEMAKER = _candidate(
    100, AWS + "large-model-inference", "Deploy large language models on Amazon SageMaker inference endpoints",
    "Host a model on a SageMaker endpoint with large model inference containers.", "AWS",
)
NEW_SERVING = _candidate(
    101, "https://engineering.zalando.com/posts/model-serving", "How we scaled model serving on Kubernetes",
    "Our ML platform serves models with low latency on Kubernetes with GPU inference.", "Zalando",
)
NEW_KOREAN_SERVING = _candidate(
    102, "https://tech.example-bank.co.kr/ml-serving", "대규모 ML 모델 서빙 플랫폼 구축기",
    "모델 서빙 인프라를 쿠버네티스로 옮기고 추론 비용을 줄였습니다.", "예시은행",
)
OFF_TOPIC = _candidate(
    103, "https://styles.example.net/buttons", "Styling buttons with CSS custom properties",
    "CSS variables for themes and hover states in your design system.", "Styles Blog",
)


@pytest.fixture(scope="module")
def model() -> classify.Model:
    return classify.train(make_labels(), seed=0, now=NOW)


@pytest.fixture(scope="module")
def prior_model() -> classify.Model:
    return classify.train(make_labels(with_negatives=False), seed=0, now=NOW)


def test_aws_sagemaker_post_goes_to_aws_section(model: classify.Model) -> None:
    [p] = model.predict([NEW_SAGEMAKER])
    assert p.section == AWS_OPS
    assert "sagemaker" in p.reasons[0]
    assert p.reasons[1].startswith("aws.amazon.com/blogs/machine-learning: 9 past picks, 7 in 3.4.")


def test_company_serving_post_goes_to_business_mlops(model: classify.Model) -> None:
    [p] = model.predict([NEW_SERVING])
    assert p.section == B_OPS
    assert "serving" in " ".join(p.reasons)


def test_korean_serving_post_goes_to_business_mlops(model: classify.Model) -> None:
    [p] = model.predict([NEW_KOREAN_SERVING])
    assert p.section == B_OPS
    assert any("서빙" in r for r in p.reasons)


def test_predictions_are_well_formed(model: classify.Model) -> None:
    predictions = model.predict([NEW_SAGEMAKER, NEW_SERVING, NEW_KOREAN_SERVING, OFF_TOPIC])
    assert len(predictions) == 4
    for p in predictions:
        assert isinstance(p, Prediction)
        assert p.section in model.sections
        assert isinstance(p.section, tuple)
        assert 0.0 <= p.section_confidence <= 1.0
        assert 0.0 <= p.priority <= 1.0
        assert all(r.strip() and "~" not in r and "host=" not in r and "^" not in r for r in p.reasons)
    for p in predictions[:3]:  # the first reason names the section and the title words that put the post there
        heading, _, words = p.reasons[0].partition(": ")
        assert heading == p.section[-1]
        assert 1 <= len(words.split(", ")) <= classify.N_REASONS
        assert not {"with", "and", "in", "on", "the"} & set(words.split(", "))
    assert "little or no AI/ML vocabulary in title or opening" in predictions[3].reasons


def test_empty_input_gives_empty_output(model: classify.Model) -> None:
    assert model.predict([]) == []


@pytest.mark.parametrize("fixture", ["model", "prior_model"])
def test_priority_prefers_posts_like_the_selected_ones(fixture: str, request: pytest.FixtureRequest) -> None:
    m: classify.Model = request.getfixturevalue(fixture)
    sagemaker, serving, korean, off_topic = m.predict([NEW_SAGEMAKER, NEW_SERVING, NEW_KOREAN_SERVING, OFF_TOPIC])
    assert min(sagemaker.priority, serving.priority, korean.priority) > off_topic.priority


def test_priority_mode_depends_on_negatives(model: classify.Model, prior_model: classify.Model) -> None:
    assert model.meta["priority_mode"] == model.priority_mode == "classifier"
    assert prior_model.meta["priority_mode"] == prior_model.priority_mode == "prior"
    assert prior_model.meta["n_negatives"] == 0


def test_few_negatives_and_no_background_fall_back_to_the_prior() -> None:
    labels = make_labels(with_negatives=False) + [lb for lb in make_labels() if not lb.selected][:2]
    m = classify.train(labels, now=NOW)
    assert m.meta["priority_mode"] == "prior"
    assert m.meta["n_negatives"] == 2


def test_undecided_posts_as_background_make_priority_a_learned_model() -> None:
    negatives = [lb.candidate for lb in make_labels() if not lb.selected]
    negatives += [_candidate(500 + i, f"https://blog.example.org/{i}", f"Our {w} week: notes from the {w} team", "", "Example")
                  for i, w in enumerate(["frontend", "hiring", "design", "payments", "mobile"] * 10)]
    m = classify.train(make_labels(with_negatives=False), background=negatives, now=NOW)
    assert m.meta["priority_mode"] == "background"
    assert m.meta["n_background"] == len(negatives)
    sagemaker, off_topic = m.predict([NEW_SAGEMAKER, OFF_TOPIC])
    assert sagemaker.priority > 0.5 > off_topic.priority


def test_meta_describes_the_training(model: classify.Model) -> None:
    meta = model.meta
    assert meta["trained_at"] == NOW.isoformat()
    assert meta["n_examples"] == len(CORPUS)
    assert meta["n_positives"] == sum(1 for row in CORPUS if row[0])
    assert meta["n_negatives"] == sum(1 for row in CORPUS if not row[0])
    assert meta["label_counts"][" > ".join(B_OPS)] == 7
    assert meta["label_counts"][" > ".join(AWS_OPS)] == 7
    assert meta["sklearn_version"] and meta["python_version"] and meta["aggregator_version"]
    assert [tuple(s) for s in meta["sections"]] == model.sections
    json.dumps(meta)  # everything in it can go to meta.json


def test_training_twice_gives_identical_predictions() -> None:
    candidates = [NEW_SAGEMAKER, NEW_SERVING, NEW_KOREAN_SERVING, OFF_TOPIC]
    first = classify.train(make_labels(), seed=0, now=NOW).predict(candidates)
    second = classify.train(make_labels(), seed=0, now=NOW).predict(candidates)
    assert first == second


def test_input_order_does_not_matter(model: classify.Model) -> None:
    candidates = [NEW_SAGEMAKER, NEW_SERVING, NEW_KOREAN_SERVING, OFF_TOPIC]
    labels = make_labels()
    random.Random(1).shuffle(labels)
    shuffled = classify.train(labels, seed=0, now=NOW)
    assert shuffled.predict(candidates) == model.predict(candidates)


def test_predictions_keep_input_order_across_batches(model: classify.Model, monkeypatch: pytest.MonkeyPatch) -> None:
    candidates = [NEW_SAGEMAKER, NEW_SERVING, NEW_KOREAN_SERVING, OFF_TOPIC, NEW_SERVING]
    whole = model.predict(candidates)
    monkeypatch.setattr(classify, "PREDICT_BATCH", 2)
    assert model.predict(candidates) == whole
    assert whole[1] == whole[4]


# --- editor summaries ---------------------------------------------------------------------------


def test_title_document_is_what_the_text_features_read() -> None:
    """Title and the link's origin; not the opening (read only through the vocabulary), not the source name."""
    c = _candidate(1, "https://www.AWS.amazon.com/ko/blogs/machine-learning/x", "  Title\n with  spaces ",
                   "Summary " + "word " * 500, "Amazon Web Services")
    title, body, origin = features.title_document(c).split("\n")
    assert title == "Title with spaces"
    assert body == ""
    assert origin.split() == ["host=aws.amazon.com", "site=aws.amazon.com/blogs/machine-learning"]


def test_editor_summaries_never_change_the_model() -> None:
    """A draft's candidates have no editor summary; a model that learned from them would read
    the absence of one as evidence, so summaries are not training text."""
    plain = make_labels()
    enriched = [dataclasses.replace(lb, editor_summary="zorblax: 보드게임 강화학습") if lb.selected else lb for lb in plain]
    probe = [NEW_SAGEMAKER, NEW_SERVING, _candidate(200, "https://unknown.example.org/p", "Agents that play zorblax", "", "")]
    assert classify.train(enriched, now=NOW).predict(probe) == classify.train(plain, now=NOW).predict(probe)


def test_predict_reads_only_candidate_fields(model: classify.Model) -> None:
    """A Candidate has no editor summary; predicting must not look for one anywhere else."""

    class StrictCandidate(Candidate):
        def __getattribute__(self, name: str) -> object:
            if "summary" in name and name != "summary":
                raise AssertionError(f"predict read {name}")
            return super().__getattribute__(name)

    strict = StrictCandidate(**{f.name: getattr(NEW_SERVING, f.name) for f in dataclasses.fields(Candidate)})
    assert model.predict([strict]) == model.predict([NEW_SERVING])


# --- edge cases ---------------------------------------------------------------------------------


def test_one_section_gives_that_section_with_full_confidence() -> None:
    labels = [lb for lb in make_labels() if lb.section in (AWS_OPS, None)]
    m = classify.train(labels, now=NOW)
    predictions = m.predict([NEW_SAGEMAKER, OFF_TOPIC])
    assert [p.section for p in predictions] == [AWS_OPS, AWS_OPS]
    assert [p.section_confidence for p in predictions] == [1.0, 1.0]
    assert predictions[0].priority > predictions[1].priority


def test_two_sections_use_both_sides_of_a_binary_model() -> None:
    labels = [lb for lb in make_labels() if lb.section in (AWS_OPS, B_OPS)]
    m = classify.train(labels, now=NOW)
    sagemaker, korean = m.predict([NEW_SAGEMAKER, NEW_KOREAN_SERVING])
    assert (sagemaker.section, korean.section) == (AWS_OPS, B_OPS)
    assert "sagemaker" in sagemaker.reasons[0]
    assert "서빙" in korean.reasons[0]


def test_section_headings_come_back_as_written() -> None:
    odd = ("A > B", "x")  # the separator used internally, inside a heading
    labels = [dataclasses.replace(lb, section=odd) if lb.section == AWS_OPS else lb for lb in make_labels()]
    m = classify.train(labels, now=NOW)
    assert odd in m.sections
    assert m.predict([NEW_SAGEMAKER])[0].section == odd


@pytest.mark.parametrize("labels", [[], [lb for lb in make_labels() if not lb.selected]], ids=["empty", "negatives"])
def test_no_selected_posts_is_a_model_error(labels: list[Label]) -> None:
    with pytest.raises(ModelError, match="no selected posts to learn from: import a digest first"):
        classify.train(labels, now=NOW)


def test_selected_posts_without_sections_is_a_model_error() -> None:
    labels = [dataclasses.replace(lb, section=None) for lb in make_labels()]
    with pytest.raises(ModelError, match="import a digest"):
        classify.train(labels, now=NOW)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    title=st.text(max_size=80),
    summary=st.text(max_size=400),
    url=st.one_of(st.just(""), st.just("not a url"), st.text(max_size=40).map(lambda s: "https://" + s)),
    source=st.text(max_size=20),
)
def test_any_text_gives_a_valid_prediction(model: classify.Model, title: str, summary: str, url: str, source: str) -> None:
    [p] = model.predict([Candidate(id=1, url=url, title=title, summary=summary, source=source, published=PUBLISHED)])
    assert p.section in model.sections
    assert 0.0 <= p.section_confidence <= 1.0 and 0.0 <= p.priority <= 1.0


# --- persistence --------------------------------------------------------------------------------


CANDIDATES = [NEW_SAGEMAKER, NEW_SERVING, NEW_KOREAN_SERVING, OFF_TOPIC]


@pytest.fixture
def saved(model: classify.Model, tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    model_file.save(model, directory)
    return directory


@pytest.mark.parametrize("fixture", ["model", "prior_model", "background_model"])
def test_save_load_round_trip(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    m: classify.Model = request.getfixturevalue(fixture)
    model_file.save(m, tmp_path)
    loaded = model_file.load(tmp_path)
    assert loaded.predict(CANDIDATES) == m.predict(CANDIDATES)
    assert loaded.meta == m.meta
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([model_file.META_FILE, model_file.ARRAYS_FILE,
                                                                 model_file.STATE_FILE, ".lock"])


# the posts nobody decided on: the corpus's non-picks and fifty posts off the digest's subject
BACKGROUND = [lb.candidate for lb in make_labels() if not lb.selected] + [
    _candidate(500 + i, f"https://blog.example.org/{i}", f"Our {w} week", "", "")
    for i, w in enumerate(["frontend", "hiring", "design", "payments", "mobile"] * 10)]


@pytest.fixture(scope="module")
def background_model() -> classify.Model:
    return classify.train(make_labels(with_negatives=False), background=BACKGROUND, now=NOW)


@pytest.mark.parametrize(("kind", "with_negatives", "background"), [
    (priority.Classifier, True, BACKGROUND[8:30]),  # known non-picks, some background as weak ones
    (priority.Background, False, BACKGROUND),  # no known non-picks, enough background
    (priority.Prior, False, BACKGROUND[:30]),  # no known non-picks, too little background
])
def test_each_priority_kind_is_chosen_and_its_file_gives_the_same_probabilities(
        kind: type[priority.PriorityModel], with_negatives: bool, background: list[Candidate], tmp_path: Path) -> None:
    m = classify.train(make_labels(with_negatives=with_negatives), background=background, now=NOW)
    assert type(m._priority) is kind and m.priority_mode == m.meta["priority_mode"] == kind.kind
    model_file.save(m, tmp_path)
    loaded = model_file.load(tmp_path)
    assert type(loaded._priority) is kind
    # the training background too: a learned kind scores those posts out of fold
    candidates = CANDIDATES + BACKGROUND + [lb.candidate for lb in make_labels()]
    x = features.matrix(m.features, candidates)
    sites = [Site.of(c.url).key for c in candidates]  # as classify.train reads them
    urls = [c.url for c in candidates]
    before, after = m._priority.proba(x, sites, urls), loaded._priority.proba(x, sites, urls)
    assert np.array_equal(before, after) and ((before > 0) & (before <= 1)).all()
    assert loaded.cut(before.tolist()) == m.cut(before.tolist())


def test_meta_json_is_readable(saved: Path) -> None:
    meta = json.loads((saved / model_file.META_FILE).read_text("utf-8"))
    assert meta["priority_mode"] == "classifier"
    assert "2. Business Cases and Implementations > 2.4. Training, Inference and MLOps" in meta["label_counts"]
    assert sorted(meta["model_sha256"]) == sorted([model_file.ARRAYS_FILE, model_file.STATE_FILE])
    assert all(len(v) == 64 for v in meta["model_sha256"].values())


def _edit_meta(directory: Path, **changes: object) -> None:
    path = directory / model_file.META_FILE
    meta = json.loads(path.read_text("utf-8"))
    meta.update(changes)
    path.write_text(json.dumps(meta), "utf-8")


def _vouch(directory: Path) -> None:
    """Make meta.json vouch for whatever the model files now hold, as an attacker who can write models/ would."""
    _edit_meta(directory, model_sha256={n: model_file._sha256(directory / n)
                                        for n in (model_file.ARRAYS_FILE, model_file.STATE_FILE)})


def test_load_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no model in .*aggregator train"):
        model_file.load(tmp_path / "nowhere")


@pytest.mark.parametrize("name", [model_file.ARRAYS_FILE, model_file.STATE_FILE, model_file.META_FILE])
def test_load_missing_file(saved: Path, name: str) -> None:
    (saved / name).unlink()
    with pytest.raises(ModelError, match=rf"{name} is missing.*aggregator train"):
        model_file.load(saved)


def test_load_garbage_model_file(saved: Path) -> None:
    (saved / model_file.ARRAYS_FILE).write_bytes(b"\x00garbage, not arrays" * 10)
    with pytest.raises(ModelError, match=r"damaged.*aggregator train"):
        model_file.load(saved)


def test_a_planted_pickle_is_refused_and_never_runs(saved: Path, tmp_path: Path) -> None:
    """Anyone who can write models/ could plant a pickle that runs a command when loaded: it is refused unread."""
    import pickle

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    np.save(saved / "x.npy", np.array([Payload()], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(saved / model_file.ARRAYS_FILE, "w") as z:  # an .npz whose "idf" is a pickled object array
        z.write(saved / "x.npy", "idf.npy")
    (saved / "x.npy").unlink()
    (saved / model_file.STATE_FILE).write_bytes(pickle.dumps(Payload()))
    _vouch(saved)
    with pytest.raises(ModelError, match=r"not an aggregator model.*aggregator train"):
        model_file.load(saved)
    assert not marker.exists()


@pytest.mark.parametrize("change", [
    lambda st: st.update(vocabulary=st["vocabulary"][:-1]),  # arrays no longer fit the vocabulary
    lambda st: st["classes"].update(flat=["only one"]),
    lambda st: st["priority"].update(mode="magic"),
    lambda st: st["priority"].update(mode="prior"),  # a prior never has a classifier
    lambda st: st["priority"].update(mode="background"),  # its scale 1.0 is no share of labelled picks
    lambda st: st.update(sections=[]),
    lambda st: st.update(sites={"x": {"y": "many"}}),
])
def test_a_state_that_does_not_fit_is_refused(saved: Path, change: object) -> None:
    path = saved / model_file.STATE_FILE
    state = json.loads(path.read_text("utf-8"))
    change(state)  # type: ignore[operator]
    path.write_text(json.dumps(state), "utf-8")
    _vouch(saved)
    with pytest.raises(ModelError, match=r"not an aggregator model.*aggregator train"):
        model_file.load(saved)


def test_load_truncated_model_file(saved: Path) -> None:
    path = saved / model_file.ARRAYS_FILE
    path.write_bytes(path.read_bytes()[:100])
    _vouch(saved)
    with pytest.raises(ModelError, match="aggregator train"):
        model_file.load(saved)


def test_a_model_from_another_scikit_learn_still_loads(saved: Path, model: classify.Model) -> None:
    """Nothing in the files is a pickle of scikit-learn objects, so an upgrade does not force a retrain."""
    _edit_meta(saved, sklearn_version="0.24.2")
    assert model_file.load(saved).predict(CANDIDATES) == model.predict(CANDIDATES)


def test_load_other_format(saved: Path) -> None:
    _edit_meta(saved, format=99)
    with pytest.raises(ModelError, match="aggregator train"):
        model_file.load(saved)


def test_load_meta_without_a_key(saved: Path) -> None:
    path = saved / model_file.META_FILE
    meta = json.loads(path.read_text("utf-8"))
    del meta["sklearn_version"]
    path.write_text(json.dumps(meta), "utf-8")
    with pytest.raises(ModelError, match=r"lacks sklearn_version.*aggregator train"):
        model_file.load(saved)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_load_damaged_meta(saved: Path, content: str) -> None:
    (saved / model_file.META_FILE).write_text(content, "utf-8")
    with pytest.raises(ModelError, match=r"damaged meta\.json.*aggregator train"):
        model_file.load(saved)


def test_save_overwrites_an_older_model(model: classify.Model, prior_model: classify.Model, tmp_path: Path) -> None:
    model_file.save(prior_model, tmp_path)
    model_file.save(model, tmp_path)
    assert model_file.load(tmp_path).meta["priority_mode"] == "classifier"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([model_file.META_FILE, model_file.ARRAYS_FILE,
                                                                 model_file.STATE_FILE, ".lock"])


def test_save_never_follows_a_planted_temporary_name(model: classify.Model, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me", "utf-8")
    directory = tmp_path / "models"
    directory.mkdir()
    for name in (model_file.ARRAYS_FILE, model_file.STATE_FILE, model_file.META_FILE):
        (directory / f"{name}.tmp").symlink_to(victim)
    model_file.save(model, directory)
    assert victim.read_text("utf-8") == "keep me"
    assert model_file.load(directory).predict(CANDIDATES) == model.predict(CANDIDATES)


def _save_alternately(directory: Path, models: list[classify.Model], times: int) -> None:
    for i in range(times):
        model_file.save(models[i % 2], directory)


def test_a_model_saved_by_one_process_while_another_loads_is_never_read_mixed(
        model: classify.Model, prior_model: classify.Model, tmp_path: Path) -> None:
    """The desk's retraining and the daemon's may save at once while a draft loads: the folder's lock keeps
    every load to one whole model."""
    import multiprocessing

    model_file.save(model, tmp_path)
    known = {json.loads((tmp_path / "meta.json").read_text())["model_sha256"]["model.json"]}
    model_file.save(prior_model, tmp_path)
    known.add(json.loads((tmp_path / "meta.json").read_text())["model_sha256"]["model.json"])
    writer = multiprocessing.get_context("fork").Process(target=_save_alternately, args=(tmp_path, [model, prior_model], 60))
    writer.start()
    loads = 0
    try:
        while writer.is_alive() or loads == 0:
            loaded = model_file.load(tmp_path)  # a mixed model would raise ModelError ("damaged")
            assert loaded.meta["model_sha256"]["model.json"] in known
            loads += 1
    finally:
        writer.join(timeout=120)
    assert writer.exitcode == 0 and loads > 0


# -- Hardening, round three, medium 5: a compressed model file cannot exhaust memory ---------------


def _npy_claiming(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """An .npy member whose header claims `shape` but whose body is a few bytes: small on disk, huge if trusted."""
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(64)


def _rewrite_npz(directory: Path, replace: dict[str, bytes]) -> None:
    """model.npz again, its members kept except those in `replace` (added when new), and meta.json vouching for it."""
    path = directory / model_file.ARRAYS_FILE
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    members.update(replace)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    _vouch(directory)


def _one_line_model_error(directory: Path) -> str:
    with pytest.raises(ModelError) as caught:  # never a MemoryError, nor a traceback
        model_file.load(directory)
    message = str(caught.value)
    assert "\n" not in message and "aggregator train" in message
    return message


def test_medium5_an_extra_array_of_gigabytes_in_the_model_file_is_refused_unread(saved: Path) -> None:
    """A model.npz with an extra 3 GiB array of zeros (a small file, compressed) is refused by its name,
    before anything of it is decompressed."""
    _rewrite_npz(saved, {"zeros.npy": _npy_claiming((3 * 2**30 // 8,))})
    assert (saved / model_file.ARRAYS_FILE).stat().st_size < 2**20
    assert "zeros.npy" in _one_line_model_error(saved)


def test_medium5_an_array_header_claiming_ten_to_the_eleven_floats_is_refused_before_reading(saved: Path) -> None:
    _rewrite_npz(saved, {"idf.npy": _npy_claiming((10**11,))})
    message = _one_line_model_error(saved)
    assert "idf" in message and "shape" in message


def test_medium5_arrays_of_another_dtype_or_shape_than_the_model_says_are_refused(saved: Path) -> None:
    with zipfile.ZipFile(saved / model_file.ARRAYS_FILE) as z:
        with z.open("idf.npy") as f:
            np.lib.format.read_magic(f)
            shape, _, _ = np.lib.format.read_array_header_1_0(f)
    _rewrite_npz(saved, {"idf.npy": _npy_claiming(shape, "<i8")})
    assert "idf" in _one_line_model_error(saved)
    _rewrite_npz(saved, {"idf.npy": _npy_claiming((shape[0], 2))})
    assert "idf" in _one_line_model_error(saved)


def test_medium5_a_model_whose_arrays_would_total_over_the_cap_is_refused(saved: Path) -> None:
    """model.json naming a million classes asks for arrays far over the cap: refused before any is read."""
    path = saved / model_file.STATE_FILE
    state = json.loads(path.read_text("utf-8"))
    state["classes"]["flat"] = [f"class {i}" for i in range(1_000_000)]
    path.write_text(json.dumps(state), "utf-8")
    _vouch(saved)
    assert "MiB" in _one_line_model_error(saved)


def test_decisions_whose_posts_share_no_word_or_host_still_train_and_score() -> None:
    """The priority's text classifier reads the words two or more posts share; where none are shared (every
    post alone on its host, no title) it reads them all rather than nothing."""
    now = datetime(2023, 1, 1, tzinfo=timezone.utc)
    labels = [Label(Candidate(i, f"https://h{i}.example/", "", "", "", now), ("1. A",) if i < 6 else None, i < 6)
              for i in range(12)]
    model = classify.train(labels, now=now)
    assert model.priority_mode == "classifier"
    [guess] = model.predict([Candidate(99, "https://elsewhere.example/", "", "", "", now)])
    assert 0.0 <= guess.priority <= 1.0 and guess.section == ("1. A",)
