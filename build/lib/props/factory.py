"""Build a prop device from its config model."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpiozero import Factory

    from props.base import Prop
    from props.models import PropConfig


def build_prop(config: PropConfig, *, pin_factory: Factory | None = None) -> Prop:
    """Return the gpiozero device for *config*, built on *pin_factory*.

    Imports are lazy so that a node only loads the drivers its room uses.
    """
    kind = config.kind
    if kind == "keypad":
        from props.keypad import Keypad as cls
    elif kind == "maglock":
        from props.maglock import Maglock as cls
    elif kind in ("button", "reed_switch", "pressure_mat"):
        from props.contact import Contact as cls
    elif kind in ("led", "relay", "buzzer"):
        from props.outputs import Output as cls
    elif kind == "mfrc522":
        from props.mfrc522 import MFRC522Reader as cls
    elif kind == "rdm6300":
        from props.rdm6300 import RDM6300Reader as cls
    elif kind == "sorting":
        from props.sorting import SortingStation as cls
    else:  # pragma: no cover - the discriminated union makes this unreachable
        msg = f"unknown prop kind {kind!r}"
        raise ValueError(msg)
    prop = cls.from_config(config, pin_factory=pin_factory)
    prop.name = config.id
    return prop
