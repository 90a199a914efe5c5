"""Writing the files an editor owns (drafts, feeds.yaml, OPML, models): whole or not at all, and never through a planted link."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aggregator.errors import AggregatorError


class WriteError(AggregatorError):
    """A file could not be written; the message names it."""


def atomic_write(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Write `data` to `path` through a fresh, exclusively created temporary file in the same folder
    (an unpredictable name, so a planted `path.tmp` link redirects nothing), then rename it over `path`.
    The rename replaces a link at `path` itself, never the file it points to. With `replace=False`, an
    existing `path` (or a link there) is refused instead."""
    if path.is_dir():
        raise WriteError(f"{path}: is a folder, not a file")
    if not replace and (path.exists() or path.is_symlink()):
        raise WriteError(f"{path}: already exists; pass --force to overwrite")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise WriteError(f"{path}: cannot write: {exc.strerror or exc}") from None


@contextmanager
def folder_lock(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold an flock on `folder`/.lock for the block (shared for readers, exclusive for a writer of several
    files), so processes on this machine never see one writer's files mixed with another's. The lock file
    is opened without following a link; a folder that cannot hold it is used unlocked."""
    import fcntl

    try:
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock
