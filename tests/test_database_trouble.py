"""The database in trouble: two passes at once, a locked, read-only, corrupt or too-new file."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FEEDS, NOW, FeedServer
from test_cli import invoke, write_config

from aggregator.errors import BusyError, StoreError
from aggregator.models import FeedConfig
from aggregator.store import Store


UNPRIVILEGED = 65534  # the uid and gid (nobody's on Debian) a test run as root gives up its privileges for


def run_cli(config: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "aggregator", "--config", str(config), "--quiet", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def invoke_unprivileged(config: Path, *args: str) -> tuple[int, str]:
    """`aggregator ARGS` in a forked child that, when the tests run as root (as in CI), first becomes uid and
    gid UNPRIVILEGED with no other groups, so that file modes hold for it as for any user; its exit code and
    output. (A fork rather than a new interpreter: the interpreter may live where that user cannot read, and
    what the command needs is imported already by an earlier command of the test.)"""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code, output = 70, "the child failed before running the command"
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(UNPRIVILEGED)
                os.setuid(UNPRIVILEGED)
                assert (os.getuid(), os.geteuid(), os.getgroups()) == (UNPRIVILEGED, UNPRIVILEGED, [])
            result = invoke(config, *args)
            code, output = result.exit_code, result.output
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
            output = f"{output}: {type(exc).__name__}: {exc}"
        finally:
            os.write(write_end, json.dumps([code, output]).encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    code, output = json.loads(data)
    return code, output


@pytest.fixture
def shared_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder the user of invoke_unprivileged may enter and create files in (tmp_path itself when not root,
    since pytest's base folder is closed to other users)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="aggregator-trouble-"))
    os.chown(folder, UNPRIVILEGED, UNPRIVILEGED)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=120)
    return process.returncode, output


def count_posts(db: Path) -> tuple[int, int]:
    """(rows, distinct links) in the posts table."""
    with sqlite3.connect(db) as con:
        return con.execute("select count(*), count(distinct url) from posts").fetchone()


# -- one polling pass at a time -----------------------------------------------------------------

def test_the_polling_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Store(url) as first, Store(url) as second:
        first.migrate()
        with first.polling_lock():
            with pytest.raises(BusyError, match="another polling pass is running"):
                with second.polling_lock(wait=0.3):
                    pass
        with second.polling_lock():  # released when the first pass ended
            pass


def test_a_waiting_pass_gets_the_lock_when_the_running_one_ends(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Store(url) as first, Store(url) as second:
        first.migrate()
        got_it = threading.Event()

        def take() -> None:
            with second.polling_lock(wait=60):
                got_it.set()

        with first.polling_lock():
            waiter = threading.Thread(target=take)
            waiter.start()
            assert not got_it.wait(0.5)  # still waiting while the first holds the lock
        waiter.join(timeout=60)
        assert got_it.is_set()


def test_a_second_fetch_exits_with_a_clear_message_and_stores_nothing(tmp_path: Path, feed_server: FeedServer) -> None:
    config = write_config(tmp_path, feed_server)
    assert invoke(config, "init").exit_code == 0
    with Store(f"sqlite:///{tmp_path / 'aggregator.db'}") as running, running.polling_lock():
        result = invoke(config, "fetch")
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: sqlite:///{tmp_path / 'aggregator.db'}: another polling pass is running "
                                     "on this database; this one stops without fetching (try again when it ends)")
    assert count_posts(tmp_path / "aggregator.db") == (0, 0)
    assert feed_server.hits == []


def test_two_fetch_processes_started_at_once_store_every_post_once(tmp_path: Path, feed_server: FeedServer) -> None:
    config = write_config(tmp_path, feed_server)
    for i in range(20):
        body = (FEEDS / "toss.rss.xml").read_text(encoding="utf-8").replace("toss.tech/article/", f"toss.tech/{i}/")
        feed_server.serve(f"/more{i}.xml", body)
    with config.open("a", encoding="utf-8") as f:
        f.writelines(f"  - name: More {i}\n    url: {feed_server.url(f'/more{i}.xml')}\n" for i in range(20))
    assert invoke(config, "init").exit_code == 0
    processes = [run_cli(config, "fetch", "--all", "--wait", "120") for _ in range(2)]
    results = [finish(p) for p in processes]
    assert [code for code, _ in results] == [0, 0], results
    rows, links = count_posts(tmp_path / "aggregator.db")
    assert rows == links == 9 + 20 * 4  # Toss 4 + D2 5 + 4 in each copy, each exactly once


# -- a database that cannot be used: one line naming the file, nothing overwritten ---------------

def test_a_locked_database_gives_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    with Store(f"sqlite:///{path}") as store:
        store.migrate()
        store.sync_feeds([FeedConfig("A", "http://127.0.0.1:9/a.xml")], NOW)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program writing and not letting go
    try:
        with Store(f"sqlite:///{path}", busy_timeout=0.2) as store, pytest.raises(StoreError) as info:
            store.sync_feeds([FeedConfig("A", "http://127.0.0.1:9/a.xml"), FeedConfig("B", "http://127.0.0.1:9/b")], NOW)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(info.value).startswith(f"sqlite:///{path}: ") and "database is locked" in str(info.value)
    with Store(f"sqlite:///{path}") as store:
        assert store.feed_names() == ["A"]


def test_a_read_only_database_gives_a_clear_error_and_is_left_as_it_was(shared_dir: Path,
                                                                       feed_server: FeedServer) -> None:
    """A database file its user may read but not write (mode 0444, owned by another user when the tests run
    as root): fetch ends with one line naming it, and the file is left byte for byte as it was."""
    config = write_config(shared_dir, feed_server)
    assert invoke(config, "fetch").exit_code == 0
    db = shared_dir / "aggregator.db"
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.read_bytes()
    db.chmod(0o444)
    if os.geteuid() == 0:  # the rest (the polling lock file, SQLite's -wal and -shm) is the user's own
        for other in shared_dir.iterdir():
            if other != db:
                os.chown(other, UNPRIVILEGED, UNPRIVILEGED)
    code, output = invoke_unprivileged(config, "fetch", "--all")
    assert code == 1, output
    [line] = output.strip().splitlines()
    assert line.startswith(f"error: sqlite:///{db}") and "readonly database" in line
    assert db.read_bytes() == before


@pytest.mark.parametrize("damage", ["corrupt", "future"])
def test_a_corrupt_or_too_new_database_stops_the_command_with_one_line(
        tmp_path: Path, feed_server: FeedServer, damage: str) -> None:
    config = write_config(tmp_path, feed_server)
    db = tmp_path / "aggregator.db"
    if damage == "corrupt":
        db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    else:
        assert invoke(config, "init").exit_code == 0
        with sqlite3.connect(db) as con:
            con.execute("update alembic_version set version_num = '0099'")
    before = db.read_bytes()
    for command in (["fetch"], ["run", "--once"], ["draft", "--out", "-"], ["feeds"]):
        result = invoke(config, *command)
        assert result.exit_code == 1, command
        [line] = result.output.strip().splitlines()
        assert line.startswith(f"error: sqlite:///{db}: "), line
        assert ("0099 is newer than this aggregator knows" in line) if damage == "future" else ("malformed" in line or "not a database" in line)
    assert db.read_bytes() == before
    assert feed_server.hits == []


def test_a_write_after_another_connection_committed_waits_instead_of_failing(tmp_path: Path) -> None:
    from sqlalchemy import select

    from aggregator.store.schema import FeedRow

    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Store(url) as daemon, Store(url) as by_hand:
        daemon.migrate()
        daemon.sync_feeds([FeedConfig("A", "http://127.0.0.1:9/a.xml")], NOW)
        with daemon.session() as s:
            row = s.scalars(select(FeedRow)).one()  # the daemon reads...
            assert by_hand.reset_feed("A", NOW)  # ...another process commits in between...
            row.error_count = 5  # ...and the daemon then writes: no "database is locked"
        assert daemon.feed_health()[0].error_count == 5
