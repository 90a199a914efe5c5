"""Rendering a draft in each digest style (house, footnote, weekly) or as JSON; pure functions, no I/O."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime

from aggregator.models import DraftItem, SectionPath

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
BELOW_CUT = "Candidates below the cut"
# Markup in CommonMark, GFM and kramdown ("{::nomarkdown}", "$$" math) that inline text could start.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&{}$])")
_SCHEME_COLON = re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*):(?=/|[a-z0-9])")  # https: mailto: xmpp:
_WWW_DOT = re.compile(r"(?i)(?<![a-z0-9.-])(www)\.")
_EMAIL_AT = re.compile(r"(?<=[A-Za-z0-9._+-])@(?=[A-Za-z0-9])")
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+")
_URL_UNSAFE = {"(": "%28", ")": "%29", "<": "%3C", ">": "%3E", "\\": "%5C", "`": "%60"}
_ENTITY_LIKE = re.compile(r"&(?=#?[0-9A-Za-z]+;)")  # "&amp;" in a link target would be read as "&"
_LINK_SCHEMES = ("http://", "https://")
_DOUBLE_HYPHEN = re.compile(r"-(?=-)")  # "--" may not appear inside an HTML comment


def month_label(when: datetime) -> str:
    """'Dec 2022', whatever the machine's locale."""
    return f"{MONTHS[when.month - 1]} {when.year}"


def _printable(text: str) -> str:
    """One line of text: white space collapsed, control and format characters dropped."""
    return " ".join("".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text).split())


def escape_markdown(text: str) -> str:
    """Backslash-escape every character that could start Markdown or HTML markup in inline text, and keep
    GitHub's autolinks from turning text into links: "https://…" and "www.…" lose the character the
    extension looks for ("https\\://", "www\\."), and an address's "@" is set apart by an empty HTML
    comment (GitHub links e-mail addresses after escapes are gone, but not across a comment)."""
    escaped = _MD_SPECIAL.sub(r"\\\1", _printable(text))
    escaped = _SCHEME_COLON.sub(r"\1\\:", escaped)
    escaped = _WWW_DOT.sub(r"\1\\.", escaped)
    return _EMAIL_AT.sub("<!-- -->@", escaped)


def safe_link(url: str) -> str:
    """A URL that cannot close the `(...)` of a Markdown link early, nor change as Markdown reads it."""
    url = "".join(_URL_UNSAFE.get(ch, ch) if " " < ch != "\x7f" else f"%{ord(ch):02X}" for ch in url)
    return _ENTITY_LIKE.sub(r"\\&", url)


def _comment_text(text: str) -> str:
    """Text that cannot end the HTML comment it is put in."""
    return _DOUBLE_HYPHEN.sub("- ", _printable(text))


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
    """`* [Title (Dec 2022, Netflix)](url): first sentence or two`.

    A post without an http(s) link (none in its feed, or javascript:, data: …) is listed in an HTML
    comment: the editor sees it, the published page and a digest import do not.
    """
    post = item.candidate
    label = month_label(post.published)
    if with_source and post.source:
        label += f", {post.source}"
    if not post.url.lower().startswith(_LINK_SCHEMES):
        return f"<!-- no link: {_comment_text(post.title)} ({_comment_text(label)}) -->"
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
        parts.append("why: " + "; ".join(_comment_text(r) for r in p.reasons))
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
        lines.append(f"<!-- {_comment_text(note)} -->")
    selected = [i for i in items if i.selected]
    printed: set[SectionPath] = set()
    for section in _ordered_sections(selected, taxonomy):
        for depth in range(1, len(section) + 1):
            head = section[:depth]
            if head not in printed:
                printed.add(head)
                if not lines[-1].startswith("#"):  # as in the house style: "## 1. Research" then "### 1.1. CV"
                    lines.append("")
                heading = escape_markdown(head[-1]).replace("#", "\\#")  # "## C#" must not lose its "#"
                lines.append(f"{'#' * (depth + 1)} {heading}")
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
            section = _comment_text(" > ".join(item.prediction.section))
            lines.append(entry_line(item) + f" <!-- suggested section: {section} -->")
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


# --- the other editors' styles -------------------------------------------------------------------


def _front_matter(title: str, when: datetime, tags: Sequence[str], categories: Sequence[str] = ()) -> list[str]:
    """YAML front matter; every string JSON-quoted, which YAML reads as the same string."""
    lines = ["---", f"title: {json.dumps(_printable(title), ensure_ascii=False)}",
             f"date: {when.strftime('%Y-%m-%d %H:%M:%S')} +0000"]
    if categories:
        lines.append("categories: [" + ", ".join(json.dumps(_printable(c), ensure_ascii=False) for c in categories) + "]")
    lines.append("tags: [" + ", ".join(json.dumps(_printable(t), ensure_ascii=False) for t in tags) + "]")
    return lines + ["---"]


