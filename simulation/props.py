"""The apartment's props, simulated at the level of the node's port (``nodes.core.Ports``).

A real node drives its props through gpiozero, and the drivers of keypads and RFID
readers run threads of their own (a keypad's scan, a reader's poll). None of that runs
here: each prop is a small state machine with the same reported state and the same
events as its driver, and the actors (``simulation/actors.py``) act on it physically:

* maglocks, relays and contacts are plain state: a relay is driven or not, a door or a
  window open or shut, a button pressed or not (a button held past its ``hold_time``
  gives its ``held`` event, as gpiozero does);
* keypads and readers are the events an actor produces: the keys of a code (the keypad's
  buffer, ``code`` on its length or ``#``, ``*`` clears), a tag laid on a reader or taken
  off, a tag dropped in a bin or taken out.

Each prop has a physical part (a door, a window, a tag on a reader: it outlives the
node's process) and a driver part (the relay driven, a keypad's buffer, the tag the reader
reported): a crash of the node loses the driver part (relays fall open, as a maglock does
when its coil loses power) and a new boot starts it again (a tag still on a reader is
reported again). Not modelled: a half-typed code timing out, blinks and beeps (no state).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from config.game import Node
from props.contact import WORDS
from props.exc import BadActionParams, UnknownAction
from props.models import (
    ButtonConfig,
    KeypadConfig,
    MaglockConfig,
    MFRC522Config,
    OutputConfig,
    PropConfig,
    RDM6300Config,
    SortingConfig,
)
from simulation.scheduler import Scheduler

#: ``emit(prop, event, value)`` and ``changed(prop)``: what a prop tells its node
Emit = Callable[[str, str, Any], None]
Changed = Callable[[str], None]


class SimProp:
    """One prop: its physical state and what its driver holds in this boot of the node."""

    def __init__(self, config: PropConfig, scheduler: Scheduler) -> None:
        self.id = config.id
        self.kind = config.kind
        self.config = config
        self.scheduler = scheduler
        self.emit: Emit = lambda *_: None
        self.changed: Changed = lambda _prop: None
        self.alive = False
        self.generation = 0   # the driver's boot: what a timer of an older one must not touch

    def boot(self, emit: Emit, changed: Changed) -> None:
        """A new boot of the node builds the driver (its callbacks: the node's inbox)."""
        self.emit, self.changed, self.alive = emit, changed, True
        self.generation += 1

    def power_off(self) -> None:
        """The node's process died: its callbacks are gone, the driver's memory too."""
        self.alive = False
        self.emit, self.changed = (lambda *_: None), (lambda _prop: None)

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, action: str, params: Mapping[str, Any]) -> None:
        msg = f"{self.kind} does not accept {action!r}"
        raise UnknownAction(msg)

    def reset(self) -> None:
        """The pre-game state its driver can reach (a lock locked, a buffer cleared)."""

    def _fire(self, event: str, value: Any = None) -> None:
        self.emit(self.id, event, value)
        self.changed(self.id)


class Maglock(SimProp):
    """A relay holding a door (open only while the relay is not driven) and its reed switch."""

    config: MaglockConfig

    def __init__(self, config: MaglockConfig, scheduler: Scheduler) -> None:
        super().__init__(config, scheduler)
        self.engaged = False
        self.door_open = False
        self._pulse = 0   # the pulse under way (a later order cancels its relock)

    def state(self) -> dict[str, Any]:
        door = "unknown" if self.config.door is None else ("open" if self.door_open else "closed")
        return {"locked": self.engaged and door != "open", "engaged": self.engaged, "door": door}

    def _drive(self, engaged: bool) -> None:
        self._pulse += 1
        if engaged != self.engaged:
            self.engaged = engaged
            self.changed(self.id)

    def apply(self, action: str, params: Mapping[str, Any]) -> None:
        if action == "lock":
            self._drive(True)
        elif action == "unlock":
            self._drive(False)
        elif action == "pulse":
            seconds = params.get("seconds", 3.0)
            if not isinstance(seconds, int | float) or not 0 < seconds <= 600:
                msg = f"pulse needs 0 < seconds <= 600, got {seconds!r}"
                raise BadActionParams(msg)
            self._drive(False)
            self.scheduler.call_later(float(seconds), self._relock, self._pulse)
        else:
            super().apply(action, params)

    def _relock(self, pulse: int) -> None:
        if self.alive and pulse == self._pulse:
            self._drive(True)

    def reset(self) -> None:
        self._drive(True)

    def power_off(self) -> None:
        super().power_off()
        self.engaged = False   # a maglock without power holds nothing
        self._pulse += 1

    # -- hands ------------------------------------------------------------------------
    def set_door(self, door_open: bool) -> bool:
        """Push or pull the door: it opens only while the relay is not driven."""
        if door_open == self.door_open or (door_open and self.engaged):
            return False
        self.door_open = door_open
        if self.config.door is not None:
            self._fire("door", "open" if door_open else "closed")
        return True


