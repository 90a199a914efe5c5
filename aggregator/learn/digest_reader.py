"""Reads digest Markdown (house, footnote and weekly styles) into entries and a section tree."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.front_matter import front_matter_plugin
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from aggregator.errors import DigestError
from aggregator.models import Digest, DigestEntry, DigestStyle, SectionPath

CUT_HEADING = "Candidates below the cut"
"""The heading of the draft's last section, which lists candidates that were not selected."""

REFERENCE_LINK_TEXTS = frozenset({"참고링크", "참고자료", "참고 링크", "참고 자료"})
"""Link texts that point at a weekly entry's post."""

TOC_HEADINGS = frozenset({"목차", "contents", "table of contents"})

DEFAULT_WEEKLY_SECTION = "Uncategorised"
"""The weekly style's one section when its front matter names no category."""

STYLES: tuple[DigestStyle, ...] = ("house", "footnote", "weekly")

_MONTH_NAMES = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_MONTHS = {name[:3]: number for number, name in enumerate(_MONTH_NAMES, start=1)}
# The inside of "(Dec 2022, Netflix)" / "(Dec 2022)" / "(December 2022)" ending a title; linear time.
_SUFFIX = re.compile(r"\s*(?P<mon>[A-Za-z]{3,9})\.?\s+(?P<year>\d{4})\s*(?:,(?P<source>[^()]*))?", re.S)
MAX_FRONT_MATTER = 16_384  # characters of YAML front matter a digest may have
MAX_LINE = 100_000  # characters on one line of a digest
MAX_REFS_PER_LINE = 200  # footnote references ("[^") on one line
MAX_FRONT_MATTER_DEPTH = 20  # levels of nested lists and mappings in it
_UNRESOLVED_FOOTNOTE = re.compile(r"\[\^[^\]\s]+\]\s*$")
_RAW_FOOTNOTE = re.compile(r"(?<!\\)\[\^[^\]\s]+\]\s*$")  # as written: an escaped "\[^1\]" is title text
_BRACKET_TITLE = re.compile(r"^\[([^\[\]]+)\]")
_KRAMDOWN_IAL = re.compile(r"\{:[^{}]*\}")
_BARE_URL = re.compile(r"https?://\S+")
_MONTH_ARG = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_DATE_TEXT = re.compile(r"(\d{4})[-./](\d{1,2})")
_DAY_TEXT = re.compile(r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})")


@dataclass(frozen=True)
class _Document:
    """A parsed Markdown file: its block tokens and its front matter text, if any."""

    tokens: list[Token]
    front_matter: str | None


@dataclass(frozen=True)
class _Item:
    """A house list item that starts like an entry; `url` is "" when its link has no target."""

    title: str
    url: str
    month: str | None
    source: str
    summary: str
    line: int


# ---------------------------------------------------------------- public API


def read_digest(
    text: str,
    *,
    path: str = "<string>",
    style: DigestStyle | None = None,
    month: str | None = None,
    cut_heading: str = CUT_HEADING,
) -> Digest:
    """Read one digest file into a `Digest`.

    Args:
        text: the Markdown source.
        path: the file name, used in error messages.
        style: force a style instead of detecting it.
        month: "YYYY-MM" the digest covers; overrides what the file says (footnote and
            weekly take it from the front matter date, house leaves it None otherwise).
        cut_heading: the heading of a draft's "not selected" section (house style).

    Raises:
        DigestError: the text is in no known style, or an entry has no URL.
    """
    if month is not None and not _MONTH_ARG.match(month):
        raise DigestError(f"{path}: month must be YYYY-MM, got {month!r}")
    _check_bounds(text, path)
    doc = _parse(text)
    chosen = style or _detect(doc.tokens)
    if chosen is None:
        raise _not_a_digest(path)
    if chosen == "house":
        return _read_house(doc, path, month, cut_heading)
    if chosen == "footnote":
        return _read_footnote(doc, path, month)
    if chosen == "weekly":
        return _read_weekly(doc, path, month)
    raise DigestError(f"{path}: unknown digest style {chosen!r}")


def detect_style(text: str, *, path: str = "<string>") -> DigestStyle:
    """Tell which style a digest is written in.

    Raises:
        DigestError: the text looks like none of them.
    """
    found = _detect(_parse(text).tokens)
    if found is None:
        raise _not_a_digest(path)
    return found


