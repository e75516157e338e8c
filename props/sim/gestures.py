"""The gestures a simulated hand can make on each kind of prop, and their values.

:data:`GESTURES` is the one list the node and the controller both read: the controller
refuses an unknown gesture or a bad value (:func:`check_gesture`) before it publishes
anything, the node's simulator performs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from props.exc import BadActionParams, UnknownAction
from props.sim.iso14443 import parse_uid

if TYPE_CHECKING:
    from props.models import ButtonConfig, KeypadConfig, PropConfig

#: the longest a simulated hand holds a contact down
MAX_HOLD_S = 60.0


class UnknownGesture(UnknownAction):
    """A gesture the prop does not have; :attr:`known` lists those it has."""

    def __init__(self, message: str, known: Sequence[GestureSpec]) -> None:
        super().__init__(message)
        self.known = tuple(known)


@dataclass(frozen=True, slots=True)
class GestureSpec:
    """A gesture a simulated hand can make on a kind of prop.

    *french* names it for the game master (« appuyer »); *value* checks the gesture's value
    for one prop and returns it as the simulator uses it, or raises BadActionParams.
    """

    name: str
    french: str
    value: Callable[[Any, Any], Any]

    def public(self) -> dict[str, str]:
        return {"gesture": self.name, "label": self.french}


def _none(_config: Any, value: Any) -> None:
    if value is not None:
        msg = f"ce geste ne prend pas de valeur (reçu {value!r})"
        raise BadActionParams(msg)


def keypad_key(config: KeypadConfig, value: Any) -> str:
    from props.keypad import KEYMAPS

    keys = "".join(KEYMAPS[config.layout])
    if not isinstance(value, str) or len(value) != 1 or value not in keys:
        msg = f"une touche de ce clavier ({keys}) est attendue, pas {value!r}"
        raise BadActionParams(msg)
    return value


def keypad_keys(config: KeypadConfig, value: Any) -> str:
    if not isinstance(value, str) or not value:
        msg = f"les touches à taper sont attendues (« 0412# »), pas {value!r}"
        raise BadActionParams(msg)
    for key in value:
        keypad_key(config, key)
    return value


def _seconds(config: ButtonConfig, value: Any) -> float:
    if value is None:
        return config.hold_time + 0.2   # just long enough for ``held``
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_HOLD_S:
        msg = f"une durée en secondes entre 0 et {MAX_HOLD_S:g} est attendue, pas {value!r}"
        raise BadActionParams(msg)
    return float(value)


def _mifare_uid(_config: Any, value: Any) -> str:
    try:
        return parse_uid(value).hex()
    except (TypeError, ValueError):
        msg = f"l'UID d'un badge en hexadécimal (8, 14 ou 20 chiffres) est attendu, pas {value!r}"
        raise BadActionParams(msg) from None


def _em4100_id(_config: Any, value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{10}", value):
        msg = f"l'identifiant EM4100 d'un badge (10 chiffres hexadécimaux) est attendu, pas {value!r}"
        raise BadActionParams(msg)
    return value.lower()


def _bin(config: Any, value: Any) -> dict[str, str]:
    bins = sorted(config.bins)
    if not isinstance(value, Mapping) or value.get("bin") not in bins:
        msg = f"un bac parmi {', '.join(bins)} est attendu ({{\"bin\": …}}), pas {value!r}"
        raise BadActionParams(msg)
    return {"bin": value["bin"]}


def _bin_and_uid(config: Any, value: Any) -> dict[str, str]:
    where = _bin(config, value)
    return {**where, "uid": _mifare_uid(config, value.get("uid"))}


_CONTACT = (GestureSpec("hold", "maintenir (secondes, puis relâcher)", _seconds),)
_TAGS = (GestureSpec("present", "poser un badge (UID)", _mifare_uid),
         GestureSpec("remove", "retirer le badge", _none))

#: every kind's gestures, in the order the game master reads them
GESTURES: dict[str, tuple[GestureSpec, ...]] = {
    "keypad": (GestureSpec("press", "appuyer sur une touche", keypad_key),
               GestureSpec("type", "taper des touches", keypad_keys),
               GestureSpec("down", "enfoncer une touche sans la relâcher", keypad_key),
               GestureSpec("up", "relâcher une touche", keypad_key)),
    "maglock": (GestureSpec("open_door", "ouvrir la porte", _none),
                GestureSpec("close_door", "fermer la porte", _none)),
    "button": (GestureSpec("press", "appuyer (puis relâcher)", _none), *_CONTACT,
               GestureSpec("down", "enfoncer sans relâcher", _none),
               GestureSpec("release", "relâcher", _none)),
    "reed_switch": (GestureSpec("open", "ouvrir", _none),
                    GestureSpec("close", "fermer", _none)),
    "pressure_mat": (GestureSpec("step", "passer dessus", _none), *_CONTACT,
                     GestureSpec("step_on", "monter dessus et y rester", _none),
                     GestureSpec("step_off", "en descendre", _none)),
    "led": (), "relay": (), "buzzer": (),
    "mfrc522": _TAGS,
    "rdm6300": (GestureSpec("present", "poser un badge (identifiant EM4100)", _em4100_id),
                _TAGS[1]),
    "sorting": (GestureSpec("present", "poser un objet dans un bac ({bin, uid})", _bin_and_uid),
                GestureSpec("remove", "retirer l'objet d'un bac ({bin})", _bin)),
}


def gestures_of(config: PropConfig) -> tuple[GestureSpec, ...]:
    """The gestures a simulated hand can make on *config*'s prop (a door needs a sensor)."""
    if config.kind == "maglock" and getattr(config, "door", None) is None:
        return ()
    return GESTURES[config.kind]


def check_gesture(config: PropConfig, gesture: str, value: Any = None) -> Any:
    """The value *gesture* is performed with on *config*'s prop; raises
    :class:`UnknownGesture` (with the known ones) or BadActionParams, in French."""
    known = gestures_of(config)
    label = config.label or config.id
    spec = next((g for g in known if g.name == gesture), None)
    if spec is None:
        listed = ", ".join(f"{g.french} ({g.name})" for g in known) or "aucun"
        msg = f"geste inconnu « {gesture} » pour {label} ; gestes possibles : {listed}"
        raise UnknownGesture(msg, known)
    try:
        return spec.value(config, value)
    except BadActionParams as exc:
        msg = f"« {spec.french} » sur {label} : {exc}"
        raise BadActionParams(msg) from None
