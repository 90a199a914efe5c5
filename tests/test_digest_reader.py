"""Reading past digests (house, footnote, weekly) into entries and sections."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.learn.reading import detect_style, read_digest, split_title
from aggregator.errors import DigestError
from aggregator.models import Digest

DATA = Path(__file__).parent / "data" / "digests"

RESEARCH = "1. Research"
BUSINESS = "2. Business Cases and Implementations"
AWS = "3. AWS ML Only"


def read(name: str, **kwargs: object) -> Digest:
    path = DATA / name
    return read_digest(path.read_text(encoding="utf-8"), path=str(path), **kwargs)  # type: ignore[arg-type]


def by_url(digest: Digest, fragment: str):
    [entry] = [e for e in digest.entries if fragment in e.url]
    return entry


# ---------------------------------------------------------------- style detection


@pytest.mark.parametrize(
    ("name", "style"),
    [
        ("house_2022-12.md", "house"),
        ("house_thin_002.md", "house"),
        ("house_mid_000.md", "house"),
        ("house_missing_url.md", "house"),
        ("footnote_2023-10.md", "footnote"),
        ("weekly_2020-06.md", "weekly"),
    ],
)
def test_detect_style(name: str, style: str) -> None:
    assert detect_style((DATA / name).read_text(encoding="utf-8")) == style


def test_detect_style_rejects_other_markdown() -> None:
    text = (DATA / "not_a_digest.md").read_text(encoding="utf-8")
    with pytest.raises(DigestError, match=r"^x\.md: not a digest in any known style \(house, footnote, weekly\)$"):
        detect_style(text, path="x.md")
    with pytest.raises(DigestError, match="not a digest in any known style"):
        detect_style("")


def test_read_digest_names_the_file_that_is_not_a_digest() -> None:
    path = DATA / "not_a_digest.md"
    with pytest.raises(DigestError) as info:
        read_digest(path.read_text(encoding="utf-8"), path=str(path))
    assert str(info.value) == f"{path}: not a digest in any known style (house, footnote, weekly)"


# ---------------------------------------------------------------- split_title


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Title (Dec 2022, Netflix)", ("Title", "2022-12", "Netflix")),
        ("Autoencoders and Diffusers: A Brief Comparison (Dec 2022)", ("Autoencoders and Diffusers: A Brief Comparison", "2022-12", "")),
        ("The State of Multilingual AI (Nov 2002)", ("The State of Multilingual AI", "2002-11", "")),
        ("Accelerating Text Generation (CALM) (Dec 2022, Google)", ("Accelerating Text Generation (CALM)", "2022-12", "Google")),
        ("Luda Gen 1 - 생성 기반 챗봇 (Dec 2022, 스캐터랩)", ("Luda Gen 1 - 생성 기반 챗봇", "2022-12", "스캐터랩")),
        ("Some Remarks (January 2023, A, B)", ("Some Remarks", "2023-01", "A, B")),
        ("No suffix at all", ("No suffix at all", None, "")),
        ("Not a month (Foo 2022)", ("Not a month (Foo 2022)", None, "")),
        ("Only a year (2022)", ("Only a year (2022)", None, "")),
        ("(Dec 2022)", ("(Dec 2022)", None, "")),
    ],
)
def test_split_title(raw: str, expected: tuple[str, str | None, str]) -> None:
    assert split_title(raw) == expected


# ---------------------------------------------------------------- house style, shaped like seed 001


def test_house_counts_titles_and_sections() -> None:
    digest = read("house_2022-12.md")
    assert digest.style == "house"
    assert digest.title == "Summary of Important AI & ML Blog Posts"
    assert digest.month is None
    assert len(digest.entries) == 22
    assert digest.candidates_below_cut == ()
    assert digest.sections == (
        (RESEARCH,),
        (RESEARCH, "1.1. CV"),
        (RESEARCH, "1.2. NLP"),
        (RESEARCH, "1.3. RecSys, etc."),
        (BUSINESS,),
        (BUSINESS, "2.1. CV"),
        (BUSINESS, "2.2. NLP"),
        (BUSINESS, "2.3. RecSys, etc."),
        (BUSINESS, "2.4. Training, Inference and MLOps"),
        (AWS,),
        (AWS, "3.3. RecSys, etc."),
        (AWS, "3.4. Training, Inference and MLOps"),
    )
    per_section = {}
    for entry in digest.entries:
        per_section[entry.section] = per_section.get(entry.section, 0) + 1
    assert per_section == {
        (RESEARCH, "1.1. CV"): 3,
        (RESEARCH, "1.2. NLP"): 5,
        (RESEARCH, "1.3. RecSys, etc."): 2,
        (BUSINESS, "2.1. CV"): 2,
        (BUSINESS, "2.2. NLP"): 1,
        (BUSINESS, "2.3. RecSys, etc."): 2,
        (BUSINESS, "2.4. Training, Inference and MLOps"): 3,
        (AWS, "3.3. RecSys, etc."): 1,
        (AWS, "3.4. Training, Inference and MLOps"): 3,
    }


def test_house_first_entry_fields_and_line() -> None:
    first = read("house_2022-12.md").entries[0]
    assert first.title == "Autoencoders and Diffusers: A Brief Comparison"
    assert first.url == "https://eugeneyan.com//writing/autoencoders-vs-diffusers/"
    assert (first.month, first.source, first.summary) == ("2022-12", "", "")
    assert first.section == (RESEARCH, "1.1. CV")
    assert first.line == 9


def test_house_note_block_is_not_entries() -> None:
    digest = read("house_2022-12.md")
    assert all("NOTE" not in e.title and "NOTE" not in e.summary for e in digest.entries)
    assert all(e.line > 6 for e in digest.entries)


def test_house_titles_lose_emphasis_markers() -> None:
    digest = read("house_2022-12.md")
    data2vec = by_url(digest, "data2vec")
    assert data2vec.title == "Data2vec 2.0: Highly Efficient Self-Supervised Learning for Vision, Speech and Text"
    assert (data2vec.month, data2vec.source) == ("2022-12", "Meta")
    calm = by_url(digest, "accelerating-text-generation")
    assert calm.title == "Accelerating Text Generation with Confident Adaptive Language Modeling (CALM)"
    assert calm.source == "Google"
    bloom = by_url(digest, "deploy-bloom-176b")
    assert bloom.title == (
        "Deploy BLOOM-176B and OPT-30B on Amazon SageMaker with Large Model Inference DLCs and DeepSpeed"
    )
    assert (bloom.month, bloom.source) == ("2022-11", "")
    assert all("*" not in e.title for e in digest.entries)


def test_house_typo_year_is_kept_as_written() -> None:
    entry = by_url(read("house_2022-12.md"), "ruder.io")
    assert (entry.title, entry.month) == ("The State of Multilingual AI", "2002-11")


def test_house_lazy_continuation_line_belongs_to_the_summary() -> None:
    rlhf = by_url(read("house_2022-12.md"), "huggingface.co/blog/rlhf")
    assert rlhf.summary == "사전 학습 → 선호도 보상 모델 → 강화 학습 미세 조정의 세 단계를 그림으로 설명"


def test_house_hard_break_line_and_its_link_belong_to_the_summary() -> None:
    rio = by_url(read("house_2022-12.md"), "dramancompany")
    assert rio.summary == "모델 포맷을 여러 번 바꿔 모바일 기기에서 직접 추론 세그멘테이션 이야기는 1편에 있습니다."
    assert rio.source == "드라마앤컴퍼니"


def test_house_image_is_neither_entry_nor_summary() -> None:
    digest = read("house_2022-12.md")
    chatgpt = by_url(digest, "openai.com/blog/chatgpt")
    assert chatgpt.summary == "사람 피드백으로 대화에 맞게 다듬은 GPT-3.5 계열 모델"
    assert all("images/" not in e.url and "chatgpt.png" not in e.summary for e in digest.entries)


def test_house_indented_sub_bullet_belongs_to_the_summary() -> None:
    remarks = by_url(read("house_2022-12.md"), "gist.github.com")
    assert remarks.summary == (
        "LLM이 무엇을 할 수 있고 무엇을 아직 못 하는지에 대한 개인적인 정리 코드 학습과 지시 튜닝이 전환점이었다는 주장"
    )
    assert remarks.month == "2023-01"


def test_house_extra_links_stay_in_the_summary() -> None:
    digest = read("house_2022-12.md")
    urls = {e.url for e in digest.entries}
    assert "https://tech.scatterlab.co.kr/apache-beam-1/" not in urls
    assert not any("swin-transformer" in u or "godel" in u for u in urls)
    beam = by_url(digest, "apache-beam-3")
    assert beam.summary == "시리즈의 마지막 글, 1편과 2편부터 보세요."
    ms = by_url(digest, "a-look-back-at-a-year")
    assert ms.summary == "한 해 연구 회고, 예를 들어 Swin Transformer v2와 GODEL"
    synthetic = by_url(digest, "how-to-evaluate-the-quality")
    assert synthetic.summary.startswith("이전 글에서 이어짐.")
    assert all("](" not in e.summary and "http" not in e.summary for e in digest.entries)


def test_house_urls_are_kept_as_written() -> None:
    rio = by_url(read("house_2022-12.md"), "dramancompany")
    assert rio.url.startswith("https://blog.dramancompany.com/2022/11/ai-%eb%aa%85%ed%95%a8%ec%b4%ac")


# ---------------------------------------------------------------- house style, shaped like seeds 002 and 000


def test_house_unnumbered_and_empty_headings() -> None:
    digest = read("house_thin_002.md")
    assert digest.title == ""
    assert len(digest.entries) == 5
    assert digest.sections == (("CV",), ("NLP",), ("RecSys, etc.",))
    assert [e.section for e in digest.entries] == [("CV",), ("CV",), ("NLP",), ("RecSys, etc.",), ("RecSys, etc.",)]
    rlhf = by_url(digest, "rlhf")
    assert rlhf.summary == "보상 모델을 먼저 학습하고 그 점수로 정책을 조정하는 흐름"
    ms = by_url(digest, "microsoft.com")
    assert ms.summary == "대표 성과로 BEiT와 ToxiGen을 꼽음"


def test_house_renamed_section_is_read_as_written() -> None:
    digest = read("house_mid_000.md")
    renamed = "2. Business Cases and Open Source Libraries"
    assert len(digest.entries) == 7
    assert digest.sections == (
        (RESEARCH,),
        (RESEARCH, "1.1. CV"),
        (RESEARCH, "1.2. NLP"),
        (renamed,),
        (renamed, "2.1. CV"),
        (renamed, "2.2. NLP"),
        (renamed, "2.4. Training, Inference and MLOps"),
        (AWS,),
        (AWS, "3.4. Training, Inference and MLOps"),
    )
    assert by_url(digest, "clova-md-solution").section == (renamed, "2.4. Training, Inference and MLOps")


def test_house_month_argument_sets_the_digest_month_only() -> None:
    digest = read("house_mid_000.md", month="2022-12")
    assert digest.month == "2022-12"
    assert {e.month for e in digest.entries} == {"2022-12"}


def test_bad_month_argument_is_a_digest_error() -> None:
    with pytest.raises(DigestError, match="month must be YYYY-MM"):
        read("house_mid_000.md", month="Dec 2022")


# ---------------------------------------------------------------- a draft the tool wrote

DRAFT = """\
# Summary of Important AI & ML Blog Posts
<!-- drafted by aggregator; edit freely -->

