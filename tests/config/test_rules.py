"""The rules of play (config/rules.py), on their own: matching, progress, availability.

The engine and a node's local puzzles both decide with these; tests/nodes/test_autonomy.py
checks that both call them and still agree.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config import rules
from config.game import Condition, EventCondition, PerParcours, PropAction, Puzzle
from config.loader import GameConfigError, parse_game
from config.rules import Event

GAME = parse_game("""\
apartment: {id: rules, name: Règles}
nodes:
  - id: hall
    label: Hall
    props:
      - {id: keypad, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20]}
      - {id: lever, kind: button, pin: 22}
      - {id: box, kind: maglock, relay: 17}
puzzles:
  - {id: a, label: A, theme: budget, room: hall,
     solve: {when: event, prop: hall.keypad, event: code, equals: "1"}}
  - {id: b, label: B, theme: budget, room: hall, requires: [a],
     solve: {when: sequence, of: [{prop: hall.keypad, event: code, equals: "7"},
                                  {prop: hall.keypad, event: code, equals: "8"},
                                  {prop: hall.lever, event: held, min_value: 2}]}}
  - {id: c, label: C, theme: budget, room: hall, requires: [a, b],
     solve: {when: all, of: [{prop: hall.lever, event: press},
                             {prop: hall.keypad, event: code, any_of: ["3", "4"]}]}}
  - {id: d, label: D, theme: budget, room: hall, requires: {any: [b, c]}, final: true,
     solve: {when: event, prop: hall.keypad, event: code, equals: {primo: "5", locataire: "6"}}}
  - {id: loc, label: Loc, theme: rights, room: hall, parcours: [locataire],
     solve: {when: event, prop: hall.keypad, event: code,
             any_of: {primo: ["1"], locataire: null}}}
