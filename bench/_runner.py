"""Helpers for the bench's child processes: JSON lines on stdout, commands on stdin.

A runner writes only JSON objects with a ``kind`` to stdout (logging goes to stderr),
reads commands as JSON lines from stdin, and exits when stdin closes: the parent dying
closes the pipe, so no runner outlives the bench.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any


class Output:
    """Thread-safe JSON-lines writer to stdout.

    :meth:`emit` writes at once; :meth:`later` hands the line to a writer thread, for
    callers on a hot path (a pin callback) that must not wait on the pipe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_queued, name="bench-output", daemon=True)
        self._writer.start()

    def emit(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"kind": kind, **fields}, default=str) + "\n"
        with self._lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    def later(self, kind: str, **fields: Any) -> None:
        self._queue.put({"kind": kind, **fields})

    def _write_queued(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self.emit(**item)


def commands() -> Iterator[dict[str, Any]]:
    """Commands from stdin, until EOF."""
    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            continue
        try:
            command = json.loads(line)
        except json.JSONDecodeError:
            print(f"bench runner: not JSON: {line[:200]!r}", file=sys.stderr)
            continue
        if isinstance(command, dict):
            yield command


def wait_for_stdin_eof() -> None:
    for _ in commands():
        pass


def serve(handlers: dict[str, Callable[..., Any]], out: Output) -> None:
    """Run ``handlers[cmd](**args)`` for each command; errors are reported, not fatal."""
    for command in commands():
        name = str(command.pop("cmd", ""))
        if name == "stop":
            return
        handler = handlers.get(name)
        if handler is None:
            out.emit("error", cmd=name, error="unknown command")
            continue
        try:
            handler(**command)
        except Exception as exc:  # report to the parent, which decides
            out.emit("error", cmd=name, error=repr(exc))
