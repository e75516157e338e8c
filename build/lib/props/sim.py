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
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpiozero.pins.mock import MockFactory, MockPin

from props.exc import BadActionParams, PropConfigError, UnknownAction

if TYPE_CHECKING:
    from props.models import ButtonConfig, KeypadConfig, MaglockConfig, PropConfig

log = logging.getLogger(__name__)

#: seconds a gesture waits for a prop's reaction before giving up (with a warning)
REACTION_TIMEOUT = 2.0
#: the longest a simulated hand holds a contact down
MAX_HOLD_S = 60.0


# -- the gestures of each kind, and their values ------------------------------------------
class UnknownGesture(UnknownAction):
    """A gesture the prop does not have; :attr:`known` lists those it has."""

    def __init__(self, message: str, known: Sequence[GestureSpec]) -> None:
        super().__init__(message)
        self.known = tuple(known)


@dataclass(frozen=True, slots=True)
class GestureSpec:
    """A gesture a simulated hand can make on a kind of prop.

    *french* names it for the game master (« appuyer »); *value* checks the gesture's value
    for one prop and returns it as the simulator uses it, or raises BadActionParams.
    """

    name: str
    french: str
    value: Callable[[Any, Any], Any]

    def public(self) -> dict[str, str]:
        return {"gesture": self.name, "label": self.french}


def _none(_config: Any, value: Any) -> None:
    if value is not None:
        msg = f"ce geste ne prend pas de valeur (reçu {value!r})"
        raise BadActionParams(msg)


def _key(config: KeypadConfig, value: Any) -> str:
    from props.keypad import KEYMAPS

    keys = "".join(KEYMAPS[config.layout])
    if not isinstance(value, str) or len(value) != 1 or value not in keys:
        msg = f"une touche de ce clavier ({keys}) est attendue, pas {value!r}"
        raise BadActionParams(msg)
    return value


def _keys(config: KeypadConfig, value: Any) -> str:
    if not isinstance(value, str) or not value:
        msg = f"les touches à taper sont attendues (« 0412# »), pas {value!r}"
        raise BadActionParams(msg)
    for key in value:
        _key(config, key)
    return value


def _seconds(config: ButtonConfig, value: Any) -> float:
    if value is None:
        return config.hold_time + 0.2   # just long enough for ``held``
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_HOLD_S:
        msg = f"une durée en secondes entre 0 et {MAX_HOLD_S:g} est attendue, pas {value!r}"
        raise BadActionParams(msg)
    return float(value)


def _mifare_uid(_config: Any, value: Any) -> str:
    from props.mfrc522_sim import parse_uid

    try:
        return parse_uid(value).hex()
    except (TypeError, ValueError):
        msg = f"l'UID d'un badge en hexadécimal (8, 14 ou 20 chiffres) est attendu, pas {value!r}"
        raise BadActionParams(msg) from None


