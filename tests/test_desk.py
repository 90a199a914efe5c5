"""The review desk, served by `aggregator review` in its own process and driven in Debian's Chromium:
keys and mouse, what the database and the exported Markdown hold afterwards, hostile feed text, two
tabs, the token, and the refusals."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from aggregator.learn.reading import read_digest
from aggregator.store.decisions import Decision
from aggregator.store.schema import FeedRow, PostRow
from aggregator.store import Store
from conftest import free_port, make_trained_home, run_cli

EDITION = "2022-12"
CHROMIUM = os.environ.get("AGGREGATOR_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("AGGREGATOR_CHROMEDRIVER", "/usr/bin/chromedriver")
# Chromium with nothing that reaches off this machine: no background services, and every host name but
# loopback resolving to nothing.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--window-size=1280,900",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost")


def chromium() -> WebDriver:
    """Debian's Chromium under chromedriver (the `browser` fixture checks first that they are here)."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for drivers on the network
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (one line, with how to install what is missing), or None."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(path) and os.access(path, os.X_OK))]
    if not missing:
        return None
    return (f"no {' or '.join(missing)}: the desk's browser tests need Debian's Chromium and its driver "
            "(apt install chromium chromium-driver, or set AGGREGATOR_CHROMIUM and AGGREGATOR_CHROMEDRIVER)")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Chromium driven by Selenium. Without it the tests that need it skip with one line, unless
    AGGREGATOR_REQUIRE_BROWSER=1 (as CI sets it after installing Chromium), where they fail."""
    why = browser_missing()
    if why is not None:
        if os.environ.get("AGGREGATOR_REQUIRE_BROWSER") == "1":
            pytest.fail(f"AGGREGATOR_REQUIRE_BROWSER=1 but {why}", pytrace=False)
        pytest.skip(why)
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained home (make_trained_home) that each test copies."""
    return make_trained_home(tmp_path_factory.mktemp("desk-base"))


@pytest.fixture
def home(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(trained, copy)
    return copy


class Desk:
    """`aggregator review` running in a child process."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        command = [sys.executable, "-m", "aggregator", "--config", str(home / "feeds.yaml"), "review",
                   "--month", EDITION, "--port", str(self.port), *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.printed = self._first_line(timeout=60)
        self.url = self.printed.split(" is at ", 1)[1].split(" ", 1)[0]
        self.base = self.url.split("/edition/")[0]

    def _first_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.stop()
                raise AssertionError(f"the desk printed nothing in {timeout} s")
        line = self.proc.stdout.readline()
        assert " is at " in line, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        return line

    def stop(self) -> int:
        """SIGTERM, as systemd and Ctrl-C's cousin send it; 0 when the desk shut down cleanly (uvicorn ends a
        graceful shutdown by dying of the signal it caught, which a service manager reads as a clean stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=20)
            return 0 if code == -signal.SIGTERM else code
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError("the desk did not stop on SIGTERM") from None

    def decisions(self) -> dict[int, Decision]:
        with Store(f"sqlite:///{self.home / 'aggregator.db'}") as store:
            return store.decisions(EDITION)


@pytest.fixture
def desk(home: Path) -> Iterator[Desk]:
    running = Desk(home)
    try:
        yield running
    finally:
        running.stop()


def wait(driver: WebDriver, condition, timeout: float = 15):  # type: ignore[no-untyped-def]
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def open_desk(driver: WebDriver, url: str) -> None:
    driver.get(url)
    wait(driver, lambda d: d.find_element(By.ID, "desk").get_attribute("data-ready") == "1")


def tap(driver: WebDriver, css: str) -> None:
    """Click an element as a user would after scrolling it into the middle of the window (the desk's
    header stays on top of the page)."""
    element = driver.find_element(By.CSS_SELECTOR, css)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def row(driver: WebDriver, post: int) -> WebElement:
    return driver.find_element(By.ID, f"post-{post}")


def state_of(driver: WebDriver, post: int) -> str:
    return row(driver, post).get_attribute("data-state") or ""


def current(driver: WebDriver) -> int:
    return int(driver.find_element(By.CSS_SELECTOR, ".row.current").get_attribute("data-post") or 0)


