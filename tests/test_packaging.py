"""A wheel built from the repository carries the migrations (kept in the top-level migrations/ folder), and the repository root holds nothing a shell glob turns into an option."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_a_wheel_migrates_a_fresh_database(tmp_path: Path) -> None:
    # no build isolation: the build tools come from the test extra, so nothing is downloaded here
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                            "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=240)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("aggregator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "aggregator/migrations/env.py" in names and "aggregator/migrations/script.py.mako" in names
    assert any(n.startswith("aggregator/migrations/versions/0001_") for n in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    db = tmp_path / "fresh.db"
    script = ("import aggregator, sys; from aggregator.store import Store;"
              f"assert aggregator.__file__.startswith({str(site)!r}), aggregator.__file__;"
              f"s = Store('sqlite:///{db}'); s.migrate(); s.close(); print('ok')")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert ran.returncode == 0 and ran.stdout.strip() == "ok", ran.stderr
    import sqlite3

    tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master where type = 'table'")}
    assert {"feeds", "posts", "labels", "digests", "drafts", "alembic_version"} <= tables


def test_low_14_no_file_at_the_root_reads_as_an_option_and_profiler_output_is_ignored() -> None:
    """A committed `--config` (a cProfile dump) turned `aggregator *` at the root into an option: no name
    there may start with "-", and the usual profiler outputs are kept out of the repository."""
    assert not [p.name for p in ROOT.iterdir() if p.name.startswith("-")]
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert {"*.prof", "*.pstats"} <= set(ignored)
