"""The parse worker processes: their pool, and the watchdog that ends a worker whose pass has died."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor


def parser_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes forked from a clean server process (forking the pass's own process is unsafe: its
    fetch threads are running). The server imports the parser once, before it forks any worker; it never
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
