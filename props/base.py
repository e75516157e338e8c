"""What every prop has, whatever it drives.

A prop is a gpiozero device (usually a :class:`gpiozero.CompositeDevice`) that also
mixes in :class:`Prop`. The node agent only ever talks to props through this interface:

* ``state``: a JSON-able dict of what the prop reports (``{"locked": True, ...}``);
* ``when_event``: called as ``when_event(type, value)`` for each event the prop emits
  (``("code", "0412")``, ``("tag", "04a1b2c3")``); may run in a gpiozero thread;
* ``when_state_changed``: called with no argument whenever ``state`` changed;
* ``apply(action, params)``: a command (``"unlock"``, ``"blink"``); raises
  :class:`~props.exc.UnknownAction` / :class:`~props.exc.BadActionParams`;
* ``reset()``: back to the pre-game state; ``self_test()``: a technician's check.

Props know nothing of MQTT, of the controller or of the game.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from props.exc import UnknownAction

log = logging.getLogger(__name__)

EventCallback = Callable[[str, Any], None]
StateCallback = Callable[[], None]


@dataclass(frozen=True, slots=True)
class SelfTestResult:
    """The outcome of :meth:`Prop.self_test`: passed or not, and what was checked."""

    passed: bool
    steps: tuple[str, ...] = field(default_factory=tuple)
    message: str = ""


class Prop:
    """Mixin giving a gpiozero device the prop interface the node agent uses.

    Subclasses set the class attributes and override :attr:`state`, :meth:`apply`,
    :meth:`reset` and :meth:`self_test`. They call :meth:`_emit` for events and
    :meth:`_state_changed` when their state changed.
    """

    #: the config ``kind`` this class implements, e.g. ``"keypad"``
    kind: ClassVar[str] = ""
    #: commands :meth:`apply` accepts
    actions: ClassVar[frozenset[str]] = frozenset()

    name: str = ""
    when_event: EventCallback | None = None
    when_state_changed: StateCallback | None = None

    @property
    def state(self) -> dict[str, Any]:
        """The prop's reported state, JSON-able."""
        return {}

    def apply(self, action: str, params: Mapping[str, Any] | None = None) -> None:
        """Apply a command; unknown commands raise :class:`UnknownAction`."""
        msg = f"{self.kind or type(self).__name__} does not accept {action!r}"
        raise UnknownAction(msg)

    def reset(self) -> None:
        """Return to the pre-game state (locked, cleared, off)."""

    def self_test(self, *, timeout: float = 10.0) -> SelfTestResult:
        """Exercise the hardware for a technician; never raises."""
        return SelfTestResult(passed=True, steps=("nothing to test",))

    # -- for subclasses ------------------------------------------------------------
    def _emit(self, event_type: str, value: Any = None) -> None:
        callback = self.when_event
        if callback is None:
            return
        try:
            callback(event_type, value)
        except Exception:
            # NOTE: a broken listener must never stop a prop from working.
            log.exception("when_event listener of %s failed", self.name or self)

    def _state_changed(self) -> None:
        callback = self.when_state_changed
        if callback is None:
            return
        try:
            callback()
        except Exception:
            log.exception("when_state_changed listener of %s failed", self.name or self)
