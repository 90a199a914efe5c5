"""Publishing into the editor's running README: a month's accepted entries inserted under their headings, every other byte kept."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aggregator.errors import DigestError
from aggregator.files import atomic_write
from aggregator.learn.labels import number_and_name
from aggregator.learn.reading import read_digest
from aggregator.learn.reading.markdown import heading_level, heading_text, parse
from aggregator.links import canonical_url
from aggregator.models import SectionPath
from aggregator.digest.render import escape_markdown

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")  # lines as markdown-it counts them (its .map)


@dataclass(frozen=True)
class Entry:
    """One accepted post, as its line in the running file will read."""

    section: SectionPath
    url: str  # canonical
    line: str  # "* [Title (Dec 2022, Netflix)](url): summary", without a line ending


@dataclass(frozen=True)
class Plan:
    """What publishing would do to the file."""

    text: str  # the new text
    added: int
    present: int  # entries already in the file (by canonical URL), left as they are
    created: tuple[SectionPath, ...]  # headings the file lacked


@dataclass
class _Heading:
    level: int  # 2 or 3
    text: str
    index: int  # line index of the heading
    end: int  # line index just below it (two lines down for a setext heading)


def plan(text: str, entries: Sequence[Entry], taxonomy: Sequence[SectionPath], *, path: str = "<file>") -> Plan:
    """The running file with `entries` not yet in it inserted at the top of their sections (newest first,
    as the editor keeps it), missing headings created in the taxonomy's order. Nothing else changes: the
    new text is the old one with whole lines added."""
    try:
        digest = read_digest(text, path=path)
    except DigestError:
        digest = None
    if digest is None or digest.style != "house":
        raise DigestError(f"{path}: not a house-style digest (## N. Section / ### N.M. Section / * [Title (Mon YYYY)](url)); "
                          "nothing was changed")
    known = {canonical_url(e.url) for e in digest.entries}
    lines = _LINE.findall(text)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    todo = [e for e in entries if e.url not in known]
    created: list[SectionPath] = []
    order = {section: i for i, section in enumerate(taxonomy)}
    for section in sorted({e.section for e in todo}, key=lambda s: (order.get(s, len(order)), s)):
        new = [e.line + newline for e in todo if e.section == section]
        at, made = _place(lines, section, order, newline)
        created += made
        lines[at:at] = new
    return Plan("".join(lines), len(todo), len(entries) - len(todo), tuple(created))


def _headings(lines: list[str]) -> list[_Heading]:
    """The file's top-level h2 and h3 headings, as the Markdown parser the reader uses sees them: a
    heading-like line in a fenced or indented code block, an HTML comment or other HTML block is none."""
    tokens = parse("".join(lines)).tokens
    out = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.level == 0 and tok.map and heading_level(tok) in (2, 3):
            out.append(_Heading(heading_level(tok), heading_text(tokens, i), tok.map[0], tok.map[1]))
    return out


def _same(heading: str, name: str) -> bool:
    """A heading in the file is the taxonomy's section: the same text, or the same number."""
    if heading.strip() == name.strip():
        return True
    number = number_and_name(heading)[0]
    return number is not None and number == number_and_name(name)[0]


def _place(lines: list[str], section: SectionPath, order: dict[SectionPath, int],
           newline: str) -> tuple[int, list[SectionPath]]:
    """Where the section's new entries go (just below its heading), creating its headings when missing."""
    created: list[SectionPath] = []
    path: SectionPath = ()
    start, end = 0, len(lines)  # the span of the section found so far
    for depth, name in enumerate(section[:2], start=2):
        path = path + (name,)
        headings = _headings(lines)
        heads = [h for h in headings if start <= h.index < end and h.level == depth]
        found = next((h for h in heads if _same(h.text, name)), None)
        if found is None:
            at = _new_heading_at(lines, heads, path, order, start, end)
            block = [f"{'#' * depth} {escape_markdown(name)}{newline}"]
            if at > 0 and lines[at - 1].strip() and at not in {h.end for h in headings}:
                block.insert(0, newline)
            if at < len(lines) and lines[at].strip():
                block.append(newline)
            lines[at:at] = block
            headings = _headings(lines)  # the file changed: read its headings again
            created.append(path)
            found_index = at + (1 if block[0] == newline else 0)
            below = found_index + 1
            end += len(block)
        else:
            found_index, below = found.index, found.end
        start = below
        later = [h for h in headings if h.index > found_index and h.level <= depth]
        end = later[0].index if later else len(lines)
    return start, created


def _new_heading_at(lines: list[str], siblings: list[_Heading], path: SectionPath, order: dict[SectionPath, int],
                    start: int, end: int) -> int:
    """The line a missing heading goes on: before the first sibling that comes after it in the taxonomy,
    else after the last line of the enclosing span that is not blank."""
    rank = _rank(path, order)
    for h in siblings:
        sibling = path[:-1] + (h.text,)
        if _rank(sibling, order) > rank:
            return h.index
    at = end
    while at > start and not lines[at - 1].strip():
        at -= 1
    return at


def _rank(path: SectionPath, order: dict[SectionPath, int]) -> float:
    for section, i in order.items():
        if len(section) >= len(path) and all(_same(a, b) for a, b in zip(section, path)):
            return i
    return float("inf")


def diff(old: str, new: str, path: str) -> str:
    """A unified diff of the change, for --dry-run."""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=path, tofile=path))


def read(path: Path) -> tuple[str, str]:
    """The running file's text and the SHA-256 of its bytes."""
    try:
        data = path.read_bytes()
        return data.decode("utf-8"), hashlib.sha256(data).hexdigest()
    except (OSError, UnicodeDecodeError) as exc:
        raise DigestError(f"{path}: cannot read: {exc}") from None


def write_if_unchanged(path: Path, text: str, expected_sha256: str) -> None:
    """Replace the file atomically with `text`, unless it changed since it was read (then leave it alone)."""
    _, now = read(path)
    if now != expected_sha256:
        raise DigestError(f"{path}: changed while aggregator was publishing into it; nothing was written, run it again")
    atomic_write(path, text.encode("utf-8"), follow_links=True)

