"""Deterministic synthetic feeds for the update benchmark: RSS 2.0, Atom and RDF, English and Korean, rendered to bytes."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from xml.sax.saxutils import escape, quoteattr

BASE_TIME = datetime(2024, 6, 1, 9, 0, tzinfo=timezone.utc)  # the newest entry of the unmutated corpus
KST = timezone(timedelta(hours=9))

EN_WORDS = (
    "model training inference latency throughput cluster pipeline feature store embedding vector index query "
    "ranking recommendation experiment baseline accuracy evaluation dataset label annotation privacy serving "
    "cache batch stream kafka spark gpu kernel memory bandwidth quantization distillation transformer attention "
    "token context retrieval search agent tool planner scheduler deployment rollout canary metric dashboard alert "
    "incident postmortem reliability cost budget team engineer platform service api schema migration storage "
    "replica shard partition consistency we our the a an of to in for with on at by from this that these which "
    "is are was were be been can will should would improve reduce scale measure learn build ship observe debug"
).split()
KO_WORDS = (
    "모델 학습 추론 데이터 서비스 개발 배포 성능 최적화 검색 추천 시스템 사용자 실험 결과 분석 파이프라인 클러스터 "
    "서버 비용 지연 시간 메모리 대규모 언어 생성 평가 품질 엔지니어 팀 구조 설계 운영 모니터링 장애 대응 개선 적용 "
    "방법 문제 해결 경험 공유 이번 글에서는 우리는 새로운 기존 방식 기술 도입 과정 그리고 하지만 또한 위해 통해 "
    "정확도 지표 실시간 처리 속도 안정성 확장 캐시 쿼리 인덱스 벡터 임베딩"
).split()
KO_ENDINGS = ("있습니다.", "했습니다.", "소개합니다.", "되었습니다.", "필요합니다.", "살펴보겠습니다.")
ENTITIES = ("&amp;", "&lt;", "&gt;", "&quot;", "&#8217;", "&#8220;", "&#8221;", "&mdash;", "&nbsp;", "&hellip;")
CODE = (
    "def score(batch):\n    logits = model(batch)\n    return logits.softmax(-1) if len(batch) &lt; 64 else logits\n",
    "for (let i = 0; i &lt; n &amp;&amp; !done; i++) {\n  queue.push(items[i]);\n}\n",
    "SELECT user_id, count(*) FROM events\nWHERE ts &gt;= now() - interval '1 day'\nGROUP BY 1;\n",
    "kubectl rollout status deploy/ranker -n ml &amp;&amp; kubectl get pods -l app=ranker\n",
)
for _word in KO_WORDS + list(KO_ENDINGS):
    _word.encode("euc_kr")  # every Korean word must exist in EUC-KR (KS X 1001)


@dataclass(frozen=True)
class Entry:
    """One published item; `canonical` is its link without tracking parameters (the story's identity)."""

    guid: str | None
    link: str
    canonical: str
    title: str
    author: str
    published: datetime
    summary: str  # HTML
    content: str | None  # HTML, None for summary-only feeds
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Feed:
    """One feed: where it is served, its format and its entries, newest first."""

    index: int
    name: str
    address: str  # loopback address that serves it
    path: str
    kind: str  # "rss", "atom" or "rdf"
    lang: str  # "en" or "ko"
    encoding: str  # "utf-8" or "euc-kr"
    site: str
    title: str
    full: bool  # full HTML content besides the summary
    guid_style: str  # "permalink", "tag" or "none"
    utm: bool  # FeedBurner-style tracking parameters on every own link
    entries: tuple[Entry, ...] = field(default=())

    @property
    def content_type(self) -> str:
        if self.encoding == "euc-kr":
            return "text/xml; charset=EUC-KR"
        return {"rss": "application/rss+xml", "atom": "application/atom+xml", "rdf": "application/rdf+xml"}[self.kind] \
            + "; charset=UTF-8"

    @property
    def updated(self) -> datetime:
        return self.entries[0].published


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(map(str, (seed, *parts))))  # str seeds hash with SHA-512: stable everywhere


