"""Fast feed reading: plain, well-formed RSS and Atom read with ElementTree the way feedparser reads them.

feedparser spends most of its time in Python callbacks for every element, most of which (categories, comments,
enclosures) a digest never uses. `read` walks ElementTree's C-built tree instead and takes only the fields
parse.py uses: the feed's title and link; each entry's title, link, id, summary or content, dates and author.
It returns None, and parse.py asks feedparser, for anything it might not read exactly as feedparser would:
malformed XML, a DOCTYPE, inline XHTML, base64 content, a field given twice, elements that would
change a field from deeper down (media:title, <source>), and unknown namespaces that look like known ones.
tests/test_parse_fast.py checks that both paths give the same posts.
"""

from __future__ import annotations

import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Container
from typing import Any

from feedparser.datetimes import _parse_date  # feedparser's own date reader: both paths agree on every date
from feedparser.mixin import _FeedParserMixin  # its namespace prefixes, handler names and HTML guess
from feedparser.urls import make_safe_absolute_uri

from aggregator.poll.fingerprints import element_print

Entry = dict[str, Any]

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_ATOM = "http://www.w3.org/2005/Atom"
_PREFIXES = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
_HANDLERS = frozenset(name.split("_", 2)[2] for name in dir(_FeedParserMixin)
                      if name.startswith(("_start_", "_end_")) and name.count("_") >= 2)
_HANDLER_SUFFIXES = frozenset(name.rsplit("_", 1)[-1] for name in _HANDLERS)

_TITLE = frozenset({"title", "dc_title"})
_ID = frozenset({"guid", "id"})
_SUMMARY = frozenset({"description", "dc_description", "summary"})
_CONTENT = frozenset({"content", "content_encoded", "fullitem"})
_PUBLISHED = frozenset({"pubdate", "published", "issued", "dcterms_issued"})
_UPDATED = frozenset({"updated", "modified", "dc_date", "dcterms_modified", "lastbuilddate"})
_AUTHOR = frozenset({"author", "dc_author", "dc_creator", "managingeditor"})
_FIELDS = (_TITLE, _ID, _SUMMARY, _CONTENT, _PUBLISHED, _UPDATED, _AUTHOR)  # each at most once per entry
# Elements whose handlers never touch a field parse.py uses, wherever they are; their subtrees are checked.
_INERT = frozenset({"category", "dc_subject", "keywords", "tags", "enclosure", "rights", "dc_rights", "copyright",
                    "language", "dc_language", "created", "dcterms_created", "expirationdate", "media_content",
                    "media_thumbnail", "media_group", "webmaster", "dc_publisher", "generator", "cloud",
                    "info", "feedburner_browserfriendly", "newlocation"})
_PERSONS = frozenset({"contributor", "dc_contributor"})
_PERSON_PARTS = frozenset({"name", "email", "uri", "url", "homepage"})
# Feed-level elements parse.py does not use (it reads the feed's title and link only).
_FEED_UNUSED = _INERT | _SUMMARY | _PUBLISHED | _UPDATED | frozenset({"subtitle", "tagline"})
# What may sit inside <image> or <textinput> without feedparser taking it for a field of the feed.
_NESTED_PARTS = {"image": frozenset({"title", "link", "description", "url", "width", "height"}),
                 "textinput": frozenset({"title", "link", "description", "name"})}
