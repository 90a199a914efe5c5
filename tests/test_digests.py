"""Several digests in one install: each its own labels, taxonomy, model, style and cadence."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from conftest import DATA, FeedServer
from typer.testing import CliRunner, Result

from aggregator.cli import app
from aggregator.learn.reading import read_digest
from aggregator.links import canonical_url
from aggregator.models import Edition

DIGESTS = DATA / "digests"
runner = CliRunner()

FEEDS_YAML = """feeds: []
digests:
  - name: house
    title: Summary of Important AI & ML Blog Posts
  - name: trends
    title: 2023 AI 기술 트렌드
    style: footnote
    tags: [ai-trend]
  - name: news
    title: Weekly ML/DL News
    style: weekly
    cadence: weekly
    category: news
    tags: [ML, DL]
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "feeds.yaml").write_text(FEEDS_YAML, encoding="utf-8")
    return tmp_path


def run(home: Path, *args: str) -> Result:
    return runner.invoke(app, ["--config", str(home / "feeds.yaml"), *args])


def entries(text: str) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(canonical_url(e.url) or e.url, e.title, e.section) for e in read_digest(text).entries}


def one_line(output: str) -> str:
    """Typer's error box as one line of words."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", output).split())


def test_three_digests_each_draft_their_own_entries_in_their_own_style(home: Path) -> None:
    fixtures = {"house": ("house_2022-12.md", "--month", "2022-12"), "trends": ("footnote_2023-10.md", "--month", "2023-10"),
                "news": ("weekly_2020-06.md", "--week", "2020-W25")}
    imported = {}
    for name, (fixture, *_) in fixtures.items():
        text = (DIGESTS / fixture).read_text(encoding="utf-8")
        if name == "house":  # every entry printed as December's, so that the one edition holds them all
            text = re.sub(r"\((?:Jan|Oct|Nov|Dec) (?:2002|2020|2022|2023)", "(Dec 2022", text)
        (home / fixture).write_text(text, encoding="utf-8")
        result = run(home, "import-digest", str(home / fixture), "--digest", name)
        assert result.exit_code == 0, result.output
        imported[name] = entries(text)
    assert "2020-W25" in run(home, "import-digest", str(DIGESTS / "weekly_2020-06.md"), "--digest", "news").output
    for name in fixtures:
        trained = run(home, "train", "--digest", name)
        assert trained.exit_code == 0 and f"saved to {home / 'models' / name}" in trained.output, trained.output
    drafts = {}
    for name, (_, option, edition) in fixtures.items():
        result = run(home, "draft", "--digest", name, option, edition)
        assert result.exit_code == 0, result.output
        path = home / "drafts" / name / f"{edition}.md"
        drafts[name] = path.read_text(encoding="utf-8")
    assert read_digest(drafts["house"]).style == "house"
    assert read_digest(drafts["trends"]).style == "footnote" and drafts["trends"].startswith("---\ntitle: ")
    assert "## 💡 **News**" in drafts["trends"].splitlines()  # the emoji the editor's own post gave the section
    assert read_digest(drafts["news"]).style == "weekly" and "## 목차" in drafts["news"]
    for name in fixtures:  # the same entries under the same sections, each in its own style
        assert entries(drafts[name]) == imported[name], name
    house_sections = {s for _, _, s in entries(drafts["house"])}
    other_sections = {s for n in ("trends", "news") for _, _, s in entries(drafts[n])}
    assert house_sections == {s for _, _, s in imported["house"]} and not house_sections & other_sections
    # an unedited draft imported back into its digest changes nothing
    for name, (_, option, edition) in fixtures.items():
        back = run(home, "import-digest", str(home / "drafts" / name / f"{edition}.md"), "--digest", name)
        assert back.exit_code == 0 and "0 added, 0 moved, 0 removed" in back.output, (name, back.output)


def test_a_digest_learns_nothing_from_another_digests_labels(home: Path) -> None:
    run(home, "import-digest", str(DIGESTS / "house_2022-12.md"), "--digest", "house")
    run(home, "import-digest", str(DIGESTS / "footnote_2023-10.md"), "--digest", "trends")
    run(home, "train", "--digest", "house")
    run(home, "train", "--digest", "trends")
    house = json.loads((home / "models" / "house" / "meta.json").read_text(encoding="utf-8"))
    trends = json.loads((home / "models" / "trends" / "meta.json").read_text(encoding="utf-8"))
    assert house["n_positives"] == 22 and all(s[0][0].isdigit() for s in house["sections"])
    assert trends["n_positives"] == 6 and {s[0] for s in trends["sections"]} <= {"News", "Papers", "MLOps"}
    assert not run(home, "eval", "--digest", "news", "--json").exit_code


@pytest.mark.parametrize("args, message", [
    (("draft", "--digest", "news", "--month", "2020-06"), "digest 'news' is weekly: use --week YYYY-Www"),
    (("draft", "--digest", "house", "--week", "2020-W25"), "digest 'house' is monthly: use --month YYYY-MM"),
    (("draft", "--digest", "news", "--week", "2021-W53"), "that year has no week 53"),
    (("draft", "--month", "2022-12"), "there are 3 digests (house, trends, news): pass --digest NAME"),
    (("train", "--digest", "nope"), "no digest named 'nope'"),
])
def test_the_wrong_period_or_digest_is_one_clear_error(home: Path, args: tuple[str, ...], message: str) -> None:
    result = run(home, *args)
    assert result.exit_code != 0
    assert message in one_line(result.output) and "Traceback" not in result.output


def test_iso_weeks_split_sunday_night_from_monday_morning_and_cross_years() -> None:
    sunday = datetime(2023, 10, 8, 23, 59, tzinfo=timezone.utc)
    monday = datetime(2023, 10, 9, 0, 0, tzinfo=timezone.utc)
    assert (Edition.week(sunday), Edition.week(monday)) == ("2023-W40", "2023-W41")
    start, end = Edition("2023-W41").bounds()
    assert start == monday and end == datetime(2023, 10, 16, tzinfo=timezone.utc)
    assert Edition.week(date(2021, 1, 3)) == "2020-W53" and Edition.week(date(2021, 1, 4)) == "2021-W01"
    assert Edition("2020-W53").bounds() == (datetime(2020, 12, 28, tzinfo=timezone.utc), datetime(2021, 1, 4, tzinfo=timezone.utc))
    assert Edition.week(date(2024, 12, 30)) == "2025-W01"  # a Monday of December in the next ISO year
    assert Edition("2023-10").bounds()[0] == datetime(2023, 10, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, message", [
    ("2022-13", "'2022-13' is not a month like 2022-12"),
    ("2022-00", "is not a month like 2022-12"),
    ("0000-01", "is not a month like 2022-12"),
    ("2021-W53", "'2021-W53' is not an ISO week like 2023-W40 (that year has no week 53)"),
    ("2023-W00", "(that year has no week 00)"),
    ("2023-w40", "'2023-w40' is not a month like 2022-12 or an ISO week like 2023-W40"),
    ("Dec 2022", "is not a month like 2022-12 or an ISO week like 2023-W40"),
    ("", "is not a month like 2022-12 or an ISO week like 2023-W40"),
    (" 2022-12", "' 2022-12' is not a month like 2022-12"),  # surrounding whitespace is refused, not stripped
])
def test_an_edition_is_a_month_or_an_iso_week_and_anything_else_is_one_line_naming_it(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Edition(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_an_edition_is_its_text_and_knows_its_cadence_and_bounds() -> None:
    month, week = Edition("2022-12"), Edition("2020-W53")
    assert (month, week) == ("2022-12", "2020-W53") and isinstance(month, str)
    assert f"{month}.md" == "2022-12.md" and json.dumps({"edition": week}) == '{"edition": "2020-W53"}'
    assert (month.weekly, month.cadence, week.weekly, week.cadence) == (False, "monthly", True, "weekly")
    assert month.bounds() == (datetime(2022, 12, 1, tzinfo=timezone.utc), datetime(2023, 1, 1, tzinfo=timezone.utc))
    assert week.bounds() == (datetime(2020, 12, 28, tzinfo=timezone.utc), datetime(2021, 1, 4, tzinfo=timezone.utc))
    assert Edition(month) is month and sorted([Edition("2023-01"), month]) == ["2022-12", "2023-01"]
    sunday = datetime(2023, 10, 8, 23, 59, tzinfo=timezone.utc)
    assert (Edition.of("monthly", sunday), Edition.of("weekly", sunday)) == ("2023-10", "2023-W40")
    assert Edition.of("weekly", date(2024, 12, 30)) == "2025-W01" and Edition.month(date(2024, 12, 30)) == "2024-12"
    assert type(Edition.of("weekly", sunday)) is Edition
    assert Edition.named("2022-12", "monthly") == "2022-12" and Edition.named("2023-W40", "weekly") == "2023-W40"
    with pytest.raises(ValueError, match="'2023-W40' is not a month like 2022-12"):
        Edition.named("2023-W40", "monthly")
    with pytest.raises(ValueError, match="'2022-12' is not an ISO week like 2023-W40"):
        Edition.named("2022-12", "weekly")


RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Week</title><link>https://week.example/</link>
<item><title>Late on Sunday</title><link>https://week.example/sunday</link><pubDate>Sun, 08 Oct 2023 23:59:00 GMT</pubDate></item>
<item><title>Early on Monday</title><link>https://week.example/monday</link><pubDate>Mon, 09 Oct 2023 00:00:00 GMT</pubDate></item>
</channel></rss>"""


