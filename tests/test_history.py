"""A running digest's git history as the editor's decisions: first appearances, moves, removals, URL changes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import DATA, run_cli

from aggregator.learn.reading import read_digest
from aggregator.links import canonical_url
from aggregator.store import Store

DIGESTS = DATA / "digests"
run = run_cli
VERSIONS = [("house_thin_002.md", "2022-11-20T10:00:00+00:00"), ("house_mid_000.md", "2022-12-10T10:00:00+00:00"),
            ("house_2022-12.md", "2023-01-15T10:00:00+00:00")]


def commit(repo: Path, text: str, when: str, message: str) -> None:
    (repo / "README.md").write_text(text, encoding="utf-8")
    env = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    for args in (["add", "README.md"], ["-c", "user.name=Editor", "-c", "user.email=editor@localhost", "commit", "-q",
                                        "-m", message]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env, capture_output=True, timeout=60)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "digest-repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True, timeout=60)
    for name, when in VERSIONS:
        commit(path, (DIGESTS / name).read_text(encoding="utf-8"), when, name)
    return path


def urls(name: str) -> set[str]:
    return {canonical_url(e.url) or e.url for e in read_digest((DIGESTS / name).read_text(encoding="utf-8")).entries}


def decisions(home: Path) -> dict[str, tuple[str, bool, tuple[str, ...] | None]]:
    with Store(f"sqlite:///{home / 'aggregator.db'}") as store:
        return {lb.candidate.url: (month, lb.selected, lb.section) for month, lb in store.training_labels()}


def printed(name: str) -> dict[str, str | None]:
    return {canonical_url(e.url) or e.url: e.month for e in read_digest((DIGESTS / name).read_text(encoding="utf-8")).entries}


def test_history_gives_first_appearances_final_sections_and_removals(home: Path, repo: Path) -> None:
    result = run(home, "import-history", str(repo))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"{repo}: 3 versions of README.md"
    got = decisions(home)
    thin, mid, full = urls("house_thin_002.md"), urls("house_mid_000.md"), urls("house_2022-12.md")
    months = {**printed("house_thin_002.md"), **printed("house_mid_000.md"), **printed("house_2022-12.md")}
    assert months["https://openai.com/blog/chatgpt/"] == "2022-11"  # listed first in the commit of January 2023
    for url in full:  # picked in the month its line printed, whichever commit first listed it
        assert got[url][:2] == (months[url], True)
    assert (thin | mid) - full
    for url in (thin | mid) - full:  # dropped later: non-picks, in the month they printed
        assert got[url][:2] == (months[url], False) == ("2022-12", False)
    sections = {canonical_url(e.url): e.section for e in read_digest((DIGESTS / "house_2022-12.md").read_text("utf-8")).entries}
    assert all(got[url][2] == sections[url] for url in full)  # the final section wins, in the newest headings


def test_a_second_run_imports_only_what_new_commits_changed(home: Path, repo: Path) -> None:
    run(home, "import-history", str(repo))
    again = run(home, "import-history", str(repo))
    assert all(": unchanged (" in line for line in again.output.splitlines()[1:]), again.output
    full = (DIGESTS / "house_2022-12.md").read_text(encoding="utf-8")
    new_entry = "* [A Post Added in February (Feb 2023, Example)](https://example.com/feb-post)\n"
    commit(repo, full.replace("### 1.1. CV\n", "### 1.1. CV\n" + new_entry), "2023-02-03T09:00:00+00:00", "feb")
    third = run(home, "import-history", str(repo))
    changed = [line for line in third.output.splitlines()[1:] if "unchanged" not in line]
    assert changed == ["2023-02: 1 picks; 1 added, 0 moved, 0 removed; too few entries to speak for the edition: "
                       "nothing left out"]
    assert decisions(home)["https://example.com/feb-post"] == ("2023-02", True, ("1. Research", "1.1. CV"))


def test_a_link_changed_for_the_same_post_is_not_a_rejection(home: Path, repo: Path) -> None:
    full = (DIGESTS / "house_2022-12.md").read_text(encoding="utf-8")
    old = "https://huggingface.co/blog/rlhf"
    commit(repo, full.replace(f"]({old})", "](https://huggingface.co/blog/rlhf-illustrated)"), "2023-02-01T00:00:00+00:00",
           "moved link")
    assert run(home, "import-history", str(repo)).exit_code == 0
    got = decisions(home)
    assert old not in got  # one post, one decision: under the link the file gives it now, not a second pick
    assert got["https://huggingface.co/blog/rlhf-illustrated"][:2] == ("2022-12", True)  # the month it printed


@pytest.mark.parametrize("target, message", [("nowhere", "no such folder"), ("plain", "not a git repository")])
def test_a_path_that_is_no_repository_is_one_line(home: Path, target: str, message: str) -> None:
    (home / "plain").mkdir()
    result = run(home, "import-history", str(home / target))
    assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1


def test_a_file_the_repository_never_had_is_one_line(home: Path, repo: Path) -> None:
    result = run(home, "import-history", str(repo), "--file", "DIGEST.md")
    assert result.exit_code == 1 and "no commit has DIGEST.md" in result.output


def test_import_history_never_runs_a_program_the_repositorys_config_names(home: Path, repo: Path) -> None:
    """A hostile repository's own config names programs git would run while reading: none of them runs."""
    marker = home / "ran"
    script = home / "payload.sh"
    script.write_text(f"#!/bin/sh\necho \"$0 $*\" >> '{marker}'\nexit 1\n", encoding="utf-8")
    script.chmod(0o755)
    git = ["git", "-C", str(repo)]
    head = subprocess.run([*git, "cat-file", "commit", "HEAD"], check=True, capture_output=True, timeout=60).stdout
    header, _, message = head.partition(b"\n\n")
    signature = (b"gpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEEAAAAAAAAAAAAAAAAAAAAAAAA\n"
                 b" =AAAA\n -----END PGP SIGNATURE-----")
    crafted = header + b"\n" + signature + b"\n\n" + message
    signed = subprocess.run([*git, "hash-object", "-t", "commit", "-w", "--stdin"], check=True, capture_output=True,
                            input=crafted, timeout=60).stdout.decode().strip()
    subprocess.run([*git, "update-ref", "HEAD", signed], check=True, timeout=60)  # the newest README commit, signed
    for key, value in [("log.showSignature", "true"), ("gpg.program", script), ("gpg.openpgp.program", script),
                       ("gpg.ssh.program", script), ("gpg.x509.program", script), ("core.fsmonitor", script),
                       ("core.pager", script), ("pager.log", script), ("diff.external", script),
                       ("core.hooksPath", home)]:
        subprocess.run([*git, "config", key, str(value)], check=True, timeout=60)
    for hook in ("post-checkout", "post-index-change", "reference-transaction"):
        (home / hook).symlink_to(script)
    result = run(home, "import-history", str(repo))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"{repo}: 3 versions of README.md"
    assert not marker.exists(), marker.read_text(encoding="utf-8")


