"""The parse worker processes: their pool (forked from the pass, or from a clean server), and the watchdog that ends a worker whose pass has died."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor


def can_fork() -> bool:
    """Whether forking this process is safe: it runs no other thread, so no lock can be held at the fork."""
    return threading.active_count() == 1


def forked_parser_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes forked from this one, now, with the parser already imported: they share its pages and
    import nothing. Only while this process runs one thread (`can_fork`): the workers start before the
    pass's first fetch thread or socket, so they inherit neither."""
    import aggregator.poll.parse  # noqa: F401  (imported once, here, before the fork)

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_watch, initargs=(os.getpid(),))
    try:
        pool.submit(int).result()  # a fork pool starts every worker at its first task
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return pool


def parser_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes forked from a clean server process, for a pass whose fetch threads are running (forking
    its own process then is unsafe). The server imports the parser once, before it forks any worker; it never
    imports __main__, so no script is ever re-run."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["aggregator.poll.parse"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_watch, initargs=(os.getpid(),))


def _watch(pass_pid: int) -> None:
    """In each worker: exit as soon as the pass's process is gone, even if it was killed with SIGKILL.
    A worker waiting on its task queue holds that queue's write end itself, so it would never see EOF."""
    parent = os.getppid()

    def orphaned() -> bool:
        if os.getppid() != parent:
            return True
        try:
            os.kill(pass_pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def loop() -> None:
        while not orphaned():
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=loop, name="watch-pass", daemon=True).start()
