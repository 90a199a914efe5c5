"""One meaning of "edition": the rule that files an entry, and one entry's edition through every command."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from conftest import FeedServer, run_cli

from aggregator.config import load_config
from aggregator.learn.labels import entry_edition
from aggregator.models import Edition
from aggregator.store import Store
from aggregator.web.desk import Desk

NOVEMBER, DECEMBER = Edition("2022-11"), Edition("2022-12")


# -- the rule --------------------------------------------------------------------------------------------


def test_a_house_entry_belongs_to_the_month_it_printed_whatever_its_post_or_digest_says() -> None:
    published = datetime(2022, 12, 1, 3, tzinfo=timezone.utc)  # "(Nov 2022, …)": the editor's month wins
    assert entry_edition("monthly", printed="2022-11", published=published, fallback=DECEMBER) == NOVEMBER
    assert entry_edition("monthly", printed="2022-11", published=None, fallback=DECEMBER) == NOVEMBER


def test_an_entry_that_printed_no_date_belongs_to_its_posts_month_or_else_to_its_digests_edition() -> None:
    published = datetime(2022, 11, 30, 23, 59, tzinfo=timezone.utc)
    assert entry_edition("monthly", printed=None, published=published, fallback=DECEMBER) == NOVEMBER
    assert entry_edition("monthly", printed=None, published=None, fallback=DECEMBER) == DECEMBER


def test_a_weekly_entry_belongs_to_the_iso_week_of_its_posts_date_or_else_to_its_digests_week() -> None:
    week = Edition("2023-W41")
    sunday_night = datetime(2023, 10, 8, 23, 59, tzinfo=timezone.utc)  # the last minute of 2023-W40
    assert entry_edition("weekly", printed=None, published=sunday_night, fallback=week) == "2023-W40"
    assert entry_edition("weekly", printed=None, published=datetime(2023, 10, 9, tzinfo=timezone.utc),
                         fallback=week) == "2023-W41"
    assert entry_edition("weekly", printed="2023-09", published=None, fallback=week) == week  # a month names no week
    new_year = datetime(2021, 1, 2, tzinfo=timezone.utc)  # ISO week 53 of 2020
    assert entry_edition("weekly", printed=None, published=new_year, fallback=week) == "2020-W53"


def test_a_printed_month_that_is_no_month_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="'2022-13' is not a month like 2022-12"):
        entry_edition("monthly", printed="2022-13", published=None, fallback=DECEMBER)


# -- one entry, every command -----------------------------------------------------------------------------

def _at(day: int, month: int = 11) -> datetime:
    return datetime(2022, month, day, 12, tzinfo=timezone.utc)


# name -> (published, how the running README lists it: None not at all)
POSTS = {
    "nov-a": (_at(20), "* [Post nov-a (Nov 2022, Lab)]({url}): a November pick"),
    "nov-b": (_at(28), "* [Post nov-b (Nov 2022, Lab)]({url})"),
    "nov-undated": (_at(25), "* [Post nov-undated]({url}): printed no date; its post was published in November"),
    "nov-skipped": (_at(15), None),
    "dec-a": (_at(5, 12), "* [Post dec-a (Dec 2022, Lab)]({url})"),
    "dec-b": (_at(12, 12), "* [Post dec-b (Dec 2022, Lab)]({url})"),
    "dec-skipped": (_at(20, 12), None),
}
UNFETCHED = "https://elsewhere.example/undated"  # printed no date and never fetched: the digest's own edition
EXPECTED = {"nov-a": NOVEMBER, "nov-b": NOVEMBER, "nov-undated": NOVEMBER, "dec-a": DECEMBER, "dec-b": DECEMBER,
            UNFETCHED: DECEMBER}


def _rss(base: str) -> str:
    items = "".join(f"<item><title>Post {name}</title><link>{base}/{name}</link><guid>{name}</guid>"
                    f"<description>About {name}.</description><pubDate>{format_datetime(when)}</pubDate></item>"
                    for name, (when, _) in POSTS.items())
    return f"<?xml version='1.0'?><rss version='2.0'><channel><title>Lab</title><link>{base}</link>{items}</channel></rss>"


def _readme(base: str) -> str:
    lines = [line.format(url=f"{base}/{name}") for name, (_, line) in POSTS.items() if line]
    return ("# Summary of Important AI & ML Blog Posts\n\n## 1. Research\n### 1.1. CV\n" + "\n".join(lines[:3])
            + "\n\n## 2. Business Cases and Implementations\n### 2.1. CV\n" + "\n".join(lines[3:])
            + f"\n* [A post never fetched]({UNFETCHED})\n")


def _home(root: Path, feed_server: FeedServer) -> tuple[Path, str]:
    home = root
    home.mkdir(parents=True, exist_ok=True)
    url = feed_server.serve("/lab.xml", _rss(feed_server.url("/p")), content_type="application/rss+xml")
    (home / "feeds.yaml").write_text(f"feeds:\n  - name: Lab\n    url: {url}\n    source: Lab\n", encoding="utf-8")
    assert run_cli(home, "-q", "fetch").exit_code == 0
    return home, feed_server.url("/p")


def _name(url: str) -> str:
    """A served post's name (the last part of its link), or the link of a post served by nobody."""
    return url.rsplit("/", 1)[-1] if "/p/" in url else url


