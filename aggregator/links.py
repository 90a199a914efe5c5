"""Links: one canonical spelling per post URL, and one reading of the host and site (`Site`) a URL points to."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
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
# scheme://[userinfo@]host[:port]path: the host (an IPv6 literal with its brackets) and the path, without
# query or fragment. The host is the per-host key: the fetcher's limit, and feeds.host for the pollers' claims.
_SITE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^@/?#]*@)?(\[[^\]/?#]*\]|[^/:?#]*)[^/?#]*([^?#]*)")


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


_LANGUAGE = re.compile(r"[a-z]{2}(?:[-_][a-z]{2,4})?")  # "ko", "en-us", "zh_hant": a page's language, not its site
_GENERIC_FOLDERS = frozenset({"blog", "blogs", "posts", "post", "news", "articles", "writing", "research", "tech"})


@dataclass(frozen=True)
class Site:
    """Where a URL points, read one way for polling, the models and the audit: `Site.of(url)`.

    Any URL with a scheme and "//" is read, not only canonical ones; anything else has no host ("")."""

    hostname: str  # lower-case, without userinfo or port, "www." kept, an IPv6 literal in brackets: the per-host key
    path: str  # as written, without query or fragment ("" when the URL has none)

    @classmethod
    def of(cls, url: str) -> Site:
        match = _SITE.match(url)
        return cls(match.group(1).lower(), match.group(2)) if match else cls("", "")

    @property
    def host(self) -> str:
        """The host without a leading "www.": "aws.amazon.com" for https://www.AWS.amazon.com:443/x."""
        return self.hostname.removeprefix("www.")

    @property
    def key(self) -> str:
        """The site as the models read it: the host plus the folder a page sits in, read as its first path
        segment that is neither a language ("ko", "en-us") nor a number (a year), lower-case, and the next
        one too after a generic first one ("blog", "blogs", "posts" …): "aws.amazon.com/blogs/machine-learning"
        for aws.amazon.com/ko/blogs/machine-learning/a-post/. The page's own segment (the last) is never
        part of it, so every post of ai.googleblog.com/2022/11/a-post.html has the site "ai.googleblog.com";
        "" without a host."""
        host = self.host
        if not host:
            return ""
        segments = [s.lower() for s in self.path.split("/") if s]
        folders = [s for s in segments[:-1] if not _LANGUAGE.fullmatch(s) and not s.isdigit()]
        if not folders:
            return host
        if folders[0] in _GENERIC_FOLDERS and len(folders) > 1:
            return f"{host}/{folders[0]}/{folders[1]}"
        return f"{host}/{folders[0]}"

    @property
    def publication(self) -> str:
        """The publication a page belongs to on a host of many: the host plus the first path segment,
        lower-case ("medium.com/airbnb-engineering" for medium.com/airbnb-engineering/a-post-1); the host
        when the path has no segment; "" without a host."""
        segments = self.path.split("/")
        return f"{self.host}/{segments[1].lower()}" if self.host and len(segments) > 1 and segments[1] else self.host

    @property
    def feed_publication(self) -> str | None:
        """The publication a feed at host/feed/NAME is the feed of ("medium.com/airbnb-engineering" for
        medium.com/feed/airbnb-engineering); None for any other URL, such as the feed of a whole host."""
        segments = self.path.split("/")[1:]
        if self.host and len(segments) >= 2 and segments[0].lower() == "feed" and segments[1]:
            return f"{self.host}/{segments[1].lower()}"
        return None
