"""Each draft and publish leaves a manifest of what it was made from, and a manifest makes the same selection again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import DATA, FeedServer, run_cli, trained_on_last_month

from aggregator.digest.manifest import MAX_SELECTED
from aggregator.learn.reading import read_digest
from aggregator.limits import MAX_URL

DIGESTS = DATA / "digests"
run = run_cli


def test_a_draft_leaves_a_manifest_that_makes_the_same_selection_again(home: Path, feed_server: FeedServer) -> None:
    trained_on_last_month(home, feed_server)
    assert run(home, "draft", "--month", "2022-12", "--max", "3").exit_code == 0
    draft = home / "drafts" / "2022-12.md"
    manifest = json.loads((home / "drafts" / "2022-12.manifest.json").read_text(encoding="utf-8"))
    selected = {(e.url, e.section) for e in read_digest(draft.read_text(encoding="utf-8")).entries}
    assert {(s["url"], tuple(s["section"])) for s in manifest["selected"]} == selected and len(selected) == 3
    assert manifest["edition"] == "2022-12" and manifest["digest"] == "default" and manifest["candidates"] >= 3
    assert {f["name"] for f in manifest["feeds"]} == {"ML", "KR"} and all(f["last_success_at"] for f in manifest["feeds"])
    assert manifest["model"]["trained_at"] and manifest["model"]["label_counts"] and len(manifest["config_sha256"]) == 64
    assert manifest["aggregator_version"] and manifest["posts_until"]
    shutil.rmtree(home / "models")  # the model that made it is gone: the manifest alone makes it again
    again = run(home, "draft", "--manifest", str(home / "drafts" / "2022-12.manifest.json"), "--out", "-")
    assert again.exit_code == 0
    assert {(e.url, e.section) for e in read_digest(again.output).entries} == selected


def test_publish_leaves_a_manifest_beside_the_running_file(home: Path, feed_server: FeedServer) -> None:
    trained_on_last_month(home, feed_server)
    readme = home / "README.md"
    readme.write_text((DIGESTS / "house_mid_000.md").read_text(encoding="utf-8"), encoding="utf-8")
    assert run(home, "publish", "--month", "2022-12", "--into", str(readme), "--dry-run").exit_code == 0
    assert not (home / "README.2022-12.manifest.json").exists()  # a dry run writes nothing
    assert run(home, "publish", "--month", "2022-12", "--into", str(readme)).exit_code == 0
    manifest = json.loads((home / "README.2022-12.manifest.json").read_text(encoding="utf-8"))
    assert manifest["output"] == str(readme) and manifest["edition"] == "2022-12" and isinstance(manifest["selected"], list)


def test_a_damaged_manifest_is_one_line(home: Path) -> None:
    bad = home / "bad.manifest.json"
    for content in ("{not json", json.dumps({"format": 1, "digest": "default", "edition": "2022-12",
                                             "selected": [{"url": 3}]}), json.dumps([1])):
        bad.write_text(content, encoding="utf-8")
        result = run(home, "draft", "--manifest", str(bad), "--out", "-")
        assert result.exit_code == 1 and str(bad) in result.output and len(result.output.strip().splitlines()) == 1


def test_a_manifest_whose_edition_is_no_edition_is_one_line_naming_the_file(home: Path) -> None:
    bad = home / "bad.manifest.json"
    for edition in ("2022-13", "../../etc/passwd", "2021-W53"):
        bad.write_text(json.dumps({"format": 1, "digest": "default", "edition": edition, "selected": []}), encoding="utf-8")
        result = run(home, "draft", "--manifest", str(bad), "--out", "-")
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1 and str(bad) in result.output and repr(edition) in result.output


# -- Hardening, round three, medium 4: a crafted manifest is refused, not rendered ------------------


def _replay(home: Path, selected: object, **fields: object) -> tuple[int, str]:
    bad = home / "crafted.manifest.json"
    data = {"format": 1, "digest": "default", "edition": "2022-12", "selected": selected, **fields}
    bad.write_text(json.dumps(data), encoding="utf-8")
    result = run(home, "draft", "--manifest", str(bad), "--out", "-")
    assert "Traceback" not in result.output
    if result.exit_code == 1:  # one line, naming the file
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and str(bad) in lines[0]
    return result.exit_code, result.output


def test_medium4_a_manifest_section_twenty_thousand_levels_deep_is_one_line(home: Path) -> None:
    code, output = _replay(home, [{"url": "https://example.com/a", "section": ["x"] * 20_000}])
    assert code == 1 and "20000 levels deep" in output and len(output) < 1000


def test_medium4_a_manifest_section_name_of_five_megabytes_is_one_line(home: Path) -> None:
    code, output = _replay(home, [{"url": "https://example.com/a", "section": ["1. Posts", "x" * 5 * 2**20]}])
    assert code == 1 and "heading" in output and len(output) < 1000


@pytest.mark.parametrize(("selected", "fields", "what"), [
    ([{"url": "https://example.com/" + "a" * MAX_URL, "section": ["1. Posts"]}], {}, "no link"),
    ([{"url": "https://example.com/a\n# injected", "section": ["1. Posts"]}], {}, "no link"),
    ([{"url": "https://example.com/a", "section": ["1. Posts\n# injected"]}], {}, "heading"),
    ([{"url": "https://example.com/a", "section": ["  "]}], {}, "heading"),
    ([{"url": f"https://example.com/{i}", "section": ["1. Posts"]} for i in range(MAX_SELECTED + 1)], {}, "posts, over"),
    ([], {"digest": "d" * 5 * 2**20}, "digest"),
    ([], {"edition": "2" * 5 * 2**20}, "edition"),
])
def test_medium4_a_manifest_past_the_caps_is_one_line_naming_the_file(home: Path, selected: object,
                                                                      fields: dict[str, object], what: str) -> None:
    code, output = _replay(home, selected, **fields)
    assert code == 1 and what in output and len(output) < 1000


def test_medium4_a_manifest_section_outside_the_digests_taxonomy_is_refused(home: Path) -> None:
    assert run(home, "import-digest", str(DIGESTS / "house_2022-12.md")).exit_code == 0
    tree = [e.section for e in read_digest((DIGESTS / "house_2022-12.md").read_text(encoding="utf-8")).entries]
    code, output = _replay(home, [{"url": "https://example.com/a", "section": ["9. Invented", "9.1. Elsewhere"]}])
    assert code == 1 and "not in the digest's taxonomy" in output and "9. Invented" in output
    code, output = _replay(home, [{"url": "https://example.com/a", "section": list(tree[0])}])
    assert code == 0
