"""The labels domain: imported digests as the editor's decisions, and decisions read back for training and drafting."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from aggregator.errors import StoreError
from aggregator.models import DEFAULT_DIGEST, Edition, ImportEntry, Label, SectionPath
from aggregator.store.database import POSTS_TURN, Database, chunks, short_error, take_turns
from aggregator.store.decisions import desk_revisions, desk_times
from aggregator.store.posts import candidate
from aggregator.store.schema import DigestRow, DraftRow, FeedRow, LabelRow, PostRow

_IMPORT_TRIES = 5  # an import racing a polling pass for the same new URLs runs again this often at most


@dataclass(frozen=True)
class _DigestMeta:
    """What a digest's row records beside each edition it covers."""

    path: str
    style: str
    title: str
    sections: str  # JSON
    emoji: str  # JSON


class _Raced(Exception):
    """Another writer committed a post with one of the URLs this transaction was adding."""


@dataclass(frozen=True)
class ImportReport:
    """What importing one edition's share of a digest changed."""

    edition: Edition
    entries: int
    added: int = 0  # newly selected posts
    moved: int = 0  # selected before, now in another section
    removed: int = 0  # offered or selected before, now left out: negatives
    new_posts: int = 0  # posts known only from the digest
    unchanged: bool = False
    truncated: int = 0  # entries whose title, source, heading or summary was cut to the limits
    covered: bool = True  # the digest covers the edition: what the edition held and the digest lacks is left out
    kept: tuple[str, ...] = ()  # links of desk decisions made after the digest decided on the post: the desk's stand
    overrode: tuple[str, ...] = ()  # links of desk decisions this import changed (the digest decided later)