def _editions(home: Path) -> dict[str, str]:
    """post name (or link) -> the edition of its stored decision."""
    with Store(f"sqlite:///{home / 'aggregator.db'}") as store:
        return {_name(lb.candidate.url): edition for edition, lb in store.training_labels()}


def test_an_entrys_edition_is_the_same_through_import_digest_import_history_draft_the_desk_and_eval(
        tmp_path: Path, feed_server: FeedServer) -> None:
    """A running README of two months: each entry is filed in the month its line printed, else its post's
    month, else the README's own edition, by import-digest and import-history alike; that month's draft,
    desk page, eval split and publish hold it, and the other month's do not."""
    digest_home, base = _home(tmp_path / "digest", feed_server)
    readme = digest_home / "README.md"
    readme.write_text(_readme(base), encoding="utf-8")
    imported = run_cli(digest_home, "import-digest", str(readme))
    assert imported.exit_code == 0, imported.output
    assert [line.split(": ", 2)[1] for line in imported.output.splitlines()] == ["2022-11", "2022-12"]
    by_import = _editions(digest_home)
    assert by_import == {**EXPECTED, "nov-skipped": NOVEMBER, "dec-skipped": DECEMBER}  # left out: non-picks there

    # import-history of the same README, committed once in December, into a database of its own
    history_home, _ = _home(tmp_path / "history", feed_server)
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=60)
    (repo / "README.md").write_text(_readme(base), encoding="utf-8")
    env = {**os.environ, "GIT_AUTHOR_DATE": "2022-12-28T10:00:00+00:00", "GIT_COMMITTER_DATE": "2022-12-28T10:00:00+00:00"}
    for args in (["add", "README.md"], ["-c", "user.name=E", "-c", "user.email=e@localhost", "commit", "-q", "-m", "m"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env, capture_output=True, timeout=60)
    history = run_cli(history_home, "import-history", str(repo))
    assert history.exit_code == 0, history.output
    assert _editions(history_home) == by_import

    # the draft, the desk's page and publish of each month hold its entries, and only its own
    assert run_cli(digest_home, "train").exit_code == 0
    config = load_config(digest_home / "feeds.yaml")
    for edition in (NOVEMBER, DECEMBER):
        mine = {name for name, e in by_import.items() if e == edition}
        drafted = json.loads(run_cli(digest_home, "draft", "--month", edition, "--format", "json", "--no-train").output)
        assert {_name(row["url"]) for row in drafted} == mine, edition
        with Store(config.default_db_url()) as store:
            desk = Desk(store, config, config.digest(None), model=None, model_dir=digest_home / "models",
                        clock=lambda: _at(30, 12))
            view = desk.view(edition)
            shown = {_name(r.url) for g in view.groups for r in g.rows}
        assert shown == mine, edition
        target = digest_home / f"running-{edition}.md"
        target.write_text("# Digest\n\n## 1. Research\n### 1.1. CV\n* [Older (Oct 2022, X)](https://old.example/x)\n",
                          encoding="utf-8")
        published = run_cli(digest_home, "publish", "--month", edition, "--into", str(target), "--dry-run")
        assert published.exit_code == 0, published.output
        added = {_name(m) for m in re.findall(r"^\+\* \[.*\]\(([^)]+)\)", published.output, re.M)}
        # the month's picks, and nothing of the other month (an undecided post above the cut may join them)
        assert {name for name in mine if not name.endswith("skipped")} <= added <= mine, edition

    # eval: December is predicted from November's decisions and holds December's own
    report = json.loads(run_cli(digest_home, "eval", "--json").output)
    [(name, trained, scores, _rule)] = report["splits"]
    assert name == "2022-12" and trained == 4 and scores["picks"] == 3 and scores["non_picks"] == 1
