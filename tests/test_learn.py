"""The editor's loop: import digests as labels, train, draft with the model, import the edited draft, evaluate."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from conftest import DATA, FeedServer, run_cli, trained_on_last_month

from aggregator.learn.labels import align_section, covered_months, digest_month, month_from_name, sections_without_source
from aggregator.learn.reading import read_digest
from aggregator.links import canonical_url

DIGESTS = DATA / "digests"
TAXONOMY = (("1. Research",), ("1. Research", "1.1. CV"), ("2. Business Cases and Implementations",),
            ("2. Business Cases and Implementations", "2.1. CV"),
            ("2. Business Cases and Implementations", "2.4. Training, Inference and MLOps"))



run = run_cli


def draft_entries(path: Path) -> set[tuple[tuple[str, ...], str]]:
    digest = read_digest(path.read_text(encoding="utf-8"), path=str(path))
    return {(e.section, canonical_url(e.url) or "") for e in digest.entries}


# -- pure rules -------------------------------------------------------------------------------

def test_month_rules() -> None:
    assert month_from_name("drafts/2022-12.md") == "2022-12"
    assert month_from_name("digest-20221.md") is None
    assert covered_months(["2022-12"] * 24 + ["2022-11"] * 35 + ["2020-12", "2023-01"]) == ["2022-11", "2022-12"]
    digest = read_digest((DIGESTS / "house_2022-12.md").read_text(encoding="utf-8"))
    assert digest_month(digest, "x.md", None) == "2022-12"
    assert digest_month(digest, "x.md", "2022-11") == "2022-11"


def test_old_section_names_align_to_the_taxonomy() -> None:
    # renamed parent, same number
    assert align_section(("2. Business Cases and Open Source Libraries", "2.1. CV"), TAXONOMY) == TAXONOMY[3]
    # unnumbered heading: the first leaf of that name
    assert align_section(("CV",), TAXONOMY) == TAXONOMY[1]
    assert align_section(("Something else",), TAXONOMY) == ("Something else",)
    assert align_section(TAXONOMY[4], TAXONOMY) == TAXONOMY[4]


def test_sections_printing_no_source_are_learned() -> None:
    rows = [(("3. AWS ML Only", "3.4. x"), "")] * 5 + [(("2. Business",), "Amazon")] * 4 + [(("2. Business",), "")]
    assert sections_without_source(rows) == ["3. AWS ML Only"]


# -- import --------------------------------------------------------------------------------------

def test_import_is_idempotent_and_versions_update_what_moved(home: Path) -> None:
    first = run(home, "import-digest", str(DIGESTS / "house_thin_002.md"), "--month", "2022-12")
    assert first.exit_code == 0 and "5 entries; 5 added, 0 moved, 0 removed; 5 posts known only" in first.output
    again = run(home, "import-digest", str(DIGESTS / "house_thin_002.md"), "--month", "2022-12")
    assert "unchanged (5 entries)" in again.output
    mid = run(home, "import-digest", str(DIGESTS / "house_mid_000.md"), "--month", "2022-12")
    assert mid.exit_code == 0 and "7 entries;" in mid.output
    full = run(home, "import-digest", str(DIGESTS / "house_2022-12.md"))  # month inferred: 2022-12
    # each entry in the month it printed: December's 10 replace the earlier versions' picks (5 of them left
    # out), November's 8 are a month it covers, and the four older or newer citations only add their picks
    assert full.exit_code == 0 and "house_2022-12.md: 2022-12: 10 entries; 8 added, 0 moved, 5 removed;" in full.output
    assert "house_2022-12.md: 2022-11: 8 entries; 8 added, 0 moved, 0 removed;" in full.output
    assert "house_2022-12.md: 2023-01: 1 entries; 1 added, 0 moved, 0 removed; 1 posts known only from the digest; " \
           "an edition it only cites: nothing left out" in full.output
    assert len(full.output.splitlines()) == 6
    again = run(home, "import-digest", str(DIGESTS / "house_2022-12.md"))
    assert again.output.count(": unchanged (") == 6


def test_footnote_and_weekly_digests_import_with_their_months(home: Path) -> None:
    footnote = run(home, "import-digest", str(DIGESTS / "footnote_2023-10.md"), "--month", "2023-10")
    weekly = run(home, "import-digest", str(DIGESTS / "weekly_2020-06.md"))  # month from its front matter
    assert footnote.exit_code == 0 and "footnote_2023-10.md: 2023-10: 6 entries; 6 added" in footnote.output
    assert weekly.exit_code == 0 and "weekly_2020-06.md: 2020-06: 5 entries; 5 added" in weekly.output


def test_bad_digests_are_refused_whole_with_file_and_line(home: Path, tmp_path: Path) -> None:
    bad = run(home, "import-digest", str(DIGESTS / "house_missing_url.md"), "--month", "2022-12")
    assert bad.exit_code == 1 and "house_missing_url.md:" in bad.output and "has no URL" in bad.output
    nothing = run(home, "import-digest", str(DIGESTS / "not_a_digest.md"))
    assert nothing.exit_code == 1 and "not a digest in any known style" in nothing.output
    assert "nothing to evaluate" in run(home, "eval").output
    train = run(home, "train")
    assert train.exit_code == 1 and "import a digest first" in train.output  # nothing half-imported


# -- train and draft -----------------------------------------------------------------------------

def test_round_trip_house_digest_to_draft_gives_the_same_entries_under_the_same_headings(home: Path) -> None:
    """Each entry is drafted in the edition its printed month names: the drafts of those months, together,
    give back the file's entries under its headings."""
    assert run(home, "import-digest", str(DIGESTS / "house_2022-12.md")).exit_code == 0
    trained = run(home, "train")
    assert trained.exit_code == 0 and "priority is a prior from AI/ML vocabulary" in trained.output
    drafted: set[tuple[tuple[str, ...], str]] = set()
    for month in ("2002-11", "2020-12", "2022-10", "2022-11", "2022-12", "2023-01"):
        result = run(home, "draft", "--month", month, "--out", str(home / f"{month}.md"))
        assert result.exit_code == 0, result.output
        drafted |= draft_entries(home / f"{month}.md")
    assert drafted == draft_entries(DIGESTS / "house_2022-12.md")
    text = (home / "2022-12.md").read_text(encoding="utf-8")
    assert "(Dec 2022)](https://aws.amazon.com/blogs/machine-learning/best-practices-for-amazon-sagemaker" in text
    assert "(Dec 2022, Amazon)](https://aws.amazon.com/blogs/machine-learning/automatically-retrain" in text
    assert "(Nov 2022" not in text and "(Nov 2022, OpenAI)](https://openai.com/blog/chatgpt/)" in \
        (home / "2022-11.md").read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings.index("## 1. Research") < headings.index("## 2. Business Cases and Implementations") \
        < headings.index("## 3. AWS ML Only")


