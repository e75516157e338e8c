"""A node on its own: local puzzles decided like the engine does.

The node's core plays them when the controller is away (holds, outbox: tests/nodes/
test_core.py); tests/faults/ runs the same over a real Mosquitto.
"""

from __future__ import annotations

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from config import rules
from config.loader import parse_game
from controller.engine import Engine
from nodes.autonomy import GameView, LocalPuzzles

GAME = parse_game("""\
apartment: {id: auto, name: Autonomie, autonomy_after_s: 5}
nodes:
  - id: hall
    label: Hall
    emergency: {pin: 26}
    props:
      - {id: keypad, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20], code_length: 1, debounce: 0}
      - {id: box, kind: maglock, relay: 17}
      - {id: lever, kind: button, pin: 22, hold_time: 1}
      - {id: lamp, kind: led, pin: 24}
  - id: other
    label: Ailleurs
    props: [{id: door, kind: maglock, relay: 17}]
puzzles:
  - {id: code, label: Code, theme: budget, room: hall, local: true,
     solve: {when: event, prop: hall.keypad, event: code, equals: {primo: "1", locataire: "2"}},
     actions: [{do: unlock, target: hall.box}, {do: budget, amount: -10, label: x}]}
  - {id: pick, label: Choix, theme: budget, room: hall, local: true, requires: [code],
     solve: {when: event, prop: hall.keypad, event: code, any_of: {primo: ["4", "5"], locataire: ["6"]}},
     actions: [{do: command, target: hall.lamp, action: "on"}]}
  - {id: hold, label: Levier, theme: upkeep, room: hall, local: true, requires: {any: [code, pick]},
     solve: {when: event, prop: hall.lever, event: held, min_value: 2}}
  - {id: steps, label: Suite, theme: diy, room: hall, local: true,
     solve: {when: sequence, of: [{prop: hall.keypad, event: code, equals: "7"},
                                  {prop: hall.keypad, event: code, equals: "8"},
                                  {prop: hall.keypad, event: code, equals: "9"}]}}
  - {id: both, label: Les deux, theme: diy, room: hall, local: true,
     solve: {when: all, of: [{prop: hall.lever, event: press}, {prop: hall.keypad, event: code, equals: "3"}]},
     actions: [{do: lock, target: hall.box}]}
  - {id: loc_only, label: Locataire, theme: rights, room: hall, local: true, parcours: [locataire],
     solve: {when: event, prop: hall.keypad, event: code, equals: "0"}}
  - {id: final, label: Fin, theme: story, room: other, requires: [code],
     solve: {when: event, prop: hall.keypad, event: code, equals: "never"}, final: true}
""").game
LOCAL = [p.id for p in GAME.puzzles if p.local]

events = st.one_of(
    st.tuples(st.just("keypad"), st.just("code"), st.sampled_from(list("0123456789"))),
    st.tuples(st.just("lever"), st.sampled_from(["press", "release"]), st.none()),
    st.tuples(st.just("lever"), st.just("held"), st.floats(0, 4) | st.integers(0, 4)),
)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(parcours=st.sampled_from(["primo", "locataire"]), seq=st.lists(events, max_size=30))
def test_local_puzzles_decide_exactly_like_the_engine(parcours, seq):
    engine = Engine(GAME, clock=lambda: 0.0, wall=lambda: 0.0)
    engine.start(parcours=parcours, players=2)
    local = LocalPuzzles(game=GAME, node_id="hall")
    view = GameView(running=True, parcours=parcours)
    for prop, event, value in seq:
        engine.on_event("hall", prop, event, value)
        local.on_event(prop=prop, event=event, value=value, view=view)
        assert local.solved_here == {p for p in LOCAL if engine.puzzles[p].status == "solved"}


def test_the_engine_and_the_node_decide_with_the_same_rules(monkeypatch):
    """Both sides call config/rules.py (tests/config/test_rules.py tests the rules)."""
    callers: dict[str, set[str]] = {}

    def spy(name: str):
        real = getattr(rules, name)

        def called(*args, **kwargs):
            callers.setdefault(name, set()).add(sys._getframe(1).f_globals["__name__"])
            return real(*args, **kwargs)
        return called

    for name in ("available", "advance", "complete"):
        monkeypatch.setattr(rules, name, spy(name))
    engine = Engine(GAME, clock=lambda: 0.0, wall=lambda: 0.0)
    engine.start(parcours="primo", players=2)
    assert [type(e).__name__ for e in engine.on_event("hall", "keypad", "code", "1")][:1] == ["PropCommand"]
    local = LocalPuzzles(game=GAME, node_id="hall")
    assert [p.id for p in local.on_event(prop="keypad", event="code", value="1",
                                         view=GameView(running=True, parcours="primo"))] == ["code"]
    for name in ("available", "advance", "complete"):
        assert {"controller.engine", "nodes.autonomy"} <= callers[name], name


def test_without_a_known_parcours_either_answer_opens_and_known_solves_count():
    local = LocalPuzzles(game=GAME, node_id="hall")
    unknown = GameView(running=True)
    assert [p.id for p in local.on_event(prop="keypad", event="code", value="2", view=unknown)] == ["code"]
    local.new_session("s2")
    assert [p.id for p in local.on_event(prop="keypad", event="code", value="1", view=unknown)] == ["code"]
    local.new_session("s3")
    told = GameView(running=True, parcours="primo", solved=frozenset({"code"}))
    assert local.on_event(prop="keypad", event="code", value="1", view=told) == []   # solved already
    assert [p.id for p in local.on_event(prop="keypad", event="code", value="4", view=told)] == ["pick"]
