"""Per-entry fingerprints: a changed body reads and writes only its new or changed entries, and loses nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from conftest import FEEDS, NOW, FeedServer, alembic_config
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from aggregator.models import FeedConfig, ParsedFeed
from aggregator.poll import fingerprints
from aggregator.poll.fetch import Fetcher, FetchSettings
from aggregator.poll.parse import parse_feed
from aggregator.poll.run import Schedule, run_pass
from aggregator.store import Store
from aggregator.store.schema import FeedRow, PostRow, migrations_dir

URL = "http://127.0.0.1/blog/feed.xml"
HOME = "<title>Blog</title><link>http://127.0.0.1/blog/</link>"


def item(guid: str | None, link: str | None, title: str, summary: str = "", date: str | None = None) -> str:
    parts = [f"<title>{title}</title>"]
    if link is not None:
        parts.append(f"<link>{link}</link>")
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{guid}</guid>')
    if summary:
        parts.append(f"<description>{summary}</description>")
    if date:
        parts.append(f"<pubDate>{date}</pubDate>")
    return "<item>" + "".join(parts) + "</item>"


def rss(items: list[str], head: str = "", doctype: bool = False) -> bytes:
    """An RSS body; with `doctype`, one the fast reader hands to feedparser."""
    prolog = '<?xml version="1.0" encoding="utf-8"?>' + ("<!DOCTYPE rss>" if doctype else "")
    return f'{prolog}<rss version="2.0"><channel>{HOME}{head}{"".join(items)}</channel></rss>'.encode()


def read(body: bytes, known: fingerprints.Known | None, fast: bool = True) -> ParsedFeed:
    return parse_feed(body, url=URL, content_type="application/rss+xml", fast=fast, known=known)


# -- parsing ---------------------------------------------------------------------------------

_ENTRIES = st.builds(
    item,
    guid=st.sampled_from([None, "g1", "g2", "g3"]),
    link=st.sampled_from([None, "http://127.0.0.1/blog/a", "http://127.0.0.1/blog/b", "http://127.0.0.1/blog/c", "#"]),
    title=st.sampled_from(["A", "B", "", "Q&amp;A"]),
    summary=st.sampled_from(["", "one", "two <b>bold</b>"]),
    date=st.sampled_from([None, "Mon, 06 Mar 2023 09:00:00 GMT", "Tue, 07 Mar 2023 09:00:00 GMT"]),
)
_X = item("g1", "http://127.0.0.1/blog/a", "A", "one")
_Z = item("g1", "http://127.0.0.1/blog/b", "B", "two")  # X's guid, another link and text


@st.composite
def _bodies(draw: st.DrawFn) -> list[list[str]]:
    """Three bodies made of a few entries, so that entries recur, move and come twice."""
    pool = draw(st.lists(_ENTRIES, min_size=1, max_size=5))
    return [draw(st.lists(st.sampled_from(pool), max_size=6)) for _ in range(3)]


@settings(max_examples=200, deadline=None)
@example(bodies=[[_X], [_Z, _X], [_X]], fast=True)  # X unread in the second body, yet not its post there
@example(bodies=[[_X], [_Z, _X], [_X]], fast=False)
@given(bodies=_bodies(), fast=st.booleans())
def test_a_body_read_against_the_last_ones_fingerprints_leaves_out_only_posts_stored_as_they_read(
        bodies: list[list[str]], fast: bool) -> None:
    """Three bodies in turn, each read against the fingerprints the one before left (entries repeated, moved,
    changed, duplicated by guid or link): every post a whole reading gives is either in the result, in order,
    or the same in every field as a post of the previous body's whole reading (so already stored as it reads)."""
    known: fingerprints.Known = {}
    previous: tuple = ()
    for items in bodies:
        body = rss(items)
        whole = read(body, None, fast)
        part = read(body, known, fast)
        assert [post for post in whole.posts if post in part.posts] == list(part.posts)
        assert all(post in previous for post in whole.posts if post not in part.posts)
        assert len(part.posts) + part.unchanged == len(whole.posts)
        known, previous = fingerprints.load(part.fingerprints), whole.posts