def press(driver: WebDriver, keys: str) -> None:
    driver.switch_to.active_element.send_keys(keys)


def group_of(driver: WebDriver, post: int) -> str:
    return driver.execute_script("return document.getElementById(arguments[0]).closest('.group').dataset.key", f"post-{post}")


def status(driver: WebDriver) -> str:
    return driver.find_element(By.ID, "status").text


def sections(driver: WebDriver) -> list[str]:
    return [o.get_attribute("value") or "" for o in driver.find_elements(By.CSS_SELECTOR, "#move-section option")]


def test_keys_accept_reject_move_edit_undo_and_the_export(browser: WebDriver, desk: Desk) -> None:
    open_desk(browser, desk.url)
    order = [int(r.get_attribute("data-post") or 0) for r in browser.find_elements(By.CSS_SELECTOR, ".row")]
    assert len(order) == 5 and current(browser) == order[0]
    first, second, third = order[:3]
    predicted = row(browser, first).get_attribute("data-section")

    press(browser, "a")  # accept into the section the model gave
    wait(browser, lambda d: state_of(d, first) == "accepted")
    assert group_of(browser, first) == predicted and current(browser) == second  # the desk moves on, like a mail reader
    assert desk.decisions()[first].selected is True and desk.decisions()[first].section == tuple(predicted.split(" > "))

    press(browser, "r")
    wait(browser, lambda d: state_of(d, second) == "rejected")
    assert group_of(browser, second) == "left-out" and desk.decisions()[second].selected is False
    assert current(browser) == third

    press(browser, "m")  # the picker lists the taxonomy; the arrow keys and Enter choose
    wait(browser, lambda d: d.find_element(By.ID, "move-dialog").get_attribute("open") is not None)
    options = sections(browser)
    chosen_index = (options.index(row(browser, third).get_attribute("data-section")) + 1) % len(options)
    Select(browser.find_element(By.ID, "move-section")).select_by_index(chosen_index)
    press(browser, "\ue007")  # Enter
    wait(browser, lambda d: state_of(d, third) == "accepted")
    assert group_of(browser, third) == options[chosen_index]
    assert desk.decisions()[third].section == tuple(options[chosen_index].split(" > "))

    press(browser, "e")
    area = wait(browser, lambda d: d.find_element(By.ID, "edit-summary") if d.find_element(By.ID, "edit-dialog").get_attribute("open") is not None else None)
    area.clear()
    area.send_keys("The editor's own line.\ue007")
    wait(browser, lambda d: row(d, third).find_element(By.CSS_SELECTOR, ".summary-text").text == "The editor's own line.")
    assert desk.decisions()[third].summary == "The editor's own line."

    press(browser, "u")  # undo the edit: the summary goes, the move stays
    wait(browser, lambda d: desk.decisions()[third].summary == "")
    assert desk.decisions()[third].section == tuple(options[chosen_index].split(" > "))
    assert not row(browser, third).find_element(By.CSS_SELECTOR, ".summary").is_displayed()
    press(browser, "u")  # and the move: back where the model had it, undecided
    wait(browser, lambda d: state_of(d, third) == "undecided")
    assert third not in desk.decisions()
    assert row(browser, third).get_attribute("data-section") == row(browser, third).get_attribute("data-predicted")

    press(browser, "?")
    wait(browser, lambda d: d.find_element(By.ID, "help-dialog").get_attribute("open") is not None)
    assert "undo your last action" in browser.find_element(By.ID, "help-dialog").text
    press(browser, "\ue00c")  # Escape
    wait(browser, lambda d: d.find_element(By.ID, "help-dialog").get_attribute("open") is None)

    # Export: the Markdown the `draft` renderer writes, with the decisions and the edited summary.
    tap(browser, f"#post-{first} button[data-do='edit']")
    area = wait(browser, lambda d: d.find_element(By.ID, "edit-summary") if d.find_element(By.ID, "edit-dialog").get_attribute("open") is not None else None)
    area.clear()
    area.send_keys("Kept, with a line of my own.")
    browser.find_element(By.ID, "edit-ok").click()
    wait(browser, lambda d: desk.decisions()[first].summary == "Kept, with a line of my own.")
    browser.find_element(By.ID, "export").click()
    wait(browser, lambda d: d.find_element(By.ID, "export-dialog").get_attribute("open") is not None)
    exported = desk.home / "drafts" / f"{EDITION}.md"
    text = exported.read_text(encoding="utf-8")
    title = row(browser, first).find_element(By.CSS_SELECTOR, ".title").text
    heading = predicted.split(" > ")[-1]
    assert f"### {heading}" in text and "Kept, with a line of my own." in text
    assert text.index(f"### {heading}") < text.index("Kept, with a line of my own.")
    assert title.split(" ")[0] in text.split("Kept, with")[0].splitlines()[-1]  # on the accepted entry's line
    assert "+" in browser.find_element(By.ID, "export-diff").text  # what changed since the last draft written
    before = desk.decisions()
    back = run_cli(desk.home, "import-digest", str(exported))
    assert back.exit_code == 0 and "0 moved, 0 removed" in back.output, back.output  # undecided rows the cut
    after = desk.decisions()  # selected are added as picks; every decision the desk made reads back the same
    assert {p: (after[p].selected, after[p].section, after[p].summary) for p in before} == \
        {p: (d.selected, d.section, d.summary) for p, d in before.items()}
    open_desk(browser, desk.url)  # the export lists two sections; imported, it drops none of the taxonomy's
    assert sections(browser) == options


