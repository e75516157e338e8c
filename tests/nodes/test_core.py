"""The node's core, driven through its inputs and read through its outputs only.

No thread, no broker, no pin, no sleep: time is a number passed in. The port is a
recording fake (``Wire``): what the core published, what it applied to which prop. The
same rules run over a real broker in tests/faults/test_node_safety.py and
tests/nodes/test_agent.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from transitions import MachineError

from config.loader import parse_game
from nodes.autonomy import GameView
from nodes.core import NodeCore
from nodes.identity import Identity
from nodes.link import LINK_TRANSITIONS, ControllerLink, LinkState
from nodes.outbox import Outbox
from props.exc import UnknownAction
from protocol.contract import (
    NODE_PROP,
    Command,
    ControllerStatus,
    Emergency,
    EventAck,
    NodeHealth,
    NodeStatus,
    PropEvent,
    Topics,
)

GAME = parse_game("""\
apartment: {id: core, name: Cœur, autonomy_after_s: 5}
nodes:
  - id: hall
    label: Hall
    emergency: {pin: 26}
    props:
      - {id: keypad, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20], code_length: 1, debounce: 0}
      - {id: box, kind: maglock, relay: 17, door: 27}
      - {id: lamp, kind: led, pin: 24}
puzzles:
  - {id: code, label: Code, theme: budget, room: hall, local: true,
     solve: {when: event, prop: hall.keypad, event: code, equals: "1"},
     actions: [{do: unlock, target: hall.box}, {do: budget, amount: -10, label: x}]}
  - {id: shut, label: Fermer, theme: diy, room: hall, local: true,
     solve: {when: event, prop: hall.keypad, event: code, equals: "3"},
     actions: [{do: lock, target: hall.box}]}
  - {id: final, label: Fin, theme: story, room: hall, requires: [code],
     solve: {when: event, prop: hall.keypad, event: code, equals: "9"}, final: true}
""").game
T = Topics("core")
KINDS = {p.id: p.kind for p in GAME.node("hall").props}
KEEPALIVE = 3          # heartbeat every 1 s


@dataclass
class Wire:
    """The core's port: a maglock relay, a door, and every message published."""

    connected: bool = True
    relays: dict[str, bool] = field(default_factory=lambda: {"box": False})
    door: str = "closed"
    published: list[tuple[str, bytes, bool, int]] = field(default_factory=list)
    applied: list[tuple[str, str]] = field(default_factory=list)
    saved_emergency: list[Emergency | None] = field(default_factory=list)
    saved_views: list[GameView] = field(default_factory=list)
    #: how many times the core read the Pi's health
    health_reads: int = 0
    #: called once, just before / just after the next action: another thread's move in
    #: the middle of ours
    before: Callable[[], None] | None = None
    after: Callable[[], None] | None = None

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> bool:
        if not self.connected:
            return False
        self.published.append((topic, payload, retain, qos))
        return True

    def apply(self, prop: str, action: str, params: Mapping[str, Any]) -> None:
        if self.before is not None:
            hook, self.before = self.before, None
            hook()
        if prop == "box" and action in ("lock", "unlock", "reset"):
            self.relays["box"] = action != "unlock"
        elif not (prop == "lamp" and action in ("on", "off")) and action != "reset":
            raise UnknownAction(f"{prop} does not accept {action!r}")
        self.applied.append((prop, action))
        if self.after is not None:
            hook, self.after = self.after, None
            hook()

    def state(self, prop: str) -> Mapping[str, Any]:
        if prop == "box":
            return {"engaged": self.relays["box"], "door": self.door}
        return {}

    def engaged(self, prop: str) -> bool:
        return self.relays.get(prop, False)

    def save_emergency(self, emergency: Emergency | None) -> None:
        self.saved_emergency.append(emergency)

    def save_view(self, view: GameView, *, controller_boot: str | None) -> None:
        self.saved_views.append(view)

    def health(self) -> NodeHealth | None:
        self.health_reads += 1
        return NodeHealth(cpu_temp_c=50.0 + self.health_reads, under_voltage=False)

    # -- reading what went out ------------------------------------------------------
    def on(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p, _r, _q in self.published if t == topic]

    def states(self, prop: str = "box") -> list[dict[str, Any]]:
        return self.on(T.prop_state("hall", prop))

    def events(self) -> list[PropEvent]:
        return [PropEvent.model_validate_json(p) for t, p, _r, _q in self.published
                if T.parse(t).kind == "event"]

    def take(self) -> list[tuple[str, bytes, bool, int]]:
        out, self.published = self.published, []
        return out


