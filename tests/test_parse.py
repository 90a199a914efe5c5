"""Feed parsing: real feed excerpts in RSS 2.0, Atom, RSS 1.0 and EUC-KR into plain, normalised posts."""

from __future__ import annotations

import unicodedata
from collections import Counter
from datetime import datetime, timezone

import pytest
from conftest import FEEDS
from hypothesis import event, given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.poll.fetch import Fetcher, FetchSettings
from aggregator.models import FeedState, ParsedFeed
from aggregator.poll.parse import MAX_SUMMARY, MAX_TITLE, clean_text, html_to_text, parse_feed

UTC = timezone.utc
RSS = "application/rss+xml; charset=utf-8"


def parse(name: str, content_type: str | None = RSS, url: str | None = None) -> ParsedFeed:
    return parse_feed((FEEDS / name).read_bytes(), url=url or f"http://127.0.0.1/{name}", content_type=content_type)


def has_control(text: str) -> bool:
    return any(unicodedata.category(ch)[0] == "C" for ch in text)


# --- toss.rss.xml: RSS 2.0, Korean -------------------------------------------------------------------

TOSS = [
    ("https://toss.tech/article/how-to-work-health-check-in-spring-boot-actuaotr",
     "무지성으로 사용한 헬스 체크가 불러일으킬 수 있는 참사", datetime(2023, 4, 1, 6, 38, 57, tzinfo=UTC)),
    ("https://toss.tech/article/improving-code-quality-via-eslint-and-ast",
     "ESLint와 AST로 코드 퀄리티 높이기", datetime(2023, 3, 31, 6, 47, 53, tzinfo=UTC)),
    ("https://toss.tech/article/dont-trust-your-gut",
     "내 아이디어를 너무 믿지 마세요", datetime(2023, 3, 28, 8, 31, 40, tzinfo=UTC)),
    ("https://toss.tech/article/recommend-just-one",
     "추천할 때는 제일 좋은 것 하나면 된다", datetime(2023, 3, 23, 7, 43, 33, tzinfo=UTC)),
]


def test_toss_rss() -> None:
    feed = parse("toss.rss.xml")
    assert feed.title == "토스테크"
    assert feed.link == "https://toss.tech/"
    assert feed.warning is None
    assert len(feed.posts) == 4
    for post, (url, title, published) in zip(feed.posts, TOSS, strict=True):
        assert post.key == "guid:" + url
        assert post.url == url
        assert post.title == title
        assert post.published == published
        assert post.published.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert post.content_hash and len(post.content_hash) == 64
    assert feed.posts[1].summary == "ESLint와 AST로 토스에서 코드 퀄리티를 높인 방법에 대해 소개드려요."
    assert feed.posts[0].summary.startswith("서버의 상태를 알려주는 헬스 체크에 대해 알고 계시나요?")
    for post in feed.posts:
        assert "<" not in post.summary and ">" not in post.summary
        assert "\n" not in post.summary and "  " not in post.summary
        assert post.summary == post.summary.strip()


def test_toss_without_content_type_parses_the_same_without_warning() -> None:
    plain = parse("toss.rss.xml", content_type=None)
    assert plain.warning is None  # no Content-Type is not a malformed feed
    assert plain.posts == parse("toss.rss.xml").posts


def test_same_bytes_same_content_hash() -> None:
    assert [p.content_hash for p in parse("toss.rss.xml").posts] == [p.content_hash for p in parse("toss.rss.xml").posts]
    v2 = parse("toss.rss.v2.xml")
    assert len(v2.posts) == 5
    assert v2.posts[:4] == parse("toss.rss.xml").posts


# --- d2.atom.xml: Atom with relative links inside content --------------------------------------------


