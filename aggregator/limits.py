"""The caps on text that comes from outside (feeds, digests, OPML, feeds.yaml): one place, the same everywhere."""

from __future__ import annotations

MAX_URL = 2_048  # characters of a link; a longer one is no link (a post keeps its title, an OPML outline is skipped)
MAX_TITLE = 500  # characters of a post's or an entry's title; longer ones are cut, ending in "…"
MAX_SUMMARY = 2_000  # characters of a post's opening or an editor's summary
MAX_NAME = 200  # characters of a feed's name or source, a digest's title, a section heading
MAX_KEY = 500  # characters of a feed's own id for a post (guid); a longer one is replaced by its SHA-256


def cap(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in "…" when it was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
