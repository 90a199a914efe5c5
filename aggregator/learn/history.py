"""A running digest's git history as decisions: when each entry first appeared, where it ended up, when it was removed."""

from __future__ import annotations

import dataclasses
import itertools
import re
import subprocess
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from aggregator.errors import DigestError
from aggregator.learn.labels import align_section, busy_editions, entry_edition, import_entries
from aggregator.learn.reading.versions import HouseVersions
from aggregator.models import Cadence, Digest, DigestEntry, Edition, ImportEntry, SectionPath, month_of
from aggregator.safe_git import GIT_TIMEOUT, git, git_command

_WORD = re.compile(r"\w+")
_RECENT_BLOBS = 8  # versions kept by blob id, so that a commit restoring a recent version reads nothing again
Progress = Callable[[int, int], None] | None
_UNREAD = object()


@dataclass(frozen=True)
class Version:
    """The digest file as one commit left it."""

    commit: str
    when: datetime  # the commit time, UTC: when the editor made the decisions it records
    digest: Digest


@dataclass
class _Seen:
    """One entry's state through the history: as the last version listing it wrote it (its section as written,
    aligned to the final tree only at the end), when it was first listed, and the sections it went through."""

    entry: ImportEntry
    first: datetime  # the decision time: the commit that first listed it
    order: int  # when it entered the state (a URL change enters anew): ties among dropped posts go to the oldest
    sections: list[SectionPath]  # each section it was listed under, one per change
    times: list[datetime]  # the commit that listed it under each of `sections`
    listed: datetime  # the last commit that listed it anew (first, or again after a drop) or dropped it
    present: bool = True
    known: bool = False  # listed in the version the reading started from (--since): decided before this history
    before: _Seen | None = None  # the same post under the link it had before (a URL change)

    def changed(self, tree: Sequence[SectionPath]) -> datetime:
        """The commit that last changed the editor's decision on the post: listed, moved (in the final
        tree's sections: a heading renamed moves nothing), dropped."""
        aligned = [align_section(x, tree) for x in self.sections]
        when = max([self.listed, *(t for t, a, b in zip(self.times[1:], aligned, aligned[1:]) if a != b)])
        return when if self.before is None else max(when, self.before.changed(tree))


@dataclass(frozen=True)
class Seen:
    """One post's course through the file's history."""

    entry: ImportEntry  # as the last version that listed it gives it (its final section, in the final tree)
    first: datetime  # the commit that first listed it
    changed: datetime  # the commit that last changed the editor's decision on it: listed, moved, dropped
    present: bool = True
    moves: int = 0
    known: bool = False  # listed in the version the reading started from (--since): decided before this history


@dataclass(frozen=True)
class Decisions:
    """One edition's decisions from the history: its picks (final sections) and the entries later removed."""

    edition: Edition  # the edition the entries' own dates put them in (`entry_edition`)
    picks: tuple[ImportEntry, ...]
    removed: tuple[ImportEntry, ...]
    moved: int = 0
    sections: tuple[SectionPath, ...] = field(default=())
    covered: bool = True  # the history lists enough of the edition to speak for all of it (`busy_editions`)
    decided_at: Mapping[str, datetime] = field(default_factory=dict)  # link -> the commit that last decided on it


def _same_post(a: ImportEntry, b: ImportEntry) -> bool:
    """Whether two entries are one post under two links: the same title, word for word."""
    return _WORD.findall(a.title.casefold()) == _WORD.findall(b.title.casefold())


def decisions(versions: Iterable[Version], *, since: Version | None = None, cadence: Cadence = "monthly",
              dates: Mapping[str, datetime] | None = None) -> list[Decisions]:
    """The editor's decisions, edition by edition, from the file's versions oldest first (pure; the versions
    may be a stream: each is folded into per-entry state and let go).

    An entry is picked under the section of the last version that lists it, in the edition its own date
    puts it in (`entry_edition`: the month it printed, else its post's publication date from `dates`, link
    -> date where known, else the edition of the commit that first listed it); one that a later version
    drops is a non-pick there from then on, unless the same commit lists a post of the same title under
    another link (a URL change, not a rejection). Each decision carries the time of the commit that made
    it. `since`: the version the history starts from; its entries were decided before, and only what came
    after is returned."""
    states, tree = entry_states(versions, since=since)
    return group_decisions(states, cadence, dates or {}, tree)