def test_model_placement_of_new_posts_and_the_loop_closes(home: Path, feed_server: FeedServer) -> None:
    """Fetched posts get a section and a priority; the edited draft becomes the next labels."""
    trained_on_last_month(home, feed_server)  # last month's edition teaches the model; this month's draft is fetched
    out = run(home, "draft", "--month", "2022-12", "--format", "json")
    rows = json.loads(out.output)
    assert {"url", "title", "source", "published", "section", "section_confidence", "priority", "selected",
            "reasons"} <= set(rows[0])
    assert all(0.0 <= r["priority"] <= 1.0 and 0.0 <= r["section_confidence"] <= 1.0 for r in rows)
    assert all(r["section"] and r["section"][0][0].isdigit() for r in rows)  # placed in the digest's taxonomy

    written = run(home, "draft", "--month", "2022-12", "--max", "3")
    assert written.exit_code == 0
    path = home / "drafts" / "2022-12.md"
    text = path.read_text(encoding="utf-8")
    assert "## Candidates below the cut" in text and "<!-- priority " in text
    offered = draft_entries(path)

    # the unedited draft imported back yields exactly its selections
    back = run(home, "import-digest", str(path))
    assert back.exit_code == 0 and "2022-12: 3 entries; 3 added, 0 moved, 0 removed" in back.output
    # the editor deletes one entry and adds one by hand
    lines = text.splitlines()
    entry_lines = [i for i, line in enumerate(lines) if line.startswith("* [")
                   and i < lines.index("## Candidates below the cut")]
    deleted = lines[entry_lines[0]]
    del lines[entry_lines[0]]
    lines.insert(entry_lines[0], "* [A Post the Editor Added (Dec 2022, Netflix)](https://netflixtechblog.com/added-by-hand): 직접 추가")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    edited = run(home, "import-digest", str(path))
    assert edited.exit_code == 0 and "1 added" in edited.output and "1 removed" in edited.output
    assert len(offered) >= 1 and deleted.split("](")[1].split(")")[0] not in path.read_text(encoding="utf-8")
    retrained = run(home, "train")
    assert retrained.exit_code == 0 and "3 non-picks" in retrained.output  # the deleted entry and the 2 never chosen


