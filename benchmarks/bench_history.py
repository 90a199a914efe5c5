"""Time `aggregator import-history` on a generated running digest of many commits; prints wall time and peak RSS.

    python benchmarks/bench_history.py [--commits 2000] [--size-kb 300] [--keep DIR]

The repository is built in a temporary folder with `git fast-import`: a house-style README that grows, one
entry at a time, to about --size-kb kilobytes, with entries now and then moved to another section, dropped
or given a new link, and one commit in ten touching only another file. The import then runs as its own
process (`python -m aggregator import-history`) into a fresh SQLite file, and a small measuring process
reports that command's wall time and its peak resident memory (getrusage RUSAGE_CHILDREN of the measuring
process, so building the repository does not count). Nothing outside the temporary folder is read or written.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TREE = {
    "## 1. Research": ["### 1.1. CV", "### 1.2. NLP", "### 1.3. RecSys, etc."],
    "## 2. Business Cases and Implementations": ["### 2.1. CV", "### 2.2. NLP", "### 2.3. RecSys",
                                                 "### 2.4. Training, Inference and MLOps"],
    "## 3. AWS ML Only": ["### 3.1. Cases", "### 3.2. Tools"],
}
LEAVES = [(top, leaf) for top, leaves in TREE.items() for leaf in leaves]
SOURCES = ["Netflix", "Meta", "Google", "HuggingFace", "AWS", "Naver", "Kakao", "Toss", "하이퍼커넥트", "Uber"]
WORDS = ("serving training inference retrieval ranking diffusion transformer feature store latency cost scale "
         "embedding search vision speech language agent evaluation dataset pipeline cluster").split()
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
HEADER = ("# Summary of Important AI & ML Blog Posts\n"
          "* NOTE: 이 목록을 고른 방식은 아래와 같습니다.\n"
          "  * 꾸준히 좋은 글을 쓰는 곳을 구독하고, 반응과 중요도를 함께 봅니다.\n\n")
START = 1_609_459_200  # 2021-01-01 00:00 UTC
STEP = 9 * 3600  # between commits: 2,000 commits span about two years


def entry_line(rng: random.Random, n: int, when: int, summary_chars: int) -> str:
    """One house-style entry, "* [Title (Mon YYYY, Source)](url): summary", about summary_chars of summary."""
    stamp = time.gmtime(when)
    title = " ".join(rng.choice(WORDS).capitalize() for _ in range(rng.randint(3, 7)))
    summary = " ".join(rng.choice(WORDS) for _ in range(summary_chars // 7))[:summary_chars]
    return (f"* [{title} {n} ({MONTHS[stamp.tm_mon - 1]} {stamp.tm_year}, {rng.choice(SOURCES)})]"
            f"(https://blog{n % 97}.example/posts/{n}-{title.lower().replace(' ', '-')}): {summary}\n")


def render(sections: dict[tuple[str, str], list[str]]) -> bytes:
    """The README as house style: each top-level heading, its subsections, their entries newest first."""
    parts = [HEADER]
    for top, leaves in TREE.items():
        parts.append(top + "\n")
        for leaf in leaves:
            parts.append(leaf + "\n")
            parts.extend(sections[(top, leaf)])
            parts.append("\n")
    return "".join(parts).encode("utf-8")


def commits(n: int, size_kb: int, seed: int = 11) -> Iterator[tuple[int, str, bytes]]:
    """(commit time, changed path, its new bytes) for n commits; the README ends near size_kb kilobytes."""
    rng = random.Random(seed)
    sections: dict[tuple[str, str], list[str]] = {leaf: [] for leaf in LEAVES}
    per_entry = max(40, size_kb * 1024 // max(1, n * 9 // 10) - 130)  # summary length so the file ends near the size
    added = 0
    for i in range(n):
        when = START + i * STEP
        if i % 10 == 9:
            yield when, "NOTES.md", f"note {i}\n".encode()
            continue
        roll = rng.random()
        listed = [(leaf, k) for leaf, lines in sections.items() for k in range(len(lines))]
        if roll < 0.04 and listed:  # an entry moved to another section
            leaf, k = rng.choice(listed)
            line = sections[leaf].pop(k)
            sections[rng.choice([x for x in LEAVES if x != leaf])].insert(0, line)
        elif roll < 0.06 and listed:  # an entry dropped
            leaf, k = rng.choice(listed)
            sections[leaf].pop(k)
        elif roll < 0.07 and listed:  # a link changed for the same post
            leaf, k = rng.choice(listed)
            sections[leaf][k] = sections[leaf][k].replace("/posts/", "/p/", 1)
        else:
            added += 1
            sections[rng.choice(LEAVES)].insert(0, entry_line(rng, added, when, per_entry))
        yield when, "README.md", render(sections)


def build(repo: Path, n: int, size_kb: int) -> int:
    """A git repository of n commits at `repo` (git fast-import); the README's final size in bytes."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, timeout=60)
    importer = subprocess.Popen(["git", "-C", str(repo), "fast-import", "--quiet"], stdin=subprocess.PIPE)
    assert importer.stdin is not None
    size = 0
    for i, (when, path, data) in enumerate(commits(n, size_kb)):
        message = f"commit {i}\n".encode()
        head = (f"commit refs/heads/main\nmark :{i + 1}\ncommitter Editor <editor@localhost> {when} +0000\n"
                f"data {len(message)}\n").encode() + message
        if i:
            head += f"from :{i}\n".encode()
        importer.stdin.write(head + f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        if path == "README.md":
            size = len(data)
    importer.stdin.close()
    if importer.wait(timeout=600) != 0:
        raise SystemExit("git fast-import failed")
    return size


def measure(command: list[str]) -> None:
    """Run the command, then print its wall time and this process's children's peak RSS as JSON."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mib": peak_kib / 1024, "status": done.returncode,
                      "output": done.stdout.splitlines()[:1], "error": done.stderr.strip().splitlines()[-1:]}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--size-kb", type=int, default=300, help="the README's size at the last commit")
    parser.add_argument("--keep", type=Path, help="build the repository here and keep it (default: a temporary folder)")
    parser.add_argument("--measure", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        measure(args.measure)
        return
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        repo = where / "digest-repo"
        started = time.perf_counter()
        size = build(repo, args.commits, args.size_kb)
        print(f"built {args.commits:,} commits, README {size / 1024:,.0f} KB at the last one, "
              f"in {time.perf_counter() - started:.1f} s")
        (where / "feeds.yaml").write_text("feeds: []\n", encoding="utf-8")
        command = [sys.executable, "-m", "aggregator", "--config", str(where / "feeds.yaml"),
                   "--db", f"sqlite:///{where / 'bench.db'}", "import-history", str(repo)]
        out = subprocess.run([sys.executable, __file__, "--measure", *command], capture_output=True, text=True,
                             check=True, timeout=3600)
        figures = json.loads(out.stdout)
        if figures["status"] != 0:
            raise SystemExit(f"import-history failed: {figures['error']}")
        print(f"import-history: {figures['output'][0] if figures['output'] else ''}")
        print(f"wall time {figures['seconds']:.1f} s, peak RSS {figures['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
