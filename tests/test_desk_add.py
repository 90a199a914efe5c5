"""The desk's add by URL in Chromium, against pages served on 127.0.0.1 (OpenGraph, plain, one that never
answers, 10 MB, a redirect to a private address), and the desk's frictions: the root leads to the edition
asked for, the opening is the post's own text."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from sqlalchemy import func, select

from aggregator.learn.jobs import aligned_labels
from aggregator.store import Store
from aggregator.store.schema import DeskActionRow, LabelRow, PostRow
from conftest import FeedServer, run_cli
from test_add import OG_PAGE, PLAIN_PAGE
from test_desk import EDITION, Desk, browser, chosen, group_of, open_desk, press, row, state_of, tap, trained, wait  # noqa: F401

ALLOWANCE = "fetch:\n  allow_private: [127.0.0.1]\ndefaults:\n  timeout: 2\n"


@pytest.fixture
def home(trained: Path, tmp_path: Path) -> Path:  # noqa: F811
    """A trained home whose pages may be fetched from 127.0.0.1 only, within 2 s."""
    copy = tmp_path / "home"
    shutil.copytree(trained, copy)
    with (copy / "feeds.yaml").open("a", encoding="utf-8") as out:
        out.write(ALLOWANCE)
    return copy


def snapshot(home: Path) -> tuple[int, int, int]:
    with Store(f"sqlite:///{home / 'aggregator.db'}") as store, store.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) or 0 for t in (PostRow, LabelRow, DeskActionRow))  # type: ignore[return-value]


def dialog_open(driver: WebDriver, name: str) -> bool:
    return driver.find_element(By.ID, name).get_attribute("open") is not None


def fetch_in_form(driver: WebDriver, url: str) -> None:
    """Open the add form with `n`, type the URL and press Enter, as the editor does."""
    if not dialog_open(driver, "add-dialog"):
        press(driver, "n")
        wait(driver, lambda d: dialog_open(d, "add-dialog"))
    field = driver.find_element(By.ID, "add-url")
    field.clear()
    field.send_keys(url + "\ue007")


def reason(driver: WebDriver) -> str:
    return wait(driver, lambda d: (d.find_element(By.ID, "add-reason").text or "").startswith("could not read")
                and d.find_element(By.ID, "add-reason").text, timeout=20)


def settled(driver: WebDriver, read):  # type: ignore[no-untyped-def]
    """What `read` finds on the page, or "" while the page is being replaced by a reload."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return read() if driver.find_element(By.ID, "desk").get_attribute("data-ready") == "1" else ""
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def total(driver: WebDriver) -> int:
    return int(driver.find_element(By.ID, "total").text)


def test_an_opengraph_page_added_in_the_desk_is_a_pick_under_its_section_in_the_export_and_learned(
        browser: WebDriver, home: Path, feed_server: FeedServer) -> None:  # noqa: F811
    url = feed_server.serve("/essay", OG_PAGE, content_type="text/html; charset=utf-8")
    desk = Desk(home)
    try:
        open_desk(browser, desk.url)
        before, counted, rows = snapshot(home), chosen(browser), total(browser)
        fetch_in_form(browser, url)
        title = wait(browser, lambda d: d.find_element(By.ID, "add-title").get_attribute("value"))
        assert title == "Scaling Diffusion Transformers on a Single GPU"
        summary = browser.find_element(By.ID, "add-summary")
        assert summary.get_attribute("value") == "How a latent diffusion model was trained for image generation on one GPU."
        section = Select(browser.find_element(By.ID, "add-section")).first_selected_option.get_attribute("value")
        assert "from The Magazine" in browser.find_element(By.ID, "add-note").text
        summary.clear()
        summary.send_keys("A diffusion transformer trained on one GPU.")
        field = browser.find_element(By.ID, "add-title")
        field.send_keys(" (2022)\ue007")  # the editor corrects the title; Enter adds
        new = wait(browser, lambda d: d.find_elements(By.XPATH, "//li[contains(@class,'row')][.//bdi[text()='Scaling Diffusion Transformers on a Single GPU (2022)']]"), timeout=20)
        wait(browser, lambda d: d.find_element(By.ID, "desk").get_attribute("data-ready") == "1")
        post = int(new[0].get_attribute("data-post") or 0)
        assert state_of(browser, post) == "accepted" and group_of(browser, post) == section
        assert int(browser.find_element(By.CSS_SELECTOR, ".row.current").get_attribute("data-post") or 0) == post
        assert chosen(browser) == counted + 1 and total(browser) == rows + 1  # the header's count
        assert "added: Scaling Diffusion" in browser.find_element(By.ID, "status").text
        assert row(browser, post).find_element(By.CSS_SELECTOR, ".summary-text").text == "A diffusion transformer trained on one GPU."
        assert snapshot(home) == (before[0] + 1, before[1] + 1, before[2] + 1)
        assert len(feed_server.hits_for("/essay")) == 1  # fetched once: the preview, not again on saving

        browser.find_element(By.ID, "export").click()
        wait(browser, lambda d: dialog_open(d, "export-dialog"))
        text = (home / "drafts" / f"{EDITION}.md").read_text(encoding="utf-8")
        heading = f"### {section.split(' > ')[-1]}"
        line = next(li for li in text.splitlines() if "Scaling Diffusion Transformers" in li)
        assert url in line and "(Dec 2022" in line and "A diffusion transformer trained on one GPU." in line
        assert text.index(heading) < text.index(line) and text.find("\n### ", text.index(heading) + 1) > text.index(line)
        press(browser, "\ue00c")
    finally:
        assert desk.stop() == 0
    with Store(f"sqlite:///{home / 'aggregator.db'}") as store:
        learned = {lab.candidate.url: lab.section for edition, lab in aligned_labels(store) if lab.selected and edition == EDITION}
    assert learned[url] == tuple(section.split(" > "))
    assert run_cli(home, "train").exit_code == 0