def test_d2_atom() -> None:
    feed = parse("d2.atom.xml", content_type="application/atom+xml")
    assert feed.title == "D2 Blog"
    assert feed.link == "https://d2.naver.com/"
    assert len(feed.posts) == 5
    first = feed.posts[0]
    assert first.title == "학생 개발자를 위한 DEVIEW CAMPUS 2023이 열렸습니다!"
    assert first.key == "guid:https://d2.naver.com/news/8012036"
    assert first.url == "https://d2.naver.com/news/8012036"
    assert first.published == datetime(2023, 3, 22, 18, 32, 11, tzinfo=UTC)
    assert first.summary.startswith("<참여한 네이버 개발자와 D2 CAMPUS PARTNER 참가자들 >")  # escaped text, not a tag
    assert feed.posts[-1].title == "네이버 검색 SRE 2편 - 측정하지 않으면 개선할 수 없다! SRE KPI 개발기"
    assert feed.posts[-1].url == "https://d2.naver.com/helloworld/9231267"
    assert feed.posts[-1].published == datetime(2023, 1, 27, 10, 25, 36, tzinfo=UTC)
    assert feed.posts[-1].summary.startswith("MTTM 개발기 개발 배경 MTTR이란")
    assert [p.published.month for p in feed.posts] == [3, 3, 2, 2, 1]  # type: ignore[union-attr]
    for post in feed.posts:
        assert post.url and post.url.startswith("https://d2.naver.com/")
        for leak in ("/content/images", "#ch1", "<img", "src=", "href=", "<p>", "<a ", "&lt;", "&gt;", "&amp;"):
            assert leak not in post.summary, (post.title, leak)


# --- ml.rdf.xml: RSS 1.0 ------------------------------------------------------------------------------


def test_ml_rdf() -> None:
    feed = parse("ml.rdf.xml", content_type="application/rdf+xml")
    assert feed.title == "ML Reading Notes"
    assert feed.link == "https://ml-notes.example.org/"
    assert feed.warning is None
    assert [(p.title, p.published, p.author) for p in feed.posts] == [
        ("Accelerating Text Generation with Confident Adaptive Language Modeling (CALM)",
         datetime(2022, 12, 16, 18, 15, tzinfo=UTC), "Google Research"),  # -08:00 moved to UTC
        ("Ready-to-go Sample Data Pipelines with Dataflow", datetime(2022, 12, 7, 18, 30, tzinfo=UTC),
         "Netflix Technology Blog"),
        ("Mastering Stratego, the classic game of imperfect information", datetime(2022, 12, 1, 19, 0, tzinfo=UTC),
         "DeepMind"),
    ]
    assert feed.posts[0].url == "https://ai.googleblog.com/2022/12/accelerating-text-generation-with.html"
    assert feed.posts[2].url == "https://www.deepmind.com/blog/mastering-stratego-the-classic-game-of-imperfect-information"
    assert all(p.key == "guid:" + p.url for p in feed.posts)  # type: ignore[operator]
    assert feed.posts[1].summary.startswith("Netflix explains how its Dataflow tool")


# --- kr.euckr.rss.xml: EUC-KR bytes, served over HTTP --------------------------------------------------

KR_TITLES = [
    "ML 모델 서빙 비용 1/4로 줄이기",
    "Luda Gen 1, 더 재미있고 자연스러운 대화로 돌아온 루다 1편 - 생성 기반 챗봇",
    "CLOVA MD 상품추천 솔루션",
]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/rss+xml; charset=euc-kr",
        "text/xml; charset=EUC-KR",
        "application/rss+xml",  # no charset: the XML declaration decides
        "text/xml",
        "application/rss+xml; charset=utf-8",  # a server that lies about the charset
    ],
)
def test_euckr_feed_served_over_http(feed_server, content_type: str) -> None:  # type: ignore[no-untyped-def]
    url = feed_server.serve("/kr.xml", FEEDS / "kr.euckr.rss.xml", content_type=content_type)
    with Fetcher(FetchSettings(timeout=2, connect_timeout=1)) as fetcher:
        result = fetcher.fetch(FeedState(id=1, name="kr", url=url), datetime.now(UTC))
    assert result.error is None and result.body == (FEEDS / "kr.euckr.rss.xml").read_bytes()
    assert result.content_type == content_type
    feed = parse_feed(result.body, url=result.url, content_type=result.content_type)
    assert feed.title == "국내 ML 기술 블로그 모음"
    assert [p.title for p in feed.posts] == KR_TITLES
    assert feed.posts[0].summary.startswith("하이퍼커넥트가 AWS Inferentia로")
    assert feed.posts[0].published == datetime(2022, 12, 13, 1, 0, tzinfo=UTC)  # 10:00 +0900
    assert feed.posts[1].url == "https://tech.scatterlab.co.kr/luda-gen-1/"
    assert feed.warning is None


