"""A simulated RDM6300 module at the far end of a pseudo-terminal.

The reader under test (:class:`props.rdm6300.RDM6300Reader`) opens the pty's slave side
with pyserial exactly as it opens ``/dev/serial0`` on the Pi; the simulated module writes
EM4100 frames to the master side, repeating them while a tag is "in the field", as the
real module does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import tty
from typing import TYPE_CHECKING, Any

from props.rdm6300 import em4100_frame
from props.sim.base import Simulator

if TYPE_CHECKING:
    from gpiozero.pins.mock import MockFactory

    from props.models import RDM6300Config

log = logging.getLogger(__name__)

__all__ = ["RDM6300Simulator", "SimulatedRDM6300"]

#: seconds between two frames of a tag held in the field (the module repeats its read)
REPEAT_INTERVAL = 0.05


class SimulatedRDM6300:
    """An RDM6300 on a pseudo-terminal: :attr:`port` is what the reader opens.

        from props.rdm6300 import RDM6300Reader
        from props.sim.rdm6300 import SimulatedRDM6300

        module = SimulatedRDM6300()
        reader = RDM6300Reader(port=module.port)
        module.present("1a00c3f2b7")   # frames every 50 ms: one ("tag", "1a00c3f2b7")
        module.remove()                # frames stop: ("removed", ...) after the timeout
        module.send_raw(b"noise")      # anything, e.g. a frame with a bad checksum

    :param repeat_interval: seconds between two frames while a tag is present.
    """

    def __init__(self, *, repeat_interval: float = REPEAT_INTERVAL) -> None:
        self._repeat_interval = repeat_interval
        self._master, self._slave = os.openpty()
        try:
            # NOTE: raw, so the line discipline neither echoes the frames back nor takes
            # ETX (0x03, ^C) for an interrupt before the reader has opened the port.
            tty.setraw(self._slave)
            # A frame nobody reads is dropped, as on a real UART, instead of blocking us.
            os.set_blocking(self._master, False)
            self.port = os.ttyname(self._slave)
        except BaseException:
            self._close_fds()
            raise
        self._lock = threading.Lock()
        self._sent = threading.Condition(self._lock)
        self._tag: str | None = None
        self._wake = threading.Event()
        self._closed = False
        #: writes to the line so far (repeated frames and raw data)
        self.writes = 0
        self._thread = threading.Thread(target=self._run, name="sim-rdm6300", daemon=True)
        self._thread.start()

    def present(self, tag_id: str) -> None:
        """Hold an EM4100 tag (10 hex digits: version + id) in the field."""
        em4100_frame(tag_id)  # validates
        with self._lock:
            self._tag = tag_id.lower()
        self._wake.set()

    def remove(self) -> None:
        """Take the tag out of the field: the frames stop."""
        with self._lock:
            self._tag = None
        self._wake.set()

    def send_raw(self, data: bytes) -> None:
        """Write *data* on the line as is (noise, a damaged frame)."""
        self._write(data)

    @property
    def tag(self) -> str | None:
        return self._tag

    def wait_writes(self, count: int, timeout: float | None = None) -> bool:
        """Wait until :attr:`writes` reaches *count*; False on timeout."""
        with self._sent:
            return self._sent.wait_for(lambda: self.writes >= count or self._closed, timeout)

    def close(self) -> None:
        """Unplug the module: the port goes away. Harmless twice."""
        if self._closed:
            return
        with self._sent:
            self._closed = True
            self._sent.notify_all()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(2)
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        while not self._closed:
            tag = self._tag
            if tag is not None:
                self._write(em4100_frame(tag))
                self._wake.wait(self._repeat_interval)
            else:
                self._wake.wait()
            self._wake.clear()

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except BlockingIOError:
            log.debug("simulated RDM6300: nobody reads the port, frame dropped")
            return
        except OSError:
            if not self._closed:
                log.debug("simulated RDM6300: write failed", exc_info=True)
            return
        with self._sent:
            self.writes += 1
            self._sent.notify_all()


class RDM6300Simulator(Simulator):
    """The simulated module of one :class:`~props.rdm6300.RDM6300Reader`.

    Its :attr:`config` is the prop's config with ``port`` set to the pseudo-terminal.
    Gestures: ``present`` (value: 10 hex digits), ``remove``::

        sim = prepare(config, factory)      # props.sim.prepare
        reader = build_prop(sim.config, pin_factory=factory)
        sim.perform("present", "1a00c3f2b7")
    """

    def __init__(self, config: RDM6300Config, factory: MockFactory) -> None:
        self.module = SimulatedRDM6300()
        super().__init__(config.model_copy(update={"port": self.module.port}), factory)

    def _perform(self, gesture: str, value: Any) -> None:
        if gesture == "present":
            self.module.present(value)
        else:
            self.module.remove()

    def close(self) -> None:
        """Unplug the simulated module."""
        self.module.close()
