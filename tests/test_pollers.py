"""Several pollers on one PostgreSQL database: real `aggregator` processes sharing feeds served on loopback addresses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import text

from aggregator.store import Store
from aggregator.store.feeds import Check

pytest.importorskip("psycopg")



@dataclass
class Request:
    """One request the farm answered (or held)."""

    path: str
    host: str
    at: float  # time.monotonic() when it arrived
    held: bool = False  # it arrived while the farm held requests


class Farm:
    """Feeds served from several loopback addresses: feed i at /fI.xml on host i % len(hosts), its entries
    growing on demand (the first of each is one story every feed links to), ETag/304, `latency` seconds per answer; counts requests, and the most in flight at
    once per host. While `hold` is set, requests wait (up to 30 s) before they are answered."""

    def __init__(self, hosts: list[str], feeds: int, latency: float) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.entries = {f"/f{i}.xml": 2 for i in range(feeds)}
        self.requests: list[Request] = []
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.hold = threading.Event()
        self.released = threading.Event()
        farm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                host = self.server.server_address[0]
                request = Request(self.path, host, time.monotonic(), farm.hold.is_set())
                with farm.lock:
                    farm.requests.append(request)
                    farm.in_flight[host] += 1
                    farm.peak[host] = max(farm.peak[host], farm.in_flight[host])
                try:
                    if request.held:
                        farm.released.wait(30)
                    time.sleep(farm.latency)
                    self._answer()
                finally:
                    with farm.lock:
                        farm.in_flight[host] -= 1

            def _answer(self) -> None:
                with farm.lock:
                    count = farm.entries.get(self.path)
                if count is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = f'"{count}"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                body = farm.body(self.path, count)
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.servers = []
        for host in hosts:
            server = ThreadingHTTPServer((host, 0), Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)

    def url(self, i: int) -> str:
        host, port = self.servers[i % len(self.servers)].server_address[:2]
        return f"http://{host}:{port}/f{i}.xml"

    @staticmethod
    def body(path: str, count: int) -> bytes:
        link = lambda n: f"https://blog.example/{path[1:-4]}/{n}" if n else "https://news.example/story"  # noqa: E731
        items = "".join(f"<item><title>Post {n} of {path}</title><link>{link(n)}</link>"
                        f"<guid>{path}#{n}</guid><pubDate>Sun, 02 Apr 2023 11:{n % 60:02d}:00 GMT</pubDate></item>"
                        for n in range(count))
        return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{path}</title>{items}</channel></rss>'.encode()

    def grow(self) -> None:
        """Every feed gains one entry."""
        with self.lock:
            for path in self.entries:
                self.entries[path] += 1

    def published(self) -> int:
        """How many links the feeds have published (the shared story once)."""
        with self.lock:
            return 1 + sum(count - 1 for count in self.entries.values())

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(r.path for r in self.requests)

    def close(self) -> None:
        self.released.set()
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def farm() -> Iterator[Callable[..., Farm]]:
    started: list[Farm] = []

    def start(hosts: list[str], feeds: int, latency: float) -> Farm:
        started.append(Farm(hosts, feeds, latency))
        return started[-1]

    try:
        yield start
    finally:
        for f in started:
            f.close()


def write_config(home: Path, farm: Farm, feeds: int, **defaults: object) -> Path:
    lines = ["defaults:", *(f"  {k}: {v}" for k, v in defaults.items()), "feeds:"]
    lines += [f"  - name: feed{i}\n    url: {farm.url(i)}" for i in range(feeds)]
    (home / "feeds.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return home / "feeds.yaml"


def aggregator(home: Path, db: str, *args: str) -> subprocess.Popen[str]:
    """`aggregator ARGS` as a process of its own, as cron or systemd starts it."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    argv = [sys.executable, "-m", "aggregator", "--config", str(home / "feeds.yaml"), "--db", db, *args]
    return subprocess.Popen(argv, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen[str]], timeout: float = 60) -> list[tuple[int, str, str]]:
    outputs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]


