"""What a draft or a publish was made from (versions, configuration, feeds, model, posts considered, selection): enough to say why it looked as it did, and to make it again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from aggregator import __version__
from aggregator.config import Config, DigestSettings
from aggregator.errors import DigestError
from aggregator.files import atomic_write
from aggregator.limits import MAX_NAME, MAX_URL
from aggregator.models import DraftItem, Edition, SectionPath
from aggregator.store.feeds import FeedHealth

FORMAT = 1
MAX_BYTES = 16 * 2**20  # a manifest larger than this is refused unread
MAX_DEPTH = 6  # levels of a selected post's section (a digest's taxonomy has two in practice)
MAX_SELECTED = 10_000  # selected posts of one manifest (an edition selects tens)
MAX_EDITION = 16  # characters of an edition ("2023-01", "2023-W05"), before it is parsed


def path_for(output: Path) -> Path:
    """drafts/2023-01.md -> drafts/2023-01.manifest.json."""
    return output.with_name(f"{output.stem}.manifest.json")


def build(config: Config, digest: DigestSettings, edition: Edition, items: Sequence[DraftItem], feeds: Sequence[FeedHealth],
          model_meta: dict[str, Any] | None, *, now: datetime, output: str) -> dict[str, Any]:
    """The manifest of a draft or publish of `edition`, made at `now` (the cut-off of the posts considered)."""
    effective = config.settings_json()
    return {
        "format": FORMAT,
        "aggregator_version": __version__,
        "written_at": now.isoformat(),
        "posts_until": now.isoformat(),
        "output": output,
        "digest": digest.name,
        "edition": edition,
        "config_sha256": hashlib.sha256(effective.encode("utf-8")).hexdigest(),
        "feeds": [{"name": f.name, "url": f.url, "last_success_at": f.last_success_at.isoformat() if f.last_success_at
                   else None} for f in feeds if f.active],
        "model": None if model_meta is None else {
            "sha256": model_meta.get("model_sha256"), "trained_at": model_meta.get("trained_at"),
            "priority_mode": model_meta.get("priority_mode"), "label_counts": model_meta.get("label_counts")},
        "candidates": len(items),
        "selected": [{"url": i.candidate.url, "section": list(i.prediction.section)} for i in items if i.selected],
    }


def write(path: Path, manifest: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def selection(path: Path) -> tuple[str, Edition, dict[str, SectionPath]]:
    """(digest, edition, url -> section) of a manifest file, checked (a manifest is untrusted input)."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise DigestError(f"{path}: a manifest over {MAX_BYTES // 2**20} MiB")
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise DigestError(f"{path}: not a readable manifest ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DigestError(f"{path}: not an aggregator manifest of format {FORMAT}")
    digest, edition, selected = data.get("digest"), data.get("edition"), data.get("selected")
    if not isinstance(digest, str) or not isinstance(edition, str) or not isinstance(selected, list):
        raise DigestError(f"{path}: a manifest needs digest, edition and selected")
    if not digest or len(digest) > MAX_NAME or not digest.isprintable():
        raise DigestError(f"{path}: the manifest's digest is not a digest's name (empty, over {MAX_NAME} characters "
                          "or not printable)")
    if len(edition) > MAX_EDITION:
        raise DigestError(f"{path}: the manifest's edition is over {MAX_EDITION} characters, no edition")
    try:
        recorded = Edition(edition)
    except ValueError as exc:
        raise DigestError(f"{path}: the manifest's edition: {exc}") from None
    if len(selected) > MAX_SELECTED:
        raise DigestError(f"{path}: the manifest selects {len(selected)} posts, over {MAX_SELECTED}")
    chosen: dict[str, SectionPath] = {}
    for n, row in enumerate(selected, 1):
        ok = (isinstance(row, dict) and isinstance(row.get("url"), str) and isinstance(row.get("section"), list)
              and row["section"] and all(isinstance(h, str) for h in row["section"]))
        if not ok:
            raise DigestError(f"{path}: a selected entry needs a url and a section")
        url, section = row["url"], row["section"]
        if not url or len(url) > MAX_URL or any(c.isspace() or not c.isprintable() for c in url):
            raise DigestError(f"{path}: selected post {n} has no link (empty, over {MAX_URL} characters, "
                              "or with spaces or control characters)")
        if len(section) > MAX_DEPTH:
            raise DigestError(f"{path}: selected post {n} has a section {len(section)} levels deep, over {MAX_DEPTH}")
        for heading in section:
            if not heading.strip() or len(heading) > MAX_NAME or not heading.isprintable():
                raise DigestError(f"{path}: selected post {n} has a section heading that is empty, over {MAX_NAME} "
                                  "characters or not printable")
        chosen[url] = tuple(section)
    return digest, recorded, chosen


def check_sections(path: Path, chosen: Mapping[str, SectionPath], known: Iterable[SectionPath]) -> None:
    """DigestError (one line naming `path`) unless every section of `chosen` is one of `known` (the digest's
    taxonomy, its model's sections, the draft's one section); nothing is checked when `known` is empty."""
    allowed = set(known)
    if not allowed:
        return
    for section in chosen.values():
        if section not in allowed:
            shown = " > ".join(section)
            raise DigestError(f"{path}: the manifest's section {shown[:200]!r} is not in the digest's taxonomy")
