"""MFRC522 13.56 MHz RFID reader: a register-level driver on gpiozero's SPI interface.

The driver talks to the NXP MFRC522 through its registers (datasheet MFRC522 rev. 3.9,
section 9 "MFRC522 registers") over whatever SPI interface the pin factory gives: the
Pi's hardware SPI0 under lgpio, a bit-banged software SPI under the simulation
(:mod:`props.sim`), where :class:`props.sim.mfrc522.SimulatedMFRC522` answers like the real
chip. The code under test is therefore the code that runs on the Pi.

What it does on the air is the ISO/IEC 14443-3 type A activation that every reader
does: WUPA/REQA → ATQA, anticollision and SELECT per cascade level (4, 7 or 10-byte
UIDs, BCC checked, CRC_A from the chip's coprocessor) → SAK, then HLTA. It never
authenticates nor reads blocks: the game only needs to know *which* tag is on the reader.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Self

from gpiozero import Device, DigitalOutputDevice, SPIDevice
from gpiozero.exc import DeviceClosed
from gpiozero.threads import GPIOThread

from props.base import Prop, SelfTestResult
from props.exc import RFIDError
from props.tags import TagEvents, TagMemory

if TYPE_CHECKING:
    from gpiozero import Factory
    from gpiozero.pins import SPI

    from props.models import MFRC522Config

log = logging.getLogger(__name__)

__all__ = [
    "GENUINE_VERSIONS",
    "KNOWN_CLONE_VERSIONS",
    "MFRC522Reader",
    "Reg",
    "version_label",
]


class Reg(IntEnum):
    """The MFRC522 registers the driver uses (datasheet table 20)."""

    COMMAND = 0x01
    COM_IRQ = 0x04
    DIV_IRQ = 0x05
    ERROR = 0x06
    FIFO_DATA = 0x09
    FIFO_LEVEL = 0x0A
    CONTROL = 0x0C
    BIT_FRAMING = 0x0D
    COLL = 0x0E
    MODE = 0x11
    TX_MODE = 0x12
    RX_MODE = 0x13
    TX_CONTROL = 0x14
    TX_ASK = 0x15
    CRC_RESULT_H = 0x21
    CRC_RESULT_L = 0x22
    MOD_WIDTH = 0x24
    T_MODE = 0x2A
    T_PRESCALER = 0x2B
    T_RELOAD_H = 0x2C
    T_RELOAD_L = 0x2D
    VERSION = 0x37


class _Cmd(IntEnum):
    """CommandReg commands (datasheet table 149)."""

    IDLE = 0x00
    CALC_CRC = 0x03
    TRANSMIT = 0x04
    TRANSCEIVE = 0x0C
    SOFT_RESET = 0x0F


# ComIrqReg / DivIrqReg / ErrorReg / CommandReg bits
_IRQ_TX = 0x40
_IRQ_RX = 0x20
_IRQ_IDLE = 0x10
_IRQ_TIMER = 0x01
_IRQ_CLEAR_ALL = 0x7F  # Set1 = 0: writing ones clears those bits
_DIV_IRQ_CRC = 0x04
_ERR_BUFFER_OVFL = 0x10
_ERR_COLL = 0x08
_ERR_PARITY = 0x02
_ERR_PROTOCOL = 0x01
_ERR_FATAL = _ERR_BUFFER_OVFL | _ERR_PARITY | _ERR_PROTOCOL
_CMD_POWER_DOWN = 0x10
_FIFO_FLUSH = 0x80
_BIT_FRAMING_START_SEND = 0x80
_COLL_VALUES_AFTER_COLL = 0x80

# ISO/IEC 14443-3 type A commands
PICC_REQA = 0x26
PICC_WUPA = 0x52
PICC_HLTA = 0x50
_CASCADE_TAG = 0x88
_SEL_CODES = (0x93, 0x95, 0x97)  # cascade levels 1, 2, 3
_NVB_ANTICOLL = 0x20  # "I send 2 bytes, you send the rest"
_NVB_SELECT = 0x70  # "I send 7 bytes": SEL, NVB, UID CLn (4) and BCC
_SAK_UID_INCOMPLETE = 0x04

#: VersionReg values of genuine NXP chips
GENUINE_VERSIONS: Mapping[int, str] = {0x91: "MFRC522 v1.0", 0x92: "MFRC522 v2.0"}
#: VersionReg values of chips that work like one (common on cheap modules)
KNOWN_CLONE_VERSIONS: Mapping[int, str] = {
    0x90: "MFRC522 v0.0",
    0x88: "FM17522 (clone)",
    0x89: "FM17522E (clone)",
    0xB2: "FM17522 (clone)",
    0x12: "counterfeit MFRC522",
}
_NOT_WIRED = (0x00, 0xFF)  # MISO stuck low or high: nothing answers

# Timer: TPrescaler = 0xA9 → 13.56 MHz / (2 × 169 + 1) = 40 kHz, one tick = 25 µs.
# TReload = 39 → 40 ticks = 1 ms. With TAuto the timer starts at the end of our frame and,
# RxMultiple being 0, stops at the 5th bit of the card's answer (datasheet, TModeReg), so it
# only has to outlast the frame delay time: REQA/WUPA, anticollision and SELECT are all
# answered after FDT = 1172/fc or 1236/fc ≈ 86–91 µs (ISO/IEC 14443-3 §6.2.1.1), plus 5
# bits (≈ 47 µs): 1 ms is seven times that. (The 25 ms of the Arduino libraries covers
# MIFARE authentication and block reads, which we never do.)
_T_PRESCALER = 0xA9
_T_RELOAD = 39
#: the timer period those two settings give, in seconds
_TIMER_S = (_T_RELOAD + 1) * (2 * _T_PRESCALER + 1) / 13_560_000
#: seconds per bit on the air at 106 kbit/s (fc / 128)
_BIT_S = 128 / 13_560_000
#: frame delay time: from the end of our frame to the card's answer (1236/fc, rounded up)
_FDT_S = 0.0001
#: between two reads of an IRQ register that showed nothing yet
_IRQ_POLL_S = 0.0005
#: how long the driver waits for the chip itself before calling it not wired
_CHIP_TIMEOUT = 0.05
#: how often a reader whose chip did not answer at start-up is tried again
_REINIT_INTERVAL = 5.0
#: consecutive empty polls before a tag counts as removed: real readers miss a read
#: now and then (a tag at the edge of the field, a player's hand moving it)
MISSES_BEFORE_REMOVAL = 2

_HLTA_FRAME = bytes((PICC_HLTA, 0x00))
# CRC_A test vector from ISO/IEC 14443-3 annex B: 0x00 0x00 → 0xA0 0x1E
_CRC_TEST_DATA = bytes((0x00, 0x00))
_CRC_TEST_RESULT = bytes((0xA0, 0x1E))


def version_label(version: int | None) -> str:
    """Human name of a VersionReg value, for logs and the technician's page."""
    if version is None:
        return "no chip"
    name = GENUINE_VERSIONS.get(version) or KNOWN_CLONE_VERSIONS.get(version)
    return f"0x{version:02x} ({name})" if name else f"0x{version:02x} (unknown)"


