"""A polling pass end to end against a real local server and a real SQLite file, and the scheduling rule."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import FEEDS, NOW, FeedServer, RawServer, Route, free_port
from sqlalchemy import select

from aggregator.poll.fetch import Fetcher, FetchSettings
from aggregator.models import FeedConfig
from aggregator.store.schema import FeedRow, PostRow
from aggregator.store import Store
from aggregator.poll.run import FORK_WORKERS_FROM, PARSE_HERE_FIRST, Schedule, next_check, run_pass


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(FetchSettings(timeout=5, connect_timeout=2)) as f:
        yield f


def poll(store: Store, fetcher: Fetcher, clock: Clock, *, everything: bool = True):
    feeds = store.feeds_due(clock(), everything=everything)
    return run_pass(store, fetcher, feeds, clock=clock, schedule=Schedule(interval=3600, max_backoff=86400))


def post_rows(store: Store) -> list[PostRow]:
    with store.session() as s:
        return list(s.scalars(select(PostRow).order_by(PostRow.id)))


def feed_row(store: Store, name: str) -> FeedRow:
    with store.session() as s:
        return s.scalars(select(FeedRow).where(FeedRow.name == name)).one()


def waits_between_polls(store: Store, fetcher: Fetcher, clock: Clock, name: str, times: int) -> list[timedelta]:
    """Poll `times` times, each time at the feed's next check; the waits it was given."""
    waits = []
    for _ in range(times):
        poll(store, fetcher, clock)
        row = feed_row(store, name)
        waits.append(row.next_check_at - clock())
        clock.now = row.next_check_at
        assert [f.name for f in store.feeds_due(clock())] == [name]  # retried, never dropped
    return waits


# -- next_check ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("errors", "retry_after", "expected"),
    [
        (0, None, timedelta(hours=1)),  # healthy: the interval
        (1, None, timedelta(hours=1)),  # first failure: try again after one interval
        (2, None, timedelta(hours=2)),  # then doubling
        (4, None, timedelta(hours=8)),
        (10, None, timedelta(hours=24)),  # capped at max_backoff
        (200, None, timedelta(hours=24)),  # no overflow for huge counts
        (1, NOW + timedelta(hours=5), timedelta(hours=5)),  # Retry-After later than backoff wins
        (3, NOW + timedelta(minutes=5), timedelta(hours=4)),  # an earlier Retry-After does not shorten backoff
        (1, NOW + timedelta(days=90), timedelta(days=7)),  # an absurd Retry-After is capped at a week
    ],
)
def test_next_check_backs_off_and_honours_retry_after(errors: int, retry_after: datetime | None, expected: timedelta) -> None:
    assert next_check(NOW, interval=3600, errors=errors, max_backoff=86400, retry_after=retry_after) - NOW == expected


# -- passes ----------------------------------------------------------------------------------

def test_first_fetch_stores_posts_then_304_stores_nothing_then_change_adds_exactly_the_new(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    url = feed_server.serve("/toss.xml", FEEDS / "toss.rss.xml")
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("Toss", url, "토스")], clock())

    first = poll(store, fetcher, clock)
    assert [(o.status, o.new_posts) for o in first.outcomes] == [("ok", 4)]
    stored = post_rows(store)
    assert len(stored) == 4
    assert stored[0].title == "무지성으로 사용한 헬스 체크가 불러일으킬 수 있는 참사"
    hashes = {p.id: (p.content_hash, p.updated_at) for p in stored}

    clock.advance(hours=2)
    second = poll(store, fetcher, clock)
    assert [(o.status, o.new_posts) for o in second.outcomes] == [("not_modified", 0)]
    assert feed_server.hits_for("/toss.xml")[-1].headers["if-none-match"] == feed_server.routes["/toss.xml"].etag
    assert {p.id: (p.content_hash, p.updated_at) for p in post_rows(store)} == hashes  # nothing rewritten

    feed_server.serve("/toss.xml", FEEDS / "toss.rss.v2.xml")
    clock.advance(hours=2)
    third = poll(store, fetcher, clock)
    assert [(o.status, o.new_posts) for o in third.outcomes] == [("ok", 1)]
    assert len(post_rows(store)) == 5
    assert {p.id: (p.content_hash, p.updated_at) for p in post_rows(store) if p.id in hashes} == hashes


