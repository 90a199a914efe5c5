"""Drafts in the footnote and weekly styles: shaped like the editors' own posts, and read back as the same entries."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aggregator.learn.reading import read_digest
from aggregator.links import canonical_url
from aggregator.models import Candidate, DraftItem, Prediction
from aggregator.poll.parse import clean_text
from aggregator.digest.render import BELOW_CUT, render_footnote, render_weekly

OCT = datetime(2023, 10, 5, tzinfo=timezone.utc)
NEWS, PAPERS = ("News",), ("Papers",)


def item(i: int, url: str, title: str, section: tuple[str, ...], summary: str = "", selected: bool = True,
         priority: float = 0.8) -> DraftItem:
    return DraftItem(Candidate(i, url, title, summary, "", OCT), Prediction(section, 0.9, priority), selected)


# Facts of real entries of an AI-trend post (titles, links, sections); the openings are made up.
ITEMS = [
    item(1, "https://blog.youtube/news-and-events/made-on-youtube-2023", "Video Sharing Goes Generative", NEWS,
         "Creators get new generative tools. They arrive next year. A third sentence is dropped."),
    item(2, "https://engineering.linkedin.com/blog/2023/how-linkedin-is-using-embeddings-to-up-its-match-game-for-job-se",
         "How LinkedIn Is Using Embeddings to Up Its Match Game for Job Seekers", PAPERS, "임베딩으로 구직자 매칭을 개선했습니다."),
    item(3, "https://hkchengrex.com/Tracking-Anything-with-DEVA/", "Tracking Anything with Decoupled Video Segmentation",
         PAPERS),
    item(4, "https://example.com/not-chosen", "A post below the cut", PAPERS, selected=False, priority=0.1),
]


def test_footnote_draft_is_shaped_like_the_trends_post() -> None:
    text = render_footnote(ITEMS, title="2023 AI 기술 트렌드 #1", when=OCT, tags=["ai-trend"], taxonomy=[NEWS, PAPERS])
    lines = text.splitlines()
    assert lines[:5] == ["---", 'title: "2023 AI 기술 트렌드 #1"', "date: 2023-10-05 00:00:00 +0000",
                         'tags: ["ai-trend"]', "---"]
    assert lines.index("## **News**") < lines.index("## **Papers**")
    assert "### Video Sharing Goes Generative [^ref1]" in lines
    assert "- Creators get new generative tools." in lines and "- They arrive next year." in lines
    assert "A third sentence" not in text
    refs = [line for line in lines if line.startswith("[^ref")]
    assert [r.split("]:")[0] for r in refs] == ["[^ref1", "[^ref2", "[^ref3"]  # in order of appearance
    assert refs[0] == "[^ref1]: [Video Sharing Goes Generative](https://blog.youtube/news-and-events/made-on-youtube-2023)"
    assert f"<!-- {BELOW_CUT}:" in text and "example.com/not-chosen" in text


def test_footnote_sections_wear_the_editors_emoji() -> None:
    text = render_footnote(ITEMS, title="T", when=OCT, taxonomy=[NEWS, PAPERS], emoji={"News": "💡", "Papers": "<b>"})
    assert "## 💡 **News**" in text.splitlines() and "## **Papers**" in text.splitlines()  # markup is no emoji
    assert {e.section for e in read_digest(text).entries} == {NEWS, PAPERS}


def test_footnote_draft_reads_back_as_its_entries() -> None:
    text = render_footnote(ITEMS, title="Trends", when=OCT, taxonomy=[NEWS, PAPERS])
    digest = read_digest(text, path="drafts/2023-10.md")
    assert digest.style == "footnote" and digest.month == "2023-10"
    assert [(e.title, e.url, e.section) for e in digest.entries] == [
        (i.candidate.title, i.candidate.url, i.prediction.section) for i in ITEMS[:3]]


def test_weekly_draft_is_shaped_like_the_news_post_and_reads_back() -> None:
    text = render_weekly(ITEMS, title="Weekly ML/DL News (10월 1주차)", when=OCT, category="news", tags=["ML", "DL"],
                         taxonomy=[NEWS, PAPERS])
    lines = text.splitlines()
    assert 'categories: ["news"]' in lines and "## 목차" in lines
    assert "- [Video Sharing Goes Generative](#video-sharing-goes-generative)" in lines
    assert lines.count("[참고링크](https://blog.youtube/news-and-events/made-on-youtube-2023)") == 1
    digest = read_digest(text, path="drafts/2023-W40.md")
    assert digest.style == "weekly"
    assert [(e.title, e.url, e.section) for e in digest.entries] == [(i.candidate.title, i.candidate.url, ("News",))
                                                                     for i in ITEMS[:3]]
    assert digest.entries[0].summary == "Creators get new generative tools. They arrive next year."


def test_the_weekly_link_label_is_the_digests_setting() -> None:
    text = render_weekly(ITEMS[:1], title="W", when=OCT, category="news", link_label="참고자료")
    assert "[참고자료](https://blog.youtube/news-and-events/made-on-youtube-2023)" in text
    assert [e.url for e in read_digest(text).entries] == [ITEMS[0].candidate.url]


_NO_C1 = st.characters(exclude_characters=[chr(c) for c in range(0x80, 0xA0)])
_PIECES = st.sampled_from(["한국어", "모델", "[x](y)", "*", "`", "#", "[^1]", "<b>", "&amp;", "--", "|", "\\", "_a_", " ",
                           "1. ", "- ", "+", "=", "> ", "    "])
titles = st.one_of(st.text(_NO_C1, max_size=50), st.lists(_PIECES, max_size=8).map("".join))
links = st.builds(lambda path, query: f"https://example.com/{path}{query}",
                  st.text(st.sampled_from("abc-_~%()한 "), max_size=12), st.sampled_from(["", "?a=1&b=(2)", "?q=한"]))
sections = st.sampled_from(["News", "Papers", "MLOps & Data", "Deep Learning, LLM", "뉴스", "C#", "a_b", "[x]", "1. Posts",
                            "*bold*", "Issues `x`"])


def _items(posts: list[tuple[str, str, str, str, bool]]) -> tuple[list[DraftItem], dict[str, tuple[str, tuple[str, ...]]]]:
    items, chosen, seen = [], {}, set()
    for i, (title, link, summary, section, selected) in enumerate(posts):
        title, url = clean_text(title), canonical_url(link)
        name = section
        if not title or not url or url in seen:
            continue
        seen.add(url)
        items.append(item(i, url, title, (name,), clean_text(summary), selected))
        if selected:
            chosen[url] = (title, (name,))
    return items, chosen


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(titles, links, st.one_of(st.text(max_size=60), titles), sections, st.booleans()), min_size=1,
                max_size=5))
def test_any_footnote_draft_reads_back_as_the_same_entries(posts: list[tuple[str, str, str, str, bool]]) -> None:
    items, chosen = _items(posts)
    assume(chosen)
    digest = read_digest(render_footnote(items, title="T", when=OCT), style="footnote")
    assert {e.url: (e.title, e.section) for e in digest.entries} == chosen


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(titles, links, st.one_of(st.text(max_size=60), titles), sections, st.booleans()), min_size=1,
                max_size=5),
       st.text(_NO_C1, min_size=1, max_size=12).map(clean_text).filter(bool))
def test_any_weekly_draft_reads_back_as_the_same_entries(posts: list[tuple[str, str, str, str, bool]],
                                                         category: str) -> None:
    items, chosen = _items(posts)
    assume(chosen)
    digest = read_digest(render_weekly(items, title="T", when=OCT, category=category), style="weekly")
    assert {e.url: e.title for e in digest.entries} == {url: title for url, (title, _) in chosen.items()}
    assert {e.section for e in digest.entries} == {(category[:1].upper() + category[1:],)}