def make_core(tmp_path: Path, wire: Wire | None = None) -> tuple[NodeCore, Wire]:
    wire = wire or Wire()
    identity = Identity(node=GAME.node("hall"), boot_id="boot1", boot_n=1, keepalive=KEEPALIVE,
                        simulated=True)
    core = NodeCore(game=GAME, node_id="hall", kinds=KINDS, ports=wire, now=0.0,
                    outbox=Outbox(path=tmp_path / "outbox.jsonl"), identity=identity)
    return core, wire


def status(boot: str = "ctl1", **fields: Any) -> ControllerStatus:
    return ControllerStatus(**{"online": True, "boot_id": boot, "session": "s1", "running": True,
                               "heartbeat": 1.0, "parcours": "primo", "solved": [], "acks": {},
                               "uptime": 100.0, **fields})


def live(core: NodeCore, *, now: float = 1.0, **fields: Any) -> None:
    """Connected, subscribed, and a live controller heard on this connection."""
    if core.link.state is LinkState.OFFLINE:
        core.connected()
        echo(core, now=now)
    core.controller_status(status(**fields), retained=False, now=now)


def echo(core: NodeCore, *, now: float) -> None:
    """Our birth, read back on our status topic."""
    raw = next(p for t, p, _r, _q in reversed(core.ports.published) if t == T.node_status("hall"))
    core.own_status(NodeStatus.model_validate_json(raw), raw, now=now)


def cmd(action: str, cid: str, **fields: Any) -> Command:
    return Command(id=cid, action=action, **fields)


def release(core: NodeCore, cid: str, *, receipt: int) -> None:
    """An unlock of the box as the shell takes it: the release lane, then the worker."""
    core.lane.release("box", cmd("unlock", cid), receipt=receipt)
    core.released("box")


def alert(core: NodeCore, emergency: Emergency, *, receipt: int) -> None:
    """The apartment's emergency (or its clear) as the shell takes it."""
    changed = core.lane.emergency(emergency, receipt=receipt)
    if changed or (emergency.active and core.gate.emergency is not None):
        core.emergency_booked(emergency, changed=changed)


# -- the command gate -----------------------------------------------------------------
def test_a_release_passes_every_filter_and_a_lock_passes_none(tmp_path):
    core, wire = make_core(tmp_path)
    live(core, now=1.0)                        # the controller's uptime: 100 s at 1.0
    core.command("box", cmd("lock", "c1"), receipt=1, now=2.0)
    assert wire.relays["box"]
    refused = {"duplicate_commands": cmd("lock", "c1"),
               "expired_commands": cmd("lock", "c2", controller="ctl1", issued=60.0, ttl=30),
               "foreign_session": cmd("lock", "c3", session="s0")}
    core.command("box", cmd("unlock", "u0"), receipt=2, now=2.0)
    wire.take()
    for counter, command in refused.items():
        core.command("box", command, receipt=3, now=2.0)
        assert core.metrics[counter] == 1
    assert not wire.relays["box"]
    assert [s["engaged"] for s in wire.states()] == [False] * 3, "each refusal is reported"
    # an unlock 100 s old, of another session, its id applied already: applied again
    core.command("box", cmd("lock", "c4"), receipt=4, now=2.0)
    stale = cmd("unlock", "u0", controller="ctl1", issued=0.0, ttl=1, session="other")
    core.command("box", stale, receipt=5, now=2.0)
    assert not wire.relays["box"] and core.metrics["repeated_releases"] == 1
    core.command("box", cmd("lock", "c5"), receipt=6, now=2.0)
    release(core, "u0", receipt=7)            # the same, taken by the release lane
    assert not wire.relays["box"] and core.metrics["repeated_releases"] == 2


def test_a_lock_received_before_a_release_applied_first_is_refused(tmp_path):
    core, wire = make_core(tmp_path)
    live(core)
    release(core, "u1", receipt=7)             # taken at once, ahead of what waits...
    core.command("box", cmd("lock", "l1"), receipt=6, now=2.0)   # ...and then this one's turn
    assert not wire.relays["box"] and core.metrics["superseded_commands"] == 1
    core.command("box", cmd("lock", "l2"), receipt=8, now=2.0)   # a lock after it: applied
    assert wire.relays["box"]


