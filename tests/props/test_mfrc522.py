"""MFRC522Reader against SimulatedMFRC522: the real driver over MockFactory's SPI pins."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from gpiozero import LED, Device, DigitalOutputDevice, OutputDevice
from gpiozero.exc import DeviceClosed, GPIOPinInUse
from gpiozero.pins.mock import MockFactory

from props import mfrc522
from props.exc import BadActionParams, UnknownAction
from props.factory import build_prop
from props.mfrc522 import MISSES_BEFORE_REMOVAL, MFRC522Reader
from props.mfrc522_chip import MFRC522Chip, open_spi
from props.models import MFRC522Config
from props.sim import prepare
from props.sim.mfrc522 import SimulatedMFRC522, crc_a
from tests.props.rfid_helpers import Events, States

UID = "04a1b2c3"
OTHER = "deadbeef"


@pytest.fixture
def chip(mock_factory: MockFactory) -> Iterator[SimulatedMFRC522]:
    with SimulatedMFRC522(pin_factory=mock_factory) as chip:
        yield chip


@pytest.fixture
def reader(mock_factory: MockFactory, chip: SimulatedMFRC522) -> Iterator[MFRC522Reader]:
    """A reader polled by the test itself (no thread): deterministic."""
    with MFRC522Reader(poll_interval=None, tags={"04A1B2C3": "quittance"},
                       pin_factory=mock_factory) as reader:
        reader.when_event = Events()
        yield reader


def events_of(reader: MFRC522Reader) -> list[tuple[str, object]]:
    assert isinstance(reader.when_event, Events)
    return reader.when_event.events


def poll(reader: MFRC522Reader, times: int) -> None:
    for _ in range(times):
        reader.poll()


# -- the chip ----------------------------------------------------------------------------
def test_crc_a_matches_iso14443_vectors() -> None:
    assert crc_a(b"\x00\x00") == bytes((0xA0, 0x1E))
    assert crc_a(b"\x50\x00") == bytes((0x57, 0xCD))  # HLTA


def test_reader_reads_version_and_switches_antenna_on(
        reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    assert reader.version == 0x92
    assert reader.state == {"tag": None, "tag_name": None, "version": "0x92", "errors": 0}
    assert chip.antenna_on


def test_self_test_passes_on_genuine_chip(reader: MFRC522Reader) -> None:
    result = reader.self_test()
    assert result.passed, result
    assert any("0x92" in step for step in result.steps)
    assert any("a01e" in step for step in result.steps)  # CRC coprocessor checked


def test_self_test_passes_on_clone_with_a_note(mock_factory: MockFactory) -> None:
    with SimulatedMFRC522(version=0x88, pin_factory=mock_factory), \
            MFRC522Reader(poll_interval=None, pin_factory=mock_factory) as reader:
        result = reader.self_test()
    assert result.passed
    assert "clone" in result.message


def test_self_test_fails_clearly_when_nothing_is_wired(mock_factory: MockFactory) -> None:
    with MFRC522Reader(poll_interval=None, pin_factory=mock_factory) as reader:
        assert reader.version is None
        assert reader.state["version"] is None
        assert reader.poll() is None  # no crash, no event
        result = reader.self_test()
    assert not result.passed
    assert "no MFRC522 answers" in result.message
    assert "0x00" in result.message


def test_the_chip_alone_needs_no_reader_thread_nor_policy(mock_factory: MockFactory,
                                                          chip: SimulatedMFRC522) -> None:
    """MFRC522Chip over a bare SPI interface: reset, configure, activate a card, field off."""
    spi = open_spi(clock_pin=11, mosi_pin=10, miso_pin=9, select_pin=8, pin_factory=mock_factory)
    bare = MFRC522Chip(spi)
    try:
        assert bare.reset() == 0x92
        assert not chip.antenna_on  # a reset chip keeps its field off
        bare.configure()
        assert chip.antenna_on
        assert bare.read_uid() is None  # nobody in the field: the timer ran out
        chip.present("04112233445566")
        assert bare.read_uid() == "04112233445566"
        assert chip.card_state == "halt"
        bare.antenna_off()
        assert not chip.antenna_on
    finally:
        spi.close()
    bare.spi = None
    with pytest.raises(DeviceClosed):
        bare.read(0x37)


# -- tags --------------------------------------------------------------------------------
def test_tag_present_gives_one_event_across_many_polls(
        reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    chip.present(UID)
    poll(reader, 8)
    assert events_of(reader) == [("tag", UID)]
    assert reader.state["tag"] == UID
    assert reader.state["tag_name"] == "quittance"
    assert reader.tag == reader.value == UID


def test_empty_poll_costs_seven_spi_transactions(
        reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    # Six writes (Idle, clear IRQs, flush, FIFO, Transceive, StartSend) and one read of
    # ComIrqReg once the chip's timer has run out: what a Pi pays per empty poll.
    reader.poll()
    before = chip.transactions
    poll(reader, 5)
    assert reader.tag is None
    assert chip.transactions - before == 5 * 7


def test_chip_timer_outlasts_a_card_answer_by_far(reader: MFRC522Reader) -> None:
    # TPrescaler/TReload as the driver leaves them (read back over the bus from the
    # simulated chip): 1 ms, against an ISO 14443-3 frame delay time of ≈ 91 µs plus
    # 5 bits (≈ 47 µs) before the timer stops.
    t_mode, t_prescaler, reload_h, reload_l = reader.chip.read_many(0x2A, 0x2B, 0x2C, 0x2D)
    prescaler = ((t_mode & 0x0F) << 8) | t_prescaler
    reload = (reload_h << 8) | reload_l
    period = (reload + 1) * (2 * prescaler + 1) / 13_560_000
    assert t_mode & 0x80  # TAuto: starts when our frame has left
    assert 0.0009 <= period <= 0.0011
    assert period > 5 * (1236 + 5 * 128) / 13_560_000


def test_removed_event_after_two_empty_polls(
        reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    chip.present(UID)
    reader.poll()
    chip.remove()
    poll(reader, MISSES_BEFORE_REMOVAL - 1)
    assert events_of(reader) == [("tag", UID)]  # one miss is tolerated
    assert reader.state["tag"] == UID
    reader.poll()
    assert events_of(reader) == [("tag", UID), ("removed", UID)]
    assert reader.state["tag"] is None
    poll(reader, 5)
    assert len(events_of(reader)) == 2


def test_one_missed_read_does_not_remove_the_tag(
        reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    chip.present(UID)
    reader.poll()
    chip.remove()
    reader.poll()
    chip.present(UID)
    poll(reader, 5)
    assert events_of(reader) == [("tag", UID)]


def test_two_tags_in_turn(reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    chip.present(UID)
    poll(reader, 3)
    chip.remove()
    poll(reader, 3)
    chip.present(OTHER)
    poll(reader, 3)
    assert events_of(reader) == [("tag", UID), ("removed", UID), ("tag", OTHER)]
    assert reader.state["tag_name"] is None  # not in the tags map


def test_tag_swapped_between_two_polls_reports_removal_first(
        reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    chip.present(UID)
    reader.poll()
    chip.present(OTHER)
    reader.poll()
    assert events_of(reader) == [("tag", UID), ("removed", UID), ("tag", OTHER)]


@pytest.mark.parametrize("uid", ["04a1b2c3", "04112233445566", "04112233445566778899"],
                         ids=["single", "double", "triple"])
def test_uid_of_every_cascade_level_is_read(
        reader: MFRC522Reader, chip: SimulatedMFRC522, uid: str) -> None:
    chip.present(uid)
    assert reader.poll() == uid
    anticollisions = [frame[0] for frame, _ in chip.frames if frame[1:] == b"\x20"]
    assert anticollisions == [0x93, 0x95, 0x97][: {8: 1, 14: 2, 20: 3}[len(uid)]]


def test_wupa_wakes_the_halted_card_that_reqa_would_not(
        reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    chip.present(UID)
    assert reader.chip.read_uid() == UID
    assert chip.card_state == "halt"
    assert reader.chip.read_uid(wake=False) is None  # REQA: a halted card stays silent
    assert reader.chip.read_uid(wake=True) == UID


# -- noise -------------------------------------------------------------------------------
@pytest.mark.parametrize("skip", [0, 1, 2], ids=["atqa-parity", "bcc", "sak-crc"])
def test_corrupt_frame_gives_no_event_and_is_counted(
        reader: MFRC522Reader, chip: SimulatedMFRC522, skip: int) -> None:
    chip.present(UID)
    chip.corrupt_next(skip=skip)
    assert reader.poll() is None
    assert events_of(reader) == []
    assert reader.errors == 1
    assert reader.state["errors"] == 1
    poll(reader, 3)
    assert events_of(reader) == [("tag", UID)]


def test_corrupt_frames_while_a_tag_stays_do_not_remove_it(
        reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    chip.present(UID)
    reader.poll()
    for skip in (0, 1, 2, 0, 1, 2):
        chip.corrupt_next(skip=skip)
        reader.poll()
    poll(reader, 3)
    assert events_of(reader) == [("tag", UID)]
    assert reader.errors == 6


def test_unplugged_chip_is_reported_and_set_up_again(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        mock_factory: MockFactory, reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    monkeypatch.setattr(mfrc522, "REINIT_INTERVAL", 0.0)
    chip.present(UID)
    reader.poll()
    chip.close()  # a wire comes loose
    with caplog.at_level(logging.WARNING, logger="props.mfrc522"):
        poll(reader, 3)
    assert reader.state["version"] is None
    assert reader.state["tag"] == UID  # nothing was seen to leave
    assert reader.errors == 0  # not the card's fault
    assert len([r for r in caplog.records if "stopped answering" in r.message]) == 1
    with SimulatedMFRC522(pin_factory=mock_factory) as again:  # plugged back
        again.present(UID)
        assert reader.poll() == UID
        assert reader.state["version"] == "0x92"
    assert events_of(reader) == [("tag", UID)]


# -- the background thread ---------------------------------------------------------------
def test_polling_thread_reports_tag_and_removal(
        mock_factory: MockFactory, chip: SimulatedMFRC522) -> None:
    events = Events()
    with MFRC522Reader(poll_interval=0.01, pin_factory=mock_factory) as reader:
        states = States(reader)
        reader.when_event = events
        chip.present(UID)
        assert events.wait_event(("tag", UID))
        assert states.wait_for(lambda state: state["tag"] == UID)
        chip.remove()
        assert events.wait_event(("removed", UID))
        assert events.events == [("tag", UID), ("removed", UID)]
        assert states.calls >= 2


def test_wait_for_tag_returns_the_next_tag_presented(
        reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    assert reader.wait_for_tag(0.01) is None
    chip.present(UID)
    reader.poll()
    assert reader.wait_for_tag(0.01) is None  # already on the reader: not "next"
    chip.remove()
    poll(reader, MISSES_BEFORE_REMOVAL)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(reader.wait_for_tag, 5)
        # Present it again and again until the waiter (maybe not yet waiting) sees one.
        while not waiting.done():
            chip.present(OTHER)
            reader.poll()
            chip.remove()
            poll(reader, MISSES_BEFORE_REMOVAL)
        assert waiting.result() == OTHER


def test_reset_forgets_the_tag_so_it_is_reported_again(
        reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    chip.present(UID)
    reader.poll()
    reader.reset()
    assert reader.state["tag"] is None
    reader.poll()
    assert events_of(reader) == [("tag", UID), ("tag", UID)]


# -- gpiozero contract -------------------------------------------------------------------
def test_close_twice_is_harmless_and_switches_the_antenna_off(
        mock_factory: MockFactory, chip: SimulatedMFRC522) -> None:
    reader = MFRC522Reader(poll_interval=0.01, pin_factory=mock_factory)
    threads = {t for t in threading.enumerate() if t.name.startswith("mfrc522")}
    assert threads
    assert "version=0x92" in repr(reader)
    reader.close()
    reader.close()
    assert reader.closed
    assert not chip.antenna_on
    assert "closed" in repr(reader)
    assert not any(t.is_alive() for t in threads)
    # every pin is free again
    OutputDevice(8, pin_factory=mock_factory).close()
    DigitalOutputDevice(25, pin_factory=mock_factory).close()


def test_with_block_closes_the_reader(mock_factory: MockFactory, chip: SimulatedMFRC522) -> None:
    with MFRC522Reader(pin_factory=mock_factory) as reader:
        assert not reader.closed
    assert reader.closed
    assert reader.wait_for_tag(5) is None  # returns at once on a closed reader


def test_failing_constructor_closes_what_it_opened(mock_factory: MockFactory) -> None:
    with LED(8, pin_factory=mock_factory), pytest.raises(GPIOPinInUse):
        MFRC522Reader(select_pin=8, reset_pin=25, pin_factory=mock_factory)
    # the reset line and the SPI bus it had claimed are free again
    DigitalOutputDevice(25, pin_factory=mock_factory).close()
    OutputDevice(11, pin_factory=mock_factory).close()
    with pytest.raises(ValueError, match="poll_interval"):
        MFRC522Reader(poll_interval=0, pin_factory=mock_factory)


def test_readers_on_two_factories_do_not_share_a_bus() -> None:
    """Two simulated nodes in one process, both with a reader on SPI0's pins."""
    saved = Device.pin_factory
    Device.pin_factory = None  # and no default factory to fall back on
    try:
        factories = [MockFactory(), MockFactory()]
        chips = [SimulatedMFRC522(pin_factory=f) for f in factories]
        readers = [MFRC522Reader(poll_interval=None, pin_factory=f) for f in factories]
        chips[0].present(UID)
        chips[1].present(OTHER)
        assert [reader.poll() for reader in readers] == [UID, OTHER]
        for reader in readers:
            reader.close()
    finally:
        Device.pin_factory = saved


