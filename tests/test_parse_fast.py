"""The ElementTree reader (parse_fast) gives the same posts as feedparser, and hands over what it cannot read."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from aggregator.poll import parse_fast
from aggregator.errors import ParseError
from aggregator.models import ParsedFeed
from aggregator.poll.parse import _as_utf8, _decode, parse_feed

FEEDS = Path(__file__).parent / "data" / "feeds"
URL = "http://127.0.0.1/blog/feed.xml"
ATOM = "http://www.w3.org/2005/Atom"
NAMESPACES = ('xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
              'xmlns:atom="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/" '
              'xmlns:x="http://example.com/private-ns"')


def both(body: bytes, content_type: str | None = None) -> tuple[ParsedFeed | str, ParsedFeed | str]:
    """What the fast path and feedparser alone make of a body (a ParseError as its message)."""
    results = []
    for fast in (True, False):
        try:
            results.append(parse_feed(body, url=URL, content_type=content_type, fast=fast))
        except ParseError as error:
            results.append(str(error))
    return results[0], results[1]


def read_fast(body: bytes) -> object:
    return parse_fast.read(_as_utf8(_decode(body, None)[0]), URL)


@pytest.mark.parametrize("name", ["d2.atom.xml", "toss.rss.xml", "toss.rss.v2.xml", "ml.rdf.xml", "dupes.rss.xml",
                                  "kr.euckr.rss.xml", "kr.cp949.rss.xml"])
def test_real_feeds_take_the_fast_path_and_read_as_feedparser_reads_them(name: str) -> None:
    body = (FEEDS / name).read_bytes()
    assert read_fast(body) is not None
    fast, reference = both(body)
    assert isinstance(fast, ParsedFeed) and fast.posts
    assert fast == reference


def rss(items: str, channel: str = "<title>Blog</title><link>http://127.0.0.1/blog/</link>", attrs: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" {NAMESPACES}{attrs}><channel>{channel}'
            f"{items}</channel></rss>").encode()


@pytest.mark.parametrize("item", [
    "<item><title>A</title><content:encoded type='xhtml'>x</content:encoded></item>",  # not text
    "<item><title>A</title><media:title>B</media:title></item>",  # a second title from another namespace
    "<item><title>A</title><title>B</title></item>",
    "<item><title>A</title><media:content url='http://127.0.0.1/v.mp4'><media:title>B</media:title>"
    "</media:content></item>",  # a title deeper down
    "<item><title>A <b>bold</b></title></item>",  # markup that is not escaped
    "<item><title>A</title><source url='http://127.0.0.1/other'>Other</source></item>",
    "<item><title>A</title><description mode='base64'>QUJD</description></item>",
    "<item><image><title>Logo</title></image><link>http://127.0.0.1/p</link></item>",  # its title, the item's
])
def test_what_the_fast_path_cannot_read_exactly_goes_to_feedparser(item: str) -> None:
    body = rss(item)
    assert read_fast(body) is None
    fast, reference = both(body)
    assert fast == reference


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e "x">]><rss version="2.0"><channel><title>&e;</title>'
    b"</channel></rss>",
    b"<rss version='2.0'><channel><title>A &nbsp; B</title></channel></rss>",  # not well-formed XML
    b"<opml><body/></opml>",
])
def test_doctypes_malformed_xml_and_other_roots_go_to_feedparser(body: bytes) -> None:
    assert read_fast(body) is None
    assert both(body)[0] == both(body)[1]


# --- generated feeds: both paths must agree on every one --------------------------------------------------

_TEXTS = st.sampled_from([
    "", "Plain title", "  spaced   out  ", "AT&amp;T &amp; friends", "&lt;b&gt;bold&lt;/b&gt; news", "Vec&lt;T&gt;",
    "5 &lt; 6", "&amp;lt;escaped twice&amp;gt;", "한국어 제목", "Ã©tÃ© mojibake", "&#128; euro ref", "&#x2603; snow",
    "<![CDATA[<p>cdata <i>html</i></p>]]>", "&lt;p&gt;para&lt;/p&gt;&lt;script&gt;x()&lt;/script&gt;", "tab\there",
])
_LINKS = st.sampled_from([
    "", "http://127.0.0.1/blog/post-1", "/blog/post-2", "post-3?utm_source=rss&amp;id=3", "https:///example.com/x",
    "  http://127.0.0.1/blog/a b  ", "javascript:alert(1)", "#", "/", "?a=1&amp;b;=2", "http://[::1]:8080/v6",
    "HTTP://Example.COM:80/%7euser", "tag:example.com,2024:post-9", "http://bücher.de/ü",
])
_DATES = st.sampled_from([
    "", "Tue, 03 Jan 2023 09:30:00 +0900", "Tue, 03 Jan 2023 09:30:00 GMT", "2023-01-03T09:30:00Z",
    "2023-01-03T09:30:00+09:00", "2023-01-03", "not a date", "Mon, 99 Foo 2023", "2999-01-01T00:00:00Z",
])
_AUTHORS = st.sampled_from(["", "Jane Doe", "jane@example.com (Jane Doe)", "김개발", "a <b>c</b>"])
_EXTRAS = st.sampled_from([
    "<category>ml</category>", "<category domain='x'>nlp</category>", "<comments>http://127.0.0.1/c</comments>",
    "<enclosure url='http://127.0.0.1/a.mp3' length='1' type='audio/mpeg'/>",
    "<media:thumbnail url='http://127.0.0.1/t.png'/>", "<x:private>kept aside</x:private>",
    "<x:wrapper><x:title>not the title</x:title></x:wrapper>", "<dc:subject>tag</dc:subject>",
    "<atom:link rel='replies' href='http://127.0.0.1/replies'/>", "<atom:link href='/alt'/>",
])


@st.composite
def rss_items(draw: st.DrawFn) -> str:
    parts = []
    if draw(st.booleans()):
        parts.append(f"<title>{draw(_TEXTS)}</title>")
    if draw(st.booleans()):
        parts.append(f"<link>{draw(_LINKS)}</link>")
    guid = draw(st.sampled_from(["", "true", "false", "absent"]))
    if guid != "":
        permalink = "" if guid == "absent" else f" isPermaLink={quoteattr(guid)}"
        parts.append(f"<guid{permalink}>{draw(_LINKS)}</guid>")
    if draw(st.booleans()):
        parts.append(f"<description>{draw(_TEXTS)}</description>")
    if draw(st.booleans()):
        parts.append(f"<content:encoded>{draw(_TEXTS)}</content:encoded>")
    if draw(st.booleans()):
        parts.append(f"<pubDate>{draw(_DATES)}</pubDate>")
    if draw(st.booleans()):
        parts.append(f"<dc:date>{draw(_DATES)}</dc:date>")
    if draw(st.booleans()):
        tag = draw(st.sampled_from(["author", "dc:creator"]))
        parts.append(f"<{tag}>{escape(draw(_AUTHORS))}</{tag}>")
    parts += draw(st.lists(_EXTRAS, max_size=3))
    return "<item>" + "".join(draw(st.permutations(parts))) + "</item>"


@st.composite
def atom_entries(draw: st.DrawFn) -> str:
    parts = []
    if draw(st.booleans()):
        kind = draw(st.sampled_from(["", " type='text'", " type='html'"]))
        parts.append(f"<title{kind}>{draw(_TEXTS)}</title>")
    for _ in range(draw(st.integers(0, 2))):
        rel = draw(st.sampled_from(["", " rel='alternate'", " rel='self'", " rel='enclosure'"]))
        kind = draw(st.sampled_from(["", " type='text/html'", " type='application/pdf'"]))
        parts.append(f"<link{rel}{kind} href={quoteattr(draw(_LINKS))}/>")
    if draw(st.booleans()):
        parts.append(f"<id>{draw(_LINKS)}</id>")
    if draw(st.booleans()):
        parts.append(f"<summary type='html'>{draw(_TEXTS)}</summary>")
    if draw(st.booleans()):
        parts.append(f"<content type='html'>{draw(_TEXTS)}</content>")
    for tag in ("published", "updated"):
        if draw(st.booleans()):
            parts.append(f"<{tag}>{draw(_DATES)}</{tag}>")
    if draw(st.booleans()):
        email = draw(st.sampled_from(["", "<email>jane@example.com</email>"]))
        parts.append(f"<author><name>{escape(draw(_AUTHORS))}</name>{email}</author>")
    parts += draw(st.lists(st.sampled_from(["<category term='ml'/>", "<x:private>aside</x:private>"]), max_size=2))
    base = draw(st.sampled_from(["", " xml:base='http://127.0.0.1/other/'", " xml:base='sub/'"]))
    return f"<entry{base}>" + "".join(draw(st.permutations(parts))) + "</entry>"


@st.composite
def feeds(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["rss", "atom", "rdf"]))
    title = f"<title>{draw(_TEXTS)}</title>"
    if kind == "atom":
        link = f"<link href={quoteattr(draw(_LINKS))}/>" if draw(st.booleans()) else ""
        entries = "".join(draw(st.lists(atom_entries(), max_size=4)))
        base = draw(st.sampled_from(["", " xml:base='http://127.0.0.1/site/'"]))
        return (f"<feed xmlns='{ATOM}' xmlns:x='http://example.com/private-ns'{base}>{title}{link}"
                f"<id>{draw(_LINKS)}</id>{entries}</feed>").encode()
    items = "".join(draw(st.lists(rss_items(), max_size=4)))
    link = f"<link>{draw(_LINKS)}</link>" if draw(st.booleans()) else ""
    extras = draw(st.sampled_from(["", "<atom:link rel='self' href='http://127.0.0.1/blog/feed.xml'/>",
                                   "<image><url>http://127.0.0.1/logo.png</url><title>Logo</title>"
                                   "<link>http://127.0.0.1/</link></image>", "<x:private>aside</x:private>"]))
    if kind == "rss":
        return rss(items, title + link + extras)
    return (f"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' xmlns='http://purl.org/rss/1.0/' "
            f"xmlns:dc='http://purl.org/dc/elements/1.1/' xmlns:content='http://purl.org/rss/1.0/modules/content/'>"
            f"<channel rdf:about='{URL}'>{title}{link}</channel>"
            f"{items.replace('<item>', '<item rdf:about=' + quoteattr(URL + '#i') + '>')}</rdf:RDF>").encode()


@settings(max_examples=300, deadline=None)
@given(feeds())
def test_generated_feeds_read_the_same_on_both_paths(body: bytes) -> None:
    event("fast path" if read_fast(body) is not None else "handed to feedparser")  # about 3 in 4 are fast
    fast, reference = both(body)
    assert fast == reference
