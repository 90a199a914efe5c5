"""Round two of hardening: each input an attacker or an unlucky user used to break the product, made by the
test (nothing pathological is stored), now ends in a result or one clear line. What must take linear time is
checked by counting work (steps of Python, what a pattern is handed) at two sizes; no timing is asserted."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import DATA, run_cli

from aggregator.errors import DigestError
from aggregator.learn.reading import read_digest, split_title

DIGESTS = DATA / "digests"
run = run_cli


def steps(fn: Callable[..., object], *args: object, **kwargs: object) -> int:
    """The work `fn(*args, **kwargs)` does, counted rather than timed: lines of Python run, calls made and
    C functions called; the same on every machine and under any load. An error it raises ends the count."""
    count = 0

    def trace(frame: object, event: str, arg: object) -> object:
        nonlocal count
        count += 1
        return trace

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal count
        count += event == "c_call"

    sys.setprofile(profile)
    sys.settrace(trace)
    try:
        fn(*args, **kwargs)
    except Exception:
        pass
    finally:
        sys.settrace(None)
        sys.setprofile(None)
    return count




# --- digest front matter ---------------------------------------------------------------------------

WEEKLY_BODY = "### T\n\n[참고링크](https://a.example/x)\n"


@pytest.mark.timeout(30)
def test_a_yaml_alias_bomb_in_front_matter_is_refused_before_it_expands() -> None:
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    text = "---\n" + "\n".join(levels) + "\ntitle: *a8\n---\n" + WEEKLY_BODY
    with pytest.raises(DigestError, match=r"bomb\.md:3: front matter uses a YAML alias"):
        read_digest(text, path="bomb.md")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("front, message", [
    ("title: " + "[" * 400 + "]" * 400, "nests deeper than 20 levels"),
    ("title: " + "x" * 20_000, "front matter is over 16,384 characters"),
])
def test_deep_or_huge_front_matter_is_one_line(front: str, message: str) -> None:
    with pytest.raises(DigestError, match=message):
        read_digest(f"---\n{front}\n---\n" + WEEKLY_BODY, path="x.md")


# --- digest titles ---------------------------------------------------------------------------------


class _Recorded:
    """A compiled pattern that records, for each match it is asked for, the method and how many characters
    it was handed (the span from pos to endpos)."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern, self.calls = pattern, []  # type: list[tuple[str, int]]

    def __getattr__(self, method: str) -> Callable[..., object]:
        def call(string: str, pos: int = 0, endpos: int = sys.maxsize) -> object:
            self.calls.append((method, min(endpos, len(string)) - pos))
            return getattr(self.pattern, method)(string, pos, endpos)

        return call


def test_a_title_of_spaces_that_almost_ends_in_a_date_is_read_in_linear_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """split_title hands its date pattern one anchored match over what follows the last "(" and nothing else,
    however long the title before it (a search from every position was quadratic); reading a digest line
    twice as long does at most 2.3 times the steps of Python."""
    from aggregator.learn.reading import markdown

    raw = "T (Nov 2026, " + " " * 200_000 + "x]"
    assert split_title(raw) == (raw, None, "")
    assert split_title("T (Nov 2026, " + " " * 200_000 + "x)")[1] == "2026-11"
    text = "## 1. Posts\n* [T (Nov 2026, " + " " * 3_000 + "x](https://a.example/p)\n"
    assert [e.url for e in read_digest(text, style="house").entries] == ["https://a.example/p"]

    recorded = _Recorded(markdown._SUFFIX)
    monkeypatch.setattr(markdown, "_SUFFIX", recorded)
    for spaces in (1_000, 200_000):
        assert split_title("T" + " " * spaces + "(" * 3 + " (Nov 2026, S)") == ("T" + " " * spaces + "(((", "2026-11", "S")
    assert recorded.calls == [("fullmatch", len("Nov 2026, S"))] * 2
    recorded.calls.clear()
    assert split_title("T (Nov 2026, " + " " * 200_000 + "x)")[1] == "2026-11"
    assert len(recorded.calls) == 1 and recorded.calls[0][0] == "fullmatch"
    monkeypatch.undo()

    line = lambda n: "## 1. Posts\n* [T (Nov 2026, " + " " * n + "x](https://a.example/p)\n"  # noqa: E731
    small, large = (steps(read_digest, line(n), style="house") for n in (3_000, 6_000))
    assert large <= 2.3 * small, (small, large)