_TEXT_TYPES = frozenset({"text/plain", "text/html"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_EXTRA_SLASHES = re.compile(r"^([A-Za-z][A-Za-z0-9+-.]*://)/*")  # "http:///x" read as "http://x"
_ENTITY_LIKE = re.compile(r"&([A-Za-z0-9_]+);")  # "?a=1&b;=2" read as "?a=1&b=2"
_CP1252 = {code: bytes([code]).decode("cp1252") for code in range(0x80, 0xA0)
           if code not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}


class Unusual(Exception):
    """Something this reader might not read as feedparser would: the caller uses feedparser instead."""


def _name(tag: str) -> str:
    """feedparser's name for an element ("title", "dc_creator", "content_encoded"); "{}x" if it has none."""
    uri, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    local = local.lower()
    lowered = uri.lower()
    prefix = "" if "backend.userland.com/rss" in lowered else _PREFIXES.get(lowered)
    if prefix is None:  # feedparser names it by the document's own prefix, which ElementTree drops
        if local in _HANDLER_SUFFIXES:
            raise Unusual(f"an unknown namespace {uri}")
        return "{}" + local
    return f"{prefix}_{local}" if prefix else local


def _attributes(element: ET.Element, *, may_link: bool = False) -> dict[str, str]:
    """Attributes by lower-cased local name, as feedparser sees them; CDF's href and lastmod are refused."""
    found: dict[str, str] = {}
    for key, value in element.attrib.items():
        key = key.rsplit("}", 1)[-1].lower()
        if key in ("href", "lastmod") and not may_link:
            raise Unusual(f"attribute {key}")
        found[key] = value.lower() if key in ("rel", "type") else value
    return found


def _rebase(base: str, attrs: dict[str, str]) -> str:
    """The base URI inside an element: its xml:base resolved against the outer one, if that is a safe URI."""
    given = attrs.get("base")
    return make_safe_absolute_uri(base, given) or base if given else base


def _check_inert(element: ET.Element, allowed: frozenset[str] = frozenset()) -> None:
    """Refuse a skipped subtree holding an element feedparser would read into a field."""
    for inner in element.iter():
        if inner is element:
            continue
        name = _name(inner.tag)
        if name in _HANDLERS and name not in _INERT and name not in allowed:
            raise Unusual(f"<{name}> inside <{_name(element.tag)}>")


def _content_type(value: str) -> str:
    value = value.lower()
    return {"text": "text/plain", "plain": "text/plain", "html": "text/html",
            "xhtml": "application/xhtml+xml"}.get(value, value)


def _text(element: ET.Element) -> str:
    """An element's text as feedparser gives it: stripped, mis-decoded UTF-8 repaired, C1 codes as windows-1252."""
    if len(element):
        raise Unusual("markup inside a text element")
    text = (element.text or "").strip()
    if not text.isascii():
        try:
            text = text.encode("iso-8859-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        text = text.translate(_CP1252)
    return text


def _typed_text(element: ET.Element, attrs: dict[str, str], default: str) -> tuple[str, str]:
    if "mode" in attrs or "src" in attrs:
        raise Unusual("encoded or external content")
    kind = _content_type(attrs.get("type", default))
    if kind not in _TEXT_TYPES:
        raise Unusual(f"content of type {kind}")
    return _text(element), kind


def _title(element: ET.Element, attrs: dict[str, str], atom: bool) -> tuple[str, str]:
    """A title and its type; outside Atom, feedparser calls plain text HTML when it looks like HTML."""
    text, kind = _typed_text(element, attrs, "text/plain")
    if not atom and kind == "text/plain" and _FeedParserMixin.looks_like_html(text):
        kind = "text/html"
    return text, kind


def _join(base: str, uri: str) -> str:
    """A URI made absolute against `base`, as feedparser does for links and permalink ids."""
    try:
        return urllib.parse.urljoin(base, _EXTRA_SLASHES.sub(r"\1", uri))
    except ValueError:
        return ""


def _link(element: ET.Element, attrs: dict[str, str], base: str, in_entry: bool) -> str | None:
    """The page an element like <link href rel type/> or <link>url</link> names; None for other kinds of link."""
    href = attrs.get("url", attrs.get("uri", attrs.get("href")))
    if href is None:
        link = _join(base, text) if (text := _text(element)) else ""
        return _ENTITY_LIKE.sub(r"&\1", link.replace("&amp;", "&") if in_entry else link)
    rel = attrs.get("rel", "alternate")
    kind = attrs.get("type", "application/atom+xml" if rel == "self" else "text/html")
    return _join(base, href) if rel == "alternate" and _content_type(kind) in _HTML_TYPES else None


def _author(element: ET.Element) -> str:
    """The author as feedparser writes it: the text, or "name (email)" from Atom's parts."""
    if not len(element):
        return _text(element)
    if (element.text or "").strip():
        raise Unusual("text beside an author's parts")
    parts: dict[str, str] = {}
    for child in element:
        name = _name(child.tag)
        if name in ("name", "email"):
            if name in parts:
                raise Unusual("an author with two names")
            parts[name] = _text(child)
        elif name in _HANDLERS and name not in _PERSON_PARTS:
            raise Unusual(f"<{name}> in an author")
        else:
            _check_inert(child)
    name, email = parts.get("name", ""), parts.get("email", "")
    return f"{name} ({email})" if name and email else name or email


def _skip(element: ET.Element, name: str, *, in_entry: bool = False) -> bool:
    """Whether an element can be passed over: feedparser files it where parse.py never looks."""
    if name in _PERSONS:
        _check_inert(element, _PERSON_PARTS)
    elif name in _NESTED_PARTS:
        if in_entry:  # feedparser would take an entry's <image><title> for the entry's title
            raise Unusual(f"<{name}> in an entry")
        for child in element:
            if _name(child.tag) not in _NESTED_PARTS[name]:
                raise Unusual(f"<{_name(child.tag)}> in <{name}>")
            _text(child)
    elif name in _HANDLERS and name not in _INERT:
        return False
    elif len(element):
        _check_inert(element)
    return True


def _entry(item: ET.Element, base: str, atom: bool) -> Entry:
    entry: Entry = {}
    item_base = base = _rebase(base, _attributes(item))
    if (about := item.get(f"{{{_RDF}}}about")) is not None:
        entry["id"] = about
    titles: list[tuple[str, str]] = []
    contents: list[str] = []
    seen: set[frozenset[str]] = set()
    for child in item:
        name = _name(child.tag)
        if _skip(child, name, in_entry=True):
            continue
        field = next((field for field in _FIELDS if name in field), None)
        if field is not None:
            if field in seen:
                raise Unusual(f"<{name}> twice in one entry")
            seen.add(field)
        attrs = _attributes(child, may_link=name == "link")
        base = _rebase(item_base, attrs)
        if name in _TITLE:
            titles.append(_title(child, attrs, atom))
        elif name == "link":
            if (link := _link(child, attrs, base, True)) is not None:
                entry["link"] = link
        elif name in _ID:
            value = _text(child)
            if attrs.get("ispermalink", "true") == "true":
                entry["id"] = value = _join(base, value) if value else ""
                entry.setdefault("link", value)
            else:
                entry["id"] = value
        elif name in _SUMMARY:
            entry["summary"] = _typed_text(child, attrs, "text/plain" if name == "summary" else "text/html")[0]
        elif name in _CONTENT:
            text = _typed_text(child, attrs, "text/plain" if name == "content" else "text/html")[0]
            contents.append(text)
            entry.setdefault("summary", text)
        elif name in _PUBLISHED:
            entry["published_parsed"] = _parse_date(_text(child))
        elif name in _UPDATED:
            entry["updated_parsed"] = _parse_date(_text(child))
        elif name in _AUTHOR:
            entry["author"] = _author(child)
        else:
            raise Unusual(f"<{name}> in an entry")
    _set_title(entry, titles)
    if contents:
        entry["content"] = [{"value": text} for text in contents]
    return entry


def _set_title(context: dict[str, Any], titles: list[tuple[str, str]]) -> None:
    if titles:
        context["title"], kind = titles[0]
        context["title_detail"] = {"type": kind}


def _feed(channel: ET.Element, base: str, atom: bool, items: list[tuple[ET.Element, str]]) -> dict[str, Any]:
    """The feed's title and link; its entries and their base URIs are added to `items`."""
    feed: dict[str, Any] = {}
    titles: list[tuple[str, str]] = []
    channel_base = _rebase(base, _attributes(channel))
    for child in channel:
        name = _name(child.tag)
        if name in ("item", "entry"):
            items.append((child, channel_base))
            continue
        if name in _FEED_UNUSED and len(child) == 0 or _skip(child, name):
            continue
        attrs = _attributes(child, may_link=name == "link")
        base = _rebase(channel_base, attrs)
        if name in _TITLE:
            if titles:
                raise Unusual("two feed titles")
            titles.append(_title(child, attrs, atom))
        elif name == "link":
            if (link := _link(child, attrs, base, False)) is not None:
                feed["link"] = link
        elif name in _ID:  # feedparser takes a feed's permalink id for its link until a link is given
            if attrs.get("ispermalink", "true") == "true" and (value := _text(child)):
                feed.setdefault("link", _join(base, value))
        elif name in _AUTHOR:
            _author(child)  # the feed's author: only checked to hold nothing unusual
        else:
            raise Unusual(f"<{name}> in a feed")
    _set_title(feed, titles)
    return feed


def read(text: bytes, base: str) -> tuple[str, dict[str, Any], list[Entry]] | None:
    """(version, feed, entries) in feedparser's shape for the fields parse.py uses, or None to ask feedparser."""
    found = read_changed(text, base, None)
    if found is None:
        return None
    version, feed, entries = found
    return version, feed, [entry for _, entry in entries if entry is not None]


def read_changed(text: bytes, base: str, known: Container[str] | None
                 ) -> tuple[str, dict[str, Any], list[tuple[str, Entry | None]]] | None:
    """As `read`, each entry with its fingerprint (fingerprints.element_print) and None in place of the entries
    whose fingerprint is in `known`: they are not read. With `known` None, no fingerprints ("") and none skipped."""
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:  # anywhere: a DTD after a long comment is a DTD too
        return None
    try:
        root = ET.fromstring(text)
        url, base = base, _rebase(base, _attributes(root))
        items: list[tuple[ET.Element, str]] = []
        if root.tag == "rss":
            version, atom, channels = "rss20", False, [child for child in root if child.tag == "channel"]
        elif root.tag == f"{{{_RDF}}}RDF":
            version, atom, channels = "rss10", False, [child for child in root if _name(child.tag) == "channel"]
        elif root.tag == f"{{{_ATOM}}}feed":
            version, atom, channels = "atom10", True, [root]
        else:
            return None
        if len(channels) != 1:
            return None
        feed = _feed(channels[0], base, atom, items)
        if channels[0] is not root:
            for child in root:
                name = _name(child.tag)
                if child is channels[0]:
                    continue
                if name == "item" and version == "rss10":
                    items.append((child, base))
                elif not _skip(child, name):
                    return None
        entries: list[tuple[str, Entry | None]] = []
        for item, item_base in items:
            if known is None:
                entries.append(("", _entry(item, item_base, atom)))
                continue
            context = "\x00".join((version, url, item_base, str(feed.get("link") or "")))
            fp = element_print(context, item)
            entries.append((fp, None if fp in known else _entry(item, item_base, atom)))
        return version, feed, entries
    except (ET.ParseError, Unusual):
        return None