def rows(db: str, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with Store(db) as store, store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 40) -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def test_three_fetches_share_300_feeds_each_fetched_once(farm: Callable[..., Farm], pg_db: str, home: Path) -> None:
    """Three `fetch` processes started at once on a new database: each of 300 feeds on three loopback hosts is
    requested exactly once, each entry stored once (one story that every feed links to included), every
    process exits 0, and each fetched some of the feeds."""
    f = farm(["127.0.0.1", "127.0.0.2", "127.0.0.3"], 300, latency=0.2)
    write_config(home, f, 300, per_host=16, concurrency=8)  # alone, a poller would take 7.5 s: each gets a share
    procs = [aggregator(home, pg_db, "-q", "fetch", "--worker-id", f"p{n}") for n in range(3)]
    results = finish(procs)
    assert [code for code, _, _ in results] == [0, 0, 0], results
    counts = f.counts()
    assert len(counts) == 300 and set(counts.values()) == {1}
    assert rows(pg_db, "select count(*), count(distinct url) from posts") == [(f.published(),) * 2] == [(301, 301)]
    by = dict(rows(pg_db, "select last_fetched_by, count(*) from feeds group by 1"))
    assert set(by) == {"p0", "p1", "p2"} and sum(by.values()) == 300, by
    assert rows(pg_db, "select count(*) from feeds where claimed_by is not null") == [(0,)]
    assert sum(int(out.split()[0]) for _, out, _ in results) == 300  # "N feeds: ..." from each
    code, table, _ = finish([aggregator(home, pg_db, "feeds")])[0]
    assert code == 0 and "by" in table.splitlines()[0] and all(f"p{n}" in table for n in range(3))


def test_the_per_host_limit_holds_across_pollers(farm: Callable[..., Farm], pg_db: str, home: Path) -> None:
    """60 feeds on one host with per_host 2, three pollers: the host never has more than 2 requests in flight
    from all of them together, and every feed is still fetched exactly once."""
    f = farm(["127.0.0.1"], 60, latency=0.05)
    write_config(home, f, 60, per_host=2)
    assert aggregator(home, pg_db, "-q", "init").wait(60) == 0
    procs = [aggregator(home, pg_db, "-q", "fetch", "--worker-id", f"p{n}") for n in range(3)]
    assert [code for code, _, _ in finish(procs)] == [0, 0, 0]
    assert f.peak["127.0.0.1"] <= 2
    assert set(f.counts().values()) == {1} and len(f.counts()) == 60


def test_daemons_poll_each_feed_once_per_interval_and_take_over_a_killed_ones_feeds(
        farm: Callable[..., Farm], pg_db: str, home: Path) -> None:
    """Three `run` daemons over 30 feeds that keep gaining entries. No feed is requested twice within its
    interval; after kill -9 of the daemon holding the feeds whose requests hang, another daemon fetches them
    once the lease runs out; every published entry ends up stored exactly once; the others stop with 0."""
    interval = 4
    f = farm(["127.0.0.1", "127.0.0.2", "127.0.0.3"], 30, latency=0.05)
    write_config(home, f, 30, interval=interval, tick=1, lease=5, timeout=3, per_host=2)
    assert aggregator(home, pg_db, "-q", "init").wait(60) == 0
    daemons = {f"d{n}": aggregator(home, pg_db, "run", "--worker-id", f"d{n}") for n in range(3)}
    try:
        wait_for(lambda: rows(pg_db, "select count(*) from feeds where last_checked_at is null") == [(0,)],
                 "the first pass")
        f.hold.set()  # the next requests hang until released: the daemons are caught mid-pass
        f.grow()
        wait_for(lambda: any(r.held for r in f.requests), "a held request")
        holding = rows(pg_db, "select claimed_by from feeds where claimed_by is not null")
        victim = Counter(by for (by,) in holding).most_common(1)[0][0]
        killed_at = datetime.now(timezone.utc)
        daemons[victim].send_signal(signal.SIGKILL)
        daemons[victim].wait(10)
        taken = {name for (name,) in rows(pg_db, f"select name from feeds where claimed_by = '{victim}'")}
        assert taken
        f.hold.clear()
        f.released.set()
        names = ", ".join(f"'{name}'" for name in taken)
        wait_for(lambda: all(by != victim and at.replace(tzinfo=timezone.utc) > killed_at for by, at in rows(
            pg_db, f"select last_fetched_by, last_checked_at from feeds where name in ({names})")),
                 "the killed daemon's feeds fetched by another")
        f.grow()
        wait_for(lambda: rows(pg_db, "select count(*) from posts") == [(f.published(),)], "every entry stored")
    finally:
        for name, proc in daemons.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
    survivors = [proc for name, proc in daemons.items() if name != victim]
    assert [code for code, _, _ in finish(survivors)] == [0, 0]
    assert rows(pg_db, "select count(*), count(distinct url) from posts") == [(f.published(),) * 2]
    answered: dict[str, list[float]] = {}
    for r in f.requests:  # the killed daemon's feeds are fetched again after its lease: the lease is their gap
        if not r.held and r.path[2:-4] not in {name[4:] for name in taken}:
            answered.setdefault(r.path, []).append(r.at)
    assert len(answered) >= 30 - len(taken) and all(len(times) >= 2 for times in answered.values())
    for path, times in answered.items():
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(gap > interval * 0.9 for gap in gaps), (path, gaps)