def split_title(raw: str) -> tuple[str, str | None, str]:
    """Split "Title (Dec 2022, Netflix)" into ("Title", "2022-12", "Netflix").

    Without a "(Mon YYYY[, Source])" suffix the title comes back whole: (raw, None, "").
    """
    raw = raw.strip()
    opening = raw.rfind("(")  # the suffix holds no parenthesis, so it starts at the last one
    match = _SUFFIX.fullmatch(raw, opening + 1, len(raw) - 1) if raw.endswith(")") and opening > 0 else None
    title = raw[:opening].rstrip() if match else ""
    if not match or not title:
        return raw, None, ""
    mon = match["mon"].lower()
    number = _MONTHS.get(mon[:3])
    if number is None or (len(mon) > 3 and mon not in _MONTH_NAMES and mon != "sept"):
        return raw, None, ""
    return title, f"{match['year']}-{number:02d}", _collapse(match["source"] or "")


def inline_text(children: Sequence[Token]) -> str:
    """The readable text of an inline token's children: markup, HTML and images dropped.

    Link texts are kept ("[1편](url)도" -> "1편도"); footnote references are dropped,
    and so are stray "**" runs that CommonMark did not read as emphasis.
    """
    parts: list[str] = []
    for tok in children:
        if tok.type == "text":
            # "**" that CommonMark left unparsed (e.g. "**Name**에" in Korean prose) is markup too.
            parts.append(tok.content.replace("**", ""))
        elif tok.type == "text_special":  # an escaped character ("\*") or an entity: text as written
            parts.append(tok.content)
        elif tok.type == "code_inline":
            parts.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return _collapse("".join(parts))


def entry_summary_text(tokens: Sequence[Token], *, skip: Callable[[Token], bool] | None = None) -> str:
    """The plain text of every inline token in a span of block tokens, joined by spaces.

    `skip(inline)` may leave out some paragraphs (e.g. image captions).
    """
    parts = [
        inline_text(tok.children or ())
        for tok in tokens
        if tok.type == "inline" and not (skip and skip(tok))
    ]
    return _collapse(" ".join(p for p in parts if p))


# ---------------------------------------------------------------- parsing


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark").use(front_matter_plugin).use(footnote_plugin)
    # Keep link targets exactly as the editor wrote them (no percent-encoding or punycode),
    # so they compare with the links feeds give.
    md.normalizeLink = lambda url: url  # type: ignore[method-assign]
    md.disable("text_join")  # keep escaped characters apart from text, so "\*\*" is not taken for markup
    return md


_MD = _markdown()


