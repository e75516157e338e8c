"""Output: LED, relay and buzzer on one pin; safe levels, patterns, state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory

from props.exc import BadActionParams, PropConfigError, UnknownAction
from props.factory import build_prop
from props.models import OutputConfig
from props.outputs import Output, SafeOutputDevice, float_param, int_param
from tests.props.events import EventLog, WatchedPin

PIN = 23

MakeOutput = Callable[..., tuple[Output, WatchedPin, EventLog]]


@pytest.fixture
def make_output(mock_factory: MockFactory) -> Iterator[MakeOutput]:
    built: list[Output] = []

    def make(**overrides: Any) -> tuple[Output, WatchedPin, EventLog]:
        fields: dict[str, Any] = {"id": "lamp", "pin": PIN}
        fields.update(overrides)
        pin = mock_factory.pin(PIN, pin_class=WatchedPin)
        output = build_prop(OutputConfig(**fields), pin_factory=mock_factory)
        assert isinstance(output, Output)
        built.append(output)
        return output, pin, EventLog(output)

    yield make
    for output in built:
        output.close()


@pytest.mark.parametrize("kind", ["led", "relay", "buzzer"])
@pytest.mark.parametrize(("active_high", "initial_value", "level"), [
    (True, False, False), (False, False, True), (True, True, True), (False, True, False)])
def test_output_starts_at_its_configured_level(make_output: MakeOutput, kind: str,
                                               active_high: bool, initial_value: bool,
                                               level: bool) -> None:
    output, pin, _ = make_output(kind=kind, active_high=active_high,
                                 initial_value=initial_value)

    assert pin.state is level
    assert output.state == {"on": initial_value}
    assert set(pin.levels()[1:]) <= {level}  # from the floating input: no blip on the way


def test_output_on_off_and_reset(make_output: MakeOutput) -> None:
    relay, pin, log = make_output(kind="relay", active_high=False, initial_value=True)

    relay.apply("off")
    assert (pin.state, relay.state) == (True, {"on": False})
    relay.apply("on", {})
    assert (pin.state, relay.state) == (False, {"on": True})
    relay.apply("off")
    relay.reset()  # back to initial_value: on
    assert relay.state == {"on": True}
    assert log.state_changes == 4


def test_relay_pulse_switches_off_after_the_delay(make_output: MakeOutput) -> None:
    relay, pin, log = make_output(kind="relay")

    relay.apply("pulse", {"seconds": 0.1})

    assert relay.state == {"on": True}
    assert pin.wait_states(3)
    pin.assert_states_and_times([(0, False), (0, True), (0.1, False)])
    assert log.wait_for(lambda log: log.state_changes == 2)  # on, then off
    assert relay.state == {"on": False}


def test_relay_off_during_a_pulse_cancels_it(make_output: MakeOutput) -> None:
    relay, pin, log = make_output(kind="relay")
    relay.apply("pulse", {"seconds": 0.05})
    relay.apply("on")

    assert not pin.wait_states(4, timeout=0.12)
    assert relay.state == {"on": True}
    assert log.state_changes == 2


def test_led_blinks_n_times(make_output: MakeOutput) -> None:
    led, pin, log = make_output(kind="led")

    led.apply("blink", {"on_time": 0.02, "off_time": 0.02, "n": 2})

    assert pin.wait_states(5)
    assert pin.levels() == [False, True, False, True, False]
    assert log.wait_for(lambda log: log.state_changes == 2)
    assert led.state == {"on": False}


def test_led_blinks_until_told_otherwise(make_output: MakeOutput) -> None:
    led, pin, _ = make_output(kind="led")
    led.apply("blink", {"on_time": 0.01, "off_time": 0.01})
    assert pin.wait_states(6)
    assert led.state == {"on": True}
    led.apply("off")
    assert led.state == {"on": False}
    assert pin.state is False


@pytest.mark.parametrize(("pattern", "levels"), [
    ("short", [False, True, False]),
    ("ok", [False, True, False, True, False]),
    ("wrong", [False, True, False]),
])
def test_buzzer_beeps_a_pattern(make_output: MakeOutput, monkeypatch: pytest.MonkeyPatch,
                                pattern: str, levels: list[bool]) -> None:
    monkeypatch.setattr("props.outputs.BEEPS", {"short": (0.01, 0.01, 1),
                                                "ok": (0.01, 0.01, 2),
                                                "wrong": (0.05, 0.0, 1)})
    buzzer, pin, _ = make_output(kind="buzzer")

    buzzer.apply("beep", {"pattern": pattern})

    assert pin.wait_states(len(levels))
    assert pin.levels() == levels


@pytest.mark.parametrize(("kind", "action", "params", "error"), [
    ("relay", "blink", None, UnknownAction),
    ("led", "pulse", None, UnknownAction),
    ("led", "beep", None, UnknownAction),
    ("buzzer", "beep", {"pattern": "tune"}, BadActionParams),
    ("buzzer", "beep", {"pattern": 3}, BadActionParams),
    ("relay", "pulse", {"seconds": 0}, BadActionParams),
    ("led", "blink", {"n": 0}, BadActionParams),
    ("led", "blink", {"n": 1.5}, BadActionParams),
    ("led", "blink", {"on_time": "fast"}, BadActionParams),
])
def test_output_rejects_actions_it_cannot_do(make_output: MakeOutput, kind: str, action: str,
                                             params: Any, error: type[Exception]) -> None:
    output, pin, _ = make_output(kind=kind)
    with pytest.raises(error):
        output.apply(action, params)
    assert pin.levels() == [False]


@pytest.mark.parametrize("kind", ["led", "relay", "buzzer"])
def test_output_self_test_restores_the_state(make_output: MakeOutput,
                                             monkeypatch: pytest.MonkeyPatch,
                                             kind: str) -> None:
    monkeypatch.setattr("props.outputs.SELF_TEST_PATTERNS", {
        "led": (0.01, 0.01, 2), "relay": (0.02, 0.0, 1), "buzzer": (0.01, 0.01, 1)})
    output, pin, _ = make_output(kind=kind)
    output.on()
    pin.clear_states()

    result = output.self_test(timeout=1.0)

    assert result.passed
    assert pin.levels()[0] is True
    assert pin.levels()[-1] is True
    assert len(pin.levels()) >= 3
    assert output.state == {"on": True}


@pytest.mark.parametrize("active_high", [True, False])
def test_output_close_switches_off_and_releases_the_pin(make_output: MakeOutput,
                                                        mock_factory: MockFactory,
                                                        active_high: bool) -> None:
    relay, pin, _ = make_output(kind="relay", active_high=active_high)
    relay.on()
    assert "on=True" in repr(relay)

    relay.close()
    relay.close()

    assert pin.state is (not active_high)
    assert "closed" in repr(relay)
    DigitalOutputDevice(PIN, pin_factory=mock_factory).close()


def test_output_with_block(mock_factory: MockFactory) -> None:
    with Output(kind="led", pin=PIN, active_high=True, initial_value=True,
                pin_factory=mock_factory) as led:
        assert led.led.is_lit
    assert mock_factory.pin(PIN).state is False


def test_output_rejects_an_unknown_kind(mock_factory: MockFactory) -> None:
    with pytest.raises(PropConfigError):
        Output(kind="siren", pin=PIN, pin_factory=mock_factory)
    DigitalOutputDevice(PIN, pin_factory=mock_factory).close()


def test_safe_output_device_goes_inactive_on_close(mock_factory: MockFactory) -> None:
    device = SafeOutputDevice(PIN, active_high=False, initial_value=True,
                              pin_factory=mock_factory)
    assert mock_factory.pin(PIN).state is False
    device.close()
    assert mock_factory.pin(PIN).state is True


@pytest.mark.parametrize(("params", "expected"), [
    (None, 1.0), ({}, 1.0), ({"x": None}, 1.0), ({"x": 2}, 2.0), ({"x": 0.5}, 0.5)])
def test_float_param_reads_numbers(params: Any, expected: float) -> None:
    assert float_param(params, "x", 1.0) == expected


@pytest.mark.parametrize(("params", "expected"), [(None, None), ({"n": 3}, 3)])
def test_int_param_reads_integers(params: Any, expected: int | None) -> None:
    assert int_param(params, "n", None) == expected