def test_every_action_works_with_the_mouse(browser: WebDriver, desk: Desk) -> None:
    open_desk(browser, desk.url)
    posts = [int(r.get_attribute("data-post") or 0) for r in browser.find_elements(By.CSS_SELECTOR, ".row")]
    a, b = posts[:2]

    def click(post: int, what: str) -> None:
        tap(browser, f"#post-{post} button[data-do='{what}']")

    click(a, "accept")
    wait(browser, lambda d: state_of(d, a) == "accepted")
    click(a, "move")
    wait(browser, lambda d: d.find_element(By.ID, "move-dialog").get_attribute("open") is not None)
    target = [s for s in sections(browser) if s != row(browser, a).get_attribute("data-section")][0]
    Select(browser.find_element(By.ID, "move-section")).select_by_value(target)
    browser.find_element(By.ID, "move-ok").click()
    wait(browser, lambda d: group_of(d, a) == target)
    click(b, "reject")
    wait(browser, lambda d: state_of(d, b) == "rejected")
    click(b, "edit")  # writing a summary for a left-out post puts it in the digest
    area = wait(browser, lambda d: d.find_element(By.ID, "edit-summary") if d.find_element(By.ID, "edit-dialog").get_attribute("open") is not None else None)
    area.clear()
    area.send_keys("Worth it after all.")
    browser.find_element(By.ID, "edit-ok").click()
    wait(browser, lambda d: state_of(d, b) == "accepted")
    decisions = desk.decisions()
    assert decisions[a].section == tuple(target.split(" > ")) and decisions[b].summary == "Worth it after all."
    browser.find_element(By.ID, "undo").click()
    wait(browser, lambda d: state_of(d, b) == "rejected")
    assert desk.decisions()[b].selected is False
    # Cancelling the picker changes nothing.
    click(a, "move")
    wait(browser, lambda d: d.find_element(By.ID, "move-dialog").get_attribute("open") is not None)
    browser.find_element(By.ID, "move-cancel").click()
    assert desk.decisions()[a].revision == decisions[a].revision


HOSTILE = {
    "script": "<script>window.__pwned = 1</script>",
    "attribute": '"><img src=x onerror="window.__pwned = 2">',
    "template": "{{ 7*7 }} {% if true %}jinja{% endif %} ${7*7}",
    "markdown": "**bold** [click](javascript:window.__pwned=3) <b>b</b>",
    "bidi": "\u202eevil.exe\u202c and \u2067isolate\u2069",
    "zero-width": "zero\u200bwidth\u200djoin\ufeffbom",
    "long": "A" * 10_000,
}


