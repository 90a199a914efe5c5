"""Reading a long history cheaply: versions parsed only where they changed, read as the full reader reads
them, each changed blob parsed once, --since, and progress only on a terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import DATA, run_cli
from hypothesis import event, given, settings
from hypothesis import strategies as st

from aggregator.errors import DigestError
from aggregator.learn.history import Version, decisions, history, read_versions
from aggregator.learn.reading import read_digest
from aggregator.learn.reading.versions import HouseVersions
from aggregator.models import Digest
from aggregator.store import Store

DIGESTS = DATA / "digests"
VERSIONS = [("house_thin_002.md", "2022-11-20T10:00:00+00:00"), ("house_mid_000.md", "2022-12-10T10:00:00+00:00"),
            ("house_2022-12.md", "2023-01-15T10:00:00+00:00")]


def full(text: str) -> Digest | str:
    """What the full reader makes of a text: its digest, or its one-line error."""
    try:
        return read_digest(text, path="README.md@x", style="house")
    except DigestError as exc:
        return str(exc)


def incremental(reader: HouseVersions, text: str) -> Digest | str:
    try:
        return reader.read(text, "README.md@x")
    except DigestError as exc:
        return str(exc)


def grown(n: int) -> list[str]:
    """n versions of a house-style file, each adding one entry to one of its sections and now and then
    moving or dropping one, as an editor's running README changes."""
    leaves = [("## 1. Research", "### 1.1. CV"), ("## 1. Research", "### 1.2. NLP"),
              ("## 2. Business Cases and Implementations", "### 2.1. CV")]
    sections: dict[tuple[str, str], list[str]] = {leaf: [] for leaf in leaves}
    texts = []
    for i in range(n):
        leaf = leaves[i % 3]
        if i % 7 == 6 and sections[leaf]:
            sections[leaves[(i + 1) % 3]].insert(0, sections[leaf].pop())  # moved
        elif i % 11 == 10 and sections[leaf]:
            sections[leaf].pop(0)  # dropped
        else:
            sections[leaf].insert(0, f"* [Post {i} on serving (Dec 2022, Example)](https://example.com/{i}): why {i}\n"
                                     + ("  one more line\n" if i % 5 == 0 else ""))
        body = "".join(f"{top}\n{sub}\n{''.join(sections[(top, sub)])}\n" for top, sub in leaves)
        texts.append("# Summary of Important AI & ML Blog Posts\n* NOTE: how these are chosen.\n\n" + body)
    return texts


def test_versions_read_part_by_part_equal_the_full_reading_of_each() -> None:
    reader = HouseVersions()
    texts = grown(60)
    for text in texts:
        assert incremental(reader, text) == full(text)
    assert reader.whole_reads == 0
    # only the parts each version changed were parsed: far fewer than one whole read per version
    parts_per_version = len(grown(60)[-1].split("\n* ")) + 4
    assert reader.parts_parsed < len(texts) * 3 < parts_per_version * len(texts) / 4


@pytest.mark.parametrize("name", sorted(p.name for p in DIGESTS.glob("*.md")))
def test_each_sample_digest_reads_the_same_part_by_part(name: str) -> None:
    text = (DIGESTS / name).read_text(encoding="utf-8")
    assert incremental(HouseVersions(), text) == full(text)


TRICKY = [
    "# Summary", "## 1. Research", "### 1.1. CV", "#", "## Candidates below the cut", "# A second h1",
    "* [A post (Dec 2022, Meta)](https://a.example/1): one", "* [B post (Jan 2023)](https://b.example/2)",
    "* [No link (Dec 2022)]", "* [Ref post (Dec 2022)][ref]", "[ref]: https://r.example/3", "* [x[^1] (Dec 2022)](https://f.example/4)",
    "[^1]: a footnote", "  an indented continuation", "a lazy line", "", "* ", "*", "   ## an indented heading",
    "Underlined", "===", "---", "> a quote", "    indented code", "```", "~~~", "<!-- a comment", "-->", "<div>",
    "- a dash item", "* * *", "1. ordered", "\t# after a tab", "# \r", "* [CR post (Dec 2022)](https://c.example/5)\r",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(TRICKY), max_size=25), min_size=1, max_size=4))
def test_any_sequence_of_tricky_versions_reads_as_the_full_reader_reads_it(versions: list[list[str]]) -> None:
    reader = HouseVersions()
    for lines in versions:
        text = "\n".join(lines)
        got = incremental(reader, text)
        event("an error" if isinstance(got, str) else "a digest")
        assert got == full(text)
    event(f"{len(versions) - reader.whole_reads} of {len(versions)} versions read part by part")


def git(repo: Path, *args: str, when: str = "2023-01-01T00:00:00+00:00") -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=Editor", "-c", "user.email=editor@localhost", *args],
                          check=True, env=env, capture_output=True, timeout=60)
    return done.stdout.decode().strip()


