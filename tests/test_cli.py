"""The command line as a user drives it: every command against a local server and a real SQLite file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from conftest import DATA, FEEDS, FeedServer, Route
from typer.testing import CliRunner, Result

from aggregator.cli import app

ROOT = Path(__file__).parent.parent
runner = CliRunner()


def write_config(tmp_path: Path, server: FeedServer, extra: str = "") -> Path:
    toss = server.serve("/toss.xml", FEEDS / "toss.rss.xml")
    d2 = server.serve("/d2.xml", FEEDS / "d2.atom.xml", content_type="application/atom+xml")
    server.routes["/broken.xml"] = Route(status=500, body=b"down")
    path = tmp_path / "feeds.yaml"
    path.write_text(f"""# test feeds
defaults:
  interval: 1h
  timeout: 5
{extra}feeds:
  - name: Toss
    url: {toss}
    source: 토스
  - name: D2
    url: {d2}
    source: 네이버
  - name: Broken
    url: {server.url('/broken.xml')}
    source: X
""", encoding="utf-8")
    return path


def invoke(config: Path, *args: str) -> Result:
    return runner.invoke(app, ["--config", str(config), *args], catch_exceptions=False)


def test_every_command_has_help() -> None:
    command = typer.main.get_command(app)
    names = []
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        assert sub.help, name
        names.append(name)
        for subname, subsub in getattr(sub, "commands", {}).items():
            assert subsub.help, subname
            names.append(f"{name} {subname}")
    assert {"init", "fetch", "run", "draft", "feeds", "feeds reset", "feeds import-opml", "feeds export-opml"} <= set(names)
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "--db" in result.output and "--quiet" in result.output


def test_fetch_stores_posts_reports_failures_and_exits_zero(tmp_path: Path, feed_server: FeedServer) -> None:
    config = write_config(tmp_path, feed_server)
    result = invoke(config, "fetch")
    assert result.exit_code == 0
    assert "3 feeds: 2 ok, 0 not modified, 1 failed; 9 new posts" in result.output
    assert "Broken: HTTP 500 Internal Server Error" in result.output
    assert (tmp_path / "aggregator.db").exists()  # the default database lives beside feeds.yaml
    again = invoke(config, "fetch", "--all")
    assert "3 feeds: 0 ok, 2 not modified, 1 failed; 0 new posts" in again.output
    only = invoke(config, "fetch", "--feed", "Toss")
    assert "1 feeds: 0 ok, 1 not modified, 0 failed" in only.output
    unknown = invoke(config, "fetch", "--feed", "Nope")
    assert unknown.exit_code == 1 and "no feed named 'Nope'" in unknown.output


def test_bad_config_is_one_line_and_exit_one(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - name: A\n    url: ftp://x/feed\n", encoding="utf-8")
    result = invoke(path, "fetch")
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {path}:3: feeds[0].url: must be an http(s) URL, got 'ftp://x/feed'"
    assert not (tmp_path / "aggregator.db").exists()


def test_database_option_and_environment_variable(tmp_path: Path, feed_server: FeedServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, feed_server)
    other = tmp_path / "elsewhere" / "x.db"
    assert invoke(config, "--db", f"sqlite:///{other}", "init").exit_code == 0
    assert other.exists()
    monkeypatch.setenv("AGGREGATOR_DB", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("AGGREGATOR_CONFIG", str(config))
    assert runner.invoke(app, ["init"]).exit_code == 0
    assert (tmp_path / "env.db").exists()
    bad = runner.invoke(app, ["--db", "nosuchdialect://x", "init"])
    assert bad.exit_code == 1 and "cannot open database" in bad.output


def test_draft_writes_the_house_style_and_refuses_to_overwrite(tmp_path: Path, feed_server: FeedServer) -> None:
    config = write_config(tmp_path, feed_server)
    invoke(config, "--quiet", "fetch")
    result = invoke(config, "draft", "--month", "2023-03")
    path = tmp_path / "drafts" / "2023-03.md"
    assert result.exit_code == 0 and str(path) in result.output
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Summary of Important AI & ML Blog Posts\n")
    assert "\n## 1. Posts\n" in text
    assert "* [무지성으로 사용한 헬스 체크가 불러일으킬 수 있는 참사 (Apr 2023, 토스)]" not in text  # April is not March
    lines = [line for line in text.splitlines() if line.startswith("* [")]
    assert lines and all(" (Mar 2023, " in line for line in lines)
    assert any(line.startswith("* [") and "(Mar 2023, 네이버)](https://d2.naver.com/" in line for line in lines)
    path.write_text(text + "editor's words\n", encoding="utf-8")
    refused = invoke(config, "draft", "--month", "2023-03")
    assert refused.exit_code == 1 and "already exists" in refused.output and "--force" in refused.output
    assert path.read_text(encoding="utf-8").endswith("editor's words\n")
    assert invoke(config, "draft", "--month", "2023-03", "--force").exit_code == 0
    assert not path.read_text(encoding="utf-8").endswith("editor's words\n")


def test_draft_json_and_option_errors(tmp_path: Path, feed_server: FeedServer) -> None:
    config = write_config(tmp_path, feed_server)
    invoke(config, "--quiet", "fetch")
    result = invoke(config, "draft", "--month", "2023-03", "--format", "json")
    rows = json.loads(result.output)
    assert rows and {"url", "title", "source", "published", "section", "priority"} <= set(rows[0])
    assert all(r["priority"] is None and r["published"].startswith("2023-03") for r in rows)
    assert invoke(config, "draft", "--month", "2023-13").exit_code == 2
    assert "2023-13" in invoke(config, "draft", "--month", "2023-13").output
    assert invoke(config, "draft", "--month", "2023-03", "--format", "pdf").exit_code == 2
    out = tmp_path / "mine.md"
    assert invoke(config, "draft", "--month", "2023-03", "--out", str(out)).exit_code == 0 and out.exists()


def test_feeds_health_reset_and_opml_round_trip(tmp_path: Path, feed_server: FeedServer) -> None:
    config = write_config(tmp_path, feed_server)
    invoke(config, "--quiet", "fetch")
    table = invoke(config, "feeds").output
    broken_row = next(line for line in table.splitlines() if line.startswith("Broken"))
    assert "failing" in broken_row and "500" in broken_row and "HTTP 500 Internal Server Error" in broken_row
    toss_row = next(line for line in table.splitlines() if line.startswith("Toss"))
    assert " ok " in toss_row and " 4 " in toss_row
    assert "reset" in invoke(config, "feeds", "reset", "Broken").output
    assert invoke(config, "feeds", "reset", "Nope").exit_code == 1

    before = config.read_text(encoding="utf-8")
    result = invoke(config, "feeds", "import-opml", str(DATA / "opml" / "small.opml"))
    assert result.exit_code == 0 and "added 5 feeds" in result.output
    after = config.read_text(encoding="utf-8")
    assert after.startswith(before.rstrip("\n"))  # appended: comments and order untouched
    again = invoke(config, "feeds", "import-opml", str(DATA / "opml" / "small.opml"))
    assert "added 0 feeds" in again.output
    exported = invoke(config, "feeds", "export-opml").output
    assert exported.count("<outline ") == 8 and 'xmlUrl="https://netflixtechblog.com/feed"' in exported
    bad = tmp_path / "bad.opml"
    bad.write_text("<opml><body><outline", encoding="utf-8")
    failed = invoke(config, "feeds", "import-opml", str(bad))
    assert failed.exit_code == 1 and str(bad) in failed.output
    assert config.read_text(encoding="utf-8") == after


def test_feeds_shows_broken_rate_limited_and_gone_feeds_and_the_feed_a_page_advertises(
        tmp_path: Path, feed_server: FeedServer) -> None:
    page = feed_server.serve("/blog/", FEEDS / "not_a_feed.html", content_type="text/html")
    feed_server.routes["/busy.xml"] = Route(status=429, body=b"")
    feed_server.routes["/dead.xml"] = Route(status=410, body=b"")
    config = write_config(tmp_path, feed_server, extra="  broken_after: 2\n")
    with config.open("a", encoding="utf-8") as f:
        f.write(f"  - name: Page\n    url: {page}\n  - name: Busy\n    url: {feed_server.url('/busy.xml')}\n"
                f"  - name: Dead\n    url: {feed_server.url('/dead.xml')}\n")
    for _ in range(2):
        invoke(config, "--quiet", "fetch", "--all")
    lines = invoke(config, "feeds").output.splitlines()
    state = {line.split()[0]: line.split()[1] for line in lines[1:] if line.split() and line.split()[0] in
             ("Toss", "Broken", "Page", "Busy", "Dead")}
    assert state == {"Toss": "ok", "Broken": "broken", "Page": "broken", "Busy": "rate-limited", "Dead": "gone"}
    assert any("parked (feeds reset)" in line for line in lines if line.startswith("Dead"))
    assert f"Page: {page} is a web page; use the feed it advertises instead: {feed_server.url('/feed.xml')}" in lines
    invoke(config, "feeds", "reset", "Dead")
    invoke(config, "--quiet", "fetch")  # polled again after the reset: still 410, parked again
    assert len(feed_server.hits_for("/dead.xml")) == 2


def test_run_once_polls_and_writes_this_months_draft(tmp_path: Path, feed_server: FeedServer) -> None:
    config = write_config(tmp_path, feed_server)
    result = invoke(config, "run", "--once")
    assert result.exit_code == 0
    assert "9 new posts" in result.output and "written" in result.output
    drafts = list((tmp_path / "drafts").glob("*.md"))
    assert len(drafts) == 1
    drafts[0].write_text("edited by the editor\n", encoding="utf-8")
    second = invoke(config, "run", "--once")
    assert "left alone: it was edited" in second.output
    assert drafts[0].read_text(encoding="utf-8") == "edited by the editor\n"


def test_python_dash_m_entry_point_and_unreachable_feeds_are_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - name: Nowhere\n    url: http://127.0.0.1:9/feed\n    source: X\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "aggregator", "--config", str(path), "run", "--once"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "Nowhere: connection refused" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "1 feeds: 0 ok, 0 not modified, 1 failed; 0 new posts" in proc.stdout


def test_the_command_flushes_its_output_and_keeps_its_exit_status_when_it_skips_interpreter_teardown(
        tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n" + "".join(f"  - name: Blog {i}\n    url: http://127.0.0.1:9/{i}.xml\n"
                                         for i in range(300)), encoding="utf-8")
    opml = subprocess.run([sys.executable, "-m", "aggregator", "--config", str(path), "feeds", "export-opml"],
                          capture_output=True, text=True, timeout=120)
    assert opml.returncode == 0 and opml.stdout.rstrip().endswith("</opml>") and opml.stdout.count("<outline") == 300
    missing = subprocess.run([sys.executable, "-m", "aggregator", "--config", str(tmp_path / "nope.yaml"), "fetch"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [f"error: {tmp_path / 'nope.yaml'}: no such file (pass --config or set AGGREGATOR_CONFIG)"]
    usage = subprocess.run([sys.executable, "-m", "aggregator", "draft", "--month", "2024-13"],
                           capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "--month" in usage.stderr
    read_end, write_end = os.pipe()
    os.close(read_end)  # whoever read standard output has gone (`... | head`)
    try:
        gone = subprocess.run([sys.executable, "-m", "aggregator", "--config", str(path), "feeds", "export-opml"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert gone.returncode == 1 and "Traceback" not in gone.stderr


def test_the_bundled_feeds_yaml_loads_from_a_copy(tmp_path: Path) -> None:
    shutil.copy(ROOT / "feeds.yaml", tmp_path / "feeds.yaml")
    result = invoke(tmp_path / "feeds.yaml", "init")
    assert result.exit_code == 0 and "feeds)" in result.output


def test_starting_aggregator_never_loads_httpxs_own_command_line_client() -> None:
    """httpx would import its CLI (rich's syntax and progress, pygments) at every start; aggregator keeps it out."""
    import subprocess
    import sys

    code = "import aggregator.cli, sys, httpx; print(sys.modules['httpx._main'] is None, 'pygments' in sys.modules, callable(httpx.get))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split() == ["True", "False", "True"]


# `aggregator ARGS...` through its entry point; as the process ends (the CLI ends with os._exit), every module
# it imported is written to the file named by the first argument, one name a line.
IMPORTS_RECORDED = """
import os, sys
out, sys.argv = sys.argv[1], ["aggregator", *sys.argv[2:]]
real_exit = os._exit

def record_then_exit(code):
    with open(out, "w", encoding="utf-8") as f:
        f.write("\\n".join(sorted(sys.modules)))
    real_exit(code)

os._exit = record_then_exit
from aggregator.__main__ import main
main()
"""
# What a polling pass has no use for: the other commands, the learning, drafting and desk packages, the web
# stack, the numeric stack, the scheduler, rich (no terminal, so no progress bar), the ORM and the store's
# domains that use it (SQLAlchemy Core is enough), and pydantic.
NOT_FOR_POLLING = {"aggregator.cli.desk", "aggregator.cli.digests", "aggregator.cli.feeds", "aggregator.cli.learning",
                   "aggregator.learn", "aggregator.digest", "aggregator.web", "aggregator.opml", "aggregator.audit",
                   "aggregator.scheduler", "starlette", "uvicorn", "jinja2", "sklearn", "numpy", "scipy",
                   "apscheduler", "rich", "sqlalchemy.orm", "pydantic", "pydantic_core",
                   "aggregator.store.whole", "aggregator.store.schema", "aggregator.store.labels",
                   "aggregator.store.decisions"}


def not_for_polling(modules: set[str]) -> set[str]:
    """Those of `modules` that NOT_FOR_POLLING names, or that are inside a package it names."""
    return {m for m in modules if any(m == name or m.startswith(name + ".") for name in NOT_FOR_POLLING)}


def imported_by(tmp_path: Path, *args: str) -> set[str]:
    """The modules `aggregator ARGS...` imports, run in a fresh process as cron runs it (no terminal)."""
    out = tmp_path / "modules.txt"
    ran = subprocess.run([sys.executable, "-c", IMPORTS_RECORDED, str(out), *args], capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    return set(out.read_text(encoding="utf-8").split())


def test_a_fetch_imports_only_what_polling_needs(tmp_path: Path, feed_server: FeedServer) -> None:
    """`aggregator fetch` against a live feed, then again when it answers 304: neither pass loads another
    command's module, the learning, drafting or desk code, the web or numeric stack, the scheduler, the ORM
    or pydantic; the second, on a database already made, not Alembic either."""
    config = write_config(tmp_path, feed_server)
    for attempt, parsed in (("changed", True), ("not modified", False)):
        modules = imported_by(tmp_path, "--config", str(config), "fetch", "--all")
        assert "aggregator.poll.run" in modules and ("aggregator.poll.parse" in modules) == parsed, attempt
        assert "sqlalchemy" in modules and not_for_polling(modules) == set(), attempt
        assert parsed or "alembic" not in modules
    whole_tree = imported_by(tmp_path, "--config", str(config), "feeds")
    assert {"aggregator.cli.feeds", "aggregator.cli.digests", "sqlalchemy.orm"} <= whole_tree


def test_a_polling_command_reads_its_options_as_typer_declares_them(tmp_path: Path, feed_server: FeedServer) -> None:
    """The polling commands' plain options, read without typer (cli/lean.py): given before or after `=`,
    repeated, from the environment; help, a value out of bounds, a missing one or an unknown option go to
    typer, which says what is wrong as it always did."""
    import sqlite3

    config = write_config(tmp_path, feed_server)
    env = {**os.environ, "AGGREGATOR_CONFIG": str(config)}

    def aggregator(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aggregator", *args], capture_output=True, text=True, timeout=120,
                              env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)

    db = tmp_path / "elsewhere.db"
    ran = aggregator("-q", f"--db=sqlite:///{db}", "fetch", "--feed", "Toss", "--feed=D2", "--wait", "0.5",
                     "--worker-id", "w1")
    assert ran.returncode == 0 and ran.stdout.startswith("2 feeds: 2 ok, 0 not modified, 0 failed;"), ran.stderr
    with sqlite3.connect(db) as conn:
        fetched_by = dict(conn.execute("SELECT name, last_fetched_by FROM feeds"))
    assert fetched_by == {"Toss": "w1", "D2": "w1", "Broken": None}
    for args, said in ((["fetch", "--wait", "-1"], "--wait"), (["fetch", "--wait"], "--wait"),
                       (["fetch", "--nope"], "No such option"), (["run", "--once=yes"], "--once")):
        ran = aggregator(*args)
        assert ran.returncode == 2 and said in ran.stderr, (args, ran.stderr)
    assert "--worker-id" in aggregator("fetch", "--help").stdout


def test_the_whole_store_opened_after_a_poll_is_the_same_open_database(tmp_path: Path, feed_server: FeedServer) -> None:
    """A poll opens the Core-only store; asking for the whole one then (`run --once` drafts after polling)
    gives the same open database, not a second one (an in-memory database would be a new, empty one)."""
    from aggregator.config import load_config
    from aggregator.runtime import Runtime
    from aggregator.store import PollingStore, Store

    with Runtime(load_config(write_config(tmp_path, feed_server))) as rt:
        rt.poll()
        polled = rt.polling_store
        assert type(polled) is PollingStore
        store = rt.store
        assert isinstance(store, Store) and store.engine is polled.engine and rt.polling_store is store
        assert store.count_posts() > 0 and store.count_labels() == 0


TICK_RECORDED = """
import sys
from pathlib import Path
from aggregator.config import load_config
from aggregator.runtime import Runtime

with Runtime(load_config(Path(sys.argv[2])), worker_id="tick") as rt:
    outcomes = rt.poll().outcomes  # what the daemon's poll tick calls (cli/polling.py, poll_job)
Path(sys.argv[1]).write_text("\\n".join([str(len(outcomes)), *sorted(sys.modules)]), encoding="utf-8")
"""


def test_the_daemons_poll_tick_imports_only_what_polling_needs(tmp_path: Path, feed_server: FeedServer) -> None:
    """A fresh process doing what the daemon's poll tick does (a Runtime's poll) loads none of what polling
    has no use for: the tick needs no ORM, although the daemon loads it for its other job, the drafts."""
    config = write_config(tmp_path, feed_server)
    out = tmp_path / "modules.txt"
    subprocess.run([sys.executable, "-c", TICK_RECORDED, str(out), str(config)], check=True, timeout=120,
                   capture_output=True, stdin=subprocess.DEVNULL, cwd=tmp_path)
    polled, *modules = out.read_text(encoding="utf-8").split()
    assert polled == "3" and "aggregator.poll.parse" in modules
    assert not_for_polling(set(modules)) == set()


ENTRY_POINT_WATCHED = """
import gc, importlib.util, sys
paused_while_loading = []

class Watch:  # notes the collector's state when SQLAlchemy loads; swaps the CLI's command for `command`
    busy = False

    def find_spec(self, name, path, target=None):
        if name == "sqlalchemy":
            paused_while_loading.append(not gc.isenabled())
        if name != "aggregator.cli" or self.busy:
            return None
        self.busy = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.busy = False
        real = spec.loader

        class Loader:
            def create_module(self, spec):
                return real.create_module(spec)

            def exec_module(self, module):
                real.exec_module(module)
                module.main = command

        spec.loader = Loader()
        return spec

def command():
    frozen, on = gc.get_freeze_count(), gc.isenabled()
    a = []; a.append(a); del a  # a cycle made by the command itself
    print(paused_while_loading == [True], frozen > 50_000, on, gc.collect() >= 1)

sys.meta_path.insert(0, Watch())
from aggregator.__main__ import main
main()
"""


def test_the_entry_point_loads_the_cli_with_the_collector_paused_then_freezes_it() -> None:
    """`aggregator` loads the CLI with the garbage collector paused (SQLAlchemy is imported while it is off),
    freezes what loading made (never scanned again), and runs the command with the collector on again: what
    the command makes is still collected. `python -m aggregator` goes through the same entry point."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", ENTRY_POINT_WATCHED], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert out.split() == ["True", "True", "True", "True"]
    help_text = subprocess.run([sys.executable, "-m", "aggregator", "--help"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    assert "fetch" in help_text
