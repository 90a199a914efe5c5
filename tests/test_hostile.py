"""Broken, mislabelled and hostile feeds through the real pipeline: a local server -> a polling pass ->
SQLite -> the month's draft, checked as the editor and the blog's Markdown renderer would see them."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import FEEDS, NOW, FeedServer
from markdown_it import MarkdownIt
from markdown_it.token import Token
from sqlalchemy import func, select
from typer.testing import CliRunner

from aggregator.cli import app
from aggregator.config import Config
from aggregator.learn.reading import read_digest
from aggregator.digest.draft import make_draft
from aggregator.poll.fetch import Fetcher, FetchSettings
from aggregator.models import Edition, FeedConfig, FeedOutcome
from aggregator.poll.parse import MAX_TITLE
from aggregator.store.schema import FeedRow, PostRow
from aggregator.store import Store
from aggregator.poll.run import run_pass

MD = MarkdownIt("commonmark")
COMMENT = re.compile(r"<!--(?:(?!--).)*-->", re.S)  # one whole HTML comment, nothing closes it early


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(FetchSettings(timeout=20, connect_timeout=2)) as f:
        yield f


def subscribe(store: Store, server: FeedServer, name: str, body: bytes | str | Path, source: str = "Src",
              **route: object) -> str:
    url = server.serve(f"/{name}.xml", body, **route)
    store.sync_feeds([FeedConfig(name, url, source)], NOW)
    return url


def poll(store: Store, fetcher: Fetcher, when: datetime = NOW) -> FeedOutcome:
    [outcome] = run_pass(store, fetcher, store.feeds_due(when, everything=True), clock=lambda: when).outcomes
    return outcome


def posts(store: Store) -> list[PostRow]:
    with store.session() as s:
        return list(s.scalars(select(PostRow).order_by(PostRow.id)))


def draft(store: Store, month: str) -> str:
    return make_draft(store, Config(), Edition(month), "markdown").text


def entry_links(text: str) -> dict[str, str]:
    """Read a draft as the blog's Markdown renderer does, and check that nothing in it can carry an image,
    a script or a foreign link into the page: each entry line is exactly one link, HTML appears only as
    whole comments. Returns {entry line's link text: its target}."""
    tokens = MD.parse(text)
    links: dict[str, str] = {}
    for i, tok in enumerate(tokens):
        if tok.type == "html_block":
            assert all(COMMENT.fullmatch(line) for line in tok.content.splitlines()), tok.content
        if tok.type == "list_item_open":
            inline = tokens[i + 2]
            assert inline.type == "inline" and inline.content.startswith("[")
            kids = inline.children or []
            kinds = [k.type for k in kids]
            assert kinds.count("link_open") == 1 and kinds[0] == "link_open", inline.content
            assert "image" not in kinds
            assert all(COMMENT.fullmatch(k.content) for k in kids if k.type == "html_inline")
            label = "".join(k.content for k in kids[1 : kinds.index("link_close")])
            links[label] = str(kids[0].attrs["href"])
    assert not [t for t in _all(tokens) if t.type == "image"]
    html = COMMENT.sub("", MD.render(text))
    for tag in ("<script", "<img", "<iframe", "<svg", "<object"):
        assert tag not in html.lower()
    assert all(href.startswith(("http://", "https://")) for href in re.findall(r'(?:href|src)="([^"]*)"', html))
    return links


def _all(tokens: list[Token]) -> Iterator[Token]:
    for tok in tokens:
        yield tok
        yield from _all(tok.children or [])


# --- malformed but readable, and unreadable -----------------------------------------------------------


def test_malformed_but_readable_xml_is_stored_with_a_warning(store: Store, fetcher: Fetcher,
                                                             feed_server: FeedServer) -> None:
    body = (FEEDS / "toss.rss.xml").read_bytes()
    body = body.replace("<title><![CDATA[ESLint와".encode(), "<title>Lint & AST <![CDATA[ESLint와".encode(), 1)
    body = body[: body.rindex(b"<item>") + 200]  # and cut off inside the last item, as a dropped connection does
    subscribe(store, feed_server, "toss", body, "토스")
    outcome = poll(store, fetcher)
    assert outcome.status == "ok" and outcome.new_posts == 4
    assert outcome.message is not None and outcome.message.startswith("malformed feed (")
    assert outcome.message.endswith("; read 4 entries anyway") and "\n" not in outcome.message
    assert [p.title for p in posts(store)][:2] == [
        "무지성으로 사용한 헬스 체크가 불러일으킬 수 있는 참사", "Lint & AST ESLint와 AST로 코드 퀄리티 높이기"]
    with store.session() as s:
        row = s.scalars(select(FeedRow)).one()
        assert (row.error_count, row.last_error, row.title) == (0, None, "토스테크")
    links = entry_links(draft(store, "2023-03"))
    assert links["Lint & AST ESLint와 AST로 코드 퀄리티 높이기 (Mar 2023, 토스)"] == \
        "https://toss.tech/article/improving-code-quality-via-eslint-and-ast"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "not a readable feed: "),
        (b"\x1f\x8b\x08\x00" + bytes(200), "not a readable feed: "),  # gzip the server forgot to label
        (b"", "not a readable feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": []}', "not a readable feed: "),
        (b"<!DOCTYPE html><html><body><p>Moved to our new blog</p></body></html>", "not a feed: got an HTML page"),
    ],
    ids=["png", "gzip", "empty", "json", "html"],
)
def test_unreadable_bytes_are_an_error(store: Store, fetcher: Fetcher, feed_server: FeedServer, body: bytes,
                                       message: str) -> None:
    subscribe(store, feed_server, "junk", body)
    outcome = poll(store, fetcher)
    assert outcome.status == "error" and outcome.message is not None and outcome.message.startswith(message)
    assert "\n" not in outcome.message
    assert posts(store) == []
    with store.session() as s:
        row = s.scalars(select(FeedRow)).one()
        assert (row.error_count, row.last_error, row.last_status) == (1, outcome.message, 200)