class Output(SimProp):
    """A relay, LED or buzzer: on or off (its boot state is its ``initial_value``)."""

    config: OutputConfig

    def __init__(self, config: OutputConfig, scheduler: Scheduler) -> None:
        super().__init__(config, scheduler)
        self.on = False

    def boot(self, emit: Emit, changed: Changed) -> None:
        super().boot(emit, changed)
        self.on = self.config.initial_value

    def power_off(self) -> None:
        super().power_off()
        self.on = False

    def state(self) -> dict[str, Any]:
        return {"on": self.on}

    def _set(self, on: bool) -> None:
        if on != self.on:
            self.on = on
            self.changed(self.id)

    def apply(self, action: str, params: Mapping[str, Any]) -> None:
        if action == "on":
            self._set(True)
        elif action == "off":
            self._set(False)
        elif action not in ("blink", "pulse", "beep"):
            super().apply(action, params)

    def reset(self) -> None:
        self._set(self.config.initial_value)


class Contact(SimProp):
    """A button, reed switch or pressure mat: active or not, as the hand leaves it."""

    config: ButtonConfig

    def __init__(self, config: ButtonConfig, scheduler: Scheduler) -> None:
        super().__init__(config, scheduler)
        self.words = WORDS[config.kind]
        self.active = config.start_active
        self._press = 0

    def state(self) -> dict[str, Any]:
        return {self.words.state: self.active}

    def set_active(self, active: bool) -> bool:
        """A hand presses or releases, closes or opens, steps on or off."""
        if active == self.active:
            return False
        self.active = active
        self._press += 1
        self._fire(self.words.on if active else self.words.off)
        if active and self.alive and self.words.held is not None:
            hold = self.config.hold_time   # gpiozero times a hold from the press it saw
            self.scheduler.call_later(hold, self._held, self._press, self.generation, hold)
        return True

    def _held(self, press: int, generation: int, seconds: float) -> None:
        if (self.alive and press == self._press and generation == self.generation and self.active
                and self.words.held is not None):
            self.emit(self.id, self.words.held, round(seconds, 3))


class Keypad(SimProp):
    """The keys an actor types: the buffer, ``key`` per key, ``code`` on its length or ``#``."""

    config: KeypadConfig

    def __init__(self, config: KeypadConfig, scheduler: Scheduler) -> None:
        super().__init__(config, scheduler)
        self.buffer = ""
        self.last_key: str | None = None

    def boot(self, emit: Emit, changed: Changed) -> None:
        super().boot(emit, changed)
        self.buffer, self.last_key = "", None

    def state(self) -> dict[str, Any]:
        return {"buffer_length": len(self.buffer), "last_key": self.last_key}

    def press(self, key: str) -> None:
        """One key, as the driver registers it (a completed code leaves before its key)."""
        cfg = self.config
        events: list[tuple[str, Any]] = [("key", key)]
        self.last_key = key
        if key == cfg.clear_key:
            self.buffer = ""
            events.append(("cleared", None))
        elif key == cfg.enter_key:
            if self.buffer:
                events.insert(0, ("code", self.buffer))
            self.buffer = ""
        else:
            self.buffer += key
            if cfg.code_length is not None and len(self.buffer) >= cfg.code_length:
                events.insert(0, ("code", self.buffer))
                self.buffer = ""
        for event, value in events:
            self.emit(self.id, event, value)
        self.changed(self.id)

    def apply(self, action: str, params: Mapping[str, Any]) -> None:
        if action == "clear":
            self.reset()
        elif action == "feedback":
            if params.get("result") not in ("ok", "wrong"):
                msg = f"feedback needs {{'result': 'ok' | 'wrong'}}, got {dict(params)!r}"
                raise BadActionParams(msg)
        else:
            super().apply(action, params)

    def reset(self) -> None:
        self.buffer, self.last_key = "", None
        self.changed(self.id)