def test_euckr_without_content_type() -> None:
    feed = parse("kr.euckr.rss.xml", content_type=None)
    assert [p.title for p in feed.posts] == KR_TITLES


# --- charsets no label tells correctly -----------------------------------------------------------------


def one_title(title: str, codec: str, declared: str | None = None, content_type: str | None = None) -> str:
    head = f'<?xml version="1.0" encoding="{declared}"?>' if declared else '<?xml version="1.0"?>'
    body = f'{head}<rss version="2.0"><channel><title>c</title><item><title>{title}</title></item></channel></rss>'
    [post] = parse_feed(body.encode(codec), url="http://127.0.0.1/f.xml", content_type=content_type).posts
    return post.title


@pytest.mark.parametrize(
    ("title", "codec", "declared", "content_type"),
    [
        ("똠방각하의 햏 뷁 이야기", "cp949", "euc-kr", None),  # CP949 labelled EUC-KR: feedparser alone gives mojibake
        ("똠방각하의 기술 블로그", "cp949", None, "text/xml; charset=iso-8859-1"),  # a wrong server default, no label
        ("It’s “quoted”, don’t worry", "cp1252", None, None),  # unlabelled windows-1252 is not taken for CP949
        ("Été à Paris : café crème", "iso-8859-1", "iso-8859-1", None),
        ("Привет, мир", "koi8-r", "koi8-r", "application/rss+xml"),
        ("深度学习模型", "gb18030", "gb2312", None),
        ("日本語のタイトル", "shift_jis", "shift_jis", "text/xml; charset=iso-8859-1"),
    ],
)
def test_titles_decode_in_the_charset_that_fits_their_bytes(title: str, codec: str, declared: str | None,
                                                            content_type: str | None) -> None:
    assert one_title(title, codec, declared, content_type) == title


def test_xml_forbidden_characters_and_references_are_spaces_not_errors() -> None:
    assert one_title("a\x01b &#0; c &#xD800; d &#x1F600; e\x7f f", "utf-8") == "a b c d 😀 e f"


def test_white_space_before_the_xml_declaration_is_ignored() -> None:
    body = b'\n\n  <?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title></channel></rss>'
    feed = parse_feed(body, url="http://127.0.0.1/f.xml", content_type=RSS)
    assert (feed.title, feed.warning) == ("t", None)


def test_angle_brackets_in_plain_titles_are_kept_but_html_tags_are_not() -> None:
    assert one_title("Vec&lt;T&gt; and Result&lt;T, E&gt; in Rust", "utf-8") == "Vec<T> and Result<T, E> in Rust"
    assert one_title("&lt;img src=x onerror=alert(1)&gt;Picture &lt;b&gt;post&lt;/b&gt;", "utf-8") == "Picture post"


