"""The node's worker: one inbox and one thread, the only one that drives the core in order.

Callbacks put what happened into the inbox — the props' events and state changes (never
dropped: a node's own facts), the broker's messages (bounded: a flood from outside is
dropped and counted, the node goes on) — and the thread hands each to the agent, in the
order they came; between two, or when idle, it ticks (heartbeat). What the release lane
already did goes to the head of the inbox (:meth:`Worker.put_urgent`): its confirmation
is next, whatever waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Fence:
    """Passed once the worker has handled everything put before it."""

    passed: threading.Event


@dataclass(frozen=True, slots=True)
class Message:
    """A message from the broker (the bounded kind); *item* is what the agent handles."""

    item: Any


_STOP = object()


class Worker:
    """The worker thread: ``handle(item)`` for each item, ``tick(now) -> next tick`` between."""

    def __init__(self, *, name: str, handle: Callable[[Any], None], tick: Callable[[float], float],
                 max_messages: int) -> None:
        self._handle, self._tick = handle, tick
        self.max_messages = max_messages
        self._ready = threading.Condition(threading.Lock())
        self._urgent: deque[Any] = deque()
        self._inbox: deque[Any] = deque()
        # messages put and handled: each written by one thread only (the broker's, the worker)
        self._queued = self._handled = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop after the item in hand (what is queued is dropped); safe to call twice."""
        self._stopped.set()
        self.put_urgent(_STOP)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def put(self, item: Any) -> None:
        """One of the node's own facts: never dropped."""
        with self._ready:
            self._inbox.append(item)
            self._ready.notify()

    def put_urgent(self, item: Any) -> None:
        """Before everything waiting (what the release lane did: its books, its report)."""
        with self._ready:
            self._urgent.append(item)
            self._ready.notify()

    def put_message(self, item: Any) -> bool:
        """A message from the broker (from its network thread only); False if the inbox is
        full of them and it was dropped."""
        if self._queued - self._handled >= self.max_messages:
            return False
        self._queued += 1
        self.put(Message(item))
        return True

    def no_message_waiting(self) -> bool:
        """Has every message put so far been handled (none queued, none in hand)? Exact
        when asked from the broker's network thread, the only one that puts them."""
        return self._queued == self._handled

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything put before this call has been handled."""
        fence = Fence(threading.Event())
        self.put(fence)
        return fence.passed.wait(timeout)

    def _get(self, timeout: float) -> Any:
        with self._ready:
            if not (self._urgent or self._inbox):
                self._ready.wait(timeout)
            if self._urgent:
                return self._urgent.popleft()
            return self._inbox.popleft() if self._inbox else None

    def _run(self) -> None:
        next_tick = time.monotonic()
        while True:
            item = self._get(max(0.0, next_tick - time.monotonic()))
            if self._stopped.is_set():
                return
            try:
                if isinstance(item, Fence):
                    item.passed.set()
                elif isinstance(item, Message):
                    try:
                        self._handle(item.item)
                    finally:
                        self._handled += 1
                elif item is not None:
                    self._handle(item)
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = self._tick(now)
            except Exception:
                # NOTE: the worker must outlive any error: its silence means "dead".
                log.exception("node worker: an item or a tick failed; going on")
                next_tick = time.monotonic() + 1.0
