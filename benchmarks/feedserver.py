"""The benchmark's feed server: serves feedgen's feeds from many loopback addresses with ETag/Last-Modified/304
and injected latency, in its own process, driven by one-word commands on stdin (answers: JSON lines on stdout).

    python benchmarks/feedserver.py --feeds 500 [--seed 1] [--latency 0.05] [--per-address N]

Commands: `stats` (request counts and server CPU since the last `stats`), `mutate` (5% of the feeds gain one
entry), `reset` (back to the first version of every feed), `published` (every canonical link published since
the last reset), `quit`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import resource
import selectors
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from feedgen import Feed, generate, mutate, published_links, render


@dataclass(frozen=True)
class Document:
    """One feed as served: the bytes (plain and gzipped) and their validators."""

    body: bytes
    gzipped: bytes
    content_type: str
    etag: str
    modified: datetime

    @property
    def last_modified(self) -> str:
        return format_datetime(self.modified, usegmt=True)


def document(feed: Feed) -> Document:
    body = render(feed)
    return Document(body, gzip.compress(body, compresslevel=6, mtime=0), feed.content_type,
                    '"' + hashlib.sha1(body).hexdigest()[:20] + '"', feed.updated.replace(microsecond=0))


class Corpus:
    """The feeds currently published, and request counters; shared by every handler thread."""

    def __init__(self, n: int, seed: int, per_address: int | None, latency: float) -> None:
        self.seed, self.latency = seed, latency
        self.original = generate(n, seed, per_address)
        self.first_docs = {(f.address, f.path): document(f) for f in self.original}
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.cpu_mark = self._cpu()
        self.reset()

    def reset(self) -> None:
        self.feeds, self.round = list(self.original), 0
        self.docs = dict(self.first_docs)  # replaced whole, never edited: handlers read it without a lock
        self.links = published_links(self.feeds)

    def mutate(self) -> int:
        self.round += 1
        new = mutate(self.feeds, self.round, self.seed)
        changed = [f for old, f in zip(self.feeds, new) if f is not old]
        docs = dict(self.docs)
        docs.update({(f.address, f.path): document(f) for f in changed})
        self.feeds, self.docs = new, docs
        self.links |= published_links(changed)
        return len(changed)

    def count(self, status: int, size: int) -> None:
        with self.lock:
            self.counts["requests"] += 1
            self.counts[str(status) if status in (200, 304) else "other"] += 1
            self.counts["bytes"] += size

    @staticmethod
    def _cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def stats(self) -> dict[str, float]:
        """Counts and server CPU seconds since the previous call."""
        with self.lock:
            counts, self.counts = self.counts, Counter()
        cpu, self.cpu_mark = self._cpu() - self.cpu_mark, self._cpu()
        return {"requests": counts["requests"], "200": counts["200"], "304": counts["304"],
                "other": counts["other"], "bytes": counts["bytes"], "cpu": round(cpu, 3)}


def _fresh(headers: object, doc: Document) -> bool:
    """RFC 9110 conditional GET: If-None-Match wins; else If-Modified-Since against Last-Modified."""
    inm = headers.get("If-None-Match")  # type: ignore[attr-defined]
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or doc.etag in tags
    ims = headers.get("If-Modified-Since")  # type: ignore[attr-defined]
    if not ims:
        return False
    try:
        return parsedate_to_datetime(ims) >= doc.modified
    except (TypeError, ValueError):
        return False


def make_handler(corpus: Corpus) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers
        disable_nagle_algorithm = True  # TCP_NODELAY, as real servers: no 40 ms delayed-ACK stall between writes
        server_version = "feedserver/1.0"

        def do_GET(self) -> None:
            time.sleep(corpus.latency)
            doc = corpus.docs.get((self.server.server_address[0], self.path.split("?", 1)[0]))
            if doc is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                corpus.count(404, 0)
                self.end_headers()
                return
            validators = (("ETag", doc.etag), ("Last-Modified", doc.last_modified), ("Vary", "Accept-Encoding"))
            if _fresh(self.headers, doc):
                self.send_response(304)
                for name, value in validators:
                    self.send_header(name, value)
                corpus.count(304, 0)  # counted before the client can see the answer
                self.end_headers()
                return
            gz = "gzip" in self.headers.get("Accept-Encoding", "")
            body = doc.gzipped if gz else doc.body
            self.send_response(200)
            self.send_header("Content-Type", doc.content_type)
            self.send_header("Content-Length", str(len(body)))
            if gz:
                self.send_header("Content-Encoding", "gzip")
            for name, value in validators:
                self.send_header(name, value)
            corpus.count(200, len(body))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client hanging up mid-answer is not the server's problem


def _accept_all(servers: list[_Server]) -> None:
    """One thread waits on every listening socket (a thread per address would wake thousands of times a
    second); each accepted connection is served on a thread of its own, as ThreadingHTTPServer does."""
    with selectors.DefaultSelector() as selector:
        for server in servers:
            selector.register(server, selectors.EVENT_READ)
        while True:
            for key, _events in selector.select():
                key.fileobj._handle_request_noblock()  # type: ignore[union-attr]


def serve(corpus: Corpus) -> tuple[int, list[_Server]]:
    """One threading HTTP server per loopback address, all on one port; returns the port and the servers."""
    addresses = sorted({f.address for f in corpus.original})
    for _attempt in range(20):
        servers: list[_Server] = []
        try:
            first = _Server((addresses[0], 0), make_handler(corpus))
            servers.append(first)
            port = first.server_address[1]
            servers += [_Server((a, port), make_handler(corpus)) for a in addresses[1:]]
        except OSError:  # the port is taken on some address: try another one
            for s in servers:
                s.server_close()
            continue
        threading.Thread(target=_accept_all, args=(servers,), daemon=True).start()
        return port, servers
    raise SystemExit("feedserver: cannot bind one port on every loopback address")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds added to every response")
    ap.add_argument("--per-address", type=int, default=None,
                    help="feeds served per loopback address (default: spread as in a real reading list)")
    args = ap.parse_args()
    corpus = Corpus(args.feeds, args.seed, args.per_address, args.latency)
    port, servers = serve(corpus)

    def reply(obj: object) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"port": port, "addresses": len(servers),
           "feeds": [[f.name, f"http://{f.address}:{port}{f.path}"] for f in corpus.original]})
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            reply(corpus.stats())
        elif command == "mutate":
            reply({"changed": corpus.mutate()})
        elif command == "reset":
            corpus.reset()
            reply({"round": 0})
        elif command == "published":
            reply({"links": sorted(corpus.links), "entries": sum(len(f.entries) for f in corpus.feeds)})
        elif command == "quit":
            break
        else:
            reply({"error": f"unknown command {command!r}"})


if __name__ == "__main__":
    main()