def test_the_later_release_wins_whichever_thread_gets_there_first(tmp_path):
    core, wire = make_core(tmp_path)
    live(core)
    # the release lands after the gate let a lock through, before the lock engages
    wire.before = lambda: core.lane.release("box", cmd("unlock", "u1"), receipt=9)
    core.command("box", cmd("lock", "l1"), receipt=8, now=2.0)
    assert not wire.relays["box"] and core.metrics["superseded_commands"] == 1
    # a lock engages between the lane's release of the relay and its books
    wire.after = lambda: wire.relays.update(box=True)
    release(core, "u2", receipt=11)
    assert not wire.relays["box"] and core.metrics["superseded_commands"] == 2
    assert wire.states()[-1]["ack"] == "u2" and wire.states()[-1]["engaged"] is False


def test_each_command_publishes_the_state_once_with_its_ack(tmp_path):
    core, wire = make_core(tmp_path)
    live(core)
    wire.take()
    core.command("box", cmd("lock", "c1"), receipt=1, now=2.0)
    core.publish_state("box")              # the relay's own callback, handed over: same state
    assert [(s["engaged"], s["ack"]) for s in wire.states()] == [(True, "c1")]
    wire.door = "open"                     # the door moves: a new state
    core.publish_state("box")
    assert [(s["door"], s["ack"]) for s in wire.states()] == [("closed", "c1"), ("open", "c1")]


def test_an_unknown_prop_or_action_changes_nothing(tmp_path):
    core, wire = make_core(tmp_path)
    live(core)
    core.command("nope", cmd("lock", "a"), receipt=1, now=2.0)
    core.command("box", cmd("explode", "b"), receipt=2, now=2.0)
    assert not wire.relays["box"] and wire.applied == []
    assert core.metrics["unknown_prop"] == 1 and core.metrics["rejected_commands"] == 1
    assert wire.states()[-1]["ack"] == "b", "refused by the prop: still reported"


# -- the emergency ----------------------------------------------------------------------
def test_the_emergency_holds_every_lock_and_its_clear_relocks_nothing(tmp_path):
    core, wire = make_core(tmp_path)
    live(core)
    core.command("box", cmd("lock", "c1"), receipt=1, now=2.0)
    emergency = Emergency(active=True, id="em1", who="gm")
    alert(core, emergency, receipt=5)
    assert not wire.relays["box"] and core.gate.held_open == {"box"}
    assert wire.saved_emergency == [emergency] and wire.states()[-1]["engaged"] is False
    core.command("box", cmd("lock", "c2"), receipt=6, now=2.0)
    core.command("box", cmd("reset", "c3"), receipt=7, now=2.0)
    assert not wire.relays["box"] and core.metrics["emergency_refused"] == 2
    alert(core, emergency, receipt=8)         # again on a reconnection: released again, not saved
    assert wire.saved_emergency == [emergency] and core.metrics["emergency_releases"] == 2
    alert(core, Emergency(active=False, id="em1", who="gm"), receipt=9)
    assert not wire.relays["box"] and core.gate.held_open == frozenset()
    assert wire.saved_emergency == [emergency, None]
    alert(core, Emergency(active=False, id="em1", who="gm"), receipt=10)   # said again: nothing
    assert wire.saved_emergency == [emergency, None] and core.metrics["emergency_clears"] == 1
    core.command("box", cmd("lock", "c4"), receipt=11, now=2.0)
    assert wire.relays["box"], "a lock after the clear works"


def test_an_ended_emergency_handed_back_by_a_broker_on_an_old_save_is_ignored(tmp_path):
    core, wire = make_core(tmp_path)
    live(core)
    alert(core, Emergency(active=True, id="em1", who="gm"), receipt=1)
    alert(core, Emergency(active=False, id="em1", who="gm"), receipt=2)
    core.command("box", cmd("lock", "c1"), receipt=3, now=2.0)
    assert wire.relays["box"]
    published = len(wire.published)
    alert(core, Emergency(active=True, id="em1", who="gm"), receipt=4)   # the old save's copy
    assert wire.relays["box"], "a replay of an ended emergency opens nothing"
    assert core.gate.emergency is None and core.metrics["stale_emergencies"] == 1
    assert wire.saved_emergency[-1] is None and len(wire.published) == published
    alert(core, Emergency(active=True, id="em2", who="gm"), receipt=5)   # a new one: at once
    assert not wire.relays["box"] and core.gate.held_open == {"box"}


