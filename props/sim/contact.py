"""A hand on a contact (button, reed switch, pressure mat) and on a maglock's door."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gpiozero.pins.mock import MockFactory, MockPin

from props.sim.base import Simulator, special_pin

if TYPE_CHECKING:
    from props.models import ButtonConfig, MaglockConfig


class SwitchPin(MockPin):
    """A mock pin wired to a switch: closed, it wins over the pull resistor.

    ``switch_level`` is the level the closed switch forces: False for a switch to GND
    (with the pin's pull-up), True for a switch to 3V3 (with a pull-down).
    """

    def __init__(self, factory: MockFactory, info: Any) -> None:
        super().__init__(factory, info)
        self.switch_closed = False
        self.switch_level = False

    def drive_high(self) -> None:
        if self._function == "input" and self.switch_closed and not self.switch_level:
            super().drive_low()
        else:
            super().drive_high()

    def drive_low(self) -> None:
        if self._function == "input" and self.switch_closed and self.switch_level:
            super().drive_high()
        else:
            super().drive_low()

    def set_switch(self, closed: bool) -> None:
        """Close or open the switch; the pin follows (and gpiozero sees the edge)."""
        self.switch_closed = bool(closed)
        if self._function != "input":
            return
        if self.switch_closed:
            level = self.switch_level
        elif self._pull in ("up", "down"):
            level = self._pull == "up"
        else:
            return  # floating: keeps its level
        if level:
            super().drive_high()
        else:
            super().drive_low()


class ContactSimulator(Simulator):
    """A finger on a button, a magnet by a reed switch (starts closed), a foot on a mat.

    The contact starts in its configured start state (``start``, props/start.py): a button
    released, a window shut, a mat free, unless the game says otherwise.
    """

    #: what each gesture does to the switch: close it, open it, close then open it
    _MOVES: Mapping[str, str] = {"down": "close", "close": "close", "step_on": "close",
                                 "release": "open", "open": "open", "step_off": "open",
                                 "press": "click", "step": "click", "hold": "hold"}

    def __init__(self, config: ButtonConfig, factory: MockFactory) -> None:
        super().__init__(config, factory)
        self.pin: SwitchPin = special_pin(factory, config.pin, SwitchPin)
        # NOTE: a pull-up contact switches to GND, a pull-down one to 3V3.
        self.pin.switch_level = not config.pull_up
        self.pin.set_switch(config.start_active)

    @property
    def pressed(self) -> bool:
        """True while the simulated contact is closed."""
        return self.pin.switch_closed

    def _perform(self, gesture: str, value: Any) -> None:
        move = self._MOVES[gesture]
        if move == "close":
            self.pin.set_switch(True)
        elif move == "open":
            self.pin.set_switch(False)
        elif move == "click":
            self.pin.set_switch(True)
            self.pin.set_switch(False)
        else:  # hold
            self.pin.set_switch(True)
            try:
                time.sleep(value)  # NOTE: time must pass for gpiozero's hold thread
            finally:
                self.pin.set_switch(False)


class MaglockSimulator(Simulator):
    """The door of a maglock, opened and closed by hand. The door starts closed."""

    def __init__(self, config: MaglockConfig, factory: MockFactory) -> None:
        super().__init__(config, factory)
        self.door_pin: SwitchPin | None = None
        if config.door is not None:
            self.door_pin = special_pin(factory, config.door, SwitchPin)
            self.door_pin.switch_level = False  # reed switch to GND, pin pulled up
            # reed closed by the door magnet iff "door closed" reads low
            self._closed_means_switch = config.door_closed_level == "low"
            self._set_door(closed=True)

    @property
    def door_closed(self) -> bool | None:
        """The simulated door (None without a sensor)."""
        if self.door_pin is None:
            return None
        return self.door_pin.switch_closed == self._closed_means_switch

    def _set_door(self, *, closed: bool) -> None:
        assert self.door_pin is not None
        self.door_pin.set_switch(closed == self._closed_means_switch)

    def _perform(self, gesture: str, value: Any) -> None:
        self._set_door(closed=gesture == "close_door")
