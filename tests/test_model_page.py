"""The model page: /model in the desk (driven in Chromium) and `eval --html FILE`, its numbers those of
`eval --json` on the same database, its charts escaped, its "add this feed" tested against a site on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import FEEDS, FeedServer, run_cli, serving
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from aggregator.config import load_config
from aggregator.errors import AggregatorError
from aggregator.store import Store
from aggregator.web import charts
from aggregator.web.desk import Desk as DeskJobs
from aggregator.web.model_page import ModelPages
from test_desk import Desk, browser, wait  # noqa: F401 (browser: the desk tests' Chromium fixture)

EDITION = "2022-12"
SITE_PAGE = b'<html><head><link rel="alternate" type="application/rss+xml" href="/lab/feed.xml"></head></html>'
NOVEMBER = """# Summary of Important AI & ML Blog Posts

## 1. Research

### 1.1. CV
* [Image Models at Scale (Nov 2022, Google)](https://ai.googleblog.com/2022/11/image-models-at-scale.html)
* [Self-Supervised Vision Transformers (Nov 2022, DeepMind)](https://www.deepmind.com/blog/self-supervised-vision-transformers)

### 1.2. NLP
* [Language Models That Reason (Nov 2022, Google)](https://ai.googleblog.com/2022/11/language-models-that-reason.html)
* [A Korean Chatbot's Second Generation (Nov 2022, 스캐터랩)](https://tech.scatterlab.co.kr/luda-gen-0/)
* [Notes From a Lab Without a Feed (Nov 2022, Lab)]({site}lab/notes-1)

## 2. Business Cases and Implementations

### 2.4. Training, Inference and MLOps
* [Serving Models on Inferentia (Nov 2022, 하이퍼커넥트)](https://hyperconnect.github.io/2022/11/01/serving-on-inferentia.html)
* [Data Pipelines for Recommendations (Nov 2022, Netflix)](https://netflixtechblog.com/data-pipelines-for-recommendations-123)
"""


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    """The fixture feeds, and a site with no feed in feeds.yaml whose home page advertises one, on 127.0.0.1
    (the site under the name localhost, so that it is a host no feed covers)."""
    with serving() as running:
        yield running


def make_decided_home(home: Path, server: FeedServer) -> Path:
    """December 2022's fixture posts fetched from `server`; November's picks imported (every one on a host
    the feeds cover, but one on the feedless site `server` also serves); three of December's posts accepted
    on the desk and three rejected. Every uncovered site is on this machine, so looking for feeds sends
    nothing elsewhere."""
    rdf = server.serve("/ml.xml", FEEDS / "ml.rdf.xml", content_type="application/rdf+xml")
    kr = server.serve("/kr.xml", FEEDS / "kr.euckr.rss.xml", content_type="application/rss+xml")
    site = server.serve("/", SITE_PAGE, content_type="text/html").replace("127.0.0.1", "localhost")
    (home / "feeds.yaml").write_text(f"feeds:\n  - name: ML\n    url: {rdf}\n    source: Google\n"
                                     f"  - name: KR\n    url: {kr}\n    source: 하이퍼커넥트\n", encoding="utf-8")
    assert run_cli(home, "-q", "fetch").exit_code == 0
    (home / "nov.md").write_text(NOVEMBER.format(site=site), encoding="utf-8")
    assert run_cli(home, "import-digest", str(home / "nov.md"), "--month", "2022-11").exit_code == 0
    assert run_cli(home, "train").exit_code == 0
    config = load_config(home / "feeds.yaml")
    with Store(config.default_db_url()) as store:
        desk = DeskJobs(store, config, config.digest(None), model=None, model_dir=home / "models",
                        clock=lambda: datetime.now(timezone.utc))
        view = desk.view(EDITION)
        rows = [r for g in view.groups for r in g.rows]
        for r, section in zip(rows[:3], view.sections):
            desk.act(EDITION, r.id, "accept", revision=0, section=" > ".join(section))
        for r in rows[3:6]:
            desk.act(EDITION, r.id, "reject", revision=0)
    return home


@pytest.fixture(scope="module")
def decided(server: FeedServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with decisions of two editions (make_decided_home) that each test copies."""
    return make_decided_home(tmp_path_factory.mktemp("model-page"), server)


@pytest.fixture
def home(decided: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(decided, copy)
    return copy


def eval_json(home: Path) -> dict[str, Any]:
    result = run_cli(home, "eval", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def value(text: str | None) -> float | None:
    return None if not text else float(text)


def same(a: float | None, b: float | None) -> bool:
    return a is None and b is None or a is not None and b is not None and abs(a - b) < 1e-9


def replay_rows(cells: list[tuple[str, list[float | None]]], report: dict[str, Any]) -> None:
    """The replay table's rows (edition, every method's AP and F1 in turn) are eval --json's per-edition figures."""
    expected = [(s["name"], [v for m in s["methods"] for v in (m["average_precision"], m["cut_f1"])])
                for s in report["per_split"]]
    assert [name for name, _ in cells] == [name for name, _ in expected] and cells
    for (_, got), (_, want) in zip(cells, expected):
        assert len(got) == len(want) and all(same(g, w) for g, w in zip(got, want)), (got, want)


def open_model(driver: WebDriver, base: str) -> None:
    driver.get(base + "/model")  # the first visit starts the computation; its page reloads itself until done
    wait(driver, lambda d: d.find_elements(By.ID, "model"), timeout=120)


def test_the_model_page_renders_its_charts_with_the_numbers_of_eval_json(browser: WebDriver, home: Path) -> None:  # noqa: F811
    desk = Desk(home)
    try:
        browser.get(desk.url)  # the edition's desk leads to the model page
        wait(browser, lambda d: d.find_elements(By.ID, "model-link"))
        browser.find_element(By.ID, "model-link").click()
        wait(browser, lambda d: d.find_elements(By.ID, "model"), timeout=120)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#replay svg.line-chart")) == 2
        assert browser.find_elements(By.CSS_SELECTOR, "#calibration svg.calibration-chart circle")
        assert browser.find_elements(By.CSS_SELECTOR, "#confusion svg.confusion-chart rect")
        assert browser.find_elements(By.CSS_SELECTOR, "#sources svg.bar-chart rect")
        table = [(tr.get_attribute("data-edition") or "",
                  [value(td.get_attribute("data-value")) for td in tr.find_elements(By.CSS_SELECTOR, "td[data-value]")])
                 for tr in browser.find_elements(By.CSS_SELECTOR, "#replay-table tbody tr")]
        pooled = {tr.get_attribute("data-method"): [value(td.get_attribute("data-value"))
                                                    for td in tr.find_elements(By.CSS_SELECTOR, "td[data-value]")]
                  for tr in browser.find_elements(By.CSS_SELECTOR, "#pooled-table tbody tr")}
        calibration = [[td.text for td in tr.find_elements(By.CSS_SELECTOR, "th, td")]
                       for tr in browser.find_elements(By.CSS_SELECTOR, "#calibration-table tbody tr")]
        sources = {tr.find_element(By.TAG_NAME, "th").text: [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                   for tr in browser.find_elements(By.CSS_SELECTOR, "#sources-table tbody tr")}
        uncovered = [tr.get_attribute("data-site") for tr in browser.find_elements(By.CSS_SELECTOR, "#uncovered-table tbody tr")]
    finally:
        assert desk.stop() == 0
    report = eval_json(home)
    replay_rows(table, report)
    for m in report["methods"]:
        want = [m[k] for k in ("leaf_accuracy", "top_accuracy", "leaf_macro_f1", "average_precision", "cut_precision",
                               "cut_recall", "cut_f1")]
        assert all(same(g, w) for g, w in zip(pooled[m["method"]], want)) and len(pooled[m["method"]]) == len(want)
    assert calibration == [[name, str(n), f"{p:.2f}", f"{share:.2f}"] for name, n, p, share in report["calibration"]]
    # each feed delivered three posts; the three December posts accepted on the desk are the only picks of a feed
    assert {feed: row[0] for feed, row in sources.items()} == {"ML": "3", "KR": "3"}
    assert sum(int(row[1]) for row in sources.values()) == 3
    assert all(row[2] == f"{int(row[1]) / 3:.2f}" for row in sources.values())
    assert uncovered == ["localhost"]


def test_add_this_feed_adds_the_feed_its_page_advertises_to_feeds_yaml(browser: WebDriver, home: Path,  # noqa: F811
                                                                     server: FeedServer) -> None:
    desk = Desk(home)
    try:
        open_model(browser, desk.base)
        assert not browser.find_elements(By.CSS_SELECTOR, "button.add-feed")  # only once feeds were looked for
        browser.find_element(By.ID, "discover").click()
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "button.add-feed[data-site='localhost']"), timeout=60)
        feed = browser.find_element(By.CSS_SELECTOR, "tr[data-site='localhost'] .found-feed").text
        assert re.fullmatch(r"http://localhost:\d+/lab/feed\.xml", feed)
        browser.find_element(By.CSS_SELECTOR, "button.add-feed[data-site='localhost']").click()
        wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "tr[data-site='localhost']").get_attribute("data-added") == "1")
        assert "added localhost" in browser.find_element(By.ID, "status").text
        assert not browser.find_element(By.CSS_SELECTOR, "button.add-feed[data-site='localhost']").is_enabled()
    finally:
        assert desk.stop() == 0
    config = load_config(home / "feeds.yaml")
    assert [(f.name, f.url) for f in config.feeds][-1] == ("localhost", feed)
    assert [f.name for f in config.feeds] == ["ML", "KR", "localhost"]
    assert any(h.path == "/" for h in server.hits)  # the site's page was fetched, on 127.0.0.1


def test_only_a_feed_discovery_found_is_added_and_only_once(home: Path) -> None:
    config = load_config(home / "feeds.yaml")
    with Store(config.default_db_url()) as store:
        jobs = DeskJobs(store, config, config.digest(None), model=None, model_dir=home / "models",
                        clock=lambda: datetime.now(timezone.utc), config_path=home / "feeds.yaml")
        with pytest.raises(AggregatorError, match="no feed found for 'localhost': look for the feeds again"):
            jobs.add_discovered_feed("localhost")  # not looked for yet
        assert jobs.discover_feeds() == 1
        with pytest.raises(AggregatorError, match="no feed found for 'evil.example'"):
            jobs.add_discovered_feed("evil.example")
        added = jobs.add_discovered_feed("localhost")
        with pytest.raises(AggregatorError, match="already has a feed named 'localhost'"):
            jobs.add_discovered_feed("localhost")
    assert [(f.name, f.url) for f in load_config(home / "feeds.yaml").feeds][-1] == (added.name, added.url)


def test_eval_html_writes_a_self_contained_page_with_the_numbers_of_eval_json(home: Path) -> None:
    page = home / "model.html"
    result = run_cli(home, "eval", "--html", str(page))
    assert result.exit_code == 0 and re.fullmatch(rf"wrote {re.escape(str(page))}: the model page, computed in [\d.]+ s",
                                                  result.output.splitlines()[0])  # then eval's tables, as ever
    text = page.read_text(encoding="utf-8")
    assert text.count("<svg") == 5 and "<style>" in text
    assert not re.search(r"""(?:src|href|action|xlink:href)\s*=\s*["']?(?:https?:)?//""", text, re.I)
    assert not re.search(r"url\(|@import|<script|<link|https?://", text, re.I), "the file names nothing outside itself"
    report = eval_json(home)
    rows = re.findall(r'<tr data-edition="([^"]+)">(.*?)</tr>', text, re.S)
    replay_rows([(name, [value(v) for v in re.findall(r'data-value="([^"]*)"', cells)]) for name, cells in rows], report)
    both = run_cli(home, "eval", "--html", str(page), "--json")  # JSON on standard output, the note on standard error
    assert json.loads(both.stdout) == report
    refused = run_cli(home, "eval", "--loo", "--html", str(home / "other.html"))
    assert refused.exit_code == 2 and "the model page shows the replay" in refused.output
    assert not (home / "other.html").exists()


def test_the_desk_computes_the_page_once_per_state_of_the_decisions(home: Path) -> None:
    config = load_config(home / "feeds.yaml")
    with Store(config.default_db_url()) as store:
        jobs = DeskJobs(store, config, config.digest(None), model=None, model_dir=home / "models",
                        clock=lambda: datetime.now(timezone.utc))
        pages: ModelPages = jobs.model_pages

        def settled() -> Any:
            for _ in range(1200):
                view = jobs.model_view()
                if not view.computing and view.page is not None:
                    return view.page
                time.sleep(0.05)
            raise AssertionError("the model page was never computed")

        first = settled()
        assert jobs.model_view().page is first and not jobs.model_view().computing  # the same state: not again
        view = jobs.view(EDITION)
        row = next(r for g in view.groups for r in g.rows if r.state == "accepted")
        jobs.act(EDITION, row.id, "reject", revision=row.revision)
        assert jobs.model_view().computing  # a new decision: computed again
        second = settled()
        assert second is not first and second.report.per_split[0].methods[0].non_picks == \
            first.report.per_split[0].methods[0].non_picks + 1
        assert pages.state is not None


def test_charts_escape_every_value_and_are_well_formed() -> None:
    hostile = '<script>alert("x")</script>&'
    svgs = [charts.line_chart(hostile, [hostile, "b"], [(hostile, [0.5, None]), ("m", [0.1, 0.9])]),
            charts.calibration_chart([(hostile, 3, 0.4, 0.5)]),
            charts.confusion_chart([hostile, "b"], [(hostile, "b", 2), ("b", "b", 1)]),
            charts.bar_chart(hostile, [(hostile, 0.5, hostile)])]
    for svg in svgs:
        assert "<script" not in svg and hostile not in svg
        root = ET.fromstring(svg)  # well-formed: every value escaped
        assert root.tag == "svg" and root.find("desc") is not None and root.find("title") is not None


def test_feed_text_on_the_model_page_is_only_ever_text() -> None:
    """Feed names, sections and sites come from outside: on the page (desk or file) they are text, never markup."""
    from aggregator.audit import Audit, Idle, Uncovered
    from aggregator.learn.evaluate import Figures, Report, SplitFigures, confusion
    from aggregator.web.model_page import ModelPage, Source, render

    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    figures = Figures("model", 3, 2, 0.5, 1.0, 0.5, 0.7, 0.5, 1.0, 0.67, 4)
    report = Report("month by month", (figures,), ((evil, 5, figures, None),), ((evil, 4, 0.5, 0.25),),
                    per_split=(SplitFigures(evil, 5, (figures,)),),
                    confusion=confusion([((evil, "a"), (evil, "b")), (("x",), (evil, "b"))], [evil]))
    audit = Audit((Uncovered(evil, 2, f"javascript:alert(3)//{evil}", f"https://feed.example/{evil}"),),
                  (Idle(evil, 9),), datetime(2022, 12, 1, tzinfo=timezone.utc))
    page = ModelPage("default", evil, report, (Source(evil, 10, 2),), audit, datetime(2022, 12, 1, tzinfo=timezone.utc), 1.0)
    for html in (render(page, offline=True), render(page, offline=False, csrf="t", discovered=audit.uncovered)):
        assert "<script>alert" not in html and "<img" not in html
        assert 'href="javascript:' not in html  # only an http(s) link is ever a link
        assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5