class Reader(SimProp):
    """An RFID reader: the tag lying on it, and the one its driver reported."""

    config: MFRC522Config | RDM6300Config

    def __init__(self, config: MFRC522Config | RDM6300Config, scheduler: Scheduler) -> None:
        super().__init__(config, scheduler)
        self.in_field: str | None = None
        self.tag: str | None = None

    def boot(self, emit: Emit, changed: Changed) -> None:
        super().boot(emit, changed)
        self.tag = None
        self.scheduler.call_soon(self._see)   # its first poll: a tag left on it is read

    def power_off(self) -> None:
        super().power_off()
        self.tag = None

    def state(self) -> dict[str, Any]:
        extra = {"connected": True} if self.kind == "rdm6300" else {"version": "0x92"}
        return {"tag": self.tag, "tag_name": self.config.tags.get(self.tag or ""), **extra,
                "errors": 0}

    def _see(self) -> None:
        if not self.alive or self.in_field == self.tag:
            return
        if self.tag is not None:
            self.emit(self.id, "removed", self.tag)
        self.tag = self.in_field
        if self.tag is not None:
            self.emit(self.id, "tag", self.tag)
        self.changed(self.id)

    def lay(self, uid: str | None) -> None:
        """A hand lays a tag on the reader (None: takes it off)."""
        self.in_field = uid
        self._see()

    def reset(self) -> None:
        """Forget the reported tag: one still on the reader is reported again."""
        if self.tag is not None:
            self.tag = None
            self.changed(self.id)
        self._see()


class Sorting(SimProp):
    """Bins, each with a reader: the tag dropped in each, and the one its driver reported."""

    config: SortingConfig

    def __init__(self, config: SortingConfig, scheduler: Scheduler) -> None:
        super().__init__(config, scheduler)
        self.in_bin: dict[str, str | None] = dict.fromkeys(config.bins)
        self.bins: dict[str, str | None] = dict.fromkeys(config.bins)

    def boot(self, emit: Emit, changed: Changed) -> None:
        super().boot(emit, changed)
        self.bins = dict.fromkeys(self.config.bins)
        self.scheduler.call_soon(self._see)

    def power_off(self) -> None:
        super().power_off()
        self.bins = dict.fromkeys(self.config.bins)

    def state(self) -> dict[str, Any]:
        return {"bins": dict(self.bins),
                "names": {b: self.config.tags.get(uid or "") for b, uid in self.bins.items()}}

    def _see(self) -> None:
        if not self.alive:
            return
        moved = False
        for name, uid in self.in_bin.items():
            seen = self.bins[name]
            if uid == seen:
                continue
            if seen is not None:
                self.emit(self.id, "removed", {"bin": name, "uid": seen})
            if uid is not None:
                self.emit(self.id, "placed", {"bin": name, "uid": uid})
            self.bins[name] = uid
            moved = True
        if moved:
            self.changed(self.id)

    def drop(self, bin_name: str, uid: str | None) -> None:
        """A hand drops a tag in a bin (None: empties it)."""
        self.in_bin[bin_name] = uid
        self._see()

    def reset(self) -> None:
        if any(self.bins.values()):
            self.bins = dict.fromkeys(self.config.bins)
            self.changed(self.id)
        self._see()


def build(config: PropConfig, scheduler: Scheduler) -> SimProp:
    """The simulated prop of *config*."""
    if isinstance(config, MaglockConfig):
        return Maglock(config, scheduler)
    if isinstance(config, OutputConfig):
        return Output(config, scheduler)
    if isinstance(config, ButtonConfig):
        return Contact(config, scheduler)
    if isinstance(config, KeypadConfig):
        return Keypad(config, scheduler)
    if isinstance(config, MFRC522Config | RDM6300Config):
        return Reader(config, scheduler)
    if isinstance(config, SortingConfig):
        return Sorting(config, scheduler)
    msg = f"no simulated prop for kind {config.kind!r}"
    raise ValueError(msg)


def build_node(node: Node, scheduler: Scheduler) -> dict[str, SimProp]:
    return {p.id: build(p, scheduler) for p in node.props}
