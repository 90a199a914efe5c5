"""`aggregator run` as a real process: it ticks, stores, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import FEEDS, FeedServer


def _count(db: Path, sql: str) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_daemon_ticks_then_stops_cleanly_on_sigterm(tmp_path: Path, feed_server: FeedServer) -> None:
    toss = feed_server.serve("/toss.xml", FEEDS / "toss.rss.xml")
    config = tmp_path / "feeds.yaml"
    config.write_text(f"""defaults:
  tick: 1
  interval: 1
  timeout: 5
feeds:
  - name: Toss
    url: {toss}
    source: 토스
""", encoding="utf-8")
    db = tmp_path / "aggregator.db"
    proc = subprocess.Popen([sys.executable, "-m", "aggregator", "--config", str(config), "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        # a few ticks: the first stores the posts, later ones are conditional requests answered 304
        while time.monotonic() < deadline and len(feed_server.hits_for("/toss.xml")) < 3:
            time.sleep(0.2)
        assert len(feed_server.hits_for("/toss.xml")) >= 3
        assert "if-none-match" in feed_server.hits_for("/toss.xml")[-1].headers
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped" in err
    assert _count(db, "select count(*) from posts") == 4
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert list((tmp_path / "drafts").glob("*.md"))  # the draft job ran too
