"""Files the editor owns are written whole, never through a planted link, and every failure is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DATA
from typer.testing import CliRunner, Result

from aggregator.cli import app

runner = CliRunner()
FEEDS_YAML = "feeds:\n  - name: A\n    url: https://a.example/feed\n"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "feeds.yaml").write_text(FEEDS_YAML, encoding="utf-8")
    (tmp_path / "victim").write_text("keep me", encoding="utf-8")
    return tmp_path


def run(home: Path, *args: str) -> Result:
    return runner.invoke(app, ["--config", str(home / "feeds.yaml"), *args])


def test_draft_out_never_writes_through_a_planted_temporary_link(home: Path) -> None:
    (home / "planted.md.tmp").symlink_to(home / "victim")
    result = run(home, "draft", "--month", "2022-12", "--out", str(home / "planted.md"))
    assert result.exit_code == 0, result.output
    assert (home / "victim").read_text(encoding="utf-8") == "keep me"
    assert (home / "planted.md").read_text(encoding="utf-8").startswith("# ")


def test_draft_out_onto_a_link_needs_force_and_then_replaces_the_link_not_its_target(home: Path) -> None:
    (home / "link.md").symlink_to(home / "victim")
    refused = run(home, "draft", "--month", "2022-12", "--out", str(home / "link.md"))
    assert refused.exit_code == 1 and "already exists" in refused.output
    assert run(home, "draft", "--month", "2022-12", "--out", str(home / "link.md"), "--force").exit_code == 0
    assert (home / "victim").read_text(encoding="utf-8") == "keep me" and not (home / "link.md").is_symlink()


def test_import_opml_never_writes_through_a_planted_temporary_link(home: Path) -> None:
    (home / "feeds.yaml.tmp").symlink_to(home / "victim")
    result = run(home, "feeds", "import-opml", str(DATA / "opml" / "small.opml"))
    assert result.exit_code == 0, result.output
    assert (home / "victim").read_text(encoding="utf-8") == "keep me"
    assert "netflix" in (home / "feeds.yaml").read_text(encoding="utf-8").lower()


def test_export_opml_refuses_a_folder_and_an_existing_file_in_one_line(home: Path) -> None:
    (home / "folder").mkdir()
    onto_folder = run(home, "feeds", "export-opml", "--out", str(home / "folder"))
    assert onto_folder.exit_code == 1 and "is a folder" in onto_folder.output and "Traceback" not in onto_folder.output
    (home / "link.opml").symlink_to(home / "victim")
    onto_link = run(home, "feeds", "export-opml", "--out", str(home / "link.opml"))
    assert onto_link.exit_code == 1 and "pass --force" in onto_link.output
    assert (home / "victim").read_text(encoding="utf-8") == "keep me"
    assert run(home, "feeds", "export-opml", "--out", str(home / "new" / "feeds.opml")).exit_code == 0
    assert (home / "new" / "feeds.opml").read_text(encoding="utf-8").startswith("<?xml")


def test_train_into_an_unwritable_models_place_is_one_line(home: Path) -> None:
    assert run(home, "import-digest", str(DATA / "digests" / "house_2022-12.md")).exit_code == 0
    (home / "models").write_text("a file where the folder should be", encoding="utf-8")
    result = run(home, "train")
    assert result.exit_code == 1 and "cannot save the model" in result.output and "Traceback" not in result.output
