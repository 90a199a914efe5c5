"""Successive versions of one house-style file read as the full reader reads each, parsing again only what changed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aggregator.errors import DigestError
from aggregator.learn.reading.house import CUT_HEADING, HouseHeadings, read_house
from aggregator.learn.reading.markdown import check_bounds, heading_level, heading_text, parse
from aggregator.learn.reading.read import read_digest
from aggregator.models import Digest, DigestEntry, SectionPath

# A heading line, or a list item's first line, at the left margin ends whatever block came before it (a
# paragraph, a list item with its lazy continuation lines, a quote, an indented code block), so the file
# splits there into parts that parse alone as they do in the whole file...
_HEADING = re.compile(r"#{1,6}(?:[ \t\n]|\Z)")
# ...unless something can span those lines or reach from one part into another: fenced code, an HTML
# block, front matter, link reference or footnote definitions. A file with any of them is read whole.
_WHOLE_FILE = ("```", "~~~", "[^", "]:")
_NEWLINES = re.compile(r"\r\n?")  # as the Markdown parser normalises them


class _Whole(Exception):
    """This version has to be read whole."""


@dataclass(frozen=True)
class _Body:
    """What one part's text holds (a list item at the margin with its lines, or the lines before the first
    one): its entries, their lines counted from the part's start, and how many lines it spans."""

    entries: tuple[DigestEntry, ...]
    lines: int


class HouseVersions:
    """Reads the versions of one house-style digest one after another, each exactly as `read_digest(text,
    style="house")` would; the parts of a version (its heading lines, and the list items at the margin with
    their lines) that the version before also had are taken from it instead of being parsed again. Only the
    last version's parts are kept."""

    def __init__(self, cut_heading: str = CUT_HEADING) -> None:
        self.cut_heading = cut_heading
        self.parts_parsed = 0  # parts parsed so far, headings and bodies: the work done
        self.whole_reads = 0  # versions read whole (something in them can reach across parts)
        self._headings: dict[str, tuple[int, str]] = {}
        self._bodies: dict[str, _Body] = {}
        self._placed: dict[tuple[str, int, SectionPath], tuple[DigestEntry, ...]] = {}

    def read(self, text: str, path: str) -> Digest:
        """The version `text` read; DigestError as read_digest raises it."""
        if "\r" in text:
            text = _NEWLINES.sub("\n", text)
        if text.startswith("---") or any(mark in text for mark in _WHOLE_FILE) or _html_block(text):
            return self._whole(text, path)
        headings: dict[str, tuple[int, str]] = {}
        bodies: dict[str, _Body] = {}
        placed: dict[tuple[str, int, SectionPath], tuple[DigestEntry, ...]] = {}
        reading = HouseHeadings(self.cut_heading)
        entries: list[DigestEntry] = []
        below_cut: list[str] = []
        line = 0  # lines before the current part
        try:
            for heading, lines in _sections(text):
                if heading is not None:
                    level, title = headings[heading] = (headings.get(heading) or self._headings.get(heading)
                                                     or self._heading(heading, path))
                    reading.enter(level, title)
                    line += 1
                section, below = reading.section, reading.below_cut
                for part in _items(lines):
                    body = bodies[part] = bodies.get(part) or self._bodies.get(part) or self._body(part, path)
                    if below:
                        below_cut.extend(e.url for e in body.entries)
                    elif body.entries:
                        key = (part, line, section)
                        placed[key] = self._placed.get(key) or _place(body.entries, line, section)
                        entries.extend(placed[key])
                    line += body.lines
        except _Whole:
            return self._whole(text, path)
        self._headings, self._bodies, self._placed = headings, bodies, placed
        return Digest(style="house", title=reading.title, sections=tuple(reading.sections), entries=tuple(entries),
                      candidates_below_cut=tuple(below_cut))

    def _whole(self, text: str, path: str) -> Digest:
        self.parts_parsed += 1
        self.whole_reads += 1
        self._headings, self._bodies, self._placed = {}, {}, {}
        return read_digest(text, path=path, style="house", cut_heading=self.cut_heading)

    def _heading(self, line: str, path: str) -> tuple[int, str]:
        """(level, text) of a heading line."""
        self.parts_parsed += 1
        try:
            check_bounds(line, path)
        except DigestError:
            raise _Whole() from None  # the whole read names the line
        tokens = parse(line).tokens
        if not tokens or tokens[0].type != "heading_open":
            raise _Whole()
        return heading_level(tokens[0]), heading_text(tokens, 0)

    def _body(self, body: str, path: str) -> _Body:
        """The entries of the lines between two headings, which hold no heading themselves."""
        self.parts_parsed += 1
        try:
            check_bounds(body, path)
            doc = parse(body)
            if any(t.type == "heading_open" for t in doc.tokens):
                raise _Whole()  # an indented or underlined heading: the part depends on the headings around it
            digest = read_house(doc, path, None, self.cut_heading)
        except DigestError:
            raise _Whole() from None  # the whole read names the line
        return _Body(digest.entries, body.count("\n"))


def _sections(text: str) -> list[tuple[str | None, str]]:
    """(a heading line, or None for the start of the file, and the lines after it up to the next heading)."""
    starts = [0] if _HEADING.match(text) else []
    at = text.find("\n#")
    while at >= 0:
        if _HEADING.match(text, at + 1):
            starts.append(at + 1)
        at = text.find("\n#", at + 1)
    out: list[tuple[str | None, str]] = [(None, text[: starts[0] if starts else len(text)])]
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(text)
        eol = text.find("\n", start, end)
        out.append((text[start:end], "") if eol < 0 else (text[start : eol + 1], text[eol + 1 : end]))
    return out


def _items(lines: str) -> list[str]:
    """The lines between two headings cut where a list item starts at the margin ("* "), each cut keeping its text."""
    pieces = lines.split("\n* ")
    last = len(pieces) - 1
    out = [pieces[0] + "\n" if last else pieces[0]]
    for n in range(1, last + 1):
        piece = pieces[n]
        if not piece or piece[0] in " \t\n" and not piece.split("\n", 1)[0].strip():
            raise _Whole()  # an empty item cannot interrupt a paragraph: the line may belong to the one before
        out.append("* " + piece + "\n" if n < last else "* " + piece)
    return out


def _html_block(text: str) -> bool:
    """Whether a line starts with "<" after at most three spaces: an HTML block may start there."""
    at = text.find("<")
    while at >= 0:
        line = text.rfind("\n", 0, at) + 1
        if at - line <= 3 and not text[line:at].strip(" "):
            return True
        at = text.find("<", at + 1)
    return False


def _place(entries: tuple[DigestEntry, ...], line: int, section: SectionPath) -> tuple[DigestEntry, ...]:
    """A part's entries under the section in force, their lines counted from the file's start."""
    return tuple(DigestEntry(e.title, e.url, section, e.source, e.month, e.summary, e.line + line) for e in entries)
