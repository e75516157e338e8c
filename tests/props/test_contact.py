"""Contact: a button, a reed switch and a pressure mat, each in its own words."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import DigitalOutputDevice, GPIOPinInUse
from gpiozero.pins.mock import MockFactory

from props.contact import Contact
from props.exc import PropConfigError, UnknownAction
from props.factory import build_prop
from props.models import ButtonConfig
from props.sim import ContactSimulator, prepare
from tests.props.events import EventLog

PIN = 22

MakeContact = Callable[..., tuple[Contact, ContactSimulator, EventLog]]


@pytest.fixture
def make_contact(mock_factory: MockFactory) -> Iterator[MakeContact]:
    built: list[Contact] = []

    def make(**overrides: Any) -> tuple[Contact, ContactSimulator, EventLog]:
        fields: dict[str, Any] = {"id": "mailbox", "pin": PIN, "hold_time": 0.1}
        fields.update(overrides)
        sim = prepare(ButtonConfig(**fields), mock_factory)
        assert isinstance(sim, ContactSimulator)
        contact = build_prop(sim.config, pin_factory=mock_factory)
        assert isinstance(contact, Contact)
        built.append(contact)
        return contact, sim, EventLog(contact)

    yield make
    for contact in built:
        contact.close()


def test_button_press_and_release(make_contact: MakeContact) -> None:
    button, sim, log = make_contact(kind="button")
    assert button.state == {"pressed": False}

    sim.perform("down")
    assert button.state == {"pressed": True}
    sim.perform("release")
    sim.perform("press")        # a whole gesture: pressed, then released

    assert log.events == [("press", None), ("release", None)] * 2
    assert button.state == {"pressed": False}
    assert log.state_changes == 4


def test_button_held_reports_the_seconds_held_once(make_contact: MakeContact) -> None:
    _, sim, log = make_contact(kind="button", hold_time=0.05)

    sim.perform("hold", 0.2)

    assert log.of("held") == [pytest.approx(0.05, abs=0.05)]
    assert [kind for kind, _ in log.events] == ["press", "held", "release"]


def test_button_hold_defaults_to_just_over_hold_time(make_contact: MakeContact) -> None:
    _, sim, log = make_contact(kind="button", hold_time=0.05)
    sim.perform("hold")
    assert log.wait_event("held")


def test_reed_switch_closes_and_opens_without_held(make_contact: MakeContact) -> None:
    reed, sim, log = make_contact(kind="reed_switch", hold_time=0.02)
    assert sim.gestures == {"close", "open"}

    # The simulated window starts closed, as windows and doors do before a game.
    assert reed.state == {"closed": True}
    assert reed.is_closed
    sim.perform("open")
    sim.perform("close")
    # closed past hold_time (gpiozero says it is held): still no "held" for a reed switch
    deadline = time.monotonic() + 5
    while not reed.is_held and time.monotonic() < deadline:
        time.sleep(0.002)
    assert reed.is_held
    sim.perform("open")

    assert log.events == [("opened", None), ("closed", None), ("opened", None)]
    assert reed.state == {"closed": False}


def test_a_window_declared_open_at_start_starts_open(make_contact: MakeContact) -> None:
    reed, _sim, _log = make_contact(kind="reed_switch", start="open")
    assert reed.state == {"closed": False}


def test_pressure_mat_stepped_on_held_and_off(make_contact: MakeContact) -> None:
    mat, sim, log = make_contact(kind="pressure_mat", hold_time=0.05)
    assert sim.gestures == {"step", "hold", "step_on", "step_off"}

    sim.perform("step_on")
    assert mat.state == {"occupied": True}
    assert log.wait_event("held")
    sim.perform("step_off")

    assert [kind for kind, _ in log.events] == ["stepped_on", "held", "stepped_off"]
    assert not mat.is_occupied


def test_contact_to_3v3_with_pull_down(make_contact: MakeContact, mock_factory: MockFactory
                                       ) -> None:
    button, sim, log = make_contact(kind="button", pull_up=False)
    assert mock_factory.pin(PIN).state is False

    sim.perform("down")

    assert mock_factory.pin(PIN).state is True
    assert button.is_pressed
    assert log.of("press") == [None]


def test_contact_keeps_gpiozero_callbacks(make_contact: MakeContact) -> None:
    reed, sim, log = make_contact(kind="reed_switch")
    closed = threading.Event()
    opened = threading.Event()
    reed.when_closed = closed.set
    reed.when_opened = opened.set

    sim.perform("open")
    sim.perform("close")

    assert closed.is_set()
    assert opened.is_set()
    assert log.of("closed") == [None]


def test_contact_self_test_waits_for_an_activation(make_contact: MakeContact) -> None:
    button, sim, _ = make_contact(kind="button")
    presser = threading.Timer(0.05, sim.perform, args=("press",))
    presser.start()
    try:
        result = button.self_test(timeout=3.0)
    finally:
        presser.join()
    assert result.passed
    assert result.steps == ("inactive at start", "press seen")

    assert not button.self_test(timeout=0.02).passed


def test_contact_has_no_actions(make_contact: MakeContact) -> None:
    button, _, _ = make_contact()
    with pytest.raises(UnknownAction):
        button.apply("press")


def test_contact_close_twice_with_and_repr(make_contact: MakeContact,
                                           mock_factory: MockFactory) -> None:
    mat, _, _ = make_contact(kind="pressure_mat")
    assert "occupied=False" in repr(mat)

    mat.close()
    mat.close()

    assert "closed" in repr(mat)
    assert mat.state == {"occupied": False}
    with Contact(pin=PIN, pin_factory=mock_factory) as button:
        assert button.kind == "button"
    assert button.closed


def test_contact_on_a_pin_in_use_fails_cleanly(mock_factory: MockFactory) -> None:
    squatter = DigitalOutputDevice(PIN, pin_factory=mock_factory)
    with pytest.raises(GPIOPinInUse):
        Contact(pin=PIN, pin_factory=mock_factory)
    squatter.close()
    Contact(pin=PIN, pin_factory=mock_factory).close()


def test_contact_rejects_an_unknown_kind(mock_factory: MockFactory) -> None:
    with pytest.raises(PropConfigError):
        Contact(pin=PIN, kind="doorbell", pin_factory=mock_factory)
