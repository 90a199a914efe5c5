"""HTTP fetching of feeds and web pages: timeouts, size cap, conditional GET, redirects, politeness; never touches the database."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from collections.abc import Iterable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from aggregator import __version__
from aggregator.links import Site
from aggregator.models import FeedState, FetchResult

if TYPE_CHECKING:
    from aggregator.config import Polling

PERMANENT = frozenset({301, 308})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
ACCEPT = "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
SCHEMES = ("http", "https")  # the only ones fetched, first or after a redirect


@dataclass(frozen=True)
class FetchSettings:
    """Limits for one fetch."""

    timeout: float = 30.0  # total seconds for the whole exchange, body included
    connect_timeout: float = 10.0
    max_bytes: int = 5 * 1024 * 1024  # after decompression
    max_redirects: int = 5
    per_host: int = 6
    concurrency: int = 64  # fetches at once from all threads: the size of the connection pool
    user_agent: str = f"aggregator/{__version__} (monthly AI/ML digest feed poller)"
    # Pages only (fetch_page): whether a private, loopback or link-local address may be fetched: True for
    # any, False for none, or the addresses and networks allowed ("127.0.0.1", "10.0.0.0/8").
    allow_private: bool | tuple[str, ...] = True

    @classmethod
    def of(cls, polling: Polling) -> FetchSettings:
        """The limits the configuration's `defaults:` set."""
        return cls(timeout=polling.timeout, connect_timeout=polling.connect_timeout, max_bytes=polling.max_bytes,
                   per_host=polling.per_host, concurrency=polling.concurrency, user_agent=polling.user_agent)

    @classmethod
    def for_pages(cls, polling: Polling, allow_private: bool | tuple[str, ...]) -> FetchSettings:
        """The limits of `defaults:` for fetching single pages, with the allowance of `fetch.allow_private`."""
        return replace(cls.of(polling), allow_private=allow_private)


class _Aborted(Exception):
    pass


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def private_kind(address: Address) -> str | None:
    """Why a page fetch would refuse `address` ("loopback", "link-local", "private"), or None for a
    public one; an IPv4 address written as IPv6 (::ffff:127.0.0.1) is read as itself."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if not address.is_global or address.is_multicast:
        return "private"
    return None


def address_refusal(address: Address, allow: bool | tuple[str, ...]) -> str | None:
    """What kind of address `allow` (fetch.allow_private) refuses `address` as ("loopback", "link-local",
    "private"), or None when a page on it may be fetched."""
    kind = private_kind(address)
    if kind is None or allow is True:
        return None
    if allow and any(address in ipaddress.ip_network(n, strict=False) for n in allow):
        return None
    return kind


def refusal_line(host: str, address: Address, kind: str, allow: bool | tuple[str, ...]) -> str:
    """The one line saying why a page's host was refused, and what would allow it."""
    what = (f"{host} is a {kind} address" if str(address) == host.strip("[]")
            else f"{host} resolves to {address}, a {kind} address")
    allowed = "only " + ", ".join(allow) if allow and allow is not True else "none"
    return f"{what}: refused (fetch.allow_private in feeds.yaml allows {allowed})"


_GUARD = threading.local()  # the allowance (fetch.allow_private) of this thread's current page fetch, if any