def _check_bounds(text: str, path: str) -> None:
    """Refuse, with file and line, what would keep the Markdown parser busy for minutes: its footnote
    plugin (mdit-py-plugins) takes time quadratic in the "[^" on one line (20,000 of them: 68 s)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE:
            raise DigestError(f"{path}:{number}: line longer than {MAX_LINE:,} characters")
        if line.count("[^") > MAX_REFS_PER_LINE:
            raise DigestError(f"{path}:{number}: more than {MAX_REFS_PER_LINE} footnote references ([^) on one line")


def _parse(text: str) -> _Document:
    tokens = _MD.parse(text)
    front = next((t.content for t in tokens if t.type == "front_matter"), None)
    return _Document(tokens=tokens, front_matter=front)


def _front_matter(doc: _Document, path: str) -> dict[str, Any]:
    """The front matter as data. Refused before anything is built: more than MAX_FRONT_MATTER characters,
    YAML aliases (a few hundred bytes of anchors can expand to gigabytes), or nesting deeper than
    MAX_FRONT_MATTER_DEPTH."""
    if doc.front_matter is None:
        return {}
    if len(doc.front_matter) > MAX_FRONT_MATTER:
        raise DigestError(f"{path}:2: front matter is over {MAX_FRONT_MATTER:,} characters")
    try:
        depth = 0
        for event in YAML(typ="safe", pure=True).parse(doc.front_matter):
            kind = type(event).__name__
            if kind == "AliasEvent":
                line = event.start_mark.line + 2 if event.start_mark is not None else 2
                raise DigestError(f"{path}:{line}: front matter uses a YAML alias (*name), which aggregator does not read")
            depth += kind in ("MappingStartEvent", "SequenceStartEvent")
            depth -= kind in ("MappingEndEvent", "SequenceEndEvent")
            if depth > MAX_FRONT_MATTER_DEPTH:
                line = event.start_mark.line + 2 if event.start_mark is not None else 2
                raise DigestError(f"{path}:{line}: front matter nests deeper than {MAX_FRONT_MATTER_DEPTH} levels")
        data = YAML(typ="safe", pure=True).load(doc.front_matter)
    except (YAMLError, ValueError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1  # +1 for the "---" line, +1 for 1-based
        problem = _collapse(getattr(exc, "problem", None) or str(exc)) or type(exc).__name__
        raise DigestError(f"{path}:{line}: front matter is not valid YAML: {problem}") from exc
    return data if isinstance(data, dict) else {}


def _not_a_digest(path: str) -> DigestError:
    return DigestError(f"{path}: not a digest in any known style ({', '.join(STYLES)})")


def _no_url(path: str, line: int, title: str) -> DigestError:
    return DigestError(f"{path}:{line}: entry '{title}' has no URL")


def _no_title(path: str, line: int, url: str) -> DigestError:
    return DigestError(f"{path}:{line}: entry {url} has no title")


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _line(tok: Token) -> int:
    return tok.map[0] + 1 if tok.map else 0


def _heading_level(tok: Token) -> int:
    return int(tok.tag[1:]) if tok.tag[1:].isdigit() else 6


def _heading_inline(tokens: Sequence[Token], i: int) -> Token | None:
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    return nxt if nxt is not None and nxt.type == "inline" else None


def _heading_text(tokens: Sequence[Token], i: int) -> str:
    inline = _heading_inline(tokens, i)
    return inline_text(inline.children or ()) if inline else ""


def _closing(tokens: Sequence[Token], i: int) -> int:
    """Index of the token that closes tokens[i] (an *_open token)."""
    close_type = tokens[i].type.replace("_open", "_close")
    for j in range(i + 1, len(tokens)):
        if tokens[j].type == close_type and tokens[j].level == tokens[i].level:
            return j
    return len(tokens) - 1


def _link_span(children: Sequence[Token], start: int) -> int:
    """Index of the link_close that ends the link opened at children[start]."""
    for j in range(start + 1, len(children)):
        if children[j].type == "link_close":
            return j
    return len(children)


def _starts_with_image(inline: Token) -> bool:
    kids = [c for c in inline.children or () if not (c.type == "text" and not c.content.strip())]
    return bool(kids) and kids[0].type == "image"


def _month_of(value: object) -> str | None:
    if isinstance(value, date):
        return f"{value.year:04d}-{value.month:02d}"
    match = _DATE_TEXT.search(str(value)) if value is not None else None
    if match and 1 <= int(match[2]) <= 12:
        return f"{match[1]}-{int(match[2]):02d}"
    return None


def _day_of(value: object) -> str | None:
    """"YYYY-MM-DD" of a front-matter date (a date, or text that starts with one)."""
    if isinstance(value, date):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    match = _DAY_TEXT.search(str(value)) if value is not None else None
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3])).isoformat()
    except ValueError:
        return None


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


# ---------------------------------------------------------------- detection


def _detect(tokens: Sequence[Token]) -> DigestStyle | None:
    """The style with the most entry-shaped signals; ties go house > footnote > weekly."""
    scores: dict[DigestStyle, int] = {
        "house": _house_signals(tokens),
        "footnote": _footnote_signals(tokens),
        "weekly": _weekly_signals(tokens),
    }
    best = max(STYLES, key=lambda s: scores[s])
    return best if scores[best] > 0 else None


def _house_signals(tokens: Sequence[Token]) -> int:
    """List items that open with "[Title (Mon YYYY...)](url)" (or the same bracket without a link)."""
    count = 0
    for i, tok in enumerate(tokens):
        if tok.type == "list_item_open":
            inline = _first_inline(tokens, i)
            raw = _leading_link_title(inline) if inline else None
            if raw is not None and split_title(raw)[1] is not None:
                count += 1
    return count


def _footnote_signals(tokens: Sequence[Token]) -> int:
    count = 0
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and (inline := _heading_inline(tokens, i)):
            kids = inline.children or ()
            if any(k.type == "footnote_ref" for k in kids) or _UNRESOLVED_FOOTNOTE.search(inline.content):
                count += 1
    return count


def _weekly_signals(tokens: Sequence[Token]) -> int:
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
        t.type == "heading_open" and _heading_text(tokens, i).casefold() in TOC_HEADINGS
        for i, t in enumerate(tokens)
    )
    return refs or int(has_front and has_toc)


def _link_texts(children: Sequence[Token]) -> list[str]:
    texts = []
    for j, kid in enumerate(children):
        if kid.type == "link_open":
            texts.append(inline_text(children[j + 1 : _link_span(children, j)]))
    return texts


# ---------------------------------------------------------------- house style


def _first_inline(tokens: Sequence[Token], item: int) -> Token | None:
    """The inline of a list item's first paragraph, if the item starts with one."""
    if item + 2 < len(tokens) and tokens[item + 1].type == "paragraph_open" and tokens[item + 2].type == "inline":
        return tokens[item + 2]
    return None