# --- character sets ---------------------------------------------------------------------------------------

KR = (FEEDS / "kr.cp949.rss.xml").read_bytes().decode("cp949")
KR_TITLES = ["똠얌꿍 레시피 추천 모델의 서빙 비용 줄이기", "햏자체 문장을 표준어로 바꾸는 번역 모델",
             "뷁 같은 희귀 음절도 깨지지 않는 토크나이저"]


def relabel(declared: str | None) -> str:
    """The Korean feed's text with another XML declaration (or none)."""
    head = f'<?xml version="1.0" encoding="{declared}"?>' if declared else ""
    return re.sub(r"^<\?xml[^>]*\?>", head, KR)


CHARSETS = {
    "cp949 declared euc-kr, header euc-kr": (KR.encode("cp949"), "application/rss+xml; charset=euc-kr"),
    "cp949 declared euc-kr, no charset in the header": (KR.encode("cp949"), "application/rss+xml"),
    "cp949 declared ks_c_5601-1987": (relabel("ks_c_5601-1987").encode("cp949"), "text/xml"),
    # RFC 3023: for text/xml the header's charset wins over the declaration; here it is the right one...
    "cp949, text/xml header euc-kr, declared utf-8": (relabel("utf-8").encode("cp949"), "text/xml; charset=euc-kr"),
    # ...and here the wrong one (a server default), which must not turn the titles into Latin-1 mojibake.
    "cp949, text/xml header iso-8859-1, declared euc-kr": (KR.encode("cp949"), "text/xml; charset=iso-8859-1"),
    "cp949, header utf-8, declared euc-kr": (KR.encode("cp949"), "application/rss+xml; charset=utf-8"),
    "cp949 with no charset anywhere": (relabel(None).encode("cp949"), "application/xml"),
    "utf-8, text/xml header euc-kr, declared utf-8": (relabel("utf-8").encode(), "text/xml; charset=euc-kr"),
    "utf-8, text/xml without charset": (relabel("utf-8").encode(), "text/xml"),  # RFC 3023 would say us-ascii
    "utf-8 with a BOM, declared euc-kr": (codecs.BOM_UTF8 + relabel("euc-kr").encode(), "application/rss+xml"),
    "utf-16le with a BOM": (codecs.BOM_UTF16_LE + relabel("utf-16").encode("utf-16-le"), "application/rss+xml"),
    "utf-16be with a BOM, header utf-8": (codecs.BOM_UTF16_BE + relabel("utf-16").encode("utf-16-be"),
                                          "application/rss+xml; charset=utf-8"),
}


