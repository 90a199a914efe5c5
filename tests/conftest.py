"""Shared fixtures: a real feed server on 127.0.0.1, a real SQLite file, a fixed clock."""

from __future__ import annotations

import email.utils
import hashlib
import ipaddress
import itertools
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import Result

from aggregator.store import Store

DATA = Path(__file__).parent / "data"
FEEDS = DATA / "feeds"
NOW = datetime(2023, 4, 2, 12, 0, tzinfo=timezone.utc)


@dataclass
class Route:
    """What the server answers on one path."""

    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    conditional: bool = True  # answer 304 to a matching If-None-Match / If-Modified-Since
    last_modified: str = "Sun, 02 Apr 2023 11:14:39 GMT"

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'


@dataclass
class Hit:
    path: str
    headers: dict[str, str]


class _QuietServer(ThreadingHTTPServer):
    """A server whose handler errors (a client that hung up mid-answer, as a fetcher does when it gives up
    on a 404 or a body past its cap) are kept in `errors`, not printed: printed from the server's thread,
    they land in whatever a test is capturing at that moment, such as a command's output."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors: list[BaseException] = []

    def handle_error(self, request: object, client_address: object) -> None:
        self.errors.append(sys.exc_info()[1] or RuntimeError("unknown"))


class FeedServer:
    """A threaded HTTP server on 127.0.0.1 that serves `routes` and logs every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                with server._lock:
                    server.hits.append(Hit(self.path, {k.lower(): v for k, v in self.headers.items()}))
                    route = server.routes.get(self.path)
                if route is None:
                    self._send(404, b"not found", {"Content-Type": "text/plain"})
                    return
                headers = {"Content-Type": route.content_type, **route.headers}
                if route.status == 200 and route.conditional:
                    headers.setdefault("ETag", route.etag)
                    headers.setdefault("Last-Modified", route.last_modified)
                    if self.headers.get("If-None-Match") == headers["ETag"] or (
                        "If-None-Match" not in self.headers
                        and self.headers.get("If-Modified-Since") == headers["Last-Modified"]
                    ):
                        self._send(304, b"", {k: v for k, v in headers.items() if k != "Content-Type"})
                        return
                self._send(route.status, route.body, headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, body: bytes | str | Path, **kwargs: object) -> str:
        """Serve a body (bytes, text, or a fixture file) at `path`; returns the full URL."""
        if isinstance(body, Path):
            body = body.read_bytes()
        elif isinstance(body, str):
            body = body.encode("utf-8")
        self.routes[path] = Route(body=body, **kwargs)  # type: ignore[arg-type]
        return self.url(path)

    def hits_for(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]


_real_getaddrinfo = socket.getaddrinfo


def _loopback_only(host: object, *args: object, **kwargs: object) -> object:
    """getaddrinfo for the test run: loopback names and addresses resolve; every other name fails as an
    unknown name does, so no test can send a DNS query, or anything else, off this machine."""
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        loopback = name == "localhost" or ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_traffic_off_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only)


class RawServer:
    """A TCP server on 127.0.0.1 that misbehaves on purpose: `silent` accepts and never answers;
    `trickle_headers` sends a status line and then one header byte every `pace` seconds, forever;
    `trickle_body` sends complete headers and then one body byte every `pace` seconds, forever;
    `flood_body` sends an HTML page without a length that advertises /feed.xml and never ends, as fast as it can."""

    def __init__(self, mode: str, pace: float = 0.2) -> None:
        self.mode, self.pace = mode, pace
        self.done = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/feed.xml"

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.mode == "trickle_headers":
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    payload = b"X-Slow: " + b"z" * 10_000
                elif self.mode == "flood_body":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html><head>"
                                 b'<link rel="alternate" type="application/rss+xml" href="/feed.xml"></head><body>')
                    while not self.done.is_set():
                        conn.sendall(b"<p>more</p>" * 1000)
                    return
                elif self.mode == "trickle_body":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 100000\r\n\r\n")
                    payload = b"<" + b" " * 99_999
                else:
                    payload = b""
                for byte in payload:
                    if self.done.wait(self.pace):
                        return
                    conn.sendall(bytes([byte]))
                self.done.wait()
            except OSError:
                return

    def close(self) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    """Start misbehaving servers (see RawServer); all are stopped when the test ends."""
    started: list[RawServer] = []

    def start(mode: str, pace: float = 0.2) -> RawServer:
        started.append(RawServer(mode, pace))
        return started[-1]

    try:
        yield start
    finally:
        for server in started:
            server.close()


def free_port() -> int:
    """A loopback port with nothing listening on it (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving() -> Iterator[FeedServer]:
    """A FeedServer on 127.0.0.1, running for the length of the block."""
    server = FeedServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with serving() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated store on a real SQLite file."""
    s = Store(f"sqlite:///{tmp_path / 'test.db'}")
    s.migrate()
    try:
        yield s
    finally:
        s.close()