@pytest.mark.parametrize("fast", [True, False])
def test_an_unchanged_entry_of_a_changed_body_is_left_out_and_a_changed_one_kept(fast: bool) -> None:
    old = [item("g1", "http://127.0.0.1/blog/a", "A", "one"), item("g2", "http://127.0.0.1/blog/b", "B", "two")]
    first = read(rss(old, doctype=not fast), {}, fast)
    assert first.read == 2 and first.unchanged == 0 and len(first.posts) == 2
    new = [item("g3", "http://127.0.0.1/blog/c", "C"), old[0], item("g2", "http://127.0.0.1/blog/b", "B", "changed")]
    second = read(rss(new, doctype=not fast), fingerprints.load(first.fingerprints), fast)
    assert [post.key for post in second.posts] == ["guid:g3", "guid:g2"] and second.unchanged == 1
    assert second.read == (2 if fast else 3)  # feedparser reads every entry; the fast reader skips the unchanged


def test_the_feeds_url_or_link_changing_reads_every_entry_again() -> None:
    """An entry's post depends on the feed's URL and home link (relative links, "#" links): a fingerprint
    holds them, so an entry read under another URL or link is read again."""
    items = [item("g1", "a", "A"), item("g2", "#", "B")]
    known = fingerprints.load(read(rss(items), {}).fingerprints)
    moved = parse_feed(rss(items), url="http://127.0.0.1/other/feed.xml", known=known)
    assert moved.unchanged == 0 and [p.url for p in moved.posts] == ["http://127.0.0.1/other/a", None]
    relinked = read(rss(items).replace(b"/blog/</link>", b"/elsewhere/</link>"), known)
    assert relinked.unchanged == 0 and len(relinked.posts) == 2


def test_a_body_of_many_entries_keeps_the_fingerprints_of_the_first_ones_only() -> None:
    many = [item(f"g{i}", f"http://127.0.0.1/blog/{i}", f"T{i}") for i in range(fingerprints.MAX_ENTRIES + 50)]
    parsed = read(rss(many), {})
    assert len(parsed.posts) == fingerprints.MAX_ENTRIES + 50
    assert len(fingerprints.load(parsed.fingerprints)) == fingerprints.MAX_ENTRIES
    again = read(rss([item("new", "http://127.0.0.1/blog/new", "N"), *many]), fingerprints.load(parsed.fingerprints))
    assert again.unchanged == fingerprints.MAX_ENTRIES and len(again.posts) == 51


def test_fingerprints_that_do_not_read_are_dropped() -> None:
    assert fingerprints.load("e1.k.u garbage .. e2.k. x.y.z.w") == {"e1": ("k", "u"), "e2": ("k", "")}
    assert fingerprints.load(None) == {} and fingerprints.load("") == {}


# -- passes ----------------------------------------------------------------------------------

@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(FetchSettings(timeout=5, connect_timeout=2)) as f:
        yield f


def _rows(store: Store) -> dict[str, tuple[str, str, datetime | None]]:
    with store.session() as s:
        return {p.key: (p.title, p.summary, p.updated_at) for p in s.scalars(select(PostRow))}


