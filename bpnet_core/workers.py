"""Worker processes that end with the process that started them: :func:`process_pool`.

``dataset_convert`` and ``synthetic_data`` render or convert images in a pool of ``spawn`` worker processes. A verb
killed with SIGKILL (an OOM kill, a preempted cluster job) runs no clean-up code, so its workers must notice on their
own that it is gone, or they stay behind for good, adopted by init (and hold the standard-error pipe of the ``bpnet``
console script, see :mod:`bpnet_core.verbosity`). Each worker therefore, as it starts (:func:`_start_worker`):

* asks Linux for a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``): the kernel kills the worker when the
  thread that started it ends, at once, whatever the worker is doing;
* runs a daemon thread that checks its parent's pid twice a second and ends the worker when the parent has changed
  (the same guarantee on other systems, and on Linux when the pool was started from a thread that ended early);
* ignores SIGINT: Ctrl-C reaches the whole foreground process group, and the verb, not each worker, handles it
  (:func:`process_pool` stops the workers and the verb prints ``bpnet: interrupted``). A worker is started with
  SIGINT blocked (the mask is inherited through fork and exec), so one still starting when Ctrl-C comes prints no
  traceback either; the verb receives the signal as soon as the worker is started.

multiprocessing's resource tracker ends by itself once the verb and the workers are gone (it reads a pipe they hold).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing.context
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

#: seconds between two checks of the parent's pid in a worker
PARENT_POLL_S = 0.5
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """End this process when process ``parent_pid`` (its parent) ends: parent-death signal on Linux, plus a thread
    that polls the parent's pid. If the parent is already gone, end now."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="bpnet-parent-watch", daemon=True).start()


def _start_worker(parent_pid: int, initializer: Callable[[], None] | None) -> None:
    """The initializer of every :func:`process_pool` worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer()


class _SpawnProcess(multiprocessing.context.SpawnProcess):
    def start(self) -> None:
        if not hasattr(signal, "pthread_sigmask"):
            return super().start()
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _SpawnContext(multiprocessing.context.SpawnContext):
    Process = _SpawnProcess


@contextlib.contextmanager
def process_pool(workers: int, initializer: Callable[[], None] | None = None) -> Iterator[ProcessPoolExecutor]:
    """A ``spawn`` :class:`~concurrent.futures.ProcessPoolExecutor` of ``workers`` processes that die with this
    process. ``initializer`` (a module-level function) runs in each worker after the set-up. Leaving the block with
    an exception cancels the pending tasks; on Ctrl-C (KeyboardInterrupt) or SystemExit the workers are also
    terminated at once rather than waited for (one killed while writing leaves at most a temporary file beside its
    output, as a SIGKILL would: the atomic writers never leave a partial file under a final name); on any other
    exception the tasks in flight finish first."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_SpawnContext(),
                               initializer=_start_worker, initargs=(os.getpid(), initializer))  # fmt: skip
    try:
        yield pool
    except (KeyboardInterrupt, SystemExit):
        processes = list((getattr(pool, "_processes", None) or {}).values())  # private, but there since 3.2
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            with contextlib.suppress(Exception):
                proc.terminate()
        for proc in processes:
            with contextlib.suppress(Exception):
                proc.join(timeout=5)
        raise
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)
