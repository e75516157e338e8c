"""Integration fixtures: node agents on MockFactory and the controller over a real broker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from gpiozero.pins.mock import MockFactory

from config.game import Game
from controller.api.auth import AuthSettings
from controller.main import create_app
from nodes.agent import NodeAgent
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait until *predicate* is true (polled every 2 ms); fail with *what* after *timeout*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.002)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


GM_PASSWORD = "gm-test-password"
TECH_PASSWORD = "tech-test-password"


class Apartment:
    """A running apartment: controller (TestClient) + one simulated node agent per room.

    The controller's session database is *db_path* (a temporary file); *clock* and *wall*
    replace the controller's clocks (e.g. a fake one to reach the end of the time at once).
    """

    def __init__(self, game: Game, broker: BrokerHandle, stack: ExitStack, *, db_path: Path,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        address = BrokerAddress(broker.host, broker.port)
        self.game = game
        self.broker = broker
        self.address = address
        self.db_path = db_path
        self.clock, self.wall = clock, wall
        self.auth = AuthSettings(gm_password=GM_PASSWORD, tech_password=TECH_PASSWORD,
                                 screen_secret="test-screen-secret")
        self.factories = {n.id: MockFactory() for n in game.nodes}
        self.agents = {n.id: NodeAgent(game=game, node_id=n.id, broker=address,
                                       pin_factory=self.factories[n.id], simulate=True)
                       for n in game.nodes}
        for agent in self.agents.values():
            agent.start()
            stack.callback(agent.stop)
        self.client = self._start_controller()
        stack.callback(lambda: self.client.__exit__(None, None, None))
        for node_id, agent in self.agents.items():
            wait_for(agent.connected.is_set, what=f"node {node_id} to connect")
        wait_for(lambda: all(n.online for n in self.service.registry.nodes.values()),
                 what="the controller to see every node online")

    def _start_controller(self) -> TestClient:
        client = TestClient(create_app(game=self.game, broker=self.address, demo=True,
                                       db_path=self.db_path, clock=self.clock, wall=self.wall,
                                       auth=self.auth),
                            headers={"Content-Type": "application/json"})
        client.__enter__()
        # access control: the tests act as the technician (every right), over a session cookie
        assert client.post("/api/login", json={"password": TECH_PASSWORD}).status_code == 200
        self.service = client.app.state.service
        return client

    def restart_controller(self) -> None:
        """Stop the controller cleanly and start a new one on the same session database."""
        self.client.__exit__(None, None, None)
        self.client = self._start_controller()
        wait_for(lambda: all(n.online for n in self.service.registry.nodes.values()),
                 what="the new controller to see every node online")

    def pin(self, node: str, number: int) -> object:
        return self.factories[node].pin(number)

    def relay_driven(self, node: str, number: int) -> bool:
        return bool(self.pin(node, number).state)

    def gesture(self, node: str, prop: str, gesture: str, value: object = None) -> None:
        """A hand on a simulated prop: drives the node's MockFactory pins directly; returns once the node has taken
        in what the prop reported (the node's worker handles it)."""
        self.agents[node].simulators[prop].perform(gesture, value)
        assert self.agents[node].wait_idle(), f"node {node} did not take in the gesture"


@pytest.fixture
def make_apartment(broker: BrokerHandle, tmp_path: Path) -> Iterator[Callable[..., Apartment]]:
    with ExitStack() as stack:
        yield lambda game, **kw: Apartment(game, broker, stack, db_path=kw.pop("db_path", tmp_path / "escape.db"),
                                           **kw)
