"""Each draft and publish leaves a manifest of what it was made from, and a manifest makes the same selection again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import DATA, FeedServer, run_cli, trained_on_last_month

from aggregator.learn.reading import read_digest

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