def test_unchanged_body_without_conditional_support_is_not_parsed_again(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    url = feed_server.serve("/d2.xml", FEEDS / "d2.atom.xml", content_type="application/atom+xml", conditional=False)
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("D2", url, "네이버")], clock())
    assert poll(store, fetcher, clock).new_posts == 5
    before = [(p.id, p.content_hash, p.updated_at) for p in post_rows(store)]
    clock.advance(hours=3)
    again = poll(store, fetcher, clock)
    assert [(o.status, o.new_posts) for o in again.outcomes] == [("not_modified", 0)]  # same bytes: skipped
    assert [(p.id, p.content_hash, p.updated_at) for p in post_rows(store)] == before
    assert feed_row(store, "D2").last_checked_at == clock() and feed_row(store, "D2").last_status == 200


def test_a_changed_body_without_conditional_support_adds_only_the_new_post(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    body = (FEEDS / "toss.rss.xml").read_bytes()
    url = feed_server.serve("/toss.xml", body, conditional=False)
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("Toss", url, "Toss")], clock())
    first = poll(store, fetcher, clock).new_posts
    extra = (b"<item><title>A new one</title><link>https://toss.tech/article/brand-new</link>"
             b"<guid>https://toss.tech/article/brand-new</guid></item>")
    feed_server.serve("/toss.xml", body.replace(b"<item>", extra + b"<item>", 1), conditional=False)
    clock.advance(hours=3)
    assert [(o.status, o.new_posts) for o in poll(store, fetcher, clock).outcomes] == [("ok", 1)]
    assert len(post_rows(store)) == first + 1


def test_duplicates_within_a_feed_and_across_feeds_are_stored_once(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    a = feed_server.serve("/dupes.xml", FEEDS / "dupes.rss.xml")
    b = feed_server.serve("/dupes-mirror.xml", FEEDS / "dupes.rss.xml")
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("A", a), FeedConfig("B", b)], clock())
    summary = poll(store, fetcher, clock)
    assert summary.new_posts == 3 + 1  # B adds only its link-less, guid-less item, which is keyed per feed
    urls = [p.url for p in post_rows(store) if p.url]
    assert sorted(urls) == ["https://example.com/posts/alpha", "https://example.com/posts/gamma"]