def commit(repo: Path, when: str, message: str, readme: str | None = None, other: str | None = None) -> str:
    if readme is not None:
        (repo / "README.md").write_text(readme, encoding="utf-8")
    if other is not None:
        (repo / "NOTES.md").write_text(other, encoding="utf-8")
    git(repo, "add", "-A", when=when)
    git(repo, "commit", "-q", "--allow-empty", "-m", message, when=when)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def busy_repo(tmp_path: Path) -> Path:
    """The three sample versions, with many commits that leave README.md's blob as it was: other files only,
    a mode change, and a version restored after a change."""
    repo = tmp_path / "busy"
    repo.mkdir()
    git(repo, "init", "-q")
    for n, (name, when) in enumerate(VERSIONS):
        for k in range(5):
            commit(repo, when, f"notes {n}.{k}", other=f"note {n}.{k}\n")
        commit(repo, when, name, readme=(DIGESTS / name).read_text(encoding="utf-8"))
    last = (DIGESTS / VERSIONS[-1][0]).read_text(encoding="utf-8")
    (repo / "README.md").chmod(0o755)
    commit(repo, "2023-01-20T00:00:00+00:00", "executable by mistake")  # README.md listed, its blob unchanged
    commit(repo, "2023-01-21T00:00:00+00:00", "typo", readme=last.replace("# Summary", "# Summmary", 1))
    commit(repo, "2023-01-22T00:00:00+00:00", "typo undone", readme=last)  # the blob of two commits before
    return repo


def reference(repo: Path) -> list:
    """The decisions as every commit touching README.md gives them, each version parsed whole."""
    log = git(repo, "rev-list", "--reverse", "--timestamp", "HEAD", "--", "README.md").splitlines()
    versions = []
    for stamp, sha in (line.split() for line in log):
        digest = read_digest(git(repo, "show", f"{sha}:README.md"), style="house")
        versions.append(Version(sha, datetime.fromtimestamp(int(stamp), tz=timezone.utc), digest))
    return decisions(versions)


def test_a_busy_history_gives_the_same_decisions_and_parses_each_changed_blob_once(home: Path, busy_repo: Path) -> None:
    found = history(busy_repo, "README.md")
    assert len(found.commits) == 6  # the commits of other files are never listed
    got = decisions(read_versions(found))
    assert got == reference(busy_repo)
    assert found.parsed == 4  # three samples and the typo: the mode change and the undo are read from memory
    result = run_cli(home, "import-history", str(busy_repo))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"{busy_repo}: 6 versions of README.md (4 distinct, each parsed once)"


def stored(home: Path) -> dict[str, tuple[str, bool, tuple[str, ...] | None]]:
    with Store(f"sqlite:///{home / 'aggregator.db'}") as store:
        return {lb.candidate.url: (month, lb.selected, lb.section) for month, lb in store.training_labels()}