def _sentence(rng: random.Random, lang: str, entities: bool = True) -> str:
    if lang == "ko":
        return " ".join(rng.choices(KO_WORDS, k=rng.randint(6, 14))) + " " + rng.choice(KO_ENDINGS)
    words = rng.choices(EN_WORDS, k=rng.randint(8, 20))
    if entities and rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), rng.choice(ENTITIES))
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random, lang: str) -> str:
    text = " ".join(_sentence(rng, lang) for _ in range(rng.randint(2, 5)))
    roll = rng.random()
    if roll < 0.25:
        text += f' See <a href="https://docs.example.org/{rng.choice(EN_WORDS)}?utm_source=blog&amp;utm_medium=referral">the docs</a>.'
    elif roll < 0.45:
        text += f' As in <a href="../{rng.randint(2019, 2023)}/{rng.randint(1, 12):02d}/{rng.choice(EN_WORDS)}">our earlier post</a>.'
    elif roll < 0.6:
        text += f" We call <code>{rng.choice(EN_WORDS)}_{rng.choice(EN_WORDS)}()</code> for each <em>{rng.choice(EN_WORDS)}</em>."
    return f"<p>{text}</p>"


def _body(rng: random.Random, lang: str, blocks: int) -> str:
    parts = []
    for i in range(blocks):
        roll = rng.random()
        if i and roll < 0.12:
            parts.append(f"<h2>{_sentence(rng, lang)[:60]}</h2>")
        elif i and roll < 0.22:
            parts.append(f'<pre><code class="language-python">{rng.choice(CODE)}</code></pre>')
        elif i and roll < 0.32:
            n = rng.randint(1, 9)
            parts.append(f'<figure><img src="/images/{rng.randint(2020, 2024)}/fig-{n}.png" alt="figure {n}" '
                         f'width="800" height="450"><figcaption>{_sentence(rng, lang)}</figcaption></figure>')
        elif i and roll < 0.38:
            items = "".join(f"<li>{_sentence(rng, lang)}</li>" for _ in range(rng.randint(2, 4)))
            parts.append(f"<ul>{items}</ul>")
        elif i and roll < 0.42:
            parts.append(f"<blockquote>{_sentence(rng, lang)}</blockquote>")
        else:
            parts.append(_paragraph(rng, lang))
    return "\n".join(parts)


def _slug(rng: random.Random, lang: str, n: int) -> str:
    if lang == "ko" and rng.random() < 0.5:  # Korean slugs are percent-encoded, upper-case escapes
        words = rng.choices(KO_WORDS, k=3)
        return "-".join("".join(f"%{b:02X}" for b in word.encode()) for word in words) + f"-{n}"
    return "-".join(rng.choices(EN_WORDS[:60], k=rng.randint(3, 6))) + f"-{n}"


def _entry(rng: random.Random, feed: Feed, n: int, published: datetime) -> Entry:
    canonical = f"{feed.site}/{published:%Y/%m}/{_slug(rng, feed.lang, n)}"
    link = canonical + (f"?utm_source=feed&utm_medium=rss&utm_campaign={feed.name}" if feed.utm else "")
    title = _sentence(rng, feed.lang, entities=False)[:90].rstrip(".")  # plain text; escaped when rendered
    if feed.lang == "en" and rng.random() < 0.2:
        title = title.replace(" the ", " Q&A: the ", 1) if " the " in title else title + " \u2014 what\u2019s next"
    guid = {"permalink": canonical, "tag": f"tag:{feed.site[8:]},2024:post-{n}", "none": None}[feed.guid_style]
    body = _body(rng, feed.lang, rng.randint(3, 14)) if feed.full else None
    summary = _paragraph(rng, feed.lang)
    tags = tuple(rng.sample(EN_WORDS[:40], k=rng.randint(1, 4)))
    author = rng.choice(("김민준", "이서연", "박지훈", "최유진") if feed.lang == "ko" else ("Ada Park", "Sam Lee", "Ravi Rao", "Mia Chen"))
    return Entry(guid, link, canonical, title, author, published, summary, body, tags)


