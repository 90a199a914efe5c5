"""Adding a post by its URL: `aggregator add` against pages served on 127.0.0.1 (OpenGraph, plain, slow,
huge, redirected to a private address), the private-address rule of page fetches, and reading a page."""

from __future__ import annotations

import ipaddress
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from aggregator.models import Edition
from aggregator.poll.fetch import Fetcher, FetchSettings, address_refusal
from aggregator.poll.page import read_page
from aggregator.store import Store
from aggregator.store.schema import DeskActionRow, LabelRow, PostRow
from conftest import FeedServer, make_trained_home, run_cli

EDITION = "2022-12"
OG_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<title>Scaling diffusion | The Magazine</title>
<meta property="og:title" content="Scaling Diffusion Transformers on a Single GPU">
<meta property="og:description" content="How a latent diffusion model was trained for image generation on one GPU.">
<meta property="og:site_name" content="The Magazine">
<meta property="article:published_time" content="2022-12-14T09:00:00+09:00">
</head><body><nav><p>Home · Archive · About this magazine and its many sections</p></nav>
<article><p>Short.</p><p>Diffusion models learn to reverse a noising process, and this article trains one cheaply.</p></article>
</body></html>"""
PLAIN_PAGE = """<html><head><title>Some Remarks on Large Language Models</title></head><body>
<header><p>A personal site with a long header paragraph that is not the opening</p></header>
<p>Large language models can do many things well, and here are some remarks on what they cannot do yet.</p>
<p>A second paragraph.</p></body></html>"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """December 2022's fixture posts fetched and a model trained on November's digest (copied by each test)."""
    return make_trained_home(tmp_path_factory.mktemp("add-base"))


def allow(home: Path, setting: str | None, *, timeout: int | None = None) -> None:
    """Set fetch.allow_private (and defaults.timeout) in the home's feeds.yaml."""
    text = (home / "feeds.yaml").read_text(encoding="utf-8")
    if setting is not None:
        text += f"fetch:\n  allow_private: {setting}\n"
    if timeout is not None:
        text += f"defaults:\n  timeout: {timeout}\n"
    (home / "feeds.yaml").write_text(text, encoding="utf-8")


@pytest.fixture
def home(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(trained, copy)
    allow(copy, "true")
    return copy


def snapshot(home: Path) -> tuple[int, int, int]:
    """Posts, labels and desk actions stored: what a refused add must leave as it was."""
    with Store(f"sqlite:///{home / 'aggregator.db'}") as store, store.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) or 0 for t in (PostRow, LabelRow, DeskActionRow))  # type: ignore[return-value]


def stored(home: Path, url: str) -> tuple[PostRow, LabelRow]:
    with Store(f"sqlite:///{home / 'aggregator.db'}") as store, store.session() as s:
        post = s.scalars(select(PostRow).where(PostRow.url == url)).one()
        label = s.scalars(select(LabelRow).where(LabelRow.post_id == post.id)).one()
        s.expunge_all()
        return post, label


