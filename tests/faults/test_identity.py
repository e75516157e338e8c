"""Node identity, seen from outside: boots of a node played by bare MQTT clients
(tests/faults/rawnode.py: raw JSON, none of our node code) against the controller — a
real process killed with ``kill -9``, or in-process and restarted — over a real Mosquitto.

What the game master sees: a room that rebooted fast, whatever the order its old and new
boot's messages arrive in and whenever the controller restarts, shows online within one
heartbeat of its new boot; an old boot's event takes nothing over; an event of an earlier
game solves nothing in this one. The numbers go to docs/reliability.md (run with ``-s``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.main import create_app
from controller.service import GameService
from protocol.mqtt import BrokerAddress
from tests.faults.conftest import ControllerProcess, fault_game, game_file, wait_for
from tests.faults.rawnode import RawNode
from tests.support.netfault import TcpProxy

pytestmark = pytest.mark.mosquitto

APARTMENT = "faults"
KEEPALIVE = 3.0          # the raw nodes' heartbeat: every 1 s


def node_of(state: dict[str, Any] | None, node: str) -> dict[str, Any]:
    assert state is not None
    return next(n for n in state["nodes"] if n["id"] == node)


def hall_of(state: dict[str, Any] | None) -> dict[str, Any]:
    return node_of(state, "hall")


class Controller:
    """The controller in-process (TestClient) on one database; restartable."""

    def __init__(self, broker: Any, db: Path) -> None:
        self.broker, self.db = broker, db
        self.client: TestClient | None = None

    def start(self) -> Controller:
        app = create_app(game=fault_game(), broker=BrokerAddress(self.broker.host, self.broker.port),
                         demo=True, db_path=self.db)
        self.client = TestClient(app, headers={"Content-Type": "application/json"})
        self.client.__enter__()
        wait_for(lambda: self.service.bridge.connected, what="the controller to connect")
        return self

    def stop(self) -> None:
        if self.client is not None:
            self.client.__exit__(None, None, None)
            self.client = None

    @property
    def service(self) -> GameService:
        assert self.client is not None
        return self.client.app.state.service  # type: ignore[no-any-return]

    def state(self) -> dict[str, Any]:
        assert self.client is not None
        return self.client.get("/api/state").json()  # type: ignore[no-any-return]

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self.client is not None
        return self.client.post(path, json=body or {})


@pytest.fixture
def nodes() -> Iterator[list[RawNode]]:
    made: list[RawNode] = []
    yield made
    for node in made:
        node.close()


@pytest.fixture
def controller(mosquitto: Any, tmp_path: Path) -> Iterator[Controller]:
    ctl = Controller(mosquitto, tmp_path / "escape.db")
    yield ctl
    ctl.stop()


def raw(nodes: list[RawNode], broker: Any, boot: str, boot_n: int | None, *, node: str = "hall",
        **kw: Any) -> RawNode:
    played = RawNode(broker, apartment=APARTMENT, node=node, boot=boot, boot_n=boot_n,
                     keepalive=KEEPALIVE, **kw)
    nodes.append(played)
    return played


# -- finding: a fast reboot, its old will after the new birth, a controller restart -------------
@pytest.mark.parametrize("counters", [True, False], ids=["boot_n", "no_boot_n"])
def test_a_fast_reboot_then_a_controller_restart_shows_the_room_online_within_one_heartbeat(
        mosquitto, tmp_path, wire, processes, nodes, counters):
    """The entrée (its door is an exit door) reboots fast while the controller is dead:
    the old connection's will lands after the new birth and stays retained. The next
    controller reads it first; the room must be online at its new boot's first heartbeat,
    the pre-game check must not wait for it, and its exit door waits for the game master —
    once: a controller restarted again does not take the same reboot for a new one."""
    path, db = game_file(tmp_path), tmp_path / "escape.db"
    status_topic = f"escape/{APARTMENT}/nodes/entree/status"
    wire.subscribe(status_topic)

    def start(name: str) -> ControllerProcess:
        proc = ControllerProcess(game=path, db=db, broker=mosquitto, log=tmp_path / f"{name}.log")
        processes.append(proc)
        wait_for(lambda: proc.state() is not None, timeout=20, what=f"{name} to answer")
        return proc

    def entree(proc: ControllerProcess) -> dict[str, Any]:
        return node_of(proc.state(), "entree")

    def door(proc: ControllerProcess) -> dict[str, Any]:
        return next(p["desired"] for p in proc.state()["props"] if (p["node"], p["id"]) == ("entree", "door_lock"))

    controller = start("c1")
    with TcpProxy(upstream=(mosquitto.host, mosquitto.port)) as old_link:
        old = raw(nodes, mosquitto, "bootold", 1 if counters else None, node="entree",
                  via=(old_link.host, old_link.port))
        old.birth()
        old.beat()
        wait_for(lambda: entree(controller)["boot_id"] == "bootold", what="the old boot online")
        reply = controller.post("/api/game/start", {"parcours": "primo", "players": 2})
        assert reply.status_code == 200, reply.text
        assert door(controller)["action"] == "lock"
        controller.kill()
        # The Pi reboots fast: the new boot is up while the broker still holds the old
        # connection; then the old connection ends, and the broker publishes its will.
        new = raw(nodes, mosquitto, "bootnew", 2 if counters else None, node="entree")
        new.birth()
        old_link.cut()
        wait_for(lambda: any(json.loads(m.payload).get("boot_id") == "bootold"
                             and json.loads(m.payload)["online"] is False
                             for m in wire.received(status_topic)), what="the old boot's will")
    last = json.loads(wire.received(status_topic)[-1].payload)
    assert (last["boot_id"], last["online"]) == ("bootold", False), "the retained status is the old will"

    controller = start("c2")
    wait_for(lambda: entree(controller)["offline_reason"] == "will", what="c2 to read the retained will")
    first_beat = new.beat_every()
    wait_for(lambda: entree(controller)["online"], timeout=3 * new.heartbeat,
             what="the room online with its new boot's heartbeats")
    converged = time.monotonic() - first_beat
    assert entree(controller)["boot_id"] == "bootnew"
    assert converged < new.heartbeat, f"{converged:.3f} s: more than one heartbeat interval"
    wait_for(lambda: new.resyncs >= 1, what="the controller to ask the new boot for its birth and states")
    check = controller.state()["check"]["props"]
    assert [p for p in check if p["node"] == "entree" and "hors ligne" in p.get("detail", "")] == [], \
        "the pre-game check still waits for the room"
    assert (door(controller)["action"], door(controller)["relock_pending"]) == ("unlock", True), \
        "an exit door opened by a reboot waits for the game master"

    # the game master relocks it; a controller restarted again sees the same boot
    # (a raw boot does not report its relay: the order is accepted, not confirmed)
    assert controller.post("/api/props/entree/door_lock/lock").status_code in (200, 202)
    wait_for(lambda: door(controller)["action"] == "lock", what="the relock")
    wait_for(lambda: json.loads(wire.received(status_topic)[-1].payload).get("boot_id") == "bootnew",
             what="the new boot's birth retained again (its answer to the resync)")
    controller.kill()
    controller = start("c3")
    wait_for(lambda: entree(controller)["online"], what="c3 to see the room")
    assert (door(controller)["action"], door(controller)["relock_pending"]) == ("lock", False), \
        "one reboot opened the exit door twice"
    assert entree(controller)["reboots"] == 0
    print(f"\n[identity] fast reboot, old will retained, controller kill -9 ({'with' if counters else 'without'}"
          f" boot_n): online {converged * 1000:.0f} ms after the new boot's first heartbeat "
          f"(heartbeat {new.heartbeat:.1f} s)")


# -- finding: one event of an older boot takes over the node's identity ------------------------
def test_an_old_boots_event_is_a_replayed_fact_not_an_identity(mosquitto, wire, controller, nodes):
    controller.start()
    new = raw(nodes, mosquitto, "bootnew", 5)
    new.birth()
    new.beat_every()
    wait_for(lambda: hall_of(controller.state())["online"], what="the room online")
    old = raw(nodes, mosquitto, "bootold", 4)
    old.event("bell", "press", None, seq=7)
    old.event("bell", "press", None, seq=7)     # QoS 1 may deliver it twice
    wait_for(lambda: controller.service.bridge.metrics["duplicate_events"] >= 1,
             what="the controller to handle both copies")
    hall = hall_of(controller.state())
    assert (hall["boot_id"], hall["online"]) == ("bootnew", True), "an old event took the identity"
    metrics = controller.state()["mqtt"]["metrics"]
    assert metrics["other_boot_events"] == 1 and metrics["duplicate_events"] == 1
    bell = next(p for p in controller.state()["props"] if (p["node"], p["id"]) == ("hall", "bell"))
    assert bell["last_event"]["type"] == "press", "the fact is applied (once)"
    # the current boot's heartbeats still count: no silence verdict past the limit
    limit_passed = time.monotonic() + 1.2 * KEEPALIVE + 0.5
    while time.monotonic() < limit_passed:
        assert hall_of(controller.state())["online"], "the room went offline (silent)"
        time.sleep(0.1)
    # and the old boot's will is not taken as the current one's
    old.will()
    wait_for(lambda: controller.service.bridge.metrics["stale_statuses"] >= 1, what="the old will handled")
    assert hall_of(controller.state())["online"] is True
    acks = controller.service.bridge.status_source()["acks"]
    assert acks["hall"].boot_id == "bootnew"


# -- finding: seq = 0 -----------------------------------------------------------------------------
def test_an_event_with_seq_0_is_refused_counted_and_logged(mosquitto, controller, nodes, caplog):
    caplog.set_level(logging.WARNING, logger="controller.mqtt")
    controller.start()
    node = raw(nodes, mosquitto, "boot1", 1)
    node.birth()
    node.beat_every()
    wait_for(lambda: hall_of(controller.state())["online"], what="the room online")
    assert controller.post("/api/game/start", {"parcours": "primo", "players": 2}).status_code == 200
    node.event("mailbox_keypad", "code", "0412", seq=0)
    wait_for(lambda: controller.service.bridge.metrics["bad_payloads"] >= 1, what="seq 0 refused")
    assert any("seq" in r.getMessage() and "greater than or equal to 1" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    node.event("mailbox_keypad", "code", "0412", seq=1)   # seq starts at 1: a new event
    wait_for(lambda: controller.service.engine.puzzles["mailbox"].status == "solved",
             what="the event of seq 1 to solve the mailbox")
    metrics = controller.state()["mqtt"]["metrics"]
    assert metrics.get("duplicate_events", 0) == 0 and metrics["bad_payloads"] == 1


# -- finding: an event of an earlier game solves a puzzle of this one ---------------------------
def test_an_event_of_an_earlier_game_solves_nothing_in_this_one(mosquitto, controller, nodes):
    controller.start()
    node = raw(nodes, mosquitto, "boot1", 1)
    node.birth()
    node.beat_every()
    wait_for(lambda: hall_of(controller.state())["online"], what="the room online")
    first = controller.post("/api/game/start", {"parcours": "primo", "players": 2}).json()["session"]
    assert controller.post("/api/game/stop").status_code == 200
    assert controller.post("/api/game/reset").status_code == 200
    second = controller.post("/api/game/start", {"parcours": "primo", "players": 2}).json()["session"]
    assert first != second

    def mailbox() -> str:
        return next(p for p in controller.state()["game"]["puzzles"] if p["id"] == "mailbox")["status"]

    seen = controller.service.events_seen
    node.event("mailbox_keypad", "code", "0412", seq=1, session=first, replayed=True)
    wait_for(lambda: controller.service.events_seen > seen, what="the old game's event handled")
    assert mailbox() != "solved", "a code typed in the earlier game solved this one"
    assert controller.state()["mqtt"]["metrics"]["other_session_events"] == 1
    wait_for(lambda: any(r["kind"] == "prop" and r["value"] == "0412" for r in controller.client.get(
        f"/api/history/sessions/{first}/events").json()["events"]), what="the event in its own game's log")
    node.event("mailbox_keypad", "code", "0412", seq=2, session=second, replayed=True)
    wait_for(lambda: mailbox() == "solved", what="this game's (replayed) event to solve it")


# -- every order, a controller restarted between two messages, over Mosquitto -------------------
#: (name, the messages in delivery order, where the controller restarts: before that index)
ORDERS: list[tuple[str, list[str], int]] = [
    ("old will after new birth, restart", ["bA", "hA", "bB", "wA"], 4),
    ("old will after new birth, restart before it", ["bA", "hA", "bB", "eA", "wA"], 3),
    ("new boot's events before its heartbeat, restart", ["bA", "eB", "bB", "wA", "eA"], 2),
    ("old birth after new birth (a claim), restart", ["bB", "hB", "bA", "eA"], 4),
    ("everything old after everything new, restart", ["bB", "hB", "eB", "bA", "hA", "eA", "wA"], 7),
    ("old will first, restart after it", ["wA", "bB", "eA", "bA"], 1),
]


@pytest.mark.parametrize("counters", [True, False], ids=["boot_n", "no_boot_n"])
def test_reordered_boots_with_a_restart_converge_over_mosquitto(mosquitto, tmp_path, nodes, counters):
    lines: list[str] = []
    for name, order, restart_at in ORDERS:
        if not counters and order.index("bA") > order.index("bB"):
            continue   # nothing orders two boots without counters but the broker (see unit tests)
        with ExitStack() as stack:
            ctl = Controller(mosquitto, tmp_path / f"{len(lines)}.db").start()
            stack.callback(ctl.stop)
            a = raw(nodes, mosquitto, f"a{len(lines)}", 1 if counters else None)
            b = raw(nodes, mosquitto, f"b{len(lines)}", 2 if counters else None)
            a.clear_status()   # the previous order's retained status
            a.answers_resync = False   # the old boot is gone: only its late messages remain
            seq = {"A": 0, "B": 0}
            for i, msg in enumerate(order):
                if i == restart_at:
                    ctl.stop()
                    ctl.start()
                boot = {"A": a, "B": b}[msg[1]]
                if msg[0] == "b":
                    boot.birth()
                elif msg[0] == "w":
                    boot.will()
                elif msg[0] == "h":
                    boot.beat()
                else:
                    seq[msg[1]] += 1
                    boot.event("bell", "press", None, seq=seq[msg[1]])
            if restart_at == len(order):
                ctl.stop()
                ctl.start()
            first_beat = b.beat_every()
            wait_for(lambda ctl=ctl, b=b: (h := hall_of(ctl.state()))["online"] and h["boot_id"] == b.boot,
                     timeout=3 * b.heartbeat, what=f"{name}: the new boot online")
            took = time.monotonic() - first_beat
            assert took < b.heartbeat, f"{name}: {took:.3f} s"
            lines.append(f"{name}: {took * 1000:.0f} ms")
            b.close()
            a.close()
    print(f"\n[identity] reorders over Mosquitto ({'with' if counters else 'without'} boot_n), "
          "new boot's first heartbeat → console online:\n  " + "\n  ".join(lines))
