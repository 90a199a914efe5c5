"""Time the review desk on a month of thousands of candidates: the page, and each action.

    python benchmarks/bench_desk.py [--candidates 2000] [--labels 2000] [--pages 5] [--actions 200]

The candidates and the model's training labels come from bench_classify's seeded generator, stored in a
real SQLite file; the desk runs as `aggregator review` in its own process (uvicorn) and is asked over
HTTP on 127.0.0.1, so the figures cover the whole path: the month's query, scoring, placing, the
template, and for an action the checks, the transaction and the log entry. Nothing outside this
repository is read.
"""

from __future__ import annotations

import argparse
import os
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


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} ms (p90 {statistics.quantiles(values, n=10)[-1] * 1000:.1f} ms)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument("--labels", type=int, default=2000, help="labels the model is trained on")
    parser.add_argument("--pages", type=int, default=5, help="page loads timed")
    parser.add_argument("--actions", type=int, default=200, help="actions timed (accept, reject, move, undo in turn)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "feeds.yaml").write_text("feeds: []\n", encoding="utf-8")
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
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"desk page, {rows:,} candidates, {len(page.content) / 1e6:.1f} MB: median {median_ms(pages)} of {args.pages}")
    print(f"desk action (accept, move, reject, undo): median {median_ms(actions)} of {args.actions}")


if __name__ == "__main__":
    main()
