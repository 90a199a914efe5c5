"""Do Kiwi's morphemes file Korean titles better than Hangul syllable pairs? Prints both, split by split.

Korean titles come from the AI-trend digest, whose editor wrote a Korean heading for each footnoted
item (`rows[].heading`), and from any house-style digests given (their Korean titles only, left out
one at a time). Needs `pip install kiwipiepy` (its model comes as the kiwipiepy-model package):

    python benchmarks/korean_tokens.py --items PATH/standing_o_ai_trend_items.json [--digest PATH ...]
"""

from __future__ import annotations

import argparse
import functools
import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from aggregator.learn import features
from aggregator.learn.evaluate import Split, edition_splits, leave_one_out, run
from aggregator.learn.labels import import_entries
from aggregator.learn.reading import read_digest
from aggregator.models import Candidate, Edition, Label

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
_HANGUL = re.compile("[\uac00-\ud7a3]")


def kiwi_analyzer() -> Callable[[str], list[str]]:
    """`features.analyze` with Kiwi's content morphemes in place of Hangul syllable pairs."""
    from kiwipiepy import Kiwi

    kiwi = Kiwi()
    plain = features.analyze

    @functools.lru_cache(maxsize=200_000)
    def morphemes(text: str) -> tuple[str, ...]:
        return tuple(f"~{t.form}" for t in kiwi.tokenize(text) if t.tag.startswith(("NN", "VV", "VA", "XR", "SL", "SH")))

    def analyze(doc: str) -> list[str]:
        out = [f for f in plain(doc) if not f.startswith(features.HANGUL_MARK)]
        title, _, rest = doc.lower().partition("\n")
        body = rest.partition("\n")[0]
        if _HANGUL.search(title) or _HANGUL.search(body):
            out += morphemes(f"{title} {body}")
        return out

    return analyze


def trend_labels(path: Path) -> list[tuple[Edition, Label]]:
    """(month, pick) for each row of the AI-trend digest, the editor's Korean heading as the title."""
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, row in enumerate(data.get("rows", [])):
        match = re.search(r"(\d{4})-(\d{2})-\d{2}", row.get("post", ""))
        url, heading = row.get("url", "").strip(), row.get("heading", "")
        if not match or not url.startswith("http") or not _HANGUL.search(heading):
            continue
        section = re.sub(r"[^\w\s,&]", "", row.get("section", "")).strip()
        when = datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=timezone.utc)
        out.append((Edition.month(when), Label(Candidate(i, url, heading, "", "", when), (section,), True)))
    return out


def digest_labels(path: Path) -> list[tuple[str, Label]]:
    """("digest", pick) for each entry of a house digest whose title has Hangul."""
    digest = read_digest(path.read_text(encoding="utf-8"), path=str(path))
    return [("digest", Label(Candidate(0, e.url, e.title, "", e.source, e.published), e.section, True))
            for e in import_entries(digest, "2022-12")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=Path, required=True, help="the AI-trend rows (JSON with `rows`)")
    parser.add_argument("--digest", type=Path, action="append", default=[], help="a house-style digest")
    args = parser.parse_args()
    cases: list[tuple[str, list[Split]]] = []
    cases.append(("AI-trend headings, month by month",
                  list(edition_splits(trend_labels(args.items), []))))
    for path in args.digest:
        labels = digest_labels(path)
        korean = [i for i, (_, lb) in enumerate(labels) if _HANGUL.search(lb.candidate.title)]
        splits = [s for i, s in enumerate(leave_one_out(labels, [], "digest")) if i in korean]
        cases.append((f"{path.name}: its {len(korean)} Korean titles, left out one at a time", splits))
    plain = features.analyze
    for name, splits in cases:
        print(name)
        for tokens, analyzer in (("Hangul pairs", plain), ("Kiwi morphemes", kiwi_analyzer())):
            features.analyze = analyzer  # type: ignore[assignment]
            figures = run(name, splits, now=NOW, methods=("model",)).methods[0]
            print(f"  {tokens:15} picks {figures.picks:4}  leaf acc {figures.leaf_accuracy:.2f}  "
                  f"top acc {figures.top_accuracy:.2f}")
        features.analyze = plain  # type: ignore[assignment]


if __name__ == "__main__":
    main()
