"""Built-in vocabulary of AI/ML digests: what common section names mean, and which words put a post in scope.

An editor's first digest holds a few dozen entries, too few for a classifier to learn that
"serving" means MLOps or that 추천 means recommender systems. These lists are general domain
knowledge, written once, in English and Korean; the models use them as a weak prior that the
editor's own decisions outweigh as they accumulate. A digest whose section names match none of
the aliases below simply gets no prior for them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+(?:[-+.][a-z0-9]+)*")
_HANGUL = re.compile("[\uac00-\ud7a3]")


@dataclass(frozen=True)
class Topic:
    """A kind of section: the names a digest may give it and the words that signal it."""

    key: str
    aliases: tuple[str, ...]  # matched against a section heading's words
    terms: tuple[str, ...]  # English words or phrases (lower case), or Korean substrings


def _terms(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


# Leaf kinds: what a post is about.
TOPICS: tuple[Topic, ...] = (
    Topic("cv", ("cv", "vision", "image", "images", "비전", "이미지"), _terms(
        "vision, visual, image, images, video, videos, pixel, photo, photos, camera, diffusion, diffusers, "
        "segmentation, object detection, detection, ocr, face, faces, 3d, gan, vit, text-to-image, image generation, "
        "upscaling, super-resolution, rendering, artwork, thumbnail, visual search, "
        "이미지, 영상, 비전, 사진, 동영상, 카메라, 얼굴, 객체 탐지, 객체, 세그멘테이션, 화질, 썸네일")),
    Topic("nlp", ("nlp", "language", "text", "llm", "llms", "자연어", "언어"), _terms(
        "language, languages, llm, llms, gpt, chatgpt, bert, t5, text, texts, translation, chatbot, chatbots, dialogue, "
        "dialog, conversational, conversation, prompt, prompts, prompting, summarization, question answering, rlhf, "
        "instruction, instructions, tokenizer, tokens, speech, transcription, sentiment, toxicity, nlp, embeddings, "
        "retrieval-augmented, rag, "
        "언어, 자연어, 텍스트, 챗봇, 대화, 번역, 문장, 요약, 프롬프트, 음성, 말뭉치, 형태소")),
    Topic("recsys", ("recsys", "recommender", "recommendation", "recommendations", "추천"), _terms(
        "recommendation, recommendations, recommender, recommend, recommending, personalization, personalized, "
        "ranking, rank, search, retrieval, ads, advertising, click, ctr, homefeed, feed ranking, knowledge graph, "
        "graph, gnn, fraud, anomaly, anomalies, forecasting, forecast, time series, tabular, causal, bandit, bandits, "
        "experimentation, a/b, pricing, matching, 추천, 개인화, 랭킹, 검색, 광고, 예측, 이상 탐지, 이상탐지, 그래프")),
    Topic("mlops", ("mlops", "training", "inference", "serving", "platform", "infrastructure", "훈련", "학습",
                    "추론", "서빙"), _terms(
        "training, train, trained, inference, serving, serve, deploy, deployment, deployments, pipeline, pipelines, "
        "platform, mlops, kubernetes, kubeflow, airflow, gpu, gpus, tpu, tpus, cluster, clusters, latency, cost, costs, "
        "compiler, quantization, distributed, scaling, feature store, monitoring, endpoint, endpoints, workflow, "
        "workflows, orchestration, accelerator, accelerators, inferentia, trainium, triton, onnx, batch, dataflow, "
        "spark, beam, data platform, experiments, registry, governance, warm pools, autopilot, retrain, "
        "학습, 훈련, 추론, 서빙, 배포, 파이프라인, 플랫폼, 인프라, 비용, 모니터링, 운영, 쿠버네티스, 클러스터, 가속기, "
        "경량화, 자동화, 배치")),
)

# Top-level kinds: how a post relates to the editor's readers.
KINDS: tuple[Topic, ...] = (
    Topic("research", ("research", "papers", "paper", "연구", "논문"), _terms(
        "research, paper, papers, arxiv, state-of-the-art, sota, benchmark, benchmarks, novel, theorem, reasoning, "
        "scientific, science, protein, self-supervised, pre-training, pretraining, scaling laws, "
        "연구, 논문, 학회")),
    Topic("business", ("business", "implementations", "implementation", "applications", "application", "cases",
                       "case", "engineering", "사례", "적용"), _terms(
        "how we, at scale, production, our, customer, customers, customer support, platform, "
        "적용기, 도입기, 구축기, 구축, 활용기, 활용, 사례, 개발기, 서비스, 운영, 적용")),
)

# Words that put a post in an AI/ML digest's scope at all (beyond the topic words above, many of
# which, like "platform" or "search", also fill ordinary engineering blogs). A strong word is enough
# on its own; weak ones ("model", 학습 = learning of any kind, 추천 = any recommendation) need a second.
SCOPE: tuple[str, ...] = _terms(
    "ai, ml, machine learning, deep learning, neural, neural network, neural networks, llm, llms, lm, lms, "
    "gpt, chatgpt, transformer, transformers, diffusion, generative, genai, reinforcement learning, rlhf, "
    "fine-tuning, fine-tune, finetuning, pytorch, tensorflow, jax, huggingface, hugging face, sagemaker, bedrock, "
    "mlops, computer vision, nlp, language model, language models, chatbot, data science, multimodal, "
    "self-supervised, autoencoder, autoencoders, diffusers, nns, neural nets, language modeling, mixture of experts, "
    "moe, synthetic data, uncertainty quantification, anomaly detection, vector database, vector search, "
    "reinforcement, 인공지능, 머신러닝, 머신 러닝, 딥러닝, 딥 러닝, 기계학습, 기계 학습, 신경망, 언어 모델, "
    "생성형, 생성 모델, 챗봇, 데이터 사이언스, 파인 튜닝, 파인튜닝, 자연어, 멀티모달")
WEAK_SCOPE: tuple[str, ...] = _terms(
    "model, models, inference, training data, dataset, datasets, embedding, embeddings, classifier, "
    "classification, regression, recommendation, recommendations, recommender, prediction, predictive, vision, "
    "speech, robot, robots, agent, agents, toxicity, uncertainty, forecasting, time series, anomaly, anomalies, "
    "knowledge graph, vector, vectors, 모델, 벡터, 이상 탐지, 상품추천, 추천, 학습, 추론, 예측, 임베딩, 데이터셋, 분류, 음성")

# Words that put a post outside an AI/ML digest's scope whatever its host: a company blog's hiring, events,
# culture and people posts. One is enough, unless the same text also has a strong AI/ML word.
OFF_SCOPE: tuple[str, ...] = _terms(
    "hiring, we're hiring, we are hiring, recruiting, recruitment, job opening, job openings, internship, interns, "
    "careers, career, meetup, meet-up, conference recap, event recap, hackathon, company culture, our culture, "
    "onboarding, team culture, employee, employees, office, offices, award, awards, newsletter, "
    "retrospective, year in review, "
    "채용, 인턴, 인턴십, 공채, 입사, 신입, 경력직, 면접, 온보딩, 행사, 밋업, 컨퍼런스 후기, 세미나, 해커톤, 사내, "
    "조직문화, 조직 문화, 회사 문화, 팀 문화, 복지, 워크숍, 워크샵, 송년회, 회고, 인터뷰, 수상, 뉴스레터")

# Hosts that belong to research labs rather than product teams.
RESEARCH_HOSTS: tuple[str, ...] = ("research", "deepmind", "openai", "ai.googleblog", "ai.facebook", "ai.meta",
                                   "arxiv", "bair.berkeley", "ai.stanford", "allenai", "mila.quebec")


# Words that say code or model weights are published ("open code or checkpoints raise importance").
OPEN: tuple[str, ...] = _terms(
    "open source, open-source, open sourcing, open-sourcing, github, library, toolkit, framework, checkpoint, "
    "checkpoints, weights, release, releases, released, introducing, 오픈소스, 오픈 소스, 공개, 라이브러리, 체크포인트")


def words(text: str) -> list[str]:
    """Lower-case word tokens, with a final plural "s" also given without it."""
    out = []
    for w in _WORD.findall(text.lower()):
        out.append(w)
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            out.append(w[:-1])
    return out


def _trie(terms: Sequence[str], ending: str) -> str:
    """One expression matching any of `terms` followed by `ending`, the longest first, with the terms
    merged on their common beginnings: ("train", "training", "transformer") reads as
    tra(?:in(?:ing|)|nsformer). The regular-expression engine tries the alternatives of a plain list
    one by one at every position of a text; this way it follows one branch per character read."""
    root: dict = {}
    for term in terms:
        node = root
        for ch in term:
            node = node.setdefault(ch, {})
        node[""] = {}

    def branch(node: dict) -> str:
        paths = [re.escape(ch) + branch(child) for ch, child in sorted(node.items()) if ch]
        if "" in node:
            paths.append(ending)  # after every longer way on: the longest term is found first
        return paths[0] if len(paths) == 1 else "(?:" + "|".join(paths) + ")"

    return branch(root)


class Matcher:
    """Finds which of a list of terms occur in a text.

    English words match whole words (a final "s" optional) by set look-up, English phrases by one
    compiled expression, Korean terms anywhere, since Korean attaches particles to nouns (서빙을, 추천으로).
    """

    def __init__(self, terms: Sequence[str]) -> None:
        self.terms = tuple(dict.fromkeys(t.lower() for t in terms))
        self._words = {t for t in self.terms if _WORD.fullmatch(t) and "-" not in t and "." not in t and "+" not in t}
        phrases = [t for t in self.terms if t not in self._words and not _HANGUL.search(t)]
        korean = [t for t in self.terms if _HANGUL.search(t)]
        self._phrases = re.compile(r"(?<![a-z0-9])" + _trie(phrases, "s?") + r"(?![a-z0-9])") if phrases else None
        self._korean = re.compile(_trie(korean, "")) if korean else None

    def found(self, text: str) -> set[str]:
        """The distinct terms found in `text` (as they occur, lower-cased)."""
        if not text:
            return set()
        lowered = text.lower()
        out = set()
        for w in _WORD.findall(lowered):
            if w in self._words:
                out.add(w)
            elif w.endswith("s") and w[:-1] in self._words:
                out.add(w[:-1])
        if self._phrases is not None and (" " in lowered or "-" in lowered or "/" in lowered):
            out.update(self._phrases.findall(lowered))
        if self._korean is not None and _HANGUL.search(lowered):
            out.update(self._korean.findall(lowered))
        return out

    def count(self, text: str) -> int:
        return len(self.found(text))


class Groups:
    """Several named term lists matched with one expression: which groups' terms occur in a text, counted."""

    def __init__(self, groups: dict[str, Sequence[str]]) -> None:
        self.names = tuple(groups)
        self._matcher = Matcher([t for terms in groups.values() for t in terms])
        member: dict[str, set[int]] = {}
        for i, terms in enumerate(groups.values()):
            for t in terms:
                member.setdefault(t.lower(), set()).add(i)
        self._member = member

    def counts(self, text: str) -> list[int]:
        """How many distinct terms of each group occur in `text`, in the order of `names`. A phrase also
        counts as its words ("언어 모델" is found whole, and 언어 alone is a term too)."""
        return self.read(text)[0]

    def read(self, text: str) -> tuple[list[int], set[str]]:
        """`counts` of `text`, and the terms found in it (as `Matcher.found` gives them)."""
        terms = self._matcher.found(text)
        found = terms | {w for f in terms if " " in f for w in f.split()}
        out = [0] * len(self.names)
        for term in found:
            for i in self._member.get(term) or self._member.get(term[:-1], ()):
                out[i] += 1
        return out, terms


def matches(heading: str, topics: Sequence[Topic]) -> Topic | None:
    """The topic whose alias appears in a section heading ("2.4. Training, Inference and MLOps" -> mlops)."""
    found = set(words(heading))
    lowered = heading.lower()
    for topic in topics:
        if any((a in lowered) if _HANGUL.search(a) else (a in found) for a in topic.aliases):
            return topic
    return None