def imported_history(home: Path, tmp_path: Path) -> tuple[Path, list[str], dict[str, tuple[str, bool, tuple[str, ...] | None]], str]:
    """A repository of the three sample versions, imported whole: the repository, its commits, the labels
    stored, and the last version's text (to build later commits on)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    shas = [commit(repo, when, name, readme=(DIGESTS / name).read_text(encoding="utf-8")) for name, when in VERSIONS]
    assert run_cli(home, "import-history", str(repo)).exit_code == 0
    return repo, shas, stored(home), (DIGESTS / VERSIONS[-1][0]).read_text(encoding="utf-8")


def test_since_reads_only_the_later_commits_and_keeps_what_was_decided_before(home: Path, tmp_path: Path) -> None:
    repo, shas, before, last = imported_history(home, tmp_path)
    jan = "* [A Post Added Later in January (Jan 2023, Example)](https://example.com/jan-post)\n"
    feb = "* [A Post Added in February (Feb 2023, Example)](https://example.com/feb-post)\n"
    commit(repo, "2023-01-30T00:00:00+00:00", "jan", readme=last.replace("### 1.1. CV\n", "### 1.1. CV\n" + jan))
    commit(repo, "2023-02-03T00:00:00+00:00", "feb", readme=last.replace("### 1.1. CV\n", "### 1.1. CV\n" + jan + feb))

    found = history(repo, "README.md", since=shas[-1])
    assert [sha for sha, _, _ in found.commits] == [git(repo, "rev-parse", "HEAD~1"), git(repo, "rev-parse", "HEAD")]
    assert found.since is not None and found.since.commit == shas[-1]

    result = run_cli(home, "import-history", str(repo), "--since", shas[-1])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{repo}: 2 versions of README.md after {shas[-1]}"
    few = "; too few entries to speak for the edition: nothing left out"  # editions the file lists one entry of
    assert lines[1:] == [f"2023-01: 1 picks; 1 added, 0 moved, 0 removed{few}",
                         f"2023-02: 1 picks; 1 added, 0 moved, 0 removed{few}"]
    after = stored(home)
    assert after["https://example.com/jan-post"] == ("2023-01", True, ("1. Research", "1.1. CV"))
    assert after["https://example.com/feb-post"] == ("2023-02", True, ("1. Research", "1.1. CV"))
    # January's picks listed at the --since commit are picks still: nothing decided before it was touched
    assert {url: v for url, v in after.items() if url in before} == before
    # and a full read of the whole history agrees with the quick one
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "feeds.yaml").write_text("feeds: []\n", encoding="utf-8")
    assert run_cli(fresh, "import-history", str(repo)).exit_code == 0
    assert stored(fresh) == after


def test_since_in_an_edition_the_history_covers_leaves_its_other_picks_as_they_are(home: Path, tmp_path: Path) -> None:
    """December is covered (most entries print Dec 2022): the later commits' two December entries are added
    there, and the December picks listed at --since stay picks, as a full read of the whole history leaves them."""
    repo, shas, before, last = imported_history(home, tmp_path)
    late = "".join(f"* [A Late December Post {n} (Dec 2022, Example)](https://example.com/late-{n})\n" for n in (1, 2))
    commit(repo, "2023-01-30T00:00:00+00:00", "late", readme=last.replace("### 1.1. CV\n", "### 1.1. CV\n" + late))

    result = run_cli(home, "import-history", str(repo), "--since", shas[-1])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == ["2022-12: 2 picks; 2 added, 0 moved, 0 removed"]  # covered, removing nothing
    after = stored(home)
    assert {url: v for url, v in after.items() if url in before} == before
    assert after["https://example.com/late-1"] == ("2022-12", True, ("1. Research", "1.1. CV"))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "feeds.yaml").write_text("feeds: []\n", encoding="utf-8")
    assert run_cli(fresh, "import-history", str(repo)).exit_code == 0
    assert stored(fresh) == after


@pytest.mark.parametrize("rev", ["no-such-rev", "--all", "HEAD~99", ""])
def test_since_a_commit_the_repository_lacks_is_one_line(home: Path, busy_repo: Path, rev: str) -> None:
    result = run_cli(home, "import-history", str(busy_repo), "--since", rev)
    assert result.exit_code == 1
    assert result.output == f"error: --since {rev!r}: no such commit in {busy_repo}\n"
    assert not (home / "aggregator.db").exists() or stored(home) == {}


def test_progress_is_silent_when_output_is_not_a_terminal(home: Path, busy_repo: Path) -> None:
    result = run_cli(home, "import-history", str(busy_repo))
    assert result.exit_code == 0
    assert "reading history" not in result.output and "of 6" not in result.output and "\x1b" not in result.output
    # the first line names the repository; each other one is an edition's ("2002-11" is one the samples print)
    assert all(line.startswith(str(busy_repo)) or re.match(r"[0-9]{4}-[0-9]{2}: ", line)
               for line in result.output.splitlines())


def on_a_terminal(home: Path, *args: str) -> str:
    """What `aggregator ARGS` writes to a terminal (a pseudo-terminal), all of it."""
    main, side = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    with subprocess.Popen([sys.executable, "-m", "aggregator", "--config", str(home / "feeds.yaml"), *args],
                          stdin=subprocess.DEVNULL, stdout=side, stderr=side, env=env) as process:
        os.close(side)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the other side closed: the command ended
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=120)
    os.close(main)
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_shows_commit_i_of_n_on_a_terminal_and_nothing_with_quiet(home: Path, busy_repo: Path) -> None:
    shown = on_a_terminal(home, "import-history", str(busy_repo))
    assert "reading history: commit 6 of 6" in shown
    assert f"{busy_repo}: 6 versions of README.md" in shown
    quiet = on_a_terminal(home, "--quiet", "import-history", str(busy_repo))
    assert "reading history" not in quiet and "of 6" not in quiet
    assert f"{busy_repo}: 6 versions of README.md" in quiet


def test_since_says_when_entries_listed_before_it_were_dropped_later(home: Path, tmp_path: Path) -> None:
    repo, shas, before, last = imported_history(home, tmp_path)
    dropped = next(line for line in last.splitlines() if "huggingface.co/blog/rlhf" in line)
    commit(repo, "2023-02-03T00:00:00+00:00", "drop one", readme=last.replace(dropped + "\n", ""))
    result = run_cli(home, "import-history", str(repo), "--since", shas[-1])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (f"1 entries listed at {shas[-1]} were dropped or moved after it; their "
                                              "editions come before it: run without --since to record that")
    assert stored(home) == before  # what was decided before --since is left as it was
    assert run_cli(home, "import-history", str(repo)).exit_code == 0
    assert stored(home)["https://huggingface.co/blog/rlhf"][1] is False  # the full read records the drop
