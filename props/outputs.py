"""One output pin: an LED, a relay (lamp, fan, electric strike) or an active buzzer.

Also home of what every driver that drives an output shares:

* :class:`SafeOutputDevice`, :class:`SafeLED`, :class:`SafeBuzzer`: gpiozero output devices
  that drive their *inactive* level before they let go of their pin, on ``close()`` and
  when the Python process exits normally (see :func:`_release_all_at_exit`);
* :data:`BEEPS`, the named beep patterns the keypad and the buzzer share;
* :func:`float_param` / :func:`int_param`, the checks of a command's parameters.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from gpiozero import LED, Buzzer, CompositeDevice, DigitalOutputDevice

from props.base import Prop, SelfTestResult
from props.exc import BadActionParams, PropConfigError

if TYPE_CHECKING:
    from gpiozero import Factory

    from props.models import OutputConfig

log = logging.getLogger(__name__)

#: named beep patterns: (seconds on, seconds off, count)
BEEPS: Mapping[str, tuple[float, float, int]] = {
    "key": (0.04, 0.0, 1),
    "short": (0.1, 0.1, 1),
    "long": (0.8, 0.0, 1),
    "ok": (0.1, 0.1, 2),
    "wrong": (0.8, 0.0, 1),
}

# Every live safe output, so that a normal exit releases them even when they were built on
# a pin factory that is not gpiozero's default (gpiozero's own exit hook only closes the
# devices reserved on ``Device.pin_factory``, and closes a composite's children, not it).
_LIVE: weakref.WeakSet[_OffOnClose] = weakref.WeakSet()


class _OffOnClose:
    """Mixin for gpiozero output devices: go inactive before releasing the pin.

    gpiozero's ``close()`` leaves an output pin at whatever level it had; a relay that held
    a maglock would keep holding it until the pin floats. These devices switch off first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _LIVE.add(self)

    def close(self) -> None:
        """Switch off, then release the pin (as gpiozero's ``close()``)."""
        try:
            if not self.closed:  # type: ignore[attr-defined]
                self.off()  # type: ignore[attr-defined]
        except Exception:
            # NOTE: close() must never raise, and may run from __del__ on a half-built device.
            log.debug("switching %r off before close failed", self, exc_info=True)
        super().close()  # type: ignore[misc]


class SafeOutputDevice(_OffOnClose, DigitalOutputDevice):
    """A :class:`~gpiozero.DigitalOutputDevice` that switches off when closed.

    Example::

        >>> from gpiozero.pins.mock import MockFactory
        >>> relay = SafeOutputDevice(17, active_high=False, initial_value=False,
        ...                          pin_factory=MockFactory())
        >>> relay.on(); relay.close()          # the pin is back high: relay released
    """


class SafeLED(_OffOnClose, LED):
    """A :class:`~gpiozero.LED` that goes dark when closed."""


class SafeBuzzer(_OffOnClose, Buzzer):
    """A :class:`~gpiozero.Buzzer` that falls silent when closed."""


@atexit.register
def _release_all_at_exit() -> None:
    """Close every safe output still open: relays released, LEDs dark, buzzers silent.

    This module imports gpiozero before registering this hook, so it runs *before*
    gpiozero's own exit hook (atexit is last-in, first-out), while the pins still work.
    It does not help on SIGKILL or a power cut: there the relay wiring is what makes a
    maglock fail-safe (see docs/props.md).
    """
    for device in list(_LIVE):
        try:
            device.close()
        except Exception:  # pragma: no cover - close() already swallows errors
            log.debug("closing %r at exit failed", device, exc_info=True)


