"""What a lock order's confirmation may rest on, and what a restarted controller keeps of
the events it handled — rules the deterministic simulator (simulation/) broke before
they held."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config.game import Game
from controller.check import NODE_FRENCH, CheckStatus, assess
from controller.liveness import SEQS_META
from controller.main import create_app
from controller.mqtt import Incoming
from controller.registry import EventVerdict, Registry
from controller.service import GameService
from controller.store import Store
from props.models import MaglockConfig
from protocol.contract import NodeHeartbeat, NodeStatus, PropEvent, PropState, TopicParts
from protocol.mqtt import BrokerAddress

ROOT = Path(__file__).resolve().parents[2]
KEY = ("hall", "box_lock")


def birth(boot: str = "boot1") -> NodeStatus:
    return NodeStatus(online=True, boot_id=boot, keepalive=3.0, heartbeat=1.0)


@pytest.fixture
def service(tmp_path: Path, game: Game) -> Iterator[GameService]:
    app = create_app(game=game, broker=BrokerAddress("127.0.0.1", 9), db_path=tmp_path / "escape.db")
    with TestClient(app) as client:
        svc = client.app.state.service
        svc.bridge.publish = lambda *_a, **_kw: None
        svc.bridge.send_command = lambda *_a: None
        # no broker here: the transport's failing attempts must not flip the link's state
        svc.bridge.on_link_up = svc.bridge.on_link_down = lambda *_a, **_kw: None
        svc.bridge.connected, svc.bridge.connected_at = True, svc.clock()
        yield svc


def state(engaged: bool, boot: str = "boot1", ack: str | None = None) -> PropState:
    return PropState(boot_id=boot, engaged=engaged, door="closed", ack=ack)


# -- confirmation --------------------------------------------------------------------------
def test_an_order_is_not_confirmed_by_a_report_older_than_it(service: GameService) -> None:
    # The relay was engaged, then a lock is ordered: the report of before says nothing of
    # what the node did with the order (it may have died since).
    service.handle(Incoming(TopicParts("status", "hall"), birth(), retained=False))
    service.handle(Incoming(TopicParts("state", *KEY), state(True), retained=False))
    service.outputs.command(*KEY, "lock")
    want = service.desired[KEY]
    assert want.confirmed_at is None, "confirmed by the report of before the order"
    service.tick()
    assert want.confirmed_at is None
    service.handle(Incoming(TopicParts("state", *KEY), state(True), retained=False))
    assert want.confirmed_at is None, "a live report that answers no command of this order"
    service.handle(Incoming(TopicParts("state", *KEY), state(True, ack=want.command_id), retained=False))
    assert want.confirmed_at is not None, "the node's answer confirms it"


def test_a_late_answer_to_an_earlier_order_does_not_confirm_a_new_one(service: GameService) -> None:
    # The answer to the first unlock, held back by the network, arrives after the lock
    # that followed it and a new unlock: it says "released", of a relay locked since.
    service.handle(Incoming(TopicParts("status", "hall"), birth(), retained=False))
    first = service.outputs.command(*KEY, "unlock")
    lock = service.outputs.command(*KEY, "lock")
    service.handle(Incoming(TopicParts("state", *KEY), state(True, ack=lock), retained=False))
    assert service.desired[KEY].confirmed_at is not None
    service.outputs.command(*KEY, "unlock")
    want = service.desired[KEY]
    service.handle(Incoming(TopicParts("state", *KEY), state(False, ack=first), retained=False))
    assert want.confirmed_at is None, "confirmed by the late answer to another order"
    sent = want.command_id
    want.resend_now()   # resent: the answer to either send confirms
    service.outputs.reconcile()
    resent = want.command_id
    assert resent != sent
    service.handle(Incoming(TopicParts("state", *KEY), state(False, ack=resent), retained=False))
    assert want.confirmed_at is not None


def test_a_retained_state_never_confirms_an_order(service: GameService) -> None:
    # A retained state read at subscription may come from a boot that died since: it may
    # contradict an order (resent), never confirm one.
    service.handle(Incoming(TopicParts("status", "hall"), birth(), retained=False))
    service.outputs.command(*KEY, "unlock")
    want = service.desired[KEY]
    service.handle(Incoming(TopicParts("state", *KEY), state(False, ack=want.command_id), retained=True))
    assert want.confirmed_at is None
    service.handle(Incoming(TopicParts("state", *KEY), state(False, ack=want.command_id), retained=False))
    assert want.confirmed_at is not None


# -- the pre-game check while the controller is cut from the broker ------------------------
def test_nothing_is_ready_while_the_controller_is_cut_from_the_broker() -> None:
    lock = MaglockConfig(id="door_lock", label="Ventouse", relay=17, door=27)
    ready = {"engaged": True, "door": "closed"}
    assert assess("salon", lock, online=True, reported=ready, ack=None, desired_action="lock",
                  reset_id=None).status == CheckStatus.READY
    cut = assess("salon", lock, online=True, reported=ready, ack=None, desired_action="lock",
                 reset_id=None, linked=False)
    assert cut.status == CheckStatus.WAITING_NODE
    assert cut.instruction is not None and cut.instruction.key == "broker_cut"
    assert "Ventouse" in cut.instruction.text
    english = json.loads((ROOT / "dashboard/static/i18n/en.json").read_text(encoding="utf-8"))
    assert all(f"check_fix_{key}" in english for key in NODE_FRENCH)


def test_the_service_check_waits_while_the_bridge_is_down(service: GameService) -> None:
    service.bridge.connected = False
    report = service.check.report()
    assert not report["ready"]
    assert {p["status"] for p in report["props"]} == {str(CheckStatus.WAITING_NODE)}


# -- events handled, across a restart of the controller ------------------------------------
def test_the_seqs_handled_survive_a_registry_restart(game: Game) -> None:
    first = Registry(game)
    first.on_status("hall", birth("A"))
    for seq in (1, 2, 3):
        assert first.on_event("hall", PropEvent(boot_id="A", seq=seq, type="key", ts=1.0)) == EventVerdict.NEW
    handled = first.handled()
    assert handled["hall"] == {"A": 3}

    second = Registry(game)
    second.remember_handled("hall", handled["hall"])
    second.on_status("hall", birth("A"), live=False)
    assert second.on_event("hall", PropEvent(boot_id="A", seq=3, type="key", ts=1.0)) == EventVerdict.DUPLICATE
    assert second.on_event("hall", PropEvent(boot_id="A", seq=4, type="key", ts=1.0)) == EventVerdict.NEW


def test_a_restarted_controller_does_not_apply_again_an_event_it_had_handled(tmp_path: Path, game: Game) -> None:
    # The node replays what the dead controller never acknowledged: applied once.
    db = tmp_path / "escape.db"
    event = PropEvent(boot_id="A", seq=1, type="key", ts=1.0)
    prop = next(p.id for p in game.nodes[0].props if p.kind == "keypad")
    node = game.nodes[0].id
    for run in range(2):
        app = create_app(game=game, broker=BrokerAddress("127.0.0.1", 9), db_path=db)
        with TestClient(app) as client:
            svc = client.app.state.service
            svc.bridge.publish = lambda *_a, **_kw: None
            svc.handle(Incoming(TopicParts("status", node), birth("A"), retained=run == 1))
            admitted = svc.liveness.admit(node, prop, event)
            assert admitted is (run == 0), f"run {run}: admitted {admitted}"
            if run == 0:
                svc.journal.write(force=True)
                assert json.loads(svc.store.get_meta(SEQS_META))[node] == {"A": 1}


def test_the_check_trusts_no_retained_state_until_the_node_has_spoken_since(service: GameService) -> None:
    # A restarted controller reads the nodes' retained states: a node cut off since may have
    # moved on (a key pressed, a window opened). Nothing of it is ready until it speaks.
    def box_lock() -> str:
        report = service.check.report()
        return next(p["status"] for p in report["props"] if (p["node"], p["prop"]) == KEY)

    service.handle(Incoming(TopicParts("status", "hall"), birth(), retained=True))
    service.handle(Incoming(TopicParts("state", *KEY), state(True), retained=True))
    assert box_lock() == CheckStatus.WAITING_NODE
    service.handle(Incoming(TopicParts("heartbeat", "hall"), NodeHeartbeat(boot_id="boot1"), retained=False))
    assert box_lock() != CheckStatus.WAITING_NODE


# -- an exit door found open by a controller that takes itself for restarted after a crash --
@pytest.mark.parametrize(("engaged", "expected"), [(False, "unlock"), (True, "lock")])
def test_after_an_unrecorded_stop_an_exit_door_found_open_waits_for_the_game_master(
        tmp_path: Path, game: Game, engaged: bool, expected: str) -> None:
    # A clean stop opens every lock; on a full disk its record ("clean_stop") is refused,
    # and the next controller takes the stop for a crash, after which nodes hold their locks.
    # What its node reports decides: an exit door found open is not locked again.
    door = next((n.id, p.id) for n in game.nodes for p in n.props
                if p.kind == "maglock" and not p.relock_after_restart)
    db = tmp_path / "escape.db"
    app = create_app(game=game, broker=BrokerAddress("127.0.0.1", 9), db_path=db)
    with TestClient(app) as client:
        first = client.app.state.service
        first.bridge.send_command = lambda *_a: None
        first.outputs.command(*door, "lock")
        first.journal.write(force=True)
    Store(db).set_meta("clean_stop", "0")

    app = create_app(game=game, broker=BrokerAddress("127.0.0.1", 9), db_path=db)
    with TestClient(app) as client:
        svc = client.app.state.service
        sent: list[str] = []
        svc.bridge.publish = lambda *_a, **_kw: None
        svc.bridge.send_command = lambda n, p, c: sent.append(f"{n}.{p}:{c.action}")
        svc.bridge.on_link_up = svc.bridge.on_link_down = lambda *_a, **_kw: None
        svc.bridge.connected, svc.bridge.connected_at = True, svc.clock()
        assert svc.desired[door].action == "lock"
        svc.tick()
        assert sent == [], "nothing sent before the node said what its relay does"
        svc.handle(Incoming(TopicParts("status", door[0]), birth(), retained=True))
        svc.handle(Incoming(TopicParts("state", *door), state(engaged), retained=True))
        svc.tick()
        want = svc.desired[door]
        assert want.action == expected
        assert want.relock_pending is not engaged
        assert f"{door[0]}.{door[1]}:lock" not in sent or engaged