def test_once_per_period_work_is_skipped_while_another_poller_holds_it(pg_db: str, home: Path) -> None:
    """While one process holds the draft lock, `run --once` elsewhere polls but leaves the drafts alone and
    says so; when the lock is free it writes the draft."""
    with Store(pg_db) as store:
        store.migrate()
        with store.once_at_a_time("drafts") as mine:
            assert mine
            with store.once_at_a_time("drafts") as again:
                assert not again  # another session of the same process is another poller too
            busy = aggregator(home, pg_db, "run", "--once", "--worker-id", "second")
            code, out, err = finish([busy])[0]
    assert code == 0 and "drafts not refreshed: another poller is refreshing them now" in out
    assert not (home / "drafts").exists()
    code, out, err = finish([aggregator(home, pg_db, "run", "--once")])[0]
    assert code == 0 and "not refreshed" not in out and (home / "drafts").exists()


def test_a_poller_past_its_lease_never_records_over_the_poller_that_took_the_feed_over(pg_db: str) -> None:
    """A poller that stalled past its lease and resumed stores the posts it found, but leaves the feed's row,
    and the claim on it, to the poller that claimed the feed meanwhile."""
    from datetime import timedelta

    from aggregator.models import FeedConfig, FetchResult, ParsedPost

    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    later = start + timedelta(minutes=5)  # the first lease (one minute) has run out
    post = ParsedPost(key="k1", url="https://a.example/1", title="t", summary="s", published=start, content_hash="h")
    with Store(pg_db, worker="slow") as slow, Store(pg_db, worker="fast") as fast:
        slow.migrate()
        slow.sync_feeds([FeedConfig("a", "https://a.example/feed")], start)
        [feed], _ = slow.claim_feeds(worker="slow", now=start, until=start + timedelta(minutes=1), started=start,
                                     room=1, per_host=6)
        [taken], _ = fast.claim_feeds(worker="fast", now=later, until=later + timedelta(minutes=1), started=later,
                                      room=1, per_host=6)
        assert taken.id == feed.id
        late = FetchResult(feed.url, 200, body=b"", etag='"slow"')
        assert slow.record_fetch(feed, late, [post], now=later, next_check=later, error=None) == 1
        state = rows(pg_db, "select claimed_by, last_fetched_by, etag from feeds")
        assert state == [("fast", None, None)]  # still the second poller's, untouched
        slow.record_checks([Check(feed, FetchResult(feed.url, 304), later, later)], now=later)
        assert rows(pg_db, "select claimed_by, last_fetched_by from feeds") == [("fast", None)]
        fast.record_fetch(taken, FetchResult(taken.url, 200, body=b"", etag='"fast"'), [post], now=later,
                          next_check=later, error=None)
        assert rows(pg_db, "select claimed_by, last_fetched_by, etag from feeds") == [(None, "fast", '"fast"')]
        assert rows(pg_db, "select count(*) from posts") == [(1,)]


