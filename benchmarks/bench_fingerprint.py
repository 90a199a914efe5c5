"""The parse and write stages of a 5%-changed pass, with and without the entries' fingerprints, in one process.

    .venv/bin/python benchmarks/bench_fingerprint.py [--feeds 500] [--runs 5] [--fraction 0.05]

feedgen.py's feeds are parsed and stored into a SQLite file (cold: every entry read; once as before, then again keeping the
fingerprints, for the cost of taking them); then
`--fraction` of the feeds gain one entry (feedgen.mutate, as bench_update's mutated phase) and their new bodies
are parsed and stored again, on a copy of that file per run: once as before (every entry read and handed to the
write), once against the fingerprints stored. Printed: entries read in full, posts handed to the write, rows
written (posts inserted or updated), SQL statements, and the CPU time of parse plus write (median of --runs).
No HTTP: fetching is the same either way.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from feedgen import generate, mutate, render
from sqlalchemy import event

from aggregator.models import FeedConfig, FeedState, FetchResult
from aggregator.poll import fingerprints
from aggregator.poll.parse import parse_feed
from aggregator.store import Store
from aggregator.store.feeds import Fetched

NOW = datetime(2026, 12, 5, tzinfo=timezone.utc)
BATCH = 20  # feeds per transaction, as a pass writes them


@dataclass
class Stage:
    bodies: int = 0
    read: int = 0  # entries read in full
    handed: int = 0  # posts handed to the write
    rows: int = 0  # posts inserted or updated
    statements: int = 0
    cpu: float = 0.0


def count_writes(store: Store, stage: Stage) -> None:
    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        stage.statements += 1
        words = statement.lstrip().split(None, 3)
        if words[:3] == ["INSERT", "INTO", "posts"] or words[:2] == ["UPDATE", "posts"]:
            stage.rows += max(cursor.rowcount, 0)

    event.listen(store.engine, "after_cursor_execute", after)


def run_stage(url: str, bodies: dict[str, tuple[bytes, str, str]], *, fingerprinted: bool | None, now: datetime) -> Stage:
    """Parse and store `bodies` (feed name -> body, content type, URL). fingerprinted: True reads against the
    stored fingerprints, False reads as before, None (cold) reads everything and keeps fingerprints."""
    stage = Stage(bodies=len(bodies))
    with Store(url) as store:
        feeds = {feed.name: feed for feed in store.feeds_due(now, everything=True)}
        count_writes(store, stage)
        batch: list[Fetched] = []
        start = time.process_time()
        for name, (body, content_type, feed_url) in bodies.items():
            feed: FeedState = feeds[name]
            known = None if fingerprinted is False else (
                fingerprints.load(store.entry_fingerprints(feed.id)) if fingerprinted else {})
            parsed = parse_feed(body, url=feed_url, content_type=content_type, known=known)
            stage.read += parsed.read
            stage.handed += len(parsed.posts)
            result = FetchResult(url=feed_url, status=200, body=body, content_type=content_type)
            batch.append(Fetched(feed, result, parsed.posts, now + timedelta(hours=1), None, parsed.title,
                                 hashlib.sha256(body).hexdigest(), now, parsed.fingerprints))
            if len(batch) >= BATCH:
                store.record_fetches(batch, now=now)
                batch.clear()
        if batch:
            store.record_fetches(batch, now=now)
        stage.cpu = time.process_time() - start
    return stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    feeds = generate(args.feeds, args.seed)
    changed = mutate(feeds, 1, args.seed, args.fraction)

    def bodies(of: list[Any], only: set[str] | None = None) -> dict[str, tuple[bytes, str, str]]:
        return {f.name: (render(f), f.content_type, f"http://{f.address}{f.path}") for f in of
                if only is None or f.name in only}

    mutated = {after.name for before, after in zip(feeds, changed) if before != after}
    with tempfile.TemporaryDirectory() as tmp:
        for fingerprinted, label in ((False, "as before"), (None, "fingerprints kept")):
            cold_db = Path(tmp) / "cold.db"
            cold_db.unlink(missing_ok=True)
            with Store(f"sqlite:///{cold_db}") as store:
                store.migrate()
                store.sync_feeds([FeedConfig(f.name, f"http://{f.address}{f.path}") for f in feeds], NOW)
            cold = run_stage(f"sqlite:///{cold_db}", bodies(feeds), fingerprinted=fingerprinted, now=NOW)
            print(f"cold, {label}: {cold.bodies} bodies, {cold.read} entries read, {cold.rows} rows written, "
                  f"{cold.statements} statements, {cold.cpu:.2f} s CPU")
        new_bodies = bodies(changed, mutated)
        later = NOW + timedelta(hours=1)
        for fingerprinted, label in ((False, "as before (every entry)"), (True, "against fingerprints")):
            stages = []
            for run in range(args.runs):
                db = Path(tmp) / f"run{run}.db"
                shutil.copyfile(cold_db, db)
                stages.append(run_stage(f"sqlite:///{db}", new_bodies, fingerprinted=fingerprinted, now=later))
                db.unlink()
            s = stages[0]
            cpu = statistics.median(stage.cpu for stage in stages)
            print(f"{args.fraction:.0%} changed, {label}: {s.bodies} bodies, {s.read} entries read, "
                  f"{s.handed} posts handed to the write, {s.rows} rows written, {s.statements} statements, "
                  f"{cpu * 1000:.0f} ms CPU (median of {args.runs}: "
                  f"{', '.join(f'{stage.cpu * 1000:.0f}' for stage in stages)})")


if __name__ == "__main__":
    main()
