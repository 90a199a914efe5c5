"""The learning jobs: importing digests as labels, training the models, and evaluating them on the store's decisions."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from aggregator.config import Config, DigestSettings
from aggregator.errors import DigestError, ModelError
from aggregator.learn.labels import (YEARS, align_section, covered_months, digest_month, digest_week, entry_edition,
                                     import_entries, merge_trees, out_of_range, outside_years)
from aggregator.learn.reading import read_digest
from aggregator.limits import MAX_NAME, MAX_SUMMARY, MAX_TITLE, MAX_URL, cap
from aggregator.models import (DEFAULT_DIGEST, Cadence, Candidate, Digest, DigestStyle, Edition, ImportEntry, Label,
                               SectionPath, month_bounds, month_of)
from aggregator.store.labels import EditionPart, ImportReport
from aggregator.store import Store

if TYPE_CHECKING:
    from aggregator.learn.classify import Model
    from aggregator.learn.evaluate import Report, ReplayCache

Progress = Callable[[int, int], None] | None
T = TypeVar("T")


@dataclass(frozen=True)
class Scope:
    """Which digest a job works on: its name (its labels and editions), the feeds it reads (None: all), its cadence."""

    digest: str = DEFAULT_DIGEST
    feeds: frozenset[str] | None = None
    cadence: Cadence = "monthly"


def scope_of(config: Config, digest: DigestSettings) -> Scope:
    """The learning jobs' view of a digest of feeds.yaml: its name, its feeds, its cadence."""
    return Scope(digest.name, config.digest_feeds(digest), digest.cadence)


@dataclass(frozen=True)
class FileReport:
    """What importing one digest file did: a report per edition its entries fall in, oldest first."""

    editions: tuple[ImportReport, ...]
    truncated: int = 0  # entries whose title, source, heading or summary was cut to the limits

    @property
    def unchanged(self) -> bool:
        return all(r.unchanged for r in self.editions)


def import_digest_file(store: Store, path: Path, *, edition: Edition | None, style: DigestStyle | None, now: datetime,
                       scope: Scope = Scope()) -> FileReport:
    """Read one digest file and record its selections as decisions of the scope's digest, each entry in
    the edition its own date puts it in (`entry_edition`): `edition` (else what the file says) is the
    digest's own edition, that of the entries that give no date, and one it covers whatever its share.
    Nothing is stored when the file cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DigestError(f"{path}: cannot read: {exc}") from None
    month = None if edition is None or edition.weekly else edition  # a monthly digest's edition is the month it covers
    digest = read_digest(text, path=str(path), style=style, month=month)
    cut = _check_entries(digest, path)
    edition, entry_month = _edition(digest, path, scope, edition)
    entries = import_entries(digest, entry_month)
    if not entries:
        raise DigestError(f"{path}: no entries with an http(s) URL")
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    parts = edition_parts(entries, store.published_dates([e.url for e in entries]), scope.cadence, edition, sha)
    sections = tuple(tuple(cap(h, MAX_NAME) for h in s) for s in digest.sections)
    reports = store.import_editions(parts, path=str(path), style=digest.style, title=cap(digest.title, MAX_NAME),
                                    sections=sections, now=now, digest=scope.digest, emoji=digest.emoji)
    return FileReport(tuple(reports), cut)


def edition_parts(entries: Sequence[ImportEntry], dates: Mapping[str, datetime], cadence: Cadence, own: Edition,
                  sha256: str) -> list[EditionPart]:
    """A digest's entries grouped by the edition each belongs to (`entry_edition`, `dates`: link -> the
    post's publication date where it is known), oldest first. The digest covers its own edition and every
    edition holding a good share of its entries (`covered_months`); it only touches the others (an older
    post it cites): there it adds picks and leaves nothing out. An edition the digest lists nothing of is
    not among them, its own included: silence is no decision. A new post is dated at its edition's start."""
    groups: dict[Edition, list[ImportEntry]] = {}
    for e in entries:
        edition = entry_edition(cadence, printed=e.printed, published=dates.get(e.url), fallback=own)
        groups.setdefault(edition, []).append(dataclasses.replace(e, published=edition.bounds()[0]))
    counts = [edition for edition, group in groups.items() for _ in group]
    covered = {own, *covered_months(counts)}
    return [EditionPart(edition, tuple(group), edition in covered, sha256=sha256)
            for edition, group in sorted(groups.items())]


@dataclass(frozen=True)
class HistoryReport:
    """What importing a running digest's history did, edition by edition."""

    versions: int  # commits whose version of the file reads as a digest
    editions: tuple[tuple[Edition, ImportReport, int], ...]  # (edition, its report, entries moved between sections)
    commits: int = 0  # commits listed that changed the file
    parsed: int = 0  # versions parsed: a commit restoring a version read just before is not parsed again
    changed_before: int = 0  # with `since`: entries listed there, dropped or moved later (not revised)