@pytest.mark.parametrize("fast", [True, False], ids=["fast-reader", "feedparser"])
def test_a_changed_entry_inside_a_changed_body_is_updated_and_an_unchanged_one_is_not_rewritten(
        store: Store, fetcher: Fetcher, feed_server: FeedServer, fast: bool) -> None:
    a = item("a", "http://127.0.0.1/blog/a", "A", "first", "Mon, 06 Mar 2023 09:00:00 GMT")
    b = item("b", "http://127.0.0.1/blog/b", "B", "second", "Tue, 07 Mar 2023 09:00:00 GMT")
    c = item("c", "http://127.0.0.1/blog/c", "C", "third", "Wed, 08 Mar 2023 09:00:00 GMT")
    url = feed_server.serve("/feed.xml", rss([c, b, a], doctype=not fast), conditional=False)
    store.sync_feeds([FeedConfig("Blog", url)], NOW)
    schedule = Schedule(parse_workers=1)
    first = run_pass(store, fetcher, store.feeds_due(NOW), clock=lambda: NOW, schedule=schedule)
    assert first.new_posts == 3 and first.entries_read == 3 and first.entries_unchanged == 0

    later = NOW + timedelta(hours=1)
    b2 = b.replace("second", "second, corrected")
    d = item("d", "http://127.0.0.1/blog/d", "D", "fourth", "Thu, 09 Mar 2023 09:00:00 GMT")
    feed_server.serve("/feed.xml", rss([d, c, b2, a], head="<lastBuildDate>now</lastBuildDate>", doctype=not fast),
                      conditional=False)
    second = run_pass(store, fetcher, store.feeds_due(later, everything=True), clock=lambda: later, schedule=schedule)
    assert [(o.status, o.new_posts) for o in second.outcomes] == [("ok", 1)]
    assert second.entries_unchanged == 2 and second.entries_read == (2 if fast else 4)
    assert _rows(store) == {"guid:a": ("A", "first", None), "guid:b": ("B", "second, corrected", later),
                            "guid:c": ("C", "third", None), "guid:d": ("D", "fourth", None)}

    latest = later + timedelta(hours=1)  # only the channel changed: nothing read (fast) and nothing written
    feed_server.serve("/feed.xml", rss([d, c, b2, a], head="<lastBuildDate>later</lastBuildDate>", doctype=not fast),
                      conditional=False)
    third = run_pass(store, fetcher, store.feeds_due(latest, everything=True), clock=lambda: latest, schedule=schedule)
    assert [(o.status, o.new_posts) for o in third.outcomes] == [("ok", 0)]
    assert third.entries_unchanged == 4 and third.entries_read == (0 if fast else 4)
    assert _rows(store)["guid:b"][2] == later


