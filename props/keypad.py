"""A matrix keypad (3×4 phone layout or 4×4 with A–D) that costs nothing while idle.

Wiring: the four rows are outputs, the columns are inputs with pull-ups. A key joins its
row to its column, so a column reads low when a pressed key connects it to a row that
is driven low.

Scanning, and why it is cheap:

1. **Idle**: all rows are driven low. Any key press pulls its column low, which gpiozero
   reports as an edge; the callback only sets a :class:`threading.Event`. The worker
   thread sleeps on that event: no polling at all while nobody touches the keypad (it
   also wakes when a half-typed code times out).
2. **Settle**: the worker drives all rows high, then each row low in turn and reads the
   columns, until the same key (or none) has been read for ``debounce`` seconds. A
   chattering contact therefore gives one key; a glitch gives none.
3. **Held**: the key is registered (one ``key`` event per press); the worker then polls
   only that key's row every 10 ms until the key has been up for ``debounce`` seconds,
   and goes back to idle.

Row changes made by the scan themselves cause column edges; they only set the event,
which the worker clears when it returns to idle and then checks the column levels
directly, so nothing re-enters the scan and no press in between is lost.
:mod:`props.sim` relies on step 3's signature (one row lowered again and again) to know
when a simulated press has been registered.

Over 400 lines because it is one thing: the scan above and the code it collects.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

from gpiozero import CompositeDevice, Device, DigitalInputDevice, DigitalOutputDevice

from props.base import Prop, SelfTestResult
from props.exc import BadActionParams, PropConfigError
from props.outputs import BEEPS, SafeBuzzer, SafeLED

if TYPE_CHECKING:
    from gpiozero import Factory

    from props.models import KeypadConfig

log = logging.getLogger(__name__)

#: key labels, one string per row, top to bottom
KEYMAPS: Mapping[str, tuple[str, ...]] = {
    "3x4": ("123", "456", "789", "*0#"),
    "4x4": ("123A", "456B", "789C", "*0#D"),
}
#: seconds between two reads of a held key (the only polling the keypad ever does)
HELD_POLL = 0.010
#: the longest code kept: older keys drop off a buffer nobody submits
MAX_BUFFER = 32


class Keypad(Prop, CompositeDevice):
    """A 3×4 or 4×4 matrix keypad that collects a code.

    Children: ``rows`` (a :class:`~gpiozero.CompositeDevice` of
    :class:`~gpiozero.DigitalOutputDevice`), ``cols`` (of pulled-up
    :class:`~gpiozero.DigitalInputDevice`) and, when given, ``led`` and ``buzzer`` for
    feedback (a short blink / beep per key).

    Keys other than ``enter_key`` and ``clear_key`` accumulate in a buffer. The code is
    submitted (event ``code``) on ``enter_key`` if the buffer is not empty, or as soon as
    ``code_length`` keys are typed. ``clear_key``, the ``clear`` action and
    ``entry_timeout`` seconds without a key clear it (event ``cleared``).

    Example::

        >>> from gpiozero.pins.mock import MockFactory
        >>> keypad = Keypad(rows=[5, 6, 13, 19], cols=[12, 16, 20], code_length=4,
        ...                 pin_factory=MockFactory())
        >>> keypad.when_code = lambda code: print("code typed:", code)
        >>> keypad.state
        {'buffer_length': 0, 'last_key': None}
        >>> keypad.close()
    """

    kind: ClassVar[str] = "keypad"
    actions: ClassVar[frozenset[str]] = frozenset({"clear", "feedback"})

    #: called with the key (a one-character string) on each press
    when_key: Callable[[str], Any] | None = None
    #: called with the code (a string) each time one is submitted
    when_code: Callable[[str], Any] | None = None

    def __init__(self, *, rows: Sequence[int | str], cols: Sequence[int | str],
                 layout: str = "3x4", code_length: int | None = None, enter_key: str = "#",
                 clear_key: str = "*", entry_timeout: float = 10.0, debounce: float = 0.02,
                 led: int | str | None = None, buzzer: int | str | None = None,
                 pin_factory: Factory | None = None) -> None:
        # Everything close() and the worker touch exists before anything can fail.
        self._stop = threading.Event()
        self._edge = threading.Event()
        self._lock = threading.RLock()
        self._worker: threading.Thread | None = None
        self._rows: tuple[DigitalOutputDevice, ...] = ()
        self._cols: tuple[DigitalInputDevice, ...] = ()
        self._led: SafeLED | None = None
        self._buzzer: SafeBuzzer | None = None
        self._buffer = ""
        self._last_key: str | None = None
        self._held: str | None = None
        self._deadline: float | None = None
        self._test_keys: queue.SimpleQueue[str] | None = None

        keymap = _checked_keymap(layout=layout, rows=rows, cols=cols, code_length=code_length,
                                 enter_key=enter_key, clear_key=clear_key,
                                 entry_timeout=entry_timeout, debounce=debounce)
        self.layout = layout
        self.keymap = keymap
        self.code_length = code_length
        self.enter_key = enter_key
        self.clear_key = clear_key
        self.entry_timeout = float(entry_timeout)
        self.debounce = float(debounce)

        children = _build_children(rows=rows, cols=cols, led=led, buzzer=buzzer,
                                   pin_factory=pin_factory)
        try:
            super().__init__(pin_factory=pin_factory, _order=list(children), **children)
        except BaseException:
            for device in children.values():
                device.close()
            raise
        self._rows = tuple(children["rows"])  # type: ignore[call-overload]
        self._cols = tuple(children["cols"])  # type: ignore[call-overload]
        self._led = children.get("led")  # type: ignore[assignment]
        self._buzzer = children.get("buzzer")  # type: ignore[assignment]
        self._positions = {key: (r, c) for r, line in enumerate(keymap)
                           for c, key in enumerate(line)}
        try:
            for col in self._cols:
                col.when_activated = self._column_edge
            self._worker = threading.Thread(target=self._run, name="keypad-scan", daemon=True)
            self._worker.start()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_config(cls, config: KeypadConfig, *, pin_factory: Factory | None = None) -> Self:
        """Build the keypad described by *config*."""
        return cls(rows=config.rows, cols=config.cols, layout=config.layout,
                   code_length=config.code_length, enter_key=config.enter_key,
                   clear_key=config.clear_key, entry_timeout=config.entry_timeout,
                   debounce=config.debounce, led=config.led, buzzer=config.buzzer,
                   pin_factory=pin_factory)

    # -- gpiozero-style API ------------------------------------------------------------
    @property
    def value(self) -> str | None:
        """The key held down right now (as registered), or None."""
        return self._held

    @property
    def is_active(self) -> bool:
        return self._held is not None

    @property
    def buffer(self) -> str:
        """The keys typed so far and not yet submitted or cleared."""
        return self._buffer

    def clear(self) -> None:
        """Forget a half-typed code (event ``cleared`` if there was one)."""
        with self._lock:
            had = bool(self._buffer)
            self._buffer = ""
            self._deadline = None
        if had:
            self._emit("cleared", None)
        self._state_changed()

    def feedback(self, *, ok: bool) -> None:
        """Tell the player: two short beeps (and blinks) if *ok*, one long one if not."""
        on_time, off_time, n = BEEPS["ok" if ok else "wrong"]
        for device in (self._buzzer, self._led):
            if device is not None and not device.closed:
                device.blink(on_time=on_time, off_time=off_time, n=n, background=True)

    # -- Prop interface ----------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        return {"buffer_length": len(self._buffer), "last_key": self._last_key}

    def apply(self, action: str, params: Mapping[str, Any] | None = None) -> None:
        if action == "clear":
            self.clear()
        elif action == "feedback":
            result = (params or {}).get("result")
            if result not in ("ok", "wrong"):
                msg = f"feedback needs {{'result': 'ok' | 'wrong'}}, got {params!r}"
                raise BadActionParams(msg)
            self.feedback(ok=result == "ok")
        else:
            super().apply(action, params)

    def reset(self) -> None:
        """Pre-game state: empty buffer, no last key, no event."""
        with self._lock:
            self._buffer = ""
            self._deadline = None
            self._last_key = None
        self._state_changed()

    def self_test(self, *, timeout: float = 10.0) -> SelfTestResult:
        """Wait up to *timeout* seconds for any key; beep and blink when one comes."""
        keys: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._test_keys = keys
        try:
            key = keys.get(timeout=timeout)
        except queue.Empty:
            return SelfTestResult(passed=False, steps=(f"no key within {timeout:g} s",),
                                  message="no key pressed")
        finally:
            self._test_keys = None
        steps = [f"key {key!r} read"]
        try:
            self.feedback(ok=True)
            if self._buzzer is not None:
                steps.append("beeped")
            if self._led is not None:
                steps.append("blinked")
        except Exception as exc:
            log.exception("keypad feedback failed during self-test")
            return SelfTestResult(passed=False, steps=tuple(steps), message=str(exc))
        return SelfTestResult(passed=True, steps=tuple(steps), message=key)

    # -- gpiozero Device ---------------------------------------------------------------
    def close(self) -> None:
        """Stop the scanning thread, then release every pin. Harmless twice."""
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            self._edge.set()
            worker = self._worker
            if (worker is not None and worker.is_alive()
                    and worker is not threading.current_thread()):
                worker.join(timeout=2.0)
        super().close()

    def __repr__(self) -> str:
        if not self._rows or self.closed:
            return f"<props.Keypad {self.name or 'keypad'!r} closed>"
        rows = ",".join(repr(r.pin) for r in self._rows)
        cols = ",".join(repr(c.pin) for c in self._cols)
        return (f"<props.Keypad {self.name or 'keypad'!r} {self.layout} rows={rows} "
                f"cols={cols}, buffer_length={len(self._buffer)}, "
                f"last_key={self._last_key!r}, held={self._held!r}>")

    # -- the scanning thread -----------------------------------------------------------
    def _column_edge(self) -> None:
        # NOTE: runs in gpiozero's pin thread, or inside our own row writes during a
        # scan; it must do nothing but wake the worker.
        self._edge.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._idle():
                    break
                key = self._settle()
                if key is not None:
                    self._register(key)
                    self._wait_release(key)
            except Exception:
                if self._stop.is_set():
                    break  # closed under our feet: nothing to report
                log.exception("keypad scan failed; retrying")
                self._stop.wait(0.5)
        log.debug("keypad worker stopped")

    def _idle(self) -> bool:
        """Rows low, sleep until a column goes low; False when stopping."""
        for row in self._rows:
            row.off()
        while not self._stop.is_set():
            # NOTE: clear, then look: a press after the clear sets the event again, a
            # press before it (or a key still held) shows in the levels.
            self._edge.clear()
            if any(col.is_active for col in self._cols):
                return True
            deadline = self._deadline
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._edge.wait(timeout):
                self._expire_entry()
        return False

    def _scan(self) -> str | None:
        """One pass, rows all high beforehand: the first key down, or None."""
        found = None
        for r, row in enumerate(self._rows):
            row.off()
            try:
                if found is None:
                    for c, col in enumerate(self._cols):
                        if col.is_active:
                            found = self.keymap[r][c]
                            break
            finally:
                row.on()
        return found

    def _settle(self) -> str | None:
        """Scan until one reading (a key or none) has lasted ``debounce`` seconds."""
        for row in self._rows:
            row.on()
        key = self._scan()
        if self.debounce <= 0:
            return key
        since = time.monotonic()
        step = min(0.005, max(0.001, self.debounce / 4))
        while not self._stop.wait(step):
            now_key = self._scan()
            now = time.monotonic()
            if now_key != key:
                key, since = now_key, now
            elif now - since >= self.debounce:
                return key
        return None

    def _wait_release(self, key: str) -> None:
        """Poll the held key's row until the key has been up for ``debounce`` s."""
        r, c = self._positions[key]
        row, col = self._rows[r], self._cols[c]
        up_since: float | None = None
        try:
            while not self._stop.wait(HELD_POLL):
                row.off()
                try:
                    down = col.is_active
                finally:
                    row.on()
                now = time.monotonic()
                if down:
                    up_since = None
                elif up_since is None:
                    up_since = now
                if up_since is not None and now - up_since >= self.debounce:
                    return
        finally:
            self._held = None

    # -- what a key means --------------------------------------------------------------
    def _register(self, key: str) -> None:
        # NOTE: a key that completes a code gives ``code`` first, then its own ``key``:
        # the code is what opens a door, so it leaves first (docs/performance.md).
        events: list[tuple[str, Any]] = [("key", key)]
        with self._lock:
            self._held = key
            self._last_key = key
            if key == self.clear_key:
                self._buffer = ""
                events.append(("cleared", None))
            elif key == self.enter_key:
                if self._buffer:
                    events.insert(0, ("code", self._buffer))
                self._buffer = ""
            else:
                self._buffer = (self._buffer + key)[-MAX_BUFFER:]
                if self.code_length is not None and len(self._buffer) >= self.code_length:
                    events.insert(0, ("code", self._buffer))
                    self._buffer = ""
            self._deadline = (time.monotonic() + self.entry_timeout if self._buffer
                              else None)
        log.debug("%s: key %r", self.name or "keypad", key)
        self._key_feedback()
        test_keys = self._test_keys
        if test_keys is not None:
            test_keys.put(key)
        for event_type, value in events:
            self._emit(event_type, value)
            alias = {"key": self.when_key, "code": self.when_code}.get(event_type)
            if alias is not None:
                try:
                    alias(value)
                except Exception:
                    log.exception("when_%s of %s failed", event_type, self.name or self)
        self._state_changed()

    def _expire_entry(self) -> None:
        with self._lock:
            deadline = self._deadline
            if not self._buffer or deadline is None or time.monotonic() < deadline:
                return
            self._buffer = ""
            self._deadline = None
        log.debug("%s: half-typed code timed out", self.name or "keypad")
        self._emit("cleared", None)
        self._state_changed()

    def _key_feedback(self) -> None:
        on_time, off_time, n = BEEPS["key"]
        for device in (self._buzzer, self._led):
            if device is not None:
                device.blink(on_time=on_time, off_time=off_time, n=n, background=True)


