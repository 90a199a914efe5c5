"""HTTP fetching against a real server on 127.0.0.1: conditional GET, redirects, limits, errors."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import FEEDS, NOW, FeedServer, RawServer, Route, free_port, http_date

from aggregator.poll.fetch import Fetcher, FetchSettings, parse_retry_after
from aggregator.models import FeedConfig, FeedState, FetchResult

UTC = timezone.utc
TOSS = (FEEDS / "toss.rss.xml").read_bytes()


def feed(url: str, **kwargs: object) -> FeedState:
    return FeedState(id=1, name="t", url=url, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(FetchSettings(timeout=2, connect_timeout=1)) as f:
        yield f


def redirect(status: int, location: str) -> Route:
    return Route(status=status, headers={"Location": location}, body=b"")


def get(fetcher: Fetcher, url: str, **kwargs: object) -> FetchResult:
    return fetcher.fetch(feed(url, **kwargs), NOW)


# --- 200 and conditional GET -------------------------------------------------------------------------


def test_200_stores_body_and_validators(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.serve("/rss.xml", TOSS)
    route = feed_server.routes["/rss.xml"]
    result = get(fetcher, url)
    assert result.error is None
    assert result.status == 200
    assert result.url == url
    assert result.body == TOSS
    assert result.content_type == "application/rss+xml; charset=utf-8"
    assert result.etag == route.etag
    assert result.last_modified == "Sun, 02 Apr 2023 11:14:39 GMT"
    assert result.permanent_url is None and result.retry_after is None and not result.gone


def test_second_fetch_is_conditional_and_gets_304(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.serve("/rss.xml", TOSS)
    first = get(fetcher, url)
    second = get(fetcher, url, etag=first.etag, last_modified=first.last_modified)
    [hit1, hit2] = feed_server.hits_for("/rss.xml")
    assert "if-none-match" not in hit1.headers and "if-modified-since" not in hit1.headers
    assert hit2.headers["if-none-match"] == first.etag
    assert hit2.headers["if-modified-since"] == first.last_modified
    assert second.status == 304
    assert second.body is None
    assert second.error is None
    assert second.etag == first.etag


def test_304_with_a_new_etag_returns_it(feed_server: FeedServer, fetcher: Fetcher) -> None:
    # the feed only had a Last-Modified so far; the server now answers 304 and hands out an ETag too
    url = feed_server.serve("/rss.xml", TOSS, headers={"ETag": '"v2-new"'})
    result = get(fetcher, url, last_modified="Sun, 02 Apr 2023 11:14:39 GMT")
    assert feed_server.hits_for("/rss.xml")[0].headers["if-modified-since"] == "Sun, 02 Apr 2023 11:14:39 GMT"
    assert result.status == 304 and result.body is None
    assert result.etag == '"v2-new"'


def test_changed_feed_answers_200_to_stale_validators(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.serve("/rss.xml", TOSS)
    result = get(fetcher, url, etag='"stale"')
    assert result.status == 200 and result.body == TOSS


def test_user_agent_and_accept(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.serve("/rss.xml", TOSS)
    get(fetcher, url)
    [hit] = feed_server.hits_for("/rss.xml")
    assert hit.headers["user-agent"].startswith("aggregator/")
    assert "application/rss+xml" in hit.headers["accept"]
    assert "gzip" in hit.headers["accept-encoding"]


def test_gzip_body_is_decoded(feed_server: FeedServer, fetcher: Fetcher) -> None:
    url = feed_server.serve("/rss.xml", gzip.compress(TOSS), headers={"Content-Encoding": "gzip"})
    assert get(fetcher, url).body == TOSS


# --- redirects ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 308])
def test_permanent_redirect_chain_sets_permanent_url(feed_server: FeedServer, fetcher: Fetcher, status: int) -> None:
    feed_server.routes["/old"] = redirect(status, "/older")
    feed_server.routes["/older"] = redirect(status, feed_server.url("/new"))  # absolute Location too
    new = feed_server.serve("/new", TOSS)
    result = get(fetcher, feed_server.url("/old"))
    assert result.error is None and result.status == 200 and result.body == TOSS
    assert result.url == new
    assert result.permanent_url == new


@pytest.mark.parametrize("status", [302, 303, 307])
def test_temporary_redirect_does_not_move_the_feed(feed_server: FeedServer, fetcher: Fetcher, status: int) -> None:
    feed_server.routes["/old"] = redirect(status, "/new")
    new = feed_server.serve("/new", TOSS)
    result = get(fetcher, feed_server.url("/old"))
    assert result.status == 200 and result.body == TOSS
    assert result.url == new
    assert result.permanent_url is None


def test_301_then_302_is_not_permanent(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.routes["/a"] = redirect(301, "/b")
    feed_server.routes["/b"] = redirect(302, "/c")
    feed_server.serve("/c", TOSS)
    result = get(fetcher, feed_server.url("/a"))
    assert result.body == TOSS and result.url == feed_server.url("/c")
    assert result.permanent_url is None


def test_302_then_301_is_not_permanent(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.routes["/a"] = redirect(302, "/b")
    feed_server.routes["/b"] = redirect(301, "/c")
    feed_server.serve("/c", TOSS)
    assert get(fetcher, feed_server.url("/a")).permanent_url is None


def test_validators_are_sent_after_a_redirect(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.routes["/old"] = redirect(301, "/new")
    new = feed_server.serve("/new", TOSS)
    etag = feed_server.routes["/new"].etag
    result = get(fetcher, feed_server.url("/old"), etag=etag)
    assert feed_server.hits_for("/new")[0].headers["if-none-match"] == etag
    assert result.status == 304 and result.permanent_url == new


@pytest.mark.parametrize("paths", [["/a"], ["/a", "/b"], ["/a", "/b", "/c"]])
def test_redirect_loop_is_an_error(feed_server: FeedServer, fetcher: Fetcher, paths: list[str]) -> None:
    for here, there in zip(paths, paths[1:] + paths[:1]):
        feed_server.routes[here] = redirect(301, there)
    result = get(fetcher, feed_server.url("/a"))
    assert result.error is not None and "loop" in result.error
    assert result.body is None and result.permanent_url is None
    assert len(feed_server.hits) == len(paths)


def test_too_many_redirects(feed_server: FeedServer) -> None:
    for i in range(4):
        feed_server.routes[f"/r{i}"] = redirect(302, f"/r{i + 1}")
    feed_server.serve("/r4", TOSS)
    with Fetcher(FetchSettings(timeout=2, connect_timeout=1, max_redirects=3)) as short:
        result = get(short, feed_server.url("/r0"))  # 4 hops
    assert result.error is not None and "more than 3 redirects" in result.error
    assert result.body is None
    assert not feed_server.hits_for("/r4")
    with Fetcher(FetchSettings(timeout=2, connect_timeout=1, max_redirects=4)) as enough:
        assert get(enough, feed_server.url("/r0")).body == TOSS  # exactly max_redirects hops is fine


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/feed.xml", "file:///etc/passwd", "FILE:///etc/passwd"])
def test_redirect_to_other_scheme_is_refused(feed_server: FeedServer, fetcher: Fetcher, location: str) -> None:
    feed_server.routes["/feed"] = redirect(301, location)
    result = get(fetcher, feed_server.url("/feed"))
    assert result.error is not None and "refused" in result.error
    assert result.body is None and result.permanent_url is None
    assert [h.path for h in feed_server.hits] == ["/feed"]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/feed.xml", "file:///etc/passwd", "gopher://127.0.0.1/"])
def test_a_feed_url_that_is_not_http_is_refused(fetcher: Fetcher, url: str) -> None:
    result = get(fetcher, url)
    assert result.error == f"not an http(s) URL, refused: {url}" and result.status is None and result.body is None


@pytest.mark.parametrize("location", ["javascript:alert(1)", "mailto:x@127.0.0.1"])
def test_redirect_to_unusable_location_is_an_error_not_an_exception(
        feed_server: FeedServer, fetcher: Fetcher, location: str) -> None:
    feed_server.routes["/feed"] = redirect(302, location)
    result = get(fetcher, feed_server.url("/feed"))  # httpx itself rejects these Locations; fetch must not raise
    assert result.error is not None
    assert result.body is None and result.permanent_url is None
    assert [h.path for h in feed_server.hits] == ["/feed"]


def test_redirect_status_without_location_is_an_error(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.routes["/feed"] = Route(status=301, body=b"moved somewhere")
    result = get(fetcher, feed_server.url("/feed"))
    assert result.status == 301 and result.permanent_url is None and result.body is None
    assert result.error == "HTTP 301 redirect without a Location header"
    assert [h.path for h in feed_server.hits] == ["/feed"]


# --- HTTP errors -------------------------------------------------------------------------------------


def test_404(fetcher: Fetcher, feed_server: FeedServer) -> None:
    result = get(fetcher, feed_server.url("/missing"))
    assert result.status == 404
    assert result.error is not None and result.error.startswith("HTTP 404")
    assert result.body is None and not result.gone


def test_410_is_gone(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.routes["/feed"] = Route(status=410, body=b"gone")
    result = get(fetcher, feed_server.url("/feed"))
    assert result.status == 410 and result.gone
    assert result.error is not None and "410" in result.error
    assert result.body is None


def test_500_is_an_error(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.routes["/feed"] = Route(status=500, body=b"oops", content_type="text/plain")
    result = get(fetcher, feed_server.url("/feed"))
    assert result.status == 500
    assert result.error is not None and result.error.startswith("HTTP 500")
    assert result.body is None and not result.gone and result.retry_after is None


def test_429_retry_after_seconds(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.routes["/feed"] = Route(status=429, headers={"Retry-After": "120"}, body=b"slow down")
    result = get(fetcher, feed_server.url("/feed"))
    assert result.status == 429
    assert result.error is not None and result.error.startswith("HTTP 429")
    assert result.retry_after == NOW + timedelta(seconds=120)


def test_503_retry_after_http_date(feed_server: FeedServer, fetcher: Fetcher) -> None:
    when = datetime(2023, 4, 2, 15, 30, tzinfo=UTC)
    feed_server.routes["/feed"] = Route(status=503, headers={"Retry-After": http_date(when)}, body=b"")
    result = get(fetcher, feed_server.url("/feed"))
    assert result.status == 503 and result.error is not None
    assert result.retry_after == when


def test_503_with_unreadable_retry_after(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.routes["/feed"] = Route(status=503, headers={"Retry-After": "soon"}, body=b"")
    result = get(fetcher, feed_server.url("/feed"))
    assert result.error is not None and result.retry_after is None


# --- size limits -------------------------------------------------------------------------------------


def test_body_over_max_bytes(feed_server: FeedServer) -> None:
    url = feed_server.serve("/big.xml", b"x" * 200_000)
    feed_server.httpd.handle_error = lambda *args: None  # type: ignore[method-assign]  # the client hangs up early
    with Fetcher(FetchSettings(timeout=2, connect_timeout=1, max_bytes=50_000)) as small:
        result = get(small, url)
    assert result.error is not None and "50000" in result.error and "limit" in result.error
    assert result.body is None


def test_gzip_bomb_over_max_bytes(feed_server: FeedServer) -> None:
    bomb = gzip.compress(b"\0" * 2_000_000)
    assert len(bomb) < 100_000
    url = feed_server.serve("/bomb.xml", bomb, headers={"Content-Encoding": "gzip"})
    with Fetcher(FetchSettings(timeout=2, connect_timeout=1, max_bytes=100_000)) as small:
        result = get(small, url)
    assert result.error is not None and "100000" in result.error and "limit" in result.error
    assert result.body is None


def test_body_at_the_limit_is_kept(feed_server: FeedServer) -> None:
    url = feed_server.serve("/exact.xml", b"y" * 50_000)
    with Fetcher(FetchSettings(timeout=2, connect_timeout=1, max_bytes=50_000)) as small:
        assert get(small, url).body == b"y" * 50_000


class HalfSent:
    """A server on 127.0.0.1 that answers once: headers and the first `first` bytes of `body`, then waits for
    `go_on` before sending the rest in 16 KB slices, a slice every 10 ms, until done or the client hangs up.
    `sent` counts the body bytes it handed to the socket."""

    def __init__(self, body: bytes, first: int) -> None:
        self.body, self.first = body, first
        self.part_sent, self.go_on, self.done = threading.Event(), threading.Event(), threading.Event()
        self.sent = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/feed.xml"

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(self.body) + self.body[:self.first])
                self.sent = self.first
                self.part_sent.set()
                self.go_on.wait(30)
                while self.sent < len(self.body):
                    conn.sendall(self.body[self.sent:self.sent + 16_384])
                    self.sent = min(len(self.body), self.sent + 16_384)
                    time.sleep(0.01)
            except OSError:
                pass  # the client hung up
            finally:
                self.done.set()

    def close(self) -> None:
        self.go_on.set()
        self.listener.close()


def test_stop_event_aborts_the_body(tmp_path: Path) -> None:
    """The stop is set once the first 64 KB of a 4 MB feed have been sent: the pass's fetch ends part-way
    (the server could not send the rest), the feed is not recorded and none of its posts is stored; and a
    fetcher stopped the same way returns "stopped" without a body."""
    from aggregator.poll.run import run_pass
    from aggregator.store import Store

    items = "".join(f"<item><title>Post {i}</title><link>https://a.example/{i}</link><guid>g{i}</guid>"
                    f"<description>{'x' * 200}</description></item>" for i in range(15_000))
    body = f"<?xml version='1.0'?><rss version='2.0'><channel><title>big</title>{items}</channel></rss>".encode()
    assert 3_500_000 < len(body) < 5_000_000  # under the default size cap: only the stop ends it

    def stop_when_part_sent(server: HalfSent, stop: threading.Event) -> threading.Thread:
        def watch() -> None:
            if server.part_sent.wait(30):
                stop.set()
                server.go_on.set()

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        return thread

    server = HalfSent(body, 65_536)
    stop = threading.Event()
    try:
        with Store(f"sqlite:///{tmp_path / 'a.db'}") as store, Fetcher(FetchSettings(timeout=60), stop=stop) as fetcher:
            store.migrate()
            store.sync_feeds([FeedConfig("big", server.url)], NOW)
            watcher = stop_when_part_sent(server, stop)
            summary = run_pass(store, fetcher, store.feeds_due(NOW), clock=lambda: NOW, stop=stop)
            watcher.join(30)
            assert server.done.wait(30)
            assert summary.outcomes == ()
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("select last_checked_at, etag from feeds").fetchall() == [(None, None)]
                assert conn.exec_driver_sql("select count(*) from posts").scalar() == 0
    finally:
        server.close()
    assert 65_536 <= server.sent < len(body)  # the body had begun, and was cut off part-way

    server = HalfSent(body, 65_536)
    stop = threading.Event()
    try:
        with Fetcher(FetchSettings(timeout=60), stop=stop) as stopped:
            watcher = stop_when_part_sent(server, stop)
            result = get(stopped, server.url)
            watcher.join(30)
            assert server.done.wait(30)
    finally:
        server.close()
    assert result.error == "stopped" and result.body is None
    assert 65_536 <= server.sent < len(body)


# --- transport errors --------------------------------------------------------------------------------


def test_connection_refused(fetcher: Fetcher) -> None:
    result = get(fetcher, f"http://127.0.0.1:{free_port()}/feed.xml")
    assert result.error == "connection refused"
    assert result.status is None and result.body is None


def test_unknown_host_name_is_a_dns_error(fetcher: Fetcher) -> None:
    result = get(fetcher, "http://feeds.example.invalid/rss")
    assert result.error == "cannot resolve host name (DNS)"
    assert result.status is None and result.body is None


def test_tls_handshake_failure_is_a_tls_error(feed_server: FeedServer, fetcher: Fetcher) -> None:
    plain = feed_server.serve("/feed.xml", TOSS)
    result = get(fetcher, plain.replace("http://", "https://"))  # the server speaks plain HTTP, not TLS
    assert result.error is not None and result.error.startswith("TLS error:")
    assert result.status is None and result.body is None


def test_server_that_never_answers_times_out(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server("silent")
    with Fetcher(FetchSettings(timeout=1, connect_timeout=1)) as quick:
        result = get(quick, server.url)
    assert result.error == "took longer than 1 s in total (cut off)"
    assert result.status is None and result.body is None


@pytest.mark.parametrize("mode", ["trickle_headers", "trickle_body"])
def test_a_server_trickling_one_byte_at_a_time_is_cut_off_at_the_total_timeout(
        raw_server: Callable[..., RawServer], mode: str) -> None:
    server = raw_server(mode, pace=0.1)  # each byte arrives well within the per-read timeout
    with Fetcher(FetchSettings(timeout=1.5, connect_timeout=1)) as quick:
        result = get(quick, server.url)
    assert result.error == "took longer than 1.5 s in total (cut off)"
    assert result.body is None


def test_the_deadline_belongs_to_one_fetch_not_the_thread(feed_server: FeedServer,
                                                          raw_server: Callable[..., RawServer]) -> None:
    slow = raw_server("trickle_body", pace=0.1)
    good = feed_server.serve("/feed.xml", TOSS)
    with Fetcher(FetchSettings(timeout=1, connect_timeout=1)) as quick:
        assert get(quick, slow.url).error is not None
        result = get(quick, good)  # same thread, next fetch: a fresh deadline
    assert result.error is None and result.body == TOSS


def test_fetch_from_several_threads(feed_server: FeedServer, fetcher: Fetcher) -> None:
    urls = [feed_server.serve(f"/f{i}.xml", TOSS + str(i).encode()) for i in range(6)]
    results: dict[str, FetchResult] = {}

    def work(url: str) -> None:
        results[url] = get(fetcher, url)

    threads = [threading.Thread(target=work, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(results) == sorted(urls)
    assert all(results[u].body == TOSS + str(i).encode() for i, u in enumerate(urls))


# --- parse_retry_after -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", NOW + timedelta(seconds=120)),
        ("0", NOW),
        (" 3600 ", NOW + timedelta(hours=1)),
        ("Sun, 02 Apr 2023 15:30:00 GMT", datetime(2023, 4, 2, 15, 30, tzinfo=UTC)),
        ("Sun, 02 Apr 2023 17:30:00 +0200", datetime(2023, 4, 2, 15, 30, tzinfo=UTC)),
        ("Sunday, 02-Apr-23 15:30:00 GMT", datetime(2023, 4, 2, 15, 30, tzinfo=UTC)),  # obsolete RFC 850 form
        ("Sun Apr  2 15:30:00 2023", datetime(2023, 4, 2, 15, 30, tzinfo=UTC)),  # asctime: no zone, read as UTC
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: datetime | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_is_utc() -> None:
    when = parse_retry_after("Sun, 02 Apr 2023 17:30:00 +0200", NOW)
    assert when is not None and when.utcoffset() == timedelta(0)