""").game
A, B, C, D, LOC = (GAME.puzzle(p) for p in ("a", "b", "c", "d", "loc"))


def code(value: object) -> Event:
    return Event("hall.keypad", "code", value)


def cond(**fields: object) -> EventCondition:
    return EventCondition(prop="hall.keypad", event="code", **fields)


# -- matching ------------------------------------------------------------------------------
def test_an_event_of_another_prop_or_type_never_matches() -> None:
    assert rules.matches(cond(equals="1"), code("1"), "primo")
    assert not rules.matches(cond(equals="1"), Event("hall.lever", "code", "1"), "primo")
    assert not rules.matches(cond(equals="1"), Event("hall.keypad", "key", "1"), "primo")
    assert rules.matches(cond(), code({"anything": [1]}), "primo"), "no value test: any value"


def test_equals_any_of_and_numbers() -> None:
    assert not rules.matches(cond(equals="1"), code("2"), "primo")
    assert rules.matches(cond(equals=3), code(3.0), "primo"), "a number equals its float"
    assert rules.matches(cond(any_of=["3", "4"]), code("4"), "primo")
    assert not rules.matches(cond(any_of=["3", "4"]), code("34"), "primo"), "a member, not a substring"
    assert not rules.matches(cond(any_of=[]), code("3"), "primo")


def test_min_value_wants_a_number_at_least_it() -> None:
    held = cond(min_value=2)
    assert rules.matches(held, code(2), None) and rules.matches(held, code(2.5), None)
    assert not rules.matches(held, code(1.99), None)
    for not_a_number in ("3", None, [3], {"s": 3}):
        assert not rules.matches(held, code(not_a_number), "primo"), not_a_number


def test_values_per_parcours_and_the_unknown_parcours_accepts_either() -> None:
    per = cond(equals=PerParcours(primo="1", locataire="2"))
    assert rules.matches(per, code("1"), "primo") and not rules.matches(per, code("2"), "primo")
    assert rules.matches(per, code("2"), "locataire") and not rules.matches(per, code("1"), "locataire")
    assert rules.matches(per, code("1"), None) and rules.matches(per, code("2"), None)
    assert not rules.matches(per, code("3"), None)
    pick = cond(any_of=PerParcours(primo=["4", "5"], locataire=["6"]))
    assert rules.matches(pick, code("5"), "primo") and not rules.matches(pick, code("6"), "primo")
    assert all(rules.matches(pick, code(v), None) for v in "456")


def test_a_value_per_parcours_set_to_null_means_any_value_in_that_parcours() -> None:
    (only,) = LOC.conditions()
    assert rules.matches(only, code("9"), "locataire")
    assert not rules.matches(only, code("9"), "primo") and rules.matches(only, code("1"), "primo")
    assert rules.matches(only, code("9"), None), "unknown: the lenient parcours counts"


def test_any_of_per_parcours_must_give_lists() -> None:
    with pytest.raises(ValidationError, match="a list of values for each parcours"):
        cond(any_of=PerParcours(primo="45", locataire=["6"]))
    bad = GAME.model_dump(mode="json")
    bad["puzzles"][0]["solve"]["any_of"] = {"primo": "45", "locataire": ["6"]}
    with pytest.raises(GameConfigError, match="a list of values for each parcours"):
        parse_game(json.dumps(bad), source="game.yaml")


def test_resolve_and_values() -> None:
    per = PerParcours(primo=10, locataire=-5)
    assert rules.resolve(per, "locataire") == -5 and rules.resolve(7, "primo") == 7
    assert rules.values(per, None) == [10, -5] and rules.values(per, "primo") == [10]
    assert rules.values(None, None) == [None]


# -- progress ------------------------------------------------------------------------------
def test_all_any_order_each_condition_once() -> None:
    progress = rules.advance(C, [], code("4"), "primo")
    assert progress == [1] and not rules.complete(C, progress)
    assert rules.advance(C, progress, code("3"), "primo") == [1], "met once is enough"
    progress = rules.advance(C, progress, Event("hall.lever", "press"), "primo")
    assert progress == [1, 0] and rules.complete(C, progress)


def test_sequence_in_order_and_a_wrong_step_starts_again() -> None:
    progress: list[int] = []
    for event in (code("7"), code("8")):
        progress = rules.advance(B, progress, event, "primo")
    assert progress == [0, 1]
    assert rules.advance(B, progress, code("9"), "primo") == [], "a wrong step: from the start"
    assert rules.advance(B, progress, code("7"), "primo") == [0], "a wrong step that is the first"
    assert rules.advance(B, [0], Event("hall.lever", "held", 1), "primo") == [], "too short a hold"
    done = rules.advance(B, progress, Event("hall.lever", "held", 2.5), "primo")
    assert done == [0, 1, 2] and rules.complete(B, done)


def test_an_event_the_puzzle_does_not_name_leaves_its_progress() -> None:
    assert rules.advance(B, [0, 1], Event("hall.lever", "press"), "primo") == [0, 1]
    assert rules.advance(B, [0, 1], Event("hall.box", "door", "open"), "primo") == [0, 1]
    assert rules.advance(A, [], code("2"), "primo") == []


def test_progress_that_does_not_fit_the_puzzle_is_dropped_not_a_crash() -> None:
    # a record written for a longer sequence of another game file
    assert rules.advance(B, [0, 1, 2, 3], code("7"), "primo") == [0]
    assert not rules.complete(A, [5]) and rules.complete(A, [0, 5])
    assert rules.advance(C, [7, 1], Event("hall.lever", "press"), "primo") == [1, 0]


def test_an_empty_sequence_is_refused_and_never_met() -> None:
    with pytest.raises(ValidationError):
        Condition(when="sequence", of=[])
    empty = A.model_copy(update={"solve": Condition.model_construct(when="sequence", of=[])})
    assert rules.advance(empty, [], code("1"), "primo") == []
    assert not rules.complete(empty, [])
    assert rules.Triggers([empty])(code("1")) == []


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.lists(st.sampled_from(["7", "8", "9", 1, 2.5]), max_size=20))
def test_sequence_progress_is_always_a_prefix(values: list[object]) -> None:
    progress: list[int] = []
    for value in values:
        event = Event("hall.lever", "held", value) if not isinstance(value, str) else code(value)
        progress = rules.advance(B, progress, event, "primo")
        assert progress == list(range(len(progress))) and len(progress) <= 3


# -- availability --------------------------------------------------------------------------
def test_requires_chains_all_and_any() -> None:
    assert rules.available(A, set(), "primo") and not rules.available(B, set(), "primo")
    assert rules.available(B, {"a"}, "primo") and not rules.available(C, {"a"}, "primo")
    assert rules.available(C, {"a", "b"}, "primo")
    assert not rules.available(D, {"a"}, "primo")
    assert rules.available(D, {"a", "b"}, "primo") and rules.available(D, {"c"}, "primo"), "any of"
    assert not rules.available(A, {"a"}, "primo"), "solved: no longer open"


def test_availability_per_parcours() -> None:
    assert not rules.available(LOC, set(), "primo")
    assert rules.available(LOC, set(), "locataire") and rules.available(LOC, set(), None)
    assert rules.in_parcours(LOC, None) and not rules.in_parcours(LOC, "primo")


def test_requirements_met_serves_the_loaders_reachability_too() -> None:
    unreachable = GAME.model_dump(mode="json")
    unreachable["puzzles"][1]["parcours"] = ["locataire"]      # b: primo's c can never open
    with pytest.raises(GameConfigError, match="'c' can never become available in parcours 'primo'"):
        parse_game(json.dumps(unreachable))
    assert Puzzle.requirements_met(D, ["c"]) and not Puzzle.requirements_met(C, ("b",))


def test_a_node_alone_does_every_prop_action_but_a_lock() -> None:
    actions = [PropAction(do="unlock", target="hall.box"), PropAction(do="lock", target="hall.box"),
               PropAction(do="command", target="hall.lamp", action="on", params={"n": 2})]
    assert [rules.done_alone(a) for a in actions] == [True, False, True]
    assert [a.command for a in actions] == ["unlock", "lock", "on"]


def test_triggers_find_the_puzzles_an_event_may_move_in_file_order() -> None:
    triggers = rules.Triggers(GAME.puzzles)
    assert [p.id for p in triggers(code("x"))] == ["a", "b", "c", "d", "loc"]
    assert [p.id for p in triggers(Event("hall.lever", "held", 3))] == ["b"]
    assert triggers(Event("hall.lever", "release")) == []
    assert rules.Event.of("hall", "keypad", "code", "1") == code("1")