def test_a_weekly_draft_holds_the_posts_of_its_iso_week_only(home: Path, feed_server: FeedServer) -> None:
    url = feed_server.serve("/week.xml", RSS.encode("utf-8"), content_type="application/rss+xml")
    (home / "feeds.yaml").write_text(FEEDS_YAML.replace("feeds: []", f"feeds:\n  - name: Week\n    url: {url}"),
                                     encoding="utf-8")
    assert run(home, "-q", "fetch").exit_code == 0
    for week, title in (("2023-W40", "Late on Sunday"), ("2023-W41", "Early on Monday")):
        rows = json.loads(run(home, "draft", "--digest", "news", "--week", week, "--format", "json").output)
        assert [r["title"] for r in rows] == [title]


def test_the_daemon_refreshes_every_digests_current_edition_and_finishes_the_last(home: Path) -> None:
    from aggregator.config import load_config
    from aggregator.runtime import Runtime

    now = [datetime(2023, 10, 8, 12, 0, tzinfo=timezone.utc)]  # a Sunday: week 2023-W40, month 2023-10
    with Runtime(load_config(home / "feeds.yaml"), clock=lambda: now[0]) as rt:
        messages = rt.refresh_drafts()
        assert [m.split(":")[0] for m in messages] == ["house", "trends", "news"]
        for name, edition in (("house", "2023-10"), ("trends", "2023-10"), ("news", "2023-W40")):
            assert (home / "drafts" / name / f"{edition}.md").is_file()
        assert 'categories: ["news"]' in (home / "drafts" / "news" / "2023-W40.md").read_text(encoding="utf-8")
        now[0] = datetime(2023, 10, 9, 0, 0, tzinfo=timezone.utc)  # Monday: the week is over, the month is not
        news = [m for m in rt.refresh_drafts() if m.startswith("news:")]
        assert [m.split(" written")[0] for m in news] == [f"news: draft {home / 'drafts' / 'news' / '2023-W40.md'}",
                                                          f"news: draft {home / 'drafts' / 'news' / '2023-W41.md'}"]


def test_an_edited_footnote_draft_records_the_editors_decisions(home: Path) -> None:
    run(home, "import-digest", str(DIGESTS / "footnote_2023-10.md"), "--digest", "trends")
    run(home, "train", "--digest", "trends")
    assert run(home, "draft", "--digest", "trends", "--month", "2023-10").exit_code == 0
    path = home / "drafts" / "trends" / "2023-10.md"
    lines = path.read_text(encoding="utf-8").splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("### "))
    end = next(i for i in range(first + 1, len(lines)) if lines[i].startswith(("### ", "## ")))
    ref = lines[first].rsplit("[^", 1)[1].rstrip("]")
    kept = [line for i, line in enumerate(lines) if not first <= i < end and not line.startswith(f"[^{ref}]:")]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    edited = run(home, "import-digest", str(path), "--digest", "trends")
    assert edited.exit_code == 0 and "0 added, 0 moved, 1 removed" in edited.output, edited.output


def test_run_once_can_refresh_one_digest(home: Path) -> None:
    result = run(home, "run", "--once", "--digest", "trends")
    assert result.exit_code == 0, result.output
    assert list((home / "drafts").iterdir()) == [home / "drafts" / "trends"]
