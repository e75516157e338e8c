"""The pre-game check of one prop, from what its node reports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from controller.check import NODE_FRENCH, CheckStatus, assess
from props.models import ButtonConfig, KeypadConfig, MaglockConfig, MFRC522Config, OutputConfig, SortingConfig
from props.start import FRENCH

ROOT = Path(__file__).resolve().parents[2]
LOCK = MaglockConfig(id="door_lock", label="Ventouse de la porte d'entrée", relay=17, door=27)
KEYPAD = KeypadConfig(id="keypad", rows=[5, 6, 13, 19], cols=[12, 16, 20])
READER = MFRC522Config(id="reader")
BINS = SortingConfig(id="bins", bins={"jaune": 8, "verte": 7})
LAMP = OutputConfig(id="lamp", kind="relay", pin=23)


def check(config, reported, *, online=True, ack=None, desired=None, reset_id=None):
    return assess("salon", config, online=online, reported=reported, ack=ack,
                  desired_action=desired, reset_id=reset_id)


def test_a_prop_of_an_offline_node_waits_for_it():
    assert check(LOCK, {"engaged": True}, online=False).status == CheckStatus.WAITING_NODE
    assert check(LOCK, {}).status == CheckStatus.WAITING_NODE


@pytest.mark.parametrize(("reported", "desired", "status"), [
    ({"engaged": True, "door": "closed"}, "lock", CheckStatus.READY),
    ({"engaged": False, "door": "closed"}, "lock", CheckStatus.RESET_SENT),
    ({"engaged": False, "door": "closed"}, "unlock", CheckStatus.NEEDS_RESET),
    ({"engaged": True, "door": "open"}, "lock", CheckStatus.MANUAL_RESET),
])
def test_maglock_must_be_engaged_with_its_door_closed(reported, desired, status):
    result = check(LOCK, reported, desired=desired)
    assert result.status == status
    if status == CheckStatus.MANUAL_RESET:
        assert result.public()["detail"] == "Fermez la porte : Ventouse de la porte d'entrée"
        assert result.public()["status_label"] == "remise en place manuelle nécessaire"
        assert result.public()["instruction"] == {
            "key": "close_door", "text": "Fermez la porte : Ventouse de la porte d'entrée",
            "vars": {"label": "Ventouse de la porte d'entrée"}}


def test_keypad_with_a_half_typed_code_gets_a_reset():
    assert check(KEYPAD, {"buffer_length": 0}).status == CheckStatus.READY
    assert check(KEYPAD, {"buffer_length": 2}).status == CheckStatus.NEEDS_RESET
    assert check(KEYPAD, {"buffer_length": 2}, reset_id="c1").status == CheckStatus.RESET_SENT
    # typed again after the reset was applied: reset again, no human needed
    assert check(KEYPAD, {"buffer_length": 1}, ack="c1", reset_id="c1").status == CheckStatus.NEEDS_RESET


def test_reader_with_a_tag_left_on_it_needs_a_human_once_reset():
    assert check(READER, {"tag": None}).status == CheckStatus.READY
    assert check(READER, {"tag": "04a1"}, reset_id="c1").status == CheckStatus.RESET_SENT
    manual = check(READER, {"tag": "04a1", "tag_name": "attestation"}, ack="c1", reset_id="c1")
    assert manual.status == CheckStatus.MANUAL_RESET
    assert "attestation" in manual.detail


def test_sorting_bins_must_be_empty():
    assert check(BINS, {"bins": {"jaune": None, "verte": None}}).status == CheckStatus.READY
    full = check(BINS, {"bins": {"jaune": "05a1", "verte": None}}, ack="c1", reset_id="c1")
    assert full.status == CheckStatus.MANUAL_RESET and "jaune" in full.detail


def test_outputs_start_at_rest():
    assert check(LAMP, {"on": False}, desired="off").status == CheckStatus.READY
    assert check(LAMP, {"on": True}, desired="off").status == CheckStatus.RESET_SENT
    assert check(LAMP, {"on": True}, desired="on").status == CheckStatus.NEEDS_RESET


@pytest.mark.parametrize(("config", "reported", "instruction"), [
    (ButtonConfig(id="music_button", label="Bouton de la chaîne hi-fi", pin=22), {"pressed": True},
     "Relâchez : Bouton de la chaîne hi-fi"),
    (ButtonConfig(id="window", kind="reed_switch", label="Fenêtre de la salle de bain", pin=22),
     {"closed": False}, "Fermez : Fenêtre de la salle de bain"),
    (ButtonConfig(id="mat", kind="pressure_mat", label="Tapis de l'entrée", pin=22),
     {"occupied": True}, "Dégagez : Tapis de l'entrée"),
])
def test_a_contact_off_its_start_state_needs_a_hand_at_once(config, reported, instruction):
    # no command can close a window: no reset is waited for, the game master is told
    result = check(config, reported)
    assert result.status == CheckStatus.MANUAL_RESET
    assert result.detail == instruction
    assert result.summary() == instruction


def test_a_contact_in_its_start_state_is_ready():
    assert check(ButtonConfig(id="b", pin=22), {"pressed": False}).status == CheckStatus.READY
    window = ButtonConfig(id="w", kind="reed_switch", pin=22)
    assert check(window, {"closed": True}).status == CheckStatus.READY
    assert check(window, {"closed": False}).status == CheckStatus.MANUAL_RESET
    ajar = ButtonConfig(id="w", kind="reed_switch", pin=22, start="open")
    assert check(ajar, {"closed": False}).status == CheckStatus.READY


def test_waiting_for_a_node_says_which_room():
    result = assess("sdb", LAMP, online=False, reported={}, ack=None, desired_action=None,
                    reset_id=None, node_label="Salle de bain")
    assert result.status == CheckStatus.WAITING_NODE
    assert result.instruction is not None and result.instruction.key == "node_offline"
    assert "Salle de bain" in result.detail


def test_every_instruction_has_its_english_words_with_the_same_values():
    english = json.loads((ROOT / "dashboard/static/i18n/en.json").read_text(encoding="utf-8"))
    for key, french in {**FRENCH, **NODE_FRENCH}.items():
        words = english.get(f"check_fix_{key}")
        assert words, f"check_fix_{key} missing from en.json"
        assert set(re.findall(r"{(\w+)}", words)) == set(re.findall(r"{(\w+)}", french)), key