# --- dates --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("line, name, message", [
    ("* [Post (Dec 9999, S)](https://a.example/p)", "digest.md", ":2: entry dated 9999-12, outside the years 1990-2100"),
    ("* [Post (Nov 0000, S)](https://a.example/p)", "digest.md", ":2: entry dated 0000-11, outside the years 1990-2100"),
    ("* [Post (Dec 2022)](https://a.example/p)", "0000-01.md", "edition 0000-01 is outside the years 1990-2100"),
])
def test_a_date_outside_sane_years_is_refused_at_import_and_training_still_works(home: Path, line: str, name: str,
                                                                                 message: str) -> None:
    (home / name).write_text("## 1. Posts\n" + line + "\n", encoding="utf-8")
    result = run(home, "import-digest", str(home / name))
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert run(home, "import-digest", str(DIGESTS / "house_2022-12.md")).exit_code == 0
    assert run(home, "train").exit_code == 0 and run(home, "eval", "--json").exit_code == 0


# --- several files --------------------------------------------------------------------------------------


def test_each_file_of_an_import_is_reported_and_a_bad_one_stops_nothing_else(home: Path) -> None:
    bad = home / "bad.md"
    bad.write_text("no digest here\n", encoding="utf-8")
    result = run(home, "import-digest", str(DIGESTS / "house_mid_000.md"), str(bad), str(DIGESTS / "house_2022-12.md"),
                 "--month", "2022-12")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{DIGESTS / 'house_mid_000.md'}: 2022-12: 7 entries")
    assert lines[1].startswith(f"error: {bad}: not a digest")
    full = [line for line in lines[2:] if line.startswith(f"{DIGESTS / 'house_2022-12.md'}: ")]  # one line per edition
    assert len(full) == 6 and any(line.startswith(f"{DIGESTS / 'house_2022-12.md'}: 2022-12: 10 entries") for line in full)
    assert lines[2 + len(full):] == [f"2 of 3 files imported; not imported: {bad}"]


# --- feeds ------------------------------------------------------------------------------------------


def test_a_page_of_repeated_link_tags_is_an_html_page_not_a_minute_of_cpu() -> None:
    """A page of thousands of unclosed <link tags is refused as an HTML page; twice the tags cost the parsers
    at most 2.3 times the steps of Python, and finding the advertised feed costs the same few steps however many
    tags there are (the HTML parser reads them)."""
    from aggregator.errors import ParseError
    from aggregator.poll.parse import advertised_feed, parse_feed

    page = lambda n: b"<!DOCTYPE html><html><head>" + b"<link " * n + b"</head><body>moved</body></html>"  # noqa: E731
    with pytest.raises(ParseError, match="not a feed: got an HTML page"):
        parse_feed(page(40_000), url="https://blog.example/")
    assert advertised_feed(page(40_000), "https://blog.example/") is None
    advertising = b'<html><head><link rel="alternate" type="application/atom+xml" href="/atom.xml"></head></html>'
    assert advertised_feed(advertising, "https://blog.example/x") == "https://blog.example/atom.xml"
    small, large = (steps(parse_feed, page(n), url="https://blog.example/") for n in (2_000, 4_000))
    assert large <= 2.3 * small, (small, large)
    assert steps(advertised_feed, page(40_000), "https://blog.example/") == steps(
        advertised_feed, page(2_000), "https://blog.example/")


def test_an_entity_declared_after_a_long_comment_never_reaches_a_title() -> None:
    from aggregator.errors import ParseError
    from aggregator.poll.parse import parse_feed

    body = ("<?xml version='1.0'?><!-- " + "x" * 5_000 + " --><!DOCTYPE rss [<!ENTITY e 'EXPANDED'>]>"
            "<rss version='2.0'><channel><title>t</title><item><title>A &e; B</title>"
            "<link>https://a.example/1</link></item></channel></rss>").encode()
    for fast in (True, False):
        with pytest.raises(ParseError, match=r"declares XML entities"):
            parse_feed(body, url="https://a.example/feed", fast=fast)


# --- nesting ------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("levels", [300, 100_000])
def test_a_deeply_nested_feeds_yaml_is_one_line_not_a_crash(tmp_path: Path, levels: int) -> None:
    import subprocess
    import sys

    config = tmp_path / "feeds.yaml"
    config.write_text("feeds: " + "[" * levels + "]" * levels + "\n", encoding="utf-8")
    # a separate process: before the fix, 100,000 levels crashed the interpreter in the C YAML loader
    done = subprocess.run([sys.executable, "-m", "aggregator", "--config", str(config), "feeds"], capture_output=True,
                          text=True, timeout=100)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {config}:1: nested deeper than feeds.yaml can be (50 levels at most)"]


