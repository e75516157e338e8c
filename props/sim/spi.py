"""Software SPI buses that belong to one MockFactory, for the simulated MFRC522 chips.

gpiozero 2.0.1's :class:`~gpiozero.pins.spi.SPISoftwareBus` is shared by pin numbers only
and builds itself on the *default* pin factory, so two MockFactories in one process
(several simulated nodes, each with a reader on SPI0) would clock each other's pins, and a
process without a default factory cannot build one at all. :func:`own_spi_buses` gives a
factory buses keyed by (factory, pins) instead; the driver still just asks the factory for
its SPI interface (``pin_factory.spi(...)``), as it does on a Pi.
"""

from __future__ import annotations

import threading
from typing import Any

from gpiozero import Device, InputDevice, OutputDevice
from gpiozero.mixins import SharedMixin
from gpiozero.pins.mock import MockFactory
from gpiozero.pins.spi import SPISoftware, SPISoftwareBus

__all__ = ["FactorySPI", "FactorySPIBus", "own_spi_buses"]


class FactorySPIBus(SPISoftwareBus):
    """gpiozero's software SPI bus, shared per (factory, pins) instead of per pins."""

    def __init__(self, clock_pin: int, mosi_pin: int | None, miso_pin: int | None, *,
                 pin_factory: MockFactory) -> None:
        # Mirrors SPISoftwareBus.__init__, handing the factory to Device.__init__.
        self.lock = None
        self.clock = None
        self.mosi = None
        self.miso = None
        Device.__init__(self, pin_factory=pin_factory)
        self.lock = threading.RLock()
        try:
            self.clock = OutputDevice(clock_pin, active_high=True, pin_factory=pin_factory)
            if mosi_pin is not None:
                self.mosi = OutputDevice(mosi_pin, pin_factory=pin_factory)
            if miso_pin is not None:
                self.miso = InputDevice(miso_pin, pin_factory=pin_factory)
        except BaseException:
            self.close()
            raise

    @classmethod
    def _shared_key(cls, clock_pin: int, mosi_pin: int | None, miso_pin: int | None, *,
                    pin_factory: MockFactory | None = None) -> tuple[Any, ...]:
        return (cls.__qualname__, pin_factory, clock_pin, mosi_pin, miso_pin)


class FactorySPI(SPISoftware):
    """:class:`~gpiozero.pins.spi.SPISoftware` on a :class:`FactorySPIBus`; otherwise unchanged."""

    def __init__(self, clock_pin: int, mosi_pin: int | None, miso_pin: int | None,
                 select_pin: int, *, pin_factory: MockFactory) -> None:
        self._bus = None
        self._select = None
        super(SPISoftware, self).__init__(pin_factory=pin_factory)
        try:
            self._clock_phase = False
            self._lsb_first = False
            self._bits_per_word = 8
            self._bus = FactorySPIBus(clock_pin, mosi_pin, miso_pin, pin_factory=pin_factory)
            self._select = OutputDevice(select_pin, active_high=False, pin_factory=pin_factory)
        except BaseException:
            self.close()
            raise


class FactorySPIShared(SharedMixin, FactorySPI):
    """:class:`FactorySPI` for ``spi(shared=True)``: one per (factory, clock, select)."""

    @classmethod
    def _shared_key(cls, clock_pin: int, mosi_pin: int | None, miso_pin: int | None,
                    select_pin: int, *, pin_factory: MockFactory) -> tuple[Any, ...]:
        return (cls.__qualname__, pin_factory, clock_pin, select_pin)


def _spi_class(shared: bool, hardware: bool) -> type[FactorySPI]:
    # A mock has no kernel SPI driver: software, whichever pins, as MockFactory does.
    return FactorySPIShared if shared else FactorySPI


def own_spi_buses(factory: MockFactory) -> None:
    """Make *factory*'s ``spi()`` build :class:`FactorySPI` interfaces; harmless twice.

    Only this factory changes (its hook ``_get_spi_class``, which gpiozero's ``spi()``
    asks for the class to build): the pin checks, defaults and errors of ``spi()`` stay.
    """
    if not isinstance(factory, MockFactory):
        msg = f"simulated SPI needs a gpiozero MockFactory, not {type(factory).__name__}"
        raise TypeError(msg)
    factory._get_spi_class = _spi_class  # type: ignore[method-assign]
