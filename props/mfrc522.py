"""MFRC522 13.56 MHz RFID reader: the prop, on gpiozero's SPI interface.

:class:`MFRC522Reader` polls a :class:`~props.mfrc522_chip.MFRC522Chip` (the chip's
register protocol and the ISO/IEC 14443-3 type A activation) and turns what it reads into
events: a tag arrived, a tag left. The SPI interface is whatever the pin factory gives: the
Pi's hardware SPI0 under lgpio, a bit-banged software SPI under the simulation
(:mod:`props.sim`), where :class:`props.sim.mfrc522.SimulatedMFRC522` answers like the real
chip. The code under test is therefore the code that runs on the Pi.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from gpiozero import Device, DigitalOutputDevice, SPIDevice
from gpiozero.exc import DeviceClosed
from gpiozero.threads import GPIOThread

from props.base import Prop, SelfTestResult
from props.exc import RFIDError
from props.mfrc522_chip import (
    GENUINE_VERSIONS,
    KNOWN_CLONE_VERSIONS,
    NOT_WIRED,
    ChipLost,
    MFRC522Chip,
    Reg,
    open_spi,
    version_label,
)
from props.tags import TagEvents, TagMemory

if TYPE_CHECKING:
    from gpiozero import Factory

    from props.models import MFRC522Config

log = logging.getLogger(__name__)

__all__ = ["MISSES_BEFORE_REMOVAL", "REINIT_INTERVAL", "MFRC522Reader"]

#: how often a reader whose chip did not answer is tried again, in seconds
REINIT_INTERVAL = 5.0
#: consecutive empty polls before a tag counts as removed: real readers miss a read
#: now and then (a tag at the edge of the field, a player's hand moving it)
MISSES_BEFORE_REMOVAL = 2
# CRC_A test vector from ISO/IEC 14443-3 annex B: 0x00 0x00 → 0xA0 0x1E
_CRC_TEST_DATA = bytes((0x00, 0x00))
_CRC_TEST_RESULT = bytes((0xA0, 0x1E))


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
        self._chip = MFRC522Chip()  # no SPI interface yet
        self._init_tags(tags)
        self._pins = (clock_pin, mosi_pin, miso_pin, select_pin)
        self._poll_interval = poll_interval
        self._version: int | None = None
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
            self._chip.spi = self._spi
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
        chip = getattr(self, "_chip", None) or MFRC522Chip()  # a half-built reader has none
        with chip.lock:  # not in the middle of someone's self-test
            if chip.spi is not None and getattr(self, "_version", None):
                try:
                    chip.antenna_off()  # no RF left on
                except Exception:  # a dying bus must not stop close()
                    log.debug("could not switch the antenna off", exc_info=True)
            chip.spi = None
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
    def chip(self) -> MFRC522Chip:
        """The chip itself, for register-level checks (a technician's bench, the tests)."""
        return self._chip

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
            with self._chip.lock:
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
        version = self._chip.read(Reg.VERSION)
        steps.append(f"VersionReg = {version_label(version)}")
        if version in NOT_WIRED:
            return (f"no MFRC522 answers (VersionReg reads 0x{version:02x}): check 3V3 and "
                    "GND, SCK/MOSI/MISO/SDA wiring, and that SPI is enabled")
        if version not in GENUINE_VERSIONS and version not in KNOWN_CLONE_VERSIONS:
            return f"unexpected VersionReg 0x{version:02x}: not an MFRC522, or a noisy bus"
        crc = self._chip.calc_crc(_CRC_TEST_DATA)
        steps.append(f"CRC coprocessor: CRC_A(00 00) = {crc.hex()}")
        if crc != _CRC_TEST_RESULT:
            return f"CRC coprocessor gave {crc.hex()}, expected {_CRC_TEST_RESULT.hex()}"
        antenna = self._chip.read(Reg.TX_CONTROL) & 0x03
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
        with self._chip.lock:
            if self._version is None:
                if time.monotonic() < self._next_init:
                    return None
                if not self.init_chip():
                    return None
            try:
                # Retry only while a tag is believed present: an empty reader then
                # costs one timer period per poll, not two.
                uid = self._chip.read_uid(retry=self._tag is not None)
            except ChipLost as exc:
                # A loose wire mid-game: say it once, show it in the state (version
                # None), and try to set the chip up again every few seconds. The tag
                # stays as last seen: nothing was seen to leave.
                log.warning("%s: the MFRC522 stopped answering (%s); retrying every %.0f s",
                            self.name or self, exc, REINIT_INTERVAL)
                self._version = None
                self._next_init = time.monotonic() + REINIT_INTERVAL
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

    # -- the chip -----------------------------------------------------------------------
    def init_chip(self) -> bool:
        """Soft reset and configure the chip; False if nothing answers.

        A chip that did not answer is tried again by :meth:`poll` every few seconds.
        """
        chip = self._chip
        with chip.lock:
            version = chip.reset()
            if version in NOT_WIRED:
                if self._next_init == 0.0:  # warn once, not every retry
                    log.warning(
                        "no MFRC522 answers on SPI select GPIO%s (VersionReg 0x%02x): "
                        "check wiring and 3V3; retrying every %.0f s",
                        self._pins[3], version, REINIT_INTERVAL,
                    )
                self._next_init = time.monotonic() + REINIT_INTERVAL
                self._version = None
                return False
            if version not in GENUINE_VERSIONS and version not in KNOWN_CLONE_VERSIONS:
                log.warning("MFRC522 on GPIO%s reports an unknown version 0x%02x; trying anyway",
                            self._pins[3], version)
            chip.configure()
            self._version = version
            self._next_init = 0.0
        log.info("MFRC522 on select GPIO%s ready: %s", self._pins[3], version_label(version))
        self._state_changed()
        return True
