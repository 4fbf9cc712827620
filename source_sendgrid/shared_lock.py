"""The locks worker processes share, which a process killed while holding them cannot keep.

A multiprocessing lock is a semaphore: a worker killed (SIGKILL, the out-of-memory killer) between taking
and giving it back leaves it taken, and every other worker then waits on it forever. This lock is a POSIX
robust mutex in shared memory: when its holder dies, the kernel marks it, and the next process to take it
gets it, with word that its holder died. Its critical sections are a few counter updates (nothing waits
while holding it), so a lock not obtained within `HOLD_LIMIT_SECONDS` is a bug, and fails the stream
clearly instead of hanging the sync.

A long job the others wait for (the sync's contacts export, minutes to create) is a `Claim` instead: a
record of who does it, read and written under such a lock, never a lock held while the job waits.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading
import time
from multiprocessing import sharedctypes
from typing import Any, Optional

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

HOLD_LIMIT_SECONDS = 30.0
# Larger than pthread_mutex_t (40 bytes on x86-64, 48 on arm64) and pthread_mutexattr_t on any Linux libc.
_MUTEX_BYTES = 64
_ATTR_BYTES = 16
_PTHREAD_PROCESS_SHARED = 1
_PTHREAD_MUTEX_ROBUST = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _libc() -> Optional[Any]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for name in ("pthread_mutexattr_init", "pthread_mutexattr_setpshared", "pthread_mutexattr_setrobust",
                     "pthread_mutex_init", "pthread_mutex_timedlock", "pthread_mutex_consistent",
                     "pthread_mutex_unlock", "pthread_mutexattr_destroy"):
            getattr(libc, name)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def available() -> bool:
    """Whether this platform has robust process-shared mutexes (Linux with glibc or musl)."""
    return _LIBC is not None


class SharedLockTimeout(AirbyteTracedException):
    """The stream that waited fails with this message, not a generic crash."""


class ProcessLock:
    """A lock for the threads of every process forked after it was made. `with lock:` waits at most
    HOLD_LIMIT_SECONDS; a holder that died is no obstacle."""

    def __init__(self, name: str):
        if _LIBC is None:
            raise RuntimeError("robust process-shared locks are not available on this platform")
        self.name = name
        self._mutex = sharedctypes.RawArray(ctypes.c_char, _MUTEX_BYTES)
        attr = ctypes.create_string_buffer(_ATTR_BYTES)
        _check(_LIBC.pthread_mutexattr_init(attr), "pthread_mutexattr_init")
        _check(_LIBC.pthread_mutexattr_setpshared(attr, _PTHREAD_PROCESS_SHARED), "pthread_mutexattr_setpshared")
        _check(_LIBC.pthread_mutexattr_setrobust(attr, _PTHREAD_MUTEX_ROBUST), "pthread_mutexattr_setrobust")
        _check(_LIBC.pthread_mutex_init(self._mutex, attr), "pthread_mutex_init")
        _LIBC.pthread_mutexattr_destroy(attr)

    def acquire(self, timeout: Optional[float] = None) -> bool:
        """True once held (also when the previous holder died holding it), False after `timeout` seconds
        (HOLD_LIMIT_SECONDS by default)."""
        deadline = time.time() + (HOLD_LIMIT_SECONDS if timeout is None else timeout)
        when = _Timespec(int(deadline), int((deadline % 1) * 1e9))
        # ctypes lets go of the GIL during the call: other threads run while this one waits.
        result = _LIBC.pthread_mutex_timedlock(self._mutex, ctypes.byref(when))  # type: ignore[union-attr]
        if result == errno.EOWNERDEAD:
            # Its holder died inside a critical section: what it guards is a few counters, at worst one
            # update short, which is better than every other worker stopping.
            _check(_LIBC.pthread_mutex_consistent(self._mutex), "pthread_mutex_consistent")  # type: ignore[union-attr]
            return True
        if result == errno.ETIMEDOUT:
            return False
        _check(result, "pthread_mutex_timedlock")
        return True

    def release(self) -> None:
        _check(_LIBC.pthread_mutex_unlock(self._mutex), "pthread_mutex_unlock")  # type: ignore[union-attr]

    def __enter__(self) -> "ProcessLock":
        if not self.acquire():
            message = (f"The lock on the {self.name} that the worker processes share was not free within "
                       f"{HOLD_LIMIT_SECONDS:g} seconds (process {os.getpid()}). Nothing waits while holding it, so "
                       "this is a bug in the connector: run the sync again, and report it if it happens again.")
            raise SharedLockTimeout(message=message, internal_message=message, failure_type=FailureType.system_error)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _check(result: int, call: str) -> None:
    if result != 0:
        raise OSError(result, f"{call}: {os.strerror(result)}")


class _Claimant(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_int64), ("thread", ctypes.c_uint64)]  # pid 0: nobody


class Claim:
    """Who is doing a long job that the others wait for instead of doing it too (the sync's contacts export).
    `with claim:` waits until no live thread or process holds the claim, then holds it until the block ends.
    Unlike a lock held for the job, the claim is a record guarded by short critical sections: a waiter holds
    nothing while it waits, and takes the claim over when its holder died (killed, out of memory)."""

    POLL_SECONDS = 0.2

    def __init__(self, name: str):
        self.name = name
        self._guard: Any = threading.Lock()
        self._claimant: Any = _Claimant()

    def share_with_processes(self) -> None:
        """Processes forked from now on wait for and take over this same claim (needs `available()`)."""
        self._guard = ProcessLock(self.name)
        self._claimant = sharedctypes.RawValue(_Claimant)

    def __enter__(self) -> "Claim":
        me = (os.getpid(), threading.get_ident())
        while True:
            with self._guard:
                claimant = self._claimant
                if not claimant.pid or not _alive(claimant.pid, claimant.thread):
                    claimant.pid, claimant.thread = me
                    return self
            time.sleep(self.POLL_SECONDS)

    def __exit__(self, *exc: Any) -> None:
        with self._guard:
            claimant = self._claimant
            if (claimant.pid, claimant.thread) == (os.getpid(), threading.get_ident()):
                claimant.pid, claimant.thread = 0, 0


def _alive(pid: int, thread: int) -> bool:
    if pid == os.getpid():
        return any(t.ident == thread for t in threading.enumerate())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a worker that died is a zombie until the main process reaps it
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True