def entry_states(versions: Iterable[Version], *, since: Version | None = None
                 ) -> tuple[list[Seen], tuple[SectionPath, ...]]:
    """Each post's course through the file's versions, oldest first (pure; a stream is folded version by
    version), and the newest version's sections: first listed, last decided on, final section, and whether
    the newest version still lists it. With `since`, the posts its version lists are `known`. No version
    after `since`: nothing."""
    state = _State()
    if since is not None:
        state.fold(since)
        for s in state.seen.values():
            s.known = True
    last = None
    for version in versions:
        state.fold(version)
        last = version
    if last is None:
        return [], ()
    tree = last.digest.sections
    out = []
    for s in state.seen.values():
        aligned = [align_section(x, tree) for x in s.sections]
        moves = sum(a != b for a, b in zip(aligned, aligned[1:]))
        out.append(Seen(dataclasses.replace(s.entry, section=aligned[-1]), s.first, s.changed(tree), s.present,
                        moves, s.known))
    return out, tree


def group_decisions(states: Sequence[Seen], cadence: Cadence, dates: Mapping[str, datetime],
                    sections: tuple[SectionPath, ...] = ()) -> list[Decisions]:
    """Posts' courses (`entry_states`) grouped into the editions they belong to, oldest first (pure). The
    `known` posts count towards which editions the history speaks for whole (as they do when the whole
    history is read), and are left out of the decisions."""
    by_edition: dict[Edition, list[Seen]] = {}
    counts: Counter[Edition] = Counter()
    for s in states:
        edition = entry_edition(cadence, printed=s.entry.printed, published=dates.get(s.entry.url),
                                fallback=Edition.of(cadence, s.first))
        counts[edition] += 1
        if not s.known:
            entry = dataclasses.replace(s.entry, published=edition.bounds()[0])
            by_edition.setdefault(edition, []).append(dataclasses.replace(s, entry=entry))
    busy = set(busy_editions(counts))
    return [Decisions(e, tuple(s.entry for s in group if s.present), tuple(s.entry for s in group if not s.present),
                      sum(s.moves for s in group), sections, e in busy, {s.entry.url: s.changed for s in group})
            for e, group in sorted(by_edition.items())]


class _State:
    """The fold of the versions so far: each entry's state, and what the last version listed."""

    def __init__(self) -> None:
        self.seen: dict[str, _Seen] = {}
        self.listed: set[str] = set()  # the URLs the version before listed
        self.imported: dict[tuple[object, ...], ImportEntry | None] = {}  # the version before's entries, imported
        self.month: str | None = None  # the month they were imported for
        self.order = itertools.count()

    def fold(self, version: Version) -> None:
        """Fold one version in: entries first listed, listed again (their latest wording and section), dropped."""
        month = version.digest.month or month_of(version.when)
        before = self.imported if month == self.month else {}
        imported: dict[tuple[object, ...], ImportEntry | None] = {}
        current: dict[str, ImportEntry] = {}
        for entry in version.digest.entries:
            key = (entry.title, entry.url, entry.section, entry.source, entry.month, entry.summary)  # all but its line
            got = imported.get(key, _UNREAD)
            if got is _UNREAD:
                got = imported[key] = before[key] if key in before else _import(version.digest, entry, month)
            if got is not None:
                current.setdefault(got.url, got)  # the first of duplicates wins
        self.imported, self.month = imported, month
        seen = self.seen
        when = version.when
        gone = sorted((url for url in self.listed if url not in current), key=lambda url: seen[url].order)
        for url, entry in current.items():
            old = seen.get(url)
            if old is None:
                renamed = next((g for g in gone if _same_post(seen[g].entry, entry)), None)
                if renamed:  # the same post: its decisions so far carry over, its moves start again
                    gone.remove(renamed)
                    was = seen.pop(renamed)
                    seen[url] = _Seen(entry, was.first, next(self.order), [entry.section], [when], was.listed,
                                      known=was.known, before=was)
                else:
                    seen[url] = _Seen(entry, when, next(self.order), [entry.section], [when], when)
            elif old.entry is not entry or not old.present:
                if entry.section != old.sections[-1]:
                    old.sections.append(entry.section)
                    old.times.append(when)
                if not old.present:
                    old.listed = when
                old.entry, old.present = entry, True
        for url in gone:
            seen[url].present, seen[url].listed = False, when
        self.listed = set(current)


