"""Publishing into the editor's running README: entries added under their headings, every other byte kept."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from conftest import DATA, december_digest, run_cli

from aggregator.errors import DigestError
from aggregator.learn.reading import read_digest
from aggregator.links import canonical_url
from aggregator.digest.publish import Entry, plan, read, write_if_unchanged

DIGESTS = DATA / "digests"
FULL = (DIGESTS / "house_2022-12.md").read_text(encoding="utf-8")
TAXONOMY = read_digest(FULL).sections
NLP = ("1. Research", "1.2. NLP")
REC = ("2. Business Cases and Implementations", "2.3. RecSys, etc.")
run = run_cli


def only_insertions(old: str, new: str) -> list[str]:
    """The lines `new` adds to `old`, asserting that nothing of `old` changed, moved or went."""
    ops = difflib.SequenceMatcher(None, old.splitlines(keepends=True), new.splitlines(keepends=True), autojunk=False)
    added = []
    for tag, i1, i2, j1, j2 in ops.get_opcodes():
        assert tag in ("equal", "insert"), (tag, old.splitlines()[i1:i2])
        if tag == "insert":
            added += new.splitlines(keepends=True)[j1:j2]
    return added


def without_subsection(text: str, heading: str) -> str:
    lines = text.splitlines(keepends=True)
    start = lines.index(heading + "\n")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("#"))
    return "".join(lines[:start] + lines[end:])


ENTRIES = [Entry(NLP, "https://new.example/nlp", "* [A New NLP Post (Jan 2023, Example)](https://new.example/nlp): 요약"),
           Entry(REC, "https://new.example/rec", "* [A New RecSys Post (Jan 2023)](https://new.example/rec)")]


def test_entries_go_under_their_headings_and_every_other_byte_stays() -> None:
    result = plan(FULL, ENTRIES, TAXONOMY)
    assert only_insertions(FULL, result.text) == [e.line + "\n" for e in ENTRIES]
    lines = result.text.splitlines()
    assert lines[lines.index("### 1.2. NLP") + 1] == ENTRIES[0].line  # newest first, as the editor keeps it
    assert (result.added, result.present, result.created) == (2, 0, ())
    assert "  \n" in result.text and "![chatgpt](./images/chatgpt.png)" in result.text  # trailing spaces, images kept


def test_publishing_twice_changes_nothing_the_second_time() -> None:
    once = plan(FULL, ENTRIES, TAXONOMY).text
    again = plan(once, ENTRIES, TAXONOMY)
    assert again.text == once and (again.added, again.present) == (0, 2)
    already = [Entry(NLP, canonical_url(e.url) or e.url, "* dup") for e in read_digest(FULL).entries[:3]]
    assert plan(FULL, already, TAXONOMY).text == FULL


def test_a_missing_subsection_is_created_in_the_taxonomys_order() -> None:
    thin = without_subsection(FULL, "### 2.3. RecSys, etc.")
    result = plan(thin, ENTRIES, TAXONOMY)
    added = only_insertions(thin, result.text)
    assert "### 2.3. RecSys, etc.\n" in added and ENTRIES[1].line + "\n" in added
    headings = [line for line in result.text.splitlines() if line.startswith("### 2.")]
    assert headings == ["### 2.1. CV", "### 2.2. NLP", "### 2.3. RecSys, etc.", "### 2.4. Training, Inference and MLOps"]
    assert result.created == (REC,)
    assert {(e.url, e.section) for e in read_digest(result.text).entries} >= {("https://new.example/rec", REC)}


def test_windows_line_endings_are_kept() -> None:
    crlf = FULL.replace("\n", "\r\n")
    result = plan(crlf, ENTRIES, TAXONOMY)
    assert "\n" not in result.text.replace("\r\n", "")
    assert only_insertions(crlf, result.text) == [e.line + "\r\n" for e in ENTRIES]


def test_a_file_in_another_style_is_refused() -> None:
    footnote = (DIGESTS / "footnote_2023-10.md").read_text(encoding="utf-8")
    with pytest.raises(DigestError, match="not a house-style digest"):
        plan(footnote, ENTRIES, TAXONOMY, path="trends.md")


def test_a_file_changed_between_read_and_write_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(FULL, encoding="utf-8")
    text, sha = read(path)
    new = plan(text, ENTRIES, TAXONOMY).text
    path.write_text(FULL + "* [Added by hand meanwhile (Jan 2023)](https://hand.example/x)\n", encoding="utf-8")
    edited = path.read_bytes()
    with pytest.raises(DigestError, match="changed while aggregator was publishing"):
        write_if_unchanged(path, new, sha)
    assert path.read_bytes() == edited


def test_publish_command_adds_the_months_accepted_entries(home: Path) -> None:
    readme = home / "README.md"
    readme.write_text((DIGESTS / "house_mid_000.md").read_text(encoding="utf-8"), encoding="utf-8")
    before = readme.read_text(encoding="utf-8")
    assert run(home, "import-digest", str(december_digest(home))).exit_code == 0
    assert run(home, "train").exit_code == 0
    dry = run(home, "publish", "--month", "2022-12", "--into", str(readme), "--dry-run")
    assert dry.exit_code == 0 and dry.output.startswith(f"--- {readme}") and readme.read_text(encoding="utf-8") == before
    done = run(home, "publish", "--month", "2022-12", "--into", str(readme))
    assert done.exit_code == 0 and "20 entries added, 2 already there; created 1. Research > 1.3. RecSys, etc." in done.output
    after = readme.read_text(encoding="utf-8")
    only_insertions(before, after)
    old = {canonical_url(e.url): e.section for e in read_digest(before).entries}
    new = {canonical_url(e.url): e.section for e in read_digest(after).entries}
    assert {url: section for url, section in new.items() if url in old} == old  # the editor's own entries as they were
    for e in read_digest(FULL).entries:  # the month's picks, under the file's own headings for their sections
        assert new[canonical_url(e.url)][-1] == e.section[-1] and new[canonical_url(e.url)][0][:2] == e.section[0][:2]
    assert "0 entries added, 22 already there" in run(home, "publish", "--month", "2022-12", "--into", str(readme)).output


FENCED_EXAMPLE = """\
How this file is laid out:

