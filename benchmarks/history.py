"""Import a large labelled history, train on it, and backtest it month by month; prints figures.

The history is a JSON list of curated items (`title`, `url`, `org`, `type`, `year`, `month`), such as
the 1,870-item NLP-Paper-News file. Each month becomes one house-style digest whose sections are the
items' types, so the run exercises the real import -> train -> eval path:

    python benchmarks/history.py --items PATH/nlp_paper_news_items.json [--months 12] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from aggregator.learn.classify import train
from aggregator.learn.jobs import aligned_labels, backtest, import_digest_file
from aggregator.render import MONTHS
from aggregator.store import Store

SECTIONS = {"paper": "1. Papers", "dev": "2. Developer Tools and Releases", "news": "3. News"}


def month_digests(items: list[dict]) -> dict[str, str]:
    """YYYY-MM -> a house-style digest of that month's items."""
    by_month: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        if item.get("url", "").startswith("http") and item.get("title"):
            key = f"{int(item['year']):04d}-{int(item['month']):02d}"
            by_month[key][item.get("type", "news")].append(item)
    out = {}
    for month, groups in sorted(by_month.items()):
        label = f"{MONTHS[int(month[5:]) - 1]} {month[:4]}"
        lines = ["# Summary of Important AI & ML Blog Posts", ""]
        for kind, heading in SECTIONS.items():
            if groups.get(kind):
                lines.append(f"## {heading}")
                for item in groups[kind]:
                    title = item["title"].replace("[", "(").replace("]", ")")
                    source = f", {item['org']}" if item.get("org") else ""
                    lines.append(f"* [{title} ({label}{source})]({item['url']})")
                lines.append("")
        out[month] = "\n".join(lines)
    return out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=Path, required=True, help="JSON file with an `items` list (or a bare list)")
    parser.add_argument("--months", type=int, default=0, help="backtest only the last N months (0: all)")
    parser.add_argument("--json", action="store_true", help="print the backtest rows as JSON")
    args = parser.parse_args()
    data = json.loads(args.items.read_text(encoding="utf-8"))
    items = data["items"] if isinstance(data, dict) else data
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        digests = month_digests(items)
        for month, text in digests.items():
            (Path(tmp) / f"{month}.md").write_text(text, encoding="utf-8")
        with Store(f"sqlite:///{tmp}/history.db") as store:
            store.migrate()
            t0 = time.perf_counter()
            for month in digests:
                import_digest_file(store, Path(tmp) / f"{month}.md", month=None, style=None, now=now)
            t_import = time.perf_counter() - t0
            labels = aligned_labels(store)
            t0 = time.perf_counter()
            train([lb for _, lb in labels], now=now)
            t_train = time.perf_counter() - t0
            if args.months:
                keep = sorted({m for m, _ in labels})[-(args.months + 1):]
                labels = [(m, lb) for m, lb in labels if m in keep]
            t0 = time.perf_counter()
            scores = backtest(labels, now=now)
            t_eval = time.perf_counter() - t0
    if args.json:
        print(json.dumps([s.__dict__ for s in scores], indent=2))
        return
    print(f"history: {len(items)} items -> {len(digests)} monthly digests, {len(labels)} labels")
    print(f"import  {t_import:6.2f} s   train (all labels) {t_train:6.2f} s   backtest {t_eval:6.2f} s   "
          f"peak RSS {peak_rss_mib():.0f} MiB")
    print(f"{'month':>8} {'trained on':>10} {'selected':>8} {'section acc':>11} {'macro-F1':>8}")
    for s in scores:
        acc = "-" if s.section_accuracy is None else f"{s.section_accuracy:.2f}"
        f1 = "-" if s.section_macro_f1 is None else f"{s.section_macro_f1:.2f}"
        print(f"{s.month:>8} {s.train_labels:>10} {s.selected:>8} {acc:>11} {f1:>8}")
    accs = [s.section_accuracy for s in scores if s.section_accuracy is not None]
    if accs:
        print(f"mean section accuracy over {len(accs)} months: {sum(accs) / len(accs):.3f}")


if __name__ == "__main__":
    main()