def test_an_emergency_kept_on_disk_refuses_every_lock_from_the_start(tmp_path):
    core, wire = make_core(tmp_path)
    core.restore(emergency=Emergency(active=True, id="em0", who="gm"), view=None, leftovers=[])
    live(core)
    core.command("box", cmd("lock", "c1"), receipt=1, now=2.0)
    assert not wire.relays["box"] and core.metrics["emergency_refused"] == 1


def test_the_emergency_input_holds_the_locks_until_the_controller_acknowledges_it(tmp_path):
    core, wire = make_core(tmp_path)
    live(core)
    core.command("box", cmd("lock", "c1"), receipt=1, now=2.0)
    core.lane.emergency_input()               # the button's thread: released, held at once
    assert not wire.relays["box"] and core.gate.why_held("box") is not None
    core.emergency_pressed(now=3.0)           # the worker: the event
    event = wire.events()[-1]
    assert (event.type, event.value) == ("emergency", True)
    core.command("box", cmd("lock", "c2"), receipt=2, now=3.0)
    assert not wire.relays["box"] and core.metrics["held_commands"] == 1
    assert core.gate.why_held("box") is not None, "a self-test would be refused too"
    core.controller_status(status(acks={"hall": EventAck(boot_id="boot1", seq=event.seq)}),
                           retained=False, now=3.5)
    core.command("box", cmd("lock", "c3"), receipt=3, now=3.5)
    assert wire.relays["box"] and len(core.outbox) == 0


# -- identity ----------------------------------------------------------------------------
def test_the_birth_stays_the_retained_truth_whatever_lands_after_it(tmp_path):
    core, wire = make_core(tmp_path)
    core.connected()
    births = wire.on(T.node_status("hall"))
    assert births[0]["online"] and births[0]["boot_n"] == 1 and births[0]["heartbeat"] == 1.0
    assert [s["engaged"] for s in wire.states()] == [False], "every state on connect"
    old_will = NodeStatus(online=False, boot_id="boot0", boot_n=1)
    core.own_status(old_will, old_will.to_bytes(), now=1.0)      # retained from before: older
    assert len(wire.on(T.node_status("hall"))) == 1
    echo(core, now=1.0)
    core.own_status(old_will, old_will.to_bytes(), now=1.1)      # after the echo: republished
    assert len(wire.on(T.node_status("hall"))) == 2 and core.metrics["status_overwritten"] == 1
    other = NodeStatus(online=True, boot_id="twin", boot_n=9)
    echo(core, now=1.2)
    core.own_status(other, other.to_bytes(), now=1.3)            # within an interval: later
    assert len(wire.on(T.node_status("hall"))) == 2 and core.identity.due
    core.tick(1.5)
    assert len(wire.on(T.node_status("hall"))) == 3, "published again at the next heartbeat"
    core.resync()
    assert len(wire.on(T.node_status("hall"))) == 4 and core.metrics["resyncs"] == 1


def test_the_heartbeat_says_alone_and_outbox_and_only_while_connected(tmp_path):
    core, wire = make_core(tmp_path)
    assert core.tick(0.0) == 1.0 and wire.published == [], "not connected: nothing"
    live(core, now=0.5)
    core.prop_event("keypad", "key", "5", now=0.6)
    assert core.tick(0.9) == 1.0, "not due yet"
    assert core.tick(1.0) == 2.0
    beat = wire.on(T.node_heartbeat("hall"))
    assert beat[0]["boot_n"] == 1 and beat[0]["outbox"] == 1 and beat[0]["autonomous"] is False
    assert next(q for t, _p, _r, q in wire.published if t == T.node_heartbeat("hall")) == 0


def test_one_heartbeat_in_ten_seconds_carries_the_pis_health_and_the_first_of_a_connection(tmp_path):
    core, wire = make_core(tmp_path)
    live(core, now=0.5)
    for second in range(1, 25):   # a heartbeat a second (keepalive 3)
        core.tick(float(second))
    beats = wire.on(T.node_heartbeat("hall"))
    with_health = [n for n, beat in enumerate(beats) if "health" in beat]
    assert len(beats) == 24 and with_health == [0, 10, 20]
    assert beats[0]["health"] == {"cpu_temp_c": 51.0, "under_voltage": False}
    assert wire.health_reads == 3, "read only when sent"
    core.disconnected()
    live(core, now=24.5)   # a new connection: the controller may be new too
    core.tick(25.0)
    assert "health" in wire.on(T.node_heartbeat("hall"))[-1]