_BLOCK_START = re.compile(r"[#+=-]|\d{1,9}(?=[.)])")  # what would make a line a heading, list item or rule


def _block_text(text: str) -> str:
    """Inline text that starts a line (a paragraph, a bullet's content) and stays one paragraph of text."""
    escaped = escape_markdown(text)
    start = _BLOCK_START.match(escaped)
    if start is None:
        return escaped
    return start[0] + "\\" + escaped[start.end():] if start[0][0].isdigit() else "\\" + escaped


def _heading_text(text: str) -> str:
    return escape_markdown(text).replace("#", "\\#")


def _below_cut_comment(items: Sequence[DraftItem]) -> list[str]:
    """The candidates below the cut, in one HTML comment: the editor sees them, a reader of the published
    page and a digest import do not."""
    rest = sorted((i for i in items if not i.selected), key=lambda i: -(i.prediction.priority or 0.0))
    if not rest:
        return []
    lines = ["", f"<!-- {BELOW_CUT}:"]
    for item in rest:
        section = _comment_text(" > ".join(item.prediction.section))
        lines.append(f"{_comment_text(item.candidate.title)} | {_comment_text(item.candidate.url)} | {section}")
    return lines + ["-->"]


def _selected_in_order(items: Sequence[DraftItem], taxonomy: Sequence[SectionPath]) -> list[tuple[SectionPath, list[DraftItem]]]:
    selected = [i for i in items if i.selected and i.candidate.url.lower().startswith(_LINK_SCHEMES)]
    return [(section, sorted((i for i in selected if i.prediction.section == section), key=_sort_key))
            for section in _ordered_sections(selected, taxonomy)]


def render_footnote(items: Sequence[DraftItem], *, title: str, when: datetime, tags: Sequence[str] = (),
                    taxonomy: Sequence[SectionPath] = (), note: str | None = None,
                    emoji: Mapping[str, str] | None = None) -> str:
    """The draft in the footnote style (a monthly trends post): front matter, `## <emoji> **Section**` headings
    (the emoji each section wore in the editor's imported posts),
    `### Entry title [^refN]` with the post's opening as bullets for the editor to rewrite, and the
    `[^refN]: [Title](url)` references at the end, numbered in order of appearance."""
    lines = _front_matter(title, when, tags)
    if note:
        lines.append(f"<!-- {_comment_text(note)} -->")
    references = []
    for section, entries in _selected_in_order(items, taxonomy):
        mark = _printable((emoji or {}).get(section[-1], ""))
        mark = mark + " " if mark and not any(ch.isalnum() or ch in "*_`[]<>&\\" for ch in mark) else ""
        lines += ["", f"## {mark}**{_heading_text(section[-1])}**"]
        for item in entries:
            n = len(references) + 1
            post = item.candidate
            lines += ["", f"### {_heading_text(post.title)} [^ref{n}]"]
            lines += [f"- {_block_text(s)}" for s in _SENTENCE_END.split(first_sentences(post.summary)) if s]
            comment = _comment(item)
            lines += [comment] if comment else []
            references.append(f"[^ref{n}]: [{escape_markdown(post.title)}]({safe_link(post.url)})")
    if references:
        lines += ["", *references]
    return "\n".join(lines + _below_cut_comment(items)) + "\n"


def _anchor(title: str) -> str:
    """The id Jekyll's kramdown gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    kept = "".join(ch for ch in _printable(title).lower() if ch.isalnum() or ch in " -_")
    return "-".join(kept.split()) or "section"


def render_weekly(items: Sequence[DraftItem], *, title: str, when: datetime, category: str, tags: Sequence[str] = (),
                  link_label: str = "참고링크", taxonomy: Sequence[SectionPath] = (), note: str | None = None) -> str:
    """The draft in the weekly style: front matter (its first category is the digest's one section), a
    table of contents, then `### Title`, a paragraph and the `[참고링크](url)` link for each entry."""
    lines = _front_matter(title, when, tags, [category])
    if note:
        lines.append(f"<!-- {_comment_text(note)} -->")
    entries = [item for _, group in _selected_in_order(items, taxonomy) for item in group]
    if entries:
        lines += ["", "## 목차", ""]
        lines += [f"- [{escape_markdown(item.candidate.title)}](#{_anchor(item.candidate.title)})" for item in entries]
    for item in entries:
        post = item.candidate
        lines += ["", f"### {_heading_text(post.title)}", ""]
        summary = first_sentences(post.summary)
        if summary:
            lines += [_block_text(summary), ""]
        lines.append(f"[{escape_markdown(link_label)}]({safe_link(post.url)})")
        comment = _comment(item)
        lines += [comment] if comment else []
    return "\n".join(lines + _below_cut_comment(items)) + "\n"
