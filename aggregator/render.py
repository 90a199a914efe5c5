"""Rendering a month's draft as house-style Markdown or JSON; pure functions, no I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime

from aggregator.models import DraftItem, SectionPath

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
BELOW_CUT = "Candidates below the cut"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+")
_URL_UNSAFE = {" ": "%20", "(": "%28", ")": "%29", "<": "%3C", ">": "%3E", "\\": "%5C", "`": "%60"}


def month_label(when: datetime) -> str:
    """'Dec 2022', whatever the machine's locale."""
    return f"{MONTHS[when.month - 1]} {when.year}"


def escape_markdown(text: str) -> str:
    """Backslash-escape every character that could start Markdown or HTML markup in inline text."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def safe_link(url: str) -> str:
    """A URL that cannot close the `(...)` of a Markdown link early."""
    return "".join(_URL_UNSAFE.get(ch, ch) for ch in url)


def first_sentences(text: str, count: int = 2, limit: int = 280) -> str:
    """The first `count` sentences of plain text, cut at a word boundary near `limit` characters."""
    text = " ".join(text.split())
    if not text:
        return ""
    picked = " ".join(_SENTENCE_END.split(text)[:count])
    if len(picked) <= limit:
        return picked
    cut = picked[:limit].rsplit(" ", 1)[0] if " " in picked[:limit] else picked[:limit]
    return cut.rstrip(" ,;:") + "…"


def entry_line(item: DraftItem, *, with_source: bool = True) -> str:
    """`* [Title (Dec 2022, Netflix)](url): first sentence or two`."""
    post = item.candidate
    label = month_label(post.published)
    if with_source and post.source:
        label += f", {post.source}"
    line = f"* [{escape_markdown(post.title)} ({escape_markdown(label)})]({safe_link(post.url)})"
    summary = first_sentences(post.summary)
    if summary:
        line += ": " + escape_markdown(summary)
    return line


def _comment(item: DraftItem) -> str | None:
    p = item.prediction
    if p.priority is None and p.section_confidence is None:
        return None
    parts = []
    if p.priority is not None:
        parts.append(f"priority {p.priority:.2f}")
    if p.section_confidence is not None:
        parts.append(f"section {p.section_confidence:.2f}")
    if p.reasons:
        terms = ", ".join(r.replace("--", "- -") for r in p.reasons)
        parts.append(f"terms: {terms}")
    return "<!-- " + "; ".join(parts) + " -->"


def _sort_key(item: DraftItem) -> tuple[int, float, str]:
    post = item.candidate
    priority = item.prediction.priority or 0.0
    return (-(post.published.year * 12 + post.published.month), -priority, post.title.casefold())


def _ordered_sections(items: Sequence[DraftItem], taxonomy: Sequence[SectionPath]) -> list[SectionPath]:
    used = {item.prediction.section for item in items}
    order = [s for s in taxonomy if s in used]
    order += sorted(used - set(order))
    return order


def render_markdown(
    items: Sequence[DraftItem],
    *,
    title: str,
    taxonomy: Sequence[SectionPath] = (),
    no_source_sections: Sequence[str] = (),
    note: str | None = None,
) -> str:
    """The draft in the house style: the taxonomy's headings in order, empty sections left out.

    Selected items go under their sections; unselected ones are listed in a last section for the
    editor to promote. Sections whose top heading is in `no_source_sections` print no source label.
    """
    lines = [f"# {title}"]
    if note:
        lines.append(f"<!-- {note} -->")
    selected = [i for i in items if i.selected]
    printed: set[SectionPath] = set()
    for section in _ordered_sections(selected, taxonomy):
        for depth in range(1, len(section) + 1):
            head = section[:depth]
            if head not in printed:
                printed.add(head)
                if not lines[-1].startswith("#"):  # as in the house style: "## 1. Research" then "### 1.1. CV"
                    lines.append("")
                lines.append(f"{'#' * (depth + 1)} {head[-1]}")
        with_source = section[0] not in no_source_sections
        for item in sorted((i for i in selected if i.prediction.section == section), key=_sort_key):
            lines.append(entry_line(item, with_source=with_source))
            comment = _comment(item)
            if comment:
                lines.append(comment)
    rest = sorted((i for i in items if not i.selected), key=lambda i: -(i.prediction.priority or 0.0))
    if rest:
        lines += ["", f"## {BELOW_CUT}"]
        for item in rest:
            lines.append(entry_line(item) + f" <!-- suggested section: {' > '.join(item.prediction.section)} -->")
    return "\n".join(lines) + "\n"


def render_json(items: Sequence[DraftItem]) -> str:
    """Every candidate as a JSON array of objects."""
    rows = []
    for item in items:
        post, p = item.candidate, item.prediction
        rows.append({
            "url": post.url,
            "title": post.title,
            "source": post.source,
            "published": post.published.isoformat().replace("+00:00", "Z"),
            "section": list(p.section),
            "section_confidence": p.section_confidence,
            "priority": p.priority,
            "selected": item.selected,
            "reasons": list(p.reasons),
        })
    return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
