"""The desk's domain: one decision at a time on a post of an edition, logged for undo, with revisions against stale pages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from aggregator.errors import ConflictError, StaleError, StoreError
from aggregator.models import DEFAULT_DIGEST, Edition, SectionPath
from aggregator.store.database import Database, short_error
from aggregator.store.schema import DeskActionRow, LabelRow, PostRow


@dataclass(frozen=True)
class Decision:
    """The editor's decision on one post in one edition, as the desk shows it; revision 0: none yet."""

    selected: bool | None = None  # None: undecided
    section: SectionPath | None = None
    summary: str = ""
    revision: int = 0
    order: int = 0  # the label's id: decided rows keep the order they were first decided in

    def as_json(self) -> str | None:
        if self.selected is None:
            return None
        return json.dumps({"selected": self.selected, "section": list(self.section or ()), "summary": self.summary},
                          ensure_ascii=False)


@dataclass(frozen=True)
class DeskResult:
    """What a desk action left: the row's decision and the action's id in the log (for undo)."""

    decision: Decision
    action_id: int


@dataclass(frozen=True)
class PagePost:
    """A post known from its own page, or from the editor's hand: stored unless its URL is stored already."""

    url: str  # canonical
    title: str
    summary: str  # the page's own text ("" when added by hand)
    source: str
    published: datetime | None  # None: first seen now


@dataclass(frozen=True)
class Picked:
    """What adding a post as a pick left: the post, whether it was stored just now, and the desk action."""

    post_id: int
    new: bool
    result: DeskResult


class Decisions(Database):
    """Decisions made on the desk: read, made, undone."""

    def decisions(self, edition: Edition, *, digest: str = DEFAULT_DIGEST) -> dict[int, Decision]:
        """post id -> the editor's decision in one edition (imported or made on the desk)."""
        query = select(LabelRow).where(LabelRow.edition == edition, LabelRow.digest == digest)
        with self.session() as s:
            return {row.post_id: _decision(row) for row in s.scalars(query)}

    def decision(self, edition: Edition, post_id: int, *, digest: str = DEFAULT_DIGEST) -> Decision:
        """The editor's decision on one post in one edition (revision 0 when there is none)."""
        query = select(LabelRow).where(LabelRow.edition == edition, LabelRow.digest == digest, LabelRow.post_id == post_id)
        with self.session() as s:
            row = s.scalars(query).one_or_none()
            return _decision(row) if row is not None else Decision()

    def decide(self, edition: Edition, post_id: int, after: Decision, *, revision: int, action: str, now: datetime,
               digest: str = DEFAULT_DIGEST) -> DeskResult:
        """Record the editor's decision on one post, in one transaction, logged for undo; ConflictError
        when the row's revision is no longer `revision` (another tab or an import changed it)."""
        try:
            with self._sessions.begin() as s:
                row = _label_for_update(s, digest, edition, post_id)
                before = _decision(row) if row is not None else Decision()
                if before.revision != revision:
                    raise StaleError(f"the label of post {post_id} in {edition} is past revision {revision}")
                result = _set_label(s, row, digest, edition, post_id, after, now)
                entry = DeskActionRow(digest=digest, edition=edition, post_id=post_id, action=action, before=before.as_json(),
                                      after=result.as_json(), revision=result.revision, at=now)
                s.add(entry)
                s.flush()
                return DeskResult(result, entry.id)
        except IntegrityError:  # another writer created the label first
            raise StaleError(f"the label of post {post_id} in {edition} was created meanwhile") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {short_error(exc)}") from None

    def pick_post(self, edition: Edition, post: PagePost, *, section: SectionPath, summary: str, now: datetime,
                  digest: str = DEFAULT_DIGEST) -> Picked:
        """Store `post` unless a post with its URL is stored (then it is that one, unchanged), and make it a
        pick of `edition` under `section` with the editor's `summary` ("" keeps theirs), in one transaction,
        logged as a desk action ("add") that undo takes back. ConflictError when another edition of the
        digest already picked it; nothing is stored then."""
        try:
            with self._sessions.begin() as s:
                row = s.scalars(select(PostRow).where(PostRow.url == post.url)).one_or_none()
                new = row is None
                if row is None:
                    row = PostRow(feed_id=None, key="page:" + post.url, url=post.url, title=post.title,
                                  summary=post.summary, author="", source=post.source, published_at=post.published,
                                  first_seen_at=now, content_hash="")
                    s.add(row)
                    s.flush()
                else:
                    elsewhere = s.scalars(select(LabelRow.edition).where(
                        LabelRow.post_id == row.id, LabelRow.digest == digest, LabelRow.selected.is_(True),
                        LabelRow.edition != edition).order_by(LabelRow.edition)).first()
                    if elsewhere is not None:
                        raise ConflictError(f"{post.url} is already a pick of {elsewhere}: a post is picked once")
                label = _label_for_update(s, digest, edition, row.id)
                before = _decision(label) if label is not None else Decision()
                after = Decision(True, section, summary or before.summary)
                result = _set_label(s, label, digest, edition, row.id, after, now)
                entry = DeskActionRow(digest=digest, edition=edition, post_id=row.id, action="add", before=before.as_json(),
                                      after=result.as_json(), revision=result.revision, at=now)
                s.add(entry)
                s.flush()
                return Picked(row.id, new, DeskResult(result, entry.id))
        except IntegrityError:  # another writer stored the URL first
            raise ConflictError(f"{post.url} was stored meanwhile by another writer: add it again") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {short_error(exc)}") from None

    def undo(self, edition: Edition, action_id: int, *, now: datetime, digest: str = DEFAULT_DIGEST) -> tuple[int, DeskResult]:
        """Put back the state a desk action replaced; (its post id, the result). ConflictError when the
        action is unknown, already undone, or the row changed after it."""
        try:
            with self._sessions.begin() as s:
                done = s.get(DeskActionRow, action_id)
                if done is None or done.digest != digest or done.edition != edition or done.action == "undo":
                    raise ConflictError(f"no desk action {action_id} in {edition} to undo")
                if done.undone:
                    raise ConflictError("that action was already undone")
                row = _label_for_update(s, digest, edition, done.post_id)
                current = _decision(row) if row is not None else Decision()
                same_row = ((DeskActionRow.digest == digest) & (DeskActionRow.edition == edition)
                            & (DeskActionRow.post_id == done.post_id) & (DeskActionRow.id > done.id))
                later = s.scalars(select(DeskActionRow).where(same_row).order_by(DeskActionRow.id)).all()
                # Undone in order, newest first, and only while nothing else (another tab, an import) changed the row.
                if (current.revision != (later[-1].revision if later else done.revision)
                        or any(a.action != "undo" and not a.undone for a in later)):
                    raise ConflictError("the row changed after that action (another tab or an import); reload to see it")
                restored = _decision_from_json(done.before)
                result = _set_label(s, row, digest, edition, done.post_id, restored, now)
                done.undone = True
                entry = DeskActionRow(digest=digest, edition=edition, post_id=done.post_id, action="undo",
                                      before=current.as_json(), after=result.as_json(), revision=result.revision, at=now)
                s.add(entry)
                s.flush()
                return done.post_id, DeskResult(result, entry.id)
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {short_error(exc)}") from None


