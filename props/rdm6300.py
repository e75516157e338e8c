"""RDM6300 125 kHz RFID reader (EM4100 tags) on a serial port.

The module sends, at 9600 baud 8N1, one 14-byte frame per read and keeps repeating it
while a tag is in its field::

    0x02 | 10 ASCII hex digits: version (2) + tag (8) | 2 ASCII hex: checksum | 0x03

The checksum is the XOR of the five data bytes. There is no "tag gone" frame: a tag has
left once no frame came for ``removal_timeout`` seconds.
"""

from __future__ import annotations

import logging
import string
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

import serial
from gpiozero import Device
from gpiozero.threads import GPIOThread

from props.base import Prop, SelfTestResult
from props.exc import RFIDError
from props.tags import TagEvents, TagMemory

if TYPE_CHECKING:
    from gpiozero import Factory

    from props.models import RDM6300Config

log = logging.getLogger(__name__)

__all__ = ["BAUDRATE", "EM4100FrameParser", "RDM6300Reader", "em4100_frame"]

BAUDRATE = 9600
STX = 0x02
ETX = 0x03
_BODY_LENGTH = 12  # 10 data + 2 checksum hex digits
_HEX_DIGITS = frozenset(string.hexdigits.encode())
#: longest a read may block: bounds how late a removal or a close() is noticed
_READ_TIMEOUT = 0.05


def em4100_frame(tag_id: str) -> bytes:
    """The RDM6300 frame for a 10-hex-digit EM4100 id (version byte + 4-byte tag).

        >>> em4100_frame("1a00c3f2b7")
        b'\\x021A00C3F2B79C\\x03'
    """
    data = bytes.fromhex(tag_id)
    if len(data) != 5:
        msg = f"an EM4100 id has 10 hex digits, got {tag_id!r}"
        raise ValueError(msg)
    checksum = data[0] ^ data[1] ^ data[2] ^ data[3] ^ data[4]
    return bytes((STX,)) + f"{tag_id.upper()}{checksum:02X}".encode() + bytes((ETX,))


class EM4100FrameParser:
    """Turns the serial byte stream into tag ids, and corrupt frames into errors.

    :meth:`feed` yields, for each complete frame, the tag id (10 lowercase hex digits)
    or an :class:`~props.exc.RFIDError` saying what was wrong. A run of stray bytes
    between frames is one error, not one per byte.

        >>> parser = EM4100FrameParser()
        >>> list(parser.feed(b"\\x021A00C3F2B79C\\x03"))
        ['1a00c3f2b7']
    """

    def __init__(self) -> None:
        self._body = bytearray()
        self._in_frame = False
        self._in_garbage = False

    def feed(self, data: bytes) -> Iterator[str | RFIDError]:
        for byte in data:
            if byte == STX:
                if self._in_frame:
                    yield RFIDError(f"frame cut short: {bytes(self._body)!r}")
                self._in_frame, self._in_garbage = True, False
                self._body.clear()
            elif not self._in_frame:
                if not self._in_garbage:
                    self._in_garbage = True
                    yield RFIDError(f"stray byte 0x{byte:02x} between frames")
            elif byte == ETX:
                self._in_frame = False
                yield self._decode(bytes(self._body))
            else:
                self._body.append(byte)
                if len(self._body) > _BODY_LENGTH:
                    self._in_frame, self._in_garbage = False, True
                    yield RFIDError(f"frame too long: {bytes(self._body)!r}")

    @staticmethod
    def _decode(body: bytes) -> str | RFIDError:
        if len(body) != _BODY_LENGTH or not _HEX_DIGITS.issuperset(body):
            return RFIDError(f"malformed frame body {body!r}")
        data = bytes.fromhex(body[:10].decode())
        checksum = int(body[10:], 16)
        if data[0] ^ data[1] ^ data[2] ^ data[3] ^ data[4] != checksum:
            return RFIDError(f"bad checksum in frame {body!r}")
        return body[:10].decode().lower()