def test_block_nesting_in_feeds_yaml_is_refused_too(tmp_path: Path) -> None:
    from aggregator.config import parse_config
    from aggregator.errors import ConfigError

    text = "feeds:\n" + "".join(" " * i + "a:\n" for i in range(2, 400, 2))
    with pytest.raises(ConfigError, match=r"feeds\.yaml:\d+: nested deeper"):
        parse_config(text)


def test_deeply_nested_opml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "feeds.yaml").write_text("feeds: []\n", encoding="utf-8")
    deep = tmp_path / "deep.opml"
    deep.write_bytes(b"<opml version='2.0'><body>" + b"<outline text='f'>" * 990 + b"</outline>" * 990 + b"</body></opml>")
    result = run(tmp_path, "feeds", "import-opml", str(deep))
    assert result.exit_code == 1 and result.output.strip() == f"error: {deep}: outlines nested deeper than 50 levels"


@pytest.mark.timeout(60)
def test_a_line_of_twenty_thousand_footnote_openings_is_refused_at_once() -> None:
    text = "### T [^1]\n\n[^1]: " + "[^" * 20_000 + "\n"
    with pytest.raises(DigestError, match=r"x\.md:3: more than 200 footnote references"):
        read_digest(text, path="x.md", style="footnote")
    with pytest.raises(DigestError, match=r"x\.md:2: line longer than 100,000 characters"):
        read_digest("## 1. A\n* [T (Dec 2022)](https://a.example/" + "a" * 100_000 + ")\n", path="x.md")


# --- drafts under GitHub's Markdown --------------------------------------------------------------------


def test_plain_addresses_in_feed_text_stay_text_under_githubs_markdown() -> None:
    """The digest is published on GitHub, whose autolink extension links bare URLs, www. names and
    e-mail addresses: in a draft only the entries' own links may be links."""
    import re
    from datetime import datetime, timezone

    import cmarkgfm

    from aggregator.models import Candidate, DraftItem, Prediction
    from aggregator.digest.render import render_footnote, render_markdown, render_weekly

    when = datetime(2022, 12, 5, tzinfo=timezone.utc)
    lure = "Read https://evil.example/x and www.evil.example, or write to a@evil.example. Also xmpp:a@evil.example."
    items = [DraftItem(Candidate(1, "https://good.example/post", f"Title www.evil.example {lure}", lure, "Src", when),
                       Prediction(("1. Posts", "1.1. All"), 0.9, 0.9, ("why https://evil.example/y",)))]
    for text in (render_markdown(items, title="D"), render_footnote(items, title="D", when=when),
                 render_weekly(items, title="D", when=when, category="news")):
        html = cmarkgfm.github_flavored_markdown_to_html(text)
        hrefs = re.findall(r'href="([^"]*)"', html)
        assert "https://good.example/post" in hrefs
        assert not [h for h in hrefs if "evil" in h and not h.startswith("#")]  # in-page anchors are fine
    digest = read_digest(render_markdown(items, title="D"))
    assert [(e.title, e.summary) for e in digest.entries] == [(f"Title www.evil.example {lure}",
                                                               "Read https://evil.example/x and www.evil.example, or "
                                                               "write to a@evil.example. Also xmpp:a@evil.example.")]


# --- writers racing --------------------------------------------------------------------------------------


def test_an_import_racing_a_fetch_that_stores_the_same_urls_succeeds(tmp_path: Path) -> None:
    """A polling pass commits one of the digest's posts between the import's look-up and its insert: the
    import runs again, finds the fetched post, and labels it."""
    import sqlite3
    from datetime import datetime, timezone

    from sqlalchemy import event

    from aggregator.learn.labels import import_entries
    from aggregator.models import FeedConfig
    from aggregator.store import Store

    now = datetime(2022, 12, 10, tzinfo=timezone.utc)
    db = tmp_path / "race.db"
    digest = read_digest((DIGESTS / "house_2022-12.md").read_text(encoding="utf-8"))
    entries = import_entries(digest, "2022-12")
    with Store(f"sqlite:///{db}") as store:
        store.migrate()
        store.sync_feeds([FeedConfig("F", "https://f.example/feed")], now)
        raced: list[int] = []

        def fetch_commits_first(session: object, context: object, instances: object) -> None:
            if raced:
                return
            raced.append(1)
            con = sqlite3.connect(db, timeout=30)
            con.execute("insert into posts (feed_id, key, url, title, summary, author, source, first_seen_at,"
                        " content_hash) values (1, 'guid:1', ?, 'As fetched', 'Its opening.', '', '',"
                        " '2022-12-09 00:00:00', '')", (entries[0].url,))
            con.commit()
            con.close()

        event.listen(store._sessions, "before_flush", fetch_commits_first)
        report = store.import_digest(edition="2022-12", path="d.md", style="house", title="T", sha256="x",
                                     sections=digest.sections, covers=["2022-12"], entries=entries, now=now)
        assert raced and report.added == len(entries)
        labelled = {lb.candidate.url: lb.candidate for _, lb in store.training_labels()}
        assert labelled[entries[0].url].title == "As fetched" and labelled[entries[0].url].feed == "F"


