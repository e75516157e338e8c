"""The game file: validation, errors with file and line, schema, summary CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.cli import summary
from config.loader import SCHEMA_FILE, SHIPPED_GAME, GameConfigError, json_schema, load_game_file, parse_game
from controller.cli import main

GOOD = """\
apartment: {id: t, name: Test}
nodes:
  - id: hall
    label: Hall
    props:
      - {id: k, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20]}
      - {id: lock, kind: maglock, relay: 17, door: 27}
puzzles:
  - id: a
    label: A
    theme: budget
    room: hall
    solve: {when: event, prop: hall.k, event: code, equals: "1234"}
    actions: [{do: unlock, target: hall.lock}]
    final: true
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(GameConfigError) as info:
        parse_game(text, source="game.yaml")
    return [str(i) for i in info.value.issues if i.severity == "error"]


def test_shipped_game_is_valid_and_has_no_warnings():
    loaded = load_game_file(SHIPPED_GAME)
    assert loaded.game.apartment.id == "temoin"
    assert loaded.warnings == []


def test_shipped_yaml_points_editors_at_its_schema():
    first = SHIPPED_GAME.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=./apartment.schema.json"
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == json.loads(json_schema())


def test_good_minimal_game_loads():
    game = parse_game(GOOD).game
    assert [p.id for p in game.puzzles] == ["a"]


def test_two_props_on_one_pin_is_an_error_with_file_and_line():
    text = GOOD.replace("relay: 17", "relay: 5")
    errors = errors_of(text)
    assert errors == ["game.yaml:7:35: error: nodes[0].props[1].relay: pin BCM 5 (maglock relay) is already "
                      "used by prop 'k' of node 'hall'"]


def test_puzzle_naming_unknown_prop_is_an_error():
    errors = errors_of(GOOD.replace("prop: hall.k", "prop: hall.nope"))
    assert errors == ["game.yaml:13:26: error: puzzles[0].solve.prop: unknown prop 'hall.nope'"]


def test_prop_named_node_is_refused_it_names_the_nodes_own_events():
    text = GOOD.replace("{id: lock, kind: maglock", "{id: node, kind: maglock").replace(
        "target: hall.lock", "target: hall.node")
    errors = errors_of(text)
    assert len(errors) == 1 and "prop id 'node' is reserved" in errors[0]


def test_dependency_cycle_is_an_error():
    text = GOOD.replace("    final: true\n", "    requires: [b]\n") + """\
  - id: b
    label: B
    theme: budget
    room: hall
    requires: [a]
    solve: {when: event, prop: hall.k, event: code, equals: "9"}
    final: true
"""
    errors = errors_of(text)
    assert any("dependency cycle: a -> b -> a" in e for e in errors)


def test_schema_errors_name_path_and_line():
    text = GOOD.replace("cols: [12, 16, 20]", "cols: [12, 16, 99]")
    errors = errors_of(text)
    assert errors == ["game.yaml:6:68: error: nodes[0].props[0].cols[2]: Input should be less than or equal to 27"]


@pytest.mark.parametrize(("old", "new", "where"), [
    ("name: Test}", "name: Test, autonomy_after_s: .inf}", "apartment.autonomy_after_s"),
    ("name: Test}", "name: Test, inactivity_alert_min: .nan}", "apartment.inactivity_alert_min"),
    ("cols: [12, 16, 20]}", "cols: [12, 16, 20], entry_timeout: .inf}", "nodes[0].props[0].entry_timeout"),
])
def test_non_finite_numbers_are_refused_in_the_game_file(old: str, new: str, where: str):
    """YAML has .inf and .nan; no duration, threshold or timeout may be one."""
    errors = errors_of(GOOD.replace(old, new))
    assert len(errors) == 1 and where in errors[0] and "finite number" in errors[0], errors


def test_unlocking_a_non_lock_is_an_error():
    errors = errors_of(GOOD.replace("target: hall.lock", "target: hall.k"))
    assert errors == ["game.yaml:14:28: error: puzzles[0].actions[0].target: 'hall.k' is a keypad, not a maglock"]


def test_no_final_puzzle_is_an_error():
    errors = errors_of(GOOD.replace("    final: true\n", ""))
    assert any("no final puzzle" in e for e in errors)


def test_relay_on_a_pin_high_at_boot_is_a_warning():
    loaded = parse_game(GOOD.replace("relay: 17", "relay: 4"))
    assert [w.message for w in loaded.warnings][0].startswith("relay on BCM 4")


def test_not_yaml_is_a_clear_error():
    errors = errors_of("apartment: [\n")
    assert errors[0].startswith("game.yaml:2:1: error: (file): not valid YAML")


def test_config_check_cli_prints_summary_and_exits_zero(capsys):
    assert main(["config", "check", str(SHIPPED_GAME)]) == 0
    out = capsys.readouterr().out
    assert "hall" in out and "pins (BCM)" in out and "mailbox" in out


def test_config_check_cli_prints_every_error_and_exits_nonzero(tmp_path: Path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("relay: 17", "relay: 5").replace("prop: hall.k", "prop: hall.x"),
                   encoding="utf-8")
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:7:" in err and f"{bad}:13:" in err and "2 error(s)" in err


def test_config_schema_cli_writes_json_schema(tmp_path: Path):
    out = tmp_path / "schema.json"
    assert main(["config", "schema", "-o", str(out)]) == 0
    schema = json.loads(out.read_text(encoding="utf-8"))
    assert "apartment" in schema["properties"]


def test_summary_lists_rooms_and_puzzles():
    text = summary(parse_game(GOOD).game)
    assert "1 rooms, 2 props, 1 puzzles" in text
