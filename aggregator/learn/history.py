"""A running digest's git history as decisions: when each entry first appeared, where it ended up, when it was removed."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from aggregator.errors import DigestError
from aggregator.learn.labels import align_section, busy_editions, entry_edition, import_entries
from aggregator.learn.reading import read_digest
from aggregator.models import Cadence, Digest, Edition, ImportEntry, SectionPath, month_of

GIT_TIMEOUT = 60  # seconds one git command may take
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Version:
    """The digest file as one commit left it."""

    commit: str
    when: datetime  # the commit time, UTC: when the editor made the decisions it records
    digest: Digest


@dataclass
class Seen:
    """One post's course through the file's history."""

    entry: ImportEntry  # as the last version that listed it gives it (its final section)
    first: datetime  # the commit that first listed it
    changed: datetime  # the commit that last changed the editor's decision on it: listed, moved, dropped
    present: bool = True
    moves: int = 0


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


def entry_states(versions: Sequence[Version]) -> list[Seen]:
    """Each post's course through the file's versions, oldest first (pure): first listed, last decided on,
    final section, and whether the newest version still lists it. A post dropped by a commit that lists a
    post of the same title under another link is that post (a URL change, not a rejection)."""
    seen: dict[str, Seen] = {}
    for version in versions:
        tree = versions[-1].digest.sections
        month = version.digest.month or month_of(version.when)
        current = {e.url: e for e in import_entries(version.digest, month)}
        gone = [url for url, s in seen.items() if s.present and url not in current]
        for url, entry in current.items():
            aligned = dataclasses.replace(entry, section=align_section(entry.section, tree))
            old = seen.get(url)
            if old is None:
                renamed = next((g for g in gone if _same_post(seen[g].entry, aligned)), None)
                first, changed = ((seen[renamed].first, seen[renamed].changed) if renamed
                                  else (version.when, version.when))
                if renamed:
                    gone.remove(renamed)
                    del seen[renamed]
                seen[url] = Seen(aligned, first, changed)
            else:
                moved = old.entry.section != aligned.section
                old.moves += moved
                if moved or not old.present:
                    old.changed = version.when
                old.entry, old.present = aligned, True
        for url in gone:
            seen[url].present, seen[url].changed = False, version.when
    return list(seen.values())


def decisions(versions: Sequence[Version], cadence: Cadence = "monthly",
              dates: Mapping[str, datetime] | None = None) -> list[Decisions]:
    """The editor's decisions, edition by edition, from the file's versions oldest first (pure).

    An entry is picked under the section of the last version that lists it, in the edition its own date
    puts it in (`entry_edition`: the month it printed, else its post's publication date from `dates`, link
    -> date where known, else the edition of the commit that first listed it); one that a later version
    drops is a non-pick there from then on. Each decision carries the time of the commit that made it."""
    return group_decisions(entry_states(versions), cadence, dates or {},
                           versions[-1].digest.sections if versions else ())


def group_decisions(states: Sequence[Seen], cadence: Cadence, dates: Mapping[str, datetime],
                    sections: tuple[SectionPath, ...] = ()) -> list[Decisions]:
    """Posts' courses (`entry_states`) grouped into the editions they belong to, oldest first (pure)."""
    by_edition: dict[Edition, list[Seen]] = {}
    for s in states:
        edition = entry_edition(cadence, printed=s.entry.printed, published=dates.get(s.entry.url),
                                fallback=Edition.of(cadence, s.first))
        entry = dataclasses.replace(s.entry, published=edition.bounds()[0])
        by_edition.setdefault(edition, []).append(Seen(entry, s.first, s.changed, s.present, s.moves))
    busy = set(busy_editions({e: len(group) for e, group in by_edition.items()}))
    return [Decisions(e, tuple(s.entry for s in group if s.present), tuple(s.entry for s in group if not s.present),
                      sum(s.moves for s in group), sections, e in busy, {s.entry.url: s.changed for s in group})
            for e, group in sorted(by_edition.items())]


# A repository is data, never code: its own config must not make a read run anything. Every git call goes
# through _git_command, which reads with plumbing only (rev-parse, rev-list, cat-file: no diffs, so no
# diff.external or textconv; no signature checks, so no gpg.*program) and pins, over any config file, each
# setting that could still name a program: the fsmonitor hook, hooks, the pager, signature programs, and any
# transport (a partial clone's lazy fetch would otherwise run core.sshCommand or remote.*.uploadpack).
_SAFE_CONFIG = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "log.showSignature=false",
    "gpg.program=false",
    "gpg.openpgp.program=false",
    "gpg.x509.program=false",
    "gpg.ssh.program=false",
    "protocol.allow=never",
)
_SAFE_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",  # neither the system's nor the user's config files: only the repository's
    "GIT_CONFIG_GLOBAL": "/dev/null",  # (git >= 2.32), overridden by the settings above
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_PAGER": "cat",
    "GIT_NO_LAZY_FETCH": "1",  # git >= 2.44; protocol.allow=never covers older ones
    "GIT_OPTIONAL_LOCKS": "0",
}
_UNSAFE_ENV = ("GIT_EXTERNAL_DIFF", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_ASKPASS", "GIT_PROXY_COMMAND")


def _git_command(repo: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one git read of `repo` that no repository config can make run a program."""
    config = [part for setting in _SAFE_CONFIG for part in ("-c", setting)]
    env = {k: v for k, v in os.environ.items() if k not in _UNSAFE_ENV}
    return ["git", "--no-pager", *config, "-C", str(repo), *args], {**env, **_SAFE_ENV}


def _git(repo: Path, *args: str) -> str:
    command, env = _git_command(repo, *args)
    try:
        done = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, env=env, timeout=GIT_TIMEOUT,
                              check=False)
    except FileNotFoundError:
        raise DigestError("the git command is not installed") from None
    except subprocess.TimeoutExpired:
        raise DigestError(f"{repo}: git took longer than {GIT_TIMEOUT} s") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DigestError(f"{repo}: {message[0] if message else 'git failed'}")
    return done.stdout.decode("utf-8", "replace")


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
