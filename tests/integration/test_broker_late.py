"""The broker comes up after the controller and the nodes (a power cut: the Pis and the
controller boot faster than the server's Mosquitto), or is not reachable at all.

What the game master sees: the console says MQTT is down, the pages answer; the moment
the broker is there every room comes online on its own, nobody restarts anything.
"""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient
from gpiozero.pins.mock import MockFactory

from config.loader import SHIPPED_GAME, load_game
from controller.broker import EmbeddedBroker, free_port
from controller.main import create_app
from nodes.agent import NodeAgent
from protocol.mqtt import BrokerAddress
from tests.integration.conftest import wait_for


def test_controller_and_nodes_started_before_the_broker_connect_when_it_comes(tmp_path: Path) -> None:
    game = load_game(SHIPPED_GAME)
    address = BrokerAddress("127.0.0.1", free_port())
    agents = [NodeAgent(game=game, node_id=n.id, broker=address, pin_factory=MockFactory(), simulate=True)
              for n in game.nodes[:2]]
    for agent in agents:
        agent.start()
    try:
        with TestClient(create_app(game=game, broker=address, db_path=tmp_path / "escape.db")) as client:
            service = client.app.state.service
            time.sleep(1.2)   # the controller and the nodes try (and fail) a few times meanwhile
            state = client.get("/api/state").json()
            assert state["mqtt"]["connected"] is False
            assert not any(n["online"] for n in state["nodes"])
            with EmbeddedBroker(port=address.port):
                up = time.monotonic()
                wait_for(lambda: service.bridge.connected, timeout=5, what="the controller to connect")
                wait_for(lambda: all(service.registry.nodes[a.node.id].online for a in agents), timeout=5,
                         what="both rooms online")
                print(f"\nbroker up → controller and 2 nodes online: {1000 * (time.monotonic() - up):.0f} ms")
                # and the game works over it: a lock order reaches the node's relay
                order = client.post("/api/props/hall/mailbox_lock/lock", json={})
                assert order.status_code in (200, 202), order.text   # 202: not confirmed in 1 s
                wait_for(lambda: service.registry.props[("hall", "mailbox_lock")].reported.get("engaged") is True,
                         timeout=5, what="the mailbox lock engaged")
    finally:
        for agent in agents:
            agent.stop()


def test_an_unresolvable_broker_host_leaves_the_controller_up_and_saying_so(tmp_path: Path) -> None:
    game = load_game(SHIPPED_GAME)
    address = BrokerAddress("broker.invalid", 1883)   # .invalid never resolves (RFC 2606)
    with TestClient(create_app(game=game, broker=address, db_path=tmp_path / "escape.db")) as client:
        time.sleep(1.2)
        assert client.get("/api/health").status_code == 200
        state = client.get("/api/state").json()
        assert state["mqtt"]["connected"] is False
        # an order is refused by no one and crashes nothing: it waits for the broker, and
        # the answer does not pretend any lock opened
        reply = client.post("/api/emergency", json={})
        assert reply.status_code == 202 and reply.json()["confirmed"] == []
        assert client.get("/api/health").status_code == 200