@pytest.mark.parametrize("how", list(CHARSETS))
def test_korean_titles_survive_any_charset_labelling(store: Store, fetcher: Fetcher, feed_server: FeedServer,
                                                     how: str) -> None:
    body, content_type = CHARSETS[how]
    subscribe(store, feed_server, "ttom", body, "똠방", content_type=content_type)
    outcome = poll(store, fetcher)
    assert (outcome.status, outcome.new_posts, outcome.message) == ("ok", 3, None)
    assert [p.title for p in posts(store)] == KR_TITLES
    assert posts(store)[2].summary == "KS X 1001에 없는 한글 음절까지 다루는 토크나이저를 만든 이야기입니다."
    with store.session() as s:
        assert s.scalars(select(FeedRow.title)).one() == "똠방각하 기술 블로그"
    links = entry_links(draft(store, "2022-12"))
    assert links == {f"{title} (Dec 2022, 똠방)": f"https://ttom.example.kr/posts/{n}"
                     for n, title in enumerate(KR_TITLES, start=1)}


def test_bytes_no_charset_can_read_are_replaced_with_a_warning(store: Store, fetcher: Fetcher,
                                                              feed_server: FeedServer) -> None:
    body = KR.encode("cp949").replace("인터넷 말투".encode("cp949"), b"\xff\xfe\x80 \xc9", 1)  # bytes of no charset
    subscribe(store, feed_server, "ttom", body, content_type="text/xml; charset=euc-kr")
    outcome = poll(store, fetcher)
    assert outcome.status == "ok" and outcome.message == "some bytes are not valid cp949 and were replaced; " \
                                                         "read 3 entries anyway"
    assert [p.title for p in posts(store)] == KR_TITLES
    assert posts(store)[1].summary.endswith("를 표준어로 옮기는 작은 번역 모델을 학습했습니다.")


# --- hostile entries --------------------------------------------------------------------------------------

LONG = "A very long title " * 300
MARKDOWN_TITLE = ("[Click](javascript:alert(1)) ![pic](data:image/png;base64,AAAA) *star* _under_ | `tick` \\ "
                  "{::nomarkdown} $$x$$ ~~gone~~ [^1]")
HOSTILE = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Hostile &amp; broken</title><link>https://hostile.example/</link>
<item><description>Only a description: the feed gave this post no title.</description>
  <link>https://hostile.example/untitled</link><pubDate>Thu, 01 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>No link and no guid</title><pubDate>Thu, 01 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>No date given</title><link>https://hostile.example/undated</link></item>
<item><title>Relative link</title><link>posts/relative?utm_source=rss#top</link>
  <pubDate>Fri, 02 Dec 2022 09:00:00 GMT</pubDate></item>
<item xml:base="https://hostile.example/blog/"><title>Relative to xml:base</title><link>../2022/12/based</link>
  <pubDate>Fri, 02 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>First with guid dup-1</title><link>https://hostile.example/dup-a</link>
  <guid isPermaLink="false">dup-1</guid><pubDate>Sat, 03 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>Second with guid dup-1</title><link>https://hostile.example/dup-b</link>
  <guid isPermaLink="false">dup-1</guid><pubDate>Sat, 03 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>&lt;b&gt;Bold&lt;/b&gt; claims &amp;amp; &lt;script&gt;alert(1)&lt;/script&gt;facts</title>
  <link>https://hostile.example/html</link><pubDate>Sun, 04 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>{MARKDOWN_TITLE}</title>
  <link>https://hostile.example/markdown</link><pubDate>Sun, 04 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title><![CDATA[<img src=x onerror=alert(1)>Picture post]]></title>
  <link>https://hostile.example/picture</link><pubDate>Sun, 04 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>Bell\x07 vertical\x0btab escape\x1b[31m red\x00 nul</title>
  <link>https://hostile.example/control</link><pubDate>Mon, 05 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>Line one
