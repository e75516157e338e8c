"""A finger on a matrix keypad: row and column pins joined by the keys held down."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gpiozero.pins.mock import MockFactory, MockPin

from props.sim.base import Simulator, special_pin
from props.sim.gestures import keypad_key, keypad_keys

if TYPE_CHECKING:
    from props.models import KeypadConfig

log = logging.getLogger(__name__)

#: seconds a gesture waits for the keypad's reaction before giving up (with a warning)
REACTION_TIMEOUT = 2.0


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
        rows = [special_pin(factory, p, KeypadRowPin) for p in config.rows]
        cols = [special_pin(factory, p, KeypadColumnPin) for p in config.cols]
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
        keypad_keys(self.config, keys)
        return all([self.press(key) for key in keys])

    def _check_key(self, key: Any) -> str:
        return keypad_key(self.config, key)

    def _perform(self, gesture: str, value: Any) -> None:
        if gesture == "type":
            self.type(value)
        elif gesture == "press":
            self.press(value)
        elif gesture == "down":
            self.down(value)
        else:
            self.up(value)
