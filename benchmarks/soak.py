"""Soak (issue 4): `aggregator run` for minutes against tests/chaos.py's misbehaving feed server on 127.0.0.1.

    .venv/bin/python benchmarks/soak.py [--feeds 300] [--minutes 3] [--seed 1] [--rate 16]

The same run as tests/test_soak.py, longer. The server answers each request with a seeded draw of 200, lying
304, 500, 429 (Retry-After 1-4 s), silence, a trickled body, trickled headers or a cut body, and `--rate` new
posts a second appear in random feeds (a tenth of them cross-posted to a second feed with tracking parameters).
The daemon polls every feed every second (2 s total timeout, backoff capped at 4 s). After `--minutes` the
server heals; the run waits for the daemon to store everything, stops it with SIGTERM, runs one
`aggregator fetch --all`, and checks the database: every published post stored exactly once. Every
`--every` seconds it prints progress and resident memory: the daemon's, and all its processes' (parser workers
and their fork server included).
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

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

CHECKED = "select count(*) from feeds where last_checked_at is not null"


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def soak(work: Path, feeds: int, minutes: float, seed: int, rate: float, every: float) -> bool:
    db = work / "aggregator.db"
    marker = uuid.uuid4().hex
    with ChaosServer(feeds, seed=seed) as server, (work / "daemon.log").open("w+") as log:
        server.publish(2 * feeds)
        config = write_config(work, server, **SOAK_DEFAULTS)
        started = time.monotonic()
        daemon = aggregator(config, db, "run", log=log, marker=marker)
        try:
            if not wait_until(lambda: scalar(db, CHECKED) >= feeds // 2, 120):
                print("the daemon never polled; see", work / "daemon.log")
                return False
            rss = [rss_kib(daemon.pid)]
            print(f"{feeds} feeds; first pass under way after {time.monotonic() - started:.1f} s; "
                  f"daemon RSS {mib(rss[0])}")
            print(f"{'minute':>6} {'published':>9} {'stored':>7} {'requests':>8} {'daemon RSS':>10} "
                  f"{'all RSS':>10} {'processes':>9}")
            chaos_started = time.monotonic()
            next_report = chaos_started + every
            while (now := time.monotonic()) < chaos_started + minutes * 60:
                server.publish(round(rate / 2))
                if now >= next_report:
                    next_report += every
                    helpers = processes_with(marker)
                    rss.append(rss_kib(daemon.pid))
                    print(f"{(now - chaos_started) / 60:6.1f} {len(server.published()):9} "
                          f"{scalar(db, 'select count(*) from posts'):7} {server.requests().total():8} "
                          f"{mib(rss[-1]):>10} {mib(sum(map(rss_kib, helpers))):>10} {len(helpers):9}")
                time.sleep(0.5)
            server.answers = HEALTHY
            published = server.published()
            healed = time.monotonic()
            caught_up = wait_until(lambda: scalar(db, "select count(*) from posts") >= len(published), 120, step=0.5)
            print(f"server healed; the daemon stored everything {time.monotonic() - healed:.1f} s later" if caught_up
                  else "server healed; the daemon had not stored everything 120 s later")
            rss.append(rss_kib(daemon.pid))
            stopping = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            exit_code = daemon.wait(timeout=120)
            print(f"SIGTERM: exit status {exit_code} after {time.monotonic() - stopping:.1f} s")
            helpers_gone = wait_until(lambda: not processes_with(marker), 20)
        finally:
            for pid in processes_with(marker):
                os.kill(pid, signal.SIGKILL)
            daemon.wait(timeout=30)
        final = aggregator(config, db, "fetch", "--all")
        out, err = final.communicate(timeout=300)
        served = server.served
        log.seek(0)
        daemon_log = log.read()

    posts = dict(query(db, "select url, title from posts"))
    count, distinct = query(db, "select count(*), count(distinct url) from posts")[0]
    doubled_keys = scalar(db, "select count(*) from (select 1 from posts group by feed_id, key having count(*) > 1)")
    print(f"final fetch --all: {out.strip() or err.strip()}")
    print("answers: " + ", ".join(f"{kind} {n}" for kind, n in served.most_common()))
    print(f"posts published {len(published)}, stored {count} ({distinct} distinct links), "
          f"missing {len(published.keys() - posts.keys())}, unexpected {len(posts.keys() - published.keys())}")
    print(f"daemon RSS: after the first pass {mib(rss[0])}, peak {mib(max(rss))}, at the end {mib(rss[-1])}")
    checks = [
        ("the daemon stored every post once the server healed", caught_up),
        ("SIGTERM: exit status 0", exit_code == 0),
        ("no traceback in the daemon's log", "Traceback" not in daemon_log and "job poll failed" not in daemon_log),
        ("no parser process outlived the daemon", helpers_gone),
        ("the final pass found nothing new and nothing failing", final.returncode == 0 and " 0 failed; 0 new posts" in out),
        ("every published post stored, with its title", posts == published),
        ("no post stored twice (by link, by feed and key)", count == distinct == len(published) and doubled_keys == 0),
    ]
    for name, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return all(ok for _, ok in checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=3.0, help="of misbehaving server (then it heals)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=16.0, help="new posts per second")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between progress lines")
    parser.add_argument("--work-dir", type=Path, help="an empty folder to keep the database and the daemon's log in")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows up at once in a log
    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        ok = soak(args.work_dir, args.feeds, args.minutes, args.seed, args.rate, args.every)
    else:
        with tempfile.TemporaryDirectory(prefix="aggregator-soak-") as tmp:
            ok = soak(Path(tmp), args.feeds, args.minutes, args.seed, args.rate, args.every)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