def test_links_to_the_feed_itself_or_its_home_page_are_no_post_links() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://ex.com/</link>
    <item><title>a</title><link>#</link></item><item><title>b</title><link>/</link></item>
    <item><title>c</title><link> </link></item><item><title>d</title><link>/p/d</link></item></channel></rss>"""
    feed = parse_feed(body, url="https://ex.com/feed.xml", content_type=RSS)
    assert [(p.title, p.url) for p in feed.posts] == [("a", None), ("b", None), ("c", None), ("d", "https://ex.com/p/d")]
    assert len({p.key for p in feed.posts}) == 4  # so they are not taken for one post


def test_long_titles_and_summaries_are_cut_with_an_ellipsis() -> None:
    body = f"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>{"word " * 400}</title>
    <description>{"sentence. " * 500}</description><link>https://ex.com/p</link></item></channel></rss>"""
    [post] = parse_feed(body.encode(), url="https://ex.com/feed.xml", content_type=RSS).posts
    assert len(post.title) == MAX_TITLE and post.title.endswith("word…")
    assert len(post.summary) <= MAX_SUMMARY and post.summary.endswith("sentence.…")


# --- dupes.rss.xml: identity -------------------------------------------------------------------------


def test_dupes_identity_keys() -> None:
    feed = parse("dupes.rss.xml")
    # the three ways of naming "alpha" (same guid, then same canonical link) are one post: the first entry
    assert len(feed.posts) == 3
    alpha, gamma, delta = feed.posts
    # a guid is the key when there is one
    assert alpha.key == "guid:dup-guid-001"
    assert alpha.url == "https://example.com/posts/alpha"
    assert alpha.title == "Alpha: serving a ranking model on a budget"
    # no guid: the canonical link is the key
    assert gamma.key == "url:https://example.com/posts/gamma" and gamma.url == "https://example.com/posts/gamma"
    # neither guid nor link: a hash of title and date
    assert delta.url is None
    assert delta.key.startswith("hash:") and len(delta.key) == len("hash:") + 64
    assert delta.title == "Delta: notes without a permalink"
    assert delta.published == datetime(2022, 12, 16, 8, 0, tzinfo=UTC)


def test_hash_key_is_stable_and_depends_on_title() -> None:
    body = (FEEDS / "dupes.rss.xml").read_bytes()
    a = parse_feed(body, url="https://example.com/feed", content_type=RSS).posts[2].key
    b = parse_feed(body, url="https://example.com/feed", content_type=RSS).posts[2].key
    c = parse_feed(body.replace(b"Delta: notes", b"Delta: more notes"), url="https://example.com/feed",
                   content_type=RSS).posts[2].key
    assert a == b != c


# --- not feeds ---------------------------------------------------------------------------------------


def test_html_page_is_not_a_feed_and_names_the_advertised_feed() -> None:
    with pytest.raises(ParseError) as info:
        parse("not_a_feed.html", content_type="text/html; charset=utf-8", url="https://blog.example.com/some/page.html")
    message = str(info.value)
    assert "not a feed" in message
    assert "https://blog.example.com/feed.xml" in message


def test_html_page_without_advertised_feed() -> None:
    body = b"<!DOCTYPE html><html><head><title>x</title></head><body><p>hello</p></body></html>"
    with pytest.raises(ParseError, match="not a feed") as info:
        parse_feed(body, url="https://blog.example.com/", content_type="text/html")
    assert "advertises" not in str(info.value)


@pytest.mark.parametrize(
    "body",
    [b"", b"\x00\x01\x02\xff\xfe garbage \x89PNG\r\n", b"hello world", b'{"items": []}', b"<rss", bytes(range(256))],
)
def test_garbage_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError, match="not a readable feed"):
        parse_feed(body, url="http://127.0.0.1/feed", content_type=RSS)


def test_markup_that_crashes_feedparser_is_reported_as_malformed_xml_at_its_line() -> None:
    body = b'<?xml version="1.0"?>\n<rss><channel>\n<item<link<feed</item</link>'  # found by test_properties
    with pytest.raises(ParseError) as info:
        parse_feed(body, url="http://127.0.0.1/feed", content_type=RSS)
    assert str(info.value) == "not a readable feed: malformed XML (not well-formed (invalid token) at line 3, column 6)"


