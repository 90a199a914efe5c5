"""Feed parsing: feedparser on bytes into normalised posts (plain text, UTC dates, stable identity); never fetches."""

from __future__ import annotations

import calendar
import codecs
import functools
import hashlib
import re
import unicodedata
from datetime import datetime, timezone
from typing import Any
from xml.etree import ElementTree

import feedparser
from selectolax.lexbor import LexborHTMLParser

from aggregator.poll import fingerprints, parse_fast
from aggregator.poll.fingerprints import Known
from aggregator.errors import ParseError
from aggregator.limits import MAX_KEY, MAX_SUMMARY, MAX_TITLE, MAX_URL, cap
from aggregator.links import canonical_url
from aggregator.models import ParsedFeed, ParsedPost

_SPACE = re.compile(r"\s+")
_DROP_TAGS = ["script", "style", "noscript", "iframe", "object", "embed", "template", "svg", "math"]
# A tag of an HTML element someone would put in a title: "<b>", "<a href=…>", "<script>"; not "Vec<T>".
_HTML_TAG = re.compile(
    r"</?(?:a|abbr|audio|b|big|blockquote|br|cite|code|del|div|em|embed|font|form|h[1-6]|hr|i|iframe|img|input|ins"
    r"|kbd|link|mark|math|meta|noscript|object|p|picture|pre|q|s|script|small|source|span|strike|strong|style|sub"
    r"|sup|svg|template|u|video)(?:\s[^<>]*)?/?>", re.IGNORECASE)

# Character sets (see _decode).
_SNIFFED = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
            (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"), (b"<\0\0\0", "utf-32-le"),
            (b"\0\0\0<", "utf-32-be"), (b"<\0?\0", "utf-16-le"), (b"\0<\0?", "utf-16-be"))
_SUPERSETS = {"euc_kr": "cp949", "iso8859-1": "cp1252", "ascii": "cp1252", "gb2312": "gb18030"}  # as browsers do
_CP949_LABELS = frozenset({"windows-949", "x-windows-949", "cseuckr", "csksc56011987", "iso-ir-149", "ks_c_5601-1989"})
_NOT_CHARSETS = frozenset({"utf-7", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be",
                           "unicode_escape", "raw_unicode_escape", "punycode", "idna", "undefined"})
_HTTP_CHARSET = re.compile(r";\s*charset\s*=\s*[\"']?([^\"';\s]+)", re.IGNORECASE)
_XML_CHARSET = re.compile(rb"""\s*<\?xml\s[^>]*?\bencoding\s*=\s*["']([^"'>]+)["']""")
_XML_DECLARATION = re.compile(r"[\s\ufeff]*<\?xml\s[^>]*>")
_NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")  # forbidden or discouraged in XML
_CHAR_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


def _charset(label: str | None) -> str | None:
    """The codec to read a declared charset with (a superset where browsers use one); None if unusable."""
    if not label:
        return None
    label = label.strip().lower()
    if label in _CP949_LABELS:
        return "cp949"
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return None if name in _NOT_CHARSETS else _SUPERSETS.get(name, name)


@functools.cache
def _single_byte(codec: str) -> bool:
    """Whether every byte is a character of its own in `codec` (so any bytes at all decode)."""
    return len(bytes(range(0x80, 0x100)).decode(codec, "replace")) == 0x80


def _mostly_common_korean(text: str) -> bool:
    """Whether at least half the non-ASCII characters are in EUC-KR's repertoire, as in real Korean text."""
    wide = [ch for ch in text if ch > "\x7f"]
    common = sum(len(ch.encode("euc_kr", "ignore")) == 2 for ch in wide)  # not its 8-byte compositions
    return bool(wide) and common * 2 >= len(wide)


def _try_decode(body: bytes, codec: str) -> str | None:
    try:
        if codec == "utf-8":  # a body cut inside its last character is still UTF-8
            return codecs.getincrementaldecoder("utf-8")().decode(body, final=False)
        return body.decode(codec)
    except (UnicodeError, LookupError):
        return None


