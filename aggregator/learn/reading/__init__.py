"""Reading past digests back as entries: one reader per style (house, footnote, weekly) on a shared Markdown base."""

from __future__ import annotations

from aggregator.learn.reading.house import CUT_HEADING
from aggregator.learn.reading.markdown import entry_summary_text, inline_text, split_title
from aggregator.learn.reading.read import STYLES, detect_style, read_digest

__all__ = ["CUT_HEADING", "STYLES", "detect_style", "entry_summary_text", "inline_text", "read_digest", "split_title"]
