"""Feed-update benchmark (issue 5): `aggregator fetch --all` against lemon24's reader, cold / warm / warm-mutated.

    .venv/bin/python benchmarks/bench_update.py [--feeds 500] [--runs 3] [--per-address N] [--work-dir /tmp/aggregator-bench]
    .venv/bin/python benchmarks/bench_update.py --quick          # 40 feeds, 1 run: a smoke test

feedserver.py serves feedgen.py's feeds from loopback addresses 127.0.0.2... in its own process. Each run
starts both systems on empty databases and runs three phases, each system in a fresh process as cron would:
cold (empty database), warm (nothing changed: every answer should be 304) and mutated (5% of the feeds gained
one entry). reader==3.26 is installed into its own virtual environment under --work-dir on first use.

What is measured, per phase: wall time from spawn to exit of the command; CPU = user + sys and peak RSS of
its whole process tree. A small runner (`--reap`) makes itself a child subreaper, so descendants that outlive
their parent (a multiprocessing forkserver and the parse workers it forked) are re-parented to it and reaped;
its RUSAGE_CHILDREN then covers every process of the tree: CPU summed, RSS the peak of the largest single
process (not the sum). The runner's own CPU is not included. The server counts requests.
The check compares the links each system stored (tracking parameters removed) with every link the server
has published since the run began; "ok" means equal sets and no feed in error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from feedgen import generate, render

PHASES = ("cold", "warm", "mutated")
SYSTEMS = ("aggregator", "reader")
READER_REQUIREMENTS = ["reader==3.26", "sgmllib3k"]
READER_WORKERS = 16
PYCACHE: Path | None = None  # set by main(): the children's bytecode cache
READER_SCRIPT = '''\
"""Run inside reader's own venv: `update DB URLS cold|warm` (timed) or `links DB` (the check, not timed)."""
import json, sys
from reader import make_reader

mode, db = sys.argv[1], sys.argv[2]
reader = make_reader(db)
if mode == "update":
    if sys.argv[4] == "cold":
        for url in open(sys.argv[3]).read().split():
            reader.add_feed(url, exist_ok=True)
    reader.update_feeds(workers=WORKERS, scheduled=False)
else:
    links = [entry.link for entry in reader.get_entries()]
    broken = [feed.url for feed in reader.get_feeds() if feed.last_exception]
    json.dump({"entries": len(links), "links": links, "broken": broken}, sys.stdout)