def _checked_keymap(*, layout: str, rows: Sequence[int | str], cols: Sequence[int | str],
                    code_length: int | None, enter_key: str, clear_key: str,
                    entry_timeout: float, debounce: float) -> tuple[str, ...]:
    """The key map of *layout*, once the rest of the settings fit it."""
    keymap = KEYMAPS.get(layout)
    if keymap is None:
        msg = f"keypad layout is one of {sorted(KEYMAPS)}, not {layout!r}"
        raise PropConfigError(msg)
    if len(rows) != len(keymap) or len(cols) != len(keymap[0]):
        msg = (f"a {layout} keypad has {len(keymap)} row and {len(keymap[0])} column "
               f"pins, got {len(rows)} and {len(cols)}")
        raise PropConfigError(msg)
    keys = "".join(keymap)
    for what, key in (("enter_key", enter_key), ("clear_key", clear_key)):
        if key and (len(key) != 1 or key not in keys):
            msg = f"{what} {key!r} is not a key of the {layout} layout ({keys})"
            raise PropConfigError(msg)
    if enter_key and enter_key == clear_key:
        msg = f"enter_key and clear_key are both {enter_key!r}"
        raise PropConfigError(msg)
    if code_length is not None and code_length < 1:
        msg = f"code_length must be at least 1, got {code_length}"
        raise PropConfigError(msg)
    if debounce < 0 or entry_timeout <= 0:
        msg = f"need debounce >= 0 and entry_timeout > 0, got {debounce}, {entry_timeout}"
        raise PropConfigError(msg)
    return keymap


