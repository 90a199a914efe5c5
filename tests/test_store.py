"""The database on a real SQLite file (and on PostgreSQL when a server can be started here)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import FEEDS, NOW, FeedServer, alembic_config
from sqlalchemy import event, text

from aggregator.errors import StoreError
from aggregator.poll.fetch import Fetcher, FetchSettings
from aggregator.models import FeedConfig, FetchResult, ParsedPost
from aggregator.store.schema import SCHEMA_VERSION
from aggregator.store import Store
from aggregator.poll.run import run_pass


def _post(key: str, url: str | None, title: str = "t", published: datetime | None = NOW, digest: str = "h") -> ParsedPost:
    return ParsedPost(key=key, url=url, title=title, summary="s", published=published, content_hash=digest)


def test_sqlite_runs_in_wal_mode_and_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with Store(f"sqlite:///{path}") as store:
        store.migrate()
        store.migrate()
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("select version_num from alembic_version")).scalar() == SCHEMA_VERSION
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_schema_version_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [SCHEMA_VERSION]


def test_a_future_schema_version_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with Store(f"sqlite:///{path}") as store:
        store.migrate()
    con = sqlite3.connect(path)
    con.execute("update alembic_version set version_num = '9999'")
    con.commit()
    con.close()
    with Store(f"sqlite:///{path}") as store, pytest.raises(StoreError, match="9999 is newer"):
        store.migrate()
    assert sqlite3.connect(path).execute("select version_num from alembic_version").fetchone() == ("9999",)


def test_a_corrupt_database_file_gives_a_clear_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    with Store(f"sqlite:///{path}") as store, pytest.raises(StoreError) as info:
        store.migrate()
    assert str(path) in str(info.value) and "not a database" in str(info.value)
    assert path.read_bytes() == before


def test_sync_feeds_adds_updates_and_deactivates(store: Store) -> None:
    store.sync_feeds([FeedConfig("A", "https://a.example/feed", "A"), FeedConfig("B", "https://b.example/feed")], NOW)
    assert [f.name for f in store.feeds_due(NOW)] == ["A", "B"]
    store.sync_feeds([FeedConfig("A", "https://a.example/new-feed", "A2")], NOW + timedelta(hours=1))
    assert [(f.name, f.url) for f in store.feeds_due(NOW + timedelta(hours=1))] == [("A", "https://a.example/new-feed")]
    health = {h.name: h for h in store.feed_health()}
    assert health["A"].source == "A2" and not health["B"].active


def test_an_unchanged_config_resyncs_without_writing_and_a_returning_feed_is_active_again(store: Store) -> None:
    feeds = [FeedConfig("A", "https://a.example/feed", "A"), FeedConfig("B", "https://b.example/feed", "B")]
    store.sync_feeds(feeds, NOW)
    statements: list[str] = []

    def listener(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement.split()[0].upper())

    event.listen(store.engine, "before_cursor_execute", listener)
    store.sync_feeds(feeds, NOW + timedelta(hours=1))
    event.remove(store.engine, "before_cursor_execute", listener)
    assert statements == ["SELECT"]
    store.sync_feeds(feeds[:1], NOW)
    store.sync_feeds(feeds, NOW)
    assert {h.name: h.active for h in store.feed_health()} == {"A": True, "B": True}


def test_a_permanent_redirect_survives_a_resync_with_the_same_config(store: Store) -> None:
    store.sync_feeds([FeedConfig("A", "https://a.example/feed")], NOW)
    feed = store.feeds_due(NOW)[0]
    store.record_fetch(feed, FetchResult("https://a.example/moved", 304, permanent_url="https://a.example/moved"), [],
                       now=NOW, next_check=NOW, error=None)
    store.sync_feeds([FeedConfig("A", "https://a.example/feed")], NOW)
    assert store.feeds_due(NOW)[0].url == "https://a.example/moved"


def test_etag_and_last_modified_are_kept_on_304_and_replaced_when_it_carries_new_ones(store: Store) -> None:
    store.sync_feeds([FeedConfig("A", "https://a.example/feed")], NOW)
    feed = store.feeds_due(NOW)[0]
    store.record_fetch(feed, FetchResult(feed.url, 200, body=b"", etag='W/"1"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT"),
                       [], now=NOW, next_check=NOW, error=None)
    feed = store.feeds_due(NOW)[0]
    store.record_fetch(feed, FetchResult(feed.url, 304), [], now=NOW, next_check=NOW, error=None)
    feed = store.feeds_due(NOW)[0]
    assert (feed.etag, feed.last_modified) == ('W/"1"', "Mon, 01 Jan 2024 00:00:00 GMT")
    store.record_fetch(feed, FetchResult(feed.url, 304, etag='W/"2"'), [], now=NOW, next_check=NOW, error=None)
    assert store.feeds_due(NOW)[0].etag == 'W/"2"'


def test_posts_are_matched_by_link_across_feeds_and_by_key_within_one(store: Store) -> None:
    store.sync_feeds([FeedConfig("A", "https://a.example/feed"), FeedConfig("B", "https://b.example/feed")], NOW)
    a, b = store.feeds_due(NOW)
    ok = FetchResult("x", 200, body=b"")
    assert store.record_fetch(a, ok, [_post("guid:1", "https://p.example/1"), _post("guid:2", None)],
                              now=NOW, next_check=NOW, error=None) == 2
    assert store.record_fetch(b, ok, [_post("guid:9", "https://p.example/1")], now=NOW, next_check=NOW, error=None) == 0
    assert store.record_fetch(a, ok, [_post("guid:2", None, title="edited", digest="h2")], now=NOW, next_check=NOW,
                              error=None) == 0
    assert store.count_posts() == 2
    titles = sorted(c.title for c in store.candidates(NOW - timedelta(days=1), NOW + timedelta(days=1)))
    assert titles == ["edited", "t"]


def test_the_month_window_is_half_open_in_utc(store: Store) -> None:
    store.sync_feeds([FeedConfig("A", "https://a.example/feed", "A")], NOW)
    feed = store.feeds_due(NOW)[0]
    edges = [datetime(2022, 11, 30, 23, 59, 59, tzinfo=timezone.utc), datetime(2022, 12, 1, tzinfo=timezone.utc),
             datetime(2022, 12, 31, 23, 59, 59, tzinfo=timezone.utc), datetime(2023, 1, 1, tzinfo=timezone.utc)]
    posts = [_post(f"k{i}", f"https://p.example/{i}", title=str(i), published=d) for i, d in enumerate(edges)]
    store.record_fetch(feed, FetchResult("x", 200, body=b""), posts, now=NOW, next_check=NOW, error=None)
    dec = store.candidates(datetime(2022, 12, 1, tzinfo=timezone.utc), datetime(2023, 1, 1, tzinfo=timezone.utc))
    assert sorted(c.title for c in dec) == ["1", "2"]
    assert all(c.source == "A" and c.feed == "A" for c in dec)


def test_every_feed_is_committed_on_its_own(store: Store, tmp_path: Path) -> None:
    """A pass that dies after the first feed keeps that feed's posts (one transaction per feed)."""
    store.sync_feeds([FeedConfig("A", "https://a.example/feed"), FeedConfig("B", "https://b.example/feed")], NOW)
    a, _b = store.feeds_due(NOW)
    store.record_fetch(a, FetchResult("x", 200, body=b""), [_post("k", "https://p.example/k")], now=NOW,
                       next_check=NOW, error=None)
    with pytest.raises(StoreError):
        with store.session() as s:
            s.execute(text("insert into posts (feed_id, key, url, title, summary, author, source, first_seen_at, content_hash)"
                           " values (1, 'k2', 'https://p.example/k', '', '', '', '', '2023-01-01', '')"))
    other = Store(store.url)
    try:
        assert other.count_posts() == 1
    finally:
        other.close()


