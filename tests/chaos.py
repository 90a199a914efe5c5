"""A misbehaving, growing feed server on 127.0.0.1 (seeded 200/304/500/429, hangs, trickles), and aggregator runs against it."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape

# How often each answer is given (weights). "ok" is a 200 with the feed, or an honest 304 when the request's
# If-None-Match is the current ETag; "not_modified" is a 304 whatever the feed holds (a lying cache);
# "hang" accepts and never answers; "trickle" sends headers then the body a byte at a time; "cut" closes
# half-way through the body; "slow_headers" trickles the status line and headers themselves.
CHAOS = {"ok": 50, "not_modified": 10, "error": 12, "throttle": 10, "hang": 5, "trickle": 5, "cut": 5, "slow_headers": 3}
HEALTHY = {"ok": 1}
TRICKLE_PAUSE = 0.2  # seconds between the bytes of a trickled answer
MARKER = "AGGREGATOR_CHAOS_RUN"  # environment variable that tags the processes a test started
# feeds.yaml `defaults:` of the soak (tests/test_soak.py, benchmarks/soak.py): poll every second, give up on an
# answer after 2 s, back off at most 4 s; 32 fetches at once, all of them on this one host.
SOAK_DEFAULTS = {"interval": 1, "tick": 1, "timeout": 2, "connect_timeout": 2, "concurrency": 32, "per_host": 16,
                 "max_backoff": 4}


@dataclass(frozen=True)
class Entry:
    guid: str
    link: str  # as the feed prints it (a cross-posted copy carries tracking parameters)
    url: str  # the canonical link aggregator should store it under
    title: str
    published: datetime


class ChaosServer:
    """Serves /feeds/<i>.xml, i in range(feeds), answering each request as a seeded draw from `answers`."""

    def __init__(self, feeds: int, *, seed: int = 0, answers: dict[str, float] | None = None, delay: float = 0.0,
                 retry_after: tuple[int, int] = (1, 4), stall: float = 30.0) -> None:
        self.entries: list[list[Entry]] = [[] for _ in range(feeds)]
        self.answers = dict(answers or CHAOS)  # may be replaced while serving, e.g. by HEALTHY
        self.delay = delay  # seconds before every answer
        self.retry_after = retry_after  # bounds of the Retry-After a 429 asks for
        self.stall = stall  # the longest a hanging or trickling answer lasts
        self.served: Counter[str] = Counter()  # answers given, by kind
        self._hits: Counter[int] = Counter()  # requests, by feed index
        self.closing = threading.Event()
        self._seed = seed
        self._rng = random.Random(seed)
        self._uid = 0
        self._lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.chaos = self
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="chaos-server", daemon=True)

    def __enter__(self) -> ChaosServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()  # hanging and trickling answers give up
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def feed_url(self, i: int) -> str:
        return f"{self.base}/feeds/{i}.xml"

    def publish(self, count: int, *, cross_posts: float = 0.1) -> None:
        """Add `count` entries to random feeds; a share of them also appear in a second feed, same post."""
        with self._lock:
            for _ in range(count):
                self._uid += 1
                uid = self._uid
                url = f"{self.base}/posts/{uid}"
                entry = Entry(f"chaos:{uid}", url, url, f"Post {uid}", datetime.now(timezone.utc))
                first = self._rng.randrange(len(self.entries))
                self.entries[first].append(entry)
                if len(self.entries) > 1 and self._rng.random() < cross_posts:
                    second = (first + self._rng.randrange(1, len(self.entries))) % len(self.entries)
                    copy = Entry(entry.guid, f"{url}?utm_source=feed{second}&utm_medium=rss", url, entry.title,
                                 entry.published)
                    self.entries[second].append(copy)

    def published(self) -> dict[str, str]:
        """Canonical URL -> title of every post any feed ever showed."""
        with self._lock:
            return {e.url: e.title for feed in self.entries for e in feed}

    def draw(self, path: str) -> tuple[int | None, str, random.Random]:
        """The feed a path names, and this request's answer (seeded by path and request number)."""
        name = path.removeprefix("/feeds/").removesuffix(".xml")
        i = int(name) if path.startswith("/feeds/") and name.isdigit() else -1
        if not 0 <= i < len(self.entries):
            return None, "missing", random.Random(0)
        with self._lock:
            self._hits[i] += 1
            rng = random.Random(f"{self._seed}/{i}/{self._hits[i]}")
            kinds, weights = zip(*self.answers.items())
            return i, rng.choices(kinds, weights)[0], rng

    def requests(self) -> Counter[int]:
        """How many requests each feed (by index) has had so far."""
        with self._lock:
            return Counter(self._hits)

    def count(self, kind: str) -> None:
        with self._lock:
            self.served[kind] += 1

    def body(self, i: int) -> tuple[bytes, str]:
        """Feed i as RSS 2.0, and its ETag."""
        with self._lock:
            entries = list(self.entries[i])
        items = "".join(
            f"<item><title>{escape(e.title)}</title><link>{escape(e.link)}</link>"
            f"<guid isPermaLink=\"false\">{escape(e.guid)}</guid><pubDate>{format_datetime(e.published, usegmt=True)}"
            f"</pubDate><description>Body of {escape(e.title)} in feed {i}.</description></item>"
            for e in entries)
        xml = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Chaos feed {i}</title>'
               f"<link>{self.base}/</link><description>feed {i}</description>{items}</channel></rss>")
        data = xml.encode("utf-8")
        return data, '"' + hashlib.sha1(data).hexdigest()[:16] + '"'


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    chaos: ChaosServer

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exception(), OSError):  # a client hanging up on a misbehaving answer is expected
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        chaos = self.server.chaos
        i, kind, rng = chaos.draw(self.path)
        if chaos.delay:
            chaos.closing.wait(chaos.delay)
        body, etag = chaos.body(i) if i is not None else (b"no such feed", "")
        if kind == "ok" and self.headers.get("If-None-Match") == etag:
            kind = "unchanged"
        chaos.count(kind)
        full = {"Content-Type": "application/rss+xml; charset=utf-8", "ETag": etag, "Content-Length": str(len(body))}
        if kind == "missing":
            self._write(self._head(404, {"Content-Length": str(len(body))}) + body)
        elif kind == "ok":
            self._write(self._head(200, full) + body)
        elif kind == "unchanged":
            self._write(self._head(304, {"ETag": etag}))
        elif kind == "not_modified":
            self._write(self._head(304, {}))
        elif kind == "error":
            self._write(self._head(500, {"Content-Length": "14"}) + b"internal error")
        elif kind == "throttle":
            self._write(self._head(429, {"Retry-After": str(rng.randint(*chaos.retry_after)), "Content-Length": "0"}))
        else:  # the misbehaving answers: the connection is not reused after them
            self.close_connection = True
            if kind == "hang":
                chaos.closing.wait(chaos.stall)
            elif kind == "cut":
                self._write(self._head(200, full) + body[: len(body) // 2])
            elif kind == "trickle" and self._write(self._head(200, full)):
                self._trickle(body, chaos)
            elif kind == "slow_headers" and self._trickle(self._head(200, full), chaos):
                self._write(body)

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {self.responses[status][0]}", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            return True
        except OSError:  # the client gave up
            self.close_connection = True
            return False

    def _trickle(self, data: bytes, chaos: ChaosServer) -> bool:
        """Send `data` a byte at a time; False when the client left or the stall limit passed first."""
        for n in range(len(data)):
            if n * TRICKLE_PAUSE > chaos.stall or not self._write(data[n : n + 1]) or chaos.closing.wait(TRICKLE_PAUSE):
                return False
        return True


# -- the processes that poll it ------------------------------------------------------------------------


def write_config(directory: Path, server: ChaosServer, **defaults: object) -> Path:
    """A feeds.yaml in `directory` listing every feed of `server`, with the given `defaults:`."""
    lines = ["defaults:", *(f"  {key}: {value}" for key, value in defaults.items()), "feeds:"]
    for i in range(len(server.entries)):
        lines += [f"  - name: Chaos {i}", f"    url: {server.feed_url(i)}", f"    source: chaos{i}"]
    path = directory / "feeds.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def aggregator(config: Path, db: Path, *args: str, log: IO[str] | None = None, marker: str = "") -> subprocess.Popen[str]:
    """`aggregator --config config --db sqlite:///db ARGS` as a child process; its stderr goes to `log`.
    It and every process it starts carry `marker` in their environment (see `processes_with`)."""
    command = [sys.executable, "-m", "aggregator", "--config", str(config), "--db", f"sqlite:///{db}", *args]
    env = {**os.environ, MARKER: marker}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log or subprocess.PIPE, text=True, env=env)


def processes_with(marker: str) -> list[int]:
    """The live processes (of this user) whose environment carries `marker`: an aggregator process
    started with it, and its helpers (parser workers, their fork server), even once orphaned."""
    tag = f"{MARKER}={marker}".encode() + b"\0"
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            state = (environ.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z" and tag in environ.read_bytes():  # a zombie has exited; its parent just has not reaped it
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or another user's
            pass
    return found


def rss_kib(pid: int) -> int:
    """The resident set size of a live process, in KiB (0 once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def query(db: Path, sql: str) -> list[tuple]:
    """The rows of a query on the SQLite file, opened read-only beside the process writing it."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def wait_until(condition: Callable[[], object], timeout: float, step: float = 0.2) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; whether it held."""
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= give_up:
            return False
        time.sleep(step)
    return True


def scalar(db: Path, sql: str) -> int:
    """The number a query such as `select count(*) ...` gives; 0 while the database is not there or not ready."""
    try:
        rows = query(db, sql)
    except sqlite3.Error:  # no file yet, or no tables yet
        return 0
    return rows[0][0] if rows and rows[0][0] is not None else 0