def test_eval_prints_a_table_and_json(home: Path) -> None:
    run(home, "import-digest", str(DIGESTS / "weekly_2020-06.md"), str(DIGESTS / "house_2022-12.md"),
        str(DIGESTS / "footnote_2023-10.md"), "--month", "2023-10")
    # the --month above applies to every file; import the first two again with their own months
    run(home, "import-digest", str(DIGESTS / "weekly_2020-06.md"))
    run(home, "import-digest", str(DIGESTS / "house_2022-12.md"))
    table = run(home, "eval")
    assert table.exit_code == 0 and "leaf acc" in table.output and "2022-12" in table.output
    for method in ("model", "majority", "host", "flat", "site rate"):  # the baselines stand in the same table
        assert re.search(rf"^\s*{method}\s+\d+\s", table.output, re.M), method
    report = json.loads(run(home, "eval", "--json").output)
    names = [name for name, *_ in report["splits"]]
    assert "2022-11" in names and "2022-12" in names and names == sorted(names)
    assert [m["method"] for m in report["methods"]] == ["model", "majority", "host", "flat", "site rate"]
    assert all(0.0 <= m["leaf_accuracy"] <= 1.0 for m in report["methods"] if m["leaf_accuracy"] is not None)


def test_a_damaged_model_says_retrain_and_the_daemon_path_keeps_going(home: Path) -> None:
    run(home, "import-digest", str(DIGESTS / "house_2022-12.md"))
    run(home, "train")
    model = home / "models" / "model.npz"
    model.write_bytes(b"garbage")
    result = run(home, "draft", "--month", "2022-12")
    assert result.exit_code == 1 and "train" in result.output and "Traceback" not in result.output
    once = run(home, "run", "--once")
    assert once.exit_code == 0 and "drafts not refreshed" in once.output and "train" in once.output
    shutil.rmtree(home / "models")
    assert run(home, "draft", "--month", "2022-12").exit_code == 0  # no model: the unranked draft


def test_the_daemon_finishes_last_months_draft_once_the_month_ends(home: Path) -> None:
    from datetime import datetime, timezone

    from aggregator.config import load_config
    from aggregator.runtime import Runtime

    now = [datetime(2022, 12, 20, tzinfo=timezone.utc)]
    with Runtime(load_config(home / "feeds.yaml"), clock=lambda: now[0]) as rt:
        assert [m.split(" written")[0] for m in rt.refresh_drafts()] == [f"draft {home / 'drafts' / '2022-12.md'}"]
        now[0] = datetime(2023, 1, 2, tzinfo=timezone.utc)
        messages = rt.refresh_drafts()
        assert [m.split(" written")[0] for m in messages] == [f"draft {home / 'drafts' / '2022-12.md'}",
                                                               f"draft {home / 'drafts' / '2023-01.md'}"]
        now[0] = datetime(2023, 1, 3, tzinfo=timezone.utc)
        assert len(rt.refresh_drafts()) == 1  # last month's draft is final now


def test_the_daemon_trains_again_once_decisions_or_posts_changed(home: Path) -> None:
    from aggregator.config import load_config
    from aggregator.learn.model_file import load
    from aggregator.runtime import Runtime

    november = home / "house_mid_2022-11.md"  # an earlier version, its entries printed as November's
    november.write_text((DIGESTS / "house_mid_000.md").read_text(encoding="utf-8").replace("(Dec 2022", "(Nov 2022"),
                        encoding="utf-8")
    run(home, "import-digest", str(november), "--month", "2022-11")
    assert run(home, "train").exit_code == 0
    with Runtime(load_config(home / "feeds.yaml")) as rt:
        assert not any(m.startswith("model trained again") for m in rt.refresh_drafts())  # nothing new
        before = load(rt.model_dir()).meta["n_examples"]
        assert run(home, "import-digest", str(DIGESTS / "house_2022-12.md")).exit_code == 0
        messages = rt.refresh_drafts()
        assert messages[0].startswith("model trained again (posts or decisions changed since it was trained): ")
        assert load(rt.model_dir()).meta["n_examples"] > before
        assert not any(m.startswith("model trained again") for m in rt.refresh_drafts())


def test_an_edition_that_used_few_sections_drops_none_of_the_taxonomy() -> None:
    from aggregator.learn.labels import merge_trees

    full = [("1. Research",), ("1. Research", "1.1. CV"), ("1. Research", "1.2. NLP"), ("2. Business",),
            ("2. Business", "2.4. MLOps")]
    partial = [("1. Research",), ("1. Research", "1.2. NLP")]
    assert merge_trees([full, partial]) == tuple(full)
    renamed = [("2. Business Cases",), ("2. Business Cases", "2.4. Training and MLOps")]  # the newest names win
    assert merge_trees([full, renamed]) == (("1. Research",), ("1. Research", "1.1. CV"), ("1. Research", "1.2. NLP"),
                                            *renamed)
    assert merge_trees([[("Papers",), ("News",)], [("News",), ("Tools",)]]) == (("News",), ("Tools",), ("Papers",))
    assert merge_trees([]) == ()
