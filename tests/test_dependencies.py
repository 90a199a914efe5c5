"""The private parts of feedparser, httpx and httpcore that aggregator relies on: an upgrade that changes them fails here, by name, before it fails a poll."""

from __future__ import annotations

import time
from importlib.metadata import version

import httpx
from conftest import FeedServer

from aggregator.poll import fetch, parse_fast


def _upgrade_broke(package: str, what: str, user: str) -> str:
    return (f"{package} {version(package)} changed {what}, which aggregator/poll/{user} relies on: "
            f"pin {package} below this version in pyproject.toml, or update {user}")


def test_feedparsers_date_reader_reads_the_dates_feeds_carry() -> None:
    from feedparser.datetimes import _parse_date

    for text, day in [("Tue, 06 Dec 2022 17:00:00 GMT", (2022, 12, 6)), ("2022-12-06T17:00:00+09:00", (2022, 12, 6)),
                      ("2022-12-06", (2022, 12, 6))]:
        parsed = _parse_date(text)
        assert isinstance(parsed, time.struct_time), _upgrade_broke("feedparser", "_parse_date", "parse_fast.py")
        assert tuple(parsed[:3]) == day, _upgrade_broke("feedparser", "_parse_date", "parse_fast.py")


def test_feedparsers_namespace_and_handler_tables_have_the_shape_parse_fast_reads() -> None:
    from feedparser.mixin import _FeedParserMixin

    broke = _upgrade_broke("feedparser", "_FeedParserMixin's tables", "parse_fast.py")
    assert _FeedParserMixin.namespaces.get("http://purl.org/dc/elements/1.1/") == "dc", broke
    assert _FeedParserMixin.namespaces.get("http://purl.org/rss/1.0/modules/content/") == "content", broke
    assert {"title", "guid", "link", "pubdate", "content_encoded", "dc_date"} <= parse_fast._HANDLERS, broke
    assert _FeedParserMixin.looks_like_html("<p>a <b>b</b></p>") and not _FeedParserMixin.looks_like_html("a < b"), broke


def test_the_deadline_pool_is_the_one_httpx_sends_requests_through(feed_server: FeedServer) -> None:
    """httpx has no public way to choose the pool: fetch.py puts its own in the transport's `_pool`."""
    url = feed_server.serve("/feed.xml", b"<rss version='2.0'><channel><title>t</title></channel></rss>")
    transport = fetch.deadline_transport(4)
    pool = transport._pool
    assert isinstance(pool, fetch._PoolPerOrigin), _upgrade_broke("httpx", "HTTPTransport._pool", "fetch.py")
    with httpx.Client(transport=transport) as client:
        assert client.get(url).status_code == 200
        assert len(pool._pools) == 1, _upgrade_broke("httpx", "how HTTPTransport uses its _pool", "fetch.py")
        [inner] = pool._pools.values()
    assert isinstance(inner._network_backend, fetch._DeadlineBackend), \
        _upgrade_broke("httpcore", "ConnectionPool's network_backend", "fetch.py")


def test_every_package_aggregator_imports_is_declared_in_pyproject() -> None:
    import ast
    import re
    import sys
    import tomllib
    from importlib.metadata import packages_distributions
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    declared = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower().replace("_", "-")
                for d in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]}
    imported: set[str] = set()
    for path in [*(root / "aggregator").rglob("*.py"), *(root / "migrations").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"aggregator", "__future__"}
    owners = packages_distributions()
    missing = {name: owners.get(name) for name in third_party
               if not {d.lower().replace("_", "-") for d in owners.get(name, [name])} & declared}
    assert not missing, f"imported but not declared in pyproject.toml's dependencies: {missing}"
