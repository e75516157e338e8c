"""A node on its own: local puzzles decided like the engine does, locks held, outbox kept.

No broker here (the agent points at a closed port): what is tested is the node's own
judgement. tests/faults/ runs the same over a real Mosquitto.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from config import rules
from config.loader import parse_game
from controller.engine import Engine
from nodes.agent import NodeAgent
from nodes.autonomy import GameView, LocalPuzzles
from nodes.outbox import Outbox
from protocol.contract import Command, ControllerStatus, EventAck, PropEvent, TopicParts
from protocol.mqtt import BrokerAddress

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


# -- the agent ------------------------------------------------------------------------------
def make_agent(tmp_path: Path) -> tuple[NodeAgent, MockFactory]:
    factory = MockFactory()
    agent = NodeAgent(game=GAME, node_id="hall", broker=BrokerAddress("127.0.0.1", 9),
                      pin_factory=factory, simulate=True, data_dir=tmp_path)
    return agent, factory


def controller_says(agent: NodeAgent, **fields: object) -> None:
    status = ControllerStatus(**{"online": True, "boot_id": "ctl1", "session": "s1", "running": True,
                                 "heartbeat": 1.0, "parcours": "primo", "solved": [], "acks": {},
                                 **fields})
    agent._on_controller_status(status, retained=False, epoch=agent._epoch)


@pytest.fixture
def agent(tmp_path: Path):
    agent, factory = make_agent(tmp_path)
    agent.start()
    agent.factory = factory
    yield agent
    agent.stop()


def lock(agent: NodeAgent, prop: str = "box") -> None:
    agent._handle(TopicParts("set", "hall", prop), Command(id=f"c{time.monotonic_ns()}", action="lock"))


def test_alone_too_long_during_a_game_the_node_opens_its_own_box(agent):
    lock(agent)
    relay = agent.factory.pin(17)
    assert relay.state
    controller_says(agent)
    assert not agent.autonomous, "the controller just spoke"
    agent.simulators["keypad"].perform("type", "1")
    assert relay.state, "with the controller there, the node decides nothing"
    agent._ctl.last_heard = time.monotonic() - 6     # silent past autonomy_after_s (5 s)
    assert agent.autonomous
    agent.simulators["keypad"].perform("type", "2")  # the locataire code: not this game's
    assert relay.state
    agent.simulators["keypad"].perform("type", "1")
    assert not relay.state, "the local puzzle opened its lock"
    kinds = [(e.prop, e.event.type, e.event.value) for e in agent.outbox][-3:]
    assert kinds == [("node", "solved_locally", "code"), ("keypad", "code", "1"),
                     ("keypad", "key", "1")]
    assert agent.status()["holds"] == {"box": agent.outbox.unsent()[-3].event.seq}
    # a relock sent by a controller that has not heard of it yet is refused...
    lock(agent)
    assert not relay.state and agent.metrics["held_commands"] == 1
    # ...until it acknowledges the event that says why the box is open
    controller_says(agent, solved=["code"], acks={"hall": EventAck(boot_id=agent.boot_id, seq=agent._seq)})
    assert agent.status()["holds"] == {} and len(agent.outbox) == 0
    lock(agent)
    assert relay.state


def test_alone_the_node_never_locks_anything_itself(agent):
    controller_says(agent)
    agent._ctl.last_heard = time.monotonic() - 6
    relay = agent.factory.pin(17)
    assert not relay.state
    agent.simulators["lever"].perform("press")
    agent.simulators["keypad"].perform("type", "3")       # solves "both", whose action is lock
    assert "both" in agent.local.solved_here
    assert not relay.state and agent.metrics["local_locks_skipped"] == 1


def test_emergency_input_opens_at_once_without_any_broker_and_holds_the_lock_open(agent):
    lock(agent)
    relay = agent.factory.pin(17)
    controller_says(agent)
    agent.factory.pin(26).drive_low()
    assert not relay.state, "released before the handler returned"
    assert [e.event.type for e in agent.outbox][-1] == "emergency"
    lock(agent)
    assert not relay.state, "held open until the controller has heard of the emergency"
    controller_says(agent, acks={"hall": EventAck(boot_id=agent.boot_id, seq=agent._seq)})
    lock(agent)
    assert relay.state


def test_events_left_by_a_crashed_run_are_delivered_by_the_next_one(tmp_path: Path):
    path = tmp_path / "auto-hall.outbox.jsonl"
    old = Outbox(path=path)
    for seq in (7, 8):
        old.append("keypad", PropEvent(boot_id="oldboot", seq=seq, type="code", value=str(seq), ts=1.0),
                   sent=False)
    old.close()
    agent, _factory = make_agent(tmp_path)
    agent.start()
    try:
        entries = list(agent.outbox)
        assert [(e.event.boot_id, e.event.seq, e.event.value, e.event.replayed, e.origin)
                for e in entries] == [(agent.boot_id, 1, "7", True, ("oldboot", 7)),
                                      (agent.boot_id, 2, "8", True, ("oldboot", 8))]
        # the old controller had handled the first one after all
        controller_says(agent, acks={"hall": EventAck(boot_id="oldboot", seq=7)})
        assert [e.event.value for e in agent.outbox] == ["8"]
        assert agent.metrics["leftover_events_already_handled"] == 1
    finally:
        agent.stop()


def test_a_retained_controller_status_after_a_reconnect_is_not_taken_for_a_live_controller(agent):
    # As after a broker restart with persistence: the node is back first, and the retained
    # status says "online" for a controller that has not reconnected (and subscribed) yet.
    agent.connected.set()
    with agent._conn_lock:
        agent._epoch += 1
    status = ControllerStatus(online=True, boot_id="ctl1", session="s1", running=True, heartbeat=1.0,
                              acks={})
    agent._on_controller_status(status, retained=True, epoch=agent._epoch)
    assert agent.controller_online and not agent._deliverable(), "events wait in the outbox"
    agent.simulators["lever"].perform("press")
    assert agent.outbox.has_unsent()
    agent._on_controller_status(status, retained=False, epoch=agent._epoch)   # a live heartbeat
    assert agent._deliverable()
    assert not agent.outbox.has_unsent(), "the backlog went out, in order"
    agent.connected.clear()