## Not a heading
* not a bullet</title><link>https://hostile.example/lines</link>
  <pubDate>Mon, 05 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>{LONG}</title><link>https://hostile.example/long</link>
  <pubDate>Mon, 05 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>Script link</title><link>javascript:alert(document.cookie)</link><guid isPermaLink="false">js</guid>
  <pubDate>Tue, 06 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>Data link</title><link>data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==</link>
  <guid isPermaLink="false">data</guid><pubDate>Tue, 06 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>Hash link --&gt; &lt;!-- sneaky</title><link>#</link><guid isPermaLink="false">hash</guid>
  <pubDate>Tue, 06 Dec 2022 09:00:00 GMT</pubDate></item>
<item><title>Vec&lt;T&gt; and Option&lt;T&gt; in Rust</title><link>https://hostile.example/generics</link>
  <pubDate>Wed, 07 Dec 2022 09:00:00 GMT</pubDate></item>
<item></item>
</channel></rss>"""

def test_hostile_entries_are_stored_as_plain_text_and_drafted_as_inert_markdown(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed = subscribe(store, feed_server, "hostile", HOSTILE, "Hostile", conditional=False)
    outcome = poll(store, fetcher)
    assert (outcome.status, outcome.message) == ("ok", None)  # raw control characters are dropped, not an error
    stored = {p.title: p.url for p in posts(store)}
    h = "https://hostile.example"
    assert stored == {
        "Only a description: the feed gave this post no title.": f"{h}/untitled",
        "No link and no guid": None,
        "No date given": f"{h}/undated",
        "Relative link": feed.removesuffix("hostile.xml") + "posts/relative",
        "Relative to xml:base": f"{h}/2022/12/based",
        "First with guid dup-1": f"{h}/dup-a",  # the second item with that guid is the same post
        "Bold claims & facts": f"{h}/html",
        MARKDOWN_TITLE: f"{h}/markdown",
        "Picture post": f"{h}/picture",
        "Bell vertical tab escape [31m red nul": f"{h}/control",
        "Line one ## Not a heading * not a bullet": f"{h}/lines",
        LONG[: MAX_TITLE - 1].rstrip() + "…": f"{h}/long",
        "Script link": None,
        "Data link": None,
        "Hash link --> <!-- sneaky": None,  # "#" is the feed itself, not a post
        "Vec<T> and Option<T> in Rust": f"{h}/generics",
    }  # and the empty <item/> is no post at all
    assert {p.title for p in posts(store) if p.published_at is None} == {"No date given"}

    text = draft(store, "2022-12")
    links = entry_links(text)
    linked = {title: url for title, url in stored.items() if url and title != "No date given"}
    assert links == {f"{title} (Dec 2022, Hostile)": url for title, url in linked.items()}
    for title in ("No link and no guid", "Script link", "Data link"):  # listed for the editor, inert on the page
        assert f"<!-- no link: {title} (Dec 2022, Hostile) -->" in text.splitlines()
    assert "<!-- no link: Hash link - -> <!- - sneaky (Dec 2022, Hostile) -->" in text.splitlines()
    assert "javascript:" not in "".join(links.values()) and "data:" not in "".join(links.values())
    digest = read_digest(text, path="drafts/2022-12.md")  # the unedited draft imports back as its entries
    assert {e.url: e.title for e in digest.entries} == {url: title for title, url in linked.items()}
    assert entry_links(draft(store, "2023-04")) == {"No date given (Apr 2023, Hostile)": f"{h}/undated"}

    feed_server.serve("/hostile.xml", HOSTILE.replace("</channel>", "<!-- rebuilt --></channel>"), conditional=False)
    again = poll(store, fetcher, NOW + timedelta(hours=1))  # the same entries again: nothing new, nothing rewritten
    assert (again.status, again.new_posts) == ("ok", 0)
    assert {p.title: p.url for p in posts(store)} == stored


# --- identity across fetches ------------------------------------------------------------------------------


def test_a_guid_that_changes_on_every_fetch_does_not_make_a_new_post(store: Store, fetcher: Fetcher,
                                                                     feed_server: FeedServer) -> None:
    def body(fetch: int) -> str:
        return f"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://b.example/</link>
        <item><title>Same post</title><link>https://b.example/p/1?utm_source=rss&amp;utm_medium=feed</link>
        <guid isPermaLink="false">session-{fetch}-{fetch * 7919}</guid>
        <pubDate>Thu, 01 Dec 2022 10:00:00 GMT</pubDate></item></channel></rss>"""

    subscribe(store, feed_server, "g", body(1), conditional=False)
    assert poll(store, fetcher).new_posts == 1
    for fetch in (2, 3):
        feed_server.serve("/g.xml", body(fetch), conditional=False)
        assert poll(store, fetcher, NOW + timedelta(hours=fetch)).new_posts == 0
    assert [(p.title, p.url) for p in posts(store)] == [("Same post", "https://b.example/p/1")]