def test_an_opengraph_page_becomes_a_pick_under_the_models_section_and_train_learns_it(home: Path, feed_server: FeedServer) -> None:
    url = feed_server.serve("/essay", OG_PAGE, content_type="text/html; charset=utf-8")
    before = snapshot(home)
    result = run_cli(home, "add", url, "--month", EDITION)
    assert result.exit_code == 0, result.output
    post, label = stored(home, url)
    assert (post.title, post.source, post.feed_id) == ("Scaling Diffusion Transformers on a Single GPU", "The Magazine", None)
    assert post.summary == "How a latent diffusion model was trained for image generation on one GPU."
    assert post.published_at == datetime(2022, 12, 14, 0, 0, tzinfo=timezone.utc)
    assert label.edition == EDITION and label.selected and label.editor_summary == ""
    section = " > ".join(json.loads(label.section))
    assert f"{EDITION}: Scaling Diffusion Transformers on a Single GPU ({url}) stored and picked under {section}" in result.output
    assert snapshot(home) == (before[0] + 1, before[1] + 1, before[2] + 1)  # one post, one label, one desk action
    assert len(feed_server.hits_for("/essay")) == 1  # fetched once
    hit = feed_server.hits_for("/essay")[0]
    assert hit.headers["user-agent"].startswith("aggregator/") and "text/html" in hit.headers["accept"]
    # train reads it as a label like any accept, and learns from one pick more
    from aggregator.learn.jobs import aligned_labels

    with Store(f"sqlite:///{home / 'aggregator.db'}") as store:
        picks = {lab.candidate.url: lab.section for edition, lab in aligned_labels(store) if lab.selected and edition == EDITION}
    assert picks == {url: tuple(json.loads(label.section))}
    positives = json.loads((home / "models" / "meta.json").read_text(encoding="utf-8"))["n_positives"]
    trained = run_cli(home, "train")
    assert trained.exit_code == 0, trained.output
    assert json.loads((home / "models" / "meta.json").read_text(encoding="utf-8"))["n_positives"] == positives + 1


def test_a_plain_page_reads_its_title_and_first_paragraph_and_the_host_is_its_source(home: Path, feed_server: FeedServer) -> None:
    url = feed_server.serve("/remarks", PLAIN_PAGE, content_type="text/html")
    result = run_cli(home, "add", url, "--month", EDITION, "--section", "1.2. NLP", "--summary", "My own line on it.")
    assert result.exit_code == 0, result.output
    post, label = stored(home, url)
    assert (post.title, post.source) == ("Some Remarks on Large Language Models", "127.0.0.1")
    assert post.summary.startswith("Large language models can do many things well")
    assert label.section == '["1. Research", "1.2. NLP"]' and label.editor_summary == "My own line on it."


def test_edited_title_and_summary_replace_what_the_page_says(home: Path, feed_server: FeedServer) -> None:
    url = feed_server.serve("/essay", OG_PAGE, content_type="text/html")
    result = run_cli(home, "add", url, "--month", EDITION, "--title", "My title", "--section", "1.1. CV")
    assert result.exit_code == 0, result.output
    post, label = stored(home, url)
    assert post.title == "My title" and label.editor_summary == ""  # no summary given: the page's own text is the post's


def test_a_url_already_stored_is_not_fetched_or_stored_again_it_becomes_a_pick(home: Path, feed_server: FeedServer) -> None:
    with Store(f"sqlite:///{home / 'aggregator.db'}") as store:
        picked = set(store.picked_urls())
        known = [c for c in store.candidates(*Edition(EDITION).bounds()) if c.url not in picked][0]
    before = snapshot(home)
    result = run_cli(home, "add", known.url + "?utm_source=x", "--month", EDITION)  # the canonical URL is the same
    assert result.exit_code == 0, result.output
    assert "already stored; picked" in result.output
    assert snapshot(home)[0] == before[0]
    assert feed_server.hits == []
    _, label = stored(home, known.url)
    assert label.selected and label.edition == EDITION


def test_a_page_that_fails_is_one_line_and_can_be_added_by_hand(home: Path, feed_server: FeedServer) -> None:
    url = feed_server.url("/missing")
    before = snapshot(home)
    result = run_cli(home, "add", url, "--month", EDITION)
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {url}: HTTP 404 Not Found; give --title to add it by hand"
    assert snapshot(home) == before
    by_hand = run_cli(home, "add", url, "--month", EDITION, "--title", "A paper's repository", "--section", "1.1. CV")
    assert by_hand.exit_code == 0, by_hand.output
    assert "added by hand" in by_hand.output
    post, label = stored(home, url)
    assert (post.title, post.summary, post.source) == ("A paper's repository", "", "127.0.0.1") and label.selected


