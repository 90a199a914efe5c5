"""The drafts domain: which draft aggregator last wrote of each edition, and what it offered."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime

from aggregator.models import DEFAULT_DIGEST, Edition
from aggregator.store.database import Database
from aggregator.store.schema import DraftRow


class Drafts(Database):
    """Drafts: the last one written of each edition."""

    def is_unedited_draft(self, edition: Edition, text: str, *, digest: str = DEFAULT_DIGEST) -> bool:
        """Whether `text` is exactly what aggregator last wrote as the edition's draft."""
        with self.session() as s:
            row = s.get(DraftRow, (digest, edition))
            return row is not None and row.sha256 == _sha256(text)

    def draft_written_at(self, edition: Edition, *, digest: str = DEFAULT_DIGEST) -> datetime | None:
        with self.session() as s:
            row = s.get(DraftRow, (digest, edition))
            return row.written_at if row else None

    def record_draft(self, edition: Edition, path: str, text: str, now: datetime, selected: Sequence[str] = (), *,
                     digest: str = DEFAULT_DIGEST) -> None:
        with self.session() as s:
            s.merge(DraftRow(digest=digest, edition=edition, path=path, sha256=_sha256(text), written_at=now,
                             selected_urls=json.dumps(sorted(selected))))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


