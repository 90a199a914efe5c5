"""Round three of hardening: each input that used to break the product, made by the test, now ends in a
result or one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from aggregator.models import Edition, month_bounds

# --- Low 6: edition names ------------------------------------------------------------------------------

SECOND_SPELLINGS = ["２０２２-１２", "2022-12\n", "2022-W４０", "2022-W40\n", "\n2022-12", "2022-12\r\n"]


@pytest.mark.parametrize("text", SECOND_SPELLINGS)
def test_low_6_edition_names_are_ascii_digits_matched_whole(text: str) -> None:
    with pytest.raises(ValueError) as info:
        Edition(text)
    message = str(info.value)
    assert "\n" not in message and repr(text) in message and "is not" in message
    with pytest.raises(ValueError):
        month_bounds(text)
    assert Edition("2022-12") == "2022-12" and Edition("2022-W40") == "2022-W40"


@pytest.mark.parametrize("text", ["２０２２-１２", "2022-12\n"])
def test_low_6_edition_names_are_refused_by_draft_month(home: Path, text: str) -> None:
    result = run_cli(home, "draft", "--month", text)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"Invalid value for --month: {text!r} is not a month like 2022-12" in result.output
    drafts = home / "drafts"
    assert not drafts.exists() or list(drafts.iterdir()) == []
