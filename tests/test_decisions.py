"""The desk's decisions in the store (on SQLite and PostgreSQL): stored at once with a revision, refused
when the row changed elsewhere, undone in order; and what the learning jobs make of them."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.errors import ConflictError, StaleError
from aggregator.learn.labels import ImportEntry
from aggregator.models import FeedConfig, FetchResult, ParsedPost
from aggregator.store.decisions import Decision
from aggregator.store import Store
from aggregator.learn.labels import leaves
from aggregator.web.desk import Desk, DeskError, arrange
from conftest import FeedServer, run_cli, trained_on_last_month

NOW = datetime(2022, 12, 20, tzinfo=timezone.utc)
EDITION = "2022-12"
NLP = ("1. Research", "1.2. NLP")
OPS = ("2. Business", "2.4. MLOps")


def _two_posts(store: Store) -> list[int]:
    store.migrate()
    store.sync_feeds([FeedConfig("A", "https://a.example/feed")], NOW)
    feed = store.feeds_due(NOW)[0]
    posts = [ParsedPost(f"k{i}", f"https://p.example/{i}", f"Post {i}", "An opening.", NOW) for i in range(2)]
    store.record_fetch(feed, FetchResult("x", 200, body=b""), posts, now=NOW, next_check=NOW, error=None)
    return sorted(c.id for c in store.candidates(datetime(2022, 12, 1, tzinfo=timezone.utc), datetime(2023, 1, 1, tzinfo=timezone.utc)))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'desk.db'}"
    return str(request.getfixturevalue("pg_db"))


def test_a_decision_is_stored_with_a_revision_and_a_stale_one_is_refused(db: str) -> None:
    with Store(db) as store:
        first, _ = _two_posts(store)
        done = store.decide(EDITION, first, Decision(True, NLP), revision=0, action="accept", now=NOW)
        assert done.decision.revision == 1 and store.decisions(EDITION)[first].section == NLP
        with pytest.raises(StaleError):
            store.decide(EDITION, first, Decision(False), revision=0, action="reject", now=NOW)  # a second tab's stale view
        assert store.decisions(EDITION)[first].selected is True
        moved = store.decide(EDITION, first, Decision(True, OPS, "mine"), revision=1, action="move", now=NOW)
        assert moved.decision == Decision(True, OPS, "mine", 2, moved.decision.order)


def test_undo_goes_back_step_by_step_and_never_over_someone_elses_change(db: str) -> None:
    with Store(db) as store:
        first, second = _two_posts(store)
        accept = store.decide(EDITION, first, Decision(True, NLP), revision=0, action="accept", now=NOW)
        edit = store.decide(EDITION, first, Decision(True, NLP, "my words"), revision=1, action="edit", now=NOW)
        with pytest.raises(ConflictError):
            store.undo(EDITION, accept.action_id, now=NOW)  # the edit came after it and stands
        store.undo(EDITION, edit.action_id, now=NOW)
        assert store.decisions(EDITION)[first].summary == ""
        with pytest.raises(ConflictError, match="already undone"):
            store.undo(EDITION, edit.action_id, now=NOW)
        post, result = store.undo(EDITION, accept.action_id, now=NOW)
        assert post == first and result.decision.selected is None and first not in store.decisions(EDITION)
        again = store.decide(EDITION, first, Decision(True, OPS), revision=0, action="accept", now=NOW)
        assert again.decision.revision == 4  # not 1 again: a page that saw the first accept (revision 1) is refused
        with pytest.raises(ConflictError):
            store.decide(EDITION, first, Decision(False), revision=1, action="reject", now=NOW)
        # An import that changes the row after a desk action makes that action impossible to undo.
        reject = store.decide(EDITION, second, Decision(False), revision=0, action="reject", now=NOW)
        entry = ImportEntry("https://p.example/1", "Post 1", "", NOW, NLP, "")
        store.import_digest(edition=EDITION, path="d.md", style="house", title="t", sha256="x", sections=[NLP],
                            covers=[EDITION], entries=[entry], now=NOW)
        assert store.decisions(EDITION)[second].selected is True and store.decisions(EDITION)[second].revision == 2
        with pytest.raises(ConflictError, match="changed after"):
            store.undo(EDITION, reject.action_id, now=NOW)
        with pytest.raises(ConflictError, match="no desk action"):
            store.undo("2023-01", reject.action_id, now=NOW)


def test_a_label_an_import_creates_again_goes_on_from_the_desks_revisions(db: str) -> None:
    """A tab saw the desk's accept (revision 1); another tab undid it (no label left); then an import filed
    the post. The first tab's action must be refused: the import's label does not start again at 1."""
    with Store(db) as store:
        first, _ = _two_posts(store)
        accept = store.decide(EDITION, first, Decision(True, NLP), revision=0, action="accept", now=NOW)
        store.undo(EDITION, accept.action_id, now=NOW)
        assert first not in store.decisions(EDITION)
        entry = ImportEntry("https://p.example/0", "Post 0", "", NOW, OPS, "")
        store.import_digest(edition=EDITION, path="d.md", style="house", title="t", sha256="y", sections=[OPS],
                            covers=[EDITION], entries=[entry], now=NOW)
        filed = store.decisions(EDITION)[first]
        assert filed.section == OPS and filed.revision > accept.decision.revision
        with pytest.raises(StaleError):
            store.decide(EDITION, first, Decision(False), revision=accept.decision.revision, action="reject", now=NOW)
        assert store.decisions(EDITION)[first].section == OPS


def test_desk_decisions_are_labels_that_train_and_eval_read(home: Path, feed_server: FeedServer) -> None:
    trained_on_last_month(home, feed_server)
    config = load_config(home / "feeds.yaml")
    with Store(config.default_db_url()) as store:
        desk = Desk(store, config, config.digest(None), model=None, model_dir=home / "models", clock=lambda: NOW)
        view = desk.view(EDITION)
        rows = [r for g in view.groups for r in g.rows]
        section = " > ".join(view.sections[0])
        for r in rows[:2]:
            desk.act(EDITION, r.id, "accept", revision=0, section=section)
        unranked = " > ".join(rows[2].section)  # no model: the row stands in the draft's one section
        assert rows[2].section == (config.draft.section,)
        desk.act(EDITION, rows[2].id, "accept", revision=0, section=unranked)
        for r in rows[3:5]:
            desk.act(EDITION, r.id, "reject", revision=0)
        with pytest.raises(DeskError, match="not in the taxonomy"):
            desk.act(EDITION, rows[0].id, "move", revision=1, section="9. Nowhere")
        with pytest.raises(DeskError, match="not a candidate"):
            desk.act(EDITION, 10_000, "accept", revision=0, section=section)
        with pytest.raises(DeskError, match="no edition"):
            desk.view("2022-13")
        with pytest.raises(DeskError, match="is monthly"):
            desk.view("2022-W50")
    result = run_cli(home, "eval", "--json")
    assert result.exit_code == 0, result.output
    splits = {name: scores for name, _trained, scores, _rule in json.loads(result.output)["splits"]}
    assert splits[EDITION]["picks"] == 3 and splits[EDITION]["non_picks"] == 2
    assert run_cli(home, "train").exit_code == 0
    meta = json.loads((home / "models" / "meta.json").read_text(encoding="utf-8"))
    assert meta["n_positives"] == 22 + 3 and meta["n_negatives"] >= 2


def test_the_desk_order_keeps_decided_rows_first_in_the_order_they_were_decided() -> None:
    from aggregator.models import Candidate, DraftItem, Prediction

    def item(i: int, priority: float, section: tuple[str, ...], selected: bool) -> DraftItem:
        post = Candidate(i, f"https://p.example/{i}", f"P{i}", "", "S", NOW)
        return DraftItem(post, Prediction(section, 0.9, priority), selected)

    tree = [("1. Research",), NLP, ("2. Business",), OPS]
    assert leaves(tree) == (NLP, OPS)
    items = [item(1, 0.9, NLP, True), item(2, 0.2, NLP, True), item(3, 0.95, NLP, True), item(4, 0.1, OPS, False),
             item(5, 0.05, OPS, False)]
    decisions = {2: Decision(True, NLP, "", 1, order=7), 1: Decision(True, NLP, "", 1, order=9), 5: Decision(False, None, "", 1, order=3)}
    groups = {g.key: [r.id for r in g.rows] for g in arrange(items, decisions, tree)}
    assert groups == {"1. Research > 1.2. NLP": [2, 1, 3], "2. Business > 2.4. MLOps": [], "below": [4], "left-out": [5]}