def _air_time(n_bytes: int, last_bits: int = 0) -> float:
    """Seconds a frame of *n_bytes* (the last one *last_bits* long, 0 = whole) takes on
    the air at 106 kbit/s: start of frame, 8 bits and a parity bit per byte, end of frame,
    plus 0.1 ms for the SPI write that started it and the sleep's own jitter."""
    bits = n_bytes * 9 - ((8 - last_bits) if last_bits else 0) + 2
    return bits * _BIT_S + 0.0001


class _ChipLost(RFIDError):
    """The MFRC522 itself stopped answering (unplugged, MISO stuck), not the card."""


class _Answer(NamedTuple):
    """What the chip received from the card: bytes and the valid bits of the last one."""

    data: bytes
    last_bits: int  # 0 = the last byte is complete


def open_spi(
    *,
    clock_pin: int,
    mosi_pin: int,
    miso_pin: int,
    select_pin: int,
    pin_factory: Factory,
) -> SPI:
    """Return the SPI interface for these pins on *pin_factory*, in SPI mode 0.

    The factory chooses: hardware SPI0 when the pins are SPI0's and the kernel driver is
    on, bit-banging otherwise (and whatever a simulation gave its factory).
    """
    spi: SPI = pin_factory.spi(
        clock_pin=clock_pin, mosi_pin=mosi_pin, miso_pin=miso_pin, select_pin=select_pin
    )
    try:
        # MFRC522: SPI mode 0 (CPOL = 0, CPHA = 0), MSB first, 8-bit words.
        spi.clock_mode = 0
        spi.lsb_first = False
        spi.bits_per_word = 8
    except BaseException:
        spi.close()
        raise
    return spi


