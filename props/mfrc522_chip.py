"""The MFRC522's register protocol, and the ISO/IEC 14443-3 type A activation it carries.

:class:`MFRC522Chip` is one chip on one SPI interface (datasheet MFRC522 rev. 3.9,
section 9 "MFRC522 registers"): register reads and writes, the chip's commands (Transceive,
CalcCRC, SoftReset), and over them what every reader does on the air: WUPA/REQA → ATQA,
anticollision and SELECT per cascade level (4, 7 or 10-byte UIDs, BCC checked, CRC_A from
the chip's coprocessor) → SAK, then HLTA. It never authenticates nor reads blocks: the game
only needs to know *which* tag is on the reader. It has no thread and no policy (when to
poll, to retry, what a failure means): that is :class:`props.mfrc522.MFRC522Reader`.

Over 400 lines because it is one thing: the register map and the commands built on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from enum import IntEnum
from typing import TYPE_CHECKING, NamedTuple

from gpiozero.exc import DeviceClosed

from props.exc import RFIDError

if TYPE_CHECKING:
    from gpiozero import Factory
    from gpiozero.pins import SPI

__all__ = [
    "GENUINE_VERSIONS",
    "KNOWN_CLONE_VERSIONS",
    "NOT_WIRED",
    "ChipLost",
    "MFRC522Chip",
    "Reg",
    "open_spi",
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
#: what VersionReg reads when no chip answers: MISO stuck low or high
NOT_WIRED = (0x00, 0xFF)

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

_HLTA_FRAME = bytes((PICC_HLTA, 0x00))


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


class ChipLost(RFIDError):
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


class MFRC522Chip:
    """One MFRC522 on an SPI interface (:func:`open_spi`); :attr:`spi` is :data:`None`
    while there is none (before it is opened, once it is closed)."""

    def __init__(self, spi: SPI | None = None) -> None:
        self.spi = spi
        #: one chip transaction at a time: a poll, a self-test, the antenna switched off
        self.lock = threading.RLock()
        self._halt_crc: bytes | None = None

    def reset(self) -> int:
        """Soft reset; return what VersionReg reads then (:data:`NOT_WIRED`: nothing answers)."""
        with self.lock:
            self._halt_crc = None
            self.write(Reg.COMMAND, _Cmd.SOFT_RESET)
            # The oscillator restarts after a soft reset; PowerDown reads 1 until it runs.
            time.sleep(0.001)
            deadline = time.monotonic() + 0.15
            while self.read(Reg.COMMAND) & _CMD_POWER_DOWN and time.monotonic() < deadline:
                time.sleep(0.002)
            version = self.read(Reg.VERSION)
            if version in NOT_WIRED:
                # Just out of a hard reset the chip may still be starting: one more try.
                time.sleep(0.05)
                version = self.read(Reg.VERSION)
            return version

    def configure(self) -> None:
        """Set a reset chip up for type A at 106 kbit/s with the 1 ms timer; antenna on."""
        with self.lock:
            self.write(Reg.TX_MODE, 0x00)  # 106 kbit/s, no TX CRC: we add CRC_A ourselves
            self.write(Reg.RX_MODE, 0x00)
            self.write(Reg.MOD_WIDTH, 0x26)
            self.write(Reg.T_MODE, 0x80 | (_T_PRESCALER >> 8))  # TAuto: timer starts after TX
            self.write(Reg.T_PRESCALER, _T_PRESCALER & 0xFF)
            self.write(Reg.T_RELOAD_H, _T_RELOAD >> 8)
            self.write(Reg.T_RELOAD_L, _T_RELOAD & 0xFF)
            self.write(Reg.TX_ASK, 0x40)  # Force100ASK: type A needs 100 % ASK
            self.write(Reg.MODE, 0x3D)  # CRC preset 0x6363, as ISO 14443-3 CRC_A wants
            # Bits after a collision read as 0 rather than as garbage; nothing but a reset
            # sets this bit again, so once here rather than at every request.
            self.clear_bits(Reg.COLL, _COLL_VALUES_AFTER_COLL)
            self.set_bits(Reg.TX_CONTROL, 0x03)  # antenna on: TX1 and TX2 drive the field

    def antenna_off(self) -> None:
        """Switch the RF field off (TX1 and TX2 stop driving the antenna)."""
        with self.lock:
            self.clear_bits(Reg.TX_CONTROL, 0x03)

    # -- ISO/IEC 14443-3 type A -------------------------------------------------------
    def read_uid(self, *, wake: bool = True, retry: bool = False) -> str | None:
        """Run one activation: request, anticollision/select per level, halt.

        Returns the UID as lowercase hex, or :data:`None` when no card answers.
        Raises :class:`~props.exc.RFIDError` on a corrupt or unexpected frame, and
        :class:`ChipLost` when the chip itself does not answer.

        *wake* sends WUPA rather than REQA. WUPA also wakes cards in HALT, which is
        where the previous poll left the card; with REQA a card that stays on the
        reader would answer only after leaving the field.

        *retry* sends the request a second time when nothing answered. A card that a
        broken exchange left half-selected (READY or ACTIVE) takes the first request
        as an error and falls silent back to IDLE/HALT; it answers the second one.
        """
        command = PICC_WUPA if wake else PICC_REQA
        with self.lock:
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
        answer = self._transceive(frame + self.calc_crc(frame), answer_bytes=3)
        if answer is None:
            msg = f"no answer to SELECT 0x{sel:02x} (tag left?)"
            raise RFIDError(msg)
        if len(answer.data) != 3 or answer.last_bits:
            msg = f"SAK of {len(answer.data)} bytes, expected 3 (SAK and CRC_A)"
            raise RFIDError(msg)
        if self.calc_crc(answer.data[:1]) != answer.data[1:]:
            msg = f"CRC error in SAK {answer.data.hex()}"
            raise RFIDError(msg)
        return answer.data[0]

    def _halt(self) -> None:
        """HLTA: no answer is expected, so send it with Transmit, not Transceive."""
        if self._halt_crc is None:  # a constant frame: its CRC is asked for once
            self._halt_crc = self.calc_crc(_HLTA_FRAME)
        self.write(Reg.COMMAND, _Cmd.IDLE)
        self.write(Reg.COM_IRQ, _IRQ_CLEAR_ALL)
        self.write(Reg.FIFO_LEVEL, _FIFO_FLUSH)
        self.write(Reg.FIFO_DATA, *_HLTA_FRAME, *self._halt_crc)
        self.write(Reg.BIT_FRAMING, 0)
        self.write(Reg.COMMAND, _Cmd.TRANSMIT)
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
        self.write(Reg.COMMAND, _Cmd.IDLE)  # stop whatever still runs (a receiver waiting)
        self.write(Reg.COM_IRQ, _IRQ_CLEAR_ALL)
        self.write(Reg.FIFO_LEVEL, _FIFO_FLUSH)
        self.write(Reg.FIFO_DATA, *data)
        self.write(Reg.COMMAND, _Cmd.TRANSCEIVE)
        # TxLastBits and StartSend in one write: the whole register is written, so there
        # is no need to set the bit count first and then read-modify-write StartSend.
        self.write(Reg.BIT_FRAMING, _BIT_FRAMING_START_SEND | tx_last_bits)
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
        error, level, control = self.read_many(Reg.ERROR, Reg.FIFO_LEVEL, Reg.CONTROL)
        if error == 0xFF:  # bit 5 is reserved and reads 0: this is MISO stuck high
            msg = "ErrorReg reads 0xff: MISO stuck high"
            raise ChipLost(msg)
        if error & _ERR_FATAL:
            msg = f"ErrorReg 0x{error:02x} after {data.hex()}"
            raise RFIDError(msg)
        if error & _ERR_COLL:
            msg = "collision: two tags in the field at once"
            raise RFIDError(msg)
        level &= 0x7F
        received = bytes(self.read_many(*([Reg.FIFO_DATA] * level))) if level else b""
        return _Answer(received, control & 0x07)

    def calc_crc(self, data: bytes) -> bytes:
        """CRC_A of *data* from the chip's coprocessor, low byte first."""
        self.write(Reg.COMMAND, _Cmd.IDLE)
        self.write(Reg.DIV_IRQ, _DIV_IRQ_CRC)  # Set2 = 0: clears CRCIRq
        self.write(Reg.FIFO_LEVEL, _FIFO_FLUSH)
        self.write(Reg.FIFO_DATA, *data)
        self.write(Reg.COMMAND, _Cmd.CALC_CRC)
        self._wait_irq(Reg.DIV_IRQ, _DIV_IRQ_CRC, what="CRC calculation")
        self.write(Reg.COMMAND, _Cmd.IDLE)
        low, high = self.read_many(Reg.CRC_RESULT_L, Reg.CRC_RESULT_H)
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
            irq = self.read(reg)
            if irq & (done | also):
                return irq
            if time.monotonic() > deadline:
                msg = f"the MFRC522 did not finish the {what} (IRQ register 0x{irq:02x})"
                raise ChipLost(msg)
            time.sleep(_IRQ_POLL_S)

    # -- register access --------------------------------------------------------------
    def write(self, reg: int, *values: int) -> None:
        """Write *values* to one register (FIFO writes take several bytes)."""
        self._active_spi().transfer([(reg << 1) & 0x7E, *values])

    def read(self, reg: int) -> int:
        """What register *reg* reads."""
        return self._active_spi().transfer([((reg << 1) & 0x7E) | 0x80, 0])[1]

    def read_many(self, *regs: int) -> list[int]:
        """Read several registers in one transaction: each byte clocks out the previous."""
        addresses = [((reg << 1) & 0x7E) | 0x80 for reg in regs]
        return list(self._active_spi().transfer([*addresses, 0])[1:])

    def set_bits(self, reg: int, mask: int) -> None:
        """Set the bits of *mask* in *reg* (written only if one was clear)."""
        value = self.read(reg)
        if value & mask != mask:
            self.write(reg, value | mask)

    def clear_bits(self, reg: int, mask: int) -> None:
        """Clear the bits of *mask* in *reg* (written only if one was set)."""
        value = self.read(reg)
        if value & mask:
            self.write(reg, value & ~mask & 0xFF)

    def _active_spi(self) -> SPI:
        spi = self.spi
        if spi is None:
            msg = "the MFRC522 reader is closed"
            raise DeviceClosed(msg)
        return spi