def test_a_feed_whose_stored_fingerprints_are_garbage_reads_its_changed_body_whole(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    """Fingerprints that match nothing (damaged, or from another version) cost a whole reading, never a post."""
    a = item("a", "http://127.0.0.1/blog/a", "A", "first")
    url = feed_server.serve("/feed.xml", rss([a]), conditional=False)
    store.sync_feeds([FeedConfig("Blog", url)], NOW)
    run_pass(store, fetcher, store.feeds_due(NOW), clock=lambda: NOW, schedule=Schedule(parse_workers=1))
    with store.session() as s:
        s.execute(update(FeedRow).values(entry_fingerprints="not.a fingerprint...\n" * 3))
    feed_server.serve("/feed.xml", rss([item("b", "http://127.0.0.1/blog/b", "B"), a.replace("first", "1st")]),
                      conditional=False)
    later = NOW + timedelta(hours=1)
    again = run_pass(store, fetcher, store.feeds_due(later, everything=True), clock=lambda: later,
                     schedule=Schedule(parse_workers=1))
    assert again.entries_read == 2 and again.entries_unchanged == 0 and again.new_posts == 1
    assert _rows(store) == {"guid:a": ("A", "1st", later), "guid:b": ("B", "", None)}
    with store.session() as s:
        assert len(fingerprints.load(s.scalar(select(FeedRow.entry_fingerprints)))) == 2


def test_a_body_that_fails_to_parse_keeps_the_fingerprints_of_the_last_good_one(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    url = feed_server.serve("/feed.xml", rss([item("a", "http://127.0.0.1/blog/a", "A")]), conditional=False)
    store.sync_feeds([FeedConfig("Blog", url)], NOW)
    run_pass(store, fetcher, store.feeds_due(NOW), clock=lambda: NOW, schedule=Schedule(parse_workers=1))
    with store.session() as s:
        kept = s.scalar(select(FeedRow.entry_fingerprints))
    feed_server.serve("/feed.xml", b"<html><body>maintenance</body></html>", conditional=False)
    later = NOW + timedelta(hours=1)
    broken = run_pass(store, fetcher, store.feeds_due(later, everything=True), clock=lambda: later)
    assert [o.status for o in broken.outcomes] == ["error"]
    with store.session() as s:
        assert s.scalar(select(FeedRow.entry_fingerprints)) == kept and kept


def test_the_same_body_read_twice_gives_the_same_fingerprints() -> None:
    body = rss([item("a", "http://127.0.0.1/blog/a", "A", date="Mon, 06 Mar 2023 09:00:00 GMT")])
    assert read(body, {}).fingerprints == read(body, {}).fingerprints != ""


# -- the migration ---------------------------------------------------------------------------

def _revisions_of(suffix: str) -> tuple[str, str]:
    """(the revision before, the revision) of the migration whose file name ends in `suffix`: a test of one
    migration follows it wherever it is renumbered."""
    import re

    [path] = (migrations_dir() / "versions").glob(f"*{suffix}")
    script = path.read_text(encoding="utf-8")
    revision, before = (re.search(rf"^{name} = '([^']+)'$", script, re.MULTILINE)[1]  # type: ignore[index]
                        for name in ("revision", "down_revision"))
    return before, revision


def test_upgrading_from_the_revision_before_entry_fingerprints_keeps_every_feed_and_post_and_reads_whole_bodies(
        empty_db: str, feed_server: FeedServer) -> None:
    """Feeds and posts stored before the fingerprints keep every field; each feed's fingerprints start empty,
    its next changed body is read whole and leaves them; going down again drops the column and nothing else."""
    from alembic import command
    from sqlalchemy import create_engine, inspect

    before, revision = _revisions_of("_entry_fingerprints.py")
    url = empty_db
    command.upgrade(alembic_config(url), before)
    feed_url = feed_server.serve("/toss.xml", FEEDS / "toss.rss.xml", conditional=False)
    when = datetime(2023, 3, 1)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("insert into feeds (name, config_url, url, host, source, active, error_count, gone,"
                              " created_at, body_sha256, next_check_at) values ('Toss', :u, :u, '127.0.0.1', '토스',"
                              " :yes, 0, :no, :when, 'old', :when)"), {"u": feed_url, "yes": True, "no": False, "when": when})
            feed_id = conn.execute(text("select id from feeds")).scalar()
            conn.execute(text("insert into posts (feed_id, key, url, title, summary, author, source, first_seen_at,"
                              " content_hash) values (:feed, 'guid:old', 'https://toss.tech/old', 'Old', 's', '', '',"
                              " :when, 'h')"), {"feed": feed_id, "when": when})
        with Store(url) as store:
            store.migrate()
            with store.engine.connect() as conn:
                assert conn.execute(text("select version_num from alembic_version")).scalar() == revision
                assert conn.execute(text("select name, body_sha256, entry_fingerprints from feeds")).all() == [
                    ("Toss", "old", None)]
                assert conn.execute(text("select key, title, summary, content_hash from posts")).all() == [
                    ("guid:old", "Old", "s", "h")]
            with Fetcher(FetchSettings(timeout=5)) as fetcher:
                summary = run_pass(store, fetcher, store.feeds_due(NOW), clock=lambda: NOW)
            assert summary.new_posts == 4 and summary.entries_read == 4 and summary.entries_unchanged == 0
            assert store.entry_fingerprints(feed_id) and store.count_posts() == 5
        command.downgrade(alembic_config(url), before)
        assert "entry_fingerprints" not in {c["name"] for c in inspect(engine).get_columns("feeds")}
        with engine.connect() as conn:
            assert conn.execute(text("select count(*) from posts")).scalar() == 5
            assert conn.execute(text("select version_num from alembic_version")).scalar() == before
    finally:
        engine.dispose()
