"""One contact to ground: a push button, a reed switch or a pressure mat.

All three are a :class:`gpiozero.Button` (pull-up, debounce, hold time); only their words
differ, so the events and the state speak the room's language:

========== ======================== ====================================
kind       events                   state
========== ======================== ====================================
button     press, release, held     ``{"pressed": bool}``
reed       closed, opened           ``{"closed": bool}``
mat        stepped_on, stepped_off, ``{"occupied": bool}``
           held
========== ======================== ====================================
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Self

from gpiozero import Button

from props.base import Prop, SelfTestResult
from props.exc import PropConfigError

if TYPE_CHECKING:
    from gpiozero import Factory

    from props.models import ButtonConfig

log = logging.getLogger(__name__)


class Words(NamedTuple):
    """A contact kind's words: its events (active, inactive, held) and its state key."""

    on: str
    off: str
    held: str | None
    state: str


#: each contact kind's words (the start-state check reads the state key: props/start.py)
WORDS: dict[str, Words] = {
    "button": Words("press", "release", "held", "pressed"),
    "reed_switch": Words("closed", "opened", None, "closed"),
    "pressure_mat": Words("stepped_on", "stepped_off", "held", "occupied"),
}


class Contact(Prop, Button):
    """A push button, reed switch or pressure mat, as a prop.

    It *is* a :class:`gpiozero.Button`: ``when_pressed``, ``wait_for_press()``,
    ``hold_time`` and the rest work as usual, and its events also go to
    :attr:`~props.base.Prop.when_event`. ``held`` (button and mat) carries the seconds
    the contact had been active when it fired, once per activation.

    Example::

        >>> from gpiozero.pins.mock import MockFactory
        >>> factory = MockFactory()
        >>> mat = Contact(kind="pressure_mat", pin=22, hold_time=2.0, pin_factory=factory)
        >>> mat.when_event = lambda kind, value: print(kind, value)
        >>> factory.pin(22).drive_low()
        stepped_on None
        >>> mat.state
        {'occupied': True}
    """

    kind: ClassVar[str] = "button"

    def __init__(self, *, pin: int | str, kind: str = "button", pull_up: bool = True,
                 bounce_time: float | None = 0.02, hold_time: float = 1.0,
                 pin_factory: Factory | None = None) -> None:
        if kind not in WORDS:
            msg = f"a contact is one of {sorted(WORDS)}, not {kind!r}"
            raise PropConfigError(msg)
        words = WORDS[kind]
        # NOTE: one class serves three kinds; the instance says which one it is.
        self.kind = kind  # type: ignore[misc]
        self._words = words
        self._activation: threading.Event | None = None
        self._deactivation: threading.Event | None = None
        super().__init__(pin, pull_up=bool(pull_up), bounce_time=bounce_time or None,
                         hold_time=hold_time, hold_repeat=False, pin_factory=pin_factory)

    @classmethod
    def from_config(cls, config: ButtonConfig, *, pin_factory: Factory | None = None) -> Self:
        """Build the contact described by *config*."""
        return cls(pin=config.pin, kind=config.kind, pull_up=config.pull_up,
                   bounce_time=config.bounce_time, hold_time=config.hold_time,
                   pin_factory=pin_factory)

    # -- the room's words (aliases, as gpiozero's when_pressed) --------------------------
    when_closed = Button.when_activated
    when_opened = Button.when_deactivated
    when_stepped_on = Button.when_activated
    when_stepped_off = Button.when_deactivated
    is_closed = Button.is_active
    is_occupied = Button.is_active

    # -- Prop interface ----------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        try:
            active = bool(self.is_active)
        except Exception:  # closed
            active = False
        return {self._words.state: active}

    def self_test(self, *, timeout: float = 10.0) -> SelfTestResult:
        """Wait up to *timeout* seconds for someone to press, close or step on it.

        A contact that is already active (a reed switch on a closed window) waits for the
        opposite change instead: the technician opens the window.
        """
        try:
            active = bool(self.is_active)
            was = "active" if active else "inactive"
            word = self._words.off if active else self._words.on
            event = threading.Event()
            if active:
                self._deactivation = event
            else:
                self._activation = event
            try:
                seen = event.wait(timeout)
            finally:
                self._activation = self._deactivation = None
            steps = (f"{was} at start", f"{word} seen" if seen
                     else f"no {word} within {timeout:g} s")
            return SelfTestResult(passed=seen, steps=steps,
                                  message="" if seen else "no activation")
        except Exception as exc:
            log.exception("self-test of %s failed", self.name or self)
            return SelfTestResult(passed=False, steps=(), message=str(exc))

    def __repr__(self) -> str:
        try:
            self._check_open()
            return (f"<props.Contact {self.name or self.kind!r} {self.kind} on pin "
                    f"{self.pin!r}, pull_up={self.pull_up}, "
                    f"{self._words.state}={bool(self.is_active)}>")
        except Exception:
            return f"<props.Contact {self.name or self.kind!r} closed>"

    # -- gpiozero hooks (overridden, so a user's when_pressed never replaces ours) --------
    def _fire_activated(self) -> None:
        self._emit(self._words.on)
        self._state_changed()
        event = self._activation
        if event is not None:
            event.set()
        super()._fire_activated()

    def _fire_deactivated(self) -> None:
        self._emit(self._words.off)
        self._state_changed()
        event = self._deactivation
        if event is not None:
            event.set()
        super()._fire_deactivated()

    def _fire_held(self) -> None:
        if self._words.held is not None:
            held_for = self.active_time
            self._emit(self._words.held, round(held_for if held_for is not None
                                               else self.hold_time, 3))
        super()._fire_held()
