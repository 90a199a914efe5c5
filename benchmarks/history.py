"""Import a large labelled history, train on it, and backtest it month by month; prints figures.

The history is a JSON list of curated items (`title`, `url`, `org`, `type`, `year`, `month`), such as
the 1,870-item NLP-Paper-News file. Each month becomes one house-style digest whose sections are the
items' types, so the run exercises the real import -> train -> eval path:

    python benchmarks/history.py --items PATH/nlp_paper_news_items.json [--months 12] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import resource
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from aggregator.learn.evaluate import Report, edition_splits, run
from aggregator.learn.jobs import aligned_labels, evaluate_editions, import_digest_file, train_model
from aggregator.digest.render import MONTHS
from aggregator.models import Candidate, Edition, Label
from aggregator.store import Store

SECTIONS = {"paper": "1. Papers", "dev": "2. Developer Tools and Releases", "news": "3. News"}


def load_items(data: dict | list) -> list[dict]:
    """Items with title, url, org, type, year, month: NLP-Paper-News's `items`, or the AI-trend `rows`
    (one per footnoted entry; the section is the type, the post's file name gives year and month)."""
    if isinstance(data, list):
        return data
    if "items" in data:
        return data["items"]
    items = []
    for row in data.get("rows", []):
        match = re.search(r"(\d{4})-(\d{2})-\d{2}", row.get("post", ""))
        if match:
            section = re.sub(r"[^\w\s,&]", "", row.get("section", "")).strip() or "News"
            items.append({"title": row.get("ref_title") or row.get("heading", ""), "url": row.get("url", ""),
                          "type": section, "year": match.group(1), "month": match.group(2), "org": ""})
    return items


def month_digests(items: list[dict]) -> dict[str, str]:
    """YYYY-MM -> a house-style digest of that month's items, one numbered section per item type."""
    by_month: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    kinds: list[str] = []
    for item in items:
        item = {**item, "url": item.get("url", "").strip().replace("(", "%28").replace(")", "%29")}
        if item["url"].startswith("http") and " " not in item["url"] and item.get("title"):
            key = f"{int(item['year']):04d}-{int(item['month']):02d}"
            kind = item.get("type", "news")
            by_month[key][kind].append(item)
            kinds += [kind] if kind not in kinds else []
    headings = {k: SECTIONS.get(k, f"{i + 1}. {k}") for i, k in enumerate(kinds)}
    out = {}
    for month, groups in sorted(by_month.items()):
        label = f"{MONTHS[int(month[5:]) - 1]} {month[:4]}"
        lines = ["# Summary of Important AI & ML Blog Posts", ""]
        for kind, heading in headings.items():
            if groups.get(kind):
                lines.append(f"## {heading}")
                for item in groups[kind]:
                    title = item["title"].replace("[", "(").replace("]", ")")
                    source = f", {item['org']}" if item.get("org") else ""
                    lines.append(f"* [{title} ({label}{source})]({item['url']})")
                lines.append("")
        out[month] = "\n".join(lines)
    return out


def decisions(items: list[dict], leave_out: str, *, weekly: bool = False) -> list[tuple[Edition, Label]]:
    """(edition, label) for every item: a pick in its type's section, or a non-pick when of type `leave_out`.
    The edition is the item's month, or with `weekly` the ISO week its week of the month falls in."""
    kinds = list(dict.fromkeys(item.get("type", "news") for item in items))
    headings = {k: SECTIONS.get(k, f"{i + 1}. {k}") for i, k in enumerate(kinds)}
    out = []
    for i, item in enumerate(items):
        url = item.get("url", "").strip()
        if not url.startswith("http") or not item.get("title"):
            continue
        year, month = int(item["year"]), int(item["month"])
        kind = item.get("type", "news")
        day = min(1 + 7 * (int(item.get("week") or 1) - 1), 28) if weekly else 1
        when = datetime(year, month, day, tzinfo=timezone.utc)
        candidate = Candidate(i, url, item["title"], "", item.get("org") or "", when)
        picked = kind != leave_out
        edition = Edition.week(when) if weekly else Edition(f"{year:04d}-{month:02d}")
        out.append((edition, Label(candidate, (headings[kind],) if picked else None, picked)))
    return out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=Path, required=True, help="JSON file with an `items` list (or a bare list)")
    parser.add_argument("--months", type=int, default=0, help="test only the last N months (0: all)")
    parser.add_argument("--json", action="store_true", help="print the backtest rows as JSON")
    parser.add_argument("--from", dest="first", type=int, default=2, metavar="N",
                        help="with --leave-out: score the editions from the N-th on (each learns from those before it)")
    parser.add_argument("--weekly", action="store_true", help="with --leave-out: one edition per week (the items' "
                        "week of the month, as the ISO week it falls in), as a weekly digest is replayed")
    parser.add_argument("--leave-out", metavar="TYPE", help="an editor who never picks items of TYPE: they become "
                        "the non-picks, so the ranking, the cut and the calibration are measured too")
    args = parser.parse_args()
    data = json.loads(args.items.read_text(encoding="utf-8"))
    items = load_items(data)
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    if args.leave_out:
        t0 = time.perf_counter()
        labels = decisions(items, args.leave_out, weekly=args.weekly)
        splits = list(edition_splits(labels, []))[max(args.first - 2, 0):]
        report = run(f"leaving out {args.leave_out}", splits[-args.months:] if args.months else splits, now=now)
        if args.json:
            print(json.dumps(dataclasses.asdict(report), indent=2))
            return
        print(f"history: {len(items)} items, {sum(not lb.selected for _, lb in labels)} of them of type "
              f"{args.leave_out} (non-picks); backtest {time.perf_counter() - t0:.2f} s")
        print_report(report)
        return
    with tempfile.TemporaryDirectory() as tmp:
        digests = month_digests(items)
        for month, text in digests.items():
            (Path(tmp) / f"{month}.md").write_text(text, encoding="utf-8")
        with Store(f"sqlite:///{tmp}/history.db") as store:
            store.migrate()
            t0 = time.perf_counter()
            for month in digests:
                import_digest_file(store, Path(tmp) / f"{month}.md", edition=None, style=None, now=now)
            t_import = time.perf_counter() - t0
            labels = aligned_labels(store)
            t0 = time.perf_counter()
            train_model(store, now=now)
            t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            report = evaluate_editions(store, now=now, last=args.months or None)
            t_eval = time.perf_counter() - t0
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
        return
    print(f"history: {len(items)} items -> {len(digests)} monthly digests, {len(labels)} labels")
    print(f"import  {t_import:6.2f} s   train (all labels) {t_train:6.2f} s   backtest {t_eval:6.2f} s   "
          f"peak RSS {peak_rss_mib():.0f} MiB")
    print_report(report)


