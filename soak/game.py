"""The shipped game, read as a game master reads it: rooms, locks, puzzles, amounts, clues,
and how each puzzle is played (the solution sheet, ``tests/solutions.py``).

The soak plays a copy of ``config/apartment.yaml`` whose only change is a shorter
``duration_min`` (the schema's minimum is 5). The budget oracle and the start states
below are read from the file and restated here on purpose: an outside check that reused
the controller's own rules would agree with any bug in them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.solutions import GESTURES

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "apartment.yaml"
PARCOURS = ("primo", "locataire")

Gesture = tuple[str, str, str, Any]   # node, prop, gesture, value

#: the solution sheet's gestures cut into puzzles (in its play order); checked against
#: the game's solve rules when the file is read
_SHEET = (("mailbox", 0, 1), ("front_door", 1, 2), ("repairs", 2, 3), ("kitchen_hood", 3, 4),
          ("cleaning_product", 4, 10), ("damp_bathroom", 10, 12), ("pests", 12, 13),
          ("household_budget", 13, 14), ("insurance", 14, 16), ("deposit", 16, 18),
          ("noise", 18, 19), ("waste_sorting", 19, 22))


def shortened_copy(dest: Path, *, duration_min: int, source: Path = SHIPPED) -> Path:
    """The shipped game with only ``duration_min`` changed (comments kept)."""
    text = source.read_text(encoding="utf-8")
    new, count = re.subn(r"^(\s*duration_min:\s*)\d+", rf"\g<1>{duration_min}", text, flags=re.MULTILINE)
    if count != 1:
        msg = f"{source}: expected one duration_min line, found {count}"
        raise ValueError(msg)
    dest.write_text(new, encoding="utf-8")
    return dest


def _per_parcours(value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and set(value) <= set(PARCOURS):
        return {p: value.get(p) for p in PARCOURS}
    return dict.fromkeys(PARCOURS, value)


@dataclass
class Prop:
    node: str
    id: str
    kind: str
    config: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.node, self.id)


@dataclass
class Puzzle:
    id: str
    room: str
    requires: list[str]
    final: bool
    local: bool
    amount: dict[str, int]          # budget moved when solved, per parcours
    clue_costs: list[int]            # cost of each pre-written clue
    unlocks: list[tuple[str, str]]   # locks it opens
    gestures: dict[str, list[Gesture]] = field(default_factory=dict)   # per parcours
    parcours: tuple[str, ...] = PARCOURS


@dataclass
class GameFacts:
    path: Path
    apartment_id: str
    duration_s: float
    budget_start: dict[str, int]
    nodes: list[str]
    props: dict[tuple[str, str], Prop]
    puzzles: dict[str, Puzzle]

    @property
    def root(self) -> str:
        return f"escape/{self.apartment_id}"

    @property
    def maglocks(self) -> list[tuple[str, str]]:
        return [k for k, p in self.props.items() if p.kind == "maglock"]

    @property
    def exit_doors(self) -> set[tuple[str, str]]:
        return {k for k, p in self.props.items() if p.kind == "maglock" and p.config.get("exit_door")}

    def expected_budget(self, parcours: str, solved: set[str], paid_clues: int) -> int:
        """Start + the solved puzzles' amounts − the clues paid."""
        return (self.budget_start[parcours] + sum(self.puzzles[p].amount[parcours] for p in solved)
                - paid_clues)

    def in_start_state(self, key: tuple[str, str], fields: dict[str, Any] | None) -> bool:
        """Is this prop, as it last reported, where a game may start from?"""
        if fields is None:
            return False
        prop = self.props[key]
        kind, cfg = prop.kind, prop.config
        if kind == "keypad":
            return not fields.get("buffer_length")
        if kind == "maglock":
            return fields.get("engaged") is True and fields.get("door") != "open"
        if kind == "button":
            return fields.get("pressed") is (cfg.get("start") == "pressed")
        if kind == "reed_switch":
            return fields.get("closed") is (cfg.get("start", "closed") == "closed")
        if kind == "relay":
            return fields.get("on") is bool(cfg.get("initial_value", False))
        if kind in ("mfrc522", "rdm6300"):
            return fields.get("tag") is None
        if kind == "sorting":
            bins = fields.get("bins")
            return isinstance(bins, dict) and not any(bins.values())
        return True


def read(path: Path) -> GameFacts:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    apartment = data["apartment"]
    props: dict[tuple[str, str], Prop] = {}
    for node in data["nodes"]:
        for prop in node.get("props", []):
            props[(node["id"], prop["id"])] = Prop(node["id"], prop["id"], prop["kind"], prop)
    puzzles: dict[str, Puzzle] = {}
    for raw in data["puzzles"]:
        amount = dict.fromkeys(PARCOURS, 0)
        unlocks = []
        for action in raw.get("actions", []):
            if action["do"] == "budget":
                for p, v in _per_parcours(action["amount"]).items():
                    amount[p] += int(v)
            elif action["do"] == "unlock":
                node, _, prop = action["target"].partition(".")
                unlocks.append((node, prop))
        puzzles[raw["id"]] = Puzzle(
            id=raw["id"], room=raw["room"], requires=list(raw.get("requires", [])),
            final=bool(raw.get("final")), local=bool(raw.get("local")), amount=amount,
            clue_costs=[int(c.get("cost", 0)) for c in raw.get("clues", [])], unlocks=unlocks,
            parcours=tuple(raw.get("parcours", PARCOURS)))
    start = _per_parcours(apartment["budget"]["start"])
    facts = GameFacts(path=path, apartment_id=apartment["id"], duration_s=apartment["duration_min"] * 60,
                      budget_start={p: int(v) for p, v in start.items()},
                      nodes=[n["id"] for n in data["nodes"]], props=props, puzzles=puzzles)
    for parcours in PARCOURS:
        sheet = GESTURES[parcours]
        for puzzle_id, start, end in _SHEET:
            steps = sheet[start:end]
            _check_sheet(data, puzzle_id, steps)
            facts.puzzles[puzzle_id].gestures[parcours] = list(steps)
    missing = set(puzzles) - {p for p, _, _ in _SHEET}
    if missing:
        msg = f"no gestures for puzzle(s) {sorted(missing)}: update soak/game.py"
        raise ValueError(msg)
    return facts


def _check_sheet(data: dict[str, Any], puzzle_id: str, steps: list[Gesture]) -> None:
    """The gestures cut for *puzzle_id* act on the props its solve rule reads."""
    raw = next(p for p in data["puzzles"] if p["id"] == puzzle_id)
    wanted: set[str] = set()

    def walk(rule: dict[str, Any]) -> None:
        if "prop" in rule:
            wanted.add(rule["prop"])
        for sub in rule.get("of", []):
            walk(sub)

    walk(raw["solve"])
    used = {f"{node}.{prop}" for node, prop, _g, _v in steps}
    if not used or not used <= wanted:
        msg = f"the solution sheet no longer matches puzzle {puzzle_id}: {used} vs {wanted}"
        raise ValueError(msg)