def test_a_page_that_never_answers_ends_at_the_deadline_with_one_line(home: Path, raw_server) -> None:  # type: ignore[no-untyped-def]
    allow(home, None, timeout=1)
    server = raw_server("silent")
    before = snapshot(home)
    result = run_cli(home, "add", server.url, "--month", EDITION)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "took longer than 1 s in total" in result.output or "timed out" in result.output
    assert snapshot(home) == before


def test_a_ten_megabyte_page_is_refused_at_the_size_cap(home: Path, feed_server: FeedServer) -> None:
    url = feed_server.serve("/huge", "<title>Huge</title>" + "<p>" + "x" * (10 * 1024 * 1024) + "</p>", content_type="text/html")
    before = snapshot(home)
    result = run_cli(home, "add", url, "--month", EDITION)
    # (the test's server may print its own broken pipe on stderr as the fetch hangs up on it: not the command's)
    said = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(said) == 1, result.output
    assert said[0] == f"error: {url}: body of 10485786 bytes is over the 5242880-byte limit; give --title to add it by hand"
    assert snapshot(home) == before


def test_a_page_on_loopback_is_refused_without_the_allowance(home: Path, feed_server: FeedServer) -> None:
    config = (home / "feeds.yaml").read_text(encoding="utf-8").replace("fetch:\n  allow_private: true\n", "")
    (home / "feeds.yaml").write_text(config, encoding="utf-8")
    url = feed_server.serve("/essay", OG_PAGE, content_type="text/html")
    before = snapshot(home)
    result = run_cli(home, "add", url, "--month", EDITION)
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: {url}: 127.0.0.1 is a loopback address: refused (fetch.allow_private in "
                                     "feeds.yaml allows none); give --title to add it by hand")
    assert feed_server.hits == [] and snapshot(home) == before  # refused before anything was sent


def test_a_redirect_to_a_private_address_is_refused_when_only_loopback_is_allowed(home: Path, feed_server: FeedServer) -> None:
    config = (home / "feeds.yaml").read_text(encoding="utf-8").replace("allow_private: true", "allow_private: [127.0.0.1]")
    (home / "feeds.yaml").write_text(config, encoding="utf-8")
    url = feed_server.serve("/moved", "", status=302, headers={"Location": "http://10.20.30.40/admin"})
    before = snapshot(home)
    result = run_cli(home, "add", url, "--month", EDITION)
    assert result.exit_code == 1
    assert "10.20.30.40 is a private address: refused (fetch.allow_private in feeds.yaml allows only 127.0.0.1)" in result.output
    assert len(feed_server.hits_for("/moved")) == 1 and snapshot(home) == before


def test_a_section_that_is_not_the_digests_and_a_bad_url_change_nothing(home: Path, feed_server: FeedServer) -> None:
    url = feed_server.serve("/essay", OG_PAGE, content_type="text/html")
    before = snapshot(home)
    wrong = run_cli(home, "add", url, "--month", EDITION, "--section", "9. Nowhere")
    assert wrong.exit_code == 1 and wrong.output.startswith("error: section '9. Nowhere' is not one of the digest's: 1. Research > 1.1. CV")
    bad = run_cli(home, "add", "ftp://example.org/x", "--month", EDITION)
    assert bad.exit_code == 1 and bad.output.strip() == "error: 'ftp://example.org/x' is not an http(s) URL"
    assert snapshot(home) == before


def test_without_a_model_a_section_must_be_given(home: Path, feed_server: FeedServer) -> None:
    shutil.rmtree(home / "models")
    url = feed_server.serve("/essay", OG_PAGE, content_type="text/html")
    before = snapshot(home)
    result = run_cli(home, "add", url, "--month", EDITION)
    assert result.exit_code == 1 and "error: no model yet to choose a section: give one (--section)" in result.output
    assert snapshot(home) == before
    assert run_cli(home, "add", url, "--month", EDITION, "--section", "1.1. CV").exit_code == 0


