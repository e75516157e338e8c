"""The start state of every prop kind (props/start.py): one rule per kind, what a prop
reports in it and off it, and the French instruction the game master reads."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from props.models import ButtonConfig, PropConfig
from props.start import FRENCH, START_RULES, Remedy, off_start, one_shot, start_command

PROP = TypeAdapter(PropConfig)
KEYPAD = {"kind": "keypad", "rows": [5, 6, 13, 19], "cols": [12, 16, 20]}


def kinds() -> set[str]:
    """Every ``kind`` the game file accepts, read from the config models."""
    union = typing.get_args(typing.get_args(PropConfig)[0])
    return {kind for model in union for kind in typing.get_args(model.model_fields["kind"].annotation)}


def prop(label: str, **fields: Any) -> Any:
    return PROP.validate_python({"id": "p", "label": label, **fields})


def test_every_prop_kind_has_a_start_rule() -> None:
    assert set(START_RULES) == kinds()
    assert len(kinds()) == 11


# (config, reported in the start state, reported off it, start command, remedy, French)
CASES = [
    (prop("Clavier de la boîte aux lettres", **KEYPAD), {"buffer_length": 0, "last_key": None},
     {"buffer_length": 2, "last_key": "4"}, "reset", Remedy.COMMAND,
     "Effacez le code tapé : Clavier de la boîte aux lettres"),
    (prop("Ventouse du coffre", kind="maglock", relay=17, door=27),
     {"locked": True, "engaged": True, "door": "closed"},
     {"locked": False, "engaged": True, "door": "open"}, "lock", Remedy.HAND,
     "Fermez la porte : Ventouse du coffre"),
    (prop("Ventouse du coffre", kind="maglock", relay=17),
     {"locked": True, "engaged": True, "door": None},
     {"locked": False, "engaged": False, "door": None}, "lock", Remedy.COMMAND,
     "Verrouillez : Ventouse du coffre"),
    (prop("Bouton de la chaîne hi-fi", kind="button", pin=22), {"pressed": False},
     {"pressed": True}, None, Remedy.HAND, "Relâchez : Bouton de la chaîne hi-fi"),
    (prop("Interrupteur", kind="button", pin=22, start="pressed"), {"pressed": True},
     {"pressed": False}, None, Remedy.HAND, "Enfoncez : Interrupteur"),
    (prop("Fenêtre de la salle de bain", kind="reed_switch", pin=22), {"closed": True},
     {"closed": False}, None, Remedy.HAND, "Fermez : Fenêtre de la salle de bain"),
    (prop("Vasistas", kind="reed_switch", pin=22, start="open"), {"closed": False},
     {"closed": True}, None, Remedy.HAND, "Ouvrez : Vasistas"),
    (prop("Tapis de l'entrée", kind="pressure_mat", pin=22), {"occupied": False},
     {"occupied": True}, None, Remedy.HAND, "Dégagez : Tapis de l'entrée"),
    (prop("Balance", kind="pressure_mat", pin=22, start="occupied"), {"occupied": True},
     {"occupied": False}, None, Remedy.HAND, "Remettez le poids sur : Balance"),
    (prop("Voyant", kind="led", pin=24), {"on": False}, {"on": True}, "off", Remedy.COMMAND,
     "Éteignez : Voyant"),
    (prop("Chaîne hi-fi", kind="relay", pin=23, initial_value=True), {"on": True}, {"on": False},
     "on", Remedy.COMMAND, "Allumez : Chaîne hi-fi"),
    (prop("Sonnette", kind="buzzer", pin=18), {"on": False}, {"on": True}, "off", Remedy.COMMAND,
     "Éteignez : Sonnette"),
    (prop("Lecteur « plan de travail »", kind="mfrc522"), {"tag": None, "tag_name": None},
     {"tag": "04a1b2c3", "tag_name": "vinaigre_blanc"}, "reset", Remedy.COMMAND_THEN_HAND,
     "Retirez le badge « vinaigre_blanc » du lecteur : Lecteur « plan de travail »"),
    (prop("Lecteur de documents", kind="rdm6300"), {"tag": None, "tag_name": None},
     {"tag": "0a00112233", "tag_name": None}, "reset", Remedy.COMMAND_THEN_HAND,
     "Retirez le badge « 0a00112233 » du lecteur : Lecteur de documents"),
    (prop("Poubelles de tri", kind="sorting", bins={"jaune": 16, "verte": 13}),
     {"bins": {"jaune": None, "verte": None}}, {"bins": {"jaune": "05a1a1a1", "verte": None}},
     "reset", Remedy.COMMAND_THEN_HAND, "Videz le bac jaune : Poubelles de tri"),
    (prop("Poubelles de tri", kind="sorting", bins={"jaune": 16, "verte": 13}),
     {"bins": {"jaune": None, "verte": None}}, {"bins": {"jaune": "05a1a1a1", "verte": "05b2"}},
     "reset", Remedy.COMMAND_THEN_HAND, "Videz les bacs jaune, verte : Poubelles de tri"),
]


@pytest.mark.parametrize(("config", "good", "bad", "command", "remedy", "french"), CASES,
                         ids=[f"{c[0].kind}-{c[5].split(' :')[0]}" for c in CASES])
def test_start_state_of_each_kind(config: Any, good: dict[str, Any], bad: dict[str, Any],
                                  command: str | None, remedy: Remedy, french: str) -> None:
    assert off_start(config, good) is None
    off = off_start(config, bad)
    assert off is not None
    assert off.remedy == remedy
    assert off.instruction.text == french
    assert off.instruction.vars["label"] == config.label
    assert FRENCH[off.instruction.key].format(**off.instruction.vars) == french
    assert start_command(config) == command
    assert one_shot(config) == (command == "reset")


def test_the_cases_cover_every_kind() -> None:
    assert {c[0].kind for c in CASES} == kinds()


def test_a_maglock_with_its_door_open_needs_the_door_closed_before_anything() -> None:
    lock = prop("Ventouse", kind="maglock", relay=17, door=27)
    off = off_start(lock, {"engaged": False, "door": "open"})
    assert off is not None and off.instruction.key == "close_door"


@pytest.mark.parametrize(("kind", "start"), [("button", "open"), ("reed_switch", "pressed"),
                                             ("pressure_mat", "closed"), ("button", "ajar")])
def test_a_start_state_that_does_not_fit_the_kind_is_refused(kind: str, start: str) -> None:
    with pytest.raises(ValidationError):
        ButtonConfig(id="c", kind=kind, pin=22, start=start)


@pytest.mark.parametrize(("kind", "default", "active"), [("button", "released", False),
                                                         ("reed_switch", "closed", True),
                                                         ("pressure_mat", "free", False)])
def test_contact_start_state_defaults_per_kind(kind: str, default: str, active: bool) -> None:
    config = ButtonConfig(id="c", kind=kind, pin=22)
    assert (config.start_state, config.start_active) == (default, active)
