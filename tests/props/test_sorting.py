"""SortingStation: one simulated MFRC522 per bin on a shared MockFactory SPI bus."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero import LED, DigitalOutputDevice, OutputDevice
from gpiozero.pins.mock import MockFactory

from props.exc import BadActionParams, PropConfigError, UnknownAction
from props.factory import build_prop
from props.models import SortingConfig
from props.sim import prepare
from props.sim.mfrc522 import SortingSimulator
from props.sorting import SortingStation
from tests.props.rfid_helpers import Events, States

BOTTLE = "04a1b2c3"
PAPER = "04112233445566"  # a 7-byte UID, as on NTAG stickers
BATTERY = "0badcafe"
BINS = {"jaune": 8, "verte": 7, "marron": 5}
TAGS = {BOTTLE: "bouteille plastique", PAPER: "journal", BATTERY: "pile"}


@pytest.fixture
def sim(mock_factory: MockFactory) -> Iterator[SortingSimulator]:
    config = SortingConfig(id="tri", bins=BINS, poll_interval=0.01, tags=TAGS)
    sim = prepare(config, mock_factory)
    assert isinstance(sim, SortingSimulator)
    yield sim
    sim.close()


@pytest.fixture
def station(mock_factory: MockFactory, sim: SortingSimulator) -> Iterator[SortingStation]:
    station = build_prop(sim.config, pin_factory=mock_factory)
    assert isinstance(station, SortingStation)
    station.when_event = Events()
    yield station
    station.close()


def events_of(station: SortingStation) -> Events:
    assert isinstance(station.when_event, Events)
    return station.when_event


def test_tags_land_in_the_right_bins(station: SortingStation, sim: SortingSimulator) -> None:
    states = States(station)
    sim.perform("present", {"bin": "jaune", "uid": BOTTLE})
    sim.perform("present", {"bin": "verte", "uid": PAPER})
    sim.perform("present", {"bin": "marron", "uid": BATTERY})
    assert states.wait_for(lambda state: None not in state["bins"].values())
    assert station.state == {
        "bins": {"jaune": BOTTLE, "verte": PAPER, "marron": BATTERY},
        "names": {"jaune": "bouteille plastique", "verte": "journal", "marron": "pile"},
    }
    assert sorted(events_of(station).events, key=str) == sorted([
        ("placed", {"bin": "jaune", "uid": BOTTLE}),
        ("placed", {"bin": "verte", "uid": PAPER}),
        ("placed", {"bin": "marron", "uid": BATTERY}),
    ], key=str)
    # the readers share one bus: never two chips selected at once
    assert all(chip.bus_conflicts == 0 for chip in sim.chips.values())


def test_moving_a_tag_to_another_bin(station: SortingStation, sim: SortingSimulator) -> None:
    events = events_of(station)
    sim.perform("present", {"bin": "jaune", "uid": BOTTLE})
    assert events.wait_event(("placed", {"bin": "jaune", "uid": BOTTLE}))
    sim.perform("remove", {"bin": "jaune"})
    sim.perform("present", {"bin": "verte", "uid": BOTTLE})
    assert events.wait_count(3)
    # a removal waits for two empty polls: the order of these two is not promised
    assert sorted(events.events[1:], key=str) == sorted([
        ("removed", {"bin": "jaune", "uid": BOTTLE}),
        ("placed", {"bin": "verte", "uid": BOTTLE}),
    ], key=str)
    assert station.state["bins"] == {"jaune": None, "verte": BOTTLE, "marron": None}
    assert station.state["names"]["verte"] == "bouteille plastique"


def test_one_tag_gives_one_placed_event(station: SortingStation, sim: SortingSimulator) -> None:
    events = events_of(station)
    sim.perform("present", {"bin": "marron", "uid": BATTERY})
    assert events.wait_count(1)
    # let the station go round every bin many times more
    chip = sim.chips["marron"]
    assert chip.wait_frames(chip.frames_received + 16, timeout=5)  # 4 more polls
    assert events.events == [("placed", {"bin": "marron", "uid": BATTERY})]


def test_reset_reports_tags_still_in_the_bins(
        station: SortingStation, sim: SortingSimulator) -> None:
    events = events_of(station)
    sim.perform("present", {"bin": "jaune", "uid": BOTTLE})
    assert events.wait_count(1)
    station.reset()
    assert events.wait_count(2)
    assert events.events == [("placed", {"bin": "jaune", "uid": BOTTLE})] * 2


def test_self_test_names_the_bin_whose_reader_is_missing(mock_factory: MockFactory) -> None:
    config = SortingConfig(id="tri", bins={"jaune": 8, "verte": 7}, poll_interval=0.01)
    sim = prepare(config.model_copy(update={"bins": {"jaune": 8}}), mock_factory)
    with SortingStation.from_config(config, pin_factory=mock_factory) as station:
        result = station.self_test()
        assert not result.passed
        assert result.message.startswith("verte: no MFRC522 answers")
        events = Events()
        station.when_event = events
        sim.perform("present", {"bin": "jaune", "uid": BOTTLE})  # the other bin still works
        assert events.wait_event(("placed", {"bin": "jaune", "uid": BOTTLE}))
    sim.close()


def test_self_test_passes_with_every_reader(station: SortingStation) -> None:
    result = station.self_test()
    assert result.passed, result
    assert {step.split(":")[0] for step in result.steps} == set(BINS)


def test_close_twice_is_harmless(mock_factory: MockFactory, station: SortingStation,
                                 sim: SortingSimulator) -> None:
    assert "jaune" in repr(station)
    station.close()
    station.close()
    assert station.closed
    assert "closed" in repr(station)
    assert not any(chip.antenna_on for chip in sim.chips.values())
    for pin in (11, 8, 7, 5, 25):
        OutputDevice(pin, pin_factory=mock_factory).close()


def test_failing_constructor_closes_what_it_opened(
        mock_factory: MockFactory, sim: SortingSimulator) -> None:
    with LED(5, pin_factory=mock_factory), pytest.raises(PropConfigError, match="clash"):
        SortingStation(bins=BINS, pin_factory=mock_factory)
    for pin in (11, 8, 7, 25):  # the readers built before the clash, and the RST line
        DigitalOutputDevice(pin, pin_factory=mock_factory).close()
    with pytest.raises(PropConfigError, match="share a chip select"):
        SortingStation(bins={"a": 8, "b": 8}, pin_factory=mock_factory)


def test_simulator_rejects_bad_gestures(sim: SortingSimulator) -> None:
    with pytest.raises(BadActionParams, match="un bac parmi jaune, marron, verte"):
        sim.perform("present", {"bin": "bleue", "uid": BOTTLE})
    with pytest.raises(BadActionParams):
        sim.perform("present", {"bin": "jaune", "uid": "zz"})
    with pytest.raises(BadActionParams):
        sim.perform("remove", "jaune")
    with pytest.raises(UnknownAction):
        sim.perform("empty_bin", {"bin": "jaune"})
