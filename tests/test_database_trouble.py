"""The database in trouble: two passes at once, a locked, read-only, corrupt or too-new file."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import FEEDS, NOW, FeedServer
from test_cli import invoke, write_config

from aggregator.errors import BusyError, StoreError
from aggregator.models import FeedConfig
from aggregator.store import Store


def run_cli(config: Path, *args: str, user_can_write: bool = True) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "aggregator", "--config", str(config), "--quiet", *args]
    if not user_can_write and os.geteuid() == 0:  # root ignores file modes unless it gives up the capability
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


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


def writable_only_by_root(path: Path) -> None:
    """Make the file read-only, and skip when this machine cannot make that hold for our subprocess."""
    path.chmod(0o444)
    if os.geteuid() != 0:
        return
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    if shutil.which("setpriv") is None or subprocess.run([*drop, "true"], capture_output=True).returncode != 0:
        pytest.skip("setpriv cannot drop root's override of file modes here")
    if subprocess.run([*drop, sys.executable, "-c", f"open({str(path)!r}, 'ab')"], capture_output=True).returncode == 0:
        pytest.skip("cannot make a file read-only for root on this machine")


def test_a_read_only_database_gives_a_clear_error_and_is_left_as_it_was(tmp_path: Path, feed_server: FeedServer) -> None:
    config = write_config(tmp_path, feed_server)
    assert invoke(config, "fetch").exit_code == 0
    db = tmp_path / "aggregator.db"
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.read_bytes()
    writable_only_by_root(db)
    code, output = finish(run_cli(config, "fetch", "--all", user_can_write=False))
    assert code == 1
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
