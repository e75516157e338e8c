"""What every simulator has: the prop's config, its factory, gestures and pin levels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from props.exc import PropConfigError
from props.sim.gestures import check_gesture, gestures_of

if TYPE_CHECKING:
    from gpiozero.pins.mock import MockFactory, MockPin

    from props.models import PropConfig


class Simulator:
    """The simulated wiring of one prop; this base one has no gesture.

    :attr:`config` is the config to build the prop with (a subclass may adjust it, e.g.
    the serial port of a simulated RDM6300); :meth:`pin_levels` reads every pin the prop
    uses, for the technician page.
    """

    def __init__(self, config: PropConfig, factory: MockFactory) -> None:
        self.config = config
        self.factory = factory

    @property
    def gestures(self) -> frozenset[str]:
        """The names of the gestures this prop accepts (:data:`GESTURES`)."""
        return frozenset(g.name for g in gestures_of(self.config))

    def perform(self, gesture: str, value: Any = None) -> None:
        """Do *gesture* with the player's hand; raises UnknownGesture / BadActionParams."""
        self._perform(gesture, check_gesture(self.config, gesture, value))

    def pin_levels(self) -> dict[int, bool]:
        """Current level (True = high) of each pin of this prop."""
        return {use.pin: bool(self.factory.pin(use.pin).state)
                for use in self.config.pin_uses()}

    def close(self) -> None:
        """Release what the simulation holds (a base simulator holds nothing)."""

    def _perform(self, gesture: str, value: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config.id!r} levels={self.pin_levels()}>"


def special_pin(factory: MockFactory, number: int, pin_class: type[MockPin]) -> Any:
    """*factory*'s pin *number* as a *pin_class*; it must not exist as another kind yet."""
    pin = factory.pin(number, pin_class=pin_class)
    if not isinstance(pin, pin_class):
        msg = (f"GPIO{number} already exists as a {type(pin).__name__} on this factory: "
               "call props.sim.prepare() before building the prop")
        raise PropConfigError(msg)
    return pin