def test_the_reader_takes_the_spi_interface_its_factory_gives(mock_factory: MockFactory) -> None:
    """The driver knows no simulation: it asks its pin factory for the bus, as on a Pi."""
    asked: list[dict[str, int]] = []
    given = mock_factory.spi

    def spi(**pins: int) -> object:
        asked.append(pins)
        return given(**pins)

    with SimulatedMFRC522(pin_factory=mock_factory) as chip:
        mock_factory.spi = spi  # type: ignore[method-assign]
        try:
            with MFRC522Reader(poll_interval=None, pin_factory=mock_factory) as reader:
                chip.present(UID)
                assert reader.poll() == UID
        finally:
            del mock_factory.spi
    assert asked == [{"clock_pin": 11, "mosi_pin": 10, "miso_pin": 9, "select_pin": 8}]


def test_bus_pin_history_does_not_grow(
        mock_factory: MockFactory, reader: MFRC522Reader, chip: SimulatedMFRC522) -> None:
    chip.present(UID)
    poll(reader, 5)  # ~40 SPI transactions of 16+ clock edges each
    assert len(mock_factory.pin(11).states) < 100  # MockPin keeps every edge otherwise


# -- config and simulation dispatcher ----------------------------------------------------
def test_build_prop_and_simulator_gestures(mock_factory: MockFactory) -> None:
    config = MFRC522Config(id="boite_aux_lettres", poll_interval=0.01,
                           tags={UID: "avis d'échéance"})
    sim = prepare(config, mock_factory)
    reader = build_prop(sim.config, pin_factory=mock_factory)
    events = Events()
    try:
        assert isinstance(reader, MFRC522Reader)
        assert reader.name == "boite_aux_lettres"
        reader.when_event = events
        sim.perform("present", UID)
        assert events.wait_event(("tag", UID))
        assert reader.state["tag_name"] == "avis d'échéance"
        sim.perform("remove")
        assert events.wait_event(("removed", UID))
        with pytest.raises(BadActionParams):
            sim.perform("present", "not hex")
        with pytest.raises(BadActionParams):
            sim.perform("present", "0411")
        with pytest.raises(UnknownAction):
            sim.perform("shake")
        with pytest.raises(UnknownAction):
            reader.apply("unlock")
    finally:
        reader.close()
        sim.close()