def _import(digest: Digest, entry: DigestEntry, month: str) -> ImportEntry | None:
    """One entry of the digest as `import_entries` makes it; None when it has no http(s) link."""
    made = import_entries(dataclasses.replace(digest, entries=(entry,)), month)
    return made[0] if made else None


# Every git call goes through _git_command (aggregator/safe_git.py): plumbing only, and no repository config
# can make it run a program.
_git_command = git_command


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    return git(repo, *args, stdin=stdin)


@dataclass
class History:
    """A digest file's history, listed but not read yet: the commits that changed it, oldest first."""

    repo: Path
    file: str
    commits: tuple[tuple[str, datetime, str | None], ...]  # (commit, its time, the file's blob; None: deleted)
    since: Version | None = None  # the file as the commit --since names left it, when it reads as a digest
    parsed: int = 0  # versions parsed so far: each blob not among the few read last
    reader: HouseVersions = field(default_factory=HouseVersions, repr=False)


def history(repo: Path, file: str, *, since: str | None = None) -> History:
    """The commits of `repo`'s HEAD that changed `file` (after the commit `since` names, when given), each
    with the file's blob id; the version at `since` read. DigestError names what is wrong."""
    if not repo.is_dir():
        raise DigestError(f"{repo}: no such folder")
    if not file or "\n" in file or file.startswith("/"):
        raise DigestError(f"--file {file!r}: not a path inside the repository")
    try:
        _git(repo, "rev-parse", "--git-dir")
    except DigestError:
        raise DigestError(f"{repo}: not a git repository") from None
    try:
        _git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except DigestError:
        raise DigestError(f"{repo}: no commit has {file}") from None  # a repository with no commit yet
    base = None
    if since is not None:
        try:
            if since.startswith("-") or not since.strip() or any(c in since for c in "\n\r\0"):
                raise DigestError(since)
            base = _git(repo, "rev-parse", "--verify", "--quiet", f"{since}^{{commit}}").strip()
        except DigestError:
            raise DigestError(f"--since {since!r}: no such commit in {repo}") from None
    log = _git(repo, "rev-list", "--reverse", "--timestamp", "HEAD", *([f"^{base}"] if base else []), "--", file)
    listed = [line.split() for line in log.split("\n") if line.strip()]  # "<commit time> <sha>"
    if not listed and base is None:
        raise DigestError(f"{repo}: no commit has {file}")
    shas = [sha for _stamp, sha in listed] + ([base] if base else [])
    blobs = _blob_ids(repo, file, shas)
    found = History(repo, file, tuple((sha, datetime.fromtimestamp(int(stamp), tz=timezone.utc), blobs[sha])
                                      for stamp, sha in listed))
    if base is not None and blobs[base] is not None:
        stamp = _git(repo, "rev-list", "-1", "--timestamp", base).split()[0]
        digest = _read(found, _git(repo, "cat-file", "blob", blobs[base]), base)
        found.since = None if digest is None else Version(base, datetime.fromtimestamp(int(stamp), tz=timezone.utc), digest)
    return found


