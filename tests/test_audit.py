"""The audit: sources of the picks that no feed covers, feeds that supply no pick, picks per feed."""

from __future__ import annotations

from pathlib import Path

from conftest import DATA, FEEDS, FeedServer, run_cli

from aggregator.audit import uncovered_sites
from aggregator.learn.digest_reader import read_digest
from aggregator.links import Site

DIGESTS = DATA / "digests"
run = run_cli

COVERED = {"netflixtechblog.com": "https://netflixtechblog.com/feed",
           "medium.com/airbnb-engineering": "https://medium.com/feed/airbnb-engineering",
           "aws.amazon.com": "https://aws.amazon.com/blogs/machine-learning/feed/"}


def test_the_audit_lists_exactly_the_hosts_no_feed_covers_with_their_pick_counts(home: Path) -> None:
    feeds = "".join(f"  - name: F{i}\n    url: {url}\n" for i, url in enumerate(COVERED.values()))
    (home / "feeds.yaml").write_text("feeds:\n" + feeds, encoding="utf-8")
    assert run(home, "import-digest", str(DIGESTS / "house_2022-12.md")).exit_code == 0
    expected: dict[str, int] = {}
    for e in read_digest((DIGESTS / "house_2022-12.md").read_text(encoding="utf-8")).entries:
        host = Site.of(e.url).host
        publication = f"{host}/{e.url.split('/')[3]}" if host == "medium.com" else host
        if host not in COVERED and publication not in COVERED:
            expected[publication] = expected.get(publication, 0) + 1
    result = run(home, "audit")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = {}
    for line in lines[lines.index("sites of picks that no feed covers:") + 2:]:
        words = line.split()
        if len(words) >= 2 and words[1].isdigit():
            rows[words[0]] = int(words[1])
        elif line.startswith("feeds with no pick"):
            break
    assert rows == expected
    assert "(--discover)" in result.output


def test_uncovered_sites_count_picks_per_host_and_per_publication_on_shared_hosts() -> None:
    picked = ["https://netflixtechblog.com/a-1", "https://netflixtechblog.com/b-2", "https://medium.com/airbnb-engineering/x",
              "https://medium.com/pinterest-engineering/y", "https://medium.com/pinterest-engineering/z",
              "https://huggingface.co/blog/rlhf"]
    found = uncovered_sites(picked, ["https://netflixtechblog.com/c-3"], ["https://medium.com/feed/airbnb-engineering"])
    assert [(u.site, u.picks) for u in found] == [("medium.com/pinterest-engineering", 2), ("huggingface.co", 1)]


def test_discover_names_the_feed_an_uncovered_sites_page_advertises(home: Path, feed_server: FeedServer) -> None:
    page = b'<html><head><link rel="alternate" type="application/rss+xml" href="/blog/feed.xml"></head></html>'
    root = feed_server.serve("/", page, content_type="text/html")
    digest = home / "2022-12.md"
    digest.write_text(f"## 1. Posts\n### 1.1. All\n* [A Post (Dec 2022)]({root}blog/post-1)\n", encoding="utf-8")
    assert run(home, "import-digest", str(digest)).exit_code == 0
    result = run(home, "audit", "--discover")
    assert result.exit_code == 0 and f"{root}blog/feed.xml" in result.output.replace("\n", "").replace("│", "").replace(" ", "")


def test_feeds_shows_how_many_picks_each_feed_supplied(home: Path, feed_server: FeedServer) -> None:
    url = feed_server.serve("/ml.xml", FEEDS / "ml.rdf.xml", content_type="application/rdf+xml")
    (home / "feeds.yaml").write_text(f"feeds:\n  - name: ML\n    url: {url}\n    source: Google\n", encoding="utf-8")
    assert run(home, "-q", "fetch").exit_code == 0
    assert run(home, "import-digest", str(DIGESTS / "house_2022-12.md")).exit_code == 0
    table = run(home, "feeds").output
    assert "picks" in table.splitlines()[0]
    row = next(line for line in table.splitlines() if line.strip().startswith("ML"))
    assert " 3 " in row  # the three posts of the feed that the digest also lists
    idle = run(home, "audit", "--months", "1")
    assert idle.exit_code == 0
