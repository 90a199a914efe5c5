"""The CLI's `draft` and the daemon's refresh save a draft through one function: written, recorded, with a manifest."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import FeedServer, run_cli, trained_on_last_month

from aggregator.config import load_config
from aggregator.digest import draft as drafts
from aggregator.runtime import Runtime


def test_the_cli_draft_and_the_daemons_refresh_both_save_through_save_draft(
        home: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    trained_on_last_month(home, feed_server)  # posts of December 2022 in the SQLite file, a trained model
    saved: list[tuple[str, Path, bool]] = []
    real = drafts.save_draft

    def spy(*args: Any, **kwargs: Any) -> None:
        draft, path = args[3], args[5]
        saved.append((draft.edition, path, kwargs["force"]))
        real(*args, **kwargs)

    monkeypatch.setattr(drafts, "save_draft", spy)
    result = run_cli(home, "draft", "--month", "2022-12", "--max", "3")
    assert result.exit_code == 0, result.output
    daemon_now = datetime(2023, 1, 2, tzinfo=timezone.utc)  # January's draft is the current one
    with Runtime(load_config(home / "feeds.yaml"), clock=lambda: daemon_now) as rt:
        assert [m.split(" written")[0] for m in rt.refresh_drafts()] == [f"draft {home / 'drafts' / '2023-01.md'}"]
    folder = home / "drafts"
    assert saved == [("2022-12", folder / "2022-12.md", False), ("2023-01", folder / "2023-01.md", True)]
    with Runtime(load_config(home / "feeds.yaml")) as rt:
        for edition in ("2022-12", "2023-01"):
            text = (folder / f"{edition}.md").read_text(encoding="utf-8")
            assert rt.store.is_unedited_draft(edition, text)
            manifest = json.loads((folder / f"{edition}.manifest.json").read_text(encoding="utf-8"))
            assert manifest["edition"] == edition and manifest["output"] == str(folder / f"{edition}.md")
        assert rt.store.draft_written_at("2023-01") == daemon_now  # the daemon's clock, in record and manifest
        assert json.loads((folder / "2023-01.manifest.json").read_text(encoding="utf-8"))["selected"] == []
        assert len(json.loads((folder / "2022-12.manifest.json").read_text(encoding="utf-8"))["selected"]) == 3