def _decode(body: bytes, content_type: str | None) -> tuple[str, str | None]:
    """The body as text, and a warning when some bytes had to be replaced.

    A byte-order mark (or "<?" in UTF-16/32) decides alone. Otherwise the first of these that decodes the
    whole body wins: UTF-8; the multi-byte charsets the HTTP header and the XML declaration name (they
    reject another charset's bytes); CP949 if the text then reads as Korean; the single-byte charsets
    named (they accept any bytes); windows-1252 unless a multi-byte charset was named. If none does, the
    likeliest one is used with replacement characters.
    """
    sniffed = next((codec for start, codec in _SNIFFED if body.startswith(start)), None)
    if sniffed:
        strong, weak, order = [sniffed], [], [sniffed]
    else:
        http = _HTTP_CHARSET.search(content_type or "")
        xml = _XML_CHARSET.match(body[:1024])
        declared = [c for c in map(_charset, (http and http[1], xml and xml[1].decode("ascii", "replace"))) if c]
        strong = [c for c in declared if not _single_byte(c)]
        weak = [c for c in declared if _single_byte(c)]
        order = ["utf-8", *strong, "cp949", *weak, *([] if strong else ["cp1252"])]
    for codec in dict.fromkeys(order):
        text = _try_decode(body, codec)
        if text is not None and (codec != "cp949" or codec in strong or _mostly_common_korean(text)):
            return text, None
    codec = (strong + weak + ["utf-8"])[0]
    return body.decode(codec, "replace"), f"some bytes are not valid {codec} and were replaced"


def clean_text(text: str) -> str:
    """Remove control and format characters and collapse white space."""
    if not text:
        return ""
    text = _SPACE.sub(" ", text)
    if text.isprintable():  # the usual case, checked in C: no control or format characters left
        return text.strip()
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


def _title_text(value: str, kind: str) -> str:
    """A title as plain text: HTML reduced to its text, and plain text kept as it is ("Vec<T>" stays)."""
    return html_to_text(value) if "html" in kind or _HTML_TAG.search(value) else clean_text(value)


def _post_from(entry: Any, base: str, not_posts: set[str]) -> ParsedPost | None:
    detail = entry.get("title_detail") or {}
    title = cap(_title_text(entry.get("title") or "", detail.get("type") or ""), MAX_TITLE)
    url = canonical_url(entry.get("link"), base)
    if url is not None and len(url) > MAX_URL:
        url = None  # a link of megabytes is no link; the post keeps its title
    if url in not_posts:
        url = None  # "#" or "/" as a link: the feed or its home page, not a post
    summary = cap(html_to_text(_entry_html(entry)), MAX_SUMMARY)
    if not (title or url or summary):
        return None  # an empty <item/>: nothing to show or to link to
    # (dict.get: feedparser's own get() warns when it maps a missing "updated" to "published")
    published = _utc(dict.get(entry, "published_parsed")) or _utc(dict.get(entry, "updated_parsed"))
    guid = clean_text(entry.get("id") or "")
    if len(guid) > MAX_KEY:
        guid = "sha256:" + hashlib.sha256(guid.encode()).hexdigest()
    if guid:
        key = "guid:" + guid
    elif url:
        key = "url:" + url
    else:
        stamp = published.isoformat() if published else ""
        key = "hash:" + hashlib.sha256(f"{title}\x00{stamp}\x00{summary[:200]}".encode()).hexdigest()
    if not title:
        title = cap(summary, 80) or url or "(untitled)"
    author = cap(clean_text(entry.get("author") or ""), 200)
    digest = hashlib.sha256("\x00".join([title, url or "", summary, published.isoformat() if published else "",
                                         author]).encode()).hexdigest()
    return ParsedPost(key=key, url=url, title=title, summary=summary, published=published, author=author,
                      content_hash=digest)