## 1. Research
### 1.2. NLP
* [Some Remarks on LLMs (Jan 2023)](https://gist.github.com/yoavg/59d174608e92e845c8994ac2e234c8a9): 첫 요약 <!-- priority 0.82; nlp 0.91 -->
<!-- priority 0.75; reasons: title mentions LLM -->
* [Robots That Write Their Own Code (Nov 2022, Google)](https://ai.googleblog.com/2022/11/robots-that-write-their-own-code.html): 둘째 요약
  <!-- priority 0.40 -->

## 2. Business Cases and Implementations
### 2.4. Training, Inference and MLOps
* [Kurly만의 MLOps 구축하기 - KubeFlow 도입기 (Nov 2022, 컬리)](https://helloworld.kurly.com/blog/second-mlops/)

## Candidates below the cut
<!-- not selected; move a line up to select it -->
### 1.2. NLP
* [MoE with Expert Choice Routing (Nov 2022, Google)](https://ai.googleblog.com/2022/11/mixture-of-experts-with-expert-choice.html) <!-- priority 0.12 -->
* [Choosing the Right LM For Your NLP Use Case (Nov 2022)](https://www.topbots.com/choosing-the-right-language-model/)
"""


def test_draft_comments_and_cut_section_are_ignored() -> None:
    digest = read_digest(DRAFT, path="drafts/2022-12.md")
    assert digest.style == detect_style(DRAFT) == "house"
    assert [e.title for e in digest.entries] == [
        "Some Remarks on LLMs",
        "Robots That Write Their Own Code",
        "Kurly만의 MLOps 구축하기 - KubeFlow 도입기",
    ]
    assert [e.summary for e in digest.entries] == ["첫 요약", "둘째 요약", ""]
    assert digest.candidates_below_cut == (
        "https://ai.googleblog.com/2022/11/mixture-of-experts-with-expert-choice.html",
        "https://www.topbots.com/choosing-the-right-language-model/",
    )
    assert digest.sections == (
        (RESEARCH,),
        (RESEARCH, "1.2. NLP"),
        (BUSINESS,),
        (BUSINESS, "2.4. Training, Inference and MLOps"),
    )
    assert all("priority" not in e.summary for e in digest.entries)


def test_cut_heading_is_configurable() -> None:
    text = DRAFT.replace("## Candidates below the cut", "## Not selected")
    assert len(read_digest(text).entries) == 5
    digest = read_digest(text, cut_heading="Not selected")
    assert len(digest.entries) == 3
    assert len(digest.candidates_below_cut) == 2


# ---------------------------------------------------------------- footnote style, shaped like seed 003


def test_footnote_entries_sections_and_urls() -> None:
    digest = read("footnote_2023-10.md")
    assert digest.style == "footnote"
    assert digest.title == "2023 AI 기술 트렌드 #1 | AI Trends in 2023"
    assert len(digest.entries) == 6
    assert digest.sections == (("News",), ("Papers",), ("MLOps",))
    assert [e.section for e in digest.entries] == [("News",)] * 3 + [("Papers",)] * 2 + [("MLOps",)]
    first = digest.entries[0]
    assert first.title == "생성 AI로 비디오 공유"
    assert first.url == "https://blog.youtube/news-and-events/made-on-youtube-2023"
    assert first.summary == "유튜브가 제작자용 생성 AI 기능을 예고했습니다. 다른 플랫폼은 AI로 만든 영상에 표시를 요구하는 쪽으로 움직이고 있습니다."
    assert first.line == 22
    assert digest.entries[-1].url == "https://github.com/vitoplantamura/OnnxStream"


def test_footnote_summary_has_sub_bullets_but_no_image_caption() -> None:
    digest = read("footnote_2023-10.md")
    linkedin = by_url(digest, "linkedin")
    assert linkedin.summary.endswith("이를 위해 새 검색 인프라를 직접 만들었습니다.")
    dropbox = by_url(digest, "dropbox")
    assert dropbox.summary == "파일 이름 속 날짜를 시퀀스 태깅 문제로 풀었습니다."


def test_footnote_month_comes_from_front_matter_unless_given() -> None:
    assert read("footnote_2023-10.md").month == "2023-11"
    digest = read("footnote_2023-10.md", month="2023-10")
    assert digest.month == "2023-10"
    assert {e.month for e in digest.entries} == {"2023-10"}


def test_footnote_without_definition_has_no_url() -> None:
    text = "## 💡 **News**\n### 정의가 없는 항목 [^ref1]\n- 본문\n\n### 다른 항목 [^ref2]\n- 본문\n\n[^ref1]: [T](https://example.org/t)\n"
    with pytest.raises(DigestError) as info:
        read_digest(text, path="fn.md")
    assert str(info.value) == "fn.md:5: entry '다른 항목' has no URL"


def test_footnote_with_bare_url_definition() -> None:
    text = "## News\n### 항목 [^a]\n- 본문\n\n[^a]: https://example.org/post\n"
    [entry] = read_digest(text).entries
    assert entry.url == "https://example.org/post"


# ---------------------------------------------------------------- weekly style, shaped like seed 004


def test_weekly_entries() -> None:
    digest = read("weekly_2020-06.md")
    assert digest.style == "weekly"
    assert digest.title == "Weekly ML/DL News (6월 4주차)"
    assert digest.month == "2020-06"
    assert digest.sections == (("News",),)
    assert [e.title for e in digest.entries] == [
        "Andrej Karpathy",
        "Kaggle Online Workshop",
        "ImageGPT",
        "BERT on CPU",
        "Jupyter Kernel for SQLite",
    ]
    assert {e.section for e in digest.entries} == {("News",)}
    assert by_url(digest, "blog.jupyter.org").summary == "노트북에서 바로 SQL을 실행할 수 있는 커널이 공개됐다."


def test_weekly_reference_link_is_the_url_and_not_the_summary() -> None:
    kaggle = by_url(read("weekly_2020-06.md"), "kaggle.com")
    assert kaggle.url.startswith("https://www.kaggle.com/accelerator-power-hour?utm_medium=email")
    assert kaggle.summary == (
        "GPU와 TPU를 잘 쓰는 법을 다루는 온라인 워크숍이 열린다. "
        "A notebook-based session on accelerators. 시차 때문에 실시간으로 보기는 어려울 듯."
    )
    assert kaggle.line == 29


def test_weekly_without_reference_link_falls_back_to_first_web_link() -> None:
    andrej = read("weekly_2020-06.md").entries[0]
    assert andrej.url == "https://www.technologyreview.com/innovator/andrej-karpathy/"
    assert andrej.summary == "논문 검색 사이트를 만든 사람이 35세 이하 Innovator로 뽑혔다."


def test_weekly_heading_without_any_link() -> None:
    text = "---\ntitle: W\ncategories: [news]\n---\n\n### A\n\n[참고링크](https://a.example/)\n\n### B\n\n링크 없음.\n"
    with pytest.raises(DigestError) as info:
        read_digest(text, path="w.md")
    assert str(info.value) == "w.md:10: entry 'B' has no URL"


def test_weekly_without_category_uses_the_default_section() -> None:
    text = "### A\n\n[참고자료](https://a.example/)\n\n요약.\n"
    digest = read_digest(text)
    assert digest.style == "weekly"
    assert digest.sections == (("Uncategorised",),)
    assert digest.month is None


def test_escaped_markup_in_titles_is_read_as_text() -> None:
    text = "## 1. Posts\n" r"* [a \*\* b \{x\} \$\$ \<i\> \[c\] \&amp; (Dec 2022, S)](https://a.example/): \*\*sum"
    [entry] = read_digest(text).entries
    assert (entry.title, entry.source, entry.summary) == ("a ** b {x} $$ <i> [c] &amp;", "S", "**sum")


def test_front_matter_error_is_one_line() -> None:
    with pytest.raises(DigestError) as info:
        read_digest("---\ntitle: \x08\n---\n\n### A\n\n[참고링크](https://a.example/)\n", path="w.md")
    assert str(info.value).startswith("w.md:1: front matter is not valid YAML: ") and "\n" not in str(info.value)


def test_invalid_front_matter_is_a_digest_error() -> None:
    text = "---\ntitle: [unclosed\n---\n\n### A\n\n[참고링크](https://a.example/)\n"
    with pytest.raises(DigestError, match=r"^bad\.md:\d+: front matter is not valid YAML"):
        read_digest(text, path="bad.md")


# ---------------------------------------------------------------- bad files


def test_house_entry_without_url_names_file_and_line() -> None:
    path = DATA / "house_missing_url.md"
    with pytest.raises(DigestError) as info:
        read_digest(path.read_text(encoding="utf-8"), path=str(path))
    assert str(info.value) == f"{path}:6: entry 'Ready-to-go Sample Data Pipelines with Dataflow' has no URL"


def test_house_bracket_title_without_link_has_no_url() -> None:
    text = "## 1. Research\n### 1.1. CV\n* [Title One (Dec 2022, Meta)](https://a.example/)\n* [Title Two (Dec 2022)]: 링크가 빠짐\n"
    with pytest.raises(DigestError, match=r"^d\.md:4: entry 'Title Two' has no URL$"):
        read_digest(text, path="d.md")


def test_house_link_without_text_has_no_title() -> None:
    text = "### 1.1. CV\n* [Title One (Dec 2022, Meta)](https://a.example/)\n* [](https://b.example/)\n"
    with pytest.raises(DigestError, match=r"^d\.md:3: entry https://b\.example/ has no title$"):
        read_digest(text, path="d.md")


def test_forced_style_reads_without_detection() -> None:
    digest = read_digest("# nothing here\n", style="house")
    assert (digest.style, digest.entries, digest.sections) == ("house", (), ())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(
                [
                    "---", "# ", "## 1. Research", "### 1.1. CV", "* ", "  * ", "- ", "> ", "[", "]", "(", ")",
                    "](", "[^ref1]", "[^ref1]: ", "[참고링크](", "(Dec 2022, Meta)", "(Nov 2002)", "<!-- ",
                    " -->", "![img](x.png)", "**", "*", "title: x", "date: 2023-11-23", "categories: [a]",
                    "## Candidates below the cut", "https://example.org/p", "\n", "\n\n", "```", "    ",
                ]
            ),
        ),
        max_size=30,
    ).map("".join),
    st.sampled_from([None, "house", "footnote", "weekly"]),
)
def test_arbitrary_text_parses_or_raises_digest_error(text: str, style: str | None) -> None:
    try:
        digest = read_digest(text, style=style)  # type: ignore[arg-type]
    except DigestError:
        return
    assert digest.style in ("house", "footnote", "weekly")
    assert all(e.url for e in digest.entries)
