"""What a parse worker costs to start (forked from the pass, or from a forkserver) beside parsing here.

    .venv/bin/python benchmarks/bench_workers.py [--runs 3]

Each measurement runs in a fresh process that has imported what a pass has (SQLAlchemy, httpx): `here` parses
40 generated feeds in that process; `fork` and `forkserver` start two workers as aggregator/poll/workers.py
does and wait for their first two results, then read every child's CPU and memory (RSS and PSS, from
/proc/PID/smaps_rollup; Linux only). Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children(pid: int) -> list[int]:
    """Every descendant of pid, from /proc."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            kids = [int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except FileNotFoundError:
            continue
        for kid in kids:
            found += [kid, *_children(kid)]
    return found


def _usage(pid: int) -> dict[str, float]:
    """A live process's CPU seconds and its RSS and PSS in MiB."""
    stat = Path(f"/proc/{pid}/stat").read_text().split()
    rollup = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    return {"cpu": (int(stat[13]) + int(stat[14])) / os.sysconf("SC_CLK_TCK"),
            "rss": int(rollup["Rss"].split()[0]) / 1024, "pss": int(rollup["Pss"].split()[0]) / 1024}


def one(method: str) -> dict[str, float]:
    """One measurement, in this process (see the module's docstring)."""
    import httpx  # noqa: F401  (what the pass's process has imported)
    import sqlalchemy  # noqa: F401

    from feedgen import generate, render

    bodies = [render(feed) for feed in generate(40)]
    start_cpu = _cpu()
    from aggregator.poll.parse import parse_feed

    import_cpu = _cpu() - start_cpu
    if method == "here":
        start_cpu = _cpu()
        for body in bodies:
            parse_feed(body, url="http://127.0.0.1/", content_type="application/rss+xml")
        return {"import_ms": import_cpu * 1000, "per_body_ms": (_cpu() - start_cpu) / len(bodies) * 1000}
    from aggregator.poll.workers import forked_parser_pool, parser_pool

    start = time.perf_counter()
    pool = forked_parser_pool(2) if method == "fork" else parser_pool(2)
    futures = [pool.submit(parse_feed, body, url="http://127.0.0.1/", content_type="application/rss+xml")
               for body in bodies[:2]]
    for future in futures:
        future.result()
    first = time.perf_counter() - start
    children = [_usage(pid) for pid in _children(os.getpid())]
    pool.shutdown()
    return {"first_results_s": first, "children": len(children), "children_cpu_s": sum(c["cpu"] for c in children),
            "children_rss_mib": sum(c["rss"] for c in children), "children_pss_mib": sum(c["pss"] for c in children)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--one", choices=("here", "fork", "forkserver"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    for method in ("here", "fork", "forkserver"):
        runs = [json.loads(subprocess.run([sys.executable, __file__, "--one", method], check=True,
                                          capture_output=True, text=True).stdout) for _ in range(args.runs)]
        medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(f"{method:10} " + "  ".join(f"{key} {value:.2f}" for key, value in medians.items()), flush=True)
    print(f"medians of {args.runs}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