```markdown
## 1. Research

### 1.2. NLP

* [Example (Jan 2023)](https://example.com/x)
```

<!--
## 1. Research
### 1.2. NLP
## 2. Business Cases and Implementations
### 2.3. RecSys, etc.
-->

"""


def test_medium3_publish_skips_headings_in_fenced_code_and_html_comments() -> None:
    title, rest = FULL.split("\n", 1)
    readme = f"{title}\n\n{FENCED_EXAMPLE}{rest}"
    result = plan(readme, ENTRIES, TAXONOMY)
    assert only_insertions(readme, result.text) == [e.line + "\n" for e in ENTRIES]
    assert result.text.split("## 1. Research", 1)[0] == readme.split("## 1. Research", 1)[0]  # the fence
    assert result.text.split("-->", 1)[0] == readme.split("-->", 1)[0]  # and the comment are untouched
    lines = result.text.splitlines()
    real_nlp = max(i for i, line in enumerate(lines) if line == "### 1.2. NLP")
    real_rec = max(i for i, line in enumerate(lines) if line == "### 2.3. RecSys, etc.")
    assert lines[real_nlp + 1] == ENTRIES[0].line and lines[real_rec + 1] == ENTRIES[1].line
    assert (result.added, result.present, result.created) == (2, 0, ())
    again = plan(result.text, ENTRIES, TAXONOMY)
    assert again.text == result.text and (again.added, again.present) == (0, 2)


def test_medium3_publish_command_twice_into_a_readme_with_a_fenced_example_changes_nothing_the_second_time(
        home: Path) -> None:
    readme = home / "README.md"
    mid = (DIGESTS / "house_mid_000.md").read_text(encoding="utf-8")
    title, rest = mid.split("\n", 1)
    readme.write_text(f"{title}\n\n{FENCED_EXAMPLE}{rest}", encoding="utf-8")
    before = readme.read_text(encoding="utf-8")
    assert run(home, "import-digest", str(december_digest(home))).exit_code == 0
    assert run(home, "train").exit_code == 0
    done = run(home, "publish", "--month", "2022-12", "--into", str(readme))
    assert done.exit_code == 0 and "20 entries added" in done.output, done.output
    after = readme.read_text(encoding="utf-8")
    only_insertions(before, after)
    assert after.split("-->", 1)[0] == before.split("-->", 1)[0]  # nothing went into the fence or the comment
    assert "0 entries added, 22 already there" in run(home, "publish", "--month", "2022-12", "--into", str(readme)).output
    assert readme.read_text(encoding="utf-8") == after
