"""publish --into README.md --commit: one commit holding only that file, refused beside other staged changes,
and no program the repository's config names ever runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import DATA, december_digest, run_cli

DIGESTS = DATA / "digests"
EDITION = "2022-12"


def git(repo: Path, *args: str) -> str:
    """Plain git, as the editor runs it (only for setting up and reading back)."""
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          timeout=60).stdout


@pytest.fixture
def trained(home: Path) -> Path:
    """A home whose December 2022 picks (the fixture, every entry printed as December's) are imported and trained on."""
    assert run_cli(home, "import-digest", str(december_digest(home))).exit_code == 0
    assert run_cli(home, "train").exit_code == 0
    return home


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The editor's digest repository: README.md (an earlier digest) and a notes file, committed."""
    path = tmp_path / "digest-repo"
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.name", "Editor")
    git(path, "config", "user.email", "editor@localhost")
    (path / "README.md").write_text((DIGESTS / "house_mid_000.md").read_text(encoding="utf-8"), encoding="utf-8")
    (path / "notes.txt").write_text("notes\n", encoding="utf-8")
    git(path, "add", "README.md", "notes.txt")
    git(path, "commit", "-q", "-m", "the digest so far")
    return path


def publish(home: Path, repo: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli(home, "publish", "--month", EDITION, "--into", str(repo / "README.md"), "--commit", *extra)


def test_commit_makes_exactly_one_commit_touching_exactly_the_readme(trained: Path, repo: Path) -> None:
    before = git(repo, "rev-parse", "HEAD").strip()
    (repo / "notes.txt").write_text("changed, not staged\n", encoding="utf-8")  # left alone: not staged
    result = publish(trained, repo)
    assert result.exit_code == 0, result.output
    assert "20 entries added, 2 already there" in result.output and "committed " in result.output
    assert git(repo, "rev-list", "--count", f"{before}..HEAD").strip() == "1"
    assert git(repo, "rev-parse", "HEAD~1").strip() == before
    assert git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD").split() == ["README.md"]
    message = git(repo, "log", "-1", "--format=%B")
    assert message.splitlines()[0] == f"Summary of Important AI & ML Blog Posts {EDITION}: 20 entries added, 2 already there"
    assert git(repo, "show", "HEAD:README.md") == (repo / "README.md").read_text(encoding="utf-8")
    status = git(repo, "status", "--porcelain").splitlines()
    assert " M notes.txt" in status and not any(line.endswith("README.md") for line in status)  # index and tree agree
    again = publish(trained, repo)  # nothing new: nothing committed
    assert again.exit_code == 0 and "nothing to commit" in again.output
    assert git(repo, "rev-list", "--count", f"{before}..HEAD").strip() == "1"


def test_commit_is_refused_when_other_changes_are_staged(trained: Path, repo: Path) -> None:
    before = git(repo, "rev-parse", "HEAD").strip()
    readme = (repo / "README.md").read_bytes()
    (repo / "notes.txt").write_text("staged by the editor\n", encoding="utf-8")
    git(repo, "add", "notes.txt")
    result = publish(trained, repo)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {repo} has other staged changes (notes.txt): commit or unstage them first, so the commit holds "
        "only the published file"]
    assert (repo / "README.md").read_bytes() == readme  # nothing written
    assert git(repo, "rev-parse", "HEAD").strip() == before
    assert git(repo, "diff", "--cached", "--name-only").split() == ["notes.txt"]  # the editor's staging kept


def test_commit_outside_a_repository_is_one_line(trained: Path, tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    readme = folder / "README.md"
    readme.write_text((DIGESTS / "house_mid_000.md").read_text(encoding="utf-8"), encoding="utf-8")
    result = run_cli(trained, "publish", "--month", EDITION, "--into", str(readme), "--commit")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "not in a git repository" in result.output
    assert readme.read_text(encoding="utf-8") == (DIGESTS / "house_mid_000.md").read_text(encoding="utf-8")


def test_commit_runs_no_program_the_repositorys_config_names(trained: Path, repo: Path, tmp_path: Path) -> None:
    """Hooks (through core.hooksPath and in .git/hooks), a signing program with commit.gpgSign, an fsmonitor,
    a clean filter on every file (which writing the index would run on a racily clean one) and an editor:
    none of them runs, and the commit is made unsigned."""
    marker = tmp_path / "ran"
    script = tmp_path / "payload.sh"
    script.write_text(f"#!/bin/sh\necho \"$0 $*\" >> '{marker}'\ncat\n", encoding="utf-8")
    script.chmod(0o755)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for hook in ("pre-commit", "commit-msg", "prepare-commit-msg", "post-commit", "reference-transaction",
                 "post-index-change"):
        (hooks / hook).symlink_to(script)
        (repo / ".git" / "hooks" / hook).symlink_to(script)
    for key, value in [("core.hooksPath", hooks), ("gpg.program", script), ("commit.gpgSign", "true"),
                       ("gpg.format", "openpgp"), ("user.signingKey", "ABCDEF"), ("core.fsmonitor", script),
                       ("core.editor", script), ("filter.evil.clean", script), ("filter.evil.required", "true")]:
        git(repo, "config", str(key), str(value))
    (repo / ".git" / "info" / "attributes").write_text("* filter=evil\n", encoding="utf-8")
    stamp = (repo / "notes.txt").stat().st_mtime
    os.utime(repo / ".git" / "index", (stamp, stamp))  # notes.txt racily clean: writing the index rereads it
    before = git(repo, "rev-parse", "HEAD").strip()
    result = publish(trained, repo)
    assert result.exit_code == 0, result.output
    assert not marker.exists(), marker.read_text(encoding="utf-8")
    assert git(repo, "rev-list", "--count", f"{before}..HEAD").strip() == "1"
    assert "gpgsig" not in git(repo, "cat-file", "commit", "HEAD")
    assert git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD").split() == ["README.md"]
