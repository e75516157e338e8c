"""RDM6300Reader over a real pseudo-terminal, fed by SimulatedRDM6300."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from props.exc import BadActionParams, RFIDError, UnknownAction
from props.factory import build_prop
from props.models import RDM6300Config
from props.rdm6300 import EM4100FrameParser, RDM6300Reader, em4100_frame
from props.sim import prepare
from props.sim.rdm6300 import RDM6300Simulator, SimulatedRDM6300
from tests.props.rfid_helpers import Events, States

BADGE = "1a00c3f2b7"
OTHER = "0400aa55cc"
REMOVAL = 0.25


@pytest.fixture
def module() -> Iterator[SimulatedRDM6300]:
    module = SimulatedRDM6300(repeat_interval=0.02)
    yield module
    module.close()


@pytest.fixture
def reader(module: SimulatedRDM6300) -> Iterator[RDM6300Reader]:
    with RDM6300Reader(port=module.port, removal_timeout=REMOVAL, retry_interval=0.02,
                       tags={BADGE.upper(): "badge du gardien"}) as reader:
        reader.when_event = Events()
        yield reader


def events_of(reader: RDM6300Reader) -> Events:
    assert isinstance(reader.when_event, Events)
    return reader.when_event


# -- frames ------------------------------------------------------------------------------
def test_parser_reads_frames_split_anywhere() -> None:
    stream = em4100_frame(BADGE) + em4100_frame(OTHER)
    parser = EM4100FrameParser()
    got = [item for byte in stream for item in parser.feed(bytes((byte,)))]
    assert got == [BADGE, OTHER]


@pytest.mark.parametrize("noise", [
    b"\x021A00C3F2B700\x03",  # bad checksum
    b"\x021A00C3F2B7\x03",  # too short
    b"\x021A00C3F2B79C99\x03",  # too long
    b"\x021A00C3F2BZ9C\x03",  # not hex
    b"\x021A00C3\x021A00C3F2B79C\x03",  # cut short by a new frame: one error, then a frame
    b"\xff\xfe line noise \x00",  # stray bytes: one error for the run
])
def test_parser_turns_each_bad_frame_into_one_error(noise: bytes) -> None:
    got = list(EM4100FrameParser().feed(noise + em4100_frame(OTHER)))
    errors = [item for item in got if isinstance(item, RFIDError)]
    tags = [item for item in got if not isinstance(item, RFIDError)]
    assert len(errors) == 1
    assert tags[-1] == OTHER
    assert tags[:-1] in ([], [BADGE])


# -- the reader --------------------------------------------------------------------------
def test_repeated_frames_give_one_tag_event(
        reader: RDM6300Reader, module: SimulatedRDM6300) -> None:
    events = events_of(reader)
    assert reader.state == {"tag": None, "tag_name": None, "connected": True, "errors": 0}
    module.present(BADGE)
    assert events.wait_event(("tag", BADGE))
    assert module.wait_writes(module.writes + 5, timeout=5)  # the module keeps repeating
    module.remove()
    assert events.wait_event(("removed", BADGE))
    assert events.events == [("tag", BADGE), ("removed", BADGE)]
    assert reader.errors == 0


def test_tag_state_carries_its_name(reader: RDM6300Reader, module: SimulatedRDM6300) -> None:
    states = States(reader)
    module.present(BADGE)
    assert states.wait_for(lambda state: state["tag"] == BADGE)
    assert reader.state["tag_name"] == "badge du gardien"
    assert reader.tag == reader.value == BADGE


def test_removed_only_after_the_timeout(
        reader: RDM6300Reader, module: SimulatedRDM6300) -> None:
    events = events_of(reader)
    module.present(BADGE)
    assert events.wait_event(("tag", BADGE))
    module.remove()
    removed_at = time.monotonic()
    assert events.wait_event(("removed", BADGE))
    assert time.monotonic() - removed_at >= REMOVAL * 0.9
    assert reader.state["tag"] is None


def test_bad_checksum_and_noise_are_ignored_and_counted(
        reader: RDM6300Reader, module: SimulatedRDM6300) -> None:
    events = events_of(reader)
    module.send_raw(b"\x021A00C3F2B700\x03")  # bad checksum
    module.send_raw(b"\x00\xffnoise")
    module.send_raw(em4100_frame(OTHER))  # read in order: once seen, the rest was too
    assert events.wait_event(("tag", OTHER))
    assert events.events == [("tag", OTHER)]
    assert reader.errors == 2
    assert reader.state["errors"] == 2


def test_swapped_tags_report_removal_then_tag(
        reader: RDM6300Reader, module: SimulatedRDM6300) -> None:
    events = events_of(reader)
    module.present(BADGE)
    assert events.wait_event(("tag", BADGE))
    module.present(OTHER)
    assert events.wait_event(("tag", OTHER))
    assert events.events == [("tag", BADGE), ("removed", BADGE), ("tag", OTHER)]


def test_wait_for_tag_returns_the_next_tag_presented(
        reader: RDM6300Reader, module: SimulatedRDM6300) -> None:
    events = events_of(reader)
    assert reader.wait_for_tag(0.01) is None
    module.present(BADGE)
    assert events.wait_event(("tag", BADGE))
    assert reader.wait_for_tag(0.05) is None  # already in the field: not "next"
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(reader.wait_for_tag, 5)
        # Swap tags until the waiter (maybe not yet waiting) has seen one presented.
        for tag in itertools.cycle((OTHER, BADGE)):
            if waiting.done():
                break
            count = len(events.events)
            module.present(tag)
            assert events.wait_count(count + 2)  # removed, tag
        assert waiting.result() in (BADGE, OTHER)


# -- the port ----------------------------------------------------------------------------
def test_missing_port_is_no_crash(tmp_path: Path) -> None:
    with RDM6300Reader(port=str(tmp_path / "ttyNOPE"), retry_interval=0.02) as reader:
        assert reader.state["connected"] is False
        result = reader.self_test()
        assert not result.passed
        assert "ttyNOPE" in result.message


def test_survives_the_port_disappearing_and_reopens_it(tmp_path: Path) -> None:
    link = tmp_path / "rfid"
    first = SimulatedRDM6300(repeat_interval=0.02)
    link.symlink_to(first.port)
    events = Events()
    with RDM6300Reader(port=str(link), removal_timeout=REMOVAL, retry_interval=0.02) as reader:
        states = States(reader)
        reader.when_event = events
        first.present(BADGE)
        assert events.wait_event(("tag", BADGE))
        first.close()  # the USB adapter is pulled out
        assert states.wait_for(lambda state: not state["connected"])
        assert events.wait_event(("removed", BADGE))  # a dead port holds no tag
        second = SimulatedRDM6300(repeat_interval=0.02)  # and plugged back in
        try:
            os.remove(link)
            link.symlink_to(second.port)
            assert states.wait_for(lambda state: state["connected"])
            second.present(OTHER)
            assert events.wait_event(("tag", OTHER))
            assert reader.self_test().passed
        finally:
            second.close()


def test_close_twice_is_harmless(module: SimulatedRDM6300) -> None:
    reader = RDM6300Reader(port=module.port)
    assert module.port in repr(reader)
    reader.close()
    reader.close()
    assert reader.closed
    assert "closed" in repr(reader)
    assert reader.wait_for_tag(5) is None  # returns at once
    assert not reader.self_test().passed


def test_bad_arguments_fail_before_opening_anything() -> None:
    with pytest.raises(ValueError, match="positive"):
        RDM6300Reader(port="/dev/null", removal_timeout=0)


# -- config and simulation dispatcher ----------------------------------------------------
def test_build_prop_on_the_simulated_port(mock_factory: MockFactory) -> None:
    config = RDM6300Config(id="badge", removal_timeout=REMOVAL, tags={BADGE: "gardien"})
    sim = prepare(config, mock_factory)
    assert isinstance(sim, RDM6300Simulator)
    assert sim.config.port == sim.module.port != config.port
    assert sim.pin_levels() == {}
    reader = build_prop(sim.config, pin_factory=mock_factory)
    events = Events()
    try:
        assert isinstance(reader, RDM6300Reader)
        assert reader.name == "badge"
        reader.when_event = events
        sim.perform("present", BADGE)
        assert events.wait_event(("tag", BADGE))
        assert reader.state["tag_name"] == "gardien"
        sim.perform("remove")
        assert events.wait_event(("removed", BADGE))
        with pytest.raises(BadActionParams):
            sim.perform("present", "1a00")
        with pytest.raises(BadActionParams):
            sim.perform("present", 42)
        with pytest.raises(UnknownAction):
            sim.perform("wave")
    finally:
        reader.close()
        sim.close()