def test_malformed_but_readable_xml_gives_posts_and_a_warning() -> None:
    body = (FEEDS / "toss.rss.xml").read_bytes().replace(
        "<title><![CDATA[ESLint와".encode(), "<title>Lint & AST <![CDATA[ESLint와".encode(), 1)
    feed = parse_feed(body, url="https://toss.tech/rss.xml", content_type=RSS)
    assert feed.warning is not None and "malformed" in feed.warning
    assert len(feed.posts) == 4
    assert feed.posts[1].title == "Lint & AST ESLint와 AST로 코드 퀄리티 높이기"
    assert feed.posts[0].title == TOSS[0][1]


# --- markup and text ---------------------------------------------------------------------------------

MARKUP_RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>T &amp; <![CDATA[<i>x</i>]]></title><link>https://ex.com/</link>
<item><title>&lt;b&gt;Bold&lt;/b&gt; move &amp;amp; more</title><link>https://ex.com/1</link>
  <description>&lt;p&gt;Hi &lt;script&gt;evil()&lt;/script&gt;there&lt;/p&gt;</description></item>
<item><title><![CDATA[<em>Deep</em> learning &amp; <span style="color:red">you</span>]]></title>
  <link>/rel/2?utm_source=rss#x</link></item>
<item><title>tab&#9;and
 newline</title><link>https://ex.com/3</link></item>
