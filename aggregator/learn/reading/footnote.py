"""The footnote style: entries are headings with a "[^n]" reference to their link; h1/h2 name the sections."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from markdown_it.token import Token

from aggregator.learn.reading.markdown import (
    KRAMDOWN_IAL,
    Document,
    body_end,
    closing,
    collapse,
    day_of,
    entry_summary_text,
    front_matter,
    heading_inline,
    heading_level,
    inline_text,
    line_of,
    month_of,
    no_title,
    no_url,
    starts_with_image,
)
from aggregator.models import Digest, DigestEntry, SectionPath

_UNRESOLVED_FOOTNOTE = re.compile(r"\[\^[^\]\s]+\]\s*$")
_RAW_FOOTNOTE = re.compile(r"(?<!\\)\[\^[^\]\s]+\]\s*$")  # as written: an escaped "\[^1\]" is title text
_BARE_URL = re.compile(r"https?://\S+")


def footnote_signals(tokens: Sequence[Token]) -> int:
    """Headings that end with a footnote reference, resolved or not."""
    count = 0
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and (inline := heading_inline(tokens, i)):
            kids = inline.children or ()
            if any(k.type == "footnote_ref" for k in kids) or _UNRESOLVED_FOOTNOTE.search(inline.content):
                count += 1
    return count


def _strip_emoji(text: str) -> str:
    def is_decoration(ch: str) -> bool:
        category = unicodedata.category(ch)  # "Sk" for skin-tone modifiers, not for ASCII's ` and ^
        return category in ("So", "Cf", "Mn", "Me", "Zs") or (category == "Sk" and not ch.isascii()) or ch == "\ufe0f"

    start, end = 0, len(text)
    while start < end and is_decoration(text[start]):
        start += 1
    while end > start and is_decoration(text[end - 1]):
        end -= 1
    return text[start:end]


def _footnote_urls(tokens: Sequence[Token]) -> dict[int, str]:
    """Footnote id -> the first link (or bare URL) in its definition."""
    urls: dict[int, str] = {}
    for i, tok in enumerate(tokens):
        if tok.type != "footnote_open":
            continue
        end = closing(tokens, i)
        urls[int(tok.meta.get("id", -1))] = _first_url(tokens[i:end])
    return urls


def _first_url(tokens: Sequence[Token]) -> str:
    for tok in tokens:
        if tok.type != "inline":
            continue
        for kid in tok.children or ():
            href = str(kid.attrs.get("href") or "").strip() if kid.type == "link_open" else ""
            if href:
                return href
        bare = _BARE_URL.search(inline_text(tok.children or ()))
        if bare:
            return bare[0]
    return ""


def _body_summary(tokens: Sequence[Token]) -> str:
    """Paragraphs and bullets below a heading; image paragraphs (with their captions) left out."""
    text = entry_summary_text(tokens, skip=starts_with_image)
    return collapse(KRAMDOWN_IAL.sub(" ", text))


def read_footnote(doc: Document, path: str, month: str | None) -> Digest:
    """Read a footnote-style digest: title and date from the front matter, section emoji kept apart."""
    tokens = doc.tokens
    meta = front_matter(doc, path)
    month = month or month_of(meta.get("date"))
    urls = _footnote_urls(tokens)
    emoji: dict[str, str] = {}
    section: SectionPath = ()
    sections: dict[SectionPath, None] = {}
    entries: list[DigestEntry] = []
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open" or (inline := heading_inline(tokens, i)) is None:
            continue
        level, kids = heading_level(tok), inline.children or ()
        if level <= 2:
            written = inline_text(kids)
            name = _strip_emoji(written)
            section = (name,) if name else ()
            if name and written.find(name) > 0:
                emoji.setdefault(name, written[: written.find(name)].strip())
            continue
        refs = [k for k in kids if k.type == "footnote_ref"]
        unresolved = _RAW_FOOTNOTE.search(inline.content) is not None  # "[^ref3]" with no definition
        if not refs and not unresolved:
            continue  # a sub-heading without a reference is not an entry
        title = inline_text(kids).strip()  # resolved references are tokens of their own, not text
        if not refs:
            title = _UNRESOLVED_FOOTNOTE.sub("", title).strip()
        url = urls.get(int(refs[0].meta.get("id", -1)), "") if refs else ""
        if not url:
            raise no_url(path, line_of(tok), title)
        if not title:
            raise no_title(path, line_of(tok), url)
        start = closing(tokens, i) + 1
        entries.append(
            DigestEntry(
                title=title,
                url=url,
                section=section,
                month=month,
                summary=_body_summary(tokens[start : body_end(tokens, start)]),
                line=line_of(tok),
            )
        )
        if section:
            sections.setdefault(section)
    return Digest(
        style="footnote",
        title=collapse(str(meta.get("title") or "")),
        sections=tuple(sections),
        entries=tuple(entries),
        month=month,
        day=day_of(meta.get("date")),
        emoji=tuple((name, mark) for name, mark in emoji.items() if mark),
    )
