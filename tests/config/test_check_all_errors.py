"""``config check`` reports every error of a file in one run, each at its key's line and column.

One file holds errors of every stage: schema errors in the apartment, a prop, a puzzle and
an action, and cross-reference and pin errors in the parts that are valid. Before, the
first schema error hid every cross-check, and a pin conflict pointed at its prop's first
line rather than at the key naming the pin.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.loader import GameConfigError, parse_game

# line numbers matter: each error below names the line and column of its key
MANY_ERRORS = """\
apartment:
  id: t
  name: Test
  duration_min: 1000
nodes:
  - id: hall
    label: Hall
    props:
      - id: k
        kind: keypad
        rows: [5, 6, 13, 19]
        cols: [12, 16, 20]
        colour: red
      - id: lock
        kind: maglock
        relay: 17
        door: 27
      - id: light
        kind: led
        pin: 17
  - id: cuisine
    label: Cuisine
    props:
      - id: fridge
        kind: maglock
        relay: 22
puzzles:
  - id: a
    label: A
    theme: budgett
    room: hall
    solve: {when: event, prop: hall.k, event: code, equals: "1234"}
  - id: b
    label: B
    theme: budget
    room: salon
    requires: [a]
    solve:
      when: event
      prop: hall.k
      event: code
    actions:
      - do: command
        target: hall.light
      - do: unlock
        target: cuisine.nope
      - do: unlock
        target: hall.lock
    final: true
"""

#: (line, column, path, message) of every error, in file order
EXPECTED = [
    (4, 3, "apartment.duration_min", "Input should be less than or equal to 240"),
    (13, 9, "nodes[0].props[0].colour", "Extra inputs are not permitted"),
    (20, 9, "nodes[0].props[2].pin", "pin BCM 17 (led) is already used by prop 'lock' of node 'hall'"),
    (30, 5, "puzzles[0].theme", "Input should be 'upkeep', 'waste', 'budget', 'rights', 'diy' or 'story'"),
    (36, 5, "puzzles[1].room", "unknown room 'salon'"),
    (43, 9, "puzzles[1].actions[0]", "do: command needs an 'action' (e.g. on, off, blink, pulse)"),
    (46, 9, "puzzles[1].actions[1].target", "unknown prop 'cuisine.nope'"),
]


def test_every_error_of_every_stage_is_reported_at_its_key() -> None:
    with pytest.raises(GameConfigError) as info:
        parse_game(MANY_ERRORS, source="game.yaml")
    found = [(i.line, i.column, _path(i.path), i.message) for i in info.value.issues
             if i.severity == "error"]
    # nothing more either: `requires: [a]` and `prop: hall.k` name items that have errors of
    # their own (reported above), not unknown ones; "no final puzzle" is not judged on a
    # puzzle graph with a puzzle left out
    assert found == EXPECTED


def _path(path: tuple[str | int, ...]) -> str:
    from config.loader import format_path

    return format_path(path)


def test_a_valid_file_has_no_pruning_side_effect() -> None:
    fixed = (MANY_ERRORS.replace("  duration_min: 1000\n", "").replace("        colour: red\n", "")
             .replace("pin: 17", "pin: 18").replace("budgett", "budget").replace("salon", "hall")
             .replace("      - do: command\n        target: hall.light\n", "")
             .replace("cuisine.nope", "cuisine.fridge"))
    game = parse_game(fixed, source="game.yaml").game
    assert [p.id for p in game.puzzles] == ["a", "b"]


def test_a_final_puzzle_with_an_error_does_not_also_say_no_final_puzzle() -> None:
    text = MANY_ERRORS.replace("    theme: budgett\n", "    theme: budget\n").replace(
        "    final: true\n", "    final: maybe\n")
    with pytest.raises(GameConfigError) as info:
        parse_game(text, source="game.yaml")
    messages = [i.message for i in info.value.issues]
    assert not any("final puzzle" in m for m in messages), messages
    assert any(str(i).startswith("game.yaml:49:5: error: puzzles[1].final: Input should be a valid "
                                 "boolean") for i in info.value.issues), messages


def test_config_check_prints_every_error_with_line_and_column(tmp_path: Path) -> None:
    """The technician's command, as a real process."""
    game = tmp_path / "game.yaml"
    game.write_text(MANY_ERRORS, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "controller.cli", "config", "check", str(game)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert lines == [f"{game}:{line}:{column}: error: {path}: {message}"
                     for line, column, path, message in EXPECTED]
    assert f"{len(EXPECTED)} error(s) in {game}" in done.stderr