# -- the reader -------------------------------------------------------------------------
class MFRC522Reader(TagMemory, Prop, SPIDevice):
    """An MFRC522 RFID reader (the blue "RC522" module) on SPI.

    Polls for a tag every *poll_interval* seconds in a background thread and emits one
    ``tag`` event (value: the UID, lowercase hex) per tag presented, and one ``removed``
    event (value: the UID) when it leaves. Two consecutive empty polls count as a
    removal, so one missed read does not make a tag "leave". Corrupt frames produce no
    event; they are counted in :attr:`errors`.

    Wire it to SPI0 (SCK = GPIO11, MOSI = GPIO10, MISO = GPIO9, SDA = GPIO8) and its RST
    to *reset_pin*; power it from **3V3**, never 5 V::

        from props.mfrc522 import MFRC522Reader

        reader = MFRC522Reader(tags={"04a1b2c3": "quittance de loyer"})
        reader.when_event = lambda kind, uid: print(kind, uid)
        print(reader.state)     # {'tag': None, 'tag_name': None, 'version': '0x92', ...}
        uid = reader.wait_for_tag(30)    # the technician's "enroll": next tag shown

    :param clock_pin, mosi_pin, miso_pin, select_pin: BCM numbers of the SPI lines
        (SPI0 with CE0 by default; any free pin works as chip select).
    :param reset_pin: BCM number of the module's RST, held high; :data:`None` if RST
        is tied to 3V3 or driven by someone else (a :class:`SortingStation`).
    :param poll_interval: seconds between polls; :data:`None` starts no thread, the
        owner calls :meth:`poll` (a sorting station polls its readers in turn).
    :param tags: known tags, UID hex → name, reported as ``tag_name`` in the state.
    :param defer_init: do not talk to the chip yet; :meth:`init_chip` or the first
        :meth:`poll` will. Readers sharing a bus need it: a chip whose select line is
        not driven yet floats low, takes itself as addressed and answers too.
    """

    kind: ClassVar[str] = "mfrc522"
    actions: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        *,
        clock_pin: int = 11,
        mosi_pin: int = 10,
        miso_pin: int = 9,
        select_pin: int = 8,
        reset_pin: int | None = 25,
        poll_interval: float | None = 0.1,
        tags: Mapping[str, str] | None = None,
        defer_init: bool = False,
        pin_factory: Factory | None = None,
    ) -> None:
        if poll_interval is not None and poll_interval <= 0:
            msg = f"poll_interval must be positive or None, got {poll_interval!r}"
            raise ValueError(msg)
        # Everything close() looks at exists before anything can fail (see gpiozero's
        # GPIOBase.__del__ note: close() may run on a half-built object).
        self._spi = None
        self._reset_line: DigitalOutputDevice | None = None
        self._poll_thread: GPIOThread | None = None
        self._chip_lock = threading.RLock()  # one chip transaction at a time
        self._init_tags(tags)
        self._pins = (clock_pin, mosi_pin, miso_pin, select_pin)
        self._poll_interval = poll_interval
        self._version: int | None = None
        self._halt_crc: bytes | None = None
        self._next_init = 0.0
        self._misses = 0
        self._errors = 0
        Device.__init__(self, pin_factory=pin_factory)
        try:
            if reset_pin is not None:
                # RST high = running; low = hard power-down. Held high for our lifetime.
                self._reset_line = DigitalOutputDevice(
                    reset_pin, active_high=True, initial_value=True, pin_factory=self.pin_factory
                )
            self._spi = open_spi(
                clock_pin=clock_pin,
                mosi_pin=mosi_pin,
                miso_pin=miso_pin,
                select_pin=select_pin,
                pin_factory=self.pin_factory,
            )
            if not defer_init:
                self.init_chip()
            if poll_interval is not None:
                self._poll_thread = GPIOThread(self._run, name=f"mfrc522-cs{select_pin}")
                self._poll_thread.start()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_config(cls, config: MFRC522Config, *, pin_factory: Factory | None = None) -> Self:
        """Build the reader a game's YAML describes (see :class:`props.models.MFRC522Config`)."""
        return cls(
            clock_pin=config.spi.clock,
            mosi_pin=config.spi.mosi,
            miso_pin=config.spi.miso,
            select_pin=config.spi.select,
            reset_pin=config.reset_pin,
            poll_interval=config.poll_interval,
            tags=config.tags,
            pin_factory=pin_factory,
        )

    # -- gpiozero device contract -----------------------------------------------------
    def close(self) -> None:
        """Stop polling, switch the antenna off and release the pins; harmless twice."""
        thread = getattr(self, "_poll_thread", None)
        if thread is not None:
            self._poll_thread = None
            thread.stopping.set()
            # NOTE: a listener may close the reader from the poll thread itself.
            if thread is not threading.current_thread():
                thread.join(5)
        chip_lock = getattr(self, "_chip_lock", None) or threading.RLock()
        with chip_lock:  # not in the middle of someone's self-test
            if getattr(self, "_spi", None) is not None and getattr(self, "_version", None):
                try:
                    self._clear_bits(Reg.TX_CONTROL, 0x03)  # antenna off: no RF left on
                except Exception:  # a dying bus must not stop close()
                    log.debug("could not switch the antenna off", exc_info=True)
            reset_line = getattr(self, "_reset_line", None)
            if reset_line is not None:
                self._reset_line = None
                reset_line.close()
            super().close()  # SPIDevice closes the SPI interface
        if getattr(self, "_tag_presented", None) is not None:
            self._wake_waiters()

    @property
    def version(self) -> int | None:
        """The chip's VersionReg (0x91/0x92 for genuine NXP), :data:`None` if it never answered."""
        return self._version

    @property
    def errors(self) -> int:
        """How many corrupt or unexpected frames were dropped since start."""
        return self._errors

    def __repr__(self) -> str:
        try:
            self._check_open()
        except DeviceClosed:
            return f"<props.MFRC522Reader {self.name!r} closed>"
        clock, mosi, miso, select = self._pins
        return (
            f"<props.MFRC522Reader {self.name!r} on SPI(clock={clock}, mosi={mosi}, "
            f"miso={miso}, select={select}) version={version_label(self._version)} "
            f"tag={self._tag!r} errors={self._errors}>"
        )

    # -- prop interface ---------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        with self._tag_lock:
            return {
                **self._tag_state(),
                "version": None if self._version is None else f"0x{self._version:02x}",
                "errors": self._errors,
            }

    def _forget(self) -> None:
        self._misses = 0

    def self_test(self, *, timeout: float = 10.0) -> SelfTestResult:
        """Check the chip answers on SPI and its CRC coprocessor works; never raises."""
        if self.closed:
            return SelfTestResult(passed=False, message="reader closed")
        steps: list[str] = []
        try:
            with self._chip_lock:
                failure = self._check_chip(steps)
        except Exception as exc:  # a self-test reports, it never raises
            log.exception("self-test of %s failed", self.name or self)
            return SelfTestResult(passed=False, steps=tuple(steps), message=str(exc))
        if failure:
            return SelfTestResult(passed=False, steps=tuple(steps), message=failure)
        steps.append(f"tag on the reader: {self._tag or 'none'}")
        version = self._version
        note = "" if version in GENUINE_VERSIONS else f" (works, but {version_label(version)})"
        return SelfTestResult(passed=True, steps=tuple(steps), message=f"reader OK{note}")

    def _check_chip(self, steps: list[str]) -> str | None:
        """The self-test's checks; appends what it saw to *steps*, returns what failed."""
        if self._version is None:
            self.init_chip()  # the technician may just have fixed the wiring
        version = self._read(Reg.VERSION)
        steps.append(f"VersionReg = {version_label(version)}")
        if version in _NOT_WIRED:
            return (f"no MFRC522 answers (VersionReg reads 0x{version:02x}): check 3V3 and "
                    "GND, SCK/MOSI/MISO/SDA wiring, and that SPI is enabled")
        if version not in GENUINE_VERSIONS and version not in KNOWN_CLONE_VERSIONS:
            return f"unexpected VersionReg 0x{version:02x}: not an MFRC522, or a noisy bus"
        crc = self._calc_crc(_CRC_TEST_DATA)
        steps.append(f"CRC coprocessor: CRC_A(00 00) = {crc.hex()}")
        if crc != _CRC_TEST_RESULT:
            return f"CRC coprocessor gave {crc.hex()}, expected {_CRC_TEST_RESULT.hex()}"
        antenna = self._read(Reg.TX_CONTROL) & 0x03
        steps.append(f"antenna drivers {'on' if antenna == 0x03 else 'OFF'}")
        if antenna != 0x03:
            return "the antenna is switched off"
        return None

    # -- polling ----------------------------------------------------------------------
    def _run(self) -> None:
        thread = threading.current_thread()
        stopping = thread.stopping if isinstance(thread, GPIOThread) else threading.Event()
        interval = self._poll_interval or 0.1
        while not stopping.is_set():
            try:
                self.poll()
            except DeviceClosed:
                return
            except Exception:
                # NOTE: a flaky bus must not kill the thread; the next poll tries again.
                log.exception("polling %s failed", self.name or self)
            stopping.wait(interval)

    def poll(self) -> str | None:
        """Look for a tag once, emit events if that changed anything; return the UID seen.

        Called by the background thread; call it yourself when built with
        ``poll_interval=None``.
        """
        self._check_open()
        with self._chip_lock:
            if self._version is None:
                if time.monotonic() < self._next_init:
                    return None
                if not self.init_chip():
                    return None
            try:
                # Retry only while a tag is believed present: an empty reader then
                # costs one timer period per poll, not two.
                uid = self.read_uid(retry=self._tag is not None)
            except _ChipLost as exc:
                # A loose wire mid-game: say it once, show it in the state (version
                # None), and try to set the chip up again every few seconds. The tag
                # stays as last seen: nothing was seen to leave.
                log.warning("%s: the MFRC522 stopped answering (%s); retrying every %.0f s",
                            self.name or self, exc, _REINIT_INTERVAL)
                self._version = None
                self._next_init = time.monotonic() + _REINIT_INTERVAL
                self._state_changed()
                return None
            except RFIDError as exc:
                # Inconclusive: something is in the field but the frame was bad. Neither
                # a read nor a miss, so a noisy tag does not flicker away.
                log.debug("%s: dropped a corrupt frame: %s", self.name or self, exc)
                with self._tag_lock:
                    self._errors += 1
                self._state_changed()
                return None
        self._update(uid)
        return uid

    def _update(self, uid: str | None) -> None:
        events: TagEvents = []
        with self._tag_lock:
            if uid is not None:
                self._misses = 0
                self._present(uid, events)
            elif self._tag is not None:
                self._misses += 1
                if self._misses >= MISSES_BEFORE_REMOVAL:
                    events.append(("removed", self._tag))
                    self._tag = None
                    self._misses = 0
        self._emit_all(events)

    # -- ISO/IEC 14443-3 type A -------------------------------------------------------
    def read_uid(self, *, wake: bool = True, retry: bool = False) -> str | None:
        """Run one activation: request, anticollision/select per level, halt.

        Returns the UID as lowercase hex, or :data:`None` when no card answers.
        Raises :class:`~props.exc.RFIDError` on a corrupt or unexpected frame.

        *wake* sends WUPA rather than REQA. WUPA also wakes cards in HALT, which is
        where the previous poll left the card; with REQA a card that stays on the
        reader would answer only after leaving the field.

        *retry* sends the request a second time when nothing answered. A card that a
        broken exchange left half-selected (READY or ACTIVE) takes the first request
        as an error and falls silent back to IDLE/HALT; it answers the second one.
        """
        command = PICC_WUPA if wake else PICC_REQA
        with self._chip_lock:
            if not self._request(command) and not (retry and self._request(command)):
                return None
            uid = self._select_uid()
            self._halt()
        return uid.hex()

    def _request(self, command: int) -> bool:
        """REQA / WUPA (a 7-bit short frame); True if a card answered with an ATQA."""
        answer = self._transceive(bytes((command,)), tx_last_bits=7)
        if answer is None:
            return False
        if len(answer.data) != 2 or answer.last_bits:
            msg = f"ATQA of {len(answer.data)} bytes, last byte {answer.last_bits or 8} bits"
            raise RFIDError(msg)
        return True

    def _select_uid(self) -> bytes:
        """Anticollision and SELECT for each cascade level; return the full UID."""
        uid = bytearray()
        for sel in _SEL_CODES:
            answer = self._transceive(bytes((sel, _NVB_ANTICOLL)), answer_bytes=5)
            if answer is None:
                msg = f"no answer to anticollision 0x{sel:02x} (tag left?)"
                raise RFIDError(msg)
            part = answer.data
            if len(part) != 5 or answer.last_bits:
                msg = f"anticollision answer of {len(part)} bytes, expected 5"
                raise RFIDError(msg)
            if part[0] ^ part[1] ^ part[2] ^ part[3] != part[4]:
                msg = f"bad BCC in UID part {part.hex()}"
                raise RFIDError(msg)
            sak = self._select(sel, part)
            if part[0] == _CASCADE_TAG:  # more UID bytes at the next level
                if not sak & _SAK_UID_INCOMPLETE:
                    msg = f"cascade tag without the cascade bit in SAK 0x{sak:02x}"
                    raise RFIDError(msg)
                uid += part[1:4]
                continue
            if sak & _SAK_UID_INCOMPLETE:
                msg = f"SAK 0x{sak:02x} says the UID goes on without a cascade tag"
                raise RFIDError(msg)
            uid += part[0:4]
            return bytes(uid)
        msg = "UID longer than three cascade levels"
        raise RFIDError(msg)

    def _select(self, sel: int, part: bytes) -> int:
        frame = bytes((sel, _NVB_SELECT)) + part
        answer = self._transceive(frame + self._calc_crc(frame), answer_bytes=3)
        if answer is None:
            msg = f"no answer to SELECT 0x{sel:02x} (tag left?)"
            raise RFIDError(msg)
        if len(answer.data) != 3 or answer.last_bits:
            msg = f"SAK of {len(answer.data)} bytes, expected 3 (SAK and CRC_A)"
            raise RFIDError(msg)
        if self._calc_crc(answer.data[:1]) != answer.data[1:]:
            msg = f"CRC error in SAK {answer.data.hex()}"
            raise RFIDError(msg)
        return answer.data[0]

    def _halt(self) -> None:
        """HLTA: no answer is expected, so send it with Transmit, not Transceive."""
        if self._halt_crc is None:  # a constant frame: its CRC is asked for once
            self._halt_crc = self._calc_crc(_HLTA_FRAME)
        self._write(Reg.COMMAND, _Cmd.IDLE)
        self._write(Reg.COM_IRQ, _IRQ_CLEAR_ALL)
        self._write(Reg.FIFO_LEVEL, _FIFO_FLUSH)
        self._write(Reg.FIFO_DATA, *_HLTA_FRAME, *self._halt_crc)
        self._write(Reg.BIT_FRAMING, 0)
        self._write(Reg.COMMAND, _Cmd.TRANSMIT)
        self._wait_irq(Reg.COM_IRQ, _IRQ_IDLE | _IRQ_TX, what="HLTA transmission",
                       first_after=_air_time(len(_HLTA_FRAME) + 2))

    # -- chip commands ----------------------------------------------------------------
    def _transceive(self, data: bytes, *, tx_last_bits: int = 0,
                    answer_bytes: int | None = None) -> _Answer | None:
        """Send *data* to the card and return its answer; :data:`None` on timeout.

        *answer_bytes*: the length of the answer a card in the middle of an activation
        owes us (it answered the request): look for it as soon as it can be complete
        rather than after the chip's timer. A request (REQA/WUPA) usually finds nobody.
        """
        # Six writes and (usually) one read: this is all an empty poll costs on the bus.
        self._write(Reg.COMMAND, _Cmd.IDLE)  # stop whatever still runs (a receiver waiting)
        self._write(Reg.COM_IRQ, _IRQ_CLEAR_ALL)
        self._write(Reg.FIFO_LEVEL, _FIFO_FLUSH)
        self._write(Reg.FIFO_DATA, *data)
        self._write(Reg.COMMAND, _Cmd.TRANSCEIVE)
        # TxLastBits and StartSend in one write: the whole register is written, so there
        # is no need to set the bit count first and then read-modify-write StartSend.
        self._write(Reg.BIT_FRAMING, _BIT_FRAMING_START_SEND | tx_last_bits)
        # Nothing can be there before our frame has left and the card's answer (or the
        # chip's timer, which starts when the frame has left) has come: look only then.
        irq = self._wait_irq(
            Reg.COM_IRQ, _IRQ_RX | _IRQ_IDLE, also=_IRQ_TIMER, what="transceive",
            first_after=_air_time(len(data), tx_last_bits) + (
                _TIMER_S if answer_bytes is None else _FDT_S + _air_time(answer_bytes)),
        )
        if not irq & (_IRQ_RX | _IRQ_IDLE):
            return None  # the chip's timer ran out: no card answered
        # One SPI transaction for three registers (address bytes may follow each other).
        error, level, control = self._read_many(Reg.ERROR, Reg.FIFO_LEVEL, Reg.CONTROL)
        if error == 0xFF:  # bit 5 is reserved and reads 0: this is MISO stuck high
            msg = "ErrorReg reads 0xff: MISO stuck high"
            raise _ChipLost(msg)
        if error & _ERR_FATAL:
            msg = f"ErrorReg 0x{error:02x} after {data.hex()}"
            raise RFIDError(msg)
        if error & _ERR_COLL:
            msg = "collision: two tags in the field at once"
            raise RFIDError(msg)
        level &= 0x7F
        received = bytes(self._read_many(*([Reg.FIFO_DATA] * level))) if level else b""
        return _Answer(received, control & 0x07)

    def _calc_crc(self, data: bytes) -> bytes:
        """CRC_A of *data* from the chip's coprocessor, low byte first."""
        self._write(Reg.COMMAND, _Cmd.IDLE)
        self._write(Reg.DIV_IRQ, _DIV_IRQ_CRC)  # Set2 = 0: clears CRCIRq
        self._write(Reg.FIFO_LEVEL, _FIFO_FLUSH)
        self._write(Reg.FIFO_DATA, *data)
        self._write(Reg.COMMAND, _Cmd.CALC_CRC)
        self._wait_irq(Reg.DIV_IRQ, _DIV_IRQ_CRC, what="CRC calculation")
        self._write(Reg.COMMAND, _Cmd.IDLE)
        low, high = self._read_many(Reg.CRC_RESULT_L, Reg.CRC_RESULT_H)
        return bytes((low, high))

    def _wait_irq(self, reg: Reg, done: int, *, also: int = 0, what: str,
                  first_after: float = 0.0) -> int:
        """Poll an IRQ register until a *done* (or *also*) bit is set; return its value.

        *first_after* is how long the chip needs at the least (the frame on the air, the
        card's answer or the chip's timer): the register is first read after that, so a
        poll that nobody answers costs one read, not one per 0.5 ms of the timer.

        The chip's own timer bounds card exchanges; this deadline only catches a chip
        that does not answer at all (unplugged, or MISO stuck low).
        """
        deadline = time.monotonic() + _CHIP_TIMEOUT
        if first_after:
            time.sleep(first_after)
        while True:
            irq = self._read(reg)
            if irq & (done | also):
                return irq
            if time.monotonic() > deadline:
                msg = f"the MFRC522 did not finish the {what} (IRQ register 0x{irq:02x})"
                raise _ChipLost(msg)
            time.sleep(_IRQ_POLL_S)

    def init_chip(self) -> bool:
        """Soft reset and configure the chip; False if nothing answers.

        A chip that did not answer is tried again by :meth:`poll` every few seconds.
        """
        with self._chip_lock:
            self._halt_crc = None
            self._write(Reg.COMMAND, _Cmd.SOFT_RESET)
            # The oscillator restarts after a soft reset; PowerDown reads 1 until it runs.
            time.sleep(0.001)
            deadline = time.monotonic() + 0.15
            while self._read(Reg.COMMAND) & _CMD_POWER_DOWN and time.monotonic() < deadline:
                time.sleep(0.002)
            version = self._read(Reg.VERSION)
            if version in _NOT_WIRED:
                # Just out of a hard reset the chip may still be starting: one more try.
                time.sleep(0.05)
                version = self._read(Reg.VERSION)
            if version in _NOT_WIRED:
                if self._next_init == 0.0:  # warn once, not every retry
                    log.warning(
                        "no MFRC522 answers on SPI select GPIO%s (VersionReg 0x%02x): "
                        "check wiring and 3V3; retrying every %.0f s",
                        self._pins[3], version, _REINIT_INTERVAL,
                    )
                self._next_init = time.monotonic() + _REINIT_INTERVAL
                self._version = None
                return False
            if version not in GENUINE_VERSIONS and version not in KNOWN_CLONE_VERSIONS:
                log.warning("MFRC522 on GPIO%s reports an unknown version 0x%02x; trying anyway",
                            self._pins[3], version)
            self._write(Reg.TX_MODE, 0x00)  # 106 kbit/s, no TX CRC: we add CRC_A ourselves
            self._write(Reg.RX_MODE, 0x00)
            self._write(Reg.MOD_WIDTH, 0x26)
            self._write(Reg.T_MODE, 0x80 | (_T_PRESCALER >> 8))  # TAuto: timer starts after TX
            self._write(Reg.T_PRESCALER, _T_PRESCALER & 0xFF)
            self._write(Reg.T_RELOAD_H, _T_RELOAD >> 8)
            self._write(Reg.T_RELOAD_L, _T_RELOAD & 0xFF)
            self._write(Reg.TX_ASK, 0x40)  # Force100ASK: type A needs 100 % ASK
            self._write(Reg.MODE, 0x3D)  # CRC preset 0x6363, as ISO 14443-3 CRC_A wants
            # Bits after a collision read as 0 rather than as garbage; nothing but a reset
            # sets this bit again, so once here rather than at every request.
            self._clear_bits(Reg.COLL, _COLL_VALUES_AFTER_COLL)
            self._set_bits(Reg.TX_CONTROL, 0x03)  # antenna on: TX1 and TX2 drive the field
            self._version = version
            self._next_init = 0.0
        log.info("MFRC522 on select GPIO%s ready: %s", self._pins[3], version_label(version))
        self._state_changed()
        return True

    # -- register access --------------------------------------------------------------
    def _write(self, reg: int, *values: int) -> None:
        """Write *values* to one register (FIFO writes take several bytes)."""
        self._active_spi().transfer([(reg << 1) & 0x7E, *values])

    def _read(self, reg: int) -> int:
        return self._active_spi().transfer([((reg << 1) & 0x7E) | 0x80, 0])[1]

    def _read_many(self, *regs: int) -> list[int]:
        """Read several registers in one transaction: each byte clocks out the previous."""
        addresses = [((reg << 1) & 0x7E) | 0x80 for reg in regs]
        return list(self._active_spi().transfer([*addresses, 0])[1:])

    def _set_bits(self, reg: int, mask: int) -> None:
        value = self._read(reg)
        if value & mask != mask:
            self._write(reg, value | mask)

    def _clear_bits(self, reg: int, mask: int) -> None:
        value = self._read(reg)
        if value & mask:
            self._write(reg, value & ~mask & 0xFF)

    def _active_spi(self) -> SPI:
        spi = self._spi
        if spi is None:
            msg = "the MFRC522 reader is closed"
            raise DeviceClosed(msg)
        return spi
