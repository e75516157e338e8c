"""The start state of every prop kind: what the pre-game check verifies, and how a prop
gets back to it — by a command the controller sends, or only by a human hand.

=================  ==============================  =============  =========================================
kind               start state                     command        off it, the game master reads
=================  ==============================  =============  =========================================
keypad             nothing typed                   ``reset``      « Effacez le code tapé : … »
maglock            relay engaged                   ``lock``       « Verrouillez : … »
                   and its door not open           —              « Fermez la porte : … »
button             released (or ``start:``         —              « Relâchez : … » (« Enfoncez : … »)
                   ``pressed``)
reed_switch        closed: the window or door      —              « Fermez : … » (« Ouvrez : … »)
                   is shut (or ``start: open``)
pressure_mat       free (or ``start: occupied``)   —              « Dégagez : … » (« Remettez le poids
                                                                  sur : … »)
led, relay,        ``on`` = its ``initial_value``  ``on``/``off``  « Allumez : … » / « Éteignez : … »
buzzer
mfrc522, rdm6300   no tag on the reader            ``reset``,     « Retirez le badge « … » du lecteur : … »
                                                   then a hand
sorting            every bin empty                 ``reset``,     « Videz le bac jaune : … »
                                                   then a hand
=================  ==============================  =============  =========================================

A reader's ``reset`` forgets a stale reading; a tag still in the field is reported again at
once, so a reader still showing a tag once its reset was applied needs a hand. A contact
(button, window, mat) has no command at all: only a hand puts it back.

This table is the only place these rules live: :mod:`controller.check` reads it for the
check, :meth:`controller.engine.Engine.start_state` for the commands of the check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from props.contact import WORDS
from props.models import (
    ButtonConfig,
    KeypadConfig,
    MaglockConfig,
    MFRC522Config,
    OutputConfig,
    PropConfig,
    RDM6300Config,
    SortingConfig,
)


class Remedy(StrEnum):
    """What brings a prop back to its start state."""

    COMMAND = "command"                      # its start command (resent until it is reached)
    HAND = "hand"                            # a human only
    COMMAND_THEN_HAND = "command_then_hand"  # its reset; a human if it stays off once applied


@dataclass(frozen=True, slots=True)
class Instruction:
    """What the game master must do, in French (:attr:`text`) and as a key with values for
    the console's other languages (``check_fix_<key>`` in ``dashboard/static/i18n``)."""

    key: str
    text: str
    vars: Mapping[str, str] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {"key": self.key, "text": self.text, "vars": dict(self.vars)}


@dataclass(frozen=True, slots=True)
class OffStart:
    """A prop off its start state: how it comes back, and what a human would do."""

    remedy: Remedy
    instruction: Instruction


#: the French instruction of each key; {label} is the prop's label
FRENCH: dict[str, str] = {
    "clear_keypad": "Effacez le code tapé : {label}",
    "lock": "Verrouillez : {label}",
    "close_door": "Fermez la porte : {label}",
    "release": "Relâchez : {label}",
    "press_down": "Enfoncez : {label}",
    "close": "Fermez : {label}",
    "open": "Ouvrez : {label}",
    "clear_mat": "Dégagez : {label}",
    "load_mat": "Remettez le poids sur : {label}",
    "switch_on": "Allumez : {label}",
    "switch_off": "Éteignez : {label}",
    "remove_tag": "Retirez le badge « {tag} » du lecteur : {label}",
    "empty_bin": "Videz le bac {bins} : {label}",
    "empty_bins": "Videz les bacs {bins} : {label}",
}

#: the instruction that brings a contact back to each start state it may be declared in
_CONTACT_FIX = {"released": "release", "pressed": "press_down", "closed": "close", "open": "open",
                "free": "clear_mat", "occupied": "load_mat"}


def instruction(key: str, config: PropConfig, **values: str) -> Instruction:
    """The instruction *key* about *config*, worded with its label."""
    vars_ = {"label": config.label or config.id, **values}
    return Instruction(key, FRENCH[key].format(**vars_), vars_)


