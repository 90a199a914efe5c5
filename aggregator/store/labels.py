"""The labels domain: imported digests as the editor's decisions, and decisions read back for training and drafting."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from aggregator.errors import StoreError
from aggregator.models import DEFAULT_DIGEST, Edition, ImportEntry, Label, SectionPath, month_bounds
from aggregator.store.database import POSTS_TURN, Database, chunks, short_error, take_turns
from aggregator.store.decisions import desk_revisions
from aggregator.store.posts import candidate
from aggregator.store.schema import DigestRow, DraftRow, FeedRow, LabelRow, PostRow

_IMPORT_TRIES = 5  # an import racing a polling pass for the same new URLs runs again this often at most


class _Raced(Exception):
    """Another writer committed a post with one of the URLs this transaction was adding."""


@dataclass(frozen=True)
class ImportReport:
    """What importing one digest changed."""

    edition: Edition
    entries: int
    added: int = 0  # newly selected posts
    moved: int = 0  # selected before, now in another section
    removed: int = 0  # offered or selected before, now left out: negatives
    new_posts: int = 0  # posts known only from the digest
    unchanged: bool = False
    truncated: int = 0  # entries whose title, source, heading or summary was cut to the limits


@dataclass(frozen=True)
class DigestInfo:
    """An imported digest, as training and drafting use it."""

    edition: Edition
    sections: tuple[SectionPath, ...]
    covers: tuple[str, ...]
    selected: int
    emoji: tuple[tuple[str, str], ...] = ()  # section name -> the emoji its heading wears (footnote style)


class Labels(Database):
    """Labels: digests imported as decisions, and decisions read back."""

    def import_digest(self, *, edition: Edition, path: str, style: str, title: str, sha256: str,
                      sections: Sequence[SectionPath], covers: Sequence[str], entries: Sequence[ImportEntry],
                      now: datetime, digest: str = DEFAULT_DIGEST,
                      emoji: Sequence[tuple[str, str]] = (), left_out: Sequence[ImportEntry] = (),
                      partial: bool = False) -> ImportReport:
        """Record a digest's selections as labels, in one transaction.

        Posts never fetched are created from what the digest says. Posts the editor had selected in an
        earlier version of this edition's digest, or that aggregator's draft offered, and that are now
        missing become negative labels. Importing the same text again changes nothing. When a polling
        pass stores one of the digest's posts meanwhile (the same URL, committed first), the
        transaction is run again and finds it. `left_out`: entries the editor listed once and dropped
        (read from a file's history), non-picks of this edition. `partial`: the entries are only what part of
        a history decided, so the edition's other picks, and the draft's offers, are left as they are.
        """
        for attempt in range(_IMPORT_TRIES):
            try:
                return self._import_digest(edition=edition, path=path, style=style, title=title, sha256=sha256,
                                           sections=sections, covers=covers, entries=entries, now=now, digest=digest,
                                           emoji=emoji, left_out=left_out, partial=partial)
            except _Raced:
                if attempt == _IMPORT_TRIES - 1:
                    raise StoreError(f"{self.where}: other writers kept storing this digest's posts; try again") from None
        raise AssertionError("unreachable")

    def _import_digest(self, *, edition: Edition, path: str, style: str, title: str, sha256: str,
                       sections: Sequence[SectionPath], covers: Sequence[str], entries: Sequence[ImportEntry],
                       now: datetime, digest: str, emoji: Sequence[tuple[str, str]],
                       left_out: Sequence[ImportEntry], partial: bool = False) -> ImportReport:
        try:
            with self._sessions.begin() as s:
                take_turns(s, POSTS_TURN)  # beside pollers adding the same links on PostgreSQL
                return self._import_in(s, edition=edition, path=path, style=style, title=title, sha256=sha256,
                                       sections=sections, covers=covers, entries=entries, now=now, digest=digest,
                                       emoji=emoji, left_out=left_out, partial=partial)
        except IntegrityError as exc:
            if "url" in str(exc.orig).lower():
                raise _Raced() from None
            raise StoreError(f"{self.where}: {short_error(exc)}") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {short_error(exc)}") from None

    def _import_in(self, s: Session, *, edition: Edition, path: str, style: str, title: str, sha256: str,
                   sections: Sequence[SectionPath], covers: Sequence[str], entries: Sequence[ImportEntry],
                   now: datetime, digest: str, emoji: Sequence[tuple[str, str]],
                   left_out: Sequence[ImportEntry], partial: bool = False) -> ImportReport:
        existing = s.get(DigestRow, (digest, edition))
        if existing is not None and existing.sha256 == sha256:
            return ImportReport(edition, len(entries), unchanged=True)
        posts = _posts_for(s, [*entries, *left_out], now)
        mine = (LabelRow.digest == digest) & (LabelRow.edition == edition)
        labels = {row.post_id: row for row in s.scalars(select(LabelRow).where(mine))}
        history = desk_revisions(s, digest, edition)
        offered = set()
        draft = s.get(DraftRow, (digest, edition))
        if draft is not None and draft.selected_urls:
            urls = json.loads(draft.selected_urls)
            offered = {p.id for chunk in chunks(urls) for p in s.scalars(select(PostRow).where(PostRow.url.in_(chunk)))}
        added = moved = 0
        chosen = set()
        for entry in entries:
            post = posts[entry.url]
            chosen.add(post.id)
            section = json.dumps(list(entry.section), ensure_ascii=False)
            row = labels.get(post.id)
            summary = "" if _is_opening(entry.editor_summary, post.summary) else entry.editor_summary
            if row is None:
                s.add(LabelRow(digest=digest, post_id=post.id, edition=edition, selected=True, section=section,
                               editor_summary=summary, printed_source=entry.source, updated_at=now,
                               revision=history.get(post.id, 0) + 1))
                added += 1
                continue
            if not row.selected:
                added += 1
            elif row.section != section:
                moved += 1
            summary = summary or (row.editor_summary if summary != entry.editor_summary else "")
            if (row.selected, row.section, row.editor_summary) != (True, section, summary):
                row.revision += 1
            row.selected, row.section, row.editor_summary = True, section, summary
            row.printed_source, row.updated_at = entry.source, now
        removed = 0
        rejected = {posts[e.url].id for e in left_out}  # dropped from the file in its history
        earlier = set() if partial else offered | {pid for pid, row in labels.items() if row.selected}
        for post_id in (rejected | earlier) - chosen:
            row = labels.get(post_id)
            if row is None:
                s.add(LabelRow(digest=digest, post_id=post_id, edition=edition, selected=False, section=None, editor_summary="",
                               printed_source="", updated_at=now, revision=history.get(post_id, 0) + 1))
            elif row.selected:
                row.selected, row.section, row.updated_at, row.revision = False, None, now, row.revision + 1
            else:
                continue
            removed += 1
        new_posts = sum(1 for p in posts.values() if p.feed_id is None and p.first_seen_at == now)
        s.merge(DigestRow(digest=digest, edition=edition, path=path, style=style, title=title, sha256=sha256,
                          sections=json.dumps([list(x) for x in sections], ensure_ascii=False),
                          covers=json.dumps(list(covers)), imported_at=now,
                          emoji=json.dumps(dict(emoji), ensure_ascii=False)))
        return ImportReport(edition, len(entries), added, moved, removed, new_posts)

    def digests(self, *, digest: str = DEFAULT_DIGEST) -> list[DigestInfo]:
        """A digest's imported editions, oldest first, with how many posts each selected."""
        counts = (select(LabelRow.edition, func.count(LabelRow.id))
                  .where(LabelRow.selected.is_(True), LabelRow.digest == digest).group_by(LabelRow.edition))
        with self.session() as s:
            selected = dict(s.execute(counts).all())
            query = select(DigestRow).where(DigestRow.digest == digest).order_by(DigestRow.edition)
            return [DigestInfo(self._edition(d.edition), tuple(tuple(x) for x in json.loads(d.sections)), tuple(json.loads(d.covers)),
                               selected.get(d.edition, 0), tuple(json.loads(d.emoji or "{}").items()))
                    for d in s.scalars(query)]

    def edition_labels(self, edition: Edition, *, digest: str = DEFAULT_DIGEST) -> dict[int, SectionPath | None]:
        """post id -> its section in the edition's imported digest, or None when that digest left it out."""
        query = (select(LabelRow.post_id, LabelRow.selected, LabelRow.section)
                 .where(LabelRow.edition == edition, LabelRow.digest == digest))
        with self.session() as s:
            return {pid: (tuple(json.loads(sec)) if selected and sec else None) for pid, selected, sec in s.execute(query)}

    def editor_summaries(self, edition: Edition, *, digest: str = DEFAULT_DIGEST) -> dict[int, str]:
        """post id -> the summary the editor wrote for it in the edition (only where they wrote one)."""
        query = (select(LabelRow.post_id, LabelRow.editor_summary)
                 .where(LabelRow.edition == edition, LabelRow.digest == digest, LabelRow.selected.is_(True)))
        with self.session() as s:
            return {pid: text for pid, text in s.execute(query) if text}

    def selected_elsewhere(self, edition: Edition, post_ids: Sequence[int], *, digest: str = DEFAULT_DIGEST) -> set[int]:
        """Those of `post_ids` that another edition of the digest already published."""
        found: set[int] = set()
        with self.session() as s:
            for chunk in chunks(list(post_ids)):
                query = select(LabelRow.post_id).where(LabelRow.post_id.in_(chunk), LabelRow.edition != edition,
                                                       LabelRow.selected.is_(True), LabelRow.digest == digest)
                found.update(s.scalars(query))
        return found

    def printed_sources(self, *, digest: str = DEFAULT_DIGEST) -> list[tuple[SectionPath, str]]:
        """(section, printed source label) of every selected label: how the editor labels entries."""
        query = (select(LabelRow.section, LabelRow.printed_source)
                 .where(LabelRow.selected.is_(True), LabelRow.digest == digest))
        with self.session() as s:
            return [(tuple(json.loads(sec)), src) for sec, src in s.execute(query) if sec]

    def training_labels(self, *, digest: str = DEFAULT_DIGEST, feeds: Collection[str] | None = None) -> list[tuple[Edition, Label]]:
        """(edition, label) for every decision of a digest: selections, removals, and the unselected posts
        stored from the months its imported editions cover (from its `feeds` when given)."""
        with self.session() as s:
            out: list[tuple[Edition, Label]] = []
            query = (select(LabelRow, PostRow, FeedRow.source, FeedRow.name)
                     .join(PostRow, LabelRow.post_id == PostRow.id).where(LabelRow.digest == digest)
                     .outerjoin(FeedRow, PostRow.feed_id == FeedRow.id).order_by(LabelRow.edition, PostRow.id))
            labelled: set[int] = set()
            for label, post, feed_source, feed_name in s.execute(query):
                labelled.add(post.id)
                known = candidate(post, feed_source, feed_name)
                section = tuple(json.loads(label.section)) if label.section else None
                out.append((self._edition(label.edition), Label(known, section, label.selected, label.editor_summary)))
            for imported in s.scalars(select(DigestRow).where(DigestRow.digest == digest)):
                edition = self._edition(imported.edition)
                for month in json.loads(imported.covers):  # calendar months
                    start, end = month_bounds(month)
                    when = func.coalesce(PostRow.published_at, PostRow.first_seen_at)
                    query = (select(PostRow, FeedRow.source, FeedRow.name).join(FeedRow, PostRow.feed_id == FeedRow.id)
                             .where(when >= start, when < end).order_by(PostRow.id))
                    if feeds is not None:
                        query = query.where(FeedRow.name.in_(sorted(feeds)))
                    for post, feed_source, feed_name in s.execute(query):
                        if post.id not in labelled:
                            labelled.add(post.id)
                            out.append((edition, Label(candidate(post, feed_source, feed_name), None, False)))
            return out

    def _edition(self, text: str) -> Edition:
        """An edition read back from a row; StoreError, in one line, when the row holds none."""
        try:
            return Edition(text)
        except ValueError as exc:
            raise StoreError(f"{self.where}: a stored edition: {exc}") from None


def _is_opening(summary: str, post_text: str) -> bool:
    """True when a digest line's summary is only the opening of the post's own text (as a draft prints
    it, perhaps cut short with "…"): the feed's words, not the editor's."""
    said = " ".join(summary.split()).rstrip("…").rstrip()
    return bool(said) and " ".join(post_text.split()).startswith(said)


def _posts_for(s: Session, entries: Sequence[ImportEntry], now: datetime) -> dict[str, PostRow]:
    """The stored post of every entry's URL, creating the ones never fetched."""
    urls = [e.url for e in entries]
    found = {p.url: p for chunk in chunks(urls) for p in s.scalars(select(PostRow).where(PostRow.url.in_(chunk)))}
    for entry in entries:
        if entry.url not in found:
            post = PostRow(feed_id=None, key="digest:" + entry.url, url=entry.url, title=entry.title, summary="",
                           author="", source=entry.source, published_at=entry.published, first_seen_at=now,
                           content_hash="")
            s.add(post)
            found[entry.url] = post
    s.flush()
    return found