def _hostile_posts(home: Path) -> dict[str, int]:
    """Posts whose text attacks the page, stored as a feed would have stored them (caps bypassed)."""
    ids = {}
    when = datetime(2022, 12, 20, tzinfo=timezone.utc)
    with Store(f"sqlite:///{home / 'aggregator.db'}") as store, store.session() as s:
        feed = s.query(FeedRow).filter_by(name="ML").one()
        for i, (name, title) in enumerate(HOSTILE.items()):
            url = "javascript:window.__pwned=4" if name == "markdown" else f"https://hostile.example/{i}"
            post = PostRow(feed_id=feed.id, key=f"hostile-{i}", url=url, title=title,
                           summary=f"<img src=x onerror=\"window.__pwned=5\"> {title[:100]}", published_at=when,
                           first_seen_at=when, content_hash="")
            s.add(post)
            s.flush()
            ids[name] = post.id
    return ids


def test_hostile_feed_text_is_shown_as_text_and_runs_nothing(browser: WebDriver, home: Path) -> None:
    ids = _hostile_posts(home)
    desk = Desk(home)
    try:
        open_desk(browser, desk.url)
        for name, post in ids.items():
            shown = row(browser, post).find_element(By.CSS_SELECTOR, ".title bdi").get_attribute("textContent")
            assert shown == HOSTILE[name], name
        assert browser.execute_script("return window.__pwned") is None
        assert browser.find_elements(By.TAG_NAME, "img") == [] and len(browser.find_elements(By.TAG_NAME, "script")) == 1
        assert row(browser, ids["markdown"]).find_elements(By.TAG_NAME, "a") == []  # javascript: is never a link
        link = row(browser, ids["script"]).find_element(By.CSS_SELECTOR, "a.title")
        assert link.get_attribute("href") == "https://hostile.example/0" and link.get_attribute("rel") == "noopener noreferrer"
        assert "49" not in row(browser, ids["template"]).text
        for post in (ids["script"], ids["attribute"], ids["long"]):  # acting on them runs nothing either
            tap(browser, f"#post-{post} button[data-do='accept']")
            wait(browser, lambda d, p=post: state_of(d, p) == "accepted")
        assert browser.execute_script("return window.__pwned") is None
        assert len(row(browser, ids["long"]).find_element(By.CSS_SELECTOR, ".title").get_attribute("textContent")) == 10_000
    finally:
        assert desk.stop() == 0


def test_two_tabs_see_each_others_decisions_and_a_conflict_is_refused(browser: WebDriver, desk: Desk) -> None:
    open_desk(browser, desk.url)
    first_tab = browser.current_window_handle
    post = int(browser.find_elements(By.CSS_SELECTOR, ".row")[0].get_attribute("data-post") or 0)
    browser.switch_to.new_window("tab")
    second_tab = browser.current_window_handle
    try:
        open_desk(browser, desk.url)
        browser.switch_to.window(first_tab)
        tap(browser, f"#post-{post} button[data-do='accept']")
        wait(browser, lambda d: state_of(d, post) == "accepted")
        browser.switch_to.window(second_tab)
        tap(browser, f"#post-{post} button[data-do='reject']")
        wait(browser, lambda d: "changed elsewhere" in status(d))
        assert state_of(browser, post) == "undecided"  # the refused change is not shown as made
        assert desk.decisions()[post].selected is True  # nor stored
        open_desk(browser, desk.url)  # a reload shows the other tab's decision
        assert state_of(browser, post) == "accepted"
    finally:
        browser.close()
        browser.switch_to.window(first_tab)


