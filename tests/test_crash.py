"""kill -9 in the middle of a polling pass, or of creating the database: nothing committed is lost, nothing stored twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from chaos import (
    HEALTHY,
    MARKER,
    ChaosServer,
    aggregator,
    processes_with,
    query,
    scalar,
    wait_until,
    write_config,
)

FEEDS = 40
CHECKED = "select count(*) from feeds where last_checked_at is not null"
SLOW = 0.3  # seconds the server takes over every answer during the pass that gets killed

# `aggregator` in a process that watches every schema statement (CREATE, ALTER, DROP) it sends to the database:
# with RECORD_SCHEMA_STATEMENTS it appends each to that file, and with KILL_AFTER_STATEMENT=N it SIGKILLs itself
# right after the Nth. The kill points are taken from a recorded run of the same command, so they follow the
# schema and its migrations as they are, whatever is added to them.
HOOKED = """
import os, signal
from sqlalchemy import event
from sqlalchemy.engine import Engine
from aggregator.cli import main
record, left = os.environ.get("RECORD_SCHEMA_STATEMENTS"), int(os.environ.get("KILL_AFTER_STATEMENT", "0"))
@event.listens_for(Engine, "after_cursor_execute")
def count(conn, cursor, statement, *rest):
    global left
    if statement.lstrip().upper().startswith(("CREATE", "ALTER", "DROP")):
        if record:
            with open(record, "a", encoding="utf-8") as f:
                f.write(" ".join(statement.split())[:120] + "\\n")
        left -= 1
        if left == 0:
            os.kill(os.getpid(), signal.SIGKILL)
