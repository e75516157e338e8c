"""A listener for a prop's events and state changes that tests can wait on."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from gpiozero.pins.mock import MockPin

from props.base import Prop


class EventLog:
    """Records ``(type, value)`` events and counts state changes; wait on either."""

    def __init__(self, prop: Prop | None = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self.state_changes = 0
        self._cond = threading.Condition()
        if prop is not None:
            prop.when_event = self
            prop.when_state_changed = self.state_changed

    def __call__(self, event_type: str, value: Any) -> None:
        with self._cond:
            self.events.append((event_type, value))
            self._cond.notify_all()

    def state_changed(self) -> None:
        with self._cond:
            self.state_changes += 1
            self._cond.notify_all()

    def of(self, event_type: str) -> list[Any]:
        with self._cond:
            return [value for kind, value in self.events if kind == event_type]

    def wait_for(self, predicate: Callable[[EventLog], bool], timeout: float = 3.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def wait_event(self, event_type: str, count: int = 1, timeout: float = 3.0) -> bool:
        """True once *count* events of *event_type* have arrived."""
        return self.wait_for(lambda log: len(log.of(event_type)) >= count, timeout)


class WatchedPin(MockPin):
    """A mock pin a test can wait on: ``wait_states(n)`` returns once it recorded n states.

    Create it before the device claims the pin:
    ``factory.pin(18, pin_class=WatchedPin)``.
    """

    def __init__(self, factory: Any, info: Any) -> None:
        super().__init__(factory, info)
        self._watch = threading.Condition()

    def _change_state(self, value: Any) -> bool:
        with self._watch:
            changed = super()._change_state(value)
            self._watch.notify_all()
        return changed

    def wait_states(self, count: int, timeout: float = 3.0) -> bool:
        """True once :attr:`states` holds at least *count* entries."""
        with self._watch:
            return self._watch.wait_for(lambda: len(self.states) >= count, timeout)

    def levels(self) -> list[bool]:
        return [bool(s.state) for s in self.states]