def _em4100_id(_config: Any, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{10}", value):
        msg = f"l'identifiant EM4100 d'un badge (10 chiffres hexadécimaux) est attendu, pas {value!r}"
        raise BadActionParams(msg)
    return value.lower()


def _bin(config: Any, value: Any) -> dict[str, str]:
    bins = sorted(config.bins)
    if not isinstance(value, Mapping) or value.get("bin") not in bins:
        msg = f"un bac parmi {', '.join(bins)} est attendu ({{\"bin\": …}}), pas {value!r}"
        raise BadActionParams(msg)
    return {"bin": value["bin"]}


def _bin_and_uid(config: Any, value: Any) -> dict[str, str]:
    where = _bin(config, value)
    return {**where, "uid": _mifare_uid(config, value.get("uid"))}


_CONTACT = (GestureSpec("hold", "maintenir (secondes, puis relâcher)", _seconds),)
_TAGS = (GestureSpec("present", "poser un badge (UID)", _mifare_uid),
         GestureSpec("remove", "retirer le badge", _none))

#: every kind's gestures, in the order the game master reads them
GESTURES: dict[str, tuple[GestureSpec, ...]] = {
    "keypad": (GestureSpec("press", "appuyer sur une touche", _key),
               GestureSpec("type", "taper des touches", _keys),
               GestureSpec("down", "enfoncer une touche sans la relâcher", _key),
               GestureSpec("up", "relâcher une touche", _key)),
    "maglock": (GestureSpec("open_door", "ouvrir la porte", _none),
                GestureSpec("close_door", "fermer la porte", _none)),
    "button": (GestureSpec("press", "appuyer (puis relâcher)", _none), *_CONTACT,
               GestureSpec("down", "enfoncer sans relâcher", _none),
               GestureSpec("release", "relâcher", _none)),
    "reed_switch": (GestureSpec("open", "ouvrir", _none),
                    GestureSpec("close", "fermer", _none)),
    "pressure_mat": (GestureSpec("step", "passer dessus", _none), *_CONTACT,
                     GestureSpec("step_on", "monter dessus et y rester", _none),
                     GestureSpec("step_off", "en descendre", _none)),
    "led": (), "relay": (), "buzzer": (),
    "mfrc522": _TAGS,
    "rdm6300": (GestureSpec("present", "poser un badge (identifiant EM4100)", _em4100_id),
                _TAGS[1]),
    "sorting": (GestureSpec("present", "poser un objet dans un bac ({bin, uid})", _bin_and_uid),
                GestureSpec("remove", "retirer l'objet d'un bac ({bin})", _bin)),
}


def gestures_of(config: PropConfig) -> tuple[GestureSpec, ...]:
    """The gestures a simulated hand can make on *config*'s prop (a door needs a sensor)."""
    if config.kind == "maglock" and getattr(config, "door", None) is None:
        return ()
    return GESTURES[config.kind]


def check_gesture(config: PropConfig, gesture: str, value: Any = None) -> Any:
    """The value *gesture* is performed with on *config*'s prop; raises
    :class:`UnknownGesture` (with the known ones) or BadActionParams, in French."""
    known = gestures_of(config)
    label = config.label or config.id
    spec = next((g for g in known if g.name == gesture), None)
    if spec is None:
        listed = ", ".join(f"{g.french} ({g.name})" for g in known) or "aucun"
        msg = f"geste inconnu « {gesture} » pour {label} ; gestes possibles : {listed}"
        raise UnknownGesture(msg, known)
    try:
        return spec.value(config, value)
    except BadActionParams as exc:
        msg = f"« {spec.french} » sur {label} : {exc}"
        raise BadActionParams(msg) from None


class Simulator:
    """The simulated wiring of one prop; this base one has no gesture.

    :attr:`config` is the config to build the prop with (a subclass may adjust it, e.g.
    the serial port of a simulated RDM6300); :meth:`pin_levels` reads every pin the prop
    uses, for the technician page.
    """

    def __init__(self, config: PropConfig, factory: MockFactory) -> None:
        self.config = config
        self.factory = factory

    @property
    def gestures(self) -> frozenset[str]:
        """The names of the gestures this prop accepts (:data:`GESTURES`)."""
        return frozenset(g.name for g in gestures_of(self.config))

    def perform(self, gesture: str, value: Any = None) -> None:
        """Do *gesture* with the player's hand; raises UnknownGesture / BadActionParams."""
        self._perform(gesture, check_gesture(self.config, gesture, value))

    def pin_levels(self) -> dict[int, bool]:
        """Current level (True = high) of each pin of this prop."""
        return {use.pin: bool(self.factory.pin(use.pin).state)
                for use in self.config.pin_uses()}

    def close(self) -> None:
        """Release what the simulation holds (a base simulator holds nothing)."""

    def _perform(self, gesture: str, value: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config.id!r} levels={self.pin_levels()}>"


def prepare(config: PropConfig, factory: MockFactory) -> Simulator:
    """Wire up the simulated hardware of *config* on *factory*; call before building it."""
    if not isinstance(factory, MockFactory):
        msg = f"simulated props need a gpiozero MockFactory, not {type(factory).__name__}"
        raise PropConfigError(msg)
    kind = config.kind
    simple: dict[str, Callable[[Any, MockFactory], Simulator]] = {
        "keypad": KeypadSimulator, "maglock": MaglockSimulator,
        "button": ContactSimulator, "reed_switch": ContactSimulator,
        "pressure_mat": ContactSimulator,
        "led": Simulator, "relay": Simulator, "buzzer": Simulator,
    }
    if kind in simple:
        return simple[kind](config, factory)
    if kind == "mfrc522":
        from props.mfrc522_sim import prepare_mfrc522

        return prepare_mfrc522(config, factory)
    if kind == "sorting":
        from props.mfrc522_sim import prepare_sorting

        return prepare_sorting(config, factory)
    if kind == "rdm6300":
        from props.rdm6300 import prepare_rdm6300

        return prepare_rdm6300(config, factory)
    msg = f"no simulator for prop kind {kind!r}"  # pragma: no cover - union is closed
    raise PropConfigError(msg)  # pragma: no cover


def _special_pin(factory: MockFactory, number: int, pin_class: type[MockPin]) -> Any:
    pin = factory.pin(number, pin_class=pin_class)
    if not isinstance(pin, pin_class):
        msg = (f"GPIO{number} already exists as a {type(pin).__name__} on this factory: "
               "call props.sim.prepare() before building the prop")
        raise PropConfigError(msg)
    return pin


# -- a switch between a pin and GND (or 3V3) ---------------------------------------------
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
        self.pin: SwitchPin = _special_pin(factory, config.pin, SwitchPin)
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
            self.door_pin = _special_pin(factory, config.door, SwitchPin)
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


# -- a matrix keypad --------------------------------------------------------------------
class KeypadRowPin(MockPin):
    """A row pin of a simulated keypad: tells the matrix whenever what it drives changes."""

    def __init__(self, factory: MockFactory, info: Any) -> None:
        super().__init__(factory, info)
        self.matrix: KeypadMatrix | None = None

    @property
    def driven_low(self) -> bool:
        return self._function == "output" and not self._state

    @property
    def driven_high(self) -> bool:
        return self._function == "output" and bool(self._state)

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        if changed and self.matrix is not None:
            self.matrix.row_changed(self)
        return changed

    def _set_function(self, value: str) -> None:
        super()._set_function(value)
        if self.matrix is not None:
            self.matrix.row_changed(self)


class KeypadColumnPin(MockPin):
    """A column pin: reads low iff a pressed key joins it to a row driven low."""

    def __init__(self, factory: MockFactory, info: Any) -> None:
        super().__init__(factory, info)
        self.matrix: KeypadMatrix | None = None

    def drive_high(self) -> None:
        # NOTE: the pull-up loses against a pressed key on a row driven low.
        if self.matrix is not None and self.matrix.column_shorted_low(self):
            super().drive_low()
        else:
            super().drive_high()

    def settle(self) -> None:
        """Recompute the level after a key or a row changed (edges fire as usual)."""
        if self._function != "input":
            return
        if self.matrix is not None and self.matrix.column_shorted_low(self):
            super().drive_low()
        elif self._pull == "up":
            super().drive_high()
        elif self._pull == "down":
            super().drive_low()


class KeypadMatrix:
    """The keys of a matrix keypad joining :class:`KeypadRowPin` to :class:`KeypadColumnPin`.

    It also watches what the rows do, which is all a simulated hand needs to know when the
    keypad has read a key: see :meth:`wait_registered`.
    """

    def __init__(self, keymap: Sequence[str], rows: Sequence[KeypadRowPin],
                 cols: Sequence[KeypadColumnPin]) -> None:
        self.keymap = tuple(keymap)
        self.positions = {key: (r, c) for r, line in enumerate(keymap)
                          for c, key in enumerate(line)}
        self.rows = list(rows)
        self.cols = list(cols)
        self._cond = threading.Condition(threading.RLock())
        self._pressed: set[str] = set()
        # what the rows did, oldest first: (seq, r) when row r alone went low (a read of
        # row r), (seq, None) when all rows went low (the keypad went idle)
        self._log: deque[tuple[int, int | None]] = deque(maxlen=256)
        self._seq = 0
        self._row_index = {id(pin): r for r, pin in enumerate(self.rows)}
        self._col_index = {id(pin): c for c, pin in enumerate(self.cols)}
        for pin in self.rows:
            pin.matrix = self
        for pin in self.cols:
            pin.matrix = self
        for pin in self.cols:
            pin.settle()

    @property
    def pressed(self) -> frozenset[str]:
        """The keys held down now."""
        return frozenset(self._pressed)

    def column_shorted_low(self, column: KeypadColumnPin) -> bool:
        with self._cond:
            c = self._col_index[id(column)]
            return any(self.rows[r].driven_low for key in self._pressed
                       for r, kc in (self.positions[key],) if kc == c)

    def row_changed(self, row: KeypadRowPin) -> None:
        with self._cond:
            # NOTE: a row reaches a column only through a pressed key: with no key down on
            # this row no column can change (a scan writes a row a dozen times per key).
            r = self._row_index.get(id(row))
            for key in self._pressed:
                kr, kc = self.positions[key]
                if r is None or kr == r:
                    self.cols[kc].settle()
            low = [r for r, pin in enumerate(self.rows) if pin.driven_low]
            if len(low) == len(self.rows):
                if not self._log or self._log[-1][1] is not None:
                    self._record(None)
            elif (row.driven_low and len(low) == 1
                  and all(pin.driven_high for pin in self.rows if pin is not row)):
                self._record(low[0])

    def _record(self, row: int | None) -> None:
        self._seq += 1
        self._log.append((self._seq, row))
        self._cond.notify_all()

    # -- the hand ----------------------------------------------------------------------
    def down(self, key: str) -> int:
        """Press *key* and keep it down; returns a mark for the waits below."""
        with self._cond:
            self._pressed.add(key)
            self.cols[self.positions[key][1]].settle()
            return self._seq

    def up(self, key: str) -> int:
        """Let *key* go; returns a mark for the waits below."""
        with self._cond:
            self._pressed.discard(key)
            self.cols[self.positions[key][1]].settle()
            return self._seq

    def wait_registered(self, key: str, mark: int, timeout: float) -> bool:
        """Wait until the keypad has read *key*, pressed when :meth:`down` gave *mark*.

        A :class:`props.keypad.Keypad` scans every row in turn until a key has been stable
        for its debounce time, registers it, and then reads only that key's row until the
        key is released. So the same row read twice in a row, with no other row and no
        idle in between, means the key event has been emitted. No clock involved.
        """
        row = self.positions[key][0]

        def registered() -> bool:
            previous: int | None = None
            for seq, r in self._log:
                if seq > mark and r == row and previous == row:
                    return True
                previous = r if seq > mark else None
            return False

        return self._wait(registered, timeout)

    def wait_idle(self, mark: int, timeout: float) -> bool:
        """Wait until the keypad has gone back to idle (all rows low) after *mark*."""
        return self._wait(lambda: any(seq > mark and r is None for seq, r in self._log),
                          timeout)

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def levels(self) -> dict[str, list[bool]]:
        """Row and column levels, for debugging."""
        return {"rows": [bool(p.state) for p in self.rows],
                "cols": [bool(p.state) for p in self.cols]}


class KeypadSimulator(Simulator):
    """A finger on a matrix keypad.

    ``press`` holds the key until the keypad has registered it, lets it go, and waits
    until the keypad is idle again, so that ``press``/``type`` are deterministic whatever
    the debounce time. ``down``/``up`` move the finger and return at once.
    """

    def __init__(self, config: KeypadConfig, factory: MockFactory) -> None:
        from props.keypad import KEYMAPS

        super().__init__(config, factory)
        self.keymap = KEYMAPS[config.layout]
        self.timeout = REACTION_TIMEOUT + 4 * config.debounce
        rows = [_special_pin(factory, p, KeypadRowPin) for p in config.rows]
        cols = [_special_pin(factory, p, KeypadColumnPin) for p in config.cols]
        self.matrix = KeypadMatrix(self.keymap, rows, cols)

    @property
    def pressed(self) -> frozenset[str]:
        """The keys held down now."""
        return self.matrix.pressed

    def down(self, key: str) -> int:
        """Press *key* and keep it down; returns a mark for :meth:`wait_registered`."""
        return self.matrix.down(self._check_key(key))

    def up(self, key: str) -> int:
        """Release *key*; returns a mark for :meth:`wait_idle`."""
        return self.matrix.up(self._check_key(key))

    def wait_registered(self, key: str, mark: int, timeout: float | None = None) -> bool:
        """True once the keypad has registered *key* pressed at *mark*."""
        return self.matrix.wait_registered(key, mark, self.timeout if timeout is None
                                           else timeout)

    def wait_idle(self, mark: int, timeout: float | None = None) -> bool:
        """True once the keypad is idle again after *mark*."""
        return self.matrix.wait_idle(mark, self.timeout if timeout is None else timeout)

    def press(self, key: str) -> bool:
        """Press and release *key*; True if the keypad read it and went back to idle."""
        mark = self.down(key)
        try:
            registered = self.wait_registered(key, mark)
        finally:
            mark = self.up(key)
        idle = self.wait_idle(mark)
        if not (registered and idle):
            log.warning("keypad %s did not react to key %r (is it built and open?)",
                        self.config.id, key)
        return registered and idle

    def type(self, keys: str) -> bool:
        """Press each key of *keys* in turn."""
        _keys(self.config, keys)
        return all([self.press(key) for key in keys])

    def _check_key(self, key: Any) -> str:
        return _key(self.config, key)

    def _perform(self, gesture: str, value: Any) -> None:
        if gesture == "type":
            self.type(value)
        elif gesture == "press":
            self.press(value)
        elif gesture == "down":
            self.down(value)
        else:
            self.up(value)
