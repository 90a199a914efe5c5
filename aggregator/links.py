"""Canonical links: one spelling per post URL, so the same post reached twice is stored once."""

from __future__ import annotations

import functools
import re
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

_TRACKING_PREFIXES = ("utm_", "mtm_", "pk_")
_TRACKING_NAMES = frozenset({"fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid", "_hsenc", "_hsmi"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")
_STRAY_PERCENT = re.compile(r"%(?![0-9a-fA-F]{2})")  # a "%" that starts no escape is itself escaped: "%25"
_SAFE_PATH = "/:@!$&'*+,;=-._~%"
_SAFE_QUERY = _SAFE_PATH + "?"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Host name characters after IDNA. RFC 3986 also allows !$&'()*+,;= and %-escapes, but no real host uses
# them, and some of them change as Markdown reads a link ("(" must be escaped, a bare "%" gets encoded).
_REG_NAME = re.compile(r"[a-z0-9\-._~]+")


def _is_tracking(name: str, value: str) -> bool:
    lower = name.lower()
    if lower.startswith(_TRACKING_PREFIXES) or lower in _TRACKING_NAMES:
        return True
    return lower == "source" and value.lower().startswith("rss")  # Medium's ?source=rss----…


def _normalise_escapes(text: str, safe: str) -> str:
    """Upper-case existing %xx escapes and percent-encode what needs it (non-ASCII, spaces, parentheses, a
    stray "%")."""
    text = _STRAY_PERCENT.sub("%25", _PERCENT.sub(lambda m: m.group(0).upper(), text))
    return quote(text, safe=safe)


@functools.lru_cache(maxsize=1024)
def _idna(host: str) -> str:
    """A host name in ASCII (IDNA); UnicodeError for one that has no such form. Hosts repeat, so it is cached."""
    return host.encode("idna").decode("ascii")


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """The canonical form of an http(s) link, resolved against `base`; None for anything else.

    Lower-cases scheme and host, drops default ports, fragments and tracking parameters,
    and spells percent-escapes one way. Idempotent: canonical_url(canonical_url(u)) == canonical_url(u).
    """
    if not url:
        return None
    url = _CONTROL.sub("", url.strip()).strip()
    if not url:
        return None  # a blank link is no link, not the base it would resolve to
    if base:
        try:
            url = urljoin(base, url)
        except ValueError:
            return None
    try:
        parts = urlsplit(url)
        port = parts.port
        host = _idna(parts.hostname) if parts.hostname else ""
    except (ValueError, UnicodeError):
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets, or the URL cannot be read back
    elif not _REG_NAME.fullmatch(host):
        return None  # spaces, quotes, <> … in the host: not a usable link
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username:
        return None  # credentials in a post link: never a real post URL
    path = _normalise_escapes(parts.path or "/", _SAFE_PATH)
    query_pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k, v)]
    query = _normalise_escapes(urlencode(query_pairs, quote_via=quote, safe="/:@!$'*,;-._~"), _SAFE_QUERY) if query_pairs else ""
    return urlunsplit((scheme, netloc, path, query, ""))


def host_of(url: str) -> str:
    """The lower-case host of a URL, without a leading "www."."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def server_of(url: str) -> str:
    """The host a request to `url` goes to, lower-case: what the per-host politeness limits count, in the
    fetcher and in the claims of several pollers alike."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:  # a malformed IPv6 literal
        return ""
