"""Listeners the RFID tests attach to a prop, and wait on instead of sleeping."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

#: generous: waits end as soon as the condition holds; this only bounds a failure
WAIT = 5.0


class Events:
    """Records ``(type, value)`` events from a prop's ``when_event``; wait on them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, event_type: str, value: Any) -> None:
        with self._cond:
            self.events.append((event_type, value))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[tuple[str, Any]]], bool],
                 timeout: float = WAIT) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.events), timeout)

    def wait_count(self, count: int, timeout: float = WAIT) -> bool:
        return self.wait_for(lambda events: len(events) >= count, timeout)

    def wait_event(self, event: tuple[str, Any], timeout: float = WAIT) -> bool:
        return self.wait_for(lambda events: event in events, timeout)


class States:
    """Counts ``when_state_changed`` calls and waits for a state to hold."""

    def __init__(self, prop: Any) -> None:
        self.prop = prop
        self.calls = 0
        self._cond = threading.Condition()
        prop.when_state_changed = self

    def __call__(self) -> None:
        with self._cond:
            self.calls += 1
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool],
                 timeout: float = WAIT) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.prop.state), timeout)
