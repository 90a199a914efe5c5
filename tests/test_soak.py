"""`aggregator run` against a few hundred misbehaving feeds: every post stored once, memory flat, a clean stop."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

from chaos import (
    HEALTHY,
    SOAK_DEFAULTS,
    ChaosServer,
    aggregator,
    processes_with,
    query,
    rss_kib,
    scalar,
    wait_until,
    write_config,
)

FEEDS = 200
CHAOS_SECONDS = 15  # the suite's share; benchmarks/soak.py runs the same for minutes
CHECKED = "select count(*) from feeds where last_checked_at is not null"


def stored(db: Path) -> dict[str, str]:
    return dict(query(db, "select url, title from posts"))


def test_the_daemon_under_chaos_stores_every_post_once_keeps_its_memory_and_stops_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "aggregator.db"
    marker = uuid.uuid4().hex
    with ChaosServer(FEEDS, seed=2024) as server, (tmp_path / "daemon.log").open("w+") as log:
        server.publish(2 * FEEDS)
        config = write_config(tmp_path, server, **SOAK_DEFAULTS)
        daemon = aggregator(config, db, "run", log=log, marker=marker)
        try:
            assert wait_until(lambda: scalar(db, CHECKED) >= FEEDS // 2, 60), "the daemon never polled"
            rss_start = rss_kib(daemon.pid)
            chaos_ends = time.monotonic() + CHAOS_SECONDS
            while time.monotonic() < chaos_ends:  # new posts keep appearing while the server misbehaves
                server.publish(8)
                time.sleep(0.5)
            server.answers = HEALTHY
            published = server.published()
            healed = time.monotonic()
            caught_up = wait_until(lambda: len(stored(db)) >= len(published), 60, step=0.5)
            print(f"\nthe daemon caught up {time.monotonic() - healed:.1f} s after the server healed" if caught_up
                  else "\nthe daemon did not catch up within 60 s of the server healing")
            rss_end = rss_kib(daemon.pid)
            daemon.send_signal(signal.SIGTERM)
            exit_code = daemon.wait(timeout=60)
            helpers_gone = wait_until(lambda: not processes_with(marker), 20)
        finally:
            for pid in processes_with(marker):  # only on failure: the daemon, or helpers it left behind
                os.kill(pid, signal.SIGKILL)
            daemon.wait(timeout=30)
        log.seek(0)
        daemon_log = log.read()
        final = aggregator(config, db, "fetch", "--all")  # the server is healthy: this pass must find nothing new
        out, err = final.communicate(timeout=120)
        served = dict(server.served)

    posts = stored(db)
    print(f"{FEEDS} feeds, {len(published)} posts published, {len(posts)} stored; answers: {served}")
    print(f"daemon RSS {rss_start} KiB after its first pass, {rss_end} KiB at the end")
    print(f"final fetch --all: {out.strip()}")
    assert exit_code == 0, daemon_log[-3000:]
    assert "Traceback" not in daemon_log and "job poll failed" not in daemon_log, daemon_log[-3000:]
    assert "stopped" in daemon_log
    assert helpers_gone, "parser processes outlived the daemon"
    assert caught_up, f"{len(published) - len(posts)} posts missing once the server healed"
    assert final.returncode == 0, err
    assert f"{FEEDS} feeds: " in out and " 0 failed; 0 new posts" in out
    assert posts == published  # every post, under its canonical link, with its title
    assert query(db, "select count(*), count(distinct url) from posts") == [(len(published), len(published))]
    assert query(db, "select feed_id, key from posts group by feed_id, key having count(*) > 1") == []
    assert query(db, "select count(*) from feeds where error_count = 0 and not gone") == [(FEEDS,)]
    assert rss_end < 3 * rss_start