def test_retraining_reranks_without_losing_the_editors_place(browser: WebDriver, desk: Desk) -> None:
    open_desk(browser, desk.url)
    posts = [int(r.get_attribute("data-post") or 0) for r in browser.find_elements(By.CSS_SELECTOR, ".row")]
    for post in posts[:2]:
        tap(browser, f"#post-{post} button[data-do='accept']")
        wait(browser, lambda d, p=post: state_of(d, p) == "accepted")
    tap(browser, f"#post-{posts[3]} .opening")
    assert current(browser) == posts[3]
    placed = {p: group_of(browser, p) for p in posts[:2]}
    meta = desk.home / "models" / "meta.json"
    trained_before = json.loads(meta.read_text(encoding="utf-8"))["trained_at"]
    old_page = browser.find_element(By.ID, "desk")
    browser.find_element(By.ID, "retrain").click()
    wait(browser, lambda d: _reloaded(d, old_page), timeout=60)
    wait(browser, lambda d: d.find_element(By.ID, "desk").get_attribute("data-ready") == "1")
    assert current(browser) == posts[3]  # the editor's place is kept
    assert status(browser).startswith("trained on ")
    assert {p: group_of(browser, p) for p in posts[:2]} == placed  # decided rows never move
    trained = json.loads(meta.read_text(encoding="utf-8"))
    assert trained["trained_at"] != trained_before and trained["n_positives"] >= 24  # November's picks and the two accepted


def _reloaded(driver: WebDriver, old: WebElement) -> bool:
    try:
        old.get_attribute("id")
        return False
    except Exception:  # noqa: BLE001  (a stale element: the page was replaced)
        return True


def test_refusals_change_nothing_and_every_response_is_locked_down(desk: Desk) -> None:
    with httpx.Client(base_url=desk.base, timeout=10) as client:
        page = client.get(f"/edition/{EDITION}")
        assert page.status_code == 200
        csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        post = int(page.text.split('data-post="', 1)[1].split('"', 1)[0])
        section = page.text.split('data-section="', 1)[1].split('"', 1)[0].replace("&gt;", ">").replace("&amp;", "&")
        for response in (page, client.get("/static/desk.js"), client.get("/nowhere")):
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert "'unsafe-inline'" not in response.headers["content-security-policy"]
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
        headers = {"X-CSRF-Token": csrf}

        def act(body: dict[str, object], **extra: object) -> httpx.Response:
            return client.post(f"/edition/{EDITION}/act", json=body, headers={**headers, **extra})  # type: ignore[arg-type]

        good = {"post": post, "action": "accept", "revision": 0, "section": section}
        unknown_month = client.get("/edition/2022-13")
        assert unknown_month.status_code == 404 and "no edition &#39;2022-13&#39;" in unknown_month.text
        assert client.post("/edition/2022-13/act", json=good, headers=headers).status_code == 404
        refused = {
            "unknown post": (act({**good, "post": 999_999}), 404),
            "section outside the taxonomy": (act({**good, "section": "9. Nowhere"}), 400),
            "unknown action": (act({**good, "action": "delete"}), 400),
            "no CSRF token": (client.post(f"/edition/{EDITION}/act", json=good), 403),
            "a foreign origin": (act(good, Origin="http://evil.example"), 403),
            "not JSON": (client.post(f"/edition/{EDITION}/act", content=b"post=1", headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}), 415),
            "a broken body": (client.post(f"/edition/{EDITION}/act", content=b"{", headers={**headers, "Content-Type": "application/json"}), 400),
            "a huge body": (act({**good, "summary": "x" * 100_000}), 413),
            "a wrong type": (act({**good, "revision": "0"}), 400),
            "another host name": (client.get(f"/edition/{EDITION}", headers={"Host": "evil.example"}), 400),
            "undo of nothing": (client.post(f"/edition/{EDITION}/undo", json={"action": 12345}, headers=headers), 409),
        }
        for what, (response, code) in refused.items():
            assert response.status_code == code, (what, response.status_code, response.text[:200])
        assert desk.decisions() == {}
        assert act(good).status_code == 200
        replayed = act(good)  # the same form again: its revision is stale now
        assert replayed.status_code == 409 and "changed elsewhere" in replayed.json()["error"]
        assert desk.decisions()[post].revision == 1