def test_three_fetch_all_started_during_each_other_request_each_feed_once(
        farm: Callable[..., Farm], pg_db: str, home: Path) -> None:
    """`fetch --all` by one poller, then two more while it is still running (after it has fetched a share):
    every one of 300 feeds is requested exactly once over the three passes, none of the feeds the first had
    already fetched is claimed again by the later two, every process exits 0 and each fetched some."""
    f = farm(["127.0.0.1", "127.0.0.2", "127.0.0.3"], 300, latency=0.2)
    write_config(home, f, 300, per_host=16, concurrency=8)  # alone, a poller would take 7.5 s
    assert aggregator(home, pg_db, "-q", "init").wait(60) == 0
    first = aggregator(home, pg_db, "-q", "fetch", "--all", "--worker-id", "p0")
    wait_for(lambda: rows(pg_db, "select count(*) from feeds where last_checked_at is not null")[0][0] >= 30,
             "the first poller's first 30 feeds")
    f.hold.set()  # from now on requests wait: the first pass is still running when the others start
    early = {name for (name,) in rows(pg_db, "select name from feeds where last_checked_at is not null")}
    later = [aggregator(home, pg_db, "-q", "fetch", "--all", "--worker-id", f"p{n}") for n in (1, 2)]
    wait_for(lambda: rows(pg_db, "select count(distinct claimed_by) from feeds where claimed_by in ('p1', 'p2')")
             == [(2,)], "both later pollers holding claims")
    assert first.poll() is None  # the first pass is still running
    f.hold.clear()
    f.released.set()
    results = finish([first, *later])
    assert [code for code, _, _ in results] == [0, 0, 0], results
    counts = f.counts()
    assert len(counts) == 300 and max(counts.values()) == 1, counts.most_common(3)
    assert 30 <= len(early) < 300
    names = ", ".join(f"'{name}'" for name in early)
    assert rows(pg_db, f"select distinct last_fetched_by from feeds where name in ({names})") == [("p0",)]
    by = dict(rows(pg_db, "select last_fetched_by, count(*) from feeds group by 1"))
    assert set(by) == {"p0", "p1", "p2"} and sum(by.values()) == 300, by


def test_all_skips_what_a_running_pass_fetched_unless_due_again_and_not_after_it_ends(pg_db: str) -> None:
    """Pass A checks feeds a and b; pass B, started while A runs, is offered neither with everything=True
    until a is due again (then a, never b); pass C, started while B runs, is offered b (checked before B
    began) but not a; once A, B and C have ended, a new pass is offered both."""
    from datetime import timedelta

    from aggregator.models import FeedConfig, FetchResult

    t0 = datetime(2026, 12, 1, 9, tzinfo=timezone.utc)
    minute = timedelta(minutes=1)

    def claim(store: Store, started: datetime, now: datetime, round_started: datetime) -> list[str]:
        feeds, _ = store.claim_feeds(worker=store.worker or "", now=now, until=now + minute, started=started,
                                     room=10, per_host=6, everything=True, round_started=round_started)
        store.release_claims(store.worker or "", [feed.id for feed in feeds])
        return sorted(feed.name for feed in feeds)

    with Store(pg_db, worker="A") as a, Store(pg_db, worker="B") as b, Store(pg_db, worker="C") as c:
        a.migrate()
        a.sync_feeds([FeedConfig("a", "https://a.example/feed"), FeedConfig("b", "https://b.example/feed")], t0)
        round_a, leave_a = a.join_passes(t0)
        assert round_a == t0
        feeds, _ = a.claim_feeds(worker="A", now=t0, until=t0 + minute, started=t0, room=10, per_host=6,
                                 everything=True, round_started=round_a)
        due = {"a": t0 + 10 * minute, "b": t0 + timedelta(days=1)}
        a.record_checks([Check(feed, FetchResult(feed.url, 304), due[feed.name], t0 + minute) for feed in feeds],
                        now=t0 + minute)
        t2 = t0 + 2 * minute
        round_b, leave_b = b.join_passes(t2)
        assert round_b == t0
        assert claim(b, t2, t2, round_b) == []  # both fetched by A in its pass, neither due
        t3 = t0 + 11 * minute
        assert claim(b, t2, t3, round_b) == ["a"]  # due again: fetched all the same
        b.record_checks([Check(feed, FetchResult(feed.url, 304), t3 + 10 * minute, t3) for feed in
                         b.claim_feeds(worker="B", now=t3, until=t3 + minute, started=t2, room=10, per_host=6,
                                       everything=True, round_started=round_b)[0]], now=t3)
        leave_a()
        t4 = t0 + 12 * minute
        round_c, leave_c = c.join_passes(t4)
        assert round_c == t2  # A has ended: B, still running, began the round
        assert claim(c, t4, t4, round_c) == ["b"]
        leave_b()
        leave_c()
        t5 = t0 + 13 * minute
        round_d, leave_d = a.join_passes(t5)
        assert round_d == t5 and claim(a, t5, t5, round_d) == ["a", "b"]
        leave_d()