def read_versions(found: History, progress: Progress = None) -> Iterator[Version]:
    """The file as each listed commit left it, oldest first, read as a stream: a commit that leaves the same
    blob as one of the last few read is not parsed again. `progress(i, n)` after each commit."""
    recent: OrderedDict[str, Digest | None] = OrderedDict()  # blob id -> its digest, None: not a digest
    total = len(found.commits)
    count = 0
    with _Blobs(found.repo) as reader:
        for i, (sha, when, blob) in enumerate(found.commits, start=1):
            if blob is not None:
                if blob in recent:
                    recent.move_to_end(blob)
                    digest = recent[blob]
                else:
                    digest = recent[blob] = _read(found, reader.read(blob).decode("utf-8", "replace"), sha)
                    if len(recent) > _RECENT_BLOBS:
                        recent.popitem(last=False)
                if digest is not None:
                    count += 1
                    yield Version(sha, when, digest)
            if progress is not None:
                progress(i, total)
    if not count and found.since is None:
        raise DigestError(f"{found.repo}: no version of {found.file} reads as a house-style digest")


def _read(found: History, text: str, sha: str) -> Digest | None:
    """One version of the file read as a house-style digest; None when it is none (yet): it teaches nothing."""
    found.parsed += 1
    try:
        return found.reader.read(text, f"{found.file}@{sha[:7]}")
    except DigestError:
        return None


def _blob_ids(repo: Path, file: str, shas: list[str]) -> dict[str, str | None]:
    """commit -> the blob `file` has in it (None: it has no such file, or not as a file)."""
    if not shas:
        return {}
    out = _git(repo, "cat-file", "--batch-check", stdin="".join(f"{sha}:{file}\n" for sha in shas).encode())
    lines = out.split("\n")
    found: dict[str, str | None] = {}
    for sha, line in zip(shas, lines):
        parts = line.split()
        found[sha] = parts[0] if len(parts) == 3 and parts[1] == "blob" else None
    return found


class _Blobs:
    """One `git cat-file --batch` reading blobs by id, one at a time; a read that waits on git longer than
    GIT_TIMEOUT ends it."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        command, env = _git_command(repo, "cat-file", "--batch")
        try:
            self._git = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, env=env)
        except FileNotFoundError:
            raise DigestError("the git command is not installed") from None
        self._deadline: float | None = None
        self._stop = threading.Event()
        self._expired = False
        self._watch = threading.Thread(target=self._watchdog, name="git-watchdog", daemon=True)
        self._watch.start()

    def __enter__(self) -> _Blobs:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for pipe in (self._git.stdin, self._git.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self._git.wait(timeout=GIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._git.kill()
            self._git.wait()
        self._watch.join()

    def read(self, blob: str) -> bytes:
        """The blob's bytes."""
        stdin, stdout = self._git.stdin, self._git.stdout
        assert stdin is not None and stdout is not None
        self._deadline = time.monotonic() + GIT_TIMEOUT
        try:
            stdin.write(f"{blob}\n".encode())
            stdin.flush()
            header = stdout.readline().split()
            data = _read_exactly(stdout, int(header[2])) if len(header) == 3 and header[1] == b"blob" else None
            if data is not None:
                stdout.read(1)  # the newline after the contents
        except (OSError, ValueError):
            data = None
        finally:
            self._deadline = None
        if data is None:
            if self._expired:
                raise DigestError(f"{self.repo}: git took longer than {GIT_TIMEOUT} s")
            raise DigestError(f"{self.repo}: git could not read blob {blob}")
        return data

    def _watchdog(self) -> None:
        while not self._stop.wait(0.5):
            deadline = self._deadline
            if deadline is not None and time.monotonic() > deadline:
                self._expired = True
                self._git.kill()
                return


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    """`size` bytes from the stream; None when it ends first."""
    data = stream.read(size)
    return data if len(data) == size else None


def changed_since(since: Version, last: Version) -> int:
    """How many entries the `since` version lists that the last one no longer lists, or lists under another
    section: their decisions belong to editions before `since`, which a read from there cannot revise."""
    month = since.digest.month or month_of(since.when)
    now = {e.url: e.section for e in import_entries(last.digest, last.digest.month or month_of(last.when))}
    tree = last.digest.sections
    return sum(1 for e in import_entries(since.digest, month)
               if e.url not in now or align_section(e.section, tree) != align_section(now[e.url], tree))