@dataclass(frozen=True)
class EditionPart:
    """One edition's share of an imported digest (a file may list the entries of several editions).

    `covered`: the digest is the editor's word on the whole edition, so a post of it that an earlier
    version selected, or that aggregator's draft offered, and that this one lacks is left out; an edition
    the digest only touches (an older post it cites) gains its picks and loses nothing. `sha256` of what
    the part says: a covered edition imported again with the same one is unchanged. `decided_at`: link ->
    when the digest made its decision on that post (a commit's time, for history); a post it does not name
    is decided `now`. `absent_since`: when the digest's silence on a post of the edition that it never
    listed counts as leaving it out; None, never (a running file's history), `now` when not given.
    `partial`: the entries are only what part of a history decided (import-history --since), so the
    edition's other picks, and the draft's offers, are left as they are, covered or not."""

    edition: Edition
    entries: Sequence[ImportEntry]
    covered: bool = True
    left_out: Sequence[ImportEntry] = ()
    sha256: str = ""
    decided_at: Mapping[str, datetime] = field(default_factory=dict)
    absent_since: datetime | None | Literal["now"] = "now"
    partial: bool = False


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
        """Record a digest's selections as labels of one edition it covers (see `import_editions`).
        `covers` is kept for callers of old; the edition covers itself. `partial`: see `EditionPart`."""
        part = EditionPart(Edition(edition), entries, True, left_out, sha256, partial=partial)
        [report] = self.import_editions([part], path=path, style=style, title=title, sections=sections, now=now,
                                        digest=digest, emoji=emoji)
        return report

    def import_editions(self, parts: Sequence[EditionPart], *, path: str, style: str, title: str,
                        sections: Sequence[SectionPath], now: datetime, digest: str = DEFAULT_DIGEST,
                        emoji: Sequence[tuple[str, str]] = ()) -> list[ImportReport]:
        """Record a digest's selections as labels, edition by edition, in one transaction; a report per part.

        Posts never fetched are created from what the digest says. In an edition the digest covers, posts
        the editor had selected in an earlier version, or that aggregator's draft offered, and that are now
        missing become negative labels (unless the part is `partial`), and the digest's row records it (its
        sections, and the edition as covered: the fetched posts of the edition it left out are non-picks).
        Importing the same text again changes nothing. A desk decision made after the digest decided on that
        post is kept (`kept`); one made before it is replaced and named (`overrode`). When a polling pass
        stores one of the digest's posts meanwhile (the same URL, committed first), the transaction is run
        again and finds it.
        """
        for attempt in range(_IMPORT_TRIES):
            try:
                return self._import_editions(parts, path=path, style=style, title=title, sections=sections, now=now,
                                             digest=digest, emoji=emoji)
            except _Raced:
                if attempt == _IMPORT_TRIES - 1:
                    raise StoreError(f"{self.where}: other writers kept storing this digest's posts; try again") from None
        raise AssertionError("unreachable")

    def _import_editions(self, parts: Sequence[EditionPart], *, path: str, style: str, title: str,
                         sections: Sequence[SectionPath], now: datetime, digest: str,
                         emoji: Sequence[tuple[str, str]]) -> list[ImportReport]:
        try:
            with self._sessions.begin() as s:
                take_turns(s, POSTS_TURN)  # beside pollers adding the same links on PostgreSQL
                every = [e for part in parts for e in (*part.entries, *part.left_out)]
                posts = _posts_for(s, every, now)
                meta = _DigestMeta(path, style, title, json.dumps([list(x) for x in sections], ensure_ascii=False),
                                   json.dumps(dict(emoji), ensure_ascii=False))
                return [self._import_in(s, part, posts, meta, now=now, digest=digest) for part in parts]
        except IntegrityError as exc:
            if "url" in str(exc.orig).lower():
                raise _Raced() from None
            raise StoreError(f"{self.where}: {short_error(exc)}") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"{self.where}: {short_error(exc)}") from None

    def _import_in(self, s: Session, part: EditionPart, posts: Mapping[str, PostRow], meta: _DigestMeta, *,
                   now: datetime, digest: str) -> ImportReport:
        edition, entries, left_out = part.edition, part.entries, part.left_out
        existing = s.get(DigestRow, (digest, edition)) if part.covered else None
        if existing is not None and existing.sha256 == part.sha256:
            return ImportReport(edition, len(entries), unchanged=True, covered=part.covered)
        mine = (LabelRow.digest == digest) & (LabelRow.edition == edition)
        labels = {row.post_id: row for row in s.scalars(select(LabelRow).where(mine))}
        history = desk_revisions(s, digest, edition)
        desk = desk_times(s, digest, edition)
        offered: set[int] = set()
        draft = s.get(DraftRow, (digest, edition)) if part.covered and not part.partial else None
        if draft is not None and draft.selected_urls:
            urls = json.loads(draft.selected_urls)
            offered = {p.id for chunk in chunks(urls) for p in s.scalars(select(PostRow).where(PostRow.url.in_(chunk)))}
        kept: list[str] = []
        overrode: list[str] = []

        def desk_stands(post: PostRow, decided: datetime | None, change: bool) -> bool:
            """Whether the desk's decision on the post outlives this import's (made after it); records which."""
            made = desk.get(post.id)
            if made is None or not change:
                return False
            if decided is None:  # the digest never named the post: nothing of its to weigh against the desk's
                return True
            if made > decided:
                kept.append(post.url or "")
                return True
            overrode.append(post.url or "")
            return False

        added = moved = changed = 0
        chosen = set()
        fresh: set[int] = set()  # posts newly selected in this edition
        for entry in entries:
            post = posts[entry.url]
            chosen.add(post.id)
            section = json.dumps(list(entry.section), ensure_ascii=False)
            row = labels.get(post.id)
            summary = "" if _is_opening(entry.editor_summary, post.summary) else entry.editor_summary
            decided = part.decided_at.get(entry.url, now)
            if row is None:
                if desk_stands(post, decided, True):  # the desk cleared it (undo) after the digest listed it
                    continue
                s.add(LabelRow(digest=digest, post_id=post.id, edition=edition, selected=True, section=section,
                               editor_summary=summary, printed_source=entry.source, updated_at=now,
                               revision=history.get(post.id, 0) + 1))
                added += 1
                fresh.add(post.id)
                continue
            summary = summary or (row.editor_summary if summary != entry.editor_summary else "")
            change = (row.selected, row.section, row.editor_summary) != (True, section, summary)
            if desk_stands(post, decided, change or not row.selected):
                continue
            if not row.selected:
                added += 1
                fresh.add(post.id)
            elif row.section != section:
                moved += 1
            if change:
                row.revision += 1
            if change or row.printed_source != entry.source:
                row.selected, row.section, row.editor_summary = True, section, summary
                row.printed_source, row.updated_at = entry.source, now
                changed += 1
        arrived = len(_move_here(s, digest, edition, [posts[e.url].id for e in entries],
                                 skip={posts[u].id for u in kept}) & fresh)
        moved, added = moved + arrived, added - arrived  # a pick that moved here from another edition
        removed = 0
        rejected = {posts[e.url].id: part.decided_at.get(e.url, now) for e in left_out}  # dropped in the history
        speaks = part.covered and not part.partial  # its silence on the edition's other posts is a decision
        silent = {pid for pid, row in labels.items() if row.selected} | offered if speaks else set()
        absent = now if part.absent_since == "now" else part.absent_since
        by_id = {p.id: p for p in posts.values()}
        for post_id in (silent | set(rejected)) - chosen:
            row = labels.get(post_id)
            if row is not None and not row.selected:
                continue
            post = by_id.get(post_id) or s.get(PostRow, post_id)
            if desk_stands(post, rejected.get(post_id, absent), True):
                continue
            if row is None:
                s.add(LabelRow(digest=digest, post_id=post_id, edition=edition, selected=False, section=None,
                               editor_summary="", printed_source="", updated_at=now,
                               revision=history.get(post_id, 0) + 1))
            else:
                row.selected, row.section, row.updated_at, row.revision = False, None, now, row.revision + 1
            removed += 1
        new_posts = sum(1 for e in {e.url for e in (*entries, *left_out)}
                        if posts[e].feed_id is None and posts[e].first_seen_at == now)
        if part.covered:
            s.merge(DigestRow(digest=digest, edition=edition, path=meta.path, style=meta.style, title=meta.title,
                              sha256=part.sha256, sections=meta.sections, covers=json.dumps([edition]),
                              imported_at=now, emoji=meta.emoji))
        unchanged = not (added or moved or removed or changed or part.covered)
        return ImportReport(edition, len(entries), added, moved, removed, new_posts, unchanged=unchanged,
                            covered=part.covered, kept=tuple(kept), overrode=tuple(overrode))

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

    def decided_elsewhere(self, edition: Edition, post_ids: Sequence[int], *, digest: str = DEFAULT_DIGEST) -> set[int]:
        """Those of `post_ids` that another edition of the digest holds a decision on (published, or left
        out): a post belongs to one edition, the one its decision was filed in."""
        found: set[int] = set()
        with self.session() as s:
            for chunk in chunks(list(post_ids)):
                query = select(LabelRow.post_id).where(LabelRow.post_id.in_(chunk), LabelRow.edition != edition,
                                                       LabelRow.digest == digest)
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
        stored (from its `feeds` when given) in the editions its imported digests cover, each a non-pick of
        the edition its date falls in (`entry_edition`'s rule for a post nobody decided on)."""
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
                cadence = self._edition(imported.edition).cadence
                for covered in json.loads(imported.covers):  # editions (a row of old may name calendar months)
                    start, end = self._edition(covered).bounds()
                    when = func.coalesce(PostRow.published_at, PostRow.first_seen_at)
                    query = (select(PostRow, FeedRow.source, FeedRow.name).join(FeedRow, PostRow.feed_id == FeedRow.id)
                             .where(when >= start, when < end).order_by(PostRow.id))
                    if feeds is not None:
                        query = query.where(FeedRow.name.in_(sorted(feeds)))
                    for post, feed_source, feed_name in s.execute(query):
                        if post.id not in labelled:
                            labelled.add(post.id)
                            known = candidate(post, feed_source, feed_name)
                            out.append((Edition.of(cadence, known.published), Label(known, None, False)))
            out.sort(key=lambda pair: pair[0])  # edition order, each edition's labels as they came
            return out

    def published_dates(self, urls: Sequence[str]) -> dict[str, datetime]:
        """link -> the publication date its feed gave, for the posts of `urls` fetched with one (a post known
        only from a digest, or whose feed gave no date, has none): what files an undated entry by its post."""
        found: dict[str, datetime] = {}
        with self.session() as s:
            for chunk in chunks(sorted(set(urls))):
                query = select(PostRow.url, PostRow.published_at).where(
                    PostRow.url.in_(chunk), PostRow.feed_id.is_not(None), PostRow.published_at.is_not(None))
                found.update((url, when) for url, when in s.execute(query) if url)
        return found

    def _edition(self, text: str) -> Edition:
        """An edition read back from a row; StoreError, in one line, when the row holds none."""
        try:
            return Edition(text)
        except ValueError as exc:
            raise StoreError(f"{self.where}: a stored edition: {exc}") from None


def _move_here(s: Session, digest: str, edition: Edition, post_ids: Sequence[int], *,
               skip: Collection[int]) -> set[int]:
    """Take the picks among `post_ids` out of the other editions an earlier import filed them in (the
    newest digest's date for an entry wins: a post belongs to one edition); those that were selected there.
    A label the desk acted on stays: the desk decided on the post in that edition."""
    moved: set[int] = set()
    wanted = [p for p in post_ids if p not in skip]
    for chunk in chunks(wanted):
        query = select(LabelRow).where(LabelRow.digest == digest, LabelRow.edition != edition,
                                       LabelRow.post_id.in_(chunk))
        for row in s.scalars(query):
            if desk_revisions(s, digest, Edition(row.edition), row.post_id):
                continue
            if row.selected:
                moved.add(row.post_id)
            s.delete(row)
    s.flush()
    return moved


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


