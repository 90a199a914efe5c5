"""Backtest of choosing on a month the editor really decided: posts served as feeds on 127.0.0.1, the
editor's earlier picks imported, trained, the next month fetched and drafted; prints figures.

    python benchmarks/backtest_house.py --data PATH/house_2022-11_12.json --digest PATH/001_*.txt [--json]

`--data` holds posts of two months with the editor's decisions (`url`, `title`, `date`, `source`,
`opening`, `picked`), such as the main editor's November-December 2022; `--digest` is a house-style
digest that lists the picks with their sections (for the section of each pick, and the earlier picks).
Two situations, each in a fresh folder, every step the `aggregator` command as a user runs it:

- first day: the digest's picks from before the second month imported and trained on, the second month
  fetched and drafted (the draft trains again with the fetched posts);
- steady state: the digest's picks from before the first month imported, the first month fetched and
  imported as an edition of its own (its posts the editor did not list are non-picks), trained, then the
  second month fetched and drafted.

The draft's JSON (every candidate with its P(pick) and whether the cut selected it) is scored against the
editor's real picks of the second month, beside the site-rate rule fitted on the same decisions. Last, both
months are fetched and imported as editions and `aggregator eval --replay` walks them, every baseline beside
the model.
"""

from __future__ import annotations

import argparse
import http.server
import json
import subprocess
import sys
import tempfile
import threading
from collections import defaultdict
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from sklearn.metrics import average_precision_score

from aggregator.digest.render import MONTHS
from aggregator.learn.evaluate import Split, fit
from aggregator.learn.reading import read_digest
from aggregator.links import Site, canonical_url
from aggregator.models import Candidate, Edition
from aggregator.store import Store

BASELINES = ("site rate", "flat", "host", "majority")
AGGREGATOR = [sys.executable, "-m", "aggregator"]  # --aggregator replaces it (another build, to compare)


def load(path: Path) -> list[dict]:
    posts = []
    for p in json.loads(path.read_text(encoding="utf-8"))["posts"]:
        parts = (p["date"] + "-15").split("-")[:3]
        url = canonical_url(p["url"])
        if url:
            posts.append(dict(p, url=url, when=datetime(int(parts[0]), int(parts[1]), int(parts[2]), 12,
                                                        tzinfo=timezone.utc)))
    return posts


class Feeds:
    """One RSS feed per site of the posts, served on 127.0.0.1; `month` says up to which month they hold."""

    def __init__(self, posts: list[dict]) -> None:
        self.by_site: dict[str, list[dict]] = defaultdict(list)
        for p in posts:
            self.by_site[Site.of(p["url"]).key].append(p)
        self.names = {site: f"f{i}" for i, site in enumerate(sorted(self.by_site))}
        self.month = ""
        feeds = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = feeds.rss(self.path.strip("/")).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rss(self, name: str) -> str:
        site = next((s for s, n in self.names.items() if n == name), "")
        items = "".join(
            f"<item><title>{escape(p['title'])}</title><link>{escape(p['url'])}</link><guid>{escape(p['url'])}</guid>"
            f"<pubDate>{format_datetime(p['when'])}</pubDate><description>{escape(p.get('opening') or '')}</description></item>"
            for p in self.by_site.get(site, []) if p["date"][:7] <= self.month)
        return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{escape(site)}</title>{items}</channel></rss>'

    def config(self) -> str:
        port = self.server.server_address[1]
        lines = ["defaults:", "  interval: 1s", "feeds:"]
        for site, name in self.names.items():
            source = next((p.get("source") or "" for p in self.by_site[site] if p.get("source")), "")
            lines += [f"  - name: {name}", f"    url: http://127.0.0.1:{port}/{name}", f"    source: {json.dumps(source)}"]
        return "\n".join(lines) + "\n"


def house_digest(entries: list[tuple[str, str, tuple[str, ...], str, str]]) -> str:
    """A house-style digest of (title, url, section, month, source) entries."""
    by_section: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for title, url, section, month, source in entries:
        year, mon = month.split("-")
        label = f"{MONTHS[int(mon) - 1]} {year}" + (f", {source}" if source else "")
        by_section[section].append(f"* [{title} ({label})]({url})")
    lines = ["# Summary of Important AI & ML Blog Posts", ""]
    seen_top: set[str] = set()
    for section in sorted(by_section):
        if section[0] not in seen_top:
            lines += [f"## {section[0]}", ""]
            seen_top.add(section[0])
        if len(section) > 1:
            lines += [f"### {section[1]}", ""]
        lines += by_section[section] + [""]
    return "\n".join(lines)


