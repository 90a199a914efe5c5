"""Committing the published running file alone to its git repository, with git's plumbing under safe_git's protections."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aggregator.errors import DigestError
from aggregator.safe_git import filters_off, git

MAX_LISTED = 3  # staged files named in a refusal


@dataclass(frozen=True)
class Target:
    """Where a file sits in its repository."""

    repo: Path  # the working tree's top folder
    name: str  # the file's path inside it, with "/"
    head: str | None  # the commit HEAD names, None before the first commit


def target(path: Path) -> Target:
    """The repository holding `path` (DigestError when there is none)."""
    folder = path.absolute().parent
    try:
        top = git(folder, "rev-parse", "--show-toplevel").strip()
        prefix = git(folder, "rev-parse", "--show-prefix").strip()
    except DigestError:
        raise DigestError(f"{path}: not in a git repository, so --commit has nowhere to commit") from None
    try:
        head: str | None = git(folder, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").strip()
    except DigestError:
        head = None
    return Target(Path(top), prefix + path.name, head)


def others_staged(where: Target) -> list[str]:
    """The files staged in the repository's index other than the target file."""
    if where.head is None:
        names = git(where.repo, "ls-files", "--cached", "-z").split("\0")
    else:
        names = git(where.repo, "diff-index", "--cached", "--name-only", "--no-ext-diff", "--no-renames", "-z",
                    where.head, "--").split("\0")
    return sorted(n for n in names if n and n != where.name)


def check(path: Path) -> Target:
    """The repository to commit `path` to, after checking that nothing else is staged there (DigestError,
    naming a few of them, when something is)."""
    where = target(path)
    others = others_staged(where)
    if others:
        listed = ", ".join(others[:MAX_LISTED]) + (f" and {len(others) - MAX_LISTED} more" if len(others) > MAX_LISTED else "")
        raise DigestError(f"{where.repo} has other staged changes ({listed}): commit or unstage them first, "
                          "so the commit holds only the published file")
    return where


def commit_file(path: Path, message: str) -> str:
    """Commit the file at `path` as it is on disk, and nothing else, on the repository's current branch; the
    new commit's id. The file's bytes are stored as they are (no filter runs, on it or on any other file
    the index looks at), the index is updated for that one file, and the branch moves only if nothing else
    moved it meanwhile."""
    where = check(path)
    mode = "100755" if os.access(path, os.X_OK) else "100644"
    pins = filters_off(where.repo)  # writing the index may read files through their clean filter
    blob = git(where.repo, "hash-object", "-w", "--no-filters", "--", where.name).strip()
    git(where.repo, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{where.name}", pins=pins)
    tree = git(where.repo, "write-tree", pins=pins).strip()
    parents = ["-p", where.head] if where.head else []
    commit = git(where.repo, "commit-tree", "--no-gpg-sign", tree, *parents, "-m", message, user_config=True).strip()
    git(where.repo, "update-ref", "-m", f"publish: {message.splitlines()[0]}", "HEAD", commit, where.head or "")
    return commit