def float_param(params: Mapping[str, Any] | None, key: str, default: float, *,
                minimum: float = 0.0, maximum: float = 3600.0, strict_minimum: bool = False,
                ) -> float:
    """Return ``params[key]`` as a float in range, or *default* when absent.

    Raises :class:`~props.exc.BadActionParams` for anything that is not a number in range.
    """
    value = default if not params or params.get(key) is None else params[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{key!r} must be a number, got {value!r}"
        raise BadActionParams(msg)
    value = float(value)
    too_small = value <= minimum if strict_minimum else value < minimum
    if too_small or value > maximum:
        low = f"> {minimum}" if strict_minimum else f">= {minimum}"
        msg = f"{key!r} must be {low} and <= {maximum}, got {value}"
        raise BadActionParams(msg)
    return value


def int_param(params: Mapping[str, Any] | None, key: str, default: int | None, *,
              minimum: int = 1, maximum: int = 1000) -> int | None:
    """Return ``params[key]`` as an int in range (or *default*, which may be None)."""
    value = default if not params or params.get(key) is None else params[key]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{key!r} must be an integer, got {value!r}"
        raise BadActionParams(msg)
    if not minimum <= value <= maximum:
        msg = f"{key!r} must be between {minimum} and {maximum}, got {value}"
        raise BadActionParams(msg)
    return value


#: what :meth:`Output.self_test` plays, by kind: (seconds on, seconds off, count)
SELF_TEST_PATTERNS: Mapping[str, tuple[float, float, int]] = {
    "led": (0.15, 0.15, 2),
    "relay": (0.3, 0.0, 1),
    "buzzer": BEEPS["short"],
}

_DEVICE_CLASSES: Mapping[str, type[DigitalOutputDevice]] = {
    "led": SafeLED,
    "relay": SafeOutputDevice,
    "buzzer": SafeBuzzer,
}
_ACTIONS_BY_KIND: Mapping[str, frozenset[str]] = {
    "led": frozenset({"on", "off", "blink"}),
    "relay": frozenset({"on", "off", "pulse"}),
    "buzzer": frozenset({"on", "off", "beep"}),
}


class Output(Prop, CompositeDevice):
    """An LED, a relay or an active buzzer on one pin, as a prop.

    The one child device is named after the kind (``output.led``, ``output.relay``,
    ``output.buzzer``). ``active_high`` and ``initial_value`` are always passed to gpiozero
    explicitly, so the pin is driven to its safe level as soon as it is claimed.

    State ``{"on": bool}`` says whether the output is switched on or running a pattern
    (blink, pulse, beep); a finite pattern reports ``on: False`` again when it ends.

    Example::

        >>> from gpiozero.pins.mock import MockFactory
        >>> fan = Output(kind="relay", pin=23, pin_factory=MockFactory())
        >>> fan.apply("pulse", {"seconds": 2})     # on now, off in 2 s
        >>> fan.state
        {'on': True}
        >>> fan.close()                             # off, then the pin is released
    """

    kind: ClassVar[str] = "relay"
    actions: ClassVar[frozenset[str]] = frozenset({"on", "off", "blink", "pulse", "beep"})

    def __init__(self, *, kind: str = "relay", pin: int | str, active_high: bool = True,
                 initial_value: bool = False, pin_factory: Factory | None = None) -> None:
        self._lock = threading.RLock()
        self._generation = 0
        self._timer: threading.Timer | None = None
        self._device: DigitalOutputDevice | None = None
        if kind not in _DEVICE_CLASSES:
            msg = f"an output is one of {sorted(_DEVICE_CLASSES)}, not {kind!r}"
            raise PropConfigError(msg)
        # NOTE: one class serves three kinds; the instance says which one it is.
        self.kind = kind  # type: ignore[misc]
        self.actions = _ACTIONS_BY_KIND[kind]  # type: ignore[misc]
        self._initial_value = bool(initial_value)
        self._active = self._initial_value
        device = _DEVICE_CLASSES[kind](pin, active_high=bool(active_high),
                                       initial_value=self._initial_value,
                                       pin_factory=pin_factory)
        try:
            super().__init__(pin_factory=pin_factory, **{kind: device})
        except BaseException:
            device.close()
            raise
        self._device = device

    @classmethod
    def from_config(cls, config: OutputConfig, *, pin_factory: Factory | None = None) -> Self:
        """Build the output described by *config* (kinds ``led``, ``relay``, ``buzzer``)."""
        return cls(kind=config.kind, pin=config.pin, active_high=config.active_high,
                   initial_value=config.initial_value, pin_factory=pin_factory)

    # -- gpiozero-style API ------------------------------------------------------------
    @property
    def value(self) -> int:
        """1 if the pin is at its active level right now, else 0."""
        return self._dev.value

    @property
    def is_active(self) -> bool:
        return bool(self.value)

    def on(self) -> None:
        """Switch on (stops any pattern)."""
        with self._lock:
            self._cancel()
            self._dev.on()
            self._active = True
        self._state_changed()

    def off(self) -> None:
        """Switch off (stops any pattern)."""
        with self._lock:
            self._cancel()
            self._dev.off()
            self._active = False
        self._state_changed()

    def blink(self, *, on_time: float = 0.5, off_time: float = 0.5, n: int | None = None) -> None:
        """Blink in the background, *n* times or until another command (``n=None``)."""
        self._pattern(on_time, off_time, n)

    def pulse(self, *, seconds: float = 1.0) -> None:
        """Switch on now and off again after *seconds*."""
        self._pattern(seconds, 0.0, 1)

    def beep(self, *, pattern: str = "short") -> None:
        """Play a named pattern of :data:`BEEPS` (``short``, ``long``, ``ok``, ``wrong``)."""
        try:
            on_time, off_time, n = BEEPS[pattern]
        except KeyError:
            msg = f"unknown beep pattern {pattern!r}; one of {sorted(BEEPS)}"
            raise BadActionParams(msg) from None
        self._pattern(on_time, off_time, n)

    # -- Prop interface ----------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        return {"on": self._active}

    def apply(self, action: str, params: Mapping[str, Any] | None = None) -> None:
        if action not in self.actions:
            super().apply(action, params)
        if action == "on":
            self.on()
        elif action == "off":
            self.off()
        elif action == "blink":
            self.blink(on_time=float_param(params, "on_time", 0.5, maximum=60.0,
                                           strict_minimum=True),
                       off_time=float_param(params, "off_time", 0.5, maximum=60.0),
                       n=int_param(params, "n", None, maximum=10_000))
        elif action == "pulse":
            self.pulse(seconds=float_param(params, "seconds", 1.0, strict_minimum=True))
        elif action == "beep":
            pattern = (params or {}).get("pattern", "short")
            if not isinstance(pattern, str) or pattern == "key":
                msg = f"'pattern' must be one of short, long, ok, wrong; got {pattern!r}"
                raise BadActionParams(msg)
            self.beep(pattern=pattern)

    def reset(self) -> None:
        """Back to the configured ``initial_value``."""
        if self._initial_value:
            self.on()
        else:
            self.off()

    def self_test(self, *, timeout: float = 10.0) -> SelfTestResult:
        """Blink, pulse or beep briefly, then restore the previous on/off state."""
        try:
            was_on = self._active
            on_time, off_time, n = SELF_TEST_PATTERNS[self.kind]
            with self._lock:
                self._cancel()
            self._dev.blink(on_time=on_time, off_time=off_time, n=n, background=False)
            if was_on:
                self.on()
            else:
                self.off()
            what = {"led": f"blinked {n} times", "relay": f"pulsed {on_time} s",
                    "buzzer": "beeped"}[self.kind]
            return SelfTestResult(passed=True, steps=(what, "restored " + ("on" if was_on
                                                                           else "off")))
        except Exception as exc:
            log.exception("self-test of %s failed", self.name or self)
            return SelfTestResult(passed=False, steps=("output",), message=str(exc))

    # -- gpiozero Device ---------------------------------------------------------------
    def close(self) -> None:
        """Stop any pattern, switch off, release the pin. Harmless when called twice."""
        lock = getattr(self, "_lock", None)
        if lock is not None:
            with lock:
                self._cancel()
        super().close()

    def __repr__(self) -> str:
        if self.closed or self._device is None:
            return f"<props.Output {self.name or self.kind!r} closed>"
        return (f"<props.Output {self.name or self.kind!r} {self.kind} on pin "
                f"{self._device.pin!r}, active_high={self._device.active_high}, "
                f"on={self._active}>")

    # -- internals ---------------------------------------------------------------------
    @property
    def _dev(self) -> DigitalOutputDevice:
        device = self._device
        if device is None or device.closed:
            self._check_open()
            msg = "output device missing"  # pragma: no cover - _check_open raised
            raise RuntimeError(msg)  # pragma: no cover
        return device

    def _cancel(self) -> int:
        """Forget any pending end of pattern; returns the new generation."""
        self._generation += 1
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        return self._generation

    def _pattern(self, on_time: float, off_time: float, n: int | None) -> None:
        with self._lock:
            generation = self._cancel()
            self._dev.blink(on_time=on_time, off_time=off_time, n=n, background=True)
            self._active = True
            if n is not None:
                timer = threading.Timer(n * (on_time + off_time), self._pattern_done,
                                        args=(generation,))
                timer.daemon = True
                self._timer = timer
                timer.start()
        self._state_changed()

    def _pattern_done(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or self.closed:
                return
            self._timer = None
            try:
                # NOTE: stops gpiozero's blink thread if it is late, so the pin is off now.
                self._dev.off()
            except Exception:
                log.debug("end of pattern on closed %r", self, exc_info=True)
                return
            self._active = False
        self._state_changed()