def import_history(store: Store, repo: Path, file: str, *, now: datetime, scope: Scope = Scope(),
                   since: str | None = None, progress: Progress = None) -> HistoryReport:
    """Every commit of `repo` that changed `file` (the editor's running digest), as decisions: each entry
    picked in the edition its own date puts it in (`entry_edition`; undated, the edition of the commit
    that first listed it), under its final section; an entry later dropped a non-pick. A desk decision
    made after the commit that last decided on the post stands (the report names it); the history's
    silence on a post it never listed leaves out nothing the desk decided. Running it again after new
    commits changes only the editions they touch. `since`: read only the commits after that one; the
    entries its version lists keep the decisions stored for them, and so do the other picks of the
    editions it touches (each part `partial`). `progress(i, n)` after each commit."""
    from aggregator.learn.history import changed_since, entry_states, group_decisions, history, read_versions

    found = history(repo, file, since=since)
    read = _Tally(read_versions(found, progress))
    states, tree = entry_states(read, since=found.since)
    for seen in states:
        if not seen.known and len(seen.entry.url) > MAX_URL:
            raise DigestError(f"{repo}/{file}: a link over {MAX_URL:,} characters")
    dates = store.published_dates([seen.entry.url for seen in states])
    parts = []
    moves = []
    for d in group_decisions(states, scope.cadence, dates, tree):
        key = json.dumps([[e.url, list(e.section)] for e in d.picks] + [[e.url] for e in d.removed])
        parts.append(EditionPart(d.edition, d.picks, d.covered, d.removed,
                                 hashlib.sha256(key.encode("utf-8")).hexdigest(), d.decided_at, absent_since=None,
                                 partial=since is not None))
        moves.append(d.moved)
    reports = store.import_editions(parts, path=f"{repo}:{file}", style="house",
                                    title=cap(read.last.digest.title if read.last else "", MAX_NAME), sections=tree,
                                    now=now, digest=scope.digest) if parts else []
    changed = changed_since(found.since, read.last) if found.since is not None and read.last is not None else 0
    return HistoryReport(read.count, tuple((r.edition, r, moved) for r, moved in zip(reports, moves)),
                         len(found.commits), found.parsed, changed)


class _Tally(Generic[T]):
    """A stream passed through, counted, its last item kept."""

    def __init__(self, items: Iterable[T]) -> None:
        self.items, self.count, self.last = items, 0, None

    def __iter__(self) -> Iterator[T]:
        for item in self.items:
            self.count, self.last = self.count + 1, item
            yield item


def _check_entries(digest: Digest, path: Path) -> int:
    """DigestError for an entry dated outside YEARS or with a link over MAX_URL; how many entries have a
    title, source, heading or summary over the limits (they are cut)."""
    for e in digest.entries:
        if e.month and out_of_range(e.month):
            raise DigestError(f"{path}:{e.line}: entry dated {e.month}, outside the years {YEARS[0]}-{YEARS[1]}")
        if len(e.url) > MAX_URL:
            raise DigestError(f"{path}:{e.line}: a link over {MAX_URL:,} characters")
    return sum(len(e.title) > MAX_TITLE or len(e.summary) > MAX_SUMMARY or len(e.source) > MAX_NAME
               or any(len(h) > MAX_NAME for h in e.section) for e in digest.entries)


def _edition(digest: Digest, path: Path, scope: Scope, given: Edition | None) -> tuple[Edition, str]:
    """(the edition a digest file is for, the month its undated entries belong to), by the digest's cadence."""
    if scope.cadence == "weekly":
        edition = digest_week(digest, str(path), given)
        if edition is None:
            raise DigestError(f"{path}: cannot tell which week this digest is for; pass --week YYYY-Www")
        entry_month = digest.month or month_of(edition.bounds()[0])
    else:
        edition = digest_month(digest, str(path), given)
        if edition is None:
            raise DigestError(f"{path}: cannot tell which month this digest is for; pass --month YYYY-MM")
        entry_month = edition
    if out_of_range(edition):
        raise outside_years(str(path), edition)
    return edition, entry_month


def taxonomy(store: Store, scope: Scope = Scope()) -> tuple[SectionPath, ...]:
    """The section tree drafts use: that of the newest imported edition which has numbered sections
    (else of the newest one with any), keeping the sections of earlier ones it did not use (`merge_trees`)."""
    digests = [d for d in store.digests(digest=scope.digest) if d.sections]
    numbered = [d for d in digests if any(s and s[0][:1].isdigit() for s in d.sections)]
    return merge_trees([d.sections for d in (numbered or digests)])


