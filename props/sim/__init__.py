"""Simulated wiring for the rehearsal page and the tests: hands on gpiozero MockFactory pins.

A simulator never calls a prop: it only changes what the pins of a
:class:`~gpiozero.pins.mock.MockFactory` read, as a player's hand on the real wiring would,
and the prop reacts through gpiozero as it would on a Pi. Call :func:`prepare` *before*
:func:`props.factory.build_prop`, since some kinds need their pins to be special mock pins
(a keypad's rows and columns, a switch to ground) created before the device claims them::

    >>> from gpiozero.pins.mock import MockFactory
    >>> from props.factory import build_prop
    >>> from props.models import KeypadConfig
    >>> factory = MockFactory()
    >>> config = KeypadConfig(id="door_code", rows=[5, 6, 13, 19], cols=[12, 16, 20])
    >>> sim = prepare(config, factory)
    >>> keypad = build_prop(sim.config, pin_factory=factory)
    >>> sim.perform("type", "0412#")       # returns once the keypad has read each key
    >>> keypad.state["last_key"]
    '#'

Gestures by kind (:data:`GESTURES`, the one list the node and the controller both read: the
controller refuses an unknown gesture or a bad value before it publishes anything):

=============================== ==============================================================
kind                            gestures (value)
=============================== ==============================================================
keypad                          ``press`` (key: down, read, up), ``type`` (keys),
                                ``down`` / ``up`` (key)
maglock with a door sensor      ``open_door``, ``close_door``
button                          ``press`` (down then up), ``hold`` (seconds, then up),
                                ``down`` (stays pressed), ``release``
reed_switch                     ``open``, ``close`` (a window stays where it is left)
pressure_mat                    ``step`` (on then off), ``hold`` (seconds), ``step_on``,
                                ``step_off``
led, relay, buzzer              none: :meth:`Simulator.pin_levels` shows them
mfrc522, rdm6300                ``present`` (UID hex), ``remove``
sorting                         ``present`` (``{"bin", "uid"}``), ``remove`` (``{"bin"}``)
=============================== ==============================================================

A gesture is whole: ``press`` on a button ends with the button released, as a finger
does; only ``down`` leaves it pressed, for a test of what a button held down does.

The package: :mod:`~props.sim.gestures` (the list and its checks), :mod:`~props.sim.base`
(what every simulator has), :mod:`~props.sim.contact` and :mod:`~props.sim.keypad` (mock
pins wired like the real circuit), :mod:`~props.sim.mfrc522` (the chip on a software SPI
bus of the factory's own, :mod:`~props.sim.spi`, with a type A card,
:mod:`~props.sim.iso14443`) and :mod:`~props.sim.rdm6300` (the module on a pseudo-terminal).
No driver imports any of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gpiozero.pins.mock import MockFactory

from props.exc import PropConfigError
from props.sim.base import Simulator
from props.sim.contact import ContactSimulator, MaglockSimulator, SwitchPin
from props.sim.gestures import GESTURES, GestureSpec, UnknownGesture, check_gesture, gestures_of
from props.sim.keypad import KeypadColumnPin, KeypadMatrix, KeypadRowPin, KeypadSimulator

if TYPE_CHECKING:
    from props.models import PropConfig

__all__ = [
    "GESTURES",
    "ContactSimulator",
    "GestureSpec",
    "KeypadColumnPin",
    "KeypadMatrix",
    "KeypadRowPin",
    "KeypadSimulator",
    "MaglockSimulator",
    "Simulator",
    "SwitchPin",
    "UnknownGesture",
    "check_gesture",
    "gestures_of",
    "prepare",
]

_SIMULATORS: dict[str, Callable[[Any, MockFactory], Simulator]] = {
    "keypad": KeypadSimulator, "maglock": MaglockSimulator,
    "button": ContactSimulator, "reed_switch": ContactSimulator,
    "pressure_mat": ContactSimulator,
    "led": Simulator, "relay": Simulator, "buzzer": Simulator,
}


def prepare(config: PropConfig, factory: MockFactory) -> Simulator:
    """Wire up the simulated hardware of *config* on *factory*; call before building it."""
    if not isinstance(factory, MockFactory):
        msg = f"simulated props need a gpiozero MockFactory, not {type(factory).__name__}"
        raise PropConfigError(msg)
    kind = config.kind
    if kind in _SIMULATORS:
        return _SIMULATORS[kind](config, factory)
    # NOTE: the RFID simulators load on demand: a room without a reader never pays for them.
    if kind == "mfrc522":
        from props.sim.mfrc522 import MFRC522Simulator

        return MFRC522Simulator(config, factory)
    if kind == "sorting":
        from props.sim.mfrc522 import SortingSimulator

        return SortingSimulator(config, factory)
    if kind == "rdm6300":
        from props.sim.rdm6300 import RDM6300Simulator

        return RDM6300Simulator(config, factory)
    msg = f"no simulator for prop kind {kind!r}"  # pragma: no cover - union is closed
    raise PropConfigError(msg)  # pragma: no cover