def _build_children(*, rows: Sequence[int | str], cols: Sequence[int | str],
                    led: int | str | None, buzzer: int | str | None,
                    pin_factory: Factory | None) -> dict[str, Device]:
    """Claim the keypad's pins; if one is refused, release those already claimed."""
    built: list[Device] = []
    try:
        for pin in rows:
            # NOTE: rows start low: the idle state, so a key held at boot is seen.
            built.append(DigitalOutputDevice(pin, active_high=True, initial_value=False,
                                             pin_factory=pin_factory))
        row_devices = tuple(built)
        for pin in cols:
            built.append(DigitalInputDevice(pin, pull_up=True, bounce_time=None,
                                            pin_factory=pin_factory))
        col_devices = tuple(built[len(row_devices):])
        children: dict[str, Device] = {
            "rows": CompositeDevice(*row_devices, pin_factory=pin_factory),
            "cols": CompositeDevice(*col_devices, pin_factory=pin_factory),
        }
        built.extend(children.values())
        if led is not None:
            children["led"] = SafeLED(led, active_high=True, initial_value=False,
                                      pin_factory=pin_factory)
            built.append(children["led"])
        if buzzer is not None:
            children["buzzer"] = SafeBuzzer(buzzer, active_high=True, initial_value=False,
                                            pin_factory=pin_factory)
            built.append(children["buzzer"])
    except BaseException:
        for device in reversed(built):
            device.close()
        raise
    return children