def cli(home: Path, *args: str) -> str:
    done = subprocess.run([*AGGREGATOR, "--config", str(home / "feeds.yaml"), "--quiet", *args], cwd=home,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"aggregator {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def situation(name: str, posts: list[dict], picks: dict, first: str, second: str) -> dict:
    feeds = Feeds(posts)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "feeds.yaml").write_text(feeds.config(), encoding="utf-8")
        upto = first if name == "steady state" else second  # the first day knows the digest's picks up to now
        earlier = [(e.title, url, e.section, e.month, e.source) for url, e in picks.items() if (e.month or "") < upto]
        (home / "earlier.md").write_text(house_digest(earlier), encoding="utf-8")
        cli(home, "import-digest", "earlier.md", "--month", "2000-01")
        if name == "steady state":
            feeds.month = first
            cli(home, "fetch", "--all")
            listed = [(p["title"], p["url"], picks[p["url"]].section, first, p.get("source") or "")
                      for p in posts if p["picked"] and p["date"][:7] == first and p["url"] in picks]
            (home / f"{first}.md").write_text(house_digest(listed), encoding="utf-8")
            cli(home, "import-digest", f"{first}.md", "--month", first)
        cli(home, "train")
        feeds.month = second
        cli(home, "fetch", "--all")
        draft = json.loads(cli(home, "draft", "--month", second, "--format", "json"))  # every candidate
        with Store(f"sqlite:///{home / 'aggregator.db'}") as store:
            labels = tuple(lb for _, lb in store.training_labels())
            start, _ = Edition(second).bounds()
            background = tuple(c for c in store.fetched_posts(before=start))
        feeds.server.shutdown()
    truth = {p["url"]: bool(p["picked"]) for p in posts if p["date"][:7] == second}
    rows = [c for c in draft if c["url"] in truth]
    y = [truth[c["url"]] for c in rows]
    split = Split(name, labels, background, ())
    candidates = [Candidate(0, c["url"], c["title"], "", "", start) for c in rows]
    out = {"situation": name, "posts": len(rows), "picks": sum(y),
           "model": score(y, [c["priority"] or 0.0 for c in rows], [bool(c["selected"]) for c in rows])}
    for method in BASELINES:  # fitted on the same decisions and background as the draft's model
        guesses = fit(method, split, now=start)(candidates)
        out[method] = score(y, [g.priority for g in guesses], [g.selected for g in guesses])
    return out


def replay(posts: list[dict], picks: dict, first: str, second: str) -> dict:
    """Both months fetched, and three editions imported (the digest's picks before `first`, then each month's
    picks): `aggregator eval --replay` walks them in order, the model beside every baseline."""
    feeds = Feeds(posts)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "feeds.yaml").write_text(feeds.config(), encoding="utf-8")
        feeds.month = second
        cli(home, "fetch", "--all")
        earlier = [(e.title, url, e.section, e.month, e.source) for url, e in picks.items() if (e.month or "") < first]
        (home / "earlier.md").write_text(house_digest(earlier), encoding="utf-8")
        cli(home, "import-digest", "earlier.md", "--month", "2000-01")
        for month in (first, second):
            listed = [(p["title"], p["url"], picks[p["url"]].section, month, p.get("source") or "")
                      for p in posts if p["picked"] and p["date"][:7] == month and p["url"] in picks]
            (home / f"{month}.md").write_text(house_digest(listed), encoding="utf-8")
            cli(home, "import-digest", f"{month}.md", "--month", month)
        report = json.loads(cli(home, "eval", "--replay", "--json"))
        feeds.server.shutdown()
    return report


def score(y: list[bool], p: list[float], chosen: list[bool]) -> dict:
    hits = sum(a and b for a, b in zip(y, chosen))
    precision = hits / max(sum(chosen), 1)
    recall = hits / max(sum(y), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"AP": round(float(average_precision_score(y, p)), 3), "selected": sum(chosen),
            "P": round(precision, 3), "R": round(recall, 3), "F1": round(f1, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--digest", type=Path, required=True)
    ap.add_argument("--first", default="2022-11", help="the month learned from (steady state)")
    ap.add_argument("--second", default="2022-12", help="the month drafted and scored")
    ap.add_argument("--aggregator", help="the command to run instead of this checkout's (e.g. another build's "
                    "venv/bin/aggregator), to compare two builds on the same data")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.aggregator:
        AGGREGATOR[:] = args.aggregator.split()
    posts = load(args.data)
    digest = read_digest(args.digest.read_text(encoding="utf-8"), path=str(args.digest))
    picks = {}
    for e in digest.entries:
        url = canonical_url(e.url)
        if url and url not in picks:
            picks[url] = e
    results = [situation(name, posts, picks, args.first, args.second) for name in ("first day", "steady state")]
    replayed = replay(posts, picks, args.first, args.second)
    if args.json:
        print(json.dumps({"situations": results, "replay": replayed}, indent=2))
        return
    print(f"{'situation':13s} {'method':9s} {'posts':>5s} {'picks':>5s} {'AP':>5s} {'sel':>4s} {'P':>5s} {'R':>5s} {'F1':>5s}")
    for r in results:
        for method in ("model", *BASELINES):
            f = r[method]
            print(f"{r['situation']:13s} {method:9s} {r['posts']:5d} {r['picks']:5d} {f['AP']:5.2f} {f['selected']:4d} "
                  f"{f['P']:5.2f} {f['R']:5.2f} {f['F1']:5.2f}")
    print(f"\neval --replay ({replayed['scenario']}), per edition: model AP, cut P/R/F1 | site rate AP, F1")
    fmt = lambda v: "  -  " if v is None else f"{v:5.2f}"  # noqa: E731
    for name, trained, f, rule in replayed["splits"]:
        print(f"  {name}  trained on {trained:3d}  picks {f['picks']:3d}  non-picks {f['non_picks']:3d}  AP {fmt(f['average_precision'])}"
              f"  P {fmt(f['cut_precision'])}  R {fmt(f['cut_recall'])}  F1 {fmt(f['cut_f1'])}"
              f" | {fmt(rule and rule['average_precision'])} {fmt(rule and rule['cut_f1'])}")
    print("  pooled:")
    for f in replayed["methods"]:
        print(f"  {f['method']:9s} picks {f['picks']:3d} non-picks {f['non_picks']:3d} leaf {fmt(f['leaf_accuracy'])} top {fmt(f['top_accuracy'])}"
              f"  AP {fmt(f['average_precision'])}  P {fmt(f['cut_precision'])}  R {fmt(f['cut_recall'])}  F1 {fmt(f['cut_f1'])}")


if __name__ == "__main__":
    main()
