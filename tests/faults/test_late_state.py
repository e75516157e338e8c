"""A node's state that was on its way before an order must not confirm that order.

Seen by the deterministic simulator's long mode (seed 101368 of 30 steps): a controller
restarted while the network held packets back; the node's answer to the previous
controller's unlock was delivered to the new controller only after the new controller's
own unlock — its relay locked again in between — and the console showed the lock open
while the relay held it. Played here from outside: a bare paho client is the node (raw
JSON, none of our node code), the controller runs over a real Mosquitto, the game master
orders through HTTP and reads ``/api/state``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient

from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.faults.conftest import fault_game, wait_for
from tests.faults.rawnode import RawNode

pytestmark = pytest.mark.mosquitto

LOCK = "mailbox_lock"


class Orders:
    """The commands the controller sends the hall's lock, as the broker delivers them."""

    def __init__(self, node: RawNode) -> None:
        self.node = node
        self.seen: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        node.client.message_callback_add(f"{node.root}/props/{LOCK}/set", self._on)
        node.client.subscribe(f"{node.root}/props/{LOCK}/set", qos=1)

    def _on(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.seen.append(json.loads(msg.payload))
            self._cond.notify_all()

    def next(self, action: str, after: int) -> dict[str, Any]:
        with self._cond:
            assert self._cond.wait_for(
                lambda: any(c["action"] == action for c in self.seen[after:]), 5), f"no {action} sent"
            return next(c for c in self.seen[after:] if c["action"] == action)

    def answer(self, command_id: str | None, *, engaged: bool) -> None:
        """The lock's state as the node publishes it (retained), acknowledging *command_id*."""
        state = {"v": 1, "boot_id": self.node.boot, "ack": command_id, "ts": self.node.now(),
                 "locked": engaged, "engaged": engaged, "door": "closed"}
        self.node.client.publish(f"{self.node.root}/props/{LOCK}/state", json.dumps(state).encode(),
                                 qos=1, retain=True).wait_for_publish(5)


@pytest.fixture
def hall(mosquitto: Any) -> Iterator[RawNode]:
    node = RawNode(mosquitto, apartment="faults", node="hall", boot="lateboot", keepalive=3.0)
    node.clear_status()
    node.birth()
    node.beat_every()
    yield node
    node.clear_status()
    node.close()


@pytest.fixture
def console(mosquitto: Any, tmp_path: Path, hall: RawNode) -> Iterator[TestClient]:
    app = create_app(game=fault_game(), broker=BrokerAddress(mosquitto.host, mosquitto.port),
                     demo=True, db_path=tmp_path / "escape.db")
    with TestClient(app, headers={"Content-Type": "application/json"}) as client:
        service = client.app.state.service
        wait_for(lambda: service.registry.nodes["hall"].online, what="the hall to be online")
        yield client


def desired(client: TestClient) -> dict[str, Any] | None:
    props = client.get("/api/state").json()["props"]
    prop = next(p for p in props if p["node"] == "hall" and p["id"] == LOCK)
    return prop["desired"]  # type: ignore[no-any-return]


def test_a_late_state_of_before_the_order_does_not_confirm_it(hall: RawNode, console: TestClient) -> None:
    orders = Orders(hall)
    # An unlock, answered: the relay released…
    console.post(f"/api/props/hall/{LOCK}/unlock", json={})
    first_unlock = orders.next("unlock", 0)
    orders.answer(first_unlock["id"], engaged=False)
    wait_for(lambda: (desired(console) or {}).get("confirmed"), what="the first unlock confirmed")
    # …then a lock, answered: the relay holds.
    seen = len(orders.seen)
    console.post(f"/api/props/hall/{LOCK}/lock", json={})
    lock = orders.next("lock", seen)
    orders.answer(lock["id"], engaged=True)
    wait_for(lambda: (desired(console) or {}).get("confirmed"), what="the lock confirmed")

    # The game master opens it again; before the node answers, the state that said
    # "released" (the answer to the first unlock) arrives, late.
    seen = len(orders.seen)
    reply = console.post(f"/api/props/hall/{LOCK}/unlock", json={})
    assert reply.status_code == 202 and reply.json()["confirmed"] is False, reply.text
    unlock = orders.next("unlock", seen)
    orders.answer(first_unlock["id"], engaged=False)
    registry = console.app.state.service.registry
    wait_for(lambda: registry.props[("hall", LOCK)].ack == first_unlock["id"],
             what="the late state to reach the controller")
    view = desired(console)
    assert view is not None and view["action"] == "unlock"
    assert view["confirmed"] is False, "the console shows the lock open on a state of before its order"

    # The node's answer to this order confirms it.
    orders.answer(unlock["id"], engaged=False)
    wait_for(lambda: (desired(console) or {}).get("confirmed"), what="the unlock confirmed by its answer")