# -- one rule per kind ---------------------------------------------------------------------
def _keypad(config: KeypadConfig, reported: Mapping[str, Any]) -> OffStart | None:
    if not reported.get("buffer_length"):
        return None
    return OffStart(Remedy.COMMAND, instruction("clear_keypad", config))


def _maglock(config: MaglockConfig, reported: Mapping[str, Any]) -> OffStart | None:
    if reported.get("door") == "open":
        return OffStart(Remedy.HAND, instruction("close_door", config))
    if reported.get("engaged") is not True:
        return OffStart(Remedy.COMMAND, instruction("lock", config))
    return None


def _contact(config: ButtonConfig, reported: Mapping[str, Any]) -> OffStart | None:
    if reported.get(WORDS[config.kind].state) is config.start_active:
        return None
    return OffStart(Remedy.HAND, instruction(_CONTACT_FIX[config.start_state], config))


def _output(config: OutputConfig, reported: Mapping[str, Any]) -> OffStart | None:
    if reported.get("on") is config.initial_value:
        return None
    return OffStart(Remedy.COMMAND,
                    instruction("switch_on" if config.initial_value else "switch_off", config))


def _reader(config: MFRC522Config | RDM6300Config, reported: Mapping[str, Any]) -> OffStart | None:
    tag = reported.get("tag")
    if tag is None:
        return None
    name = reported.get("tag_name") or str(tag)
    return OffStart(Remedy.COMMAND_THEN_HAND, instruction("remove_tag", config, tag=name))


def _sorting(config: SortingConfig, reported: Mapping[str, Any]) -> OffStart | None:
    bins = reported.get("bins") or {}
    full = sorted(name for name, uid in bins.items() if uid is not None)
    if not full:
        return None
    key = "empty_bin" if len(full) == 1 else "empty_bins"
    return OffStart(Remedy.COMMAND_THEN_HAND, instruction(key, config, bins=", ".join(full)))


@dataclass(frozen=True, slots=True)
class StartRule:
    """A kind's start state: the command that brings it there (if any), and the check."""

    command: Callable[[Any], str | None]
    check: Callable[[Any, Mapping[str, Any]], OffStart | None]


def _output_command(config: OutputConfig) -> str:
    return "on" if config.initial_value else "off"


#: every prop kind's start state (a kind missing here fails tests/props/test_start.py)
START_RULES: dict[str, StartRule] = {
    "keypad": StartRule(lambda _c: "reset", _keypad),
    "maglock": StartRule(lambda _c: "lock", _maglock),
    "button": StartRule(lambda _c: None, _contact),
    "reed_switch": StartRule(lambda _c: None, _contact),
    "pressure_mat": StartRule(lambda _c: None, _contact),
    "led": StartRule(_output_command, _output),
    "relay": StartRule(_output_command, _output),
    "buzzer": StartRule(_output_command, _output),
    "mfrc522": StartRule(lambda _c: "reset", _reader),
    "rdm6300": StartRule(lambda _c: "reset", _reader),
    "sorting": StartRule(lambda _c: "reset", _sorting),
}


def start_command(config: PropConfig) -> str | None:
    """The command that puts *config*'s prop in its start state (``lock``, ``on``, ``off``,
    ``reset``), or None when only a hand can."""
    return START_RULES[config.kind].command(config)


def off_start(config: PropConfig, reported: Mapping[str, Any]) -> OffStart | None:
    """None if the prop, as its node reports it, is in its start state; otherwise how it
    comes back and what the game master should do."""
    return START_RULES[config.kind].check(config, reported)


def one_shot(config: PropConfig) -> bool:
    """Whether the prop's start command is a one-shot ``reset`` (keypads, readers), not a
    steady state the controller keeps wanting and reconciles (a lock, an output)."""
    return start_command(config) == "reset"