# -- PostgreSQL -------------------------------------------------------------------------------

def test_postgresql_migrations_and_one_fetch_pass(pg_url: str, feed_server: FeedServer) -> None:
    pytest.importorskip("psycopg")
    url = feed_server.serve("/toss.xml", FEEDS / "toss.rss.xml")
    with Store(pg_url) as store:
        with store.engine.begin() as conn:
            conn.execute(text("drop table if exists labels, digests, posts, feeds, drafts, alembic_version cascade"))
        store.migrate()
        store.migrate()
        store.sync_feeds([FeedConfig("Toss", url, "토스")], NOW)
        with Fetcher(FetchSettings(timeout=5)) as fetcher:
            first = run_pass(store, fetcher, store.feeds_due(NOW), clock=lambda: NOW)
            second = run_pass(store, fetcher, store.feeds_due(NOW, everything=True), clock=lambda: NOW)
        assert first.new_posts == 4 and [o.status for o in second.outcomes] == ["not_modified"]
        march = store.candidates(datetime(2023, 3, 1, tzinfo=timezone.utc), datetime(2023, 4, 1, tzinfo=timezone.utc))
        assert all(c.published.tzinfo is not None for c in march) and len(march) >= 1


def _migrated_to(url: str, revision: str) -> str:
    """The database at `url` migrated up to `revision`, as that release left it."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
    return url


def _database_at(path: Path, revision: str) -> Path:
    """A SQLite database migrated up to `revision`, as that release left it."""
    _migrated_to(f"sqlite:///{path}", revision)
    return path


def test_upgrading_a_database_of_the_previous_schema_keeps_every_label_and_draft(tmp_path: Path) -> None:
    """A database at revision 0003 (one shared pool of labels), filled as that release's import and draft
    did, migrates to digests of their own: everything in it belongs to the digest "default"."""
    path = _database_at(tmp_path / "old.db", "0003")
    con = sqlite3.connect(path)
    con.execute("insert into posts (id, feed_id, key, url, title, summary, author, source, published_at, first_seen_at,"
                " content_hash) values (1, null, 'digest:u', 'https://a.example/p', 'P', '', '', 'Netflix',"
                " '2022-12-01 00:00:00', '2022-12-05 00:00:00', '')")
    con.execute("insert into digests (month, path, style, title, sha256, sections, covers, imported_at) values"
                " ('2022-12', 'past/2022-12.md', 'house', 'T', 'abc', '[[\"1. Research\", \"1.1. CV\"]]',"
                " '[\"2022-12\"]', '2022-12-05 00:00:00')")
    con.execute("insert into labels (post_id, month, selected, section, editor_summary, printed_source, updated_at)"
                " values (1, '2022-12', 1, '[\"1. Research\", \"1.1. CV\"]', '요약', 'Netflix', '2022-12-05 00:00:00')")
    con.execute("insert into drafts (month, path, sha256, written_at, selected_urls) values"
                " ('2022-12', 'drafts/2022-12.md', 'def', '2022-12-06 00:00:00', '[\"https://a.example/p\"]')")
    con.commit()
    con.close()
    with Store(f"sqlite:///{path}") as store:
        store.migrate()
        [(month, label)] = store.training_labels()
        assert month == "2022-12" and label.selected and label.section == ("1. Research", "1.1. CV")
        assert label.candidate.url == "https://a.example/p" and label.editor_summary == "요약"
        assert [d.edition for d in store.digests()] == ["2022-12"] and store.digests()[0].selected == 1
        assert store.draft_written_at("2022-12") is not None
        assert store.printed_sources() == [(("1. Research", "1.1. CV"), "Netflix")]
        assert store.training_labels(digest="trends") == [] and store.digests(digest="trends") == []
    con = sqlite3.connect(path)
    assert con.execute("select digest, edition from labels").fetchall() == [("default", "2022-12")]
    assert con.execute("select digest, edition from drafts").fetchall() == [("default", "2022-12")]
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_feeds_host_is_the_host_its_requests_go_to_after_a_sync_an_edit_and_a_permanent_move(store: Store) -> None:
    """The per-host cap of several pollers groups feeds by feeds.host (the fetcher's per-host key, links.Site):
    it follows the URL wherever the URL changes."""
    def hosts() -> dict[str, str]:
        with store.engine.connect() as conn:
            return dict(conn.execute(text("select name, host from feeds")).all())

    store.sync_feeds([FeedConfig("a", "https://Blog.Example.COM:8443/feed"), FeedConfig("b", "http://[::1]:9/rss")], NOW)
    assert hosts() == {"a": "blog.example.com", "b": "[::1]"}
    store.sync_feeds([FeedConfig("a", "https://other.example/feed"), FeedConfig("b", "http://[::1]:9/rss")], NOW)
    assert hosts()["a"] == "other.example"
    [feed, _] = store.feeds_due(NOW)
    moved = FetchResult(url="https://moved.example/feed", status=304, permanent_url="https://Moved.example/feed")
    store.record_fetch(feed, moved, [], now=NOW, next_check=NOW, error=None)
    assert hosts()["a"] == "moved.example"


def test_upgrading_from_the_revision_before_feed_hosts_fills_each_feeds_host(tmp_path: Path) -> None:
    path = _database_at(tmp_path / "old.db", "0006")
    con = sqlite3.connect(path)
    for id_, url in [(1, "https://WWW.Example.com/feed"), (2, "http://[fe80::1]:8080/x"), (3, "http://[bad/x")]:
        con.execute("insert into feeds (id, name, config_url, url, source, active, error_count, gone, created_at)"
                    " values (?, ?, ?, ?, '', 1, 0, 0, '2022-12-01 00:00:00')", (id_, f"f{id_}", url, url))
    con.commit()
    con.close()
    with Store(f"sqlite:///{path}") as store:
        store.migrate()
        with store.engine.connect() as conn:
            assert dict(conn.execute(text("select id, host from feeds")).all()) == {1: "www.example.com", 2: "[fe80::1]", 3: "[bad"}


def test_the_migrated_schema_is_the_one_the_orm_declares(empty_db: str) -> None:
    """Every table, column, constraint and index of store/schema.py, by name, after every migration run in
    turn from an empty database: what a new database gets at once (Store.migrate) is the same schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from aggregator.store.schema import metadata

    _migrated_to(empty_db, "head")
    engine = create_engine(empty_db)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


def test_upgrading_from_the_revision_before_edition_columns_keeps_every_label_digest_draft_and_desk_action(
        empty_db: str) -> None:
    """A database at revision 0007 (the edition in columns named month) keeps all its rows through 0008,
    where the columns, the unique constraint and the indexes on them are named edition."""
    from sqlalchemy import create_engine, inspect

    from aggregator.models import Edition

    url = _migrated_to(empty_db, "0007")
    engine = create_engine(url)
    when = datetime(2022, 12, 5)
    section = '["1. Research", "1.1. CV"]'
    try:
        with engine.begin() as conn:
            for statement, row in [
                ("insert into posts (id, feed_id, key, url, title, summary, author, source, published_at, first_seen_at,"
                 " content_hash) values (1, null, 'digest:u', 'https://a.example/p', 'P', '', '', 'Netflix', :when, :when, '')",
                 {}),
                ("insert into digests (digest, month, path, style, title, sha256, sections, covers, imported_at, emoji)"
                 " values ('default', '2022-12', 'past/2022-12.md', 'house', 'T', 'abc', :sections, '[\"2022-12\"]',"
                 " :when, '{}')", {"sections": f"[{section}]"}),
                ("insert into labels (digest, post_id, month, selected, section, editor_summary, printed_source, updated_at,"
                 " revision) values ('default', 1, '2022-12', :yes, :section, '요약', 'Netflix', :when, 1)",
                 {"yes": True, "section": section}),
                ("insert into drafts (digest, month, path, sha256, written_at, selected_urls) values"
                 " ('default', '2022-12', 'drafts/2022-12.md', 'def', :when, '[\"https://a.example/p\"]')", {}),
                ("insert into desk_actions (id, digest, month, post_id, action, before, after, revision, at, undone)"
                 " values (7, 'default', '2022-12', 1, 'accept', null, :after, 1, :when, :no)",
                 {"after": '{"selected": true, "section": ["1. Research", "1.1. CV"], "summary": "요약"}', "no": False}),
            ]:
                conn.execute(text(statement), {"when": when, **row})
        with Store(url) as store:
            store.migrate()
            [(edition, label)] = store.training_labels()
            assert edition == "2022-12" and type(edition) is Edition
            assert label.selected and label.section == ("1. Research", "1.1. CV") and label.editor_summary == "요약"
            [digest] = store.digests()
            assert digest.edition == "2022-12" and type(digest.edition) is Edition and digest.selected == 1
            december = Edition("2022-12")
            assert store.draft_written_at(december) is not None and store.decisions(december)[1].revision == 1
            post, result = store.undo(december, 7, now=NOW)  # the desk's log still undoes the action it recorded
            assert post == 1 and result.decision.selected is None and store.decisions(december) == {}
        names = inspect(engine)
        assert {c["name"] for c in names.get_unique_constraints("labels")} == {"uq_labels_digest_post_edition"}
        assert {i["name"] for i in names.get_indexes("labels")} >= {"ix_labels_edition"}
        assert {i["name"] for i in names.get_indexes("desk_actions")} == {"ix_desk_actions_digest_edition"}
        with engine.connect() as conn:
            assert conn.execute(text("select digest, edition from digests")).all() == [("default", "2022-12")]
            assert conn.execute(text("select digest, edition from drafts")).all() == [("default", "2022-12")]
            assert conn.execute(text("select digest, edition, action from desk_actions order by action")).all() == [
                ("default", "2022-12", "accept"), ("default", "2022-12", "undo")]
            assert conn.execute(text("select count(*) from labels")).scalar() == 0  # undone: no label, as before the accept
    finally:
        engine.dispose()


def test_a_new_database_gets_the_newest_schema_at_once_and_its_version(empty_db: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from aggregator.store.schema import metadata

    with Store(empty_db) as store:
        store.migrate()
        with store.engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar() == SCHEMA_VERSION
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        store.sync_feeds([FeedConfig("a", "https://a.example/feed")], NOW)  # and it is usable
        assert [f.name for f in store.feeds_due(NOW)] == ["a"]


def test_a_new_database_is_stamped_as_alembic_stamps_one_without_importing_it(empty_db: str) -> None:
    """A new database's version table, made without Alembic (store/database.py), is the one Alembic makes,
    and Alembic reads the newest revision from it."""
    import subprocess
    import sys

    from alembic.migration import MigrationContext
    from sqlalchemy.schema import CreateTable

    from aggregator.store.database import _ALEMBIC_VERSION

    made = subprocess.run([sys.executable, "-c", "import sys; from aggregator.store import PollingStore; "
                           "PollingStore(sys.argv[1]).migrate(); print('alembic' in sys.modules)", empty_db],
                          capture_output=True, text=True, timeout=120, check=True)
    assert made.stdout.split() == ["False"]
    with Store(empty_db) as store:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn)
            alembics = context.impl.version_table_impl(version_table="alembic_version", version_table_schema=None,
                                                       version_table_pk=True)
            assert str(CreateTable(_ALEMBIC_VERSION).compile(conn)) == str(CreateTable(alembics).compile(conn))
            assert context.get_current_heads() == (SCHEMA_VERSION,)


def test_the_migration_moves_old_labels_to_the_edition_their_posts_date_gives(empty_db: str) -> None:
    """A database at revision 0008, its labels filed the old way (every entry of a digest under the edition
    it was imported as): through 0009 each label moves to the edition its post's date gives, the desk's log
    moves with it, a label whose post has no known date stays, and two labels of one post meeting in one
    edition leave the one updated last."""
    from sqlalchemy import create_engine

    from aggregator.models import Edition

    url = _migrated_to(empty_db, "0008")
    engine = create_engine(url)
    early, late = datetime(2022, 12, 5), datetime(2022, 12, 20)
    pick = '["1. Research", "1.1. CV"]'
    posts = [  # (id, feed, published, first seen)
        (1, None, datetime(2022, 11, 1), late),  # known only from a digest whose line printed "(Nov 2022, …)"
        (2, 1, datetime(2022, 11, 29, 23), late),  # fetched, published in November
        (3, 1, None, datetime(2023, 1, 5)),  # fetched, its feed gave no date: no date is known
        (4, None, datetime(2022, 12, 1), late),  # known only from a digest, printed December
        (5, 1, datetime(2022, 11, 10), late),  # fetched in November, labelled in both months
        (6, 1, datetime(2023, 10, 4), late),  # a weekly digest's, fetched in 2023-W40
        (7, None, datetime(2023, 10, 1), late),  # a weekly digest's, known only from it: a month names no week
    ]
    labels = [  # (id, digest, post, edition, selected, updated)
        (1, "default", 1, "2022-12", True, early), (2, "default", 2, "2022-12", True, early),
        (3, "default", 3, "2022-12", True, early), (4, "default", 4, "2022-12", True, early),
        (5, "default", 5, "2022-11", False, early), (6, "default", 5, "2022-12", True, late),
        (7, "news", 6, "2023-W41", True, early), (8, "news", 7, "2023-W41", True, early),
    ]
    try:
        with engine.begin() as conn:
            conn.execute(text("insert into feeds (id, name, config_url, url, source, active, error_count, gone, created_at)"
                              " values (1, 'F', 'https://f.example/feed', 'https://f.example/feed', 'F', :yes, 0, :no,"
                              " :when)"), {"yes": True, "no": False, "when": early})
            for id_, feed, published, seen in posts:
                conn.execute(text("insert into posts (id, feed_id, key, url, title, summary, author, source, published_at,"
                                  " first_seen_at, content_hash) values (:id, :feed, :key, :url, 'P', '', '', '', :published,"
                                  " :seen, '')"), {"id": id_, "feed": feed, "key": f"k{id_}", "url": f"https://p.example/{id_}",
                                                  "published": published, "seen": seen})
            for id_, digest, post, edition, selected, updated in labels:
                conn.execute(text("insert into labels (id, digest, post_id, edition, selected, section, editor_summary,"
                                  " printed_source, updated_at, revision) values (:id, :digest, :post, :edition, :selected,"
                                  " :section, '', '', :updated, 1)"),
                             {"id": id_, "digest": digest, "post": post, "edition": edition, "selected": selected,
                              "section": pick if selected else None, "updated": updated})
            conn.execute(text("insert into desk_actions (id, digest, edition, post_id, action, before, after, revision, at,"
                              " undone) values (7, 'default', '2022-12', 2, 'accept', null, :after, 1, :when, :no)"),
                         {"after": '{"selected": true, "section": ["1. Research", "1.1. CV"], "summary": ""}',
                          "when": early, "no": False})
            conn.execute(text("insert into digests (digest, edition, path, style, title, sha256, sections, covers,"
                              " imported_at, emoji) values ('news', '2023-W41', 'n.md', 'weekly', 'N', 'abc', '[]',"
                              " '[\"2023-10\"]', :when, '{}')"), {"when": early})
        with Store(url) as store:
            store.migrate()
            with store.engine.connect() as conn:
                assert conn.execute(text("select version_num from alembic_version")).scalar() == SCHEMA_VERSION
                rows = conn.execute(text("select id, digest, post_id, edition, selected from labels order by id")).all()
                assert [tuple(r) for r in rows] == [
                    (1, "default", 1, "2022-11", True),  # moved to the month its line printed
                    (2, "default", 2, "2022-11", True),  # moved to the month it was published in (UTC)
                    (3, "default", 3, "2022-12", True),  # no date known: stays
                    (4, "default", 4, "2022-12", True),
                    (6, "default", 5, "2022-11", True),  # the label updated last stays; the older one is gone
                    (7, "news", 6, "2023-W40", True),  # the ISO week it was published in
                    (8, "news", 7, "2023-W41", True),  # a month names no week: stays
                ]
                desk = conn.execute(text("select id, edition, post_id from desk_actions")).all()
                assert [tuple(r) for r in desk] == [(7, "2022-11", 2)]  # the desk's log follows its label
                assert conn.execute(text("select covers from digests where digest = 'news'")).scalar() == '["2023-W41"]'
            november = Edition("2022-11")
            assert {url: e for e, lb in store.training_labels() if (url := lb.candidate.url)} == {
                "https://p.example/1": "2022-11", "https://p.example/2": "2022-11", "https://p.example/3": "2022-12",
                "https://p.example/4": "2022-12", "https://p.example/5": "2022-11"}
            assert store.decisions(november)[2].selected is True
            post, result = store.undo(november, 7, now=NOW)  # the desk's undo goes on in the label's new edition
            assert post == 2 and result.decision.selected is None
    finally:
        engine.dispose()
