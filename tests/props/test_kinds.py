"""The kinds table (props/kinds.py): every kind once, and its facts agree with the drivers'
own description (their pins, their start command)."""

from __future__ import annotations

from props.kinds import ACTUATOR_KINDS, KINDS, LOCK_KINDS, RELAY_KINDS, RFID_KINDS
from props.start import START_RULES, start_command
from tests.props.test_start import CASES, kinds

CONFIGS = {c[0].kind: c[0] for c in CASES}


def test_every_kind_is_in_the_table_and_the_start_rules() -> None:
    assert set(KINDS) == set(START_RULES) == kinds()


def test_the_facts_of_each_kind() -> None:
    assert {"maglock"} == LOCK_KINDS
    assert {"maglock", "relay", "led", "buzzer"} == ACTUATOR_KINDS
    assert {"mfrc522", "rdm6300", "sorting"} == RFID_KINDS
    assert {"maglock", "relay"} == RELAY_KINDS


def test_the_facts_agree_with_the_configs() -> None:
    for kind, config in CONFIGS.items():
        drives_relay = any(u.direction == "out" and u.role.endswith("relay") for u in config.pin_uses())
        assert (kind in RELAY_KINDS) == drives_relay, kind
        assert (kind in LOCK_KINDS) == (start_command(config) == "lock"), kind
        assert (kind in ACTUATOR_KINDS) == (start_command(config) in ("lock", "on", "off")), kind
