"""Integration fixtures: node agents on MockFactory and the controller over a real broker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient
from gpiozero.pins.mock import MockFactory

from config.game import Game
from controller.main import create_app
from nodes.agent import NodeAgent
from nodes.mqtt import BrokerAddress
from tests.conftest import BrokerHandle


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait until *predicate* is true (polled every 2 ms); fail with *what* after *timeout*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.002)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


class Apartment:
    """A running apartment: controller (TestClient) + one simulated node agent per room."""

    def __init__(self, game: Game, broker: BrokerHandle, stack: ExitStack) -> None:
        address = BrokerAddress(broker.host, broker.port)
        self.game = game
        self.broker = broker
        self.factories = {n.id: MockFactory() for n in game.nodes}
        self.agents = {n.id: NodeAgent(game=game, node_id=n.id, broker=address,
                                       pin_factory=self.factories[n.id], simulate=True)
                       for n in game.nodes}
        for agent in self.agents.values():
            agent.start()
            stack.callback(agent.stop)
        self.client = stack.enter_context(TestClient(create_app(game=game, broker=address, demo=True)))
        self.service = self.client.app.state.service
        for node_id, agent in self.agents.items():
            wait_for(agent.connected.is_set, what=f"node {node_id} to connect")
        wait_for(lambda: all(n.online for n in self.service.registry.nodes.values()),
                 what="the controller to see every node online")

    def pin(self, node: str, number: int) -> object:
        return self.factories[node].pin(number)

    def relay_driven(self, node: str, number: int) -> bool:
        return bool(self.pin(node, number).state)

    def gesture(self, node: str, prop: str, gesture: str, value: object = None) -> None:
        """A hand on a simulated prop: drives the node's MockFactory pins directly."""
        self.agents[node].simulators[prop].perform(gesture, value)


@pytest.fixture
def make_apartment(broker: BrokerHandle) -> Iterator[Callable[[Game], Apartment]]:
    with ExitStack() as stack:
        yield lambda game: Apartment(game, broker, stack)
