"""The weekly style: one h3 per entry, its "[참고링크](url)" the link; the front matter's category is the section."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    heading_text,
    inline_text,
    line_of,
    link_span,
    month_of,
    no_url,
    starts_with_image,
)
from aggregator.models import Digest, DigestEntry, SectionPath

REFERENCE_LINK_TEXTS = frozenset({"참고링크", "참고자료", "참고 링크", "참고 자료"})
"""Link texts that point at a weekly entry's post."""

TOC_HEADINGS = frozenset({"목차", "contents", "table of contents"})

DEFAULT_WEEKLY_SECTION = "Uncategorised"
"""The weekly style's one section when its front matter names no category."""


def weekly_signals(tokens: Sequence[Token]) -> int:
    """Reference links ("[참고링크](url)"), or 1 for front matter with a table of contents; 0 without h3s."""
    headings = [i for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h3"]
    if not headings:
        return 0
    refs = sum(
        1
        for tok in tokens
        if tok.type == "inline"
        for text in _link_texts(tok.children or ())
        if text in REFERENCE_LINK_TEXTS
    )
    has_front = any(t.type == "front_matter" for t in tokens)
    has_toc = any(
        t.type == "heading_open" and heading_text(tokens, i).casefold() in TOC_HEADINGS
        for i, t in enumerate(tokens)
    )
    return refs or int(has_front and has_toc)


def _link_texts(children: Sequence[Token]) -> list[str]:
    texts = []
    for j, kid in enumerate(children):
        if kid.type == "link_open":
            texts.append(inline_text(children[j + 1 : link_span(children, j)]))
    return texts


def _weekly_section(meta: dict[str, Any]) -> SectionPath:
    """The weekly style has no headings for sections: its first front-matter category is the one."""
    categories = meta.get("categories")
    first = categories[0] if isinstance(categories, list) and categories else categories
    name = collapse(str(first)) if isinstance(first, (str, int, float)) else ""
    return ((name[:1].upper() + name[1:]) if name else DEFAULT_WEEKLY_SECTION,)


def _weekly_url(body: Sequence[Token]) -> str:
    """The "[참고링크](url)" target, else the first absolute http(s) link in the body."""
    fallback = ""
    for tok in body:
        kids = tok.children or () if tok.type == "inline" else ()
        for j, kid in enumerate(kids):
            if kid.type != "link_open":
                continue
            href = str(kid.attrs.get("href") or "").strip()
            if href and inline_text(kids[j + 1 : link_span(kids, j)]) in REFERENCE_LINK_TEXTS:
                return href
            if not fallback and href.startswith(("http://", "https://")):
                fallback = href
    return fallback


def _weekly_summary(body: Sequence[Token]) -> str:
    def skip(inline: Token) -> bool:
        text = inline_text(inline.children or ())
        return starts_with_image(inline) or text in REFERENCE_LINK_TEXTS or not any(c.isalnum() for c in text)

    return collapse(KRAMDOWN_IAL.sub(" ", entry_summary_text(body, skip=skip)))


def read_weekly(doc: Document, path: str, month: str | None) -> Digest:
    """Read a weekly-style digest: every h3 but the table of contents is an entry, all in one section."""
    tokens = doc.tokens
    meta = front_matter(doc, path)
    month = month or month_of(meta.get("date"))
    section = _weekly_section(meta)
    entries: list[DigestEntry] = []
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open" or tok.tag != "h3":
            continue
        title = heading_text(tokens, i)
        if not title or title.casefold() in TOC_HEADINGS:
            continue
        start = closing(tokens, i) + 1
        body = tokens[start : body_end(tokens, start)]
        url = _weekly_url(body)
        if not url:
            raise no_url(path, line_of(tok), title)
        entries.append(
            DigestEntry(
                title=title,
                url=url,
                section=section,
                month=month,
                summary=_weekly_summary(body),
                line=line_of(tok),
            )
        )
    return Digest(
        style="weekly",
        title=collapse(str(meta.get("title") or "")),
        sections=(section,),
        entries=tuple(entries),
        month=month,
        day=day_of(meta.get("date")),
    )
