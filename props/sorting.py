"""Sorting station: one MFRC522 reader under each bin, polled in turn.

The players sort tagged rubbish (a bottle, a newspaper, a battery...) into the bins of
the bin room; each bin hides an MFRC522 reader. The readers share the SPI clock, MOSI
and MISO lines and the RST line; each has its own chip select.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

from gpiozero import CompositeDevice, DigitalOutputDevice
from gpiozero.exc import DeviceClosed, GPIOPinInUse
from gpiozero.threads import GPIOThread

from props.base import Prop, SelfTestResult
from props.exc import PropConfigError
from props.mfrc522 import MFRC522Reader

if TYPE_CHECKING:
    from gpiozero import Device, Factory

    from props.models import SortingConfig

log = logging.getLogger(__name__)


class SortingStation(Prop, CompositeDevice):
    """Several MFRC522 readers, one per bin, polled one after the other.

    Emits ``placed`` (value ``{"bin": name, "uid": hex}``) when a tag arrives in a bin
    and ``removed`` (same value) when it leaves. A tag moved from one bin to another
    gives ``placed`` in the new bin and ``removed`` from the old one, in whatever order
    the polls see them (a removal waits for two empty polls).

    The children are the :class:`~props.mfrc522.MFRC522Reader` of each bin (see
    :attr:`readers`) and, if *reset_pin* is given, the shared RST line::

        from props.sorting import SortingStation

        station = SortingStation(bins={"jaune": 8, "verte": 7, "marron": 5},
                                 tags={"04a1b2c3": "bouteille plastique"})
        station.when_event = lambda kind, value: print(kind, value)
        # placed {'bin': 'jaune', 'uid': '04a1b2c3'}
        station.state["bins"]   # {'jaune': '04a1b2c3', 'verte': None, 'marron': None}

    :param bins: bin name → BCM number of that reader's chip select.
    :param clock_pin, mosi_pin, miso_pin: the shared SPI lines (SPI0's by default).
    :param reset_pin: the readers' shared RST, held high; :data:`None` if tied to 3V3.
    :param poll_interval: seconds between two rounds over all the bins.
    :param tags: known tags, UID hex → name, reported in ``state["names"]``.
    """

    kind: ClassVar[str] = "sorting"
    actions: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        *,
        bins: Mapping[str, int],
        clock_pin: int = 11,
        mosi_pin: int = 10,
        miso_pin: int = 9,
        reset_pin: int | None = 25,
        poll_interval: float = 0.1,
        tags: Mapping[str, str] | None = None,
        pin_factory: Factory | None = None,
    ) -> None:
        self._readers: dict[str, MFRC522Reader] = {}
        self._poll_thread: GPIOThread | None = None
        self._lock = threading.Lock()
        self._placed = threading.Condition(self._lock)
        self._placements = 0
        self._last_placed: str | None = None
        if not bins:
            msg = "a sorting station needs at least one bin"
            raise PropConfigError(msg)
        if len(set(bins.values())) != len(bins):
            msg = f"two bins share a chip select pin: {dict(bins)}"
            raise PropConfigError(msg)
        if poll_interval <= 0:
            msg = f"poll_interval must be positive, got {poll_interval!r}"
            raise ValueError(msg)
        self._poll_interval = poll_interval
        reset_line: DigitalOutputDevice | None = None
        readers: dict[str, MFRC522Reader] = {}
        try:
            if reset_pin is not None:
                # NOTE: first, so every chip is out of hard power-down before its init.
                reset_line = DigitalOutputDevice(
                    reset_pin, active_high=True, initial_value=True, pin_factory=pin_factory
                )
            for bin_name, select_pin in bins.items():
                readers[bin_name] = MFRC522Reader(
                    clock_pin=clock_pin,
                    mosi_pin=mosi_pin,
                    miso_pin=miso_pin,
                    select_pin=select_pin,
                    reset_pin=None,  # the station holds the shared RST line
                    poll_interval=None,  # the station polls the readers in turn
                    tags=tags,
                    # NOTE: until every reader has claimed its chip select (driven high),
                    # the others float low and would answer as well: talk to no chip yet.
                    defer_init=True,
                    pin_factory=pin_factory,
                )
            # Readers first: closing them switches their antennas off before RST goes.
            children: list[Device] = [*readers.values()]
            if reset_line is not None:
                children.append(reset_line)
            super().__init__(*children, pin_factory=pin_factory)
        except GPIOPinInUse as exc:
            _close_all(readers.values(), reset_line)
            msg = (
                f"sorting station pins clash: {exc}. Hardware SPI0 serves only CE0 (GPIO8) "
                "and CE1 (GPIO7); for more bins turn SPI off (dtparam=spi=off) so every "
                "reader uses software SPI, or move the bus to other pins"
            )
            raise PropConfigError(msg) from exc
        except BaseException:
            _close_all(readers.values(), reset_line)
            raise
        self._readers = readers
        try:
            for bin_name, reader in readers.items():
                reader.name = f"bin {bin_name}"
                reader.init_chip()
                reader.when_event = functools.partial(self._reader_event, bin_name)
            self._poll_thread = GPIOThread(self._run, name="sorting-station")
            self._poll_thread.start()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_config(cls, config: SortingConfig, *, pin_factory: Factory | None = None) -> Self:
        """Build the station a game's YAML describes (see :class:`props.models.SortingConfig`)."""
        return cls(
            bins=config.bins,
            clock_pin=config.clock,
            mosi_pin=config.mosi,
            miso_pin=config.miso,
            reset_pin=config.reset_pin,
            poll_interval=config.poll_interval,
            tags=config.tags,
            pin_factory=pin_factory,
        )

    # -- the room's words -------------------------------------------------------------
    @property
    def readers(self) -> Mapping[str, MFRC522Reader]:
        """The reader of each bin."""
        return dict(self._readers)

    @property
    def bins(self) -> dict[str, str | None]:
        """The UID in each bin, or :data:`None` for an empty one."""
        return {name: reader.value for name, reader in self._readers.items()}

    @property
    def value(self) -> dict[str, str | None]:  # type: ignore[override]
        """Same as :attr:`bins`."""
        return self.bins

    @property
    def is_active(self) -> bool:
        """True if any bin holds a tag."""
        return any(self.bins.values())

    @property
    def errors(self) -> int:
        """Corrupt frames dropped by all the readers since start."""
        return sum(reader.errors for reader in self._readers.values())

    # -- gpiozero device contract -----------------------------------------------------
    def close(self) -> None:
        """Stop polling, then close every reader and the RST line; harmless twice."""
        thread = getattr(self, "_poll_thread", None)
        if thread is not None:
            self._poll_thread = None
            thread.stopping.set()
            if thread is not threading.current_thread():
                thread.join(5)
        super().close()
        cond = getattr(self, "_placed", None)
        if cond is not None:
            with cond:
                cond.notify_all()

    @property
    def closed(self) -> bool:
        readers = getattr(self, "_readers", None)
        return not readers or all(reader.closed for reader in readers.values())

    def __repr__(self) -> str:
        if self.closed:
            return f"<props.SortingStation {self.name!r} closed>"
        return f"<props.SortingStation {self.name!r} bins={self.bins} errors={self.errors}>"

    # -- prop interface ---------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        bins = self.bins
        return {
            "bins": bins,
            "names": {
                name: self._readers[name].tag_name(uid) for name, uid in bins.items()
            },
        }

    def reset(self) -> None:
        """Forget every bin's tag: tags still in the bins are reported placed again."""
        for reader in self._readers.values():
            reader.reset()
        self._state_changed()

    def wait_for_tag(self, timeout: float | None = None) -> str | None:
        """The UID of the next tag placed in any bin (:data:`None` on timeout): for enrolling."""
        with self._placed:
            before = self._placements
            self._placed.wait_for(lambda: self._placements != before or self.closed, timeout)
            return self._last_placed if self._placements != before else None

    def self_test(self, *, timeout: float = 10.0) -> SelfTestResult:
        """Self-test every bin's reader; passes only if all pass."""
        steps: list[str] = []
        failed: list[str] = []
        for name, reader in self._readers.items():
            result = reader.self_test(timeout=timeout)
            steps += [f"{name}: {step}" for step in result.steps]
            if not result.passed:
                failed.append(f"{name}: {result.message}")
        if failed:
            return SelfTestResult(passed=False, steps=tuple(steps), message="; ".join(failed))
        return SelfTestResult(passed=True, steps=tuple(steps),
                              message=f"{len(self._readers)} readers OK")

    # -- polling ----------------------------------------------------------------------
    def _run(self) -> None:
        thread = threading.current_thread()
        stopping = thread.stopping if isinstance(thread, GPIOThread) else threading.Event()
        while not stopping.is_set():
            for name, reader in self._readers.items():
                if stopping.is_set():
                    return
                try:
                    reader.poll()
                except DeviceClosed:
                    return
                except Exception:
                    # NOTE: one broken bin must not stop the others.
                    log.exception("polling bin %s of %s failed", name, self.name or self)
            stopping.wait(self._poll_interval)

    def _reader_event(self, bin_name: str, event_type: str, uid: str) -> None:
        if event_type == "tag":
            with self._placed:
                self._placements += 1
                self._last_placed = uid
                self._placed.notify_all()
            log.info("%s: %s placed in %s", self.name or self, uid, bin_name)
            self._emit("placed", {"bin": bin_name, "uid": uid})
        elif event_type == "removed":
            log.info("%s: %s removed from %s", self.name or self, uid, bin_name)
            self._emit("removed", {"bin": bin_name, "uid": uid})
        else:  # pragma: no cover - a reader emits only these two
            return
        self._state_changed()


def _close_all(readers: Iterable[MFRC522Reader], reset_line: Device | None) -> None:
    for reader in readers:
        reader.close()
    if reset_line is not None:
        reset_line.close()
