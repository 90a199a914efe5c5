"""Take docs/model.png, the picture of the desk's model page, through the browser tests' own path.

    python docs/model_screenshot.py [--out docs/model.png]

December 2022's fixture feeds (tests/data) and a site without a feed are served on 127.0.0.1, November's
picks are imported and December decided on (tests/test_model_page.py's make_decided_home), the desk is
started, its feeds are looked for, and Debian's Chromium takes the picture of /model.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import FeedServer  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from test_desk import Desk, chromium, wait  # noqa: E402
from test_model_page import make_decided_home, open_model  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "model.png")
    args = parser.parse_args(argv)
    server = FeedServer()
    server.thread.start()
    home = make_decided_home(Path(tempfile.mkdtemp(prefix="aggregator-shot-")), server)
    desk = Desk(home)
    driver = chromium()
    try:
        driver.set_window_size(1280, 1600)
        open_model(driver, desk.base)
        driver.find_element(By.ID, "discover").click()
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "button.add-feed"), timeout=60)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(args.out))
        logs = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        for line in logs:
            print(f"browser: {line}", file=sys.stderr)
    finally:
        driver.quit()
        desk.stop()
        server.httpd.shutdown()
        server.httpd.server_close()
        shutil.rmtree(home, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