reader.close()
'''.replace("WORKERS", str(READER_WORKERS))


@dataclass
class Sample:
    """One system's one phase in one run."""

    wall: float
    cpu: float
    rss_mib: float
    server: dict[str, float]
    stored: int
    check: str


class FeedServer:
    """feedserver.py in a child process, spoken to over its stdin/stdout."""

    def __init__(self, feeds: int, seed: int, latency: float, per_address: int | None) -> None:
        argv = [sys.executable, str(HERE / "feedserver.py"), "--feeds", str(feeds), "--seed", str(seed),
                "--latency", str(latency)] + (["--per-address", str(per_address)] if per_address else [])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self._read()
        self.port: int = hello["port"]
        self.addresses: int = hello["addresses"]
        self.feeds: list[tuple[str, str]] = [tuple(f) for f in hello["feeds"]]

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise SystemExit("feedserver exited before answering")
        return json.loads(line)

    def command(self, word: str) -> dict[str, Any]:
        self.proc.stdin.write(word + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")  # type: ignore[union-attr]
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=30)


def clean_env() -> dict[str, str]:
    """The environment for children: no proxy settings (traffic stays on loopback), and compiled bytecode cached
    under the work dir (as an installed program has it) even where PYTHONDONTWRITEBYTECODE is set."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k != "PYTHONDONTWRITEBYTECODE"}
    if PYCACHE is not None:
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def measure(argv: list[str], log: Path) -> tuple[float, float, float]:
    """Run argv to completion under a subreaper (see `reap`); (wall s, user+sys CPU s, peak RSS MiB).
    Fails on a non-zero exit."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--reap", str(log), "--", *argv],
                          capture_output=True, text=True, env=clean_env(), check=False)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}); see {log}:\n{log.read_text()[-2000:]}{done.stderr}")
    usage = json.loads(done.stdout)
    return usage["wall"], usage["cpu"], usage["rss_mib"]


def reap(log: Path, argv: list[str]) -> None:
    """Run argv as a child subreaper and print its usage as JSON: wall time until argv exits; CPU and peak RSS
    over argv and every descendant, including orphans such as a multiprocessing forkserver and its workers,
    which are re-parented to this process and reaped here (RUSAGE_CHILDREN; this process's own CPU is not in it)."""
    import ctypes
    import resource

    if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER (Linux)
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER) failed")
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _pid, status, _usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # orphaned descendants: wait for them to finish, then reap them
        try:
            pid, _status, _usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.01)
    lingering = time.perf_counter() - start - wall
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
                      "lingering": lingering}))
    sys.exit(proc.returncode)


def without_tracking(url: str) -> str:
    """A link with its utm_* parameters and fragment removed (how the generator defines a story)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.lower().startswith("utm_")]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def compare(stored: set[str], published: set[str], errors: int) -> str:
    missing, extra = len(published - stored), len(stored - published)
    if not (missing or extra or errors):
        return "ok"
    return " ".join(f"{label} {n}" for label, n in (("missing", missing), ("extra", extra), ("errors", errors)) if n)


def ensure_reader_venv(work: Path) -> Path:
    """reader's own virtual environment (created once); returns its python."""
    venv = work / "reader-venv"
    python = venv / "bin" / "python"
    marker = venv / "installed.txt"
    if not (python.exists() and marker.exists() and marker.read_text() == " ".join(READER_REQUIREMENTS)):
        print(f"installing {' '.join(READER_REQUIREMENTS)} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *READER_REQUIREMENTS], check=True, env=clean_env())
        marker.write_text(" ".join(READER_REQUIREMENTS))
    return python


def ensure_aggregator_venv(work: Path) -> Path:
    """aggregator's own virtual environment, as a user installs it (`pip install -e .`, no test extras: the
    test-only packages change what gets imported, e.g. selenium brings trio, which httpcore then imports);
    created again when pyproject.toml changes. Returns its python."""
    venv = work / "aggregator-venv"
    python = venv / "bin" / "python"
    marker = venv / "installed.txt"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not (python.exists() and marker.exists() and marker.read_text() == wanted):
        print(f"installing aggregator ({ROOT}) into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True, env=clean_env())
        marker.write_text(wanted)
    return python


class Systems:
    """How each system is started, and how its stored links are read back."""

    def __init__(self, work: Path, server: FeedServer, reader_python: Path, aggregator_python: Path) -> None:
        self.work, self.reader_python = work, reader_python
        self.aggregator = aggregator_python.with_name("aggregator")
        self.script = work / "reader_update.py"
        self.script.write_text(READER_SCRIPT)
        self.write_inputs("feeds", server.feeds)

    def write_inputs(self, stem: str, feeds: list[tuple[str, str]]) -> None:
        """STEM.yaml for aggregator and STEM.txt (the URLs) for reader."""
        (self.work / f"{stem}.yaml").write_text(
            "# written by benchmarks/bench_update.py: every generated feed, with aggregator's default polling settings\n"
            "feeds:\n"
            + "".join(f"  - name: {name}\n    url: {url}\n" for name, url in feeds))
        (self.work / f"{stem}.txt").write_text("".join(url + "\n" for _name, url in feeds))

    def argv(self, system: str, phase: str, run_dir: Path, stem: str = "feeds") -> list[str]:
        if system == "aggregator":
            return [str(self.aggregator), "--config", str(self.work / f"{stem}.yaml"),
                    "--db", f"sqlite:///{run_dir / 'aggregator.db'}", "--quiet", "fetch", "--all"]
        return [str(self.reader_python), str(self.script), "update", str(run_dir / "reader.sqlite"),
                str(self.work / f"{stem}.txt"), "cold" if phase == "cold" else "warm"]

    def warm_up(self, feeds: list[tuple[str, str]]) -> None:
        """A small untimed pass of each system: fills the bytecode and page caches."""
        self.write_inputs("warmup", feeds)
        run_dir = self.work / "warmup"
        run_dir.mkdir(exist_ok=True)
        for old in run_dir.iterdir():
            old.unlink()
        for system in SYSTEMS:
            measure(self.argv(system, "cold", run_dir, "warmup"), run_dir / f"{system}.log")

    def stored(self, system: str, run_dir: Path) -> tuple[int, set[str], int]:
        """(rows stored, their links without tracking parameters, feeds in error)."""
        if system == "aggregator":
            with sqlite3.connect(run_dir / "aggregator.db") as db:
                urls = [u for (u,) in db.execute("SELECT url FROM posts")]
                errors = db.execute("SELECT count(*) FROM feeds WHERE error_count > 0").fetchone()[0]
            return len(urls), {without_tracking(u) for u in urls if u}, errors
        out = subprocess.run([str(self.reader_python), str(self.script), "links", str(run_dir / "reader.sqlite")],
                             check=True, capture_output=True, text=True, env=clean_env()).stdout
        data = json.loads(out)
        return data["entries"], {without_tracking(u) for u in data["links"] if u}, len(data["broken"])


def one_run(run: int, systems: Systems, server: FeedServer, work: Path) -> dict[tuple[str, str], Sample]:
    run_dir = work / f"run{run}"
    run_dir.mkdir(parents=True, exist_ok=True)
    for old in run_dir.iterdir():
        old.unlink()
    server.command("reset")
    order = SYSTEMS if run % 2 else SYSTEMS[::-1]  # alternate who goes first
    rows_before = {system: 0 for system in SYSTEMS}
    samples = {}
    for phase in PHASES:
        if phase == "mutated":
            server.command("mutate")
        published = set(server.command("published")["links"])
        for system in order:
            server.command("stats")  # zero the counters
            wall, cpu, rss = measure(systems.argv(system, phase, run_dir), run_dir / f"{system}-{phase}.log")
            counts = server.command("stats")
            rows, links, errors = systems.stored(system, run_dir)
            samples[system, phase] = Sample(wall, cpu, rss, counts, rows - rows_before[system],
                                            compare(links, published, errors))
            rows_before[system] = rows
            print(f"  run {run} {phase:8} {system:10} {wall:7.2f} s wall {cpu:7.2f} s CPU {rss:6.0f} MiB  "
                  f"{counts['requests']} requests ({counts['200']} 200, {counts['304']} 304)  "
                  f"{samples[system, phase].stored} stored  {samples[system, phase].check}", flush=True)
    return samples


def transport_floor(server: FeedServer, latency: float) -> str:
    """Every feed fetched once by 16 plain threads (gzip, no parsing): shows whether the server keeps up."""
    import urllib.request

    def get(url: str) -> int:
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=30) as response:  # loopback only
            return len(response.read())

    server.command("stats")
    start = time.perf_counter()
    with ThreadPoolExecutor(READER_WORKERS) as pool:
        size = sum(pool.map(get, [url for _name, url in server.feeds]))
    wall = time.perf_counter() - start
    stats = server.command("stats")
    bound = len(server.feeds) / READER_WORKERS * latency
    return (f"transport floor: {len(server.feeds)} GETs by {READER_WORKERS} threads, no parsing: {wall:.2f} s wall "
            f"(latency alone: {bound:.2f} s), {size / 1e6:.1f} MB gzipped, server CPU {stats['cpu']:.2f} s")


def parse_floor(corpus: list[tuple[bytes, str, str]]) -> str:
    """Parse cost alone, in this process: bare feedparser over every generated feed, then aggregator's own
    parse_feed (ElementTree for plain RSS/Atom, feedparser for the rest, then text, links and hashes)."""
    import feedparser

    from aggregator.poll import parse_fast
    from aggregator.poll.parse import _as_utf8, _decode, parse_feed

    start, cpu = time.perf_counter(), time.process_time()
    entries = 0
    for body, content_type, url in corpus:
        parsed = feedparser.parse(body, response_headers={"content-type": content_type, "content-location": url},
                                  sanitize_html=False, resolve_relative_uris=False)
        entries += len(parsed.entries)
    bare = time.process_time() - cpu
    mine = time.process_time()
    posts = sum(len(parse_feed(body, url=url, content_type=content_type).posts) for body, content_type, url in corpus)
    mine = time.process_time() - mine
    fast = sum(parse_fast.read(_as_utf8(_decode(body, content_type)[0]), url) is not None
               for body, content_type, url in corpus)
    return (f"parse floor: feedparser {feedparser.__version__}.parse(sanitize_html=False, resolve_relative_uris=False) "
            f"of all {len(corpus)} feeds, {entries} entries: {time.perf_counter() - start - mine:.2f} s wall, "
            f"{bare:.2f} s CPU; aggregator's parse_feed ({fast} of {len(corpus)} bodies read by ElementTree): "
            f"{mine:.2f} s CPU for {posts} posts")


def startup_floor(work: Path, reader_python: Path, aggregator_python: Path) -> str:
    """What each system costs before its first request: a fresh process importing its polling code."""
    def imports(python: Path, code: str) -> tuple[float, float, float]:
        runs = [measure([str(python), "-c", code], work / "startup.log") for _ in range(3)]
        wall, cpu, rss = (statistics.median(column) for column in zip(*runs, strict=True))
        return wall, cpu, rss

    # as the `aggregator` entry point loads them (aggregator/__main__.py): the garbage collector paused
    wall, cpu, rss = imports(aggregator_python, "import gc; gc.disable(); import aggregator.cli, aggregator.poll.run")
    r_wall, r_cpu, r_rss = imports(reader_python, "import reader, feedparser, requests")
    return (f"start-up floor: a fresh process importing aggregator's CLI and polling pass (SQLAlchemy Core, httpx, "
            f"typer; collector paused, as the entry point does): {wall:.2f} s wall, {cpu:.2f} s CPU, "
            f"{rss:.0f} MiB; importing reader, feedparser and requests: {r_wall:.2f} s wall, {r_cpu:.2f} s CPU, "
            f"{r_rss:.0f} MiB (medians of 3)")


def median_table(results: list[dict[tuple[str, str], Sample]]) -> str:
    med = statistics.median
    lines = [(f"{'phase':8} {'system':10} {'wall s':>7} {'CPU s':>7} {'RSS MiB':>8} {'requests':>8} {'200':>5} "
              f"{'304':>5} {'stored':>7} {'srv CPU':>7}  check")]
    for phase in PHASES:
        meds = {}
        for system in SYSTEMS:
            runs = [r[system, phase] for r in results]
            m = meds[system] = {k: med(getattr(s, k) for s in runs) for k in ("wall", "cpu", "rss_mib", "stored")}
            counts = {k: med(s.server[k] for s in runs) for k in ("requests", "200", "304", "cpu")}
            checks = sorted({s.check for s in runs}, key=lambda c: c != "ok")
            lines.append(f"{phase:8} {system:10} {m['wall']:7.2f} {m['cpu']:7.2f} {m['rss_mib']:8.0f} "
                         f"{counts['requests']:8.0f} {counts['200']:5.0f} {counts['304']:5.0f} {m['stored']:7.0f} "
                         f"{counts['cpu']:7.2f}  {checks[-1] if len(checks) > 1 else checks[0]}")
        a, r = meds["aggregator"], meds["reader"]
        lines.append(f"{'':8} {'agg/reader':10} {a['wall'] / r['wall']:6.2f}x {a['cpu'] / r['cpu']:6.2f}x "
                     f"{a['rss_mib'] / r['rss_mib']:7.2f}x")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--reap"]:  # internal: measure one process tree (see `measure`)
        reap(Path(sys.argv[2]), sys.argv[4:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=500, help="number of generated feeds (default 500)")
    ap.add_argument("--runs", type=int, default=3, help="runs per system and phase; the table shows medians")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds the server waits before each answer")
    ap.add_argument("--per-address", type=int, default=None,
                    help="feeds per loopback address (default: spread as in a real reading list, see feedgen.host_slots)")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/aggregator-bench"))
    ap.add_argument("--quick", action="store_true", help="smoke test: 40 feeds, 1 run")
    args = ap.parse_args()
    if args.quick:
        args.feeds, args.runs = 40, 1
    global PYCACHE
    PYCACHE = args.work_dir / "pycache"
    reader_python = ensure_reader_venv(args.work_dir)
    aggregator_python = ensure_aggregator_venv(args.work_dir)
    work = args.work_dir / f"n{args.feeds}-seed{args.seed}"
    work.mkdir(parents=True, exist_ok=True)

    feeds = generate(args.feeds, args.seed, args.per_address)
    bodies = [render(f) for f in feeds]
    size = sum(map(len, bodies))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    print(f"corpus: {len(feeds)} feeds, {sum(len(f.entries) for f in feeds)} entries, {size / 1e6:.1f} MB "
          f"({size / len(feeds) / 1e3:.1f} KB/feed), sha256 {hashlib.sha256(b''.join(bodies)).hexdigest()[:16]}")
    server = FeedServer(args.feeds, args.seed, args.latency, args.per_address)
    try:
        spread = (f"{args.per_address} feeds per address" if args.per_address else
                  "spread as in a real reading list: 8% of the feeds on one host, 2% on another, the rest alone")
        print(f"server: pid {server.proc.pid}, {server.addresses} loopback addresses (127.0.0.2...) on port "
              f"{server.port} ({spread}), {args.latency * 1000:.0f} ms latency per answer; work dir {work}", flush=True)
        systems = Systems(work, server, reader_python, aggregator_python)
        systems.warm_up(server.feeds[:5])
        floor_transport = transport_floor(server, args.latency)
        print(floor_transport, flush=True)
        results = [one_run(run, systems, server, work) for run in range(1, args.runs + 1)]
    finally:
        server.close()
    by_url = {f"http://{f.address}:{server.port}{f.path}": f for f in feeds}
    floor_parse = parse_floor([(b, f.content_type, url) for b, (url, f) in zip(bodies, by_url.items())])
    print(f"\n{args.feeds} feeds, median of {args.runs} run(s); CPU = user+sys of the command's whole process tree; "
          f"RSS = peak of its largest process; srv CPU = the feed server's CPU in that phase\n")
    print(median_table(results))
    print(floor_transport)
    print(floor_parse)
    print(startup_floor(work, reader_python, aggregator_python))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other processes share the CPUs)")


if __name__ == "__main__":
    main()