def test_pages_that_cannot_be_read_end_in_a_reason_and_store_nothing_and_one_is_added_by_hand(
        browser: WebDriver, home: Path, feed_server: FeedServer, raw_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    silent = raw_server("silent").url
    huge = feed_server.serve("/huge", "<title>Huge</title><p>" + "x" * (10 * 1024 * 1024) + "</p>", content_type="text/html")
    port = feed_server.httpd.server_address[1]
    moved = feed_server.serve("/moved", "", status=302, headers={"Location": f"http://127.0.0.2:{port}/essay"})
    plain = feed_server.serve("/remarks", PLAIN_PAGE, content_type="text/html")
    desk = Desk(home)
    try:
        open_desk(browser, desk.url)
        before = snapshot(home)
        expected = {silent: "took longer than 2 s in total (cut off)", huge: "over the 5242880-byte limit",
                    moved: "127.0.0.2 is a loopback address: refused (fetch.allow_private in feeds.yaml allows only 127.0.0.1)"}
        for url, why in expected.items():
            fetch_in_form(browser, url)
            said = reason(browser)
            assert why in said and "\n" not in said, (url, said)
            assert browser.find_element(By.ID, "add-title").get_attribute("value") == ""
            assert snapshot(home) == before, url
            browser.execute_script("arguments[0].textContent = ''", browser.find_element(By.ID, "add-reason"))
        assert not feed_server.hits_for("/essay")  # the redirect was never followed to the refused address

        # Nothing typed in the title: adding is refused with a reason, still nothing stored.
        tap(browser, "#add-ok")
        wait(browser, lambda d: "a title is required" in d.find_element(By.ID, "add-reason").text)
        assert snapshot(home) == before
        # By hand: the editor types the title of the page that moved, and it is a pick.
        field = browser.find_element(By.ID, "add-title")
        field.send_keys("A repository announced with a paper\ue007")
        new = wait(browser, lambda d: d.find_elements(By.XPATH, "//li[contains(@class,'row')][.//bdi[text()='A repository announced with a paper']]"), timeout=20)
        wait(browser, lambda d: d.find_element(By.ID, "desk").get_attribute("data-ready") == "1")
        assert state_of(browser, int(new[0].get_attribute("data-post") or 0)) == "accepted"
        assert snapshot(home) == (before[0] + 1, before[1] + 1, before[2] + 1)

        # A plain page: its <title> and first paragraph; the host is its source.
        fetch_in_form(browser, plain)
        wait(browser, lambda d: d.find_element(By.ID, "add-title").get_attribute("value") == "Some Remarks on Large Language Models")
        assert browser.find_element(By.ID, "add-summary").get_attribute("value").startswith("Large language models can do many things")
        Select(browser.find_element(By.ID, "add-section")).select_by_value("1. Research > 1.2. NLP")
        tap(browser, "#add-ok")
        added = wait(browser, lambda d: d.find_elements(By.XPATH, "//li[contains(@class,'row')][.//bdi[text()='Some Remarks on Large Language Models']]"), timeout=20)
        wait(browser, lambda d: d.find_element(By.ID, "desk").get_attribute("data-ready") == "1")
        post = int(added[0].get_attribute("data-post") or 0)
        assert group_of(browser, post) == "1. Research > 1.2. NLP" and row(browser, post).get_attribute("data-source") == "127.0.0.1"
        press(browser, "u")  # undo takes the add back: the post stays stored, the pick goes
        wait(browser, lambda d: post not in desk.decisions())
    finally:
        assert desk.stop() == 0


def test_the_root_leads_to_the_edition_review_was_asked_for(home: Path) -> None:
    desk = Desk(home, "--month", "2022-11")
    try:
        with httpx.Client(base_url=desk.base, timeout=10) as client:
            root = client.get("/")
            assert root.status_code == 303 and root.headers["location"] == "/edition/2022-11"
            assert "/edition/2022-11" in desk.url
            assert client.get("/no-such-page").text.count('href="/"') == 1  # the error page's way back leads there too
    finally:
        assert desk.stop() == 0


def test_the_opening_is_the_posts_own_text_never_the_editors_summary(browser: WebDriver, home: Path) -> None:  # noqa: F811
    desk = Desk(home, "--month", "2022-11")  # November: the imported digest, posts known only from it
    try:
        open_desk(browser, desk.url)
        line = "한 번의 인코딩 결과를 여러 마스크 버전에 재사용해 사전 학습 속도를 크게 높임"
        data2vec = browser.find_element(By.XPATH, "//li[contains(@class,'row')][.//a[contains(@href,'data2vec')]]")
        assert data2vec.find_element(By.CSS_SELECTOR, ".summary-text").text == line
        opening = data2vec.find_element(By.CSS_SELECTOR, ".opening")
        assert not opening.is_displayed() and opening.get_attribute("textContent").strip() == ""
        assert line not in data2vec.text.replace(data2vec.find_element(By.CSS_SELECTOR, ".summary").text, "")
    finally:
        assert desk.stop() == 0
    desk = Desk(home)  # December: a fetched post the editor writes a line for keeps its own opening
    try:
        open_desk(browser, desk.url)
        first = browser.find_elements(By.CSS_SELECTOR, ".row")[0]
        post = int(first.get_attribute("data-post") or 0)
        own = first.find_element(By.CSS_SELECTOR, ".opening").text
        assert own
        tap(browser, f"#post-{post} button[data-do='edit']")
        area = wait(browser, lambda d: d.find_element(By.ID, "edit-summary") if dialog_open(d, "edit-dialog") else None)
        area.clear()
        area.send_keys("My own words.\ue007")
        wait(browser, lambda d: desk.decisions().get(post) is not None and desk.decisions()[post].summary == "My own words.")
        open_desk(browser, desk.url)
        assert row(browser, post).find_element(By.CSS_SELECTOR, ".opening").text == own
        assert row(browser, post).find_element(By.CSS_SELECTOR, ".summary-text").text == "My own words."
    finally:
        assert desk.stop() == 0


def test_a_stored_url_added_in_the_desk_is_not_fetched_and_becomes_a_pick(browser: WebDriver, home: Path, feed_server: FeedServer) -> None:  # noqa: F811
    desk = Desk(home)
    try:
        open_desk(browser, desk.url)
        below = browser.find_elements(By.CSS_SELECTOR, ".group[data-key='below'] .row, .group .row.undecided")
        target = below[-1]
        post, url = int(target.get_attribute("data-post") or 0), target.find_element(By.CSS_SELECTOR, "a.title").get_attribute("href")
        before = snapshot(home)
        fetch_in_form(browser, url)
        wait(browser, lambda d: "already stored" in d.find_element(By.ID, "add-note").text)
        tap(browser, "#add-ok")
        wait(browser, lambda d: "added: " in settled(d, lambda: d.find_element(By.ID, "status").text), timeout=20)
        assert state_of(browser, post) == "accepted"
        assert snapshot(home)[0] == before[0] and desk.decisions()[post].selected is True
        assert feed_server.hits == []
    finally:
        assert desk.stop() == 0


def test_the_add_routes_refuse_bad_requests_with_one_line_and_store_nothing(home: Path) -> None:
    desk = Desk(home)
    try:
        with httpx.Client(base_url=desk.base, timeout=30) as client:
            page = client.get(f"/edition/{EDITION}").text
            csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
            good = {"X-CSRF-Token": csrf, "Origin": desk.base}
            before = snapshot(home)
            answers = {
                "no CSRF token": (client.post(f"/edition/{EDITION}/page", json={"url": "http://127.0.0.1/"}), 403),
                "not http": (client.post(f"/edition/{EDITION}/page", json={"url": "file:///etc/passwd"}, headers=good), 400),
                "no URL": (client.post(f"/edition/{EDITION}/add", json={"title": "x", "summary": ""}, headers=good), 400),
                "no title": (client.post(f"/edition/{EDITION}/add", json={"url": "https://example.org/a", "title": "",
                                                                          "summary": ""}, headers=good), 400),
                "foreign section": (client.post(f"/edition/{EDITION}/add", headers=good, json={
                    "url": "https://example.org/a", "title": "T", "summary": "", "section": "9. Nowhere"}), 400),
                "another digest's edition": (client.post("/edition/2022-W50/add", headers=good, json={
                    "url": "https://example.org/a", "title": "T", "summary": ""}), 404),
            }
            for what, (response, status) in answers.items():
                assert response.status_code == status, (what, response.text)
                error = response.json()["error"]
                assert error and "\n" not in error and "Traceback" not in error, what
            assert answers["not http"][0].json()["error"] == "'file:///etc/passwd' is not an http(s) URL"
            assert snapshot(home) == before
    finally:
        assert desk.stop() == 0