def _leading_link_title(inline: Token) -> str | None:
    """The raw title of an item that opens with a link, or with "[Title (Mon YYYY)]" and no link."""
    kids = inline.children or ()
    if kids and kids[0].type == "link_open":
        return inline_text(kids[1 : _link_span(kids, 0)])
    match = _BRACKET_TITLE.match(inline.content)
    return match[1] if match else None


def _house_item(tokens: Sequence[Token], start: int, end: int) -> _Item | None:
    """Read the list item tokens[start..end] as an entry, or None if it is not one."""
    inline = _first_inline(tokens, start)
    if inline is None:
        return None
    kids = inline.children or ()
    line = _line(tokens[start])
    if not kids or kids[0].type != "link_open":
        raw = _leading_link_title(inline)
        if raw is None or split_title(raw)[1] is None:
            return None  # a plain bullet (e.g. the NOTE block), not an entry
        title, month, source = split_title(_collapse(raw))
        return _Item(title, "", month, source, "", line)
    close = _link_span(kids, 0)
    title, month, source = split_title(inline_text(kids[1:close]))
    first = re.sub(r"^:\s*", "", inline_text(kids[close + 1 :]))
    rest = entry_summary_text(tokens[start + 4 : end])  # after list_item, paragraph, inline, paragraph_close
    summary = _collapse(f"{first} {rest}")
    return _Item(title, str(kids[0].attrs.get("href") or "").strip(), month, source, summary, line)


def _read_house(doc: _Document, path: str, month: str | None, cut_heading: str) -> Digest:
    tokens = doc.tokens
    title = ""
    headings: dict[int, str] = {}
    sections: dict[SectionPath, None] = {}
    entries: list[DigestEntry] = []
    below_cut: list[str] = []
    cut_level: int | None = None
    seen_heading = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            level, text = _heading_level(tok), _heading_text(tokens, i)
            if level == 1 and not seen_heading:
                title = text  # "# Summary of Important AI & ML Blog Posts" names the digest
            elif text.casefold() == cut_heading.casefold():
                cut_level = level
            elif cut_level is None or level <= cut_level:
                cut_level = None
                _enter_heading(headings, level, text, sections)
            seen_heading = True
            i = _closing(tokens, i) + 1
            continue
        if tok.type == "list_item_open":
            end = _closing(tokens, i)
            item = _house_item(tokens, i, end)
            if item is not None:
                if not item.url:
                    raise _no_url(path, item.line, item.title)
                if not item.title:
                    raise _no_title(path, item.line, item.url)
                if cut_level is not None:
                    below_cut.append(item.url)
                else:
                    entries.append(_house_entry(item, headings))
                i = end + 1
                continue
        i += 1
    return Digest(
        style="house",
        title=title,
        sections=tuple(sections),
        entries=tuple(entries),
        month=month,
        candidates_below_cut=tuple(below_cut),
    )


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


def _house_entry(item: _Item, headings: dict[int, str]) -> DigestEntry:
    return DigestEntry(
        title=item.title,
        url=item.url,
        section=_path(headings),
        source=item.source,
        month=item.month,
        summary=item.summary,
        line=item.line,
    )