<item><title></title><description>Only a description here</description><link>https://ex.com/4</link></item>
</channel></rss>""".encode()


def test_titles_with_markup_are_plain_text() -> None:
    feed = parse_feed(MARKUP_RSS, url="https://ex.com/feed.xml", content_type=RSS)
    assert feed.title == "T & x"
    assert [p.title for p in feed.posts] == [
        "Bold move & more", "Deep learning & you", "tab and newline", "Only a description here"]
    assert feed.posts[0].summary == "Hi there"
    assert feed.posts[1].url == "https://ex.com/rel/2"  # relative link resolved against the feed URL, tracking dropped


def test_atom_html_title_and_xhtml_content() -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>
<entry><title type="html">&lt;b&gt;Bold&lt;/b&gt; &amp;amp; x</title><link href="/p/1"/><id>tag:1</id>
<updated>2023-01-01T00:00:00+09:00</updated>
<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Hello <a href="/x">there</a></p></div></content>
</entry></feed>"""
    [post] = parse_feed(body, url="https://ex.com/feed.atom", content_type="application/atom+xml").posts
    assert post.title == "Bold & x"
    assert post.summary == "Hello there"
    assert post.url == "https://ex.com/p/1"
    assert post.published == datetime(2022, 12, 31, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Hello <b>world</b></p>", "Hello world"),
        ("<p>a</p><script>alert('x')</script><style>p { color: red }</style><p>b</p>", "a b"),
        ("<noscript>enable js</noscript><iframe src='x'>frame</iframe>ok", "ok"),
        ("Fish &amp; chips &lt;3 &#54620;&#xAD6D; &eacute;t&eacute;", "Fish & chips <3 한국 été"),
        ("  lots \n\n of\t\twhite&nbsp;space  ", "lots of white space"),
        ("<p>1</p><p>2</p>", "1 2"),
        ("line<br>break", "line break"),
        ("plain text, no markup", "plain text, no markup"),
        ("", ""),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a\x00b", "a b"),
        ("bell\x07 and escape\x1b[0m", "bell and escape [0m"),
        ("zero\u200bwidth", "zero width"),
        ("\ufeffBOM", "BOM"),
        ("del\x7fete", "del ete"),
        ("  two\n\nlines\t ", "two lines"),
        ("한국어 그대로", "한국어 그대로"),
        ("", ""),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


@given(st.text())
def test_clean_text_never_keeps_control_characters(text: str) -> None:
    out = clean_text(text)
    assert not has_control(out)
    assert out == out.strip() and "  " not in out


# --- properties --------------------------------------------------------------------------------------

_PIECES = st.sampled_from([
    b"<?xml version='1.0' encoding='utf-8'?>", b"<?xml version='1.0' encoding='euc-kr'?>", b"<rss version='2.0'>",
    b"<channel>", b"</channel>", b"<item>", b"</item>", b"<title>", b"</title>", b"<link>", b"</link>",
    b"<guid>", b"</guid>", b"<pubDate>", b"</pubDate>", b"Mon, 05 Dec 2022 09:00:00 GMT", b"Mon, 99 Foo 2022",
    b"<feed xmlns='http://www.w3.org/2005/Atom'>", b"<entry>", b"</entry>", b"<html>", b"<description>",
    b"</description>", b"<![CDATA[", b"]]>", b"&amp;", b"&", b"&#0;", b"&#x1;", b"&#x85;", b"&lt;b&gt;",
    b"\x00", b"\x07", b"\x1b", b"\x7f", b"\xc2\x85", "\u2028".encode(), b"\xef\xbb\xbf", b"\xff\xfe", b"\xc7\xd1",
    "한국".encode(), b"http://127.0.0.1/a", b"javascript:x", b"title text", b"\r\n", b" ",
])


# Text for inside an element: the awkward pieces above that are not tags.
_INSIDE = st.lists(st.sampled_from([
    b"Mon, 05 Dec 2022 09:00:00 GMT", b"Mon, 99 Foo 2022", b"&amp;", b"&", b"&#0;", b"&#x1;", b"&#x85;",
    b"&lt;b&gt;", b"\x00", b"\x07", b"\x1b", b"\x7f", b"\xc2\x85", "\u2028".encode(), b"\xc7\xd1", "한국".encode(),
    b"http://127.0.0.1/a", b"javascript:x", b"title text", b"\r\n", b" ", b"<![CDATA[x]]>",
]), max_size=6).map(b"".join)
_ITEM = st.builds(lambda title, link, guid, date: b"<item><title>%s</title><link>%s</link><guid>%s</guid>"
                                                 b"<pubDate>%s</pubDate></item>" % (title, link, guid, date),
                  _INSIDE, st.sampled_from([b"http://127.0.0.1/p", b"/relative", b""]) | _INSIDE, _INSIDE, _INSIDE)
# A feed's skeleton with the awkward pieces inside its elements: most of these are read, so the checks on posts run.
_SHAPED = st.builds(lambda head, items: head + b"<rss version='2.0'><channel><title>t</title>" + b"".join(items)
                    + b"</channel></rss>", st.sampled_from([b"", b"<?xml version='1.0' encoding='utf-8'?>",
                                                            b"<?xml version='1.0' encoding='euc-kr'?>", b"\xef\xbb\xbf"]),
                    st.lists(_ITEM, min_size=1, max_size=4))


def test_parse_feed_returns_a_feed_or_raises_parse_error() -> None:
    """Any bytes, the pieces of a feed in any order, or a feed's skeleton holding them: a ParsedFeed whose
    titles, summaries and dates are clean, or a ParseError. At least a quarter of the examples reach the
    checks on posts, and some end in a ParseError (counted, and shown with --hypothesis-show-statistics)."""
    seen: Counter[str] = Counter()

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(st.binary(max_size=400), st.lists(_PIECES, max_size=40).map(b"".join), _SHAPED),
           st.sampled_from([None, RSS, "text/html; charset=utf-8", "application/xml; charset=no-such-charset"]))
    def check(body: bytes, content_type: str | None) -> None:
        try:
            feed = parse_feed(body, url="http://127.0.0.1/feed.xml", content_type=content_type)
        except ParseError:
            outcome = "parse error"
        else:
            assert isinstance(feed, ParsedFeed)
            assert not has_control(feed.title)
            for post in feed.posts:
                assert post.title and not has_control(post.title)
                assert not has_control(post.summary)
                assert post.key.startswith(("guid:", "url:", "hash:"))
                assert post.published is None or post.published.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
            outcome = "posts checked" if feed.posts else "no posts"
        event(outcome)
        seen[outcome] += 1

    check()
    assert seen["posts checked"] >= sum(seen.values()) // 4 and seen["parse error"] >= 10, seen