class RDM6300Reader(TagMemory, Prop, Device):
    """An RDM6300 125 kHz reader for EM4100 tags, on a serial port.

    A background thread reads the port; one ``tag`` event (value: the 10-hex-digit id,
    lowercase) per tag presented however often the module repeats it, and one ``removed``
    event (value: the id) once no frame came for *removal_timeout* seconds. Corrupt frames
    and line noise are dropped and counted in :attr:`errors`. If the port goes away (a
    USB adapter unplugged), the thread logs it and reopens the port every
    *retry_interval* seconds; the prop never dies of it.

    Wire the module's TX to the Pi's RXD (GPIO15, pin 10) through a 5 V → 3.3 V divider::

        from props.rdm6300 import RDM6300Reader

        reader = RDM6300Reader(port="/dev/serial0", tags={"1a00c3f2b7": "badge gardien"})
        reader.when_event = lambda kind, tag: print(kind, tag)   # tag 1a00c3f2b7
        print(reader.state)  # {'tag': '1a00c3f2b7', 'tag_name': 'badge gardien', ...}

    :param port: the serial device (``/dev/serial0`` is the Pi's primary UART).
    :param removal_timeout: seconds without a frame before the tag counts as removed.
    :param tags: known tags, id → name, reported as ``tag_name`` in the state.
    :param retry_interval: seconds between attempts to reopen a missing port.
    :param pin_factory: unused by the serial port; kept for the gpiozero contract.
    """

    kind: ClassVar[str] = "rdm6300"
    actions: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        *,
        port: str = "/dev/serial0",
        removal_timeout: float = 0.5,
        tags: Mapping[str, str] | None = None,
        retry_interval: float = 1.0,
        pin_factory: Factory | None = None,
    ) -> None:
        self._closed = True
        self._serial: serial.Serial | None = None
        self._thread: GPIOThread | None = None
        if removal_timeout <= 0 or retry_interval <= 0:
            msg = "removal_timeout and retry_interval must be positive"
            raise ValueError(msg)
        self._port = port
        self._removal_timeout = removal_timeout
        self._retry_interval = retry_interval
        self._init_tags(tags)
        self._parser = EM4100FrameParser()
        self._last_frame = 0.0
        self._errors = 0
        self._connected = False
        self._port_warned = False
        # NOTE: a serial device needs no pins: do not make gpiozero load a default pin
        # factory (Device.__init__ would) on a machine that has none.
        self.pin_factory = pin_factory
        super(Device, self).__init__()
        self._closed = False
        try:
            # One attempt now, so the state is right from the start; the thread retries.
            self._open_port()
            self._thread = GPIOThread(self._run, name=f"rdm6300-{port}")
            self._thread.start()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_config(cls, config: RDM6300Config, *, pin_factory: Factory | None = None) -> Self:
        """Build the reader a game's YAML describes (see :class:`props.models.RDM6300Config`)."""
        return cls(
            port=config.port,
            removal_timeout=config.removal_timeout,
            tags=config.tags,
            pin_factory=pin_factory,
        )

    # -- gpiozero device contract -----------------------------------------------------
    def close(self) -> None:
        """Stop the reader thread and close the port; harmless twice."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        thread, self._thread = self._thread, None
        port = self._serial
        if thread is not None:
            thread.stopping.set()
            if port is not None:
                try:
                    port.cancel_read()  # wake a blocked read() at once
                except Exception:
                    log.debug("cancel_read failed", exc_info=True)
            if thread is not threading.current_thread():
                thread.join(5)
        self._close_port()
        self._wake_waiters()
        super().close()

    @property
    def closed(self) -> bool:
        return getattr(self, "_closed", True)

    @property
    def connected(self) -> bool:
        """True while the serial port is open."""
        return self._connected

    @property
    def errors(self) -> int:
        """Corrupt frames and noise dropped since start."""
        return self._errors

    @property
    def port(self) -> str:
        return self._port

    def __repr__(self) -> str:
        if self.closed:
            return f"<props.RDM6300Reader {self.name!r} closed>"
        return (
            f"<props.RDM6300Reader {self.name!r} on {self._port} connected={self._connected} "
            f"tag={self._tag!r} errors={self._errors}>"
        )

    # -- prop interface ---------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        with self._tag_lock:
            return {
                **self._tag_state(),
                "connected": self._connected,
                "errors": self._errors,
            }

    def self_test(self, *, timeout: float = 10.0) -> SelfTestResult:
        """Check the serial port is open. The module itself says nothing without a tag."""
        if self.closed:
            return SelfTestResult(passed=False, message="reader closed")
        if not self._connected:
            self._open_port()  # the technician may just have plugged it in
        steps = (
            f"serial port {self._port} {'open' if self._connected else 'NOT open'}",
            f"tag in the field: {self._tag or 'none'}",
            f"corrupt frames so far: {self._errors}",
        )
        if not self._connected:
            return SelfTestResult(
                passed=False,
                steps=steps,
                message=f"cannot open {self._port}: is the UART enabled (enable_uart=1) "
                "and the serial console off?",
            )
        return SelfTestResult(
            passed=True, steps=steps, message="port open; present a tag to check the module"
        )

    # -- the reader thread ------------------------------------------------------------
    def _run(self) -> None:
        thread = threading.current_thread()
        stopping = thread.stopping if isinstance(thread, GPIOThread) else threading.Event()
        next_attempt = time.monotonic() + self._retry_interval
        while not stopping.is_set():
            port = self._serial
            if port is None:
                self._check_removal()  # a tag cannot stay "present" on a dead port
                now = time.monotonic()
                if now >= next_attempt:
                    if self._open_port():
                        continue
                    next_attempt = now + self._retry_interval
                stopping.wait(min(self._retry_interval, self._removal_timeout / 2))
                continue
            try:
                data = port.read(port.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial's fd vanished under a concurrent close
                if not stopping.is_set():
                    log.warning("%s: lost serial port %s: %s", self.name or self, self._port, exc)
                    self._close_port()
                continue
            if data:
                self._feed(data)
            self._check_removal()

    def _open_port(self) -> bool:
        try:
            port = serial.Serial(
                self._port,
                baudrate=BAUDRATE,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE,
                timeout=min(_READ_TIMEOUT, self._removal_timeout / 4),
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            if not self._port_warned:  # once per outage, not every retry
                self._port_warned = True
                log.warning("%s: cannot open %s (%s); retrying every %s s",
                            self.name or self, self._port, exc, self._retry_interval)
            return False
        port.reset_input_buffer()  # drop what piled up while nobody listened
        if self.closed:  # close() ran meanwhile
            port.close()
            return False
        self._serial = port
        self._parser = EM4100FrameParser()
        self._port_warned = False
        log.info("%s: reading %s", self.name or self, self._port)
        self._set_connected(True)
        return True

    def _close_port(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except Exception:
                log.debug("closing %s failed", self._port, exc_info=True)
        self._set_connected(False)

    def _set_connected(self, connected: bool) -> None:
        with self._tag_lock:
            changed = connected != self._connected
            self._connected = connected
        if changed:
            self._state_changed()

    def _feed(self, data: bytes) -> None:
        for item in self._parser.feed(data):
            if isinstance(item, RFIDError):
                log.debug("%s: dropped: %s", self.name or self, item)
                with self._tag_lock:
                    self._errors += 1
                self._state_changed()
            else:
                self._seen(item)

    def _seen(self, tag: str) -> None:
        events: TagEvents = []
        with self._tag_lock:
            self._last_frame = time.monotonic()
            self._present(tag, events)
        self._emit_all(events)

    def _check_removal(self) -> None:
        with self._tag_lock:
            tag = self._tag
            if tag is None or time.monotonic() - self._last_frame < self._removal_timeout:
                return
            self._tag = None
        self._emit_all([("removed", tag)])