def test_a_pick_of_another_edition_is_not_picked_twice(home: Path, feed_server: FeedServer) -> None:
    url = feed_server.serve("/essay", OG_PAGE, content_type="text/html")
    assert run_cli(home, "add", url, "--month", EDITION).exit_code == 0
    again = run_cli(home, "add", url, "--month", "2023-01")
    assert again.exit_code == 1 and f"error: {url} is already a pick of {EDITION}: a post is picked once" in again.output


@pytest.mark.parametrize(("address", "allowed", "refused"), [
    ("127.0.0.1", False, "loopback"), ("::1", False, "loopback"), ("::ffff:127.0.0.1", False, "loopback"),
    ("10.1.2.3", False, "private"), ("192.168.0.1", False, "private"), ("100.64.0.1", False, "private"),
    ("169.254.169.254", False, "link-local"), ("fe80::1", False, "link-local"), ("fd00::1", False, "private"),
    ("0.0.0.0", False, "private"), ("93.184.216.34", False, None), ("2606:4700::1", False, None),
    ("127.0.0.1", True, None), ("127.0.0.1", ("127.0.0.0/8",), None), ("10.1.2.3", ("127.0.0.1",), "private"),
])
def test_which_addresses_a_page_fetch_refuses(address: str, allowed: bool | tuple[str, ...], refused: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address), allowed) == refused


def test_the_rule_holds_for_page_fetches_only_and_a_name_is_checked_as_resolved(feed_server: FeedServer) -> None:
    url = feed_server.serve("/page", PLAIN_PAGE, content_type="text/html")
    now = datetime(2022, 12, 20, tzinfo=timezone.utc)
    with Fetcher(FetchSettings(allow_private=False)) as fetcher:
        by_name = fetcher.fetch_page(url.replace("127.0.0.1", "localhost"), now)
        assert by_name.error is not None and "localhost resolves to 127.0.0.1, a loopback address: refused" in by_name.error
    with Fetcher(FetchSettings(allow_private=("127.0.0.1",))) as fetcher:
        assert fetcher.fetch_page(url, now).status == 200
    assert len(feed_server.hits_for("/page")) == 1


def test_reading_a_page_takes_opengraph_first_then_the_title_and_the_first_paragraph() -> None:
    og = read_page(OG_PAGE.encode(), "text/html")
    assert og.title == "Scaling Diffusion Transformers on a Single GPU" and og.site_name == "The Magazine"
    assert og.summary == og.description and og.opening.startswith("Diffusion models learn")  # not the nav, not "Short."
    plain = read_page(PLAIN_PAGE.encode(), None)
    assert plain.title == "Some Remarks on Large Language Models" and plain.description == ""
    assert plain.summary.startswith("Large language models can do many things")
    korean = read_page('<meta charset="euc-kr"><title>모델 서빙 비용 줄이기</title>'.encode("cp949"), "text/html")
    assert korean.title == "모델 서빙 비용 줄이기"
    hostile = read_page(b"<title>\x00<script>alert(1)</script>\xff</title><meta property='og:title' content=''>", None)
    assert "\x00" not in hostile.title


def test_a_hostile_page_is_stored_as_capped_plain_text(home: Path, feed_server: FeedServer) -> None:
    hostile = ('<title>x</title><meta property="og:title" content="&lt;img src=x onerror=alert(1)&gt;\u202eevil ' + "A" * 5000 + '">'
               '<meta property="og:site_name" content="\x07Site\u200b"><p>' + "<b>bold</b> words " * 300 + "</p>")
    url = feed_server.serve("/hostile", hostile, content_type="text/html")
    result = run_cli(home, "add", url, "--month", EDITION, "--section", "1.1. CV")
    assert result.exit_code == 0, result.output
    post, _ = stored(home, url)
    assert post.title.startswith("<img src=x onerror=alert(1)>") and len(post.title) == 500 and post.title.endswith("…")
    assert post.source == "Site" and "<b>" not in post.summary and len(post.summary) <= 2000
