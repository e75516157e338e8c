"""The pre-game check of one prop, from what its node reports."""

from __future__ import annotations

import pytest

from controller.check import CheckStatus, assess
from props.models import ButtonConfig, KeypadConfig, MaglockConfig, MFRC522Config, OutputConfig, SortingConfig

LOCK = MaglockConfig(id="door_lock", relay=17, door=27)
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
        assert result.public()["detail"] == "porte ouverte : fermez-la"
        assert result.public()["status_label"] == "remise en place manuelle nécessaire"


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


def test_outputs_start_at_rest_and_inputs_only_need_their_node():
    assert check(LAMP, {"on": False}, desired="off").status == CheckStatus.READY
    assert check(LAMP, {"on": True}, desired="off").status == CheckStatus.RESET_SENT
    assert check(ButtonConfig(id="bell", pin=22), {"pressed": True}).status == CheckStatus.READY
