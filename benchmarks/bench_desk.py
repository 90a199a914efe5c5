"""Time the review desk on a month of thousands of candidates: the page, each action, and adding a post by URL.

    python benchmarks/bench_desk.py [--candidates 2000] [--labels 2000] [--pages 5] [--actions 200] [--adds 30]

The candidates and the model's training labels come from bench_classify's seeded generator, stored in a
real SQLite file; the desk runs as `aggregator review` in its own process (uvicorn) and is asked over
HTTP on 127.0.0.1, so the figures cover the whole path: the month's query, scoring, placing, the
template, and for an action the checks, the transaction and the log entry. An add is the form's two
requests (the page fetched once from a server on 127.0.0.1 and read, then stored as a pick); `aggregator
add` is also timed as a whole command. Nothing outside this repository is read.
"""

from __future__ import annotations

import argparse
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_classify import NOW, make_labels, timed  # noqa: E402
from bench_draft import fill  # noqa: E402

from aggregator.learn import classify  # noqa: E402
from aggregator.learn.model_file import save  # noqa: E402
from aggregator.store import Store  # noqa: E402

EDITION = "2024-06"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_desk(home: Path, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "aggregator", "--config", str(home / "feeds.yaml"), "review", "--month", EDITION,
               "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None and " is at " in proc.stdout.readline()
    return proc


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Post {n}</title>
<meta property="og:title" content="Serving large language models cheaply, part {n}">
<meta property="og:description" content="How a team cut the cost of inference with batching and quantisation.">
<meta property="og:site_name" content="An Engineering Blog"></head>
<body><nav><p>Home and archive and about and everything else a site puts on top</p></nav>
<article><p>{body}</p></article></body></html>"""


def page_server() -> ThreadingHTTPServer:
    """A server on 127.0.0.1 answering /post/N with a 20 KB OpenGraph page."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            body = PAGE.format(n=self.path.rsplit("/", 1)[-1], body="Inference costs money. " * 900).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} ms (p90 {statistics.quantiles(values, n=10)[-1] * 1000:.1f} ms)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument("--labels", type=int, default=2000, help="labels the model is trained on")
    parser.add_argument("--pages", type=int, default=5, help="page loads timed")
    parser.add_argument("--actions", type=int, default=200, help="actions timed (accept, reject, move, undo in turn)")
    parser.add_argument("--adds", type=int, default=30, help="posts added by URL in the desk")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "feeds.yaml").write_text("feeds: []\nfetch:\n  allow_private: [127.0.0.1]\n", encoding="utf-8")
        with Store(f"sqlite:///{home / 'aggregator.db'}") as store:
            store.migrate()
            fill(store, args.candidates)
        model, _ = timed(lambda: classify.train(make_labels(args.labels, seed=3), now=NOW))
        save(model, home / "models")
        proc = start_desk(home, free_port_number := free_port())
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{free_port_number}", timeout=60) as client:
                pages = []
                for _ in range(args.pages):
                    started = time.perf_counter()
                    page = client.get(f"/edition/{EDITION}")
                    pages.append(time.perf_counter() - started)
                    assert page.status_code == 200
                rows = page.text.count('class="row ')
                csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
                posts = [int(p.split('"', 1)[0]) for p in page.text.split('data-post="')[1:]]
                section = page.text.split('<option value="', 3)[-1].split('"', 1)[0].replace("&gt;", ">").replace("&amp;", "&")
                headers = {"X-CSRF-Token": csrf}
                actions, revisions, last = [], dict.fromkeys(posts, 0), {}
                for i in range(args.actions):
                    post = posts[(i // 4) % len(posts)]
                    kind = ("accept", "move", "reject", "undo")[i % 4]
                    path, body = (f"/edition/{EDITION}/undo", {"action": last.get(post)}) if kind == "undo" else \
                        (f"/edition/{EDITION}/act", {"post": post, "action": kind, "revision": revisions[post], "section": section})
                    started = time.perf_counter()
                    response = client.post(path, json=body, headers=headers)
                    actions.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                    revisions[post], last[post] = response.json()["revision"], response.json()["action"]
                server = page_server()
                base = f"http://127.0.0.1:{server.server_address[1]}"
                previews, saves, adds = [], [], []
                for i in range(args.adds):
                    started = time.perf_counter()
                    answer = client.post(f"/edition/{EDITION}/page", json={"url": f"{base}/post/{i}"}, headers=headers)
                    fetched = time.perf_counter()
                    assert answer.status_code == 200 and answer.json()["error"] is None, answer.text
                    form = answer.json()
                    saved = client.post(f"/edition/{EDITION}/add", headers=headers, json={
                        "url": form["url"], "title": form["title"], "summary": form["summary"], "section": form["section"] or section})
                    assert saved.status_code == 200, saved.text
                    previews.append(fetched - started)
                    saves.append(time.perf_counter() - fetched)
                    adds.append(time.perf_counter() - started)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        commands = []
        for i in range(3):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "aggregator", "--config", str(home / "feeds.yaml"), "-q", "add",
                            f"{base}/post/cli-{i}", "--month", EDITION], check=True, stdout=subprocess.DEVNULL)
            commands.append(time.perf_counter() - started)
        server.shutdown()
    print(f"desk page, {rows:,} candidates, {len(page.content) / 1e6:.1f} MB: median {median_ms(pages)} of {args.pages}")
    print(f"desk action (accept, move, reject, undo): median {median_ms(actions)} of {args.actions}")
    print(f"desk add by URL (fetch + read, then store as a pick): median {median_ms(adds)} of {args.adds}")
    print(f"  the fetch and read: median {median_ms(previews)}; the pick stored: median {median_ms(saves)}")
    print(f"aggregator add URL, the whole command (start, model load, fetch, store): median {median_ms(commands)} of 3")


if __name__ == "__main__":
    main()