# -- events: outbox, live controller, acknowledgements --------------------------------------
def test_events_wait_for_a_live_controller_and_go_out_in_order_marked_replayed(tmp_path):
    core, wire = make_core(tmp_path)
    core.prop_event("keypad", "key", "1", now=0.1)       # no broker
    core.connected()
    core.controller_status(status(), retained=True, now=0.2)   # retained: proves nobody listens
    echo(core, now=0.2)
    assert core.link.state is LinkState.WAITING
    core.prop_event("keypad", "key", "2", now=0.3)
    assert wire.events() == [] and len(core.outbox) == 2
    core.controller_status(status(), retained=False, now=0.4)  # live
    assert [(e.seq, e.value, e.replayed) for e in wire.events()] == [(1, "1", True), (2, "2", True)]
    core.prop_event("keypad", "key", "3", now=0.5)
    assert (wire.events()[-1].seq, wire.events()[-1].replayed) == (3, None), "at once, live"
    core.controller_status(status(acks={"hall": EventAck(boot_id="boot1", seq=2)}), retained=False,
                           now=0.6)
    assert [e.event.seq for e in core.outbox] == [3], "forgotten once acknowledged"


def test_after_any_doubt_everything_unacknowledged_is_sent_again(tmp_path):
    core, wire = make_core(tmp_path)
    live(core, now=1.0)
    core.prop_event("keypad", "key", "1", now=1.1)
    wire.take()
    # an old controller boot's will: stale, no doubt
    core.controller_status(ControllerStatus(online=False, boot_id="ctl0"), retained=False, now=1.2)
    assert core.link.state is LinkState.LIVE and core.metrics["stale_controller_wills"] == 1
    # its heartbeats stop: silent after max(3 × 1 s, 1 s + 1 s)
    core.prop_event("keypad", "key", "2", now=4.5)
    assert core.link.state is LinkState.SILENT and wire.events() == []
    core.controller_status(status(), retained=False, now=4.6)
    assert [e.seq for e in wire.events()] == [1, 2], "both again, in order"
    wire.take()
    core.controller_status(ControllerStatus(online=False, boot_id="ctl1"), retained=False, now=5.0)
    assert core.link.state is LinkState.WAITING
    core.controller_status(status(boot="ctl2"), retained=False, now=5.1)
    assert [e.seq for e in wire.events()] == [1, 2], "its will, then a new boot: again"
    wire.take()
    core.disconnected()
    core.connected()
    echo(core, now=6.0)
    core.controller_status(status(boot="ctl2"), retained=False, now=6.1)
    assert [e.seq for e in wire.events()] == [1, 2], "a new connection: again"


def test_with_no_controller_ever_events_go_once_the_retained_messages_are_in(tmp_path):
    core, wire = make_core(tmp_path)
    core.connected()
    core.prop_event("keypad", "key", "1", now=0.1)
    assert wire.events() == [], "not before our birth's echo"
    echo(core, now=0.2)
    assert core.link.state is LinkState.ALONE and [e.seq for e in wire.events()] == [1]
    assert len(core.outbox) == 0, "no controller acknowledges: not kept"


def test_an_emergency_input_the_controller_never_heard_holds_the_locks_after_a_crash(tmp_path):
    # The button pressed, the node killed before the controller handled the event: the next
    # boot keeps the locks open until it has (a lock the controller resends is refused).
    pressed = PropEvent(boot_id="old", seq=4, type="emergency", value=True, ts=1.0)
    core, wire = make_core(tmp_path)
    core.restore(emergency=None, view=None, leftovers=[(NODE_PROP, pressed, None)])
    live(core)
    core.command("box", cmd("lock", "c1"), receipt=1, now=2.0)
    assert not wire.relays.get("box") and core.metrics["held_commands"] == 1
    replayed = next(e for e in wire.events() if e.type == "emergency")
    assert (replayed.boot_id, replayed.replayed) == ("boot1", True)
    core.controller_status(status(acks={"hall": EventAck(boot_id="boot1", seq=replayed.seq)}),
                           retained=False, now=2.5)
    core.command("box", cmd("lock", "c2"), receipt=2, now=2.5)
    assert wire.relays["box"]


