"""Properties that must hold for any input: links, the feed normaliser, and the draft <-> digest round trip."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from datetime import datetime, timezone
from xml.sax.saxutils import escape

from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from aggregator.learn.reading import read_digest
from aggregator.errors import DigestError, ParseError
from aggregator.links import canonical_url
from aggregator.models import Candidate, DraftItem, ParsedFeed, Prediction
from aggregator.poll.parse import MAX_TITLE, cap, clean_text, parse_feed
from aggregator.digest.render import first_sentences, render_markdown

FEED_URL = "http://127.0.0.1/blog/feed.xml"
SOME = settings(max_examples=150, deadline=None)


def plain(text: str) -> bool:
    """One line of text with no control or format characters and no stray white space."""
    return not any(unicodedata.category(ch)[0] == "C" for ch in text) and text == " ".join(text.split())


# --- links ----------------------------------------------------------------------------------------------

_URL_PIECES = st.sampled_from([
    "http://", "https://", "HTTPS://", "javascript:", "data:text/html,", "//", "/", "?", "#", "&", "=", "%", "%2f",
    "%zz", "%E2%82%AC", "..", ".", ":", "@", "[", "]", "::1", "example.com", "WWW.Example.COM", "bücher.de", ":80",
    ":443", ":99999", "utm_source=rss", "fbclid=x", "a", "명함", " ", "\t", "\n", "\x00", "(", ")", "'", '"', "<",
    ">", "\\", "`", "~", "+", ";", "&amp;", "&lt;",
])
urlish = st.one_of(st.text(), st.lists(_URL_PIECES, max_size=12).map("".join))


@SOME
@given(urlish, st.one_of(st.none(), urlish, st.sampled_from([FEED_URL, "https://[::1]/a/", "https://b.example"])))
def test_canonical_url_never_raises_and_is_idempotent(text: str, base: str | None) -> None:
    once = canonical_url(text, base)
    if once is not None:
        assert once.startswith(("http://", "https://")) and once.isascii() and plain(once)
        assert canonical_url(once) == once
        assert canonical_url(once, base) == once  # an absolute link ignores the base


# --- the feed normaliser ---------------------------------------------------------------------------------

_BYTES = st.sampled_from([
    b"<?xml version='1.0' encoding='euc-kr'?>", b"<?xml version='1.0'?>", b"<rss version='2.0'><channel>",
    b"</channel></rss>", b"<item>", b"</item>", b"<title>", b"</title>", b"<link>", b"</link>", b"<guid>",
    b"</guid>", b"<feed xmlns='http://www.w3.org/2005/Atom'>", b"<entry>", b"</entry>", b"<![CDATA[", b"]]>",
    b"&amp;", b"&#1;", b"&#xD800;", b"\x00", b"\x1b", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x8c\x63",
    "똠".encode("cp949"), "한".encode(), b"<script>", b"javascript:alert(1)", b"text", b" ", b"\r\n",
])


def check_feed(feed: ParsedFeed) -> None:
    assert plain(feed.title) and len(feed.title) <= MAX_TITLE
    for post in feed.posts:
        assert post.title and plain(post.title) and len(post.title) <= MAX_TITLE
        assert plain(post.summary) and plain(post.author)
        assert post.url is None or canonical_url(post.url) == post.url
        assert post.key.startswith(("guid:", "url:", "hash:"))
    assert feed.warning is None or plain(feed.warning)


# Inside an element: the same pieces less the tags, so that a feed's skeleton around them is usually read.
_INSIDE = st.lists(st.sampled_from([
    b"<![CDATA[x]]>", b"&amp;", b"&#1;", b"&#xD800;", b"\x00", b"\x1b", b"\xef\xbb\xbf", b"\xff\xfe", b"\x8c\x63",
    "똠".encode("cp949"), "한".encode(), b"&lt;script&gt;", b"javascript:alert(1)", b"text", b" ", b"\r\n",
]), max_size=6).map(b"".join)
_SKELETON = st.builds(
    lambda head, items: head + b"<rss version='2.0'><channel><title>c</title>" + b"".join(items) + b"</channel></rss>",
    st.sampled_from([b"", b"<?xml version='1.0' encoding='euc-kr'?>", b"<?xml version='1.0'?>"]),
    st.lists(st.builds(lambda t, link, d: b"<item><title>%s</title><link>%s</link><description>%s</description></item>"
                                          % (t, link, d), _INSIDE, _INSIDE | st.just(b"http://127.0.0.1/p"), _INSIDE),
             min_size=1, max_size=4))


def test_parse_feed_on_any_bytes_gives_plain_text_or_a_parse_error() -> None:
    """Any bytes, feed pieces in any order, or a feed's skeleton holding them: plain text throughout, or a
    one-line ParseError that is not feedparser crashing. At least a quarter of the examples reach check_feed
    with posts, and some end in a ParseError (counted, and shown with --hypothesis-show-statistics)."""
    seen: Counter[str] = Counter()

    @SOME
    @given(st.one_of(st.binary(max_size=300), st.lists(_BYTES, max_size=30).map(b"".join), _SKELETON),
           st.sampled_from([None, "application/rss+xml; charset=utf-8", "text/xml; charset=euc-kr", "text/html",
                            "application/xml; charset=x-unknown", "text/xml; charset=utf-16"]))
    def check(body: bytes, content_type: str | None) -> None:
        try:
            feed = parse_feed(body, url=FEED_URL, content_type=content_type)
        except ParseError as exc:
            assert plain(str(exc)) and str(exc).startswith(("not a readable feed", "not a feed"))
            assert "the parser failed" not in str(exc)  # feedparser itself crashed: a bug to fix before it
            outcome = "parse error"
        else:
            check_feed(feed)
            outcome = "posts checked" if feed.posts else "no posts"
        event(outcome)
        seen[outcome] += 1

    check()
    assert seen["posts checked"] >= sum(seen.values()) // 4 and seen["parse error"] >= 5, seen


ENCODINGS = {  # how the feed is written: (codec, XML declaration's charset, HTTP Content-Type)
    "utf-8": ("utf-8", "utf-8", "application/rss+xml; charset=utf-8"),
    "utf-8, no labels": ("utf-8", None, None),
    "utf-8 with BOM, declared euc-kr": ("utf-8-sig", "euc-kr", "application/rss+xml"),
    "utf-16 with BOM": ("utf-16", "utf-16", "application/rss+xml"),
    "utf-16-be with BOM, header says utf-8": ("utf-16-be", "utf-16", "text/xml; charset=utf-8"),
    "cp949 declared euc-kr": ("cp949", "euc-kr", "application/rss+xml"),
    "cp949, header euc-kr, declared utf-8": ("cp949", "utf-8", "text/xml; charset=euc-kr"),
    "cp949, header iso-8859-1, declared euc-kr": ("cp949", "euc-kr", "text/xml; charset=iso-8859-1"),
}


def rss(titles: list[str], links: list[str], declared: str | None) -> str:
    items = "".join(f"<item><title>{escape(t)}</title><link>{escape(u)}</link><guid>g{i}</guid></item>"
                    for i, (t, u) in enumerate(zip(titles, links, strict=True)))
    head = f'<?xml version="1.0" encoding="{declared}"?>' if declared else '<?xml version="1.0"?>'
    return f'{head}\n<rss version="2.0"><channel><title>c</title><link>/</link>{items}</channel></rss>'


def encode(text: str, codec: str) -> bytes:
    body = text.encode(codec, "xmlcharrefreplace")  # what a server does with characters its charset lacks
    return b"\xfe\xff" + body if codec == "utf-16-be" else body


_KOREAN = st.sampled_from(["똠", "햏", "뷁", "한국어", "기술 블로그", "모델", " ", "AI", "[x](y)", "*", "`"])
# Not C1 controls: feedparser reads "&#145;" (how cp949 carries U+0091) as windows-1252's "‘", as browsers do.
_NO_C1 = st.characters(exclude_characters=[chr(c) for c in range(0x80, 0xA0)])
titles = st.one_of(st.text(_NO_C1, max_size=60), st.lists(_KOREAN, max_size=8).map("".join))


def repaired(text: str) -> str:
    """What feedparser makes of text that reads as UTF-8 taken for Latin-1 ("Â¡"): it repairs it ("¡")."""
    try:
        return text.encode("iso-8859-1").decode("utf-8")
    except UnicodeError:
        return text


def post_url(link: str) -> str | None:
    """The URL a post linking to `link` gets: none when it is the feed or its home page ("#", "/")."""
    url = canonical_url(link, FEED_URL)
    return None if url in (FEED_URL, "http://127.0.0.1/") else url


_LINK_START = st.sampled_from([
    "https://blog.example.com/", "HTTP://Blog.Example.COM:80/", "https://bücher.de/", "//cdn.example.com/", "/", "",
    "../", "./", "#", "?", "javascript:alert(1)//", "data:text/html,", "mailto:editor@example.com?", "ftp://x.example/",
])
_LINK_SEGMENT = st.sampled_from(["a", "post-1", "2023", "명함", "%ed%95%9c", "%E2%82%AC", "a b", "(x)", "~u",
                                 "x.html", "..", ".", "'", "!", "*", "a;b", "@"])
_LINK_END = st.sampled_from(["", "?utm_source=rss", "?id=7&utm_medium=feed", "?q=%ED%95%9C", "?q=한", "?a=1&b=2",
                             "?source=rss----ab---4", "?fbclid=x", "#top", "#", "?x=1#section-2"])
links = st.builds(lambda start, path, end: start + "/".join(path) + end,
                  _LINK_START, st.lists(_LINK_SEGMENT, max_size=4), _LINK_END)


@SOME
@given(st.lists(st.tuples(titles, links), min_size=1, max_size=4), st.sampled_from(sorted(ENCODINGS)))
def test_valid_rss_keeps_every_title_and_link_in_any_charset(entries: list[tuple[str, str]], how: str) -> None:
    codec, declared, content_type = ENCODINGS[how]
    items = [(t, u) for t, u in entries if "<" not in t and "&" not in t]  # titles with markup: the next test
    assume(items)
    text = rss([t for t, _ in items], [u for _, u in items], declared)
    feed = parse_feed(encode(text, codec), url=FEED_URL, content_type=content_type)
    check_feed(feed)
    expected: list[tuple[str, str | None]] = []  # (title, url) of each post
    for title, link in items:
        title, url = clean_text(repaired(title)), post_url(repaired(link))
        if (title or url) and (url is None or url not in [u for _, u in expected]):  # a repeated link: one post
            expected.append((cap(title, MAX_TITLE) or str(url), url))
    assert [(p.title, p.url) for p in feed.posts] == expected


@SOME
@given(st.lists(st.sampled_from(["a", "<b>", "</b>", "<script>x</script>", "&amp;", "&lt;i&gt;", "Vec<T>",
                                  "<img src=x>", "한글", " ", "<!-- c -->", "]]>"]), min_size=1, max_size=10)
       .map("".join))
def test_titles_with_markup_come_out_as_plain_text(title: str) -> None:
    body = rss([title], ["https://e.example/p"], "utf-8").encode()
    [post] = parse_feed(body, url=FEED_URL, content_type="application/rss+xml").posts
    assert plain(post.title)
    assert "<script" not in post.title.lower() and "<img" not in post.title.lower() and "<b>" not in post.title


# --- the digest reader -----------------------------------------------------------------------------------

_MD_PIECES = st.sampled_from([
    "---\n", "# ", "## 1. Research\n", "### 1.1. CV\n", "* ", "  * ", "1. ", "> ", "[", "]", "(", ")", "](",
    "[^1]", "[^1]: ", "[참고링크](", "(Dec 2022, Meta)", "(Nov 2002)", "<!-- ", " -->", "![i](x.png)", "**", "\\",
    "title: x\n", "date: 2023-11-23\n", "categories: [a]\n", "date: 2023-13-45\n", "## Candidates below the cut\n",
    "https://example.org/p", "javascript:alert(1)", "\n", "\n\n", "```\n", "    ", "{: .c}", "&amp;", "\x00", "\r",
])


_MD_LINE = st.lists(st.one_of(_MD_PIECES, st.text(max_size=10)), max_size=8).map(lambda t: " ".join("".join(t).split()))
# A house digest's skeleton with the pieces in its entries' titles and after them: mostly read, so the entries get checked.
_HOUSE_SKELETON = st.lists(st.builds(lambda title, rest: f"* [{title} (Dec 2022, Meta)](https://example.org/p): {rest}",
                                     _MD_LINE.map(lambda t: t.replace("[", "").replace("]", "") or "t"), _MD_LINE),
                           min_size=1, max_size=4).map(lambda lines: "## 1. Research\n### 1.1. CV\n" + "\n".join(lines) + "\n")


def test_read_digest_reads_any_text_or_raises_digest_error() -> None:
    """Any text, digest pieces in any order, or a house digest's skeleton holding them: entries with a link
    and a title, or a one-line DigestError naming the file. At least a quarter of the examples reach the
    check on entries, and some end in a DigestError (counted, and shown with --hypothesis-show-statistics)."""
    seen: Counter[str] = Counter()

    @SOME
    @given(st.one_of(st.tuples(st.one_of(st.text(), st.lists(st.one_of(_MD_PIECES, st.text(max_size=10)), max_size=40)
                                         .map("".join)),
                               st.sampled_from([None, "house", "footnote", "weekly"])),
                     st.tuples(_HOUSE_SKELETON, st.sampled_from([None, "house"]))))  # read as what it is
    def check(case: tuple[str, str | None]) -> None:
        text, style = case
        try:
            digest = read_digest(text, path="x.md", style=style)  # type: ignore[arg-type]
        except DigestError as exc:
            assert str(exc).startswith("x.md") and "\n" not in str(exc)
            outcome = "digest error"
        else:
            assert all(e.url and e.title for e in digest.entries)
            outcome = "entries checked" if digest.entries else "no entries"
        event(outcome)
        seen[outcome] += 1

    check()
    # A house skeleton read as house style is about half the examples, and most of them reach the entries
    # check (91 to 114 of 150 in five runs): a quarter leaves a wide margin, whatever the random draw.
    assert seen["entries checked"] >= sum(seen.values()) // 4 and seen["digest error"] >= 5, seen


DEC = datetime(2022, 12, 5, tzinfo=timezone.utc)
COMMENT = re.compile(r"<!--(?:(?!--).)*-->", re.S)


def entry_targets(text: str) -> list[str]:
    """The link target of each entry line of a draft, checking that the line holds exactly one link, no
    image and no HTML but whole comments, and that nothing else in the draft is HTML but comments."""
    targets = []
    for tok in MarkdownIt("commonmark").parse(text):
        assert tok.type != "html_block" or all(COMMENT.fullmatch(line) for line in tok.content.splitlines())
        if tok.type == "inline" and tok.map and text.splitlines()[tok.map[0]].startswith("* "):
            kids = tok.children or []
            assert [k.type for k in kids].count("link_open") == 1 and kids[0].type == "link_open"
            assert all(k.type != "image" and (k.type != "html_inline" or COMMENT.fullmatch(k.content)) for k in kids)
            targets.append(str(kids[0].attrs["href"]))
    return targets
_SOURCES = st.text(max_size=20).filter(lambda s: "(" not in s and ")" not in s)


@SOME
@given(st.lists(st.tuples(st.one_of(titles, st.text(st.characters(codec="ascii"), max_size=40)), urlish,
                          st.text(max_size=80), st.booleans(), st.lists(st.text(max_size=8), max_size=3)),
                min_size=1, max_size=6),
       _SOURCES, st.text(max_size=20))
def test_a_rendered_draft_reads_back_as_the_same_entries(posts: list[tuple[str, str, str, bool, list[str]]],
                                                         source: str, section: str) -> None:
    items, selected, below = [], {}, []
    for i, (title, link, summary, chosen, reasons) in enumerate(posts):
        title, url = clean_text(title), canonical_url(link) or f"https://example.com/post/{i}"
        if not title or url in selected or url in below:
            continue  # the pipeline stores clean text, never an empty title, one post per url
        summary = clean_text(summary)
        prediction = Prediction(("1. Posts", clean_text(section) or "Other"), 0.5, 0.5, tuple(reasons))
        items.append(DraftItem(Candidate(i, url, title, summary, clean_text(source), DEC), prediction, chosen))
        if chosen:
            selected[url] = (title, clean_text(source), first_sentences(summary))
        else:
            below.append(url)
    assume(items)
    text = render_markdown(items, title="Digest")
    assert sorted(entry_targets(text)) == sorted([*selected, *below])  # one link per entry, nothing else
    digest = read_digest(text, path="drafts/2022-12.md")
    assert {e.url: (e.title, e.source, e.summary) for e in digest.entries} == selected
    assert {e.month for e in digest.entries} <= {"2022-12"}
    assert sorted(digest.candidates_below_cut) == sorted(below)
    assert all(e.section == ("1. Posts", clean_text(section) or "Other") for e in digest.entries)