def _resolved(host: str, port: int) -> list[Address]:
    """The addresses `host` resolves to, each once, in the resolver's order; an address is itself."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"[Errno {getattr(exc, 'errno', '')}] Name or service not known") from None
    out: list[Address] = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in out:
            out.append(address)
    return out


_DEADLINE = threading.local()  # the monotonic time by which this thread's current fetch must end
_OVERTIME = "total time limit reached"


def _budget(timeout: float | None, error: type[Exception]) -> float | None:
    """The socket timeout for one network operation: the per-operation limit, cut to what is left of
    the fetch's total deadline; raises `error` when nothing is left."""
    deadline: float | None = getattr(_DEADLINE, "at", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error(_OVERTIME)
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write also respects the calling thread's total deadline,
    so a server that trickles its headers one byte at a time cannot hold a fetch past it."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _budget(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _budget(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _budget(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.SyncBackend):
    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        allow = getattr(_GUARD, "allow", True)
        if allow is not True:  # a page fetch: check every address the host resolves to, then connect to those
            return _DeadlineStream(self._connect_checked(host, port, allow, timeout, local_address, socket_options))
        stream = super().connect_tcp(host, port, _budget(timeout, httpcore.ConnectTimeout), local_address,
                                     socket_options)
        return _DeadlineStream(stream)

    def _connect_checked(self, host: str, port: int, allow: bool | tuple[str, ...], timeout: float | None,
                         local_address: str | None, socket_options: Iterable[Any] | None) -> httpcore.NetworkStream:
        """A connection to one of the addresses `host` resolves to, each checked first, so that no second
        lookup can give another (DNS rebinding); _Aborted with the reason when any of them is refused."""
        addresses = _resolved(host, port)
        for address in addresses:
            kind = address_refusal(address, allow)
            if kind is not None:
                raise _Aborted(refusal_line(host, address, kind, allow))
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return super().connect_tcp(str(address), port, _budget(timeout, httpcore.ConnectTimeout),
                                           local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error


class _PoolPerOrigin:
    """httpcore connection pools, one per origin (scheme, host, port), on one SSL context and backend.

    httpcore's pool scans all its connections, polling each idle socket, whenever it places or finishes a
    request: one pool of 64 connections spent most of a pass's fetch CPU there. Per origin, the scan is a
    couple of connections long (at most `per_host` requests go to one host at a time)."""

    def __init__(self, connections: int, ssl_context: ssl.SSLContext) -> None:
        self._connections = connections
        self._ssl_context = ssl_context
        self._backend = _DeadlineBackend()
        self._pools: dict[tuple[bytes, bytes, int | None], httpcore.ConnectionPool] = {}
        self._lock = threading.Lock()

    def _pool(self, origin: tuple[bytes, bytes, int | None]) -> httpcore.ConnectionPool:
        with self._lock:
            pool = self._pools.get(origin)
            if pool is None:
                pool = self._pools[origin] = httpcore.ConnectionPool(
                    ssl_context=self._ssl_context, network_backend=self._backend, max_connections=self._connections,
                    max_keepalive_connections=self._connections, keepalive_expiry=5.0)
            return pool

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        return self._pool((request.url.scheme, request.url.host, request.url.port)).handle_request(request)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def __enter__(self) -> _PoolPerOrigin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def deadline_transport(connections: int) -> httpx.HTTPTransport:
    """httpx's own transport on a network backend that enforces a total deadline per fetch, with a
    connection pool per origin, up to `connections` requests at once (httpcore's own default would be 10).

    httpx has only per-operation timeouts (encode/httpx#1450) and no public way to choose the network
    backend or the pool, so the transport's pool is replaced here; it is duck-typed as httpcore's.
    """
    ssl_context = httpx.create_ssl_context()  # one for every pool: each costs ~25 ms to load the CA bundle
    transport = httpx.HTTPTransport(verify=ssl_context)
    transport._pool = _PoolPerOrigin(connections, ssl_context)  # type: ignore[assignment]
    return transport


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """Retry-After as an absolute UTC time: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def describe_error(exc: Exception) -> str:
    """A short readable line for a transport error."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out waiting for the server"
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        lower = text.lower()
        if "name or service not known" in lower or "nodename nor servname" in lower or "temporary failure in name resolution" in lower or "no address associated" in lower:
            return "cannot resolve host name (DNS)"
        if "certificate" in lower or "ssl" in lower or "tls" in lower:
            return f"TLS error: {text}"
        if "refused" in lower:
            return "connection refused"
        return f"cannot connect: {text}"
    return f"{type(exc).__name__}: {text}"


class Fetcher:
    """Fetches feeds, and single web pages, over one shared httpx.Client; safe to call from several threads."""

    def __init__(self, settings: FetchSettings | None = None, *, stop: threading.Event | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings or FetchSettings()
        self.stop = stop or threading.Event()
        timeout = httpx.Timeout(self.settings.timeout, connect=self.settings.connect_timeout)
        self.client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": self.settings.user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"},
            transport=transport or deadline_transport(self.settings.concurrency),
            trust_env=False,
        )
        self._host_lock = threading.Lock()
        self._hosts: dict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(self.settings.per_host))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _host_slot(self, url: str) -> threading.BoundedSemaphore:
        """The per-host limit of a URL's host (Site.hostname: the key feeds.host holds for the pollers' claims)."""
        with self._host_lock:
            return self._hosts[Site.of(url).hostname]

    def fetch(self, feed: FeedState, now: datetime) -> FetchResult:
        """GET the feed conditionally, following redirects by hand; never raises for network trouble.

        The whole exchange, redirects and body included, ends within `settings.timeout` seconds."""
        headers: dict[str, str] = {}
        if feed.etag:
            headers["If-None-Match"] = feed.etag
        if feed.last_modified:
            headers["If-Modified-Since"] = feed.last_modified
        return self._within_deadline(feed.url, headers, now)

    def fetch_page(self, url: str, now: datetime) -> FetchResult:
        """GET one web page (a site's home page, say) under a feed's limits: http(s) only, redirects followed
        by hand, the per-host limit, the User-Agent, the size cap and the total deadline; never raises for
        network trouble. A page over the cap or the deadline is an error without a body. Unless
        `settings.allow_private` allows it, a host on a private, loopback or link-local address (as
        resolved, at every redirect) is refused before anything is sent to it."""
        _GUARD.allow = self.settings.allow_private
        try:
            return self._within_deadline(url, {"Accept": PAGE_ACCEPT}, now)
        finally:
            _GUARD.allow = True

    def _within_deadline(self, url: str, headers: dict[str, str], now: datetime) -> FetchResult:
        _DEADLINE.at = time.monotonic() + self.settings.timeout
        try:
            return self._fetch(url, headers, now)
        finally:
            _DEADLINE.at = None

    def _fetch(self, original: str, headers: dict[str, str], now: datetime) -> FetchResult:
        url, permanent, seen = original, True, {original}
        for _hop in range(self.settings.max_redirects + 1):
            try:
                if urlsplit(url).scheme.lower() not in SCHEMES:  # the URL asked for: redirects are checked below
                    return FetchResult(url, None, error=f"not an http(s) URL, refused: {url}")
                with self._host_slot(url), self.client.stream("GET", url, headers=headers) as response:
                    status = response.status_code
                    if status in REDIRECTS and "location" not in response.headers:
                        return FetchResult(url, status, error=f"HTTP {status} redirect without a Location header")
                    if status in REDIRECTS:
                        target = urljoin(url, response.headers["location"])
                        if urlsplit(target).scheme.lower() not in SCHEMES:
                            return FetchResult(url, status, error=f"redirect to a non-http(s) URL refused: {target}")
                        if target in seen:
                            return FetchResult(url, status, error=f"redirect loop at {target}")
                        permanent = permanent and status in PERMANENT
                        seen.add(target)
                        url = target
                        continue
                    return self._finish(response, url, original, permanent, now)
            except _Aborted as exc:
                return FetchResult(url, None, error=str(exc))
            except httpx.HTTPError as exc:
                if isinstance(exc, httpx.TimeoutException) and time.monotonic() >= _DEADLINE.at:
                    return FetchResult(url, None, error=self._overtime)
                return FetchResult(url, None, error=describe_error(exc))
            except (ValueError, OSError, httpx.InvalidURL) as exc:  # bad URLs/Locations, socket oddities
                return FetchResult(url, None, error=f"{type(exc).__name__}: {exc}")
        return FetchResult(url, None, error=f"more than {self.settings.max_redirects} redirects")

    @property
    def _overtime(self) -> str:
        return f"took longer than {self.settings.timeout:g} s in total (cut off)"

    def _finish(self, response: httpx.Response, url: str, original: str, permanent: bool,
                now: datetime) -> FetchResult:
        status = response.status_code
        moved = url if (permanent and url != original) else None
        etag = response.headers.get("etag")
        last_modified = response.headers.get("last-modified")
        if status == 304:
            return FetchResult(url, status, etag=etag, last_modified=last_modified, permanent_url=moved)
        if status == 410:
            return FetchResult(url, status, error="410 Gone: the feed was removed; polling stops until `feeds reset`",
                               gone=True, permanent_url=moved)
        if status >= 400 or status < 200:
            reason = response.reason_phrase or ""
            retry = parse_retry_after(response.headers.get("retry-after"), now) if status in (429, 503) else None
            return FetchResult(url, status, error=f"HTTP {status} {reason}".strip(), retry_after=retry, permanent_url=moved)
        body = self._read_body(response)
        return FetchResult(url, status, body=body, content_type=response.headers.get("content-type"),
                           etag=etag, last_modified=last_modified, permanent_url=moved)

    def _read_body(self, response: httpx.Response) -> bytes:
        limit = self.settings.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
            raise _Aborted(f"body of {int(declared)} bytes is over the {limit}-byte limit")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise _Aborted(f"body is over the {limit}-byte limit (cut off)")
            if self.stop.is_set():
                raise _Aborted("stopped")
            chunks.append(chunk)
        return b"".join(chunks)