def _decision(row: LabelRow) -> Decision:
    section = tuple(json.loads(row.section)) if row.selected and row.section else None
    return Decision(row.selected, section, row.editor_summary or "", row.revision, row.id)


def _decision_from_json(text: str | None) -> Decision:
    if text is None:
        return Decision()
    data = json.loads(text)
    return Decision(bool(data["selected"]), tuple(data["section"]) or None, data.get("summary", ""))


def _label_for_update(s: Session, digest: str, edition: Edition, post_id: int) -> LabelRow | None:
    query = select(LabelRow).where(LabelRow.digest == digest, LabelRow.edition == edition, LabelRow.post_id == post_id)
    return s.scalars(query.with_for_update()).one_or_none()


def desk_revisions(s: Session, digest: str, edition: Edition, post_id: int | None = None) -> dict[int, int]:
    """The highest label revision the desk's actions left on each post of an edition (or on one post): a
    label created again goes on from there, so a page that saw an older state of the row is refused."""
    query = (select(DeskActionRow.post_id, func.max(DeskActionRow.revision))
             .where(DeskActionRow.digest == digest, DeskActionRow.edition == edition).group_by(DeskActionRow.post_id))
    if post_id is not None:
        query = query.where(DeskActionRow.post_id == post_id)
    return {post: revision or 0 for post, revision in s.execute(query)}


def _set_label(s: Session, row: LabelRow | None, digest: str, edition: Edition, post_id: int, after: Decision,
               now: datetime) -> Decision:
    """Write `after` into the label row (creating or deleting it); the decision as stored."""
    if after.selected is None:
        if row is not None:
            s.delete(row)
        return Decision()
    section = json.dumps(list(after.section), ensure_ascii=False) if after.selected and after.section else None
    if row is None:  # revisions go on from the row's history, so a page that saw an older state of it is refused
        row = LabelRow(digest=digest, post_id=post_id, edition=edition, selected=after.selected, section=section,
                       editor_summary=after.summary, printed_source="", updated_at=now,
                       revision=desk_revisions(s, digest, edition, post_id).get(post_id, 0) + 1)
        s.add(row)
    else:
        row.selected, row.section, row.editor_summary = after.selected, section, after.summary
        row.updated_at, row.revision = now, row.revision + 1
    s.flush()
    return _decision(row)