def test_low7_import_history_never_turns_the_desks_later_decisions_into_non_picks(home: Path, tmp_path: Path) -> None:
    """Hardening round three, low 7. The desk's decisions after the commit that last decided on a post
    stand; one the history never decided on is not a removal; a commit made after a desk decision wins
    over it, and the import names it."""
    from datetime import datetime, timezone

    from aggregator.models import Edition, FeedConfig, FetchResult, ParsedPost
    from aggregator.store.decisions import Decision

    december = Edition("2022-12")
    day = lambda d: datetime(2022, 12, d, 10, tzinfo=timezone.utc)  # noqa: E731
    link = {name: f"https://p.example/{name}" for name in ("x1", "x2", "early", "late")}
    with Store(f"sqlite:///{home / 'aggregator.db'}") as store:
        store.migrate()
        store.sync_feeds([FeedConfig("F", "https://p.example/feed")], day(1))
        posts = [ParsedPost(name, url, f"Post {name}", "An opening.", day(3)) for name, url in link.items()]
        store.record_fetch(store.feeds_due(day(1))[0], FetchResult("x", 200, body=b""), posts, now=day(3),
                           next_check=day(3), error=None)
        ids = {c.url: c.id for c in store.candidates(*december.bounds())}
        # before the history's commits: the desk rejects x2, which the commit of the 5th then lists
        store.decide(december, ids[link["x2"]], Decision(False), revision=0, action="reject", now=day(4))
    path = tmp_path / "running"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True, timeout=60)
    head = "# Digest\n\n## 1. Research\n### 1.1. CV\n"
    line = lambda name: f"* [Post {name} (Dec 2022, P)]({link[name]})\n"  # noqa: E731
    commit(path, head + line("x1") + line("x2") + line("early"), "2022-12-05T10:00:00+00:00", "three picks")
    commit(path, head + line("x1") + line("x2"), "2022-12-08T10:00:00+00:00", "early dropped")
    with Store(f"sqlite:///{home / 'aggregator.db'}") as store:
        # after the last commit: the desk accepts what the file dropped (early) and a post it never listed (late)
        for name in ("early", "late"):
            store.decide(december, ids[link[name]], Decision(True, ("1. Research", "1.1. CV")), revision=0,
                         action="accept", now=day(12))
    result = run(home, "import-history", str(path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "2022-12: 2 picks; 2 added, 0 moved, 0 removed" in lines  # x1, and x2 over the desk; nothing removed
    assert f"2022-12: kept the desk's decision on {link['early']}, made after the digest's" in lines
    assert f"2022-12: replaced the desk's earlier decision on {link['x2']}" in lines
    assert not any(link["late"] in line for line in lines)  # the history never named it: nothing to weigh
    got = decisions(home)
    assert {name: got[url][:2] for name, url in link.items()} == {
        "x1": ("2022-12", True), "x2": ("2022-12", True), "early": ("2022-12", True), "late": ("2022-12", True)}
    again = run(home, "import-history", str(path))
    assert again.output.splitlines()[1:] == ["2022-12: unchanged (2 picks)"] and decisions(home) == got
