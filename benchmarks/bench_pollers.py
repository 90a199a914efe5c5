"""Several pollers on one PostgreSQL (issue 16): a warm pass (every answer a 304) by 1, 2 and 4 `aggregator fetch` processes.

    .venv/bin/python benchmarks/bench_pollers.py [--feeds 2000] [--hosts 20] [--latency 0.2] [--pollers 1,2,4] [--runs 3] [--all]

feedserver.py serves feedgen.py's feeds from `--hosts` loopback addresses with `--latency` seconds per answer; a
throwaway PostgreSQL server (tests/conftest.py's, the machine's initdb) holds the database. A first pass by
four pollers fills it (cold, reported but not the point); then, for each poller count, every feed is made due
and that many `aggregator --quiet fetch` processes start at once.

What is measured, per poller count: wall time from the first spawn to the last exit; each poller's CPU
(user + sys of its process tree, as bench_update.py measures it), its peak RSS (of its largest process, likewise;
the table sums them over the pollers) and the feeds it fetched (its summary line);
the database server's CPU (the postmaster, its live processes and the backends it reaped) and the feed server's.
Requests per CPU-second per poller is what scales out: a machine with C cores runs about C pollers' worth.
`--per-host` (default 16, the most feeds.yaml allows) keeps the politeness cap from being what limits the run.
With `--all` the warm passes are `fetch --all` (no feed made due): the requests column then says whether the
pollers, started together, fetched each feed once between them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_update import FeedServer, measure

TICKS = os.sysconf("SC_CLK_TCK")


def postgres_cpu(data_dir: Path) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster, its live children, and the children it has reaped."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])

    def fields(pid: int) -> list[str]:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

    main = fields(postmaster)
    total = sum(int(x) for x in main[11:15])  # utime, stime, cutime, cstime
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    for pid in children:
        try:
            total += sum(int(x) for x in fields(int(pid))[11:13])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / TICKS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--pollers", default="1,2,4")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--per-host", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--all", action="store_true", help="warm passes run `fetch --all` instead of making feeds due")
    args = ap.parse_args()
    counts = [int(n) for n in args.pollers.split(",")]

    from conftest import postgres_server
    from sqlalchemy import create_engine, text

    work = Path(tempfile.mkdtemp(prefix="bench-pollers-"))
    with ExitStack() as stack:
        url = stack.enter_context(postgres_server())
        engine = create_engine(url)
        stack.callback(engine.dispose)
        with engine.connect() as conn:
            data_dir = Path(conn.exec_driver_sql("SHOW data_directory").scalar_one())
        server = FeedServer(args.feeds, 1, args.latency, -(-args.feeds // args.hosts))
        stack.callback(server.close)
        lines = ["defaults:", f"  per_host: {args.per_host}", f"  concurrency: {args.concurrency}", "feeds:"]
        lines += [f"  - name: {name}\n    url: {feed_url}" for name, feed_url in server.feeds]
        (work / "feeds.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        base = [sys.executable, "-m", "aggregator", "--config", str(work / "feeds.yaml"), "--db", url, "--quiet"]
        print(f"{args.feeds} feeds on {server.addresses} loopback hosts, {args.latency * 1000:.0f} ms latency, "
              f"per_host {args.per_host}, concurrency {args.concurrency} per poller; {os.cpu_count()} CPUs; work dir {work}")

        fetch = ["fetch", "--all"] if args.all else ["fetch"]

        def one_pass(pollers: int, label: str) -> dict[str, object]:
            server.command("stats")
            db_before = postgres_cpu(data_dir)
            start = time.perf_counter()
            with ThreadPoolExecutor(pollers) as pool:
                jobs = [pool.submit(measure, [*base, *fetch, "--worker-id", f"{label}-{i}"], work / f"{label}-{i}.log")
                        for i in range(pollers)]
                usage = [job.result() for job in jobs]
            wall = time.perf_counter() - start
            time.sleep(0.3)  # the backends of the pollers end and are reaped by the postmaster
            fetched = [int((work / f"{label}-{i}.log").read_text().split()[0]) for i in range(pollers)]
            stats = server.command("stats")
            return {"wall": wall, "cpu": [u[1] for u in usage], "rss": [u[2] for u in usage], "fetched": fetched,
                    "db_cpu": postgres_cpu(data_dir) - db_before, "requests": stats["requests"],
                    "304": stats["304"], "srv_cpu": stats["cpu"]}

        measure([*base, "init"], work / "init.log")
        cold = one_pass(4, "cold")
        print(f"cold, 4 pollers: {cold['wall']:.2f} s wall, {cold['requests']} requests, pollers' CPU "
              + " / ".join(f"{c:.2f}" for c in cold["cpu"]) + f" s, database CPU {cold['db_cpu']:.2f} s")
        results: dict[int, list[dict[str, object]]] = {n: [] for n in counts}
        for run in range(1, args.runs + 1):
            for n in counts:
                if not args.all:
                    with engine.begin() as conn:
                        conn.execute(text("UPDATE feeds SET next_check_at = timezone('utc', now()) - interval '1 second'"))
                r = one_pass(n, f"warm{n}-run{run}")
                results[n].append(r)
                print(f"  run {run} {n} poller(s): {r['wall']:.2f} s wall, {r['requests']} requests "
                      f"({r['304']} 304), fetched " + "/".join(map(str, r["fetched"])) + ", CPU "
                      + "/".join(f"{c:.2f}" for c in r["cpu"]) + " s, peak RSS " + "/".join(f"{m:.0f}" for m in r["rss"])
                      + f" MiB, database {r['db_cpu']:.2f} s, "
                      f"feed server {r['srv_cpu']:.2f} s")
        print()
        print("pollers  wall s  CPU s per poller  requests/CPU-s per poller  database CPU s  feed server CPU s  requests"
              "  pollers' RSS MiB")
        for n in counts:
            rs = results[n]
            med = lambda key: statistics.median(float(r[key]) for r in rs)  # noqa: E731
            cpu = statistics.median(statistics.mean(r["cpu"]) for r in rs)  # type: ignore[arg-type]
            rate = statistics.median(sum(r["fetched"]) / sum(r["cpu"]) for r in rs)  # type: ignore[arg-type]
            rss = statistics.median(sum(r["rss"]) for r in rs)  # type: ignore[arg-type]
            print(f"{n:>7}  {med('wall'):6.2f}  {cpu:16.2f}  {rate:25.0f}  {med('db_cpu'):14.2f}  "
                  f"{med('srv_cpu'):17.2f}  {med('requests'):8.0f}  {rss:16.0f}")
        samples = [(fetched, cpu) for rs in results.values() for r in rs for fetched, cpu in zip(r["fetched"], r["cpu"])]  # type: ignore[call-overload]
        per_request, start_up = statistics.linear_regression([float(x) for x, _ in samples], [y for _, y in samples])
        db_per_request = statistics.median(float(r["db_cpu"]) / float(r["requests"]) for rs in results.values() for r in rs)  # type: ignore[arg-type]
        print(f"\nper poller, fitted over every sample (CPU = start-up + feeds x cost): start-up {start_up:.2f} s "
              f"(imports, migrations check, feeds.yaml sync), then {per_request * 1000:.2f} ms of CPU per feed checked, "
              f"i.e. {1 / per_request:.0f} requests per CPU-second once running; the database spends "
              f"{db_per_request * 1000:.2f} ms per request (median, its fixed cost per poller included)")
        machines, cores = 3, 2
        bounds = {"poller CPU (one poller per core)": machines * cores / per_request,
                  f"fetch slots ({machines * cores} pollers x {args.concurrency} at {args.latency * 1000:.0f} ms)":
                      machines * cores * args.concurrency / args.latency,
                  f"politeness ({server.addresses} hosts x per_host {args.per_host} at {args.latency * 1000:.0f} ms)":
                      server.addresses * args.per_host / args.latency,
                  f"database ({cores} cores)": cores / db_per_request}
        print(f"a {machines}-machine deployment ({cores} cores each, one poller per core) is bounded by, in requests/s:")
        for what, value in bounds.items():
            print(f"  {what}: {value:,.0f}")
        limit = min(bounds, key=bounds.__getitem__)
        print(f"so about {bounds[limit]:,.0f} requests/s, set by {limit}: {args.feeds} feeds in "
              f"{args.feeds / bounds[limit] + start_up:.1f} s with start-up")

if __name__ == "__main__":
    main()