def advertised_feed(body: bytes, base: str) -> str | None:
    """The feed URL an HTML page advertises with <link rel="alternate" type="application/rss+xml">, read
    with the HTML parser (linear in the page, whatever it holds)."""
    tree = LexborHTMLParser(body[:200_000].decode("utf-8", "replace"))
    for node in tree.css("link[href]"):
        attrs = node.attributes
        rel = (attrs.get("rel") or "").lower().split()
        kind = (attrs.get("type") or "").strip().lower()
        if "alternate" in rel and kind in ("application/rss+xml", "application/atom+xml") and attrs.get("href"):
            return canonical_url(str(attrs["href"]), base)
    return None


def _xml_char(ref: re.Match[str]) -> str:
    """A character reference, or a space if it names a character XML 1.0 forbids (feedparser fails on those)."""
    code = int(ref[1], 16) if ref[1] else int(ref[2])
    allowed = code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
    return ref[0] if allowed or 0x10000 <= code <= 0x10FFFF else " "


def _as_utf8(text: str) -> bytes:
    """Decoded XML as UTF-8 bytes that say so, without the characters XML 1.0 forbids."""
    declaration = _XML_DECLARATION.match(text)
    text = _CHAR_REF.sub(_xml_char, _NOT_XML_CHARS.sub(" ", text[declaration.end():] if declaration else text))
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + text).encode("utf-8", "replace")


def parse_feed(body: bytes, *, url: str, content_type: str | None = None, fast: bool = True,
               known: Known | None = None) -> ParsedFeed:
    """Parse a feed body (RSS 0.9x/1.0/2.0 or Atom) fetched from `url`.

    The body is decoded here rather than by feedparser, which reads CP949 labelled EUC-KR (as Korean
    servers send it) as windows-1252, and trusts a charset that decodes anything over one that fits.
    Plain RSS and Atom are read by parse_fast; the rest, and everything when `fast` is False, by feedparser.
    A body that declares XML entities anywhere is refused: both parsers would expand them.

    With `known` (the fingerprints of the feed's last body, fingerprints.load), the result also carries this
    body's fingerprints, and its posts are only the new or changed ones: the fast reader does not read an entry
    whose element is as it was; after feedparser, a post whose key and content are as they were is dropped.
    """
    text, note = _decode(body, content_type)
    notes = [note] if note else []
    xml = _as_utf8(text)
    if b"<!ENTITY" in xml:  # as defusedxml does: an entity a feed declares could expand into any stored text
        raise ParseError("not a readable feed: it declares XML entities (<!ENTITY>), which aggregator refuses")
    quick = parse_fast.read_changed(xml, url, known) if fast else None
    prints: list[str] = []
    if quick is not None:
        version, feed, pairs = quick
        prints = [fp for fp, _ in pairs]
        entries: list[Any] = [entry for _, entry in pairs]
        base = url
    else:
        parsed = _feedparser(xml, url, content_type)
        version, feed, entries = parsed.get("version") or "", parsed.get("feed") or {}, parsed.get("entries") or []
        base = parsed.get("href") or url
        if not version and not entries:
            if re.search(rb"<html[\s>]", body[:4096], re.IGNORECASE):
                hint = advertised_feed(body, url)
                tip = f"; the page advertises a feed at {hint}" if hint else ""
                raise ParseError(f"not a feed: got an HTML page{tip}")
            reason = parsed.get("bozo_exception")
            raise ParseError(f"not a readable feed: {_one_line(reason)}" if reason else "not a readable feed")
        if parsed.get("bozo"):
            reason = parsed.get("bozo_exception")
            name = type(reason).__name__ if reason is not None else "error"
            if name not in ("CharacterEncodingOverride", "NonXMLContentType"):  # well-formed XML, odd headers
                notes.insert(0, f"malformed feed ({name}: {_one_line(reason)[:120]})")
    home = canonical_url(feed.get("link"), url)
    not_posts = {link for link in (canonical_url(url), home) if link}
    long_links = sum(1 for entry in entries if entry is not None and len(str(entry.get("link") or "")) > MAX_URL)
    if long_links:
        notes.append(f"{long_links} link(s) over {MAX_URL:,} characters dropped")
    posts, records, unchanged = _posts(entries, prints, known, base, not_posts)
    detail = feed.get("title_detail") or {}
    warning = f"{'; '.join(notes)}; read {len(posts) + unchanged} entries anyway" if notes else None
    return ParsedFeed(
        title=cap(_title_text(feed.get("title") or "", detail.get("type") or ""), MAX_TITLE),
        link=home,
        posts=tuple(posts),
        warning=warning,
        fingerprints=None if known is None else fingerprints.dump(records),
        read=len(entries) - sum(entry is None for entry in entries),
        unchanged=unchanged,
    )


