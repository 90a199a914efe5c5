"""Writing the files an editor owns (drafts, feeds.yaml, OPML, models): whole or not at all, never through a planted
temporary link, keeping the file's mode, and through a link only where the editor keeps a running file behind one."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aggregator.errors import AggregatorError


class WriteError(AggregatorError):
    """A file could not be written; the message names it."""


def _default_mode() -> int:
    """The mode open() gives a new file: 0o666 less the process umask (read without changing it for long)."""
    try:  # Linux reports it without the process-wide set-and-restore below
        with open("/proc/self/status", encoding="ascii") as fh:
            umask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, data: bytes, *, replace: bool = True, follow_links: bool = False) -> None:
    """Write `data` to `path` through a fresh, exclusively created temporary file (an unpredictable name,
    so a planted `path.tmp` link redirects nothing), then rename it over the file.

    The file keeps its mode (and, where permitted, its owner); a new file gets what open() would give it
    (0o666 less the umask), not mkstemp's 0600.

    With `follow_links=False` (drafts, exported OPML, models) a link at `path` is itself replaced, never the
    file it points to. With `follow_links=True` (the editor's own running files: the README `publish --into`
    writes, the feeds.yaml `feeds import-opml` extends) a link at `path` is written through: the temporary
    file goes into the target's folder and replaces the target, and the link stays. A file with more than one
    hard link is written in place instead of renamed over, so every name keeps seeing it: the new content is
    first written whole and fsynced to the temporary file, then copied into the file (truncate, write, fsync).

    With `replace=False`, an existing `path` (or a link there) is refused instead."""
    if path.is_dir():
        raise WriteError(f"{path}: is a folder, not a file")
    if not replace and (path.exists() or path.is_symlink()):
        raise WriteError(f"{path}: already exists; pass --force to overwrite")
    target = Path(os.path.realpath(path)) if follow_links else path
    if target.is_dir():
        raise WriteError(f"{path}: is a folder, not a file")
    tmp = None
    try:
        try:
            old = os.stat(target, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None and not stat.S_ISREG(old.st_mode):
            old = None  # a link being replaced (or something odd): the new file gets the default mode
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), stat.S_IMODE(old.st_mode) if old is not None else _default_mode())
            if old is not None:
                try:
                    os.fchown(fh.fileno(), old.st_uid, old.st_gid)
                except PermissionError:
                    pass
        if follow_links and old is not None and old.st_nlink > 1:
            _copy_in_place(target, data)
            Path(tmp).unlink(missing_ok=True)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise WriteError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _copy_in_place(target: Path, data: bytes) -> None:
    """Overwrite a hard-linked file's content where it is (truncate, write, fsync), keeping its inode."""
    fd = os.open(target, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "wb") as fh:
        fh.truncate(0)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


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