def _page_and_csrf(client: httpx.Client) -> tuple[str, str]:
    page = client.get(f"/edition/{EDITION}")
    assert page.status_code == 200
    return page.text, page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_low_11_a_deeply_nested_body_or_a_lone_surrogate_is_a_400_not_a_traceback(desk: Desk) -> None:
    with httpx.Client(base_url=desk.base, timeout=10) as client:
        text, csrf = _page_and_csrf(client)
        post = int(text.split('data-post="', 1)[1].split('"', 1)[0])
        section = text.split('data-section="', 1)[1].split('"', 1)[0].replace("&gt;", ">").replace("&amp;", "&")
        headers = {"X-CSRF-Token": csrf, "Content-Type": "application/json"}
        deep = b"[" * 32_000 + b"]" * 32_000  # 64,000 bytes: under the 64 KB limit
        deep_in_a_form = b'{"post": 1, "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
        surrogate = {"post": post, "action": "edit", "revision": 0, "section": section,
                     "summary": "bad \ud800 text"}
        responses = {
            "nested 32,000 deep": client.post(f"/edition/{EDITION}/act", content=deep, headers=headers),
            "nested inside a form": client.post(f"/edition/{EDITION}/undo", content=deep_in_a_form, headers=headers),
            "a lone surrogate in a summary": client.post(f"/edition/{EDITION}/act", content=json.dumps(surrogate).encode(), headers=headers),
            "a lone surrogate in an action": client.post(f"/edition/{EDITION}/act", headers=headers,
                                                         content=json.dumps({**surrogate, "action": "\udfff"}).encode()),
        }
        for what, response in responses.items():
            assert response.status_code == 400, (what, response.status_code, response.text[:300])
            assert "Traceback" not in response.text and response.json()["error"], what
        assert "nests too deeply" in responses["nested 32,000 deep"].json()["error"]
        assert "summary: the text is not valid Unicode" in responses["a lone surrogate in a summary"].json()["error"]
        assert desk.decisions() == {}
        fine = client.post(f"/edition/{EDITION}/act", headers=headers,
                           content=json.dumps({**surrogate, "summary": "good text"}).encode())
        assert fine.status_code == 200 and desk.decisions()[post].summary == "good text"
    assert desk.proc.poll() is None


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_low_12_a_desk_on_ipv6_loopback_reads_its_bracketed_host_header(home: Path) -> None:
    if not _ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1) to listen on")
    desk = Desk(home, "--host", "::1")
    try:
        assert desk.base == f"http://[::1]:{desk.port}"
        with httpx.Client(base_url=desk.base, timeout=10) as client:
            page = client.get(f"/edition/{EDITION}", headers={"Host": f"[::1]:{desk.port}"})
            assert page.status_code == 200 and "data-post=" in page.text
            assert client.get(f"/edition/{EDITION}", headers={"Host": "[::1]"}).status_code == 200
            for foreign in ("evil.example", f"[::2]:{desk.port}", f"[::1]x:{desk.port}", f"::1:{desk.port}"):
                assert client.get(f"/edition/{EDITION}", headers={"Host": foreign}).status_code == 400, foreign
            csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
            undo = client.post(f"/edition/{EDITION}/undo", json={"action": 12345},
                               headers={"X-CSRF-Token": csrf, "Origin": desk.base})
            assert undo.status_code == 409  # past the host and origin checks, to the desk's own answer
    finally:
        assert desk.stop() == 0


def test_a_desk_on_another_address_needs_its_token(home: Path) -> None:
    desk = Desk(home, "--host", "127.0.0.2")
    try:
        assert "?token=" in desk.url
        with httpx.Client(timeout=10) as client:
            assert client.get(desk.base.replace("?", "") + f"/edition/{EDITION}").status_code == 401
            opened = client.get(desk.url, follow_redirects=True)
            assert opened.status_code == 200 and "data-post=" in opened.text and "token=" not in str(opened.url)
            csrf = opened.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        with httpx.Client(timeout=10) as stranger:  # the CSRF token alone is not enough
            response = stranger.post(desk.base + f"/edition/{EDITION}/undo", json={"action": 1}, headers={"X-CSRF-Token": csrf})
            assert response.status_code == 401
    finally:
        assert desk.stop() == 0