main()
"""
# Where in the recorded statements to kill: each picks an index (1-based) from their count.
SCHEMA_KILL_POINTS: dict[str, Callable[[list[str]], int]] = {
    "first_statement": lambda statements: 1,
    "first_table_created": lambda statements: 1 + next(i for i, s in enumerate(statements)
                                                        if s.upper().startswith("CREATE TABLE")),
    "half_way": lambda statements: (len(statements) + 1) // 2,
    "last_statement": len,
}

KillPoint = Callable[[Path, ChaosServer], bool]
KILL_POINTS: dict[str, KillPoint] = {
    "database_ready": lambda db, server: scalar(db, "select count(*) from feeds") == FEEDS,
    "first_request": lambda db, server: server.requests().total() > 0,
    "a_few_feeds_stored": lambda db, server: scalar(db, CHECKED) >= 3,
    "half_way": lambda db, server: scalar(db, CHECKED) >= FEEDS // 2,
    # the last requests are out; up to a batch of answers (FETCHES_PER_WRITE) is not written yet
    "last_requests": lambda db, server: server.requests().total() >= FEEDS - 2,
}


@dataclass(frozen=True)
class Snapshot:
    posts: dict[str, int]  # url -> id
    schedule: dict[str, tuple[str, str]]  # feed name -> (last_checked_at, next_check_at), of the checked feeds

    @classmethod
    def of(cls, db: Path) -> Snapshot:
        feeds = query(db, "select name, last_checked_at, next_check_at from feeds where last_checked_at is not null")
        return cls(dict(query(db, "select url, id from posts")), {name: (last, nxt) for name, last, nxt in feeds})


@pytest.fixture
def marker() -> Iterator[str]:
    """Tags the aggregator processes a test starts; whatever of them outlives the test is killed."""
    tag = uuid.uuid4().hex
    yield tag
    for pid in processes_with(tag):
        os.kill(pid, signal.SIGKILL)


def run(config: Path, db: Path, *args: str, marker: str) -> str:
    proc = aggregator(config, db, *args, marker=marker)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def started_and_killed(config: Path, db: Path, server: ChaosServer, kill_point: KillPoint, marker: str) -> Snapshot:
    """Start `aggregator fetch --all`, SIGKILL it once `kill_point` holds; what was committed just before."""
    proc = aggregator(config, db, "fetch", "--all", marker=marker)
    try:
        reached = wait_until(lambda: kill_point(db, server) or proc.poll() is not None, 60, step=0.01)
        assert reached, "the kill point was not reached within 60 s"
        before = Snapshot.of(db)
    finally:
        proc.kill()
        proc.wait(timeout=30)  # not communicate(): helpers that outlive it may hold its pipes open
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL, "the pass ended by itself before the kill point"
    return before


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_pass_killed_with_sigkill_loses_nothing_committed_and_the_next_pass_stores_the_rest_once(
        tmp_path: Path, marker: str, point: str) -> None:
    db = tmp_path / "aggregator.db"
    with ChaosServer(FEEDS, seed=7, answers=HEALTHY, delay=SLOW) as server:
        server.publish(5 * FEEDS)  # with cross-posts: some posts are in two feeds
        published = server.published()
        config = write_config(tmp_path, server, interval="1h", timeout=10, concurrency=8, per_host=2)
        before = started_and_killed(config, db, server, KILL_POINTS[point], marker)

        after_kill = Snapshot.of(db)
        assert query(db, "pragma integrity_check") == [("ok",)]
        assert before.posts.items() <= after_kill.posts.items()  # every committed post survives, same id
        assert before.schedule.items() <= after_kill.schedule.items()
        for name, (last, nxt) in after_kill.schedule.items():  # the schedule is recorded with the result
            assert when(nxt) - when(last) == timedelta(hours=1), name

        server.delay = 0
        hits = server.requests()
        summary = run(config, db, "fetch", marker=marker)  # only the feeds the killed pass did not record are due
        polled = {f"Chaos {i}" for i in server.requests() - hits}
        assert polled == {f"Chaos {i}" for i in range(FEEDS)} - after_kill.schedule.keys()
        assert f"{len(polled)} feeds: {len(polled)} ok, 0 not modified, 0 failed" in summary

        after_second = Snapshot.of(db)
        assert after_kill.posts.items() <= after_second.posts.items()
        assert after_kill.schedule.items() <= after_second.schedule.items()  # recorded feeds were left alone
        assert len(after_second.schedule) == FEEDS
        assert after_second.posts.keys() == published.keys()
        assert query(db, "select count(*), count(distinct url) from posts") == [(len(published), len(published))]

        summary = run(config, db, "fetch", "--all", marker=marker)  # a full pass finds nothing new
        assert f"{FEEDS} feeds: " in summary and " 0 failed; 0 new posts" in summary
        assert Snapshot.of(db).posts == after_second.posts
        assert dict(query(db, "select url, title from posts")) == published


def test_a_pass_killed_with_sigkill_leaves_no_helper_process_behind(tmp_path: Path, marker: str) -> None:
    db = tmp_path / "aggregator.db"
    with ChaosServer(FEEDS, seed=8, answers=HEALTHY, delay=SLOW) as server:
        server.publish(5 * FEEDS)
        config = write_config(tmp_path, server, interval="1h", timeout=10, concurrency=8, per_host=2)
        started_and_killed(config, db, server, KILL_POINTS["half_way"], marker)
        survivors = [(pid, Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:100].decode())
                     for pid in processes_with(marker)]
        print(f"\nright after the kill: {survivors}")
        gone = wait_until(lambda: not processes_with(marker), 20, step=0.5)
        assert gone, f"still running 20 s after their pass was killed: {processes_with(marker)}"


def hooked_init(config: Path, db: Path, marker: str, *, record: Path | None = None,
                kill_after: int = 0) -> subprocess.CompletedProcess[str]:
    """`aggregator init` under HOOKED: recording its schema statements, or SIGKILLed after the `kill_after`th."""
    command = [sys.executable, "-c", HOOKED, "--config", str(config), "--db", f"sqlite:///{db}", "init"]
    env = {**os.environ, MARKER: marker, "KILL_AFTER_STATEMENT": str(kill_after),
           **({"RECORD_SCHEMA_STATEMENTS": str(record)} if record else {})}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def schema_statements(config: Path, db: Path, marker: str) -> list[str]:
    """The schema statements `aggregator init` sends on `db` as it is (left as init leaves it)."""
    record = db.with_name(db.name + ".statements")
    record.unlink(missing_ok=True)
    proc = hooked_init(config, db, marker, record=record)
    assert proc.returncode == 0, proc.stderr
    statements = record.read_text(encoding="utf-8").splitlines()
    assert statements, "init sent no schema statement"
    return statements


def schema(db: Path) -> tuple[list[tuple[str, str]], list[tuple[str]]]:
    """What is on disk: each table, index and view with its SQL, and the recorded schema version."""
    if not db.exists():
        return [], []
    objects = query(db, "select name, sql from sqlite_master where sql is not null order by name")
    versions = query(db, "select version_num from alembic_version") if ("alembic_version",) in [
        (name,) for name, _ in objects] else []
    return objects, versions


def init_killed_after_statement(config: Path, db: Path, statement: int, marker: str) -> None:
    """`aggregator init`, SIGKILLed right after its `statement`th schema statement."""
    proc = hooked_init(config, db, marker, kill_after=statement)
    assert proc.returncode == -signal.SIGKILL, f"init ended by itself: {proc.stderr}"


@pytest.fixture(scope="module")
def creation(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], tuple[list[tuple[str, str]], list[tuple[str]]]]:
    """The schema statements `init` sends to create a new database, and the schema it leaves (recorded once)."""
    folder = tmp_path_factory.mktemp("creation")
    (folder / "feeds.yaml").write_text("feeds:\n  - name: A\n    url: http://127.0.0.1:9/a.xml\n", encoding="utf-8")
    tag = uuid.uuid4().hex
    statements = schema_statements(folder / "feeds.yaml", folder / "reference.db", tag)
    complete = schema(folder / "reference.db")
    assert complete[1], "init recorded no schema version"
    return statements, complete


@pytest.mark.parametrize("point", SCHEMA_KILL_POINTS)
def test_a_process_killed_while_creating_the_database_leaves_one_that_the_next_command_can_use(
        tmp_path: Path, marker: str, point: str,
        creation: tuple[list[str], tuple[list[tuple[str, str]], list[tuple[str]]]]) -> None:
    """Killed after a schema statement chosen from a recorded run of `init`: on disk there is no schema at all
    (the creation is one transaction), and the next command creates it whole and polls."""
    db = tmp_path / "aggregator.db"
    statements, complete = creation
    with ChaosServer(FEEDS, seed=9, answers=HEALTHY) as server:
        server.publish(2 * FEEDS)
        config = write_config(tmp_path, server, interval="1h", timeout=10)
        init_killed_after_statement(config, db, SCHEMA_KILL_POINTS[point](statements), marker)
        assert schema(db) == ([], [])

        summary = run(config, db, "fetch", marker=marker)
        assert f"{FEEDS} feeds: {FEEDS} ok" in summary
        assert query(db, "pragma integrity_check") == [("ok",)]
        assert schema(db) == complete
        assert dict(query(db, "select url, title from posts")) == server.published()


@pytest.mark.parametrize("point", ["first_statement", "half_way", "last_statement"])
def test_a_process_killed_while_upgrading_the_database_leaves_one_that_the_next_command_can_use(
        tmp_path: Path, marker: str, point: str) -> None:
    """A database of the previous schema version, `init` killed after one of the upgrade's schema statements
    (chosen from a recorded upgrade of a copy): on disk the previous schema, version and posts unchanged; the next
    command upgrades it to the newest schema and polls."""
    import shutil

    db = tmp_path / "aggregator.db"
    create_schema_before_the_newest(db)
    with ChaosServer(FEEDS, seed=10, answers=HEALTHY) as server:
        server.publish(2 * FEEDS)
        config = write_config(tmp_path, server, interval="1h", timeout=10)
        old = schema(db)
        copy = tmp_path / "copy.db"
        shutil.copy(db, copy)
        statements = schema_statements(config, copy, marker)
        upgraded = schema(copy)
        assert upgraded != old
        init_killed_after_statement(config, db, SCHEMA_KILL_POINTS[point](statements), marker)
        assert schema(db) == old

        summary = run(config, db, "fetch", marker=marker)
        assert f"{FEEDS} feeds: {FEEDS} ok" in summary
        assert schema(db) == upgraded
        assert dict(query(db, "select url, title from posts")) == server.published()


def create_schema_before_the_newest(db: Path) -> None:
    """The database as the previous release left it: migrated up to the revision before the newest."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    from aggregator.store.schema import migrations_dir

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    scripts = ScriptDirectory.from_config(cfg)
    previous = scripts.get_revision(scripts.get_current_head()).down_revision
    assert isinstance(previous, str)
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, previous)
    finally:
        engine.dispose()
