"""Feed parsing: feedparser on bytes into normalised posts (plain text, UTC dates, stable identity); never fetches."""

from __future__ import annotations

import calendar
import hashlib
import re
import unicodedata
from datetime import datetime, timezone
from typing import Any

import feedparser
from selectolax.lexbor import LexborHTMLParser

from aggregator.errors import ParseError
from aggregator.links import canonical_url
from aggregator.models import ParsedFeed, ParsedPost

MAX_TITLE = 500
MAX_SUMMARY = 2000
_SPACE = re.compile(r"\s+")
_DROP_TAGS = ["script", "style", "noscript", "iframe", "object", "embed", "template", "svg", "math"]
_ALTERNATE = re.compile(
    r"<link\b[^>]*\btype=[\"']application/(?:rss|atom)\+xml[\"'][^>]*>", re.IGNORECASE)
_HREF = re.compile(r"\bhref=[\"']([^\"']+)[\"']", re.IGNORECASE)


def clean_text(text: str) -> str:
    """Remove control and format characters and collapse white space."""
    if not text:
        return ""
    kept = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return _SPACE.sub(" ", kept).strip()


def html_to_text(html: str) -> str:
    """Reduce an HTML fragment to its visible text (scripts and styles dropped, entities decoded)."""
    if not html:
        return ""
    if "<" not in html and "&" not in html:
        return clean_text(html)
    tree = LexborHTMLParser(f"<body>{html}</body>")
    tree.strip_tags(_DROP_TAGS)
    body = tree.body
    return clean_text(body.text(separator=" ") if body is not None else "")


def _utc(struct: Any) -> datetime | None:
    if not struct:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(struct), tz=timezone.utc)
    except (OverflowError, ValueError, TypeError):
        return None


def _entry_html(entry: Any) -> str:
    summary = entry.get("summary") or ""
    if summary:
        return summary
    for content in entry.get("content") or ():
        if content.get("value"):
            return content["value"]
    return ""


def _post_from(entry: Any, base: str) -> ParsedPost:
    title = html_to_text(entry.get("title") or "")[:MAX_TITLE]
    url = canonical_url(entry.get("link"), base)
    summary = html_to_text(_entry_html(entry))[:MAX_SUMMARY]
    published = _utc(entry.get("published_parsed")) or _utc(entry.get("updated_parsed"))
    guid = clean_text(entry.get("id") or "")
    if guid:
        key = "guid:" + guid
    elif url:
        key = "url:" + url
    else:
        stamp = published.isoformat() if published else ""
        key = "hash:" + hashlib.sha256(f"{title}\x00{stamp}\x00{summary[:200]}".encode()).hexdigest()
    if not title:
        title = summary[:80] or url or "(untitled)"
    author = clean_text(entry.get("author") or "")[:200]
    digest = hashlib.sha256("\x00".join([title, url or "", summary, published.isoformat() if published else "",
                                         author]).encode()).hexdigest()
    return ParsedPost(key=key, url=url, title=title, summary=summary, published=published, author=author,
                      content_hash=digest)


def advertised_feed(body: bytes, base: str) -> str | None:
    """The feed URL an HTML page advertises with <link rel="alternate" type="application/rss+xml">."""
    head = body[:200_000].decode("utf-8", "replace")
    for tag in _ALTERNATE.findall(head):
        match = _HREF.search(tag)
        if match:
            return canonical_url(match.group(1), base)
    return None


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse a feed body (RSS 0.9x/1.0/2.0 or Atom) fetched from `url`."""
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False)
    version = parsed.get("version") or ""
    entries = parsed.get("entries") or []
    if not version and not entries:
        if re.search(rb"<html[\s>]", body[:4096], re.IGNORECASE):
            hint = advertised_feed(body, url)
            tip = f"; the page advertises a feed at {hint}" if hint else ""
            raise ParseError(f"not a feed: got an HTML page{tip}")
        reason = parsed.get("bozo_exception")
        raise ParseError(f"not a readable feed: {reason}" if reason else "not a readable feed")
    warning = None
    if parsed.get("bozo"):
        reason = parsed.get("bozo_exception")
        name = type(reason).__name__ if reason is not None else "error"
        if name not in ("CharacterEncodingOverride", "NonXMLContentType"):  # well-formed XML, odd headers
            warning = f"malformed feed ({name}: {str(reason)[:120]}); read {len(entries)} entries anyway"
    base = parsed.get("href") or url
    posts = tuple(_post_from(entry, base) for entry in entries)
    feed = parsed.get("feed") or {}
    return ParsedFeed(
        title=html_to_text(feed.get("title") or "")[:MAX_TITLE],
        link=canonical_url(feed.get("link"), url),
        posts=posts,
        warning=warning,
    )