# --- lengths -----------------------------------------------------------------------------------------------


def test_a_four_megabyte_link_in_a_feed_is_dropped_with_a_warning() -> None:
    from aggregator.limits import MAX_URL
    from aggregator.poll.parse import parse_feed

    link = "https://a.example/" + "a" * 4_000_000
    body = (f"<rss version='2.0'><channel><title>t</title><item><title>Long</title><link>{link}</link>"
            f"<guid>{'g' * 100_000}</guid></item></channel></rss>").encode()
    feed = parse_feed(body, url="https://a.example/feed")
    [post] = feed.posts
    assert post.url is None and post.title == "Long" and len(post.key) < 100
    assert feed.warning is not None and f"over {MAX_URL:,} characters dropped" in feed.warning


def test_an_opml_name_of_twenty_megabytes_is_cut_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "feeds.yaml").write_text("feeds: []\n", encoding="utf-8")
    big = tmp_path / "big.opml"
    big.write_bytes(b"<opml version='2.0'><body><outline type='rss' text='" + b"N" * 20_000_000
                    + b"' xmlUrl='https://a.example/feed'/><outline text='x' xmlUrl='https://b.example/"
                    + b"b" * 5_000 + b"'/></body></opml>")
    result = run(tmp_path, "feeds", "import-opml", str(big))
    assert result.exit_code == 0, result.output
    assert "cut to 200" in result.output and "link of 5,018 characters skipped" in result.output
    text = (tmp_path / "feeds.yaml").read_text(encoding="utf-8")
    assert len(text) < 2_000 and "https://a.example/feed" in text and "b.example" not in text


def test_a_digest_entry_with_a_huge_link_is_refused_and_a_huge_title_is_cut(home: Path) -> None:
    huge_link = home / "link.md"
    huge_link.write_text("## 1. A\n* [T (Dec 2022)](https://a.example/" + "a" * 5_000 + ")\n", encoding="utf-8")
    refused = run(home, "import-digest", str(huge_link))
    assert refused.exit_code == 1 and ":2: a link over 2,048 characters" in refused.output
    long_title = home / "title.md"
    long_title.write_text("## 1. A\n* [" + "T" * 10_000 + " (Dec 2022)](https://a.example/p): " + "s" * 9_000 + "\n",
                          encoding="utf-8")
    result = run(home, "import-digest", str(long_title))
    assert result.exit_code == 0 and "1 entries had a title, source, heading or summary cut" in result.output
    rows = __import__("json").loads(run(home, "draft", "--month", "2022-12", "--format", "json").output)
    assert len(rows[0]["title"]) == 500 and rows[0]["title"].endswith("…")


def test_feeds_yaml_refuses_a_name_or_link_past_the_limits(tmp_path: Path) -> None:
    from aggregator.config import parse_config
    from aggregator.errors import ConfigError

    with pytest.raises(ConfigError, match=r"feeds\[0\]\.name: String should have at most 200 characters"):
        parse_config(f"feeds:\n  - name: {'n' * 300}\n    url: https://a.example/feed\n")
    with pytest.raises(ConfigError, match=r"feeds\[0\]\.url: String should have at most 2048 characters"):
        parse_config(f"feeds:\n  - name: n\n    url: https://a.example/{'a' * 3000}\n")


# --- pathological shapes, generated -------------------------------------------------------------------------
# Runs of the characters and line shapes that each reader treats specially: real line breaks, YAML front matter,
# anchors and aliases, block scalars, Markdown headings, entries, fences and comments, XML and OPML tags. Each test
# also counts its outcomes and asserts that enough examples reached each branch (a parse that succeeds and,
# where one is possible, an error), so a strategy that stops reaching a check fails the test.