def test_a_feed_resending_10000_old_entries_adds_nothing_twice(store: Store, fetcher: Fetcher,
                                                               feed_server: FeedServer) -> None:
    items = "".join(f"<item><title>Old post {i}</title><link>https://old.example/posts/{i}?utm_source=rss</link>"
                    f"<guid>https://old.example/posts/{i}</guid><pubDate>Mon, 05 Dec 2022 09:00:00 GMT</pubDate>"
                    "</item>" for i in range(10_000))

    def body(fetch: int) -> str:  # the same 10,000 entries under a new build time: a new body every fetch
        return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Old</title>'
                f"<lastBuildDate>Sun, 02 Apr 2023 1{fetch}:00:00 GMT</lastBuildDate>{items}</channel></rss>")

    subscribe(store, feed_server, "old", body(1), conditional=False)  # no ETag, no Last-Modified
    assert poll(store, fetcher).new_posts == 10_000
    for fetch in (2, 3):
        feed_server.serve("/old.xml", body(fetch), conditional=False)
        outcome = poll(store, fetcher, NOW + timedelta(hours=fetch))
        assert (outcome.status, outcome.new_posts) == ("ok", 0)  # "ok": fetched and parsed in full
        assert store.count_posts() == 10_000
    assert len(feed_server.hits_for("/old.xml")) == 3
    with store.session() as s:  # and no stored post was rewritten
        assert s.scalar(select(func.count(PostRow.id)).where(PostRow.updated_at.is_not(None))) == 0


# --- the command line, as the editor runs it ------------------------------------------------------------


def test_cli_reports_broken_feeds_on_one_line_and_drafts_korean_titles(tmp_path: Path,
                                                                      feed_server: FeedServer) -> None:
    kr = feed_server.serve("/kr.xml", FEEDS / "kr.cp949.rss.xml", content_type="text/xml; charset=euc-kr")
    bad = feed_server.serve("/bad.xml", b"\x89PNG\r\n\x1a\n" + bytes(64), content_type="application/rss+xml")
    cut = feed_server.serve("/cut.xml", (FEEDS / "toss.rss.xml").read_bytes()[:-300])
    config = tmp_path / "feeds.yaml"
    config.write_text(f"feeds:\n  - {{name: KR, url: '{kr}', source: 똠방}}\n  - {{name: Bad, url: '{bad}'}}\n"
                      f"  - {{name: Cut, url: '{cut}', source: 토스}}\n", encoding="utf-8")
    runner = CliRunner()
    fetched = runner.invoke(app, ["--config", str(config), "fetch"], catch_exceptions=False)
    assert fetched.exit_code == 0
    lines = fetched.output.splitlines()
    assert any(line.startswith("Bad: not a readable feed: ") for line in lines)
    assert any(line.startswith("Cut: warning: malformed feed (") for line in lines)
    out = tmp_path / "2022-12.md"
    drafted = runner.invoke(app, ["--config", str(config), "draft", "--month", "2022-12", "--out", str(out)],
                            catch_exceptions=False)
    assert drafted.exit_code == 0
    links = entry_links(out.read_text(encoding="utf-8"))
    assert {label: url for label, url in links.items() if url.startswith("https://ttom.")} == {
        f"{title} (Dec 2022, 똠방)": f"https://ttom.example.kr/posts/{n}" for n, title in enumerate(KR_TITLES, 1)}