def test_events_of_a_crashed_run_are_restamped_and_pruned_by_the_old_boots_ack(tmp_path):
    left = [("keypad", PropEvent(boot_id="old", seq=s, type="code", value=str(s), ts=1.0), None)
            for s in (7, 8)]
    core, _wire = make_core(tmp_path)
    core.restore(emergency=None, view=None, leftovers=left)
    assert [(e.event.boot_id, e.event.seq, e.event.replayed, e.origin) for e in core.outbox] == [
        ("boot1", 1, True, ("old", 7)), ("boot1", 2, True, ("old", 8))]
    core.connected()
    core.controller_status(status(acks={"hall": EventAck(boot_id="old", seq=7)}), retained=True,
                           now=0.1)
    assert [e.event.value for e in core.outbox] == ["8"]
    assert core.metrics["leftover_events_already_handled"] == 1


# -- autonomy -------------------------------------------------------------------------------
def test_alone_too_long_during_a_game_the_node_opens_its_own_box_and_holds_it(tmp_path):
    core, wire = make_core(tmp_path)
    live(core, now=1.0)
    core.command("box", cmd("lock", "c1"), receipt=1, now=1.0)
    core.prop_event("keypad", "code", "1", now=2.0)
    assert wire.relays["box"], "with the controller there, the node decides nothing"
    core.disconnected()
    assert not core.autonomous(5.9) and core.autonomous(6.1), "silent past autonomy_after_s"
    core.prop_event("keypad", "code", "1", now=6.2)
    assert not wire.relays["box"] and core.metrics["local_solves"] == 1
    kinds = [(e.prop, e.event.type, e.event.value) for e in core.outbox][-2:]
    assert kinds == [("node", "solved_locally", "code"), ("keypad", "code", "1")]
    held = core.outbox.unsent()[-2].event.seq
    assert core.gate.holds == {"box": held}
    core.prop_event("keypad", "code", "3", now=6.3)      # its action is a lock: never alone
    assert not wire.relays["box"] and core.metrics["local_locks_skipped"] == 1
    # back: a relock sent before it heard why the box is open is refused...
    live(core, now=7.0)
    assert not core.autonomous(7.0)
    core.command("box", cmd("lock", "c2"), receipt=2, now=7.0)
    assert not wire.relays["box"] and core.metrics["held_commands"] == 1
    # ...until it acknowledges that event
    core.controller_status(status(acks={"hall": EventAck(boot_id="boot1", seq=core.seq)}),
                           retained=False, now=7.1)
    core.command("box", cmd("lock", "c3"), receipt=3, now=7.1)
    assert wire.relays["box"] and core.gate.holds == {}


def test_a_restored_game_view_keeps_local_puzzles_playable(tmp_path):
    core, wire = make_core(tmp_path)
    core.restore(emergency=None, view=GameView(running=True, session="s1", parcours="primo"),
                 leftovers=[])
    assert core.session == "s1" and core.autonomous(5.1)
    core.prop_event("keypad", "code", "1", now=5.2)
    assert ("box", "unlock") in wire.applied


# -- the link, as declared ------------------------------------------------------------------
def test_the_link_table_declares_every_trigger_in_every_state():
    triggers = {row["trigger"] for row in LINK_TRANSITIONS} - {"overdue"}
    for state in LinkState:
        for trigger in triggers:
            link = ControllerLink(started_at=0.0)
            link.machine.set_state(state)
            link.trigger(trigger)   # never a MachineError: each pair is declared
    link = ControllerLink(started_at=0.0)
    with pytest.raises(MachineError):
        link.trigger("overdue")     # only a live link falls silent


@pytest.mark.parametrize(("steps", "end", "deliverable"), [
    (["connect", "subscribed"], LinkState.ALONE, True),
    (["connect", "known", "subscribed"], LinkState.WAITING, False),
    (["connect", "heard", "subscribed"], LinkState.LIVE, True),
    (["connect", "subscribed", "known"], LinkState.WAITING, False),
    (["connect", "subscribed", "heard", "lost"], LinkState.WAITING, False),
    (["connect", "subscribed", "heard", "overdue", "heard"], LinkState.LIVE, True),
    (["connect", "subscribed", "heard", "disconnect", "connect", "subscribed"], LinkState.WAITING, False),
])
def test_the_link_moves_as_declared(steps, end, deliverable):
    link = ControllerLink(started_at=0.0)
    for step in steps:
        link.trigger(step)
    assert link.state is end and link.deliverable(now=0.0) is deliverable
