"""Loaded by the soak's Python processes only (``PYTHONPATH``): ``time.sleep`` as a monotonic wait.

libfaketime 0.9.10 with ``FAKETIME_DONT_FAKE_MONOTONIC=1`` breaks ``clock_nanosleep``
(EINVAL), which CPython's ``time.sleep`` calls: every sleep of a process under it raises
``OSError: [Errno 22] Invalid argument``. A lock's timed acquire waits on the monotonic
clock and is not affected, so this ``time.sleep`` waits on one. Production processes
never run under libfaketime; ``python -m soak --no-sleep-fix`` runs without this.
"""

from __future__ import annotations

import threading
import time

_monotonic = time.monotonic


def _sleep(seconds: float) -> None:
    if seconds < 0:
        msg = "sleep length must be non-negative"
        raise ValueError(msg)
    deadline = _monotonic() + seconds
    lock = threading.Lock()
    lock.acquire()
    while (left := deadline - _monotonic()) > 0:
        lock.acquire(timeout=left)


time.sleep = _sleep
