"""A fail-safe magnetic lock on a relay, with an optional reed switch on the door.

Fail-safe means the lock holds only while the relay is driven: a dead node, a crashed
process, a closed device or a power cut all open it. The driver keeps that true in
software too:

* the relay is claimed with ``initial_value=False`` and an explicit ``active_high``, so
  building a :class:`Maglock` leaves it **unlocked**;
* :meth:`Maglock.close` unlocks before it releases the pin, and so does a normal exit of
  the Python process (see :mod:`props.outputs`), whichever pin factory was used;
* it never *reports* ``locked`` while its door sensor says the door is open.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from gpiozero import CompositeDevice, DigitalInputDevice

from props.base import Prop, SelfTestResult
from props.exc import PropConfigError
from props.outputs import SafeOutputDevice, float_param

if TYPE_CHECKING:
    from gpiozero import Factory

    from props.models import MaglockConfig

log = logging.getLogger(__name__)

DoorState = Literal["open", "closed", "unknown"]

#: seconds between the clicks of :meth:`Maglock.self_test`
SELF_TEST_CLICK = 0.2
#: debounce of the door's reed switch (done by the pin driver, e.g. lgpio)
DOOR_BOUNCE = 0.02


class Maglock(Prop, CompositeDevice):
    """A magnetic lock driven by a relay, and the reed switch of its door.

    The children are ``relay`` (a :class:`~props.outputs.SafeOutputDevice`, on = lock
    held) and, when a door pin is given, ``door`` (a pulled-up
    :class:`~gpiozero.DigitalInputDevice`).

    State: ``engaged`` is whether the relay is driven; ``door`` is ``"open"``,
    ``"closed"`` or ``"unknown"`` (no sensor); ``locked`` is ``engaged`` *and* the door
    not open: a maglock cannot hold an open door, so it never claims to.

    Example::

        >>> from gpiozero.pins.mock import MockFactory
        >>> with Maglock(relay=17, door=27, pin_factory=MockFactory()) as lock:
        ...     lock.is_locked                 # built unlocked: safe at boot
        ...     lock.lock()
        ...     lock.apply("pulse", {"seconds": 3})   # open 3 s, then hold again
        False
    """

    kind: ClassVar[str] = "maglock"
    actions: ClassVar[frozenset[str]] = frozenset({"lock", "unlock", "pulse"})

    def __init__(self, *, relay: int | str, active_high: bool = True,
                 door: int | str | None = None,
                 door_closed_level: Literal["low", "high"] = "low",
                 pin_factory: Factory | None = None) -> None:
        self._lock = threading.RLock()
        self._generation = 0
        self._timer: threading.Timer | None = None
        self._relay: SafeOutputDevice | None = None
        self._door_sensor: DigitalInputDevice | None = None
        self._last_door: DoorState = "unknown"
        if door_closed_level not in ("low", "high"):
            msg = f"door_closed_level is 'low' or 'high', not {door_closed_level!r}"
            raise PropConfigError(msg)
        self._door_closed_high = door_closed_level == "high"
        devices: dict[str, Any] = {}
        try:
            # NOTE: the relay comes first and released, so whatever fails below, the lock
            # is already in its safe (open) state.
            devices["relay"] = SafeOutputDevice(relay, active_high=bool(active_high),
                                                initial_value=False, pin_factory=pin_factory)
            if door is not None:
                devices["door"] = DigitalInputDevice(door, pull_up=True,
                                                     bounce_time=DOOR_BOUNCE,
                                                     pin_factory=pin_factory)
            super().__init__(pin_factory=pin_factory, _order=list(devices), **devices)
        except BaseException:
            for device in devices.values():
                device.close()
            raise
        self._relay = devices["relay"]
        self._door_sensor = devices.get("door")
        self._last_door = self._read_door()
        if self._door_sensor is not None:
            self._door_sensor.when_activated = self._door_changed
            self._door_sensor.when_deactivated = self._door_changed

    @classmethod
    def from_config(cls, config: MaglockConfig, *, pin_factory: Factory | None = None) -> Self:
        """Build the maglock described by *config*."""
        return cls(relay=config.relay, active_high=config.active_high, door=config.door,
                   door_closed_level=config.door_closed_level, pin_factory=pin_factory)

    # -- the room's words --------------------------------------------------------------
    @property
    def engaged(self) -> bool:
        """True while the relay is driven (the coil is powered)."""
        relay = self._relay
        if relay is None or relay.closed:
            return False
        return bool(relay.is_active)

    @property
    def door_state(self) -> DoorState:
        """What the reed switch says: ``"open"``, ``"closed"`` or ``"unknown"``."""
        return self._read_door()

    @property
    def is_locked(self) -> bool:
        """True if the lock holds a closed (or unsensed) door."""
        return self.engaged and self._read_door() != "open"

    @property
    def pulse_seconds(self) -> float | None:
        """The length of the :meth:`pulse` under way (it relocks at its end), or None."""
        timer = self._timer
        return None if timer is None else timer.interval

    @property
    def value(self) -> int:
        """1 while the relay is driven, like a :class:`~gpiozero.DigitalOutputDevice`."""
        return int(self.engaged)

    @property
    def is_active(self) -> bool:
        return self.engaged

    def lock(self) -> None:
        """Drive the relay: the lock holds. Cancels a pending :meth:`pulse`."""
        with self._lock:
            self._cancel_pulse()
            self._output.on()
        log.info("%s locked", self.name or self)
        self._state_changed()

    def unlock(self) -> None:
        """Release the relay: the lock opens. Cancels a pending :meth:`pulse`."""
        with self._lock:
            self._cancel_pulse()
            self._output.off()
        log.info("%s unlocked", self.name or self)
        self._state_changed()

    def pulse(self, *, seconds: float = 3.0) -> None:
        """Unlock now and lock again after *seconds*, unless told otherwise meanwhile.

        Any :meth:`lock`, :meth:`unlock`, :meth:`reset` or :meth:`close` before the end
        cancels the relock, so a pulse never leaves the lock shut behind a later unlock.
        """
        with self._lock:
            generation = self._cancel_pulse()
            self._output.off()
            timer = threading.Timer(seconds, self._relock, args=(generation,))
            timer.daemon = True  # NOTE: a pending relock must never keep a process alive
            self._timer = timer
            timer.start()
        log.info("%s unlocked for %s s", self.name or self, seconds)
        self._state_changed()

    # -- Prop interface ----------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        engaged = self.engaged
        door = self._read_door()
        return {"locked": engaged and door != "open", "engaged": engaged, "door": door}

    def apply(self, action: str, params: Mapping[str, Any] | None = None) -> None:
        if action == "lock":
            self.lock()
        elif action == "unlock":
            self.unlock()
        elif action == "pulse":
            self.pulse(seconds=float_param(params, "seconds", 3.0, maximum=600.0,
                                           strict_minimum=True))
        else:
            super().apply(action, params)

    def reset(self) -> None:
        """Pre-game state: locked."""
        self.lock()

    def self_test(self, *, timeout: float = 10.0) -> SelfTestResult:
        """Click the relay (unlock, lock, unlock) and read the door; ends unlocked."""
        steps: list[str] = []
        try:
            self.unlock()
            steps.append("unlocked")
            threading.Event().wait(SELF_TEST_CLICK)
            self.lock()
            steps.append("locked (relay engaged)" if self.engaged else "lock did not engage")
            threading.Event().wait(SELF_TEST_CLICK)
            self.unlock()
            steps.append("unlocked again")
            steps.append(f"door sensor: {self._read_door()}")
            passed = not self.engaged
            return SelfTestResult(passed=passed, steps=tuple(steps),
                                  message="" if passed else "relay still engaged")
        except Exception as exc:
            log.exception("self-test of %s failed", self.name or self)
            try:
                self.unlock()
            except Exception:
                log.exception("unlock after a failed self-test of %s failed", self)
            return SelfTestResult(passed=False, steps=tuple(steps), message=str(exc))

    # -- gpiozero Device ---------------------------------------------------------------
    def close(self) -> None:
        """Unlock, then release the pins. Harmless when called twice."""
        lock = getattr(self, "_lock", None)
        if lock is not None:
            with lock:
                self._cancel_pulse()
                relay = getattr(self, "_relay", None)
                if relay is not None and not relay.closed:
                    relay.off()
        super().close()

    def __repr__(self) -> str:
        relay = self._relay
        if relay is None or self.closed:
            return f"<props.Maglock {self.name or 'maglock'!r} closed>"
        door = ("" if self._door_sensor is None
                else f", door on pin {self._door_sensor.pin!r}")
        state = self.state
        return (f"<props.Maglock {self.name or 'maglock'!r} relay on pin {relay.pin!r}, "
                f"active_high={relay.active_high}{door}, locked={state['locked']}, "
                f"engaged={state['engaged']}, door={state['door']!r}>")

    # -- internals ---------------------------------------------------------------------
    @property
    def _output(self) -> SafeOutputDevice:
        relay = self._relay
        if relay is None or relay.closed:
            self._check_open()
            msg = "maglock relay is closed"
            raise RuntimeError(msg)
        return relay

    def _read_door(self) -> DoorState:
        sensor = self._door_sensor
        if sensor is None or sensor.closed:
            return "unknown"
        # pulled up: the device is active when the pin is low
        pin_high = not sensor.is_active
        return "closed" if pin_high == self._door_closed_high else "open"

    def _door_changed(self) -> None:
        door = self._read_door()
        with self._lock:
            if door in (self._last_door, "unknown"):
                return
            self._last_door = door
        log.info("%s: door %s", self.name or self, door)
        self._emit("door", door)
        self._state_changed()

    def _cancel_pulse(self) -> int:
        self._generation += 1
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        return self._generation

    def _relock(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._timer = None
            relay = self._relay
            if relay is None or relay.closed:
                return
            try:
                relay.on()
            except Exception:
                log.debug("relock of closed %r skipped", self, exc_info=True)
                return
        log.info("%s locked again after a pulse", self.name or self)
        self._state_changed()
