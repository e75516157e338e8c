"""A simulated MFRC522 chip, with an ISO/IEC 14443-3 type A card in its field.

:class:`SimulatedMFRC522` sits on gpiozero's :class:`~gpiozero.pins.mock.MockSPIDevice`:
it listens to the clock, MOSI and chip-select pins of a MockFactory and drives MISO,
answering the chip's register protocol bit by bit. The driver under test
(:class:`props.mfrc522.MFRC522Reader`) therefore runs exactly the code it runs on the
Pi; only the wires are simulated. The card is :class:`props.sim.iso14443.Card`.

Register numbers and bit meanings are written here again from the datasheet on purpose,
not imported from the driver: a shared mistake would otherwise pass every test.

:class:`MFRC522Simulator` and :class:`SortingSimulator` are what :func:`props.sim.prepare`
gives for a reader or a sorting station.

Over 400 lines because it is one thing: the chip's register file answering the driver.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from gpiozero import Device
from gpiozero.pins.mock import MockSPIDevice

from props.sim.base import Simulator
from props.sim.iso14443 import Card, crc_a, parse_uid
from props.sim.spi import own_spi_buses

if TYPE_CHECKING:
    from gpiozero.pins.mock import MockFactory

    from props.models import MFRC522Config, SortingConfig

log = logging.getLogger(__name__)

__all__ = ["MFRC522Simulator", "SimulatedMFRC522", "SortingSimulator", "crc_a", "parse_uid"]

# Registers (datasheet table 20)
_COMMAND = 0x01
_COM_IRQ = 0x04
_DIV_IRQ = 0x05
_ERROR = 0x06
_FIFO_DATA = 0x09
_FIFO_LEVEL = 0x0A
_CONTROL = 0x0C
_BIT_FRAMING = 0x0D
_COLL = 0x0E
_MODE = 0x11
_TX_CONTROL = 0x14
_TX_ASK = 0x15
_CRC_RESULT_H = 0x21
_CRC_RESULT_L = 0x22
_T_MODE = 0x2A
_T_PRESCALER = 0x2B
_T_RELOAD_H = 0x2C
_T_RELOAD_L = 0x2D
_VERSION = 0x37

# Reset values of the registers that have a non-zero one (datasheet section 9.3)
_RESET_VALUES = {
    _COMMAND: 0x20, 0x02: 0x80, _COM_IRQ: 0x14, 0x07: 0x21, 0x0B: 0x08, _CONTROL: 0x10,
    _COLL: 0x80, _MODE: 0x3F, _TX_CONTROL: 0x80, 0x16: 0x10, 0x17: 0x84,
    0x18: 0x84, 0x19: 0x4D, 0x1A: 0x21, 0x1C: 0x62, _CRC_RESULT_H: 0xFF,
    _CRC_RESULT_L: 0xFF, 0x24: 0x26, 0x26: 0x48, 0x27: 0x88, 0x28: 0x20, 0x29: 0x20,
}

# Commands
_IDLE = 0x0
_CALC_CRC = 0x3
_TRANSMIT = 0x4
_RECEIVE = 0x8
_TRANSCEIVE = 0xC
_SOFT_RESET = 0xF

# ComIrqReg, DivIrqReg, ErrorReg bits
_TX_IRQ = 0x40
_RX_IRQ = 0x20
_IDLE_IRQ = 0x10
_ERR_IRQ = 0x02
_TIMER_IRQ = 0x01
_CRC_IRQ = 0x04
_BUFFER_OVFL = 0x10
_PARITY_ERR = 0x02

_READ_ONLY = frozenset({_ERROR, 0x07, _FIFO_LEVEL, _CONTROL, _CRC_RESULT_H, _CRC_RESULT_L,
                        _VERSION})
_WRITE_ONLY_BIT7 = frozenset({_COM_IRQ, _DIV_IRQ, _BIT_FRAMING})
_FIFO_SIZE = 64
_FRAMES_KEPT = 256
_CLOCK_HZ = 13_560_000


class SimulatedMFRC522(MockSPIDevice):
    """A simulated MFRC522 on a MockFactory's SPI pins, with an optional card.

    Create it *before* the reader (it must own the clock and select pins' mock
    classes, and it gives the factory SPI buses of its own: :func:`props.sim.spi.own_spi_buses`),
    then present and remove cards::

        from gpiozero.pins.mock import MockFactory
        from props.mfrc522 import MFRC522Reader
        from props.sim.mfrc522 import SimulatedMFRC522

        factory = MockFactory()
        chip = SimulatedMFRC522(select_pin=8, pin_factory=factory)
        reader = MFRC522Reader(select_pin=8, pin_factory=factory)
        chip.present("04a1b2c3")    # the reader emits ("tag", "04a1b2c3")
        chip.corrupt_next()         # the card's next answer is damaged
        chip.remove()               # two polls later: ("removed", "04a1b2c3")

    :param version: what VersionReg reads (0x92 = MFRC522 v2.0).
    :param realtime_timer: raise TimerIRq only when the chip's timer would have
        expired (1 ms with the driver's settings), as the real chip does; False raises
        it at once, which measures the driver and the bus alone.
    """

    def __init__(
        self,
        *,
        clock_pin: int = 11,
        mosi_pin: int = 10,
        miso_pin: int = 9,
        select_pin: int = 8,
        version: int = 0x92,
        realtime_timer: bool = True,
        pin_factory: MockFactory | None = None,
    ) -> None:
        if pin_factory is None:
            pin_factory = Device.pin_factory
        own_spi_buses(pin_factory)
        super().__init__(clock_pin, mosi_pin, miso_pin, select_pin, pin_factory=pin_factory)
        self._lock = threading.RLock()
        self._frame_received = threading.Condition(self._lock)
        self._version = version
        self._realtime_timer = realtime_timer
        self._card: Card | None = None
        self._corrupt = 0
        self._corrupt_skip = 0
        self._regs = bytearray(64)
        self._fifo = bytearray()
        self._timer_deadline: float | None = None
        self._first_byte = True
        self._reading = False
        self._address = 0
        #: the last frames the card received, for tests: (bytes, valid bits of the last)
        self.frames: list[tuple[bytes, int]] = []
        #: how many frames the card received in all
        self.frames_received = 0
        #: SPI transactions (chip select asserted) addressed to this chip
        self.transactions = 0
        #: transactions during which another chip on the bus was selected too
        self.bus_conflicts = 0
        self._soft_reset()

    # -- test / simulation API --------------------------------------------------------
    def present(self, uid_hex: str) -> None:
        """Put a card with this UID (8, 14 or 20 hex digits) in the field, freshly powered."""
        uid = parse_uid(uid_hex)
        with self._lock:
            self._card = Card(uid)

    def remove(self) -> None:
        """Take the card out of the field."""
        with self._lock:
            self._card = None

    def corrupt_next(self, n: int = 1, *, skip: int = 0) -> None:
        """Damage the card's next *n* answers, after *skip* good ones, as RF noise would.

        An ATQA arrives with a parity error (ErrorReg ParityErr), an anticollision
        answer with a wrong BCC, a SAK with a wrong CRC_A. In one activation the
        answers come in that order, so ``skip=1`` damages a BCC, ``skip=2`` a CRC.
        """
        with self._lock:
            self._corrupt += n
            self._corrupt_skip = skip

    def wait_frames(self, count: int, timeout: float | None = None) -> bool:
        """Wait until the card has received *count* frames in all (see :attr:`frames_received`).

        A poll with a card in the field sends it 4 frames or more (WUPA, ANTICOLLISION,
        SELECT, HLTA); tests wait on this rather than sleep.
        """
        with self._frame_received:
            return self._frame_received.wait_for(lambda: self.frames_received >= count, timeout)

    @property
    def card_state(self) -> str | None:
        """The card's ISO 14443-3 state (idle, ready, active, halt), :data:`None` if none."""
        card = self._card
        return None if card is None else card.state

    @property
    def antenna_on(self) -> bool:
        return bool(self._regs[_TX_CONTROL] & 0x03)

    # -- SPI: one byte at a time ------------------------------------------------------
    def on_start(self) -> None:
        super().on_start()
        self._first_byte = True
        self.transactions += 1
        # Two chips selected at once both drive MISO: on the real bus that garbles
        # every read. Count it, so tests can prove the driver never lets it happen.
        for other in self.clock_pin.spi_devices:
            if (
                other is not self
                and getattr(other, "select_pin", None) is not None
                and other.select_pin.state == other.select_high
            ):
                self.bus_conflicts += 1
                if self.bus_conflicts == 1:  # once: a miswired bus would flood the log
                    log.warning("simulated MFRC522 on %s selected together with %s",
                                self.select_pin.info.name, other.select_pin.info.name)
        # NOTE: MockPin records every level change; a chip polled for hours would
        # grow those lists without end. The bus pins' history is of no use to anyone.
        for pin in (self.clock_pin, self.mosi_pin, self.miso_pin, self.select_pin):
            if pin is not None:
                pin.clear_states()

    def on_bit(self) -> None:
        if self.rx_bit % 8:
            return
        byte = 0
        for bit in self.rx_buf:
            byte = (byte << 1) | bit
        self.rx_buf = []
        with self._lock:
            if self._first_byte:
                self._first_byte = False
                self._reading = bool(byte & 0x80)
                self._address = (byte >> 1) & 0x3F
                if self._reading:  # clocked out during the next byte
                    self.tx_word(self._read(self._address))
            elif self._reading:
                # Each further byte is the next address to read; 0x00 ends the burst.
                self.tx_word(self._read((byte >> 1) & 0x3F) if byte & 0x80 else 0)
            else:
                self._write(self._address, byte)  # further bytes: same register (FIFO)

    # -- registers --------------------------------------------------------------------
    def _read(self, reg: int) -> int:
        if reg == _FIFO_DATA:
            return self._fifo.pop(0) if self._fifo else 0
        if reg == _FIFO_LEVEL:
            return len(self._fifo)
        deadline = self._timer_deadline
        if reg == _COM_IRQ and deadline is not None and time.monotonic() >= deadline:
            self._timer_deadline = None
            self._regs[_COM_IRQ] |= _TIMER_IRQ
        if reg == _VERSION:
            return self._version
        # Set1/Set2 and StartSend are write-only: they read back as 0
        return self._regs[reg] & 0x7F if reg in _WRITE_ONLY_BIT7 else self._regs[reg]

    def _write(self, reg: int, value: int) -> None:
        if reg in (_COM_IRQ, _DIV_IRQ):
            # Bit 7 (Set1/Set2) says whether the ones written set or clear their bits.
            if value & 0x80:
                self._regs[reg] |= value & 0x7F
            else:
                self._regs[reg] &= ~value & 0xFF
        elif reg == _FIFO_DATA:
            if len(self._fifo) < _FIFO_SIZE:
                self._fifo.append(value)
            else:
                self._regs[_ERROR] |= _BUFFER_OVFL
        elif reg == _FIFO_LEVEL and value & 0x80:  # FlushBuffer
            self._fifo.clear()
            self._regs[_ERROR] &= ~_BUFFER_OVFL & 0xFF
        elif reg == _COMMAND:
            self._regs[_COMMAND] = value & 0x30 | (self._regs[_COMMAND] & 0x0F)
            self._command(value & 0x0F)
        elif reg == _BIT_FRAMING:
            self._regs[_BIT_FRAMING] = value & 0x7F
            if value & 0x80 and self._regs[_COMMAND] & 0x0F == _TRANSCEIVE:
                self._transceive()
        elif reg not in _READ_ONLY:  # ControlReg's TStop/TStart are ignored
            self._regs[reg] = value

    def _command(self, command: int) -> None:
        self._timer_deadline = None
        if command == _SOFT_RESET:
            self._soft_reset()
            return
        self._regs[_COMMAND] = (self._regs[_COMMAND] & 0xF0) | command
        if command == _CALC_CRC:
            preset = (0x0000, 0x6363, 0xA671, 0xFFFF)[self._regs[_MODE] & 0x03]
            low, high = crc_a(self._fifo, preset=preset)
            self._fifo.clear()
            self._regs[_CRC_RESULT_L], self._regs[_CRC_RESULT_H] = low, high
            self._regs[_DIV_IRQ] |= _CRC_IRQ
        elif command == _TRANSMIT:
            self._transceive()
        elif command == _IDLE:
            pass
        elif command in (_RECEIVE, _TRANSCEIVE):
            pass  # Transceive waits for StartSend; Receive alone is never used
        else:
            log.debug("simulated MFRC522: command 0x%x not simulated", command)

    def _soft_reset(self) -> None:
        self._regs[:] = bytes(64)
        for reg, value in _RESET_VALUES.items():
            self._regs[reg] = value
        self._fifo.clear()
        self._timer_deadline = None

    def _transceive(self) -> None:
        """Send the FIFO to the card; put its answer in the FIFO or start the timer."""
        frame = bytes(self._fifo)
        self._fifo.clear()
        last_bits = self._regs[_BIT_FRAMING] & 0x07
        transmit_only = self._regs[_COMMAND] & 0x0F == _TRANSMIT
        self._regs[_ERROR] &= _BUFFER_OVFL  # a new command clears the other error bits
        self._regs[_CONTROL] = (self._regs[_CONTROL] & 0xF8)
        self._regs[_COM_IRQ] |= _TX_IRQ
        answer = None
        # A card needs the field (TX1/TX2 on) and 100 % ASK to hear type A at all.
        if self._card is not None and self.antenna_on and self._regs[_TX_ASK] & 0x40:
            self.frames.append((frame, last_bits))
            del self.frames[:-_FRAMES_KEPT]
            self.frames_received += 1
            self._frame_received.notify_all()
            answer = self._card.receive(frame, last_bits)
        if transmit_only:
            self._regs[_COMMAND] &= 0xF0  # Transmit ends by itself
            self._regs[_COM_IRQ] |= _IDLE_IRQ
            return
        if answer is None:
            self._start_timer()
            return
        parity_error = False
        if self._corrupt and self._corrupt_skip:
            self._corrupt_skip -= 1
        elif self._corrupt:
            self._corrupt -= 1
            answer, parity_error = self._damage(answer)
        self._fifo.extend(answer)
        self._regs[_COM_IRQ] |= _RX_IRQ
        if parity_error:
            self._regs[_ERROR] |= _PARITY_ERR
            self._regs[_COM_IRQ] |= _ERR_IRQ

    @staticmethod
    def _damage(answer: bytes) -> tuple[bytes, bool]:
        if len(answer) == 2:  # ATQA: the chip sees a parity error
            return answer, True
        damaged = bytearray(answer)
        damaged[-1] ^= 0x5A  # BCC of an anticollision answer, CRC_A of a SAK
        return bytes(damaged), False

    def _start_timer(self) -> None:
        t_mode = self._regs[_T_MODE]
        if not t_mode & 0x80:
            return  # TAuto off: the timer never starts, the driver waits in vain
        if not self._realtime_timer:
            self._regs[_COM_IRQ] |= _TIMER_IRQ
            return
        prescaler = ((t_mode & 0x0F) << 8) | self._regs[_T_PRESCALER]
        reload = (self._regs[_T_RELOAD_H] << 8) | self._regs[_T_RELOAD_L]
        period = (reload + 1) * (2 * prescaler + 1) / _CLOCK_HZ
        self._timer_deadline = time.monotonic() + period


# -- the simulators props.sim.prepare gives ---------------------------------------------
class MFRC522Simulator(Simulator):
    """The simulated wiring of one :class:`~props.mfrc522.MFRC522Reader`: its chip.

    Gestures: ``present`` (value: the UID, hex), ``remove``::

        sim = prepare(config, factory)      # props.sim.prepare, before build_prop()
        reader = build_prop(sim.config, pin_factory=factory)
        sim.perform("present", "04a1b2c3")
    """

    def __init__(self, config: MFRC522Config, factory: MockFactory) -> None:
        super().__init__(config, factory)
        bus = config.spi
        self.chip = SimulatedMFRC522(
            clock_pin=bus.clock,
            mosi_pin=bus.mosi,
            miso_pin=bus.miso,
            select_pin=bus.select,
            pin_factory=factory,
        )

    def _perform(self, gesture: str, value: Any) -> None:
        if gesture == "present":
            self.chip.present(value)
        else:
            self.chip.remove()

    def close(self) -> None:
        """Detach the chip from the pins."""
        self.chip.close()


class SortingSimulator(Simulator):
    """The simulated wiring of a :class:`~props.sorting.SortingStation`: one chip per bin.

    Gestures: ``present`` (value ``{"bin": name, "uid": hex}``), ``remove`` (value
    ``{"bin": name}``)::

        sim = prepare(config, factory)
        station = build_prop(sim.config, pin_factory=factory)
        sim.perform("present", {"bin": "jaune", "uid": "04a1b2c3"})
    """

    def __init__(self, config: SortingConfig, factory: MockFactory) -> None:
        super().__init__(config, factory)
        self.chips: dict[str, SimulatedMFRC522] = {}
        try:
            for bin_name, select in config.bins.items():
                self.chips[bin_name] = SimulatedMFRC522(
                    clock_pin=config.clock,
                    mosi_pin=config.mosi,
                    miso_pin=config.miso,
                    select_pin=select,
                    pin_factory=factory,
                )
        except BaseException:
            self.close()
            raise

    def _perform(self, gesture: str, value: Any) -> None:
        chip = self.chips[value["bin"]]
        if gesture == "present":
            chip.present(value["uid"])
        else:
            chip.remove()

    def close(self) -> None:
        """Detach the chips from the pins."""
        for chip in self.chips.values():
            chip.close()
