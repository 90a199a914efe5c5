"""House-style Markdown and JSON rendering of a draft."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from markdown_it import MarkdownIt

from aggregator.models import Candidate, DraftItem, Prediction
from aggregator.digest.render import entry_line, escape_markdown, first_sentences, month_label, render_json, render_markdown

DEC = datetime(2022, 12, 13, tzinfo=timezone.utc)
NOV = datetime(2022, 11, 2, tzinfo=timezone.utc)


def item(title: str, url: str, source: str = "", when: datetime = DEC, summary: str = "",
         section: tuple[str, ...] = ("1. Posts",), selected: bool = True, priority: float | None = None) -> DraftItem:
    return DraftItem(Candidate(1, url, title, summary, source, when), Prediction(section, priority=priority), selected)


def test_month_label_is_english_whatever_the_locale() -> None:
    assert month_label(DEC) == "Dec 2022"
    assert month_label(datetime(2023, 1, 1, tzinfo=timezone.utc)) == "Jan 2023"


def test_entry_line_in_house_style() -> None:
    line = entry_line(item("ML 모델 서빙 비용 1/4로 줄이기", "https://hyperconnect.github.io/2022/12/13/infra-cost-optimization-with-aws-inferentia.html",
                           "하이퍼커넥트", summary="AWS Inferentia로 추론 비용을 줄인 과정. 부하 테스트 결과도 있다. 세 번째 문장."))
    assert line == ("* [ML 모델 서빙 비용 1/4로 줄이기 (Dec 2022, 하이퍼커넥트)]"
                    "(https://hyperconnect.github.io/2022/12/13/infra-cost-optimization-with-aws-inferentia.html): "
                    "AWS Inferentia로 추론 비용을 줄인 과정. 부하 테스트 결과도 있다.")


def test_personal_blogs_print_no_source() -> None:
    assert entry_line(item("Autoencoders and Diffusers: A Brief Comparison", "https://eugeneyan.com/writing/autoencoders-vs-diffusers/")) == \
        "* [Autoencoders and Diffusers: A Brief Comparison (Dec 2022)](https://eugeneyan.com/writing/autoencoders-vs-diffusers/)"


def test_first_sentences_cuts_long_text_at_a_word() -> None:
    assert first_sentences("One. Two! Three?") == "One. Two!"
    long = "word " * 200
    cut = first_sentences(long, limit=50)
    assert len(cut) <= 51 and cut.endswith("…") and "  " not in cut
    assert first_sentences("") == ""


def test_hostile_titles_cannot_break_the_markdown() -> None:
    title = "Evil ](javascript:alert(1)) [x] *bold* _it_ `code` <script>alert(1)</script> | ~~s~~ & ![img](http://t/x.png)"
    md = render_markdown([item(title, "https://ok.example/a)b c", summary="<img src=x onerror=alert(1)> [link](javascript:x)")],
                         title="T")
    tokens = MarkdownIt("commonmark").parse(md)
    inline = [t for t in tokens if t.type == "inline" and t.content.startswith("[")][0]
    kinds = [c.type for c in inline.children]
    assert kinds.count("link_open") == 1  # exactly the entry's own link
    assert "image" not in kinds and "html_inline" not in kinds
    link = inline.children[kinds.index("link_open")]
    assert link.attrs["href"] == "https://ok.example/a%29b%20c"
    text = "".join(c.content for c in inline.children if c.type == "text")
    assert "<script>alert(1)</script>" in text and "[x]" in text  # shown literally, as text
    assert "<script" not in MarkdownIt("commonmark").render(md)


def test_sections_follow_the_taxonomy_and_empty_ones_are_left_out() -> None:
    taxonomy = [("1. Research",), ("1. Research", "1.1. CV"), ("1. Research", "1.2. NLP"),
                ("2. Business Cases and Implementations",), ("2. Business Cases and Implementations", "2.1. CV")]
    items = [item("B", "https://x/b", section=("2. Business Cases and Implementations", "2.1. CV")),
             item("A", "https://x/a", section=("1. Research", "1.2. NLP"))]
    md = render_markdown(items, title="Summary of Important AI & ML Blog Posts", taxonomy=taxonomy)
    headings = [line for line in md.splitlines() if line.startswith("#")]
    assert headings == ["# Summary of Important AI & ML Blog Posts", "## 1. Research", "### 1.2. NLP",
                        "## 2. Business Cases and Implementations", "### 2.1. CV"]


def test_entries_are_ordered_newest_month_first_then_by_title() -> None:
    items = [item("beta", "https://x/1", when=NOV), item("Alpha", "https://x/2", when=NOV), item("Zed", "https://x/3")]
    lines = [line for line in render_markdown(items, title="T").splitlines() if line.startswith("* ")]
    assert [line.split(" (")[0] for line in lines] == ["* [Zed", "* [Alpha", "* [beta"]


def test_unselected_items_go_below_the_cut_with_their_section() -> None:
    items = [item("Kept", "https://x/1", priority=0.9), item("Cut", "https://x/2", selected=False, priority=0.2,
                                                                section=("3. AWS ML Only", "3.4. Training"))]
    md = render_markdown(items, title="T")
    kept, cut = md.index("Kept"), md.index("## Candidates below the cut")
    assert kept < cut < md.index("Cut (Dec 2022)")
    assert "<!-- suggested section: 3. AWS ML Only > 3.4. Training -->" in md
    assert "<!-- priority 0.90 -->" in md


def test_json_lists_every_candidate_with_its_fields() -> None:
    rows = json.loads(render_json([item("A", "https://x/a", "Netflix"), item("B", "https://x/b", selected=False)]))
    assert rows[0] == {"url": "https://x/a", "title": "A", "source": "Netflix", "published": "2022-12-13T00:00:00Z",
                       "section": ["1. Posts"], "section_confidence": None, "priority": None, "selected": True,
                       "reasons": []}
    assert rows[1]["selected"] is False


def test_escape_collapses_whitespace_and_control_breaks() -> None:
    assert escape_markdown("a\n\n## b\r\nc") == "a ## b c"


def test_posts_without_an_http_link_are_listed_in_a_comment_never_as_a_link() -> None:
    for url in ("", "javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "JAVASCRIPT:x"):
        line = entry_line(item("Title --> <script>x</script>", url))
        assert line == "<!-- no link: Title - -> <script>x</script> (Dec 2022) -->"
        tokens = MarkdownIt("commonmark").parse(render_markdown([item("T", url)], title="D"))
        assert [(t.type, t.content) for t in tokens if t.type.startswith(("bullet", "html", "inline"))] == [
            ("inline", "D"), ("inline", "1. Posts"), ("html_block", "<!-- no link: T (Dec 2022) -->\n")]


def test_comments_cannot_be_closed_early() -> None:
    md = render_markdown([DraftItem(Candidate(1, "https://x/a", "A", "", "", DEC),
                                    Prediction(("1. Posts",), priority=0.5, reasons=("--->", "a--b", "<!--")))],
                         title="T", note="note --> end")
    comments = [line for line in md.splitlines() if line.startswith("<!--")]
    assert comments == ["<!-- note - -> end -->", "<!-- priority 0.50; why: - - ->; a- -b; <!- - -->"]
    assert all(c.count("--") == 2 for c in comments)  # only the opening and closing ones


def test_kramdown_and_math_markup_in_titles_is_escaped() -> None:
    assert escape_markdown("{::nomarkdown}<b>x</b>{:/} costs $$5") == \
        r"\{::nomarkdown\}\<b\>x\</b\>\{:/\} costs \$\$5"


def test_link_targets_read_back_exactly() -> None:
    url = "https://x.example/a?q=1&amp;b=2&lt=3&x=%20"
    md = render_markdown([item("T", url), item("U", "https://x.example/p\x7fq r")], title="D")
    hrefs = [c.attrs["href"] for t in MarkdownIt("commonmark").parse(md) if t.type == "inline"
             for c in t.children or () if c.type == "link_open"]
    assert hrefs == [url, "https://x.example/p%7Fq%20r"]


def test_section_headings_are_escaped() -> None:
    md = render_markdown([item("A", "https://x/a", section=("2. Tools", "C# and F#")),
                          item("B", "https://x/b", section=("2. Tools", "*Agents* & <RAG>"))], title="T")
    headings = [line for line in md.splitlines() if line.startswith("##")]
    assert headings == ["## 2. Tools", r"### \*Agents\* \& \<RAG\>", r"### C\# and F\#"]
