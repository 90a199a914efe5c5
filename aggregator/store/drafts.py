"""The drafts domain: which draft aggregator last wrote of each edition, and what it offered."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, insert, select

from aggregator.models import DEFAULT_DIGEST, Edition
from aggregator.store.database import Database
from aggregator.store.tables import drafts

_D = drafts.c


class Drafts(Database):
    """Drafts: the last one written of each edition."""

    def is_unedited_draft(self, edition: Edition, text: str, *, digest: str = DEFAULT_DIGEST) -> bool:
        """Whether `text` is exactly what aggregator last wrote as the edition's draft."""
        with self.transaction() as s:
            return s.scalar(_recorded(_D.sha256, digest, edition)) == _sha256(text)

    def draft_written_at(self, edition: Edition, *, digest: str = DEFAULT_DIGEST) -> datetime | None:
        with self.transaction() as s:
            return s.scalar(_recorded(_D.written_at, digest, edition))

    def record_draft(self, edition: Edition, path: str, text: str, now: datetime, selected: Sequence[str] = (), *,
                     digest: str = DEFAULT_DIGEST) -> None:
        with self.transaction() as s:
            s.execute(delete(drafts).where(_D.digest == digest, _D.edition == edition))
            s.execute(insert(drafts).values(digest=digest, edition=edition, path=path, sha256=_sha256(text),
                                            written_at=now, selected_urls=json.dumps(sorted(selected))))


def _recorded(column: Any, digest: str, edition: Edition) -> Select[Any]:
    """One column of the draft recorded for the edition (no row: None)."""
    return select(column).where(_D.digest == digest, _D.edition == edition)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


