"""OPML in and out: the subscription-list format every feed reader speaks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from datetime import datetime

from aggregator.config import check_http_url
from aggregator.errors import ConfigError
from aggregator.limits import MAX_NAME, MAX_URL, cap
from aggregator.models import FeedConfig


MAX_DEPTH = 50  # levels of nested outline folders


def read_opml(data: bytes, *, path: str = "<opml>", notes: list[str] | None = None) -> list[FeedConfig]:
    """Every outline with an http(s) xmlUrl, in document order; categories become tags. Names are cut to
    MAX_NAME characters and links over MAX_URL skipped, each said in `notes`."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 0
        raise ConfigError(f"{path}:{line}: not valid OPML/XML ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    if root.tag.lower() != "opml" or root.find("body") is None:
        raise ConfigError(f"{path}: not an OPML file (no <opml><body>)")
    feeds: list[FeedConfig] = []
    body: ET.Element = root.find("body")  # type: ignore[assignment]
    stack: list[tuple[Iterator[ET.Element], tuple[str, ...]]] = [(iter(body.findall("outline")), ())]
    while stack:  # in document order, as a recursive walk would go, but without recursion
        outlines, tags = stack[-1]
        outline = next(outlines, None)
        if outline is None:
            stack.pop()
            continue
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        name = (outline.get("title") or outline.get("text") or "").strip()
        if len(name) > MAX_NAME and notes is not None:
            notes.append(f"{path}: an outline's name of {len(name):,} characters cut to {MAX_NAME}")
        name = cap(" ".join(name[: 4 * MAX_NAME].split()), MAX_NAME)
        if len(url) > MAX_URL:
            if notes is not None:
                notes.append(f"{path}: an outline's link of {len(url):,} characters skipped")
            continue
        if url:
            try:
                check_http_url(url)
            except ValueError:
                continue  # not a feed we can poll
            feeds.append(FeedConfig(name=name or url, url=url, tags=tags))
        else:
            if len(stack) >= MAX_DEPTH:
                raise ConfigError(f"{path}: outlines nested deeper than {MAX_DEPTH} levels")
            label = name.lower().replace(" ", "-")
            stack.append((iter(outline.findall("outline")), tags + ((label,) if label else ())))
    return feeds


def write_opml(feeds: Sequence[FeedConfig], *, title: str, now: datetime) -> str:
    """An OPML 2.0 document listing the feeds."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = now.strftime("%a, %d %b %Y %H:%M:%S GMT")
    body = ET.SubElement(root, "body")
    for feed in feeds:
        attrs = {"type": "rss", "text": feed.name, "title": feed.name, "xmlUrl": feed.url}
        if feed.source:
            attrs["category"] = feed.source
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
