"""Keypad: every key through the simulated matrix, debounce, buffer rules, feedback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import DigitalInputDevice, DigitalOutputDevice, GPIOPinInUse
from gpiozero.pins.mock import MockFactory

from props.exc import BadActionParams, PropConfigError, UnknownAction
from props.factory import build_prop
from props.keypad import KEYMAPS, Keypad
from props.models import KeypadConfig
from props.outputs import BEEPS
from props.sim import KeypadSimulator, prepare
from tests.props.events import EventLog, WatchedPin

ROWS = [5, 6, 13, 19]
COLS_3 = [12, 16, 20]
COLS_4 = [12, 16, 20, 21]
LED, BUZZER = 26, 18

MakeKeypad = Callable[..., tuple[Keypad, KeypadSimulator, EventLog]]


@pytest.fixture
def make_keypad(mock_factory: MockFactory) -> Iterator[MakeKeypad]:
    """Build a simulated keypad from config keywords; closed after the test."""
    built: list[Keypad] = []

    def make(**overrides: Any) -> tuple[Keypad, KeypadSimulator, EventLog]:
        fields: dict[str, Any] = {"id": "door_code", "rows": ROWS, "cols": COLS_3,
                                  "debounce": 0.005}
        if overrides.get("layout") == "4x4":
            fields["cols"] = COLS_4
        fields.update(overrides)
        sim = prepare(KeypadConfig(**fields), mock_factory)
        assert isinstance(sim, KeypadSimulator)
        keypad = build_prop(sim.config, pin_factory=mock_factory)
        assert isinstance(keypad, Keypad)
        built.append(keypad)
        return keypad, sim, EventLog(keypad)

    yield make
    for keypad in built:
        keypad.close()


@pytest.mark.parametrize("layout", ["3x4", "4x4"])
def test_keypad_reads_every_key_of_the_layout(make_keypad: MakeKeypad, layout: str) -> None:
    keypad, sim, log = make_keypad(layout=layout, enter_key="", clear_key="", debounce=0)
    keys = "".join(KEYMAPS[layout])

    assert sim.type(keys)

    assert "".join(log.of("key")) == keys
    assert keypad.state == {"buffer_length": len(keys), "last_key": keys[-1]}


def test_keypad_wrong_code_is_submitted_as_typed(make_keypad: MakeKeypad) -> None:
    _, sim, log = make_keypad()

    sim.perform("type", "0413#")

    assert log.of("code") == ["0413"]
    # the code first: it is what opens a door; then the key that completed it
    assert log.events[-2:] == [("code", "0413"), ("key", "#")]


def test_keypad_enter_on_an_empty_buffer_submits_nothing(make_keypad: MakeKeypad) -> None:
    keypad, sim, log = make_keypad()

    sim.perform("press", "#")

    assert log.events == [("key", "#")]
    assert keypad.state == {"buffer_length": 0, "last_key": "#"}


def test_keypad_code_length_submits_without_enter(make_keypad: MakeKeypad) -> None:
    keypad, sim, log = make_keypad(code_length=4)

    sim.perform("type", "04125")

    assert log.of("code") == ["0412"]
    assert keypad.buffer == "5"


def test_keypad_clear_key_drops_the_half_typed_code(make_keypad: MakeKeypad) -> None:
    keypad, sim, log = make_keypad()

    sim.perform("type", "04*12#")

    assert log.of("cleared") == [None]
    assert log.of("code") == ["12"]
    assert keypad.state["buffer_length"] == 0


def test_keypad_entry_timeout_clears_a_half_typed_code(make_keypad: MakeKeypad) -> None:
    keypad, sim, log = make_keypad(entry_timeout=0.3)

    sim.perform("type", "04")
    assert keypad.state["buffer_length"] == 2

    assert log.wait_event("cleared", timeout=2.0)
    assert keypad.state == {"buffer_length": 0, "last_key": "4"}
    assert log.of("code") == []


def test_keypad_chattering_contact_gives_one_key(make_keypad: MakeKeypad) -> None:
    keypad, sim, log = make_keypad(debounce=0.05)

    for _ in range(5):  # a worn contact: down/up every 2 ms, far below the debounce
        sim.down("5")
        time.sleep(0.002)
        sim.up("5")
        time.sleep(0.002)
    mark = sim.down("5")
    assert sim.wait_registered("5", mark)
    for _ in range(3):  # and it chatters again when released
        sim.up("5")
        time.sleep(0.002)
        sim.down("5")
        time.sleep(0.002)
    assert sim.wait_idle(sim.up("5"))

    assert log.of("key") == ["5"]
    assert keypad.value is None


def test_keypad_held_key_gives_one_key_event(make_keypad: MakeKeypad) -> None:
    keypad, sim, log = make_keypad()

    mark = sim.down("7")
    assert sim.wait_registered("7", mark)
    assert keypad.value == "7"
    assert keypad.is_active
    time.sleep(0.1)  # held: ten polls of its row, no repeat
    assert sim.wait_idle(sim.up("7"))

    assert log.of("key") == ["7"]
    assert not keypad.is_active


def test_keypad_does_not_scan_while_idle(make_keypad: MakeKeypad, mock_factory: MockFactory
                                         ) -> None:
    _, sim, _ = make_keypad()
    sim.perform("press", "1")
    rows = [mock_factory.pin(p) for p in ROWS]
    for pin in rows:
        pin.clear_states()

    time.sleep(0.1)  # time must pass: a polling scanner would toggle the rows meanwhile

    assert all(len(pin.states) == 1 and pin.state is False for pin in rows)


def test_keypad_key_held_before_it_was_built_is_read(mock_factory: MockFactory) -> None:
    sim = prepare(KeypadConfig(id="k", rows=ROWS, cols=COLS_3, debounce=0.005), mock_factory)
    assert isinstance(sim, KeypadSimulator)
    mark = sim.down("9")
    with Keypad.from_config(sim.config, pin_factory=mock_factory) as keypad:
        # (no listener: the key may be read before one could be attached)
        assert sim.wait_registered("9", mark)
        assert sim.wait_idle(sim.up("9"))
        assert keypad.state == {"buffer_length": 1, "last_key": "9"}


def test_keypad_clear_action_and_reset(make_keypad: MakeKeypad) -> None:
    keypad, sim, log = make_keypad()
    sim.perform("type", "12")

    keypad.apply("clear")
    assert log.of("cleared") == [None]
    keypad.apply("clear")  # nothing left: no second event
    assert log.of("cleared") == [None]

    sim.perform("type", "3")
    changes = log.state_changes
    keypad.reset()
    assert keypad.state == {"buffer_length": 0, "last_key": None}
    assert log.state_changes == changes + 1
    assert log.of("cleared") == [None]


def test_keypad_aliases_and_state_changes(make_keypad: MakeKeypad) -> None:
    keypad, sim, log = make_keypad(code_length=2)
    keys: list[str] = []
    codes: list[str] = []
    keypad.when_key = keys.append
    keypad.when_code = codes.append

    sim.perform("type", "42")

    assert keys == ["4", "2"]
    assert codes == ["42"]
    assert log.state_changes == 2


def test_keypad_broken_listener_does_not_stop_scanning(make_keypad: MakeKeypad) -> None:
    keypad, sim, _ = make_keypad()
    keys: list[str] = []

    def broken(event_type: str, value: Any) -> None:
        raise RuntimeError("listener bug")

    keypad.when_event = broken
    keypad.when_key = keys.append
    sim.perform("type", "12")

    assert keys == ["1", "2"]


def test_keypad_feedback_beeps_and_blinks(make_keypad: MakeKeypad, mock_factory: MockFactory,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # the real patterns, ten times faster: the shape is what matters here
    fast = {name: (on / 10, off / 10, n) for name, (on, off, n) in BEEPS.items()}
    monkeypatch.setattr("props.keypad.BEEPS", fast)
    buzzer = mock_factory.pin(BUZZER, pin_class=WatchedPin)
    led = mock_factory.pin(LED, pin_class=WatchedPin)
    keypad, sim, _ = make_keypad(led=LED, buzzer=BUZZER)

    sim.perform("press", "1")  # a short beep and blink per key
    assert buzzer.wait_states(3)
    assert led.wait_states(3)
    assert buzzer.levels() == led.levels() == [False, True, False]

    buzzer.clear_states()
    keypad.apply("feedback", {"result": "ok"})  # two short beeps
    assert buzzer.wait_states(5)
    buzzer.assert_states_and_times([(0, False), (0, True), (0.01, False), (0.01, True),
                                    (0.01, False)])

    buzzer.clear_states()
    keypad.apply("feedback", {"result": "wrong"})  # one long beep
    assert buzzer.wait_states(3)
    buzzer.assert_states_and_times([(0, False), (0, True), (0.08, False)])
    assert not buzzer.wait_states(4, timeout=0.05)


@pytest.mark.parametrize("params", [None, {}, {"result": "maybe"}])
def test_keypad_feedback_needs_a_result(make_keypad: MakeKeypad, params: Any) -> None:
    keypad, _, _ = make_keypad()
    with pytest.raises(BadActionParams):
        keypad.apply("feedback", params)


def test_keypad_unknown_action(make_keypad: MakeKeypad) -> None:
    keypad, _, _ = make_keypad()
    with pytest.raises(UnknownAction):
        keypad.apply("unlock")


def test_keypad_self_test_passes_when_a_key_is_pressed(make_keypad: MakeKeypad) -> None:
    keypad, sim, _ = make_keypad(buzzer=BUZZER)
    presser = threading.Timer(0.05, sim.press, args=("8",))
    presser.start()
    try:
        result = keypad.self_test(timeout=3.0)
    finally:
        presser.join()

    assert result.passed
    assert result.message == "8"
    assert "beeped" in result.steps


def test_keypad_self_test_fails_without_a_key(make_keypad: MakeKeypad) -> None:
    keypad, _, _ = make_keypad()
    result = keypad.self_test(timeout=0.05)
    assert not result.passed


def test_keypad_close_twice_with_and_repr(make_keypad: MakeKeypad, mock_factory: MockFactory
                                          ) -> None:
    keypad, _, _ = make_keypad()
    assert "3x4" in repr(keypad)
    assert "buffer_length=0" in repr(keypad)
    scanners = [t for t in threading.enumerate() if t.name == "keypad-scan"]

    keypad.close()
    keypad.close()

    assert keypad.closed
    assert "closed" in repr(keypad)
    assert not any(t.is_alive() for t in scanners)
    with Keypad(rows=ROWS, cols=COLS_3, pin_factory=mock_factory) as again:
        assert not again.closed
    assert again.closed


def test_keypad_failing_constructor_releases_what_it_claimed(mock_factory: MockFactory
                                                             ) -> None:
    squatter = DigitalInputDevice(COLS_3[-1], pin_factory=mock_factory)
    before = {t for t in threading.enumerate() if t.name == "keypad-scan"}
    with pytest.raises(GPIOPinInUse):
        Keypad(rows=ROWS, cols=COLS_3, buzzer=BUZZER, pin_factory=mock_factory)
    squatter.close()

    for pin in [*ROWS, *COLS_3, BUZZER]:  # every pin is free again
        DigitalOutputDevice(pin, pin_factory=mock_factory).close()
    assert {t for t in threading.enumerate() if t.name == "keypad-scan"} == before


@pytest.mark.parametrize(("fields", "words"), [
    ({"enter_key": "*", "clear_key": "*"}, "both"),
    ({"enter_key": "A"}, "not a key"),
])
def test_keypad_rejects_impossible_keys(mock_factory: MockFactory, fields: dict[str, Any],
                                        words: str) -> None:
    config = KeypadConfig(id="k", rows=ROWS, cols=COLS_3, **fields)
    with pytest.raises(PropConfigError, match=words):
        Keypad.from_config(config, pin_factory=mock_factory)


def test_keypad_rejects_a_layout_its_pins_do_not_fit(mock_factory: MockFactory) -> None:
    with pytest.raises(PropConfigError, match="4x4"):
        Keypad(rows=ROWS, cols=COLS_3, layout="4x4", pin_factory=mock_factory)