def test_low_13_the_401_page_gives_an_unauthenticated_visitor_nothing_of_the_desk(home: Path) -> None:
    desk = Desk(home, "--host", "127.0.0.2")
    try:
        with httpx.Client(timeout=10) as client:
            opened = client.get(desk.url, follow_redirects=True)
            csrf = opened.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        with httpx.Client(base_url=desk.base, timeout=10) as stranger:
            for response in (stranger.get(f"/edition/{EDITION}"), stranger.get("/"), stranger.get("/nowhere"),
                             stranger.get(f"/edition/{EDITION}?token=wrong"),
                             stranger.post(f"/edition/{EDITION}/undo", json={"action": 1}, headers={"X-CSRF-Token": csrf}),
                             stranger.get("/retrain")):
                assert response.status_code == 401, (response.request.url, response.status_code)
                body = response.text
                assert "needs its token" in body, body
                assert csrf not in body and "csrf" not in body.lower(), body
                assert all(mark not in body for mark in ("data-post", "data-section", "desk.css", "desk.js", "href=")), body
    finally:
        assert desk.stop() == 0


def test_the_daemons_draft_refresh_keeps_the_desks_decisions(desk: Desk) -> None:
    from aggregator.config import load_config
    from aggregator.runtime import Runtime

    with httpx.Client(base_url=desk.base, timeout=10) as client:
        page = client.get(f"/edition/{EDITION}").text
        csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        posts = [int(p.split('"', 1)[0]) for p in page.split('data-post="')[1:]]
        section = page.split('data-section="', 1)[1].split('"', 1)[0].replace("&gt;", ">").replace("&amp;", "&")
        for post, action in zip(posts[:2], ("accept", "reject")):
            response = client.post(f"/edition/{EDITION}/act", headers={"X-CSRF-Token": csrf},
                                   json={"post": post, "action": action, "revision": 0, "section": section})
            assert response.status_code == 200, response.text
    before = desk.decisions()
    clock = lambda: datetime(2022, 12, 28, 9, 0, tzinfo=timezone.utc)  # noqa: E731
    with Runtime(load_config(desk.home / "feeds.yaml"), clock=clock) as rt:
        messages = rt.refresh_drafts()
    assert any("written" in m for m in messages), messages
    assert desk.decisions() == before
    draft = (desk.home / "drafts" / f"{EDITION}.md").read_text(encoding="utf-8")
    urls = {p: row_url(page, p) for p in posts[:2]}
    listed = {e.url for e in read_digest(draft).entries}
    assert urls[posts[0]] in listed and urls[posts[1]] not in listed


def row_url(page: str, post: int) -> str:
    chunk = page.split(f'id="post-{post}"', 1)[1]
    return chunk.split('href="', 1)[1].split('"', 1)[0]


def test_the_desk_stops_cleanly_on_sigterm(home: Path) -> None:
    desk = Desk(home)
    assert httpx.get(desk.url, timeout=10).status_code == 200
    assert desk.stop() == 0
    assert "Traceback" not in (desk.proc.stderr.read() if desk.proc.stderr else "")


def test_filters_narrow_the_rows_and_the_keys_follow_them(browser: WebDriver, desk: Desk) -> None:
    open_desk(browser, desk.url)
    every = browser.find_elements(By.CSS_SELECTOR, ".row")
    korean = [r for r in every if r.get_attribute("data-source") == "하이퍼커넥트"]
    assert 0 < len(korean) < len(every)
    Select(browser.find_element(By.ID, "filter-source")).select_by_visible_text("하이퍼커넥트")
    wait(browser, lambda d: len([r for r in d.find_elements(By.CSS_SELECTOR, ".row") if r.is_displayed()]) == len(korean))
    browser.find_element(By.TAG_NAME, "body").click()
    press(browser, "j")
    assert current(browser) in {int(r.get_attribute("data-post") or 0) for r in korean}
    Select(browser.find_element(By.ID, "filter-source")).select_by_index(0)
    search = browser.find_element(By.ID, "filter-text")
    search.send_keys("Stratego")
    shown = wait(browser, lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, ".row") if r.is_displayed()] or None)
    assert len(shown) == 1 and "Stratego" in shown[0].text
    search.clear()
    search.send_keys("\ue00c")
    under_cut = {r.get_attribute("data-post") for r in browser.find_elements(By.CSS_SELECTOR, ".group[data-key='below'] .row")}
    Select(browser.find_element(By.ID, "filter-state")).select_by_value("below")
    below = {r.get_attribute("data-post") for r in browser.find_elements(By.CSS_SELECTOR, ".row") if r.is_displayed()}
    assert below == under_cut  # nothing is decided in this edition yet: "below" is the rows under the cut ...
    Select(browser.find_element(By.ID, "filter-state")).select_by_value("selected")
    wait(browser, lambda d: {r.get_attribute("data-post") for r in d.find_elements(By.CSS_SELECTOR, ".row")
                             if r.is_displayed()} == {r.get_attribute("data-post") for r in every} - under_cut)  # ... and "selected" the others


