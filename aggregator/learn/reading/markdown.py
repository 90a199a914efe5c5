"""What every digest style reads with: the Markdown parser, its bounds, front matter, token and text helpers."""

from __future__ import annotations

import re
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
KRAMDOWN_IAL = re.compile(r"\{:[^{}]*\}")
_DATE_TEXT = re.compile(r"(\d{4})[-./](\d{1,2})")
_DAY_TEXT = re.compile(r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})")


@dataclass(frozen=True)
class Document:
    """A parsed Markdown file: its block tokens and its front matter text, if any."""

    tokens: list[Token]
    front_matter: str | None


# ---------------------------------------------------------------- text


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
    return title, f"{match['year']}-{number:02d}", collapse(match["source"] or "")


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
    return collapse("".join(parts))


def entry_summary_text(tokens: Sequence[Token], *, skip: Callable[[Token], bool] | None = None) -> str:
    """The plain text of every inline token in a span of block tokens, joined by spaces.

    `skip(inline)` may leave out some paragraphs (e.g. image captions).
    """
    parts = [
        inline_text(tok.children or ())
        for tok in tokens
        if tok.type == "inline" and not (skip and skip(tok))
    ]
    return collapse(" ".join(p for p in parts if p))


def collapse(text: str) -> str:
    """White space runs made one space, and none at either end."""
    return " ".join(text.split())


# ---------------------------------------------------------------- parsing


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark").use(front_matter_plugin).use(footnote_plugin)
    # Keep link targets exactly as the editor wrote them (no percent-encoding or punycode),
    # so they compare with the links feeds give.
    md.normalizeLink = lambda url: url  # type: ignore[method-assign]
    md.disable("text_join")  # keep escaped characters apart from text, so "\*\*" is not taken for markup
    return md


_MD = _markdown()


def check_bounds(text: str, path: str) -> None:
    """Refuse, with file and line, what would keep the Markdown parser busy for minutes: its footnote
    plugin (mdit-py-plugins) takes time quadratic in the "[^" on one line (20,000 of them: 68 s)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE:
            raise DigestError(f"{path}:{number}: line longer than {MAX_LINE:,} characters")
        if line.count("[^") > MAX_REFS_PER_LINE:
            raise DigestError(f"{path}:{number}: more than {MAX_REFS_PER_LINE} footnote references ([^) on one line")


def parse(text: str) -> Document:
    """The text's block tokens, and its front matter as written."""
    tokens = _MD.parse(text)
    front = next((t.content for t in tokens if t.type == "front_matter"), None)
    return Document(tokens=tokens, front_matter=front)


def front_matter(doc: Document, path: str) -> dict[str, Any]:
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
        problem = collapse(getattr(exc, "problem", None) or str(exc)) or type(exc).__name__
        raise DigestError(f"{path}:{line}: front matter is not valid YAML: {problem}") from exc
    return data if isinstance(data, dict) else {}


def month_of(value: object) -> str | None:
    """"YYYY-MM" of a front-matter date (a date, or text that starts with one)."""
    if isinstance(value, date):
        return f"{value.year:04d}-{value.month:02d}"
    match = _DATE_TEXT.search(str(value)) if value is not None else None
    if match and 1 <= int(match[2]) <= 12:
        return f"{match[1]}-{int(match[2]):02d}"
    return None


def day_of(value: object) -> str | None:
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


def no_url(path: str, line: int, title: str) -> DigestError:
    """The error for an entry without a link."""
    return DigestError(f"{path}:{line}: entry '{title}' has no URL")


def no_title(path: str, line: int, url: str) -> DigestError:
    """The error for an entry without a title."""
    return DigestError(f"{path}:{line}: entry {url} has no title")


# ---------------------------------------------------------------- tokens


def line_of(tok: Token) -> int:
    """The 1-based line a block token starts on, or 0 when it has no map."""
    return tok.map[0] + 1 if tok.map else 0


def heading_level(tok: Token) -> int:
    """1 for an h1 ... 6 for an h6 (and for anything unexpected)."""
    return int(tok.tag[1:]) if tok.tag[1:].isdigit() else 6


def heading_inline(tokens: Sequence[Token], i: int) -> Token | None:
    """The inline token of the heading opened at tokens[i], if it has one."""
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    return nxt if nxt is not None and nxt.type == "inline" else None


def heading_text(tokens: Sequence[Token], i: int) -> str:
    """The readable text of the heading opened at tokens[i]."""
    inline = heading_inline(tokens, i)
    return inline_text(inline.children or ()) if inline else ""


def closing(tokens: Sequence[Token], i: int) -> int:
    """Index of the token that closes tokens[i] (an *_open token)."""
    close_type = tokens[i].type.replace("_open", "_close")
    for j in range(i + 1, len(tokens)):
        if tokens[j].type == close_type and tokens[j].level == tokens[i].level:
            return j
    return len(tokens) - 1


def link_span(children: Sequence[Token], start: int) -> int:
    """Index of the link_close that ends the link opened at children[start]."""
    for j in range(start + 1, len(children)):
        if children[j].type == "link_close":
            return j
    return len(children)


def body_end(tokens: Sequence[Token], start: int) -> int:
    """Index of the next heading or footnote block at or after `start`."""
    for j in range(start, len(tokens)):
        if tokens[j].type in ("heading_open", "footnote_block_open"):
            return j
    return len(tokens)


def starts_with_image(inline: Token) -> bool:
    """Whether an inline token's first non-blank child is an image."""
    kids = [c for c in inline.children or () if not (c.type == "text" and not c.content.strip())]
    return bool(kids) and kids[0].type == "image"