# ---------------------------------------------------------------- footnote style


def _footnote_urls(tokens: Sequence[Token]) -> dict[int, str]:
    """Footnote id -> the first link (or bare URL) in its definition."""
    urls: dict[int, str] = {}
    for i, tok in enumerate(tokens):
        if tok.type != "footnote_open":
            continue
        end = _closing(tokens, i)
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


def _body_end(tokens: Sequence[Token], start: int) -> int:
    """Index of the next heading or footnote block at or after `start`."""
    for j in range(start, len(tokens)):
        if tokens[j].type in ("heading_open", "footnote_block_open"):
            return j
    return len(tokens)


def _body_summary(tokens: Sequence[Token]) -> str:
    """Paragraphs and bullets below a heading; image paragraphs (with their captions) left out."""
    text = entry_summary_text(tokens, skip=_starts_with_image)
    return _collapse(_KRAMDOWN_IAL.sub(" ", text))


def _read_footnote(doc: _Document, path: str, month: str | None) -> Digest:
    tokens = doc.tokens
    meta = _front_matter(doc, path)
    month = month or _month_of(meta.get("date"))
    urls = _footnote_urls(tokens)
    emoji: dict[str, str] = {}
    section: SectionPath = ()
    sections: dict[SectionPath, None] = {}
    entries: list[DigestEntry] = []
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open" or (inline := _heading_inline(tokens, i)) is None:
            continue
        level, kids = _heading_level(tok), inline.children or ()
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
            raise _no_url(path, _line(tok), title)
        if not title:
            raise _no_title(path, _line(tok), url)
        start = _closing(tokens, i) + 1
        entries.append(
            DigestEntry(
                title=title,
                url=url,
                section=section,
                month=month,
                summary=_body_summary(tokens[start : _body_end(tokens, start)]),
                line=_line(tok),
            )
        )
        if section:
            sections.setdefault(section)
    return Digest(
        style="footnote",
        title=_collapse(str(meta.get("title") or "")),
        sections=tuple(sections),
        entries=tuple(entries),
        month=month,
        day=_day_of(meta.get("date")),
        emoji=tuple((name, mark) for name, mark in emoji.items() if mark),
    )


# ---------------------------------------------------------------- weekly style


def _weekly_section(meta: dict[str, Any]) -> SectionPath:
    """The weekly style has no headings for sections: its first front-matter category is the one."""
    categories = meta.get("categories")
    first = categories[0] if isinstance(categories, list) and categories else categories
    name = _collapse(str(first)) if isinstance(first, (str, int, float)) else ""
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
            if href and inline_text(kids[j + 1 : _link_span(kids, j)]) in REFERENCE_LINK_TEXTS:
                return href
            if not fallback and href.startswith(("http://", "https://")):
                fallback = href
    return fallback


def _weekly_summary(body: Sequence[Token]) -> str:
    def skip(inline: Token) -> bool:
        text = inline_text(inline.children or ())
        return _starts_with_image(inline) or text in REFERENCE_LINK_TEXTS or not any(c.isalnum() for c in text)

    return _collapse(_KRAMDOWN_IAL.sub(" ", entry_summary_text(body, skip=skip)))


def _read_weekly(doc: _Document, path: str, month: str | None) -> Digest:
    tokens = doc.tokens
    meta = _front_matter(doc, path)
    month = month or _month_of(meta.get("date"))
    section = _weekly_section(meta)
    entries: list[DigestEntry] = []
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open" or tok.tag != "h3":
            continue
        title = _heading_text(tokens, i)
        if not title or title.casefold() in TOC_HEADINGS:
            continue
        start = _closing(tokens, i) + 1
        body = tokens[start : _body_end(tokens, start)]
        url = _weekly_url(body)
        if not url:
            raise _no_url(path, _line(tok), title)
        entries.append(
            DigestEntry(
                title=title,
                url=url,
                section=section,
                month=month,
                summary=_weekly_summary(body),
                line=_line(tok),
            )
        )
    return Digest(
        style="weekly",
        title=_collapse(str(meta.get("title") or "")),
        sections=(section,),
        entries=tuple(entries),
        month=month,
        day=_day_of(meta.get("date")),
    )
