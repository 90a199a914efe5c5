"""Time the desk's model page for a digest of many editions: computing it once, then serving it.

    python benchmarks/bench_model_page.py [--editions 24] [--posts 50000] [--picks 30] [--pages 5]

Posts come from bench_classify's seeded generator, spread over the editions' months and forty feeds in a
real SQLite file; each edition is imported as a digest picking `--picks` of its month's posts (the rest
of the month are its non-picks). The desk runs as `aggregator review` in its own process and is asked
over HTTP on 127.0.0.1: the first request for /model starts the computation (the replay of every
edition, as `eval --replay` computes it, plus sources and the audit), and once it is done the page is
requested `--pages` times; the figures are the computation's time and each page's. Nothing outside this
repository is read.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_classify import OFF_TOPIC, SECTIONS, make_post, timed  # noqa: E402
from bench_desk import free_port  # noqa: E402

from aggregator.models import Edition, FeedConfig, FetchResult, ImportEntry, ParsedPost, month_bounds  # noqa: E402
from aggregator.store import Store  # noqa: E402

FEEDS = 40
FIRST = "2022-07"


def months(n: int) -> list[str]:
    out, start = [], month_bounds(FIRST)[0]
    for _ in range(n):
        out.append(start.strftime("%Y-%m"))
        start = month_bounds(out[-1])[1]
    return out


def fill(store: Store, editions: list[str], posts: int, picks: int) -> int:
    """Store `posts` posts spread over the editions' months and FEEDS feeds, then import each edition as a
    digest picking `picks` of its month's on-topic posts; the number of decisions stored."""
    from aggregator.models import month_of

    rng = random.Random(5)
    topics = [*SECTIONS, None]
    made = []
    for i in range(posts):
        edition = editions[i % len(editions)]
        start, end = month_bounds(edition)
        section = rng.choice(topics)
        post = make_post(rng, i, SECTIONS[section] if section else OFF_TOPIC)
        when = start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))
        made.append((edition, section, replace(post, published=when)))
    now = month_bounds(editions[-1])[1]
    store.sync_feeds([FeedConfig(f"feed {i}", f"https://blog{i}.example/feed") for i in range(FEEDS)], now)
    parsed = [ParsedPost(key=c.url, url=c.url, title=c.title, summary=c.summary, published=c.published,
                         content_hash=str(c.id)) for _, _, c in made]
    for feed in store.feeds_due(now, everything=True):
        store.record_fetch(feed, FetchResult(feed.url, 200), parsed[feed.id - 1::FEEDS], now=now, next_check=now,
                           error=None)
    decisions = 0
    for edition in editions:
        mine = [(section, c) for e, section, c in made if e == edition and section]
        chosen = rng.sample(mine, min(picks, len(mine)))
        entries = [ImportEntry(c.url, c.title, c.source, month_bounds(edition)[0], section, "") for section, c in chosen]
        store.import_digest(edition=Edition(edition), path=f"{edition}.md", style="house", title="Bench",
                            sha256=edition, sections=sorted({s for s, _ in chosen}), covers=[month_of(month_bounds(edition)[0])],
                            entries=entries, now=now)
        decisions += sum(1 for e, _, _ in made if e == edition)
    return decisions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editions", type=int, default=24)
    parser.add_argument("--posts", type=int, default=50_000)
    parser.add_argument("--picks", type=int, default=30, help="picks per edition")
    parser.add_argument("--pages", type=int, default=5, help="page loads timed once the page is computed")
    args = parser.parse_args(argv)
    editions = months(args.editions)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "feeds.yaml").write_text("feeds: []\n", encoding="utf-8")
        with Store(f"sqlite:///{home / 'aggregator.db'}") as store:
            store.migrate()
            decisions, fill_s = timed(lambda: fill(store, editions, args.posts, args.picks))
        from bench_desk import start_desk

        proc = start_desk(home, port := free_port())
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
                started = time.perf_counter()
                first = client.get("/model")
                assert first.status_code == 200, first.text
                while 'id="model"' not in (page := client.get("/model")).text:
                    assert page.status_code == 200, page.text
                    time.sleep(0.5)
                computed = time.perf_counter() - started
                stated = float(page.text.split('<span id="seconds">', 1)[1].split("<", 1)[0])
                pages = []
                for _ in range(args.pages):
                    started = time.perf_counter()
                    page = client.get("/model")
                    pages.append(time.perf_counter() - started)
                    assert page.status_code == 200 and 'id="model"' in page.text
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    splits = page.text.count('<tr data-edition="')
    print(f"stored {args.posts:,} posts, {args.editions} editions ({decisions:,} decisions): {fill_s:.1f} s")
    print(f"model page computed (replay of {splits} editions, 5 methods; sources; audit): {computed:.1f} s "
          f"from the first request ({stated:.1f} s as the page states it)")
    print(f"model page served from the computed figures, {len(page.content) / 1e3:.0f} kB: median "
          f"{statistics.median(pages) * 1000:.1f} ms, slowest {max(pages) * 1000:.1f} ms of {args.pages}")


if __name__ == "__main__":
    main()