def _posts(entries: list[Any], prints: list[str], known: Known | None, base: str, not_posts: set[str]
           ) -> tuple[list[ParsedPost], list[fingerprints.Record], int]:
    """The posts of a body's entries (None: an entry the fast reader left unread, its fingerprint in `prints`),
    each post once (the first entry with its key or link); the fingerprints of the entries whose posts are
    stored as they read; how many posts are as they were (left out of the posts).

    An unchanged entry holds its place: a later entry with its key or link is the same post again, as when
    the whole body is read. An entry with a link over MAX_URL, or repeating an earlier post, gets no
    fingerprint, so that it is read every time (its warning counted, its post kept if the first one goes)."""
    posts: list[ParsedPost] = []
    records: list[fingerprints.Record] = []
    seen: set[str] = set()
    seen_ids: set[str] = set()  # the same, as ids (fingerprints.ids), when unchanged entries are not read
    unchanged = 0
    for index, entry in enumerate(entries):
        if entry is None:
            fp = prints[index]
            entry_ids = (known or {})[fp]
            if entry_ids[0] in seen_ids or entry_ids[1] in seen_ids:
                continue  # a copy of an earlier post: not the post, and read again next time
            seen_ids.update(filter(None, entry_ids))
            records.append((fp, entry_ids))
            unchanged += 1
            continue
        post = _post_from(entry, base, not_posts)
        if post is None or post.key in seen or post.url in seen:
            continue  # the same post again (its guid or link) in one body: the first one is the post
        if known is not None:
            entry_ids = fingerprints.ids(post.key, post.url)
            if entry_ids[0] in seen_ids or entry_ids[1] in seen_ids:
                continue
            seen_ids.update(filter(None, entry_ids))
            fp = prints[index] if prints else fingerprints.post_print(post.key, post.content_hash)
            if len(str(entry.get("link") or "")) <= MAX_URL:
                records.append((fp, entry_ids))
            if not prints and fp in known:  # read by feedparser, and stored as it reads: nothing to write
                seen.update(filter(None, (post.key, post.url)))
                unchanged += 1
                continue
        seen.update(filter(None, (post.key, post.url)))
        posts.append(post)
    return posts, records, unchanged


def _feedparser(xml: bytes, url: str, content_type: str | None) -> Any:
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type.split(";")[0].strip() + "; charset=utf-8"
    try:
        return feedparser.parse(xml, response_headers=headers, sanitize_html=False, resolve_relative_uris=False)
    except Exception as exc:  # noqa: BLE001  a feedparser bug on hostile bytes must not stop the pass
        malformed = _xml_error(xml)
        if malformed:  # feedparser's loose reader tripped over broken markup: name the markup's fault
            raise ParseError(f"not a readable feed: malformed XML ({malformed})") from None
        failure = f"{type(exc).__name__}: {_one_line(exc)[:120]}"
        raise ParseError(f"not a readable feed: the parser failed ({failure})") from None


def _xml_error(xml: bytes) -> str | None:
    """Where `xml` (as _as_utf8 made it) stops being well-formed, as expat says, counted in the body's own
    lines and 1-based columns ("not well-formed (invalid token) at line 1, column 6"); None when well-formed."""
    try:
        ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        line, column = exc.position
        problem = str(exc).rsplit(": line ", 1)[0]
        return f"{problem} at line {max(line - 1, 1)}, column {column + 1}"  # line 1 is the declaration we wrote
    return None


def _one_line(reason: object) -> str:
    return " ".join(str(reason).split())
