"""Pin validation at load: conflicts, bus-reserved pins, relays on pins high at boot."""

from __future__ import annotations

import pytest

from config.loader import GameConfigError, parse_game

HEAD = """\
apartment: {id: t, name: Test}
nodes:
  - id: room
    label: Pièce
    props:
"""
TAIL = """\
puzzles:
  - id: a
    label: A
    theme: budget
    room: room
    solve: {when: event, prop: room.lock, event: door}
    final: true
"""


def load(props: str, extra: str = ""):
    return parse_game(HEAD + props + extra + TAIL, source="g.yaml")


def errors(props: str, extra: str = "") -> list[str]:
    with pytest.raises(GameConfigError) as info:
        load(props, extra)
    return [i.message for i in info.value.issues if i.severity == "error"]


def test_pin_of_the_spi_bus_cannot_be_a_relay_when_a_reader_uses_spi():
    props = """\
      - {id: reader, kind: mfrc522}
      - {id: lock, kind: maglock, relay: 7}
"""
    assert errors(props) == ["pin BCM 7 is reserved by the SPI0 bus this node uses"]


def test_two_readers_may_share_the_spi_bus_but_not_a_reset_pin():
    props = """\
      - {id: lock, kind: maglock, relay: 17}
      - {id: r1, kind: mfrc522, spi: {select: 8}, reset_pin: 25}
      - {id: r2, kind: mfrc522, spi: {select: 7}, reset_pin: 25}
"""
    assert errors(props) == ["pin BCM 25 (MFRC522 reset) is already used by prop 'r1' of node 'room'"]


def test_uart_pins_are_reserved_when_a_serial_reader_uses_them():
    props = """\
      - {id: lock, kind: maglock, relay: 17, door: 15}
      - {id: docs, kind: rdm6300}
"""
    assert any("BCM 15" in e for e in errors(props))


def test_emergency_pin_may_not_be_a_prop_pin():
    props = "      - {id: lock, kind: maglock, relay: 17}\n"
    assert errors(props, "    emergency: {pin: 17}\n") == [
        "emergency pin BCM 17 is already used by prop 'lock'"]


@pytest.mark.parametrize("pin", [2, 3, 4, 5, 6, 7, 8])
def test_relay_on_a_pin_high_at_boot_is_a_warning_not_an_error(pin):
    loaded = load(f"      - {{id: lock, kind: maglock, relay: {pin}}}\n")
    assert [w.severity for w in loaded.warnings] == ["warning"]
    assert "may click" in loaded.warnings[0].message


def test_relay_on_a_quiet_pin_has_no_warning():
    assert load("      - {id: lock, kind: maglock, relay: 17}\n").warnings == []