from collections import Counter  # noqa: E402

from hypothesis import event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PIECES = [
    "[", "]", "(", "*", "_", "`", "#", ">", "- ", "  ", "\t", "!", "<", "&", "[^", "[^1]", "\\", ":", "{", "&a;",
    "a@b.c ", "https://x.example/", "www.", "\n", "\n\n", "\r\n", "<outline text='x'>", "</outline>", "<item>",
    "<![CDATA[", "]]>", "&#x", "- [", "](", "<!--", "-->", "<!--\n", "```\n", "---\n", "---\ntitle: t\n---\n",
    "a: &x [1]\n", "b: *x\n", "c: |\n  block\n  scalar\n", "## 1. Posts\n", "### 1.1. CV\n",
    "* [T (Nov 2026, S)](https://a.example/p): text\n", "[^1]: https://a.example/n\n", "*x ",
]
_RUNS = st.builds(lambda piece, n: piece * n, st.sampled_from(_PIECES), st.integers(min_value=1, max_value=3_000))
_PATHOLOGICAL = st.lists(st.one_of(_RUNS, st.sampled_from(_PIECES), st.text(max_size=40)), min_size=1,
                         max_size=6).map("".join)
_ONE_LINE = _PATHOLOGICAL.map(lambda text: " ".join(text.split())[:300])
# A house digest with the shapes in an entry's title and in its summary, and (or not) before it.
_HOUSE = st.builds(lambda before, title, after: f"{before}\n## 1. Posts\n### 1.1. CV\n* [{title}](https://a.example/p): "
                                                f"{after}\n", st.just("") | _PATHOLOGICAL, _ONE_LINE, _ONE_LINE)
SHAPES = settings(max_examples=60, deadline=None)


_NO_MARKUP = str.maketrans("", "", "[]()`<>*_\\!&")
_TITLE = _ONE_LINE.map(lambda text: "".join(c for c in text.translate(_NO_MARKUP) if c.isprintable()).strip() or "t")


@pytest.mark.timeout(300)
def test_the_digest_reader_ends_every_shape_with_entries_or_one_clear_error() -> None:
    """Any shape, alone or around a house digest: entries with a link and a one-line title, or a one-line error
    naming the file. A house digest whose title and summary hold the shapes' text (less the link's own
    brackets and inline markup) is read, its one entry with its link and its title."""
    seen: Counter[str] = Counter()

    @SHAPES
    @given(_PATHOLOGICAL | _HOUSE, st.sampled_from([None, "house", "footnote", "weekly"]), _TITLE, _TITLE)
    def check(text: str, style: str | None, title: str, summary: str) -> None:
        try:
            digest = read_digest(text, path="x.md", style=style)  # type: ignore[arg-type]
        except DigestError as exc:
            assert str(exc).startswith("x.md") and "\n" not in str(exc) and "\r" not in str(exc)
            outcome = "error"
        else:
            assert all(e.url and e.title and "\n" not in e.title for e in digest.entries)
            outcome = "entries" if digest.entries else "empty"
        event(outcome)
        seen[outcome] += 1
        house = f"## 1. Posts\n### 1.1. CV\n* [{title}](https://a.example/p): {summary}\n"
        entries = read_digest(house, path="x.md", style="house").entries
        assert [(e.url, " ".join(e.title.split())) for e in entries] == [("https://a.example/p", " ".join(title.split()))]
        seen["read"] += 1

    check()
    assert seen["read"] >= 60 and seen["error"] >= 6 and seen["entries"] + seen["empty"] >= 6, seen


@pytest.mark.timeout(300)
def test_the_opml_reader_ends_every_shape_with_feeds_or_one_clear_error() -> None:
    from aggregator.errors import ConfigError
    from aggregator.opml import read_opml

    seen: Counter[str] = Counter()

    @SHAPES
    @given(_PATHOLOGICAL, _ONE_LINE)
    def check(text: str, name: str) -> None:
        quoted = name.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")
        named = f"<outline text='{quoted}' xmlUrl='https://a.example/feed'/>"
        for data in (text, f"<opml><body>{text}</body></opml>", f"<opml><body>{named}</body></opml>"):
            try:
                feeds = read_opml(data.encode("utf-8", "replace"), path="x.opml")
            except ConfigError as exc:
                assert str(exc).startswith("x.opml") and "\n" not in str(exc)
                outcome = "error"
            else:
                assert all(f.url.startswith(("http://", "https://")) and len(f.name) <= 200 for f in feeds)
                outcome = "feeds" if feeds else "empty"
            event(outcome)
            seen[outcome] += 1

    check()
    assert seen["feeds"] >= 30 and seen["error"] >= 6, seen