def print_report(report: Report) -> None:
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    print(f"{'month':>8} {'trained on':>10} {'picks':>6} {'leaf acc':>8} {'top acc':>8}")
    for name, trained, f, _ in report.splits:
        print(f"{name:>8} {trained:>10} {f.picks:>6} {fmt(f.leaf_accuracy):>8} {fmt(f.top_accuracy):>8}")
    print(f"pooled over {len(report.splits)} editions:")
    print(f"{'method':>10} {'picks':>6} {'leaf acc':>8} {'top acc':>8} {'macro-F1':>8}")
    for f in report.methods:
        print(f"{f.method:>10} {f.picks:>6} {fmt(f.leaf_accuracy):>8} {fmt(f.top_accuracy):>8} {fmt(f.leaf_macro_f1):>8}"
              + (f"   AP {fmt(f.average_precision)}  cut P {fmt(f.cut_precision)} R {fmt(f.cut_recall)} "
                 f"F1 {fmt(f.cut_f1)}" if f.non_picks else ""))
    if report.calibration:
        print("calibration of the model's P(pick): bin, posts, mean P(pick), share picked")
        for name, n, mean_p, rate in report.calibration:
            print(f"{name:>10} {n:>6} {mean_p:>8.2f} {rate:>8.2f}")


if __name__ == "__main__":
    main()