def host_slots(n: int, per_address: int | None = None) -> list[int]:
    """Which address serves each feed. per_address=None spreads them as a real reading list is spread (the
    422-feed kilimchoi OPML: 379 hosts, 33 feeds on medium.com, 7 on feedburner): 8% of the feeds on one
    host, 2% on another, every other feed on a host of its own. Otherwise `per_address` feeds per address."""
    if per_address is not None:
        n_addresses = max(1, -(-n // per_address))
        return [i % n_addresses for i in range(n)]
    big, second = round(n * 0.08), round(n * 0.02)
    return [0] * big + [1] * second + list(range(2, 2 + n - big - second))


def generate(n: int, seed: int = 1, per_address: int | None = None) -> list[Feed]:
    """n feeds of about 35 entries (about 66 KB) each; the same (n, seed) always gives the same feeds."""
    slots = host_slots(n, per_address)
    _rng(seed, "hosts").shuffle(slots)  # feeds of one host are scattered through the list, as in a real one
    n_euckr = max(2, n // 250)
    feeds: list[Feed] = []
    for i in range(n):
        rng = _rng(seed, "feed", i)
        lang = "ko" if i % 7 == 3 else "en"
        encoding = "euc-kr" if lang == "ko" and i // 7 < n_euckr else "utf-8"
        kind = "rss" if encoding == "euc-kr" else rng.choices(("rss", "atom", "rdf"), (6, 3, 1))[0]
        name = f"blog-{i:04d}"
        address = f"127.0.{slots[i] // 250}.{2 + slots[i] % 250}"
        path = f"/{name}/" + {"rss": "feed.xml", "atom": "atom.xml", "rdf": "index.rdf"}[kind]
        site = f"https://{'tech' if lang == 'ko' else 'engineering'}{i}.example.com"
        title = (f"기술 블로그 {i}" if lang == "ko" else f"Engineering blog {i}") + (" & research" if i % 5 == 0 else "")
        full = rng.random() < 0.33
        guid_style = rng.choices(("permalink", "tag", "none"), (5, 4, 1))[0] if kind != "atom" else "tag"
        feed = Feed(i, name, address, path, kind, lang, encoding, site, title, full, guid_style, rng.random() < 0.2)
        step = timedelta(hours=rng.randint(12, 240))
        count = rng.randint(20, 50)
        entries = tuple(_entry(rng, feed, k, BASE_TIME - timedelta(minutes=7 * i) - k * step) for k in range(count))
        feeds.append(replace(feed, entries=entries))
    return _share_stories(feeds, seed)


def _share_stories(feeds: list[Feed], seed: int) -> list[Feed]:
    """Some entries (about 8%) are reposts of another feed's story: own guid, same link plus utm_* parameters."""
    out = []
    for feed in feeds:
        rng = _rng(seed, "share", feed.index)
        entries = list(feed.entries)
        have = {e.canonical for e in entries}
        for k in range(1, len(entries)):
            if len(feeds) < 2 or rng.random() >= 0.08:
                continue
            other = feeds[rng.randrange(len(feeds))]
            story = other.entries[rng.randrange(len(other.entries))]
            if other.index == feed.index or story.canonical in have:
                continue
            have.add(story.canonical)
            entries[k] = replace(story, guid=f"{feed.site}/shared/{hashlib.sha1(story.canonical.encode()).hexdigest()[:12]}",
                                 link=f"{story.canonical}?utm_source={feed.name}&utm_medium=rss&utm_campaign=shared",
                                 published=entries[k].published)
        out.append(replace(feed, entries=tuple(entries)))
    return out


def mutate(feeds: list[Feed], round_: int, seed: int = 1, fraction: float = 0.05) -> list[Feed]:
    """A copy where `fraction` of the feeds (chosen by seed and round) gain one new entry."""
    rng = _rng(seed, "mutate", round_)
    chosen = set(rng.sample(range(len(feeds)), k=max(1, round(len(feeds) * fraction))))
    out = list(feeds)
    for i in chosen:
        feed = feeds[i]
        new = _entry(_rng(seed, "new-entry", round_, i), feed, 1000 * round_ + len(feed.entries),
                     feed.updated + timedelta(hours=1))
        out[i] = replace(feed, entries=(new, *feed.entries))
    return out


def _rfc822(when: datetime, lang: str) -> str:
    return format_datetime(when.astimezone(KST) if lang == "ko" else when)


def _text(value: str) -> str:
    """Escape an HTML fragment for XML character data (entities become &amp;...; as in real feeds)."""
    return escape(value)


def _rss(feed: Feed) -> str:
    items = []
    for e in feed.entries:
        guid = "" if e.guid is None else \
            f'<guid isPermaLink="{"true" if e.guid == e.canonical else "false"}">{escape(e.guid)}</guid>'
        cats = "".join(f"<category>{t}</category>" for t in e.tags)
        content = "" if e.content is None else (
            f"<content:encoded>{_text(e.content)}</content:encoded>" if feed.encoding != "utf-8"
            else f"<content:encoded><![CDATA[{e.content}]]></content:encoded>")
        items.append(f"<item><title>{escape(e.title)}</title><link>{escape(e.link)}</link>{guid}"
                     f"<pubDate>{_rfc822(e.published, feed.lang)}</pubDate><dc:creator>{e.author}</dc:creator>{cats}"
                     f"<description>{_text(e.summary)}</description>{content}</item>")
    return (f'<?xml version="1.0" encoding="{feed.encoding.upper()}"?>\n'
            '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>'
            f"<title>{escape(feed.title)}</title><link>{feed.site}/</link><description>Posts from {escape(feed.title)}</description>"
            f"<language>{'ko-KR' if feed.lang == 'ko' else 'en-US'}</language>"
            f"<lastBuildDate>{_rfc822(feed.updated, feed.lang)}</lastBuildDate><generator>benchgen 1.0</generator>"
            f'<atom:link href="{feed.site}{feed.path}" rel="self" type="application/rss+xml"/>\n'
            + "\n".join(items) + "\n</channel>\n</rss>\n")


def _atom(feed: Feed) -> str:
    entries = []
    for e in feed.entries:
        cats = "".join(f'<category term="{t}"/>' for t in e.tags)
        content = "" if e.content is None else f'<content type="html">{_text(e.content)}</content>'
        entries.append(f'<entry><title type="text">{escape(e.title)}</title><link rel="alternate" href={quoteattr(e.link)}/>'
                       f"<id>{escape(e.guid or e.canonical)}</id><published>{e.published.isoformat()}</published>"
                       f"<updated>{e.published.isoformat()}</updated><author><name>{e.author}</name></author>{cats}"
                       f'<summary type="html">{_text(e.summary)}</summary>{content}</entry>')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="{feed.site}/" xml:lang="{feed.lang}">'
            f'<title type="text">{escape(feed.title)}</title><link rel="alternate" href="{feed.site}/"/>'
            f'<link rel="self" href="{feed.site}{feed.path}"/><id>{feed.site}/</id>'
            f"<updated>{feed.updated.isoformat()}</updated><generator>benchgen 1.0</generator>\n"
            + "\n".join(entries) + "\n</feed>\n")


def _rdf(feed: Feed) -> str:
    seq = "".join(f'<rdf:li rdf:resource={quoteattr(e.link)}/>' for e in feed.entries)
    items = []
    for e in feed.entries:
        content = "" if e.content is None else f"<content:encoded>{_text(e.content)}</content:encoded>"
        items.append(f"<item rdf:about={quoteattr(e.link)}><title>{escape(e.title)}</title><link>{escape(e.link)}</link>"
                     f"<description>{_text(e.summary)}</description>{content}<dc:creator>{e.author}</dc:creator>"
                     f"<dc:date>{e.published.isoformat()}</dc:date><dc:subject>{e.tags[0]}</dc:subject></item>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/">\n'
            f'<channel rdf:about="{feed.site}{feed.path}"><title>{escape(feed.title)}</title><link>{feed.site}/</link>'
            f"<description>Posts from {escape(feed.title)}</description><items><rdf:Seq>{seq}</rdf:Seq></items></channel>\n"
            + "\n".join(items) + "\n</rdf:RDF>\n")


def render(feed: Feed) -> bytes:
    """The feed document as served, in its declared encoding."""
    text = {"rss": _rss, "atom": _atom, "rdf": _rdf}[feed.kind](feed)
    return text.encode(feed.encoding, errors="xmlcharrefreplace")  # &#8212; where EUC-KR lacks a character


def published_links(feeds: list[Feed]) -> set[str]:
    """Every story the feeds publish, as canonical links (tracking parameters removed)."""
    return {e.canonical for feed in feeds for e in feed.entries}


if __name__ == "__main__":  # a quick look at the corpus: python benchmarks/feedgen.py [N]
    import sys
    import time

    t0 = time.perf_counter()
    corpus = generate(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
    t1 = time.perf_counter()
    bodies = [render(f) for f in corpus]
    t2 = time.perf_counter()
    total = sum(map(len, bodies))
    print(f"{len(corpus)} feeds, {sum(len(f.entries) for f in corpus)} entries, {len(published_links(corpus))} stories, "
          f"{total / 1e6:.1f} MB ({total / len(corpus) / 1e3:.1f} KB/feed), sha256 "
          f"{hashlib.sha256(b''.join(bodies)).hexdigest()[:16]}; generate {t1 - t0:.1f} s, render {t2 - t1:.1f} s")
