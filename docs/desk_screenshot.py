"""Take docs/desk.png, the README's picture of the review desk, through the browser tests' own path.

    python docs/desk_screenshot.py [--out docs/desk.png]

December 2022's fixture feeds (tests/data) are served on 127.0.0.1 and fetched, November's digest is
imported and trained on, a few decisions are made with the keys, and Debian's Chromium takes the picture.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_desk import Desk, chromium, make_trained_home, open_desk, press, state_of, wait  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "desk.png")
    args = parser.parse_args(argv)
    home = make_trained_home(Path(tempfile.mkdtemp(prefix="aggregator-shot-")))
    desk = Desk(home)
    driver = chromium()
    try:
        driver.set_window_size(1280, 860)
        open_desk(driver, desk.url)
        first = int(driver.find_elements("css selector", ".row")[0].get_attribute("data-post") or 0)
        press(driver, "a")
        wait(driver, lambda d: state_of(d, first) == "accepted")
        press(driver, "r")
        press(driver, "j")
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
        desk.stop()
        shutil.rmtree(home, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
