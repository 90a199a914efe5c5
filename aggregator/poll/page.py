"""Reading one web page as a post: its title, description, opening, site name and date, from the HTML alone; pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from selectolax.lexbor import LexborHTMLParser

from aggregator.limits import MAX_NAME, MAX_SUMMARY, MAX_TITLE, cap
from aggregator.poll.parse import _decode, clean_text

HTML_TYPES = ("text/html", "application/xhtml+xml")
MIN_OPENING = 40  # characters a paragraph needs to count as the page's opening, not a caption or a byline
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_SKIPPED = "nav, header, footer, aside, script, style, noscript, template, form"


@dataclass(frozen=True)
class PageText:
    """What a page says about itself; "" (or None) where it says nothing."""

    title: str
    description: str  # the page's own summary (OpenGraph, Twitter or <meta name=description>)
    opening: str  # its first paragraph of prose
    site_name: str  # og:site_name
    published: datetime | None  # article:published_time, in UTC

    @property
    def summary(self) -> str:
        """The post's own text as a feed would give it: the description, else the opening."""
        return self.description or self.opening


def is_html(content_type: str | None) -> bool:
    """Whether a response's Content-Type is a web page (a missing one is taken as one)."""
    kind = (content_type or "text/html").split(";", 1)[0].strip().lower()
    return kind in HTML_TYPES or not kind


def _text_of(body: bytes, content_type: str | None) -> str:
    """The page as text: the HTTP charset, else the one a <meta> declares, else what the bytes read as."""
    if "charset" not in (content_type or "").lower():
        declared = _META_CHARSET.search(body[:4096])
        if declared:
            content_type = f"text/html; charset={declared[1].decode('ascii')}"
    return _decode(body, content_type)[0]


def _meta(tree: LexborHTMLParser, *names: str) -> str:
    """The content of the first of `names` the page's <meta property=…> or <meta name=…> gives, cleaned."""
    found: dict[str, str] = {}
    for node in tree.css("meta[content]"):
        attrs = node.attributes
        key = (attrs.get("property") or attrs.get("name") or "").strip().lower()
        if key in names and key not in found:
            found[key] = clean_text(str(attrs.get("content") or ""))
    return next((found[n] for n in names if found.get(n)), "")


def _date(text: str) -> datetime | None:
    """An ISO 8601 date or time in UTC ("2022-12-05", "2022-12-05T09:00:00+09:00"); None otherwise."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _opening(tree: LexborHTMLParser) -> str:
    """The first paragraph of prose in the page's article (or main part, or body), not its navigation."""
    for node in tree.css(_SKIPPED):
        node.decompose()
    for scope in ("article p", "main p", "p"):
        for node in tree.css(scope):
            text = clean_text(node.text(separator=" "))
            if len(text) >= MIN_OPENING:
                return text
    return ""


def read_page(body: bytes, content_type: str | None) -> PageText:
    """Title (og:title, twitter:title, else <title>), description, opening and site name of an HTML page,
    each as plain one-line text within the caps."""
    tree = LexborHTMLParser(_text_of(body, content_type))
    title = _meta(tree, "og:title", "twitter:title")
    if not title:
        node = tree.css_first("title")
        title = clean_text(node.text()) if node is not None else ""
    description = _meta(tree, "og:description", "twitter:description", "description")
    site = _meta(tree, "og:site_name")
    published = _date(_meta(tree, "article:published_time", "og:published_time", "datePublished"))
    return PageText(cap(title, MAX_TITLE), cap(description, MAX_SUMMARY), cap(_opening(tree), MAX_SUMMARY),
                    cap(site, MAX_NAME), published)
