"""Time `draft` for one month with thousands of stored candidates, ranked by a trained model.

    python benchmarks/bench_draft.py [--candidates 5000] [--labels 2000] [--runs 3]

The candidates and the training labels come from bench_classify's seeded generator and are stored in a
real SQLite file, so the timing covers the whole command path: the month's query, de-duplication against
other editions, scoring, placing and rendering Markdown. Nothing outside this repository is read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_classify import NOW, make_candidates, make_labels, peak_rss_mib, timed  # noqa: E402

from aggregator.learn import classify  # noqa: E402
from aggregator.config import parse_config  # noqa: E402
from aggregator.digest.draft import make_draft  # noqa: E402
from aggregator.models import Edition, FeedConfig, FetchResult, ParsedPost  # noqa: E402
from aggregator.store import Store  # noqa: E402

FEEDS = 40


def fill(store: Store, n: int) -> None:
    """Store n candidates of June 2024 spread over FEEDS feeds, as a fetch pass would."""
    store.sync_feeds([FeedConfig(f"feed {i}", f"https://blog{i}.example/feed") for i in range(FEEDS)], NOW)
    posts = [ParsedPost(key=c.url, url=c.url, title=c.title, summary=c.summary, published=c.published,
                        content_hash=str(c.id)) for c in make_candidates(n, seed=7)]
    for feed in store.feeds_due(NOW, everything=True):
        mine = posts[feed.id - 1::FEEDS]
        store.record_fetch(feed, FetchResult(feed.url, 200), mine, now=NOW, next_check=NOW, error=None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=5000)
    parser.add_argument("--labels", type=int, default=2000, help="labels the model is trained on")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config("feeds: []\n", base_dir=Path(tmp))
        with Store(f"sqlite:///{tmp}/bench.db") as store:
            store.migrate()
            _, fill_s = timed(lambda: fill(store, args.candidates))
            model, train_s = timed(lambda: classify.train(make_labels(args.labels, seed=3), now=NOW))
            rows = [(f"store {args.candidates:,} posts", fill_s), (f"train on {args.labels:,} labels", train_s)]
            for name, kwargs in (("draft, no model", {}), ("draft, ranked by the model", {"model": model})):
                seconds = []
                for _ in range(args.runs):
                    draft, s = timed(lambda: make_draft(store, config, Edition("2024-06"), "markdown", **kwargs))
                    seconds.append(s)
                assert len(draft.items) == args.candidates, len(draft.items)
                rows.append((f"{name} ({args.candidates:,} candidates, median of {args.runs})", statistics.median(seconds)))
    width = max(len(name) for name, _ in rows)
    for name, s in rows:
        print(f"{name:<{width}}  {s:7.2f} s")
    print(f"{'peak RSS':<{width}}  {peak_rss_mib():5.0f} MiB")


if __name__ == "__main__":
    main()
