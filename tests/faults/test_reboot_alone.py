"""Fault: the controller is killed mid-game, then a node reboots while it is still gone.

The controller's last will says "offline" and nothing of the game, so a node that reboots
meanwhile learns from nobody that a game runs. It reads back the last game view the
controller gave it (``nodes/autonomy.py`` ``SavedView``, in its data dir) and still plays
its local puzzles. What players see: the mailbox code still opens the mailbox (and it is
never relocked under their hands). What the game master sees when a controller is back
on the same database: the game resumed, the mailbox solved "by node hall (offline)", every
event of the hall delivered, the budget moved once.
"""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from controller.main import create_app
from protocol.contract import Gesture, NodeHeartbeat, Topics, new_id
from protocol.mqtt import BrokerAddress
from tests.faults.conftest import ControllerProcess, NodeProcess, fault_game, game_file, wait_for

pytestmark = pytest.mark.mosquitto

AUTONOMY_S = 1.0


def test_a_node_rebooted_while_the_controller_is_dead_still_plays_its_local_puzzle(
        mosquitto, tmp_path, wire, processes):
    game, path = fault_game(autonomy_after_s=AUTONOMY_S), game_file(tmp_path, autonomy_after_s=AUTONOMY_S)
    topics = Topics(game.apartment.id)
    db, data_dir = tmp_path / "escape.db", tmp_path / "hall-data"
    state_topic = topics.prop_state("hall", "mailbox_lock")
    wire.subscribe(state_topic, topics.node_heartbeat("hall"), topics.controller_status)

    def spawn_hall() -> NodeProcess:
        proc = NodeProcess(node_id="hall", game=path, broker=mosquitto.address, data_dir=data_dir,
                           log=tmp_path / "hall.log", keepalive=2)
        processes.append(proc)
        return proc

    def mailbox(since: float = 0.0) -> list[dict]:
        return [json.loads(m.payload) for m in wire.received(state_topic, since=since) if m.payload]

    def beats(since: float) -> list[NodeHeartbeat]:
        return [NodeHeartbeat.model_validate_json(m.payload)
                for m in wire.received(topics.node_heartbeat("hall"), since=since)]

    controller = ControllerProcess(game=path, db=db, broker=mosquitto, log=tmp_path / "controller.log")
    processes.append(controller)
    hall = spawn_hall()
    wait_for(lambda: (s := controller.state()) is not None and
             next(n for n in s["nodes"] if n["id"] == "hall")["online"], timeout=20,
             what="the controller to run and see the hall")
    reply = controller.post("/api/game/start", {"parcours": "primo", "players": 2})
    assert reply.status_code == 200, reply.text
    session = reply.json()["session"]
    wait_for(lambda: any(s.get("engaged") is True for s in mailbox()), what="the mailbox to lock")
    budget = controller.state()["game"]["budget"]

    # -- the controller is killed: its will says offline, and nothing of the game ----------
    controller.kill()
    wait_for(lambda: any(b'"online":false' in m.payload for m in wire.received(topics.controller_status)),
             what="the controller's last will")
    # -- then the hall crashes and comes back, the controller still gone ------------------
    hall.kill()
    rebooted_at = time.monotonic()
    hall = spawn_hall()
    wait_for(lambda: any(b.autonomous for b in beats(rebooted_at)), timeout=20,
             what="the rebooted hall to play its local puzzles on its own")
    autonomous_after = time.monotonic() - rebooted_at
    boot = next(b.boot_id for b in beats(rebooted_at))

    # -- players type the mailbox code -----------------------------------------------------
    typed_at = time.monotonic()
    wire.publish(topics.prop_simulate("hall", "mailbox_keypad"),
                 Gesture(id=new_id(), gesture="type", value="0412").to_bytes())
    wait_for(lambda: any(b.outbox and b.outbox >= 2 for b in beats(typed_at)),
             what="the code and the local solve to wait in the hall's outbox")
    assert all(s.get("engaged") is False for s in mailbox(since=rebooted_at)), "open, and staying open"

    # -- a controller is back on the same database ----------------------------------------
    back_at = time.monotonic()
    app = create_app(game=game, broker=BrokerAddress(mosquitto.host, mosquitto.port), db_path=db)
    with TestClient(app) as client:
        service = app.state.service
        assert service.resumed["session"] == session
        wait_for(lambda: service.engine.puzzles["mailbox"].status == "solved", timeout=10,
                 what="the new controller to learn the mailbox was solved")
        caught_up = time.monotonic() - back_at
        puzzle = next(p for p in client.get("/api/state").json()["game"]["puzzles"] if p["id"] == "mailbox")
        assert puzzle["solved_by"] == "node hall (offline)"
        assert service.engine.budget == budget - 100, "the budget moved once"
        wait_for(lambda: any(b.outbox == 0 for b in beats(time.monotonic() - 0.01)) or
                 (service.registry.nodes["hall"].outbox == 0), timeout=10,
                 what="every event of the hall to be acknowledged")
        node = next(n for n in client.get("/api/state").json()["nodes"] if n["id"] == "hall")
        assert node["online"] and node["boot_id"] == boot
        want = service.desired[("hall", "mailbox_lock")]
        assert want.action == "unlock", "the mailbox stays open: the node solved it"
        time.sleep(0.5)   # a relock, if any, would show by now
        assert all(s.get("engaged") is False for s in mailbox(since=typed_at)), \
            "the mailbox was never relocked under the players' hands"
    print(f"\n[reboot alone] hall autonomous {autonomous_after:.2f} s after its restart "
          f"(threshold {AUTONOMY_S} s, counted from its start); the new controller caught up "
          f"{caught_up * 1000:.0f} ms after its start")