def http_date(when: datetime) -> str:
    return email.utils.format_datetime(when.astimezone(timezone.utc), usegmt=True)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A folder with an empty feeds.yaml: where a CLI test runs aggregator."""
    (tmp_path / "feeds.yaml").write_text("feeds: []\n", encoding="utf-8")
    return tmp_path


def run_cli(home: Path, *args: str) -> Result:
    """`aggregator --config HOME/feeds.yaml ARGS...` in this process; an exception that escapes is a test failure."""
    from typer.testing import CliRunner

    from aggregator.cli import app

    return CliRunner().invoke(app, ["--config", str(home / "feeds.yaml"), *args], catch_exceptions=False)


def one_month_digest(home: Path, printed: str = "Dec 2022") -> Path:
    """The house fixture with every entry printed as one month's (`printed`, e.g. "Nov 2022"; the fixture
    also cites older and newer posts), so that importing it files all 22 entries in that one edition."""
    path = home / f"house_{datetime.strptime(printed, '%b %Y'):%Y-%m}.md"
    text = (DATA / "digests" / "house_2022-12.md").read_text(encoding="utf-8")
    path.write_text(re.sub(r"\((?:Jan|Oct|Nov|Dec) (?:2002|2020|2022|2023)", f"({printed}", text), encoding="utf-8")
    return path


def december_digest(home: Path) -> Path:
    """The house fixture with all 22 entries printed as December 2022's."""
    return one_month_digest(home, "Dec 2022")


def trained_on_last_month(home: Path, feed_server: FeedServer) -> None:
    """Two feeds of December 2022 fetched (Google/Netflix/DeepMind in RDF, three Korean posts in EUC-KR),
    and a model trained on the house fixture imported as November's edition."""
    rdf = feed_server.serve("/ml.xml", FEEDS / "ml.rdf.xml", content_type="application/rdf+xml")
    kr = feed_server.serve("/kr.xml", FEEDS / "kr.euckr.rss.xml", content_type="application/rss+xml")
    (home / "feeds.yaml").write_text(f"feeds:\n  - name: ML\n    url: {rdf}\n    source: Google\n"
                                     f"  - name: KR\n    url: {kr}\n    source: 하이퍼커넥트\n", encoding="utf-8")
    assert run_cli(home, "-q", "fetch").exit_code == 0
    november = one_month_digest(home, "Nov 2022")  # every entry printed as November's: last month's picks
    assert run_cli(home, "import-digest", str(november), "--month", "2022-11").exit_code == 0
    assert run_cli(home, "train").exit_code == 0


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (the machine's initdb and pg_ctl; as the postgres user when
    run as root), its URL for the block; RuntimeError saying why when it cannot start."""
    import shutil
    import subprocess
    import tempfile

    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        if not shutil.which("runuser"):
            raise RuntimeError("running as root without runuser: cannot start PostgreSQL")
        as_user = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="aggregator-pg-"))
    data = base / "data"
    if as_user:
        shutil.chown(base, "postgres")
    port = free_port()
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-w", "-t", "60", "-l", str(base / "log"),
                        "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                        "start"], check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError, LookupError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"could not start a PostgreSQL server: {exc}") from None
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """AGGREGATOR_TEST_PG, or a throwaway PostgreSQL server for the whole run; skip when neither is possible,
    or fail when AGGREGATOR_REQUIRE_PG=1 (as CI sets it: the PostgreSQL tests must run there)."""
    from contextlib import ExitStack

    if os.environ.get("AGGREGATOR_TEST_PG"):
        yield os.environ["AGGREGATOR_TEST_PG"]
        return
    with ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server())
        except RuntimeError as exc:
            if os.environ.get("AGGREGATOR_REQUIRE_PG") == "1":
                pytest.fail(f"AGGREGATOR_REQUIRE_PG=1 but {exc}", pytrace=False)
            pytest.skip(str(exc))
        yield url


_databases = itertools.count()


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"aggregator_{os.getpid()}_{next(_databases)}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def make_trained_home(home: Path) -> Path:
    """December 2022's fixture posts fetched from a feed server on 127.0.0.1 (stopped afterwards) and a
    model trained on November's digest, in `home`."""
    (home / "feeds.yaml").write_text("feeds: []\n", encoding="utf-8")
    with serving() as server:
        trained_on_last_month(home, server)
    return home


def alembic_config(url: str = "") -> Any:
    """Alembic's configuration for the project's migrations (on the database at `url`, when given)."""
    from alembic.config import Config as AlembicConfig

    from aggregator.store.tables import migrations_dir

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or one on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("pg_db"))
