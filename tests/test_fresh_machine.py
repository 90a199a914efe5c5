"""A fresh machine without Chromium: the desk's browser tests skip with one line saying how to install it,
and fail instead when AGGREGATOR_REQUIRE_BROWSER=1 (as CI sets it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def run_desk_test(**env: str) -> subprocess.CompletedProcess[str]:
    """One browser test of the desk, in a pytest of its own, on a machine where Chromium is not found."""
    clean = {k: v for k, v in os.environ.items() if k != "AGGREGATOR_REQUIRE_BROWSER"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(TESTS / "test_desk.py"),
                           "-k", "test_the_headers_count_follows_the_editors_decisions"],
                          env={**clean, "AGGREGATOR_CHROMIUM": str(TESTS / "no-such-chromium"), **env},
                          capture_output=True, text=True, timeout=120, cwd=TESTS.parent)


def test_without_chromium_the_browser_tests_skip_with_how_to_install_it() -> None:
    done = run_desk_test()
    assert done.returncode == 0, done.stdout[-2000:]
    assert "1 skipped" in done.stdout and "apt install chromium chromium-driver" in done.stdout


def test_without_chromium_the_browser_tests_fail_where_ci_requires_them() -> None:
    done = run_desk_test(AGGREGATOR_REQUIRE_BROWSER="1")
    assert done.returncode != 0
    assert "AGGREGATOR_REQUIRE_BROWSER=1 but no " in done.stdout and "Traceback" not in done.stdout