def test_changing_guids_with_a_stable_link_do_not_duplicate(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    def feed(guid: str) -> str:
        return f"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
        <item><title>Same post</title><link>https://blog.example/p/1?utm_campaign=x</link>
        <guid isPermaLink="false">{guid}</guid><pubDate>Thu, 01 Dec 2022 10:00:00 GMT</pubDate></item>
        </channel></rss>"""
    url = feed_server.serve("/g.xml", feed("one"))
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("G", url)], clock())
    assert poll(store, fetcher, clock).new_posts == 1
    feed_server.serve("/g.xml", feed("two"))
    clock.advance(hours=2)
    assert poll(store, fetcher, clock).new_posts == 0
    assert [p.url for p in post_rows(store)] == ["https://blog.example/p/1"]


def test_one_broken_feed_never_stops_the_others(store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    good = feed_server.serve("/good.xml", FEEDS / "ml.rdf.xml", content_type="application/rdf+xml")
    feed_server.routes["/bad.xml"] = Route(status=500, body=b"oops")
    html = feed_server.serve("/page.html", FEEDS / "not_a_feed.html", content_type="text/html")
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("Bad", feed_server.url("/bad.xml")), FeedConfig("Page", html),
                      FeedConfig("Good", good)], clock())
    summary = poll(store, fetcher, clock)
    by_name = {o.feed: o for o in summary.outcomes}
    assert by_name["Good"].status == "ok" and by_name["Good"].new_posts == 3
    assert by_name["Bad"].status == "error" and "HTTP 500" in (by_name["Bad"].message or "")
    assert by_name["Page"].status == "error" and "not a feed" in (by_name["Page"].message or "")
    bad = feed_row(store, "Bad")
    assert (bad.error_count, bad.last_status) == (1, 500)
    assert bad.last_error == "HTTP 500 Internal Server Error"
    assert bad.next_check_at == NOW + timedelta(hours=1)


def test_repeated_failures_back_off_and_success_clears_the_count(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.routes["/flaky.xml"] = Route(status=503, body=b"busy")
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("Flaky", feed_server.url("/flaky.xml"))], clock())
    waits = waits_between_polls(store, fetcher, clock, "Flaky", 4)
    assert waits == [timedelta(hours=1), timedelta(hours=2), timedelta(hours=4), timedelta(hours=8)]
    assert feed_row(store, "Flaky").error_count == 4
    feed_server.serve("/flaky.xml", FEEDS / "toss.rss.xml")
    poll(store, fetcher, clock)
    row = feed_row(store, "Flaky")
    assert (row.error_count, row.last_error, row.last_status) == (0, None, 200)


def test_retry_after_is_stored_as_the_next_check(store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.routes["/slow.xml"] = Route(status=429, body=b"", headers={"Retry-After": "7200"})
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("Slow", feed_server.url("/slow.xml"))], clock())
    poll(store, fetcher, clock)
    assert feed_row(store, "Slow").next_check_at == NOW + timedelta(hours=2)
    assert store.feeds_due(NOW + timedelta(hours=1, minutes=59)) == []


def test_permanent_redirect_moves_the_feed_and_gone_parks_it(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.routes["/old.xml"] = Route(status=301, headers={"Location": "/new.xml"})
    feed_server.serve("/new.xml", FEEDS / "toss.rss.xml")
    feed_server.routes["/dead.xml"] = Route(status=410, body=b"gone")
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("Moved", feed_server.url("/old.xml")), FeedConfig("Dead", feed_server.url("/dead.xml"))],
                     clock())
    summary = poll(store, fetcher, clock)
    assert {o.feed: o.status for o in summary.outcomes} == {"Moved": "ok", "Dead": "gone"}
    assert feed_row(store, "Moved").url == feed_server.url("/new.xml")
    assert feed_row(store, "Dead").gone
    clock.advance(days=30)
    assert [f.name for f in store.feeds_due(clock())] == ["Moved"]  # gone feeds are not polled...
    assert store.reset_feed("Dead", clock())
    assert "Dead" in [f.name for f in store.feeds_due(clock())]  # ...until reset


def test_a_stopped_pass_records_nothing_more(store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    url = feed_server.serve("/toss.xml", FEEDS / "toss.rss.xml")
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("Toss", url)], clock())
    fetcher.stop.set()
    summary = poll(store, fetcher, clock)
    assert summary.outcomes == ()
    assert post_rows(store) == []
    assert feed_row(store, "Toss").next_check_at == NOW  # still due: the schedule is intact


def test_only_due_feeds_are_polled(store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    url = feed_server.serve("/toss.xml", FEEDS / "toss.rss.xml")
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("Toss", url, interval=7200)], clock())
    poll(store, fetcher, clock, everything=False)
    clock.advance(hours=1)
    assert poll(store, fetcher, clock, everything=False).outcomes == ()
    clock.advance(hours=1)
    assert [o.status for o in poll(store, fetcher, clock, everything=False).outcomes] == ["not_modified"]
    assert len(feed_server.hits_for("/toss.xml")) == 2


def test_dates_are_utc_and_undated_posts_use_first_seen(store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    body = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
    <item><title>Dated</title><link>https://x.example/a</link><pubDate>Thu, 01 Dec 2022 02:00:00 +0900</pubDate></item>
    <item><title>Undated</title><link>https://x.example/b</link></item>
    </channel></rss>"""
    url = feed_server.serve("/d.xml", body)
    clock = Clock(datetime(2022, 12, 15, tzinfo=timezone.utc))
    store.sync_feeds([FeedConfig("D", url, "X")], clock())
    poll(store, fetcher, clock)
    rows = {p.title: p for p in post_rows(store)}
    assert rows["Dated"].published_at == datetime(2022, 11, 30, 17, 0, tzinfo=timezone.utc)
    assert rows["Undated"].published_at is None
    nov = store.candidates(datetime(2022, 11, 1, tzinfo=timezone.utc), datetime(2022, 12, 1, tzinfo=timezone.utc))
    dec = store.candidates(datetime(2022, 12, 1, tzinfo=timezone.utc), datetime(2023, 1, 1, tzinfo=timezone.utc))
    assert [c.title for c in nov] == ["Dated"]
    assert [c.title for c in dec] == ["Undated"]
    assert dec[0].published == clock()


def test_a_date_in_the_future_is_taken_as_the_first_seen_time(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    body = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
    <item><title>From 2099</title><link>https://x.example/f</link><pubDate>Thu, 01 Jan 2099 00:00:00 GMT</pubDate></item>
    </channel></rss>"""
    url = feed_server.serve("/f.xml", body)
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("F", url, "X")], clock())
    poll(store, fetcher, clock)
    assert [p.published_at for p in post_rows(store)] == [NOW]  # counted in this month, not in 2099's


# -- servers that fail in every way: recorded on the feed, backed off, retried -------------------------

@pytest.mark.parametrize("kind", ["refused", "dns", "tls", "silent", "trickle_headers", "trickle_body"])
def test_every_kind_of_server_failure_is_recorded_and_backed_off(
        store: Store, feed_server: FeedServer, raw_server: Callable[..., RawServer], kind: str) -> None:
    url = {
        "refused": lambda: f"http://127.0.0.1:{free_port()}/feed.xml",
        "dns": lambda: "http://blog.example.invalid/feed.xml",
        "tls": lambda: feed_server.serve("/feed.xml", FEEDS / "toss.rss.xml").replace("http://", "https://"),
    }.get(kind, lambda: raw_server(kind, pace=0.1).url)()
    expected = {"refused": "connection refused", "dns": "cannot resolve host name (DNS)", "tls": "TLS error:"}
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("Bad", url)], clock())
    with Fetcher(FetchSettings(timeout=1, connect_timeout=1)) as quick:
        for errors, wait in [(1, timedelta(hours=1)), (2, timedelta(hours=2))]:
            [outcome] = poll(store, quick, clock).outcomes
            row = feed_row(store, "Bad")
            assert outcome.status == "error" and row.error_count == errors
            assert row.last_error == outcome.message
            assert row.last_error.startswith(expected.get(kind, "took longer than 1 s in total"))
            assert row.next_check_at - clock() == wait
            clock.now = row.next_check_at


def test_429_backs_off_with_its_own_shorter_cap_and_a_success_clears_it(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    feed_server.routes["/busy.xml"] = Route(status=429, body=b"")
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("Busy", feed_server.url("/busy.xml"))], clock())
    waits = waits_between_polls(store, fetcher, clock, "Busy", 5)
    assert waits == [timedelta(hours=h) for h in (1, 2, 4, 4, 4)]  # 503s would go on to 8 h, 16 h, 24 h
    feed_server.serve("/busy.xml", FEEDS / "toss.rss.xml")
    poll(store, fetcher, clock)
    assert feed_row(store, "Busy").error_count == 0


def test_a_body_that_is_not_a_feed_keeps_no_validators_so_it_is_never_mistaken_for_unchanged(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    url = feed_server.serve("/page.html", FEEDS / "not_a_feed.html", content_type="text/html")
    clock = Clock(NOW)
    store.sync_feeds([FeedConfig("Page", url)], clock())
    for _ in range(2):
        [outcome] = poll(store, fetcher, clock).outcomes
        assert outcome.status == "error" and (outcome.message or "").startswith("not a feed")
    assert feed_row(store, "Page").error_count == 2
    assert [h.headers.get("if-none-match") for h in feed_server.hits_for("/page.html")] == [None, None]


def test_many_changed_bodies_are_parsed_by_worker_processes_with_the_same_results(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    body = (FEEDS / "toss.rss.xml").read_text(encoding="utf-8")
    configs = [FeedConfig(f"Copy {i}", feed_server.serve(f"/c{i}.xml", body.replace("toss.tech/article/", f"toss.tech/{i}/")))
               for i in range(PARSE_HERE_FIRST + 6)]
    configs.append(FeedConfig("Page", feed_server.serve("/page.html", FEEDS / "not_a_feed.html", content_type="text/html")))
    clock = Clock(NOW)
    store.sync_feeds(configs, clock())
    feeds = store.feeds_due(clock())
    summary = run_pass(store, fetcher, feeds, clock=clock, schedule=Schedule(parse_workers=2))
    # this process runs the server's thread, so the workers come from a forkserver, not a fork of it
    assert (summary.parse_workers, summary.parse_workers_forked) == (2, False)
    by_name = {o.feed: o for o in summary.outcomes}
    assert all(by_name[c.name].status == "ok" and by_name[c.name].new_posts == 4 for c in configs[:-1])
    assert by_name["Page"].status == "error" and (by_name["Page"].message or "").startswith("not a feed")
    assert len(post_rows(store)) == 4 * (PARSE_HERE_FIRST + 6)
    again = run_pass(store, fetcher, store.feeds_due(clock(), everything=True), clock=clock,
                     schedule=Schedule(parse_workers=2))
    assert sorted(o.status for o in again.outcomes) == ["error"] + ["not_modified"] * (PARSE_HERE_FIRST + 6)
    assert again.parse_workers == 0


def test_a_pass_with_few_changed_bodies_parses_them_in_process(
        store: Store, fetcher: Fetcher, feed_server: FeedServer) -> None:
    """Many feeds, of which three changed since the last pass (the shape of a cron pass): no worker process is
    started for three bodies, and their new posts are stored."""
    body = (FEEDS / "toss.rss.xml").read_text(encoding="utf-8")
    configs = [FeedConfig(f"Copy {i}", feed_server.serve(f"/c{i}.xml", body.replace("toss.tech/article/", f"toss.tech/{i}/")))
               for i in range(FORK_WORKERS_FROM + 8)]
    clock = Clock(NOW)
    store.sync_feeds(configs, clock())
    first = run_pass(store, fetcher, store.feeds_due(clock()), clock=clock, schedule=Schedule(parse_workers=2))
    assert first.count("ok") == len(configs) and first.parse_workers == 0
    for i in range(3):
        feed_server.serve(f"/c{i}.xml", body.replace("toss.tech/article/", f"toss.tech/{i}/new-"))
    again = run_pass(store, fetcher, store.feeds_due(clock(), everything=True), clock=clock,
                     schedule=Schedule(parse_workers=2))
    assert (again.count("ok"), again.count("not_modified"), again.new_posts) == (3, len(configs) - 3, 12)
    assert (again.parse_workers, again.parse_workers_forked) == (0, False)


# A cold pass in a process of one thread, as `aggregator fetch` runs it: argv is the database file, the number of
# feeds and the server's base URL; it prints the pass's worker count, whether they were forked, and the statuses.
COLD_PASS = """
import sys
from datetime import datetime, timezone
from aggregator.models import FeedConfig
from aggregator.poll.fetch import Fetcher, FetchSettings
from aggregator.poll.run import Schedule, run_pass
from aggregator.store import Store

db, n, base = sys.argv[1], int(sys.argv[2]), sys.argv[3]
now = datetime(2023, 4, 2, 12, 0, tzinfo=timezone.utc)
store = Store(f"sqlite:///{db}")
store.migrate()
store.sync_feeds([FeedConfig(f"Copy {i}", f"{base}/c{i}.xml") for i in range(n)], now)
with store.polling_lock(), Fetcher(FetchSettings(timeout=5, connect_timeout=2)) as fetcher:
    summary = run_pass(store, fetcher, store.feeds_due(now), clock=lambda: now, schedule=Schedule(parse_workers=2))
print(summary.parse_workers, summary.parse_workers_forked, summary.count("ok"), summary.new_posts)
"""


def test_a_cold_pass_forks_its_parse_workers_before_fetching(tmp_path: Path, feed_server: FeedServer) -> None:
    """A pass that will parse many bodies it has never seen, in a process running no other thread, forks its
    workers from itself (they share its imported pages) and stores what they parse."""
    body = (FEEDS / "toss.rss.xml").read_text(encoding="utf-8")
    n = FORK_WORKERS_FROM + 4
    for i in range(n):
        feed_server.serve(f"/c{i}.xml", body.replace("toss.tech/article/", f"toss.tech/{i}/"))
    ran = subprocess.run([sys.executable, "-c", COLD_PASS, str(tmp_path / "cold.db"), str(n), feed_server.base],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["2", "True", str(n), str(4 * n)]


# Takes the polling lock, forks a child (and waits until it runs) that outlives the lock's release, and tries the lock again from a second
# handle on the database: argv is the database file. Prints whether the second try got the lock.
LOCK_AFTER_FORK = """
import os, sys, time
from aggregator.store import Store

first, second = Store(f"sqlite:///{sys.argv[1]}"), Store(f"sqlite:///{sys.argv[1]}")
ready, running = os.pipe()
with first.polling_lock():
    child = os.fork()
    if child == 0:
        os.write(running, b"!")  # the child runs: what it does just after the fork is done
        time.sleep(3)
        os._exit(0)
    os.read(ready, 1)
try:
    with second.polling_lock():
        print("taken")
except Exception as exc:
    print("busy", exc)
os.kill(child, 9)
os.waitpid(child, 0)
"""


def test_a_child_forked_during_a_pass_does_not_hold_its_polling_lock(tmp_path: Path) -> None:
    """Parse workers forked from a pass inherit its files; the lock's file is closed in them, so the lock ends
    when the pass lets it go, not when the last worker exits."""
    ran = subprocess.run([sys.executable, "-c", LOCK_AFTER_FORK, str(tmp_path / "lock.db")],
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["taken"]
