"""Files the editor owns are written whole, never through a planted link, and every failure is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DATA, december_digest
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
    assert run(home, "import-digest", str(december_digest(home))).exit_code == 0
    (home / "models").write_text("a file where the folder should be", encoding="utf-8")
    result = run(home, "train")
    assert result.exit_code == 1 and "cannot save the model" in result.output and "Traceback" not in result.output


# Medium 2: writers keep a file's mode, owner, links and hard links; a new file gets open()'s mode.

def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_into(home: Path, readme: Path) -> Result:
    assert run(home, "import-digest", str(december_digest(home))).exit_code == 0
    assert run(home, "train").exit_code == 0
    return run(home, "publish", "--month", "2022-12", "--into", str(readme))


def test_medium2_publish_into_a_symlinked_readme_updates_its_target_and_keeps_the_link(home: Path) -> None:
    real = home / "repo" / "README.md"
    real.parent.mkdir()
    real.write_text((DATA / "digests" / "house_mid_000.md").read_text(encoding="utf-8"), encoding="utf-8")
    real.chmod(0o664)
    link = home / "README.md"
    link.symlink_to(real)
    before = real.read_text(encoding="utf-8")
    result = _publish_into(home, link)
    assert result.exit_code == 0 and "20 entries added" in result.output, result.output
    assert link.is_symlink() and link.resolve() == real.resolve()
    after = real.read_text(encoding="utf-8")
    assert after != before and len(after) > len(before)
    assert (real.stat().st_mode & 0o777) == 0o664
    assert not [p for p in (home / "repo").iterdir() if p.name != "README.md"]  # no temporary left behind


def test_medium2_a_0664_file_keeps_0664(tmp_path: Path) -> None:
    from aggregator.files import atomic_write

    path = tmp_path / "README.md"
    path.write_text("old\n", encoding="utf-8")
    path.chmod(0o664)
    atomic_write(path, b"new\n")
    assert path.read_bytes() == b"new\n" and (path.stat().st_mode & 0o777) == 0o664
    atomic_write(path, b"newer\n", follow_links=True)
    assert (path.stat().st_mode & 0o777) == 0o664


def test_medium2_a_new_file_and_its_manifest_get_the_umask_default_mode(home: Path) -> None:
    from aggregator.files import atomic_write

    expected = 0o666 & ~_umask()
    atomic_write(home / "new.txt", b"x")
    assert ((home / "new.txt").stat().st_mode & 0o777) == expected
    assert run(home, "draft", "--month", "2022-12").exit_code == 0  # into the drafts folder, with its manifest
    drafts = sorted((home / "drafts").glob("*"))
    assert any(p.name.endswith(".manifest.json") for p in drafts) and any(p.suffix == ".md" for p in drafts)
    assert {p.name: p.stat().st_mode & 0o777 for p in drafts} == {p.name: expected for p in drafts}


def test_medium2_a_hard_linked_readme_keeps_its_link_count_and_both_names_see_the_new_content(home: Path) -> None:
    readme = home / "README.md"
    readme.write_text((DATA / "digests" / "house_mid_000.md").read_text(encoding="utf-8"), encoding="utf-8")
    other = home / "README.copy.md"
    other.hardlink_to(readme)
    inode = readme.stat().st_ino
    result = _publish_into(home, readme)
    assert result.exit_code == 0 and "20 entries added" in result.output, result.output
    assert readme.stat().st_nlink == 2 and readme.stat().st_ino == inode
    assert other.read_text(encoding="utf-8") == readme.read_text(encoding="utf-8")
    assert "20 entries" not in run(home, "publish", "--month", "2022-12", "--into", str(other)).output


def test_medium2_import_opml_into_a_symlinked_feeds_yaml_writes_through_the_link(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "feeds.yaml"
    shared.parent.mkdir()
    shared.write_text(FEEDS_YAML, encoding="utf-8")
    shared.chmod(0o664)
    link = tmp_path / "feeds.yaml"
    link.symlink_to(shared)
    result = runner.invoke(app, ["--config", str(link), "feeds", "import-opml", str(DATA / "opml" / "small.opml")])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and "netflix" in shared.read_text(encoding="utf-8").lower()
    assert (shared.stat().st_mode & 0o777) == 0o664
