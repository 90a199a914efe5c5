"""Time training and scoring of aggregator.learn.classify on synthetic posts, and report peak memory.

    python benchmarks/bench_classify.py [--train 1000 10000] [--score 10000 100000]

The posts are generated from a fixed seed (a mix of English and Korean, ten sections, selected
and left-out posts), so runs are comparable. Nothing outside this repository is read.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.learn import classify, model_file  # noqa: E402
from aggregator.models import Candidate, Label  # noqa: E402

T = TypeVar("T")
NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)

# section -> (hosts, English topic words, Korean topic words)
SECTIONS: dict[tuple[str, str], tuple[list[str], list[str], list[str]]] = {
    ("1. Research", "1.1. CV"): (
        ["ai.googleblog.com", "ai.facebook.com", "bair.berkeley.edu"],
        "image vision diffusion segmentation detection pixels convolution video generative resolution".split(),
        "이미지 비전 확산 분할 탐지 영상 생성".split(),
    ),
    ("1. Research", "1.2. NLP"): (
        ["ai.googleblog.com", "huggingface.co", "openai.com"],
        "language llm transformer tokens attention instruction rlhf text pretraining dialogue".split(),
        "언어 모델 토큰 문장 대화 사전학습 번역".split(),
    ),
    ("1. Research", "1.3. RecSys, etc."): (
        ["deepmind.com", "microsoft.com", "ai.facebook.com"],
        "reinforcement game protein reasoning graph agents theorem planning".split(),
        "강화학습 게임 단백질 추론 그래프 에이전트".split(),
    ),
    ("2. Business Cases and Implementations", "2.1. CV"): (
        ["netflixtechblog.com", "medium.com", "blog.dramancompany.com"],
        "photo camera ocr thumbnails visual artwork quality recognition".split(),
        "사진 카메라 명함 인식 썸네일 화질".split(),
    ),
    ("2. Business Cases and Implementations", "2.2. NLP"): (
        ["medium.com", "tech.scatterlab.co.kr", "engineering.linkedin.com"],
        "chatbot support search queries customer assistant toxicity translation".split(),
        "챗봇 상담 검색 고객 질의 요약".split(),
    ),
    ("2. Business Cases and Implementations", "2.3. RecSys, etc."): (
        ["medium.com", "netflixtechblog.com", "blog.getliner.com"],
        "recommendation ranking homefeed personalization fraud embeddings retrieval ads".split(),
        "추천 랭킹 개인화 임베딩 광고 사기 탐지".split(),
    ),
    ("2. Business Cases and Implementations", "2.4. Training, Inference and MLOps"): (
        ["hyperconnect.github.io", "engineering.clova.ai", "helloworld.kurly.com", "uber.com"],
        "serving inference kubeflow pipeline platform latency gpu deployment airflow monitoring".split(),
        "서빙 추론 플랫폼 비용 배포 파이프라인 모니터링".split(),
    ),
    ("3. AWS ML Only", "3.3. RecSys, etc."): (
        ["aws.amazon.com"],
        "personalize recommendations knowledge graph neptune forecast".split(),
        "추천 그래프 예측".split(),
    ),
    ("3. AWS ML Only", "3.4. Training, Inference and MLOps"): (
        ["aws.amazon.com"],
        "sagemaker endpoint inferentia autopilot training jobs registry serverless".split(),
        "세이지메이커 엔드포인트 훈련 배포".split(),
    ),
}
OFF_TOPIC = (
    ["css-tricks.com", "blog.example.dev", "news.ycombinator.com", "martinfowler.com"],
    "css frontend react hiring conference recap webinar marketing accessibility database".split(),
    "프론트엔드 채용 행사 후기 마케팅 디자인".split(),
)
GENERIC = "how we build using with new the for and our at scale model data learning machine".split()
GENERIC_KO = "우리 팀 의 을 를 으로 에서 개선 구축 적용기 도입기 사례".split()
PARTICLES = ["", "을", "를", "의", "으로", "에서", "은", "는"]


def make_lexicon(n: int, korean: bool, seed: int) -> list[str]:
    """Pseudo-words, to give the posts a large, Zipf-distributed vocabulary like real text."""
    rng = random.Random(seed)
    if korean:
        return ["".join(chr(0xAC00 + rng.randrange(11172)) for _ in range(rng.randint(2, 3))) for _ in range(n)]
    syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"] + ["ion", "ing", "er", "al"]
    return ["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(n)]


LEXICON = make_lexicon(60_000, korean=False, seed=1)
LEXICON_KO = make_lexicon(20_000, korean=True, seed=2)


def zipf_word(rng: random.Random, lexicon: list[str]) -> str:
    return lexicon[int(len(lexicon) ** rng.random()) - 1]  # P(rank r) ~ 1/r


def make_post(rng: random.Random, i: int, topic: tuple[list[str], list[str], list[str]]) -> Candidate:
    hosts, en, ko = topic
    korean = rng.random() < 0.2
    if korean:
        pool = [w + rng.choice(PARTICLES) for w in ko] + GENERIC_KO + en[:3]
        lexicon = LEXICON_KO
    else:
        pool = en + GENERIC
        lexicon = LEXICON

    def words(n: int, topical: float) -> str:
        return " ".join(rng.choice(pool) if rng.random() < topical else zipf_word(rng, lexicon) for _ in range(n))

    host = rng.choice(hosts)
    return Candidate(
        id=i,
        url=f"https://{host}/blog/{i}-{rng.randrange(10**6)}",
        title=words(rng.randint(5, 10), 0.5),
        summary=words(rng.randint(25, 60), 0.3),
        source=host.split(".")[-2],
        published=NOW,
    )


def make_labels(n: int, seed: int) -> list[Label]:
    rng = random.Random(seed)
    sections = list(SECTIONS)
    labels = []
    for i in range(n):
        if rng.random() < 0.4:
            section = rng.choice(sections)
            c = make_post(rng, i, SECTIONS[section])
            summary = " ".join(rng.choice(SECTIONS[section][2]) for _ in range(12)) if rng.random() < 0.5 else ""
            labels.append(Label(candidate=c, section=section, selected=True, editor_summary=summary))
        else:
            topic = OFF_TOPIC if rng.random() < 0.5 else SECTIONS[rng.choice(sections)]
            labels.append(Label(candidate=make_post(rng, i, topic), section=None, selected=False))
    return labels


def make_candidates(n: int, seed: int) -> list[Candidate]:
    rng = random.Random(seed)
    topics = [*SECTIONS.values(), OFF_TOPIC]
    return [make_post(rng, 1_000_000 + i, rng.choice(topics)) for i in range(n)]


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, nargs="+", default=[1000, 10000], help="label counts to train on")
    parser.add_argument("--score", type=int, nargs="+", default=[10000, 100000], help="candidate counts to score")
    parser.add_argument("--background", type=int, default=50000, help="undecided posts to train beside the picks")
    args = parser.parse_args(argv)

    rows: list[tuple[str, str, str]] = []
    model = None
    for n in args.train:
        labels = make_labels(n, seed=n)
        model, seconds = timed(lambda: classify.train(labels, now=NOW))
        rows.append((f"train {n:,} labels", f"{seconds:.2f} s", f"mode={model.meta['priority_mode']}, features={model.meta['n_features']:,}"))
    assert model is not None
    with tempfile.TemporaryDirectory() as tmp:
        _, seconds = timed(lambda: model_file.save(model, Path(tmp)))
        size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20
        rows.append(("save", f"{seconds:.2f} s", f"{size:.1f} MiB on disk"))
        model, seconds = timed(lambda: model_file.load(Path(tmp)))
        rows.append(("load", f"{seconds:.2f} s", ""))
    for n in args.score:
        candidates = make_candidates(n, seed=7)
        predictions, seconds = timed(lambda: model.predict(candidates))
        rows.append((f"score {n:,} candidates", f"{seconds:.2f} s", f"{n / seconds:,.0f}/s"))
    positives = [lb for lb in make_labels(args.train[-1], seed=1) if lb.selected]
    prior_model = classify.train(positives, now=NOW)
    candidates = make_candidates(args.score[-1], seed=7)
    _, seconds = timed(lambda: prior_model.predict(candidates))
    rows.append((f"score {len(candidates):,} (prior mode)", f"{seconds:.2f} s", f"{len(positives):,} positives"))
    background = make_candidates(args.background, seed=11)
    pu_model, seconds = timed(lambda: classify.train(positives, background=background, now=NOW))
    rows.append((f"train {len(positives):,} picks + {len(background):,} background", f"{seconds:.2f} s",
                 f"mode={pu_model.meta['priority_mode']}"))
    rows.append(("peak RSS", f"{peak_rss_mib():.0f} MiB", ""))

    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>9}  {note}")


if __name__ == "__main__":
    main()
