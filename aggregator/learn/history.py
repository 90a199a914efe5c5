"""A running digest's git history as decisions: when each entry first appeared, where it ended up, when it was removed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from aggregator.errors import DigestError
from aggregator.learn.labels import align_section, import_entries
from aggregator.learn.reading import read_digest
from aggregator.models import Digest, Edition, ImportEntry, SectionPath, month_of
from aggregator.safe_git import git, git_command

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Version:
    """The digest file as one commit left it."""

    commit: str
    when: datetime  # the commit time, UTC: when the editor made the decisions it records
    digest: Digest


@dataclass
class _Seen:
    entry: ImportEntry
    first: datetime  # the decision time: the commit that first listed it
    present: bool = True
    moves: int = 0


@dataclass(frozen=True)
class Decisions:
    """One edition's decisions from the history: its picks (final sections) and the entries later removed."""

    edition: Edition  # the month of the commits that first listed them
    picks: tuple[ImportEntry, ...]
    removed: tuple[ImportEntry, ...]
    moved: int = 0
    sections: tuple[SectionPath, ...] = field(default=())


def _same_post(a: ImportEntry, b: ImportEntry) -> bool:
    """Whether two entries are one post under two links: the same title, word for word."""
    return _WORD.findall(a.title.casefold()) == _WORD.findall(b.title.casefold())


def decisions(versions: Sequence[Version]) -> list[Decisions]:
    """The editor's decisions, edition by edition, from the file's versions oldest first (pure).

    An entry is picked in the month of the commit that first listed it, under the section of the last
    version that lists it; one that a later version drops is a non-pick from then on, unless the same
    commit lists a post of the same title under another link (a URL change, not a rejection)."""
    seen: dict[str, _Seen] = {}
    for version in versions:
        tree = versions[-1].digest.sections
        month = version.digest.month or month_of(version.when)
        current = {e.url: e for e in import_entries(version.digest, month)}
        gone = [url for url, s in seen.items() if s.present and url not in current]
        for url, entry in current.items():
            aligned = ImportEntry(entry.url, entry.title, entry.source, entry.published,
                                  align_section(entry.section, tree), entry.editor_summary)
            old = seen.get(url)
            if old is None:
                renamed = next((g for g in gone if _same_post(seen[g].entry, aligned)), None)
                first = seen[renamed].first if renamed else version.when
                if renamed:
                    gone.remove(renamed)
                    del seen[renamed]
                seen[url] = _Seen(aligned, first)
            else:
                old.moves += old.entry.section != aligned.section
                old.entry, old.present = aligned, True
        for url in gone:
            seen[url].present = False
    by_edition: dict[Edition, list[_Seen]] = {}
    for s in seen.values():
        by_edition.setdefault(Edition.month(s.first), []).append(s)
    sections = versions[-1].digest.sections if versions else ()
    return [Decisions(e, tuple(s.entry for s in group if s.present), tuple(s.entry for s in group if not s.present),
                      sum(s.moves for s in group), sections)
            for e, group in sorted(by_edition.items())]


# Every git call goes through _git_command (aggregator/safe_git.py): plumbing only, and no repository config
# can make it run a program.
_git_command = git_command


def _git(repo: Path, *args: str) -> str:
    return git(repo, *args)


def versions(repo: Path, file: str) -> list[Version]:
    """Every commit of `repo` that changed `file`, oldest first, with the file as it left it."""
    if not repo.is_dir():
        raise DigestError(f"{repo}: no such folder")
    try:
        _git(repo, "rev-parse", "--git-dir")
    except DigestError:
        raise DigestError(f"{repo}: not a git repository") from None
    try:
        _git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except DigestError:
        raise DigestError(f"{repo}: no commit has {file}") from None  # a repository with no commit yet
    log = _git(repo, "rev-list", "--reverse", "--timestamp", "HEAD", "--", file).split("\n")
    commits = [line.split()[::-1] for line in log if line.strip()]  # "<commit time> <sha>" -> (sha, time)
    if not commits:
        raise DigestError(f"{repo}: no commit has {file}")
    out = []
    for sha, stamp in commits:
        try:
            text = _git(repo, "cat-file", "-p", f"{sha}:{file}")
        except DigestError:
            continue  # the commit deleted the file
        try:
            digest = read_digest(text, path=f"{file}@{sha[:7]}", style="house")
        except DigestError:
            continue  # a version that is no digest (yet) teaches nothing
        out.append(Version(sha, datetime.fromtimestamp(int(stamp), tz=timezone.utc), digest))
    if not out:
        raise DigestError(f"{repo}: no version of {file} reads as a house-style digest")
    return out