def _yaml_quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar: what YAML may not hold as it is (control and non-characters, line
    separators, a BOM) escaped, the rest as written."""
    def char(c: str) -> str:
        o = ord(c)
        if c in '"\\':
            return "\\" + c
        if 0x20 <= o < 0x7F or 0xA0 <= o <= 0xD7FF and o not in (0x2028, 0x2029) or 0xE000 <= o <= 0xFFFD and o != 0xFEFF \
                or o >= 0x10000:
            return c
        return f"\\U{o:08x}"

    return '"' + "".join(map(char, text)) + '"'


def _yaml_name(text: str) -> str | None:
    """What feeds.yaml makes of `text` as a feed's name: its stripped value, or None when it is not a valid name
    (empty, longer than 200 characters, or spaces alone)."""
    return text.strip() if 1 <= len(text) <= 200 and text.strip() else None


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")
def test_feeds_yaml_ends_every_shape_with_a_config_or_clear_lines() -> None:
    """The shapes as the whole file, and as a feed's name (written raw, and quoted so that it is the name):
    a config or lines that each start with feeds.yaml; the quoted name is the feed's name when it is one."""
    from aggregator.config import parse_config
    from aggregator.errors import ConfigError

    seen: Counter[str] = Counter()

    @SHAPES
    @given(_PATHOLOGICAL)
    def check(text: str) -> None:
        raw = f"feeds:\n  - name: {text}\n    url: https://a.example/feed\n"
        quoted = f"feeds:\n  - name: {_yaml_quoted(text)}\n    url: https://a.example/feed\n"
        for candidate in (text, raw, quoted):
            try:
                config = parse_config(candidate)
            except ConfigError as exc:
                assert all(line.startswith("feeds.yaml") for line in str(exc).splitlines()), str(exc)
                if candidate is quoted:
                    assert _yaml_name(text) is None and "feeds[0].name" in str(exc), str(exc)
                outcome = "error"
            else:
                if candidate is quoted:
                    assert [feed.to_feed().name for feed in config.feeds] == [_yaml_name(text)]
                outcome = "config"
            event(f"{'quoted' if candidate is quoted else 'raw'}: {outcome}")
            seen[f"{'quoted' if candidate is quoted else 'raw'} {outcome}"] += 1

    check()
    assert seen["quoted config"] >= 10 and seen["quoted error"] >= 3 and seen["raw error"] >= 6, seen


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.mark.timeout(300)
def test_the_feed_parsers_end_every_shape_with_posts_or_a_parse_error() -> None:
    """The shapes as a body, raw inside an RSS item, and escaped inside one (which must parse, the item's link
    read back), by both parsers: posts within the caps, or a one-line ParseError."""
    from aggregator.errors import ParseError
    from aggregator.poll.parse import parse_feed

    seen: Counter[str] = Counter()

    def rss(title: str, summary: str) -> str:
        return (f"<rss version='2.0'><channel><title>t</title><item><title>{title}</title>"
                f"<link>https://a.example/p</link><description>{summary}</description></item></channel></rss>")

    @SHAPES
    @given(_PATHOLOGICAL)
    def check(text: str) -> None:
        clean = "".join(c for c in text if c.isprintable() or c in "\n\t")  # XML 1.0 has no other control characters
        for kind, body in (("raw", text), ("in an item", rss(text, text)), ("escaped", rss(_escaped(clean), _escaped(clean)))):
            for fast in (True, False):
                try:
                    feed = parse_feed(body.encode("utf-8", "replace"), url="https://a.example/feed", fast=fast)
                except ParseError as exc:
                    assert kind != "escaped", exc
                    assert "\n" not in str(exc)
                    outcome = "error"
                else:
                    assert all(len(p.title) <= 500 and len(p.summary) <= 2_000 and (p.url is None or len(p.url) <= 2_048)
                               for p in feed.posts)
                    if kind == "escaped":
                        assert [p.url for p in feed.posts] == ["https://a.example/p"]
                    outcome = "posts" if feed.posts else "empty"
                event(f"{kind}: {outcome}")
                seen[f"{kind} {outcome}"] += 1

    check()
    assert seen["escaped posts"] >= 60 and seen["raw error"] >= 30, seen
