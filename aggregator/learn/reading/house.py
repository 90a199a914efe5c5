"""The house style: "[Title (Mon YYYY, Source)](url): summary" list items under nested headings, and the cut."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from markdown_it.token import Token

from aggregator.learn.reading.markdown import (
    Document,
    closing,
    collapse,
    entry_summary_text,
    heading_level,
    heading_text,
    inline_text,
    line_of,
    link_span,
    no_title,
    no_url,
    split_title,
)
from aggregator.models import Digest, DigestEntry, SectionPath

CUT_HEADING = "Candidates below the cut"
"""The heading of the draft's last section, which lists candidates that were not selected."""

_BRACKET_TITLE = re.compile(r"^\[([^\[\]]+)\]")


@dataclass(frozen=True)
class _Item:
    """A house list item that starts like an entry; `url` is "" when its link has no target."""

    title: str
    url: str
    month: str | None
    source: str
    summary: str
    line: int


def house_signals(tokens: Sequence[Token]) -> int:
    """List items that open with "[Title (Mon YYYY...)](url)" (or the same bracket without a link)."""
    count = 0
    for i, tok in enumerate(tokens):
        if tok.type == "list_item_open":
            inline = _first_inline(tokens, i)
            raw = _leading_link_title(inline) if inline else None
            if raw is not None and split_title(raw)[1] is not None:
                count += 1
    return count


def _first_inline(tokens: Sequence[Token], item: int) -> Token | None:
    """The inline of a list item's first paragraph, if the item starts with one."""
    if item + 2 < len(tokens) and tokens[item + 1].type == "paragraph_open" and tokens[item + 2].type == "inline":
        return tokens[item + 2]
    return None


def _leading_link_title(inline: Token) -> str | None:
    """The raw title of an item that opens with a link, or with "[Title (Mon YYYY)]" and no link."""
    kids = inline.children or ()
    if kids and kids[0].type == "link_open":
        return inline_text(kids[1 : link_span(kids, 0)])
    match = _BRACKET_TITLE.match(inline.content)
    return match[1] if match else None


def _house_item(tokens: Sequence[Token], start: int, end: int) -> _Item | None:
    """Read the list item tokens[start..end] as an entry, or None if it is not one."""
    inline = _first_inline(tokens, start)
    if inline is None:
        return None
    kids = inline.children or ()
    line = line_of(tokens[start])
    if not kids or kids[0].type != "link_open":
        raw = _leading_link_title(inline)
        if raw is None or split_title(raw)[1] is None:
            return None  # a plain bullet (e.g. the NOTE block), not an entry
        title, month, source = split_title(collapse(raw))
        return _Item(title, "", month, source, "", line)
    close = link_span(kids, 0)
    title, month, source = split_title(inline_text(kids[1:close]))
    first = re.sub(r"^:\s*", "", inline_text(kids[close + 1 :]))
    rest = entry_summary_text(tokens[start + 4 : end])  # after list_item, paragraph, inline, paragraph_close
    summary = collapse(f"{first} {rest}")
    return _Item(title, str(kids[0].attrs.get("href") or "").strip(), month, source, summary, line)


def read_house(doc: Document, path: str, month: str | None, cut_heading: str) -> Digest:
    """Read a house-style digest: its first h1 names it, headings nest into sections, the cut's items are
    candidates below the cut."""
    tokens = doc.tokens
    headings = HouseHeadings(cut_heading)
    entries: list[DigestEntry] = []
    below_cut: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            headings.enter(heading_level(tok), heading_text(tokens, i))
            i = closing(tokens, i) + 1
            continue
        if tok.type == "list_item_open":
            end = closing(tokens, i)
            item = _house_item(tokens, i, end)
            if item is not None:
                if not item.url:
                    raise no_url(path, item.line, item.title)
                if not item.title:
                    raise no_title(path, item.line, item.url)
                if headings.below_cut:
                    below_cut.append(item.url)
                else:
                    entries.append(_house_entry(item, headings.section))
                i = end + 1
                continue
        i += 1
    return Digest(
        style="house",
        title=headings.title,
        sections=tuple(headings.sections),
        entries=tuple(entries),
        month=month,
        candidates_below_cut=tuple(below_cut),
    )


@dataclass
class HouseHeadings:
    """The headings read so far, in document order: the digest's title (its first h1), the section in
    force, the section tree, and whether the cut's heading has been passed."""

    cut_heading: str
    title: str = ""
    sections: dict[SectionPath, None] = field(default_factory=dict)
    _open: dict[int, str] = field(default_factory=dict)
    _cut_level: int | None = None
    _seen: bool = False

    def enter(self, level: int, text: str) -> None:
        """Read the next heading: the first h1 names the digest, the cut's heading starts the candidates
        below it (until a heading as high), any other opens a section."""
        if level == 1 and not self._seen:
            self.title = text  # "# Summary of Important AI & ML Blog Posts" names the digest
        elif text.casefold() == self.cut_heading.casefold():
            self._cut_level = level
        elif self._cut_level is None or level <= self._cut_level:
            self._cut_level = None
            _enter_heading(self._open, level, text, self.sections)
        self._seen = True

    @property
    def below_cut(self) -> bool:
        return self._cut_level is not None

    @property
    def section(self) -> SectionPath:
        return _path(self._open)


def _enter_heading(headings: dict[int, str], level: int, text: str, sections: dict[SectionPath, None]) -> None:
    """Make `text` the heading in force at `level`; empty headings only close deeper ones."""
    for deeper in [k for k in headings if k >= level]:
        del headings[deeper]
    if text:
        headings[level] = text
        path = _path(headings)
        for n in range(1, len(path) + 1):
            sections.setdefault(path[:n])


def _path(headings: dict[int, str]) -> SectionPath:
    return tuple(headings[k] for k in sorted(headings))


def _house_entry(item: _Item, section: SectionPath) -> DigestEntry:
    return DigestEntry(
        title=item.title,
        url=item.url,
        section=section,
        source=item.source,
        month=item.month,
        summary=item.summary,
        line=item.line,
    )