def test_open_hands_the_address_to_the_browser(home: Path, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.py"
    script.write_text(f"import sys, pathlib\npathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n", encoding="utf-8")
    desk = Desk(home, "--open", env={"BROWSER": f"{sys.executable} {script} %s"})
    try:
        deadline = time.monotonic() + 30
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert opened.read_text(encoding="utf-8") == desk.url
    finally:
        assert desk.stop() == 0


def test_a_taken_port_is_one_line_naming_it(desk: Desk) -> None:
    result = run_cli(desk.home, "review", "--port", str(desk.port))
    assert result.exit_code == 1
    assert f"error: --host 127.0.0.1 --port {desk.port}: cannot listen there" in result.output
    assert "Traceback" not in result.output


def chosen(driver: WebDriver) -> int:
    return int(driver.find_element(By.ID, "chosen").text)


def test_the_headers_count_follows_the_editors_decisions(browser: WebDriver, desk: Desk) -> None:
    """The header's "N of M candidates selected" changes as rows join or leave the draft, and a reload
    (the server's own count) agrees with it."""
    open_desk(browser, desk.url)
    in_draft = ".group:not([data-key='below']):not([data-key='left-out']) .row"
    start = chosen(browser)
    assert start == len(browser.find_elements(By.CSS_SELECTOR, in_draft))
    under_cut = browser.find_elements(By.CSS_SELECTOR, ".group[data-key='below'] .row")
    post = int((under_cut or browser.find_elements(By.CSS_SELECTOR, in_draft))[0].get_attribute("data-post") or 0)
    if not under_cut:  # the model selected every row: leave one out first, and count from there
        tap(browser, f"#post-{post} button[data-do='reject']")
        wait(browser, lambda d: state_of(d, post) == "rejected")
        assert chosen(browser) == start - 1
        start -= 1
    tap(browser, f"#post-{post} button[data-do='accept']")  # taken into the draft
    wait(browser, lambda d: state_of(d, post) == "accepted")
    assert chosen(browser) == start + 1
    tap(browser, f"#post-{post} button[data-do='reject']")  # and left out again
    wait(browser, lambda d: state_of(d, post) == "rejected")
    assert chosen(browser) == start
    tap(browser, f"#post-{post} button[data-do='edit']")  # a summary puts it back in
    area = wait(browser, lambda d: d.find_element(By.ID, "edit-summary") if d.find_element(By.ID, "edit-dialog").get_attribute("open") is not None else None)
    area.send_keys("Back in.")
    browser.find_element(By.ID, "edit-ok").click()
    wait(browser, lambda d: state_of(d, post) == "accepted")
    assert chosen(browser) == start + 1
    browser.refresh()
    wait(browser, lambda d: d.find_element(By.ID, "desk").get_attribute("data-ready") == "1")
    assert chosen(browser) == start + 1


def test_before_any_training_the_header_says_there_is_no_model_yet(browser: WebDriver, home: Path) -> None:
    shutil.rmtree(home / "models")
    untrained = Desk(home)
    try:
        open_desk(browser, untrained.url)
        note = browser.find_element(By.ID, "note").text
        rows = len(browser.find_elements(By.CSS_SELECTOR, ".row"))
        assert note == f"{rows} candidates; no model yet: retrain once the editor has decided on some"
        assert not browser.find_elements(By.ID, "chosen")
    finally:
        assert untrained.stop() == 0