def section_emoji(store: Store, scope: Scope = Scope()) -> dict[str, str]:
    """Section name -> the emoji the editor put before it ("💡 **News**"), newest edition winning."""
    out: dict[str, str] = {}
    for edition in store.digests(digest=scope.digest):
        out.update(edition.emoji)
    return out


def aligned_labels(store: Store, scope: Scope = Scope()) -> list[tuple[Edition, Label]]:
    """Every (edition, label) of the scope's digest, sections mapped onto its current taxonomy."""
    tree = taxonomy(store, scope)
    out = []
    for edition, label in store.training_labels(digest=scope.digest, feeds=scope.feeds):
        if label.section is not None:
            label = Label(label.candidate, align_section(label.section, tree), label.selected, label.editor_summary)
        out.append((edition, label))
    return out


def train_model(store: Store, *, now: datetime, scope: Scope = Scope()) -> Model:
    """Fit the models on every decision of the scope's digest, with the fetched posts of its feeds that
    nobody decided on as background. Nothing learned from another digest's labels reaches it."""
    from aggregator.learn.classify import train

    labels = [label for _edition, label in aligned_labels(store, scope)]
    return train(labels, background=store.fetched_posts(feeds=scope.feeds), now=now)


def _read(path: Path) -> tuple[Digest, Edition]:
    """A digest file (not imported) and its month, for --from/--to."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DigestError(f"{path}: cannot read: {exc}") from None
    digest = read_digest(text, path=str(path), style=None)
    month = digest_month(digest, str(path), None)
    if month is None:
        raise DigestError(f"{path}: cannot tell which month this digest is for")
    return digest, month


def _as_labels(digest: Digest, month: str, tree: Sequence[SectionPath], fetched: dict[str, Candidate]) -> list[Label]:
    """A digest's entries as picks; a post that was fetched is read as its feed gave it (with its opening)."""
    out = []
    for e in import_entries(digest, month):
        candidate = fetched.get(e.url) or Candidate(0, e.url, e.title, "", e.source, e.published)
        out.append(Label(candidate, align_section(e.section, tree), True))
    return out


def evaluate_editions(store: Store, *, now: datetime, last: int | None = None, progress: Progress = None,
                      scope: Scope = Scope(), first: Edition | None = None, cache: ReplayCache | None = None) -> Report:
    """Edition by edition, as the editor lived them: learn from every decision before e, predict e's
    decisions, then go on with e's decisions learned (only the `last` editions, or those from `first`,
    when given); every method on the same splits."""
    from aggregator.learn.evaluate import edition_splits, run

    splits = list(edition_splits(aligned_labels(store, scope), store.fetched_posts(feeds=scope.feeds)))
    splits = splits[-last:] if last else splits
    splits = [s for s in splits if first is None or s.name >= first]
    return run("edition by edition" if scope.cadence == "weekly" else "month by month", splits, now=now,
               progress=progress, cache=cache)


def evaluate_old_new(store: Store, old: Path, new: Path, *, now: datetime, progress: Progress = None,
                     scope: Scope = Scope()) -> Report:
    """Learn from an older version of a digest (read from its file, not imported), predict what the newer added."""
    from aggregator.learn.evaluate import old_to_new, run

    old_digest, old_month = _read(old)
    new_digest, new_month = _read(new)
    background = store.fetched_posts(feeds=scope.feeds)
    fetched = {c.url: c for c in background}
    tree = new_digest.sections
    covers = covered_months([e.month for e in new_digest.entries]) or [new_month]
    split = old_to_new(_as_labels(old_digest, old_month, tree, fetched), _as_labels(new_digest, new_month, tree, fetched),
                       background, [month_bounds(m) for m in covers])
    if not split.test:
        raise DigestError(f"{new}: adds no entry to {old}")
    return run(f"{old.name} -> {new.name}", [split], now=now, progress=progress)


def evaluate_loo(store: Store, edition: Edition | None, *, now: datetime, progress: Progress = None,
                 scope: Scope = Scope()) -> Report:
    """Leave one out over one imported edition's picks (default: the newest), everything else learned."""
    from aggregator.learn.evaluate import leave_one_out, run

    labels = aligned_labels(store, scope)
    editions = sorted({e for e, lb in labels if lb.selected})
    if not editions:
        raise ModelError("nothing to evaluate: import a digest first")
    edition = edition or editions[-1]
    if edition not in editions:
        raise ModelError(f"no imported digest for {edition} (imported: {', '.join(editions)})")
    splits = list(leave_one_out(labels, store.fetched_posts(feeds=scope.feeds), edition))
    return run(f"leave one out, {edition}", splits, now=now, progress=progress)
