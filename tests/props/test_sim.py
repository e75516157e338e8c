"""The simulated wiring: pins behave like the real circuit, gestures and their errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Button, DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins.mock import MockFactory

from props.exc import BadActionParams, PropConfigError, UnknownAction
from props.models import (
    ButtonConfig,
    KeypadConfig,
    MaglockConfig,
    MFRC522Config,
    OutputConfig,
    RDM6300Config,
    SortingConfig,
)
from props.sim import (
    GESTURES,
    ContactSimulator,
    KeypadSimulator,
    MaglockSimulator,
    Simulator,
    SwitchPin,
    UnknownGesture,
    check_gesture,
    gestures_of,
    prepare,
)

ROWS, COLS = [5, 6, 13, 19], [12, 16, 20]


def keypad_sim(factory: MockFactory, **fields: Any) -> KeypadSimulator:
    sim = prepare(KeypadConfig(id="k", rows=ROWS, cols=COLS, **fields), factory)
    assert isinstance(sim, KeypadSimulator)
    return sim


def test_keypad_matrix_joins_a_row_to_a_column_only_through_a_pressed_key(
        mock_factory: MockFactory) -> None:
    # plain gpiozero devices on the simulated matrix: no Keypad class involved
    sim = keypad_sim(mock_factory)
    rows = [DigitalOutputDevice(p, initial_value=True, pin_factory=mock_factory) for p in ROWS]
    cols = [DigitalInputDevice(p, pull_up=True, pin_factory=mock_factory) for p in COLS]
    edges: list[int] = []
    cols[2].when_activated = lambda: edges.append(2)
    try:
        sim.down("6")  # row 1, column 2
        assert not any(c.is_active for c in cols)  # every row high: nothing reads low

        rows[0].off()
        assert not any(c.is_active for c in cols)
        rows[1].off()  # the key's row goes low: its column follows, with an edge
        assert [c.is_active for c in cols] == [False, False, True]
        assert edges == [2]

        sim.up("6")
        assert not any(c.is_active for c in cols)
        assert sim.pressed == frozenset()
    finally:
        for device in [*rows, *cols]:
            device.close()


def test_keypad_sim_pin_levels_show_rows_and_columns(mock_factory: MockFactory) -> None:
    sim = keypad_sim(mock_factory, led=26)
    assert set(sim.pin_levels()) == {*ROWS, *COLS, 26}


def test_keypad_sim_gives_up_when_no_keypad_reads_it(mock_factory: MockFactory) -> None:
    sim = keypad_sim(mock_factory)
    sim.timeout = 0.05
    assert sim.press("1") is False
    assert sim.pressed == frozenset()


@pytest.mark.parametrize(("gesture", "value"), [
    ("press", "X"), ("press", None), ("type", ""), ("type", 1234), ("type", "12X"),
    ("down", "D"),  # a 3x4 keypad has no D
])
def test_keypad_sim_rejects_keys_it_does_not_have(mock_factory: MockFactory, gesture: str,
                                                  value: Any) -> None:
    sim = keypad_sim(mock_factory)
    with pytest.raises(BadActionParams):
        sim.perform(gesture, value)
    assert sim.pressed == frozenset()


def test_unknown_gesture_is_refused(mock_factory: MockFactory) -> None:
    sim = keypad_sim(mock_factory)
    with pytest.raises(UnknownAction):
        sim.perform("smash")


def test_prepare_after_the_pin_was_claimed_is_refused(mock_factory: MockFactory) -> None:
    DigitalOutputDevice(ROWS[0], pin_factory=mock_factory).close()  # a plain MockPin now
    with pytest.raises(PropConfigError, match="before building"):
        keypad_sim(mock_factory)


def test_prepare_twice_on_one_factory_rewires(mock_factory: MockFactory) -> None:
    keypad_sim(mock_factory)
    second = keypad_sim(mock_factory)
    assert second.matrix.rows[0].matrix is second.matrix


def test_prepare_needs_a_mock_factory() -> None:
    with pytest.raises(PropConfigError, match="MockFactory"):
        prepare(OutputConfig(id="o", pin=23), object())  # type: ignore[arg-type]


def test_contact_sim_is_a_switch_to_ground(mock_factory: MockFactory) -> None:
    sim = prepare(ButtonConfig(id="b", pin=22), mock_factory)
    assert isinstance(sim, ContactSimulator)
    assert sim.gestures == {"press", "hold", "down", "release"}
    with Button(22, pull_up=True, pin_factory=mock_factory) as button:
        sim.perform("down")
        assert mock_factory.pin(22).state is False
        assert button.is_pressed
        assert sim.pressed
        sim.perform("release")
        assert sim.pin_levels() == {22: True}


def test_contact_sim_press_is_a_whole_gesture(mock_factory: MockFactory) -> None:
    sim = prepare(ButtonConfig(id="b", pin=22), mock_factory)
    with Button(22, pull_up=True, pin_factory=mock_factory) as button:
        presses: list[str] = []
        button.when_pressed = lambda: presses.append("press")
        button.when_released = lambda: presses.append("release")
        sim.perform("press")
        assert presses == ["press", "release"]
        assert not button.is_pressed and not sim.pressed


def test_contact_sim_pressed_before_the_device_exists(mock_factory: MockFactory) -> None:
    sim = prepare(ButtonConfig(id="b", pin=22), mock_factory)
    sim.perform("down")
    with Button(22, pull_up=True, pin_factory=mock_factory) as button:
        assert button.is_pressed  # the pull-up loses against the closed switch


@pytest.mark.parametrize("value", [-1, "long", True, 61])
def test_contact_sim_hold_needs_sane_seconds(mock_factory: MockFactory, value: Any) -> None:
    sim = prepare(ButtonConfig(id="b", pin=22), mock_factory)
    with pytest.raises(BadActionParams):
        sim.perform("hold", value)
    assert not sim.pressed


@pytest.mark.parametrize(("level", "closed_pin", "open_pin"), [("low", False, True),
                                                                ("high", True, False)])
def test_maglock_sim_door_starts_closed(mock_factory: MockFactory, level: str,
                                       closed_pin: bool, open_pin: bool) -> None:
    sim = prepare(MaglockConfig(id="m", relay=17, door=27, door_closed_level=level),
                  mock_factory)
    assert isinstance(sim, MaglockSimulator)
    with DigitalInputDevice(27, pull_up=True, pin_factory=mock_factory):
        assert sim.door_closed is True
        assert mock_factory.pin(27).state is closed_pin
        sim.perform("open_door")
        assert sim.door_closed is False
        assert sim.pin_levels()[27] is open_pin


def test_maglock_sim_without_a_door_has_no_gesture(mock_factory: MockFactory) -> None:
    sim = prepare(MaglockConfig(id="m", relay=17), mock_factory)
    assert isinstance(sim, MaglockSimulator)
    assert sim.door_closed is None
    with pytest.raises(UnknownAction):
        sim.perform("open_door")


@pytest.mark.parametrize("kind", ["led", "relay", "buzzer"])
def test_output_sim_only_shows_the_pin(mock_factory: MockFactory, kind: str) -> None:
    sim = prepare(OutputConfig(id="o", kind=kind, pin=23), mock_factory)
    assert type(sim) is Simulator
    assert sim.gestures == frozenset()
    with DigitalOutputDevice(23, initial_value=True, pin_factory=mock_factory):
        assert sim.pin_levels() == {23: True}
    assert "23" in repr(sim)


def test_switch_pin_with_pull_down_switch_to_3v3(mock_factory: MockFactory) -> None:
    pin = mock_factory.pin(24, pin_class=SwitchPin)
    pin.switch_level = True
    with Button(24, pull_up=False, pin_factory=mock_factory) as button:
        pin.set_switch(True)
        assert button.is_pressed
        pin.set_switch(False)
        assert not button.is_pressed


def test_rfid_kinds_are_prepared_by_their_own_modules(mock_factory: MockFactory) -> None:
    from props.sim.mfrc522 import MFRC522Simulator, SortingSimulator
    from props.sim.rdm6300 import RDM6300Simulator

    sims = [prepare(MFRC522Config(id="a"), mock_factory),
            prepare(SortingConfig(id="b", bins={"glass": 7}), mock_factory),
            prepare(RDM6300Config(id="c"), mock_factory)]
    try:
        assert [type(s) for s in sims] == [MFRC522Simulator, SortingSimulator, RDM6300Simulator]
    finally:
        for sim in sims:
            sim.close()


def test_the_rfid_simulators_load_only_when_a_room_has_a_reader() -> None:
    code = ("import sys, props.sim; "
            "print(sorted(m for m in sys.modules if m.startswith(('props.sim.mfrc522', "
            "'props.sim.rdm6300', 'props.rdm6300', 'props.mfrc522', 'serial'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert out.stdout.strip() == "[]"


def test_every_prop_kind_has_its_gestures_listed() -> None:
    from tests.props.test_start import kinds

    assert set(GESTURES) == kinds()


def test_an_unknown_gesture_names_the_known_ones_in_french() -> None:
    config = ButtonConfig(id="music_button", label="Bouton de la chaîne hi-fi", pin=22)
    with pytest.raises(UnknownGesture) as caught:
        check_gesture(config, "tap")
    assert str(caught.value) == (
        "geste inconnu « tap » pour Bouton de la chaîne hi-fi ; gestes possibles : "
        "appuyer (puis relâcher) (press), maintenir (secondes, puis relâcher) (hold), "
        "enfoncer sans relâcher (down), relâcher (release)")
    assert [g.name for g in caught.value.known] == ["press", "hold", "down", "release"]


@pytest.mark.parametrize(("config", "gesture", "value", "checked"), [
    (ButtonConfig(id="b", pin=22, hold_time=2), "hold", None, 2.2),
    (ButtonConfig(id="b", pin=22), "hold", 3, 3.0),
    (KeypadConfig(id="k", rows=ROWS, cols=COLS), "type", "0412#", "0412#"),
    (MFRC522Config(id="r"), "present", "04A1B2C3", "04a1b2c3"),
    (RDM6300Config(id="r"), "present", "1A00C3F2B7", "1a00c3f2b7"),
    (SortingConfig(id="s", bins={"jaune": 8}), "present", {"bin": "jaune", "uid": "04a1b2c3"},
     {"bin": "jaune", "uid": "04a1b2c3"}),
])
def test_a_gesture_value_is_checked_and_normalised(config: Any, gesture: str, value: Any,
                                                   checked: Any) -> None:
    assert check_gesture(config, gesture, value) == checked


@pytest.mark.parametrize(("config", "gesture", "value"), [
    (ButtonConfig(id="b", pin=22), "hold", "long"),
    (ButtonConfig(id="b", pin=22), "press", 3),
    (KeypadConfig(id="k", rows=ROWS, cols=COLS), "press", "D"),
    (MFRC522Config(id="r"), "present", "0411"),
    (RDM6300Config(id="r"), "present", "1a 00 c3 f2 b7"),
    (SortingConfig(id="s", bins={"jaune": 8}), "remove", {"bin": "verte"}),
])
def test_a_bad_gesture_value_is_refused_in_french(config: Any, gesture: str, value: Any) -> None:
    with pytest.raises(BadActionParams, match=r"attendu|ne prend pas de valeur"):
        check_gesture(config, gesture, value)


def test_a_door_without_a_sensor_and_an_output_have_no_gesture() -> None:
    assert gestures_of(MaglockConfig(id="m", relay=17)) == ()
    assert [g.name for g in gestures_of(MaglockConfig(id="m", relay=17, door=27))] == [
        "open_door", "close_door"]
    with pytest.raises(UnknownGesture, match="gestes possibles : aucun"):
        check_gesture(OutputConfig(id="o", pin=23), "press")
