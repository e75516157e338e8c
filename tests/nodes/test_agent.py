"""The node agent without a broker: props built on MockFactory, commands, safety."""

from __future__ import annotations

import subprocess
import sys

from gpiozero.pins.mock import MockFactory

from config.loader import SHIPPED_GAME, load_game
from nodes.agent import NodeAgent
from nodes.contract import Command, TopicParts
from nodes.mqtt import BrokerAddress


def make_agent() -> tuple[NodeAgent, MockFactory]:
    factory = MockFactory()
    # Port 9 (discard) on loopback: nothing answers; the agent must work without a broker.
    agent = NodeAgent(game=load_game(SHIPPED_GAME), node_id="hall",
                      broker=BrokerAddress("127.0.0.1", 9), pin_factory=factory, simulate=True)
    return agent, factory


def test_node_side_never_imports_fastapi():
    code = ("import sys, nodes.agent, nodes.cli, props.sim, props.factory; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'controller')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_relays_start_unlocked_and_commands_apply_at_most_once():
    agent, factory = make_agent()
    agent.start()
    try:
        relay = factory.pin(17)
        assert relay.state is False or relay.state == 0
        lock = Command(id="c1", action="lock")
        agent._handle(TopicParts("set", "hall", "mailbox_lock"), lock)
        assert relay.state
        agent._handle(TopicParts("set", "hall", "mailbox_lock"), Command(id="c2", action="unlock"))
        assert not relay.state
        # The same lock command delivered again (QoS 1 redelivery) is not applied twice.
        agent._handle(TopicParts("set", "hall", "mailbox_lock"), lock)
        assert not relay.state
        assert agent.metrics["duplicate_commands"] == 1
    finally:
        agent.stop()
    assert not factory.pin(17).state, "stop() leaves the relay unlocked"


def test_expired_and_foreign_session_commands_are_not_applied():
    agent, factory = make_agent()
    agent.start()
    try:
        agent._handle(TopicParts("set", "hall", "mailbox_lock"),
                      Command(id="old", action="lock", expires=1.0))
        assert not factory.pin(17).state
        agent.session = "s1"
        agent._handle(TopicParts("set", "hall", "mailbox_lock"),
                      Command(id="other", action="lock", session="s0"))
        assert not factory.pin(17).state
        assert agent.metrics["expired_commands"] == 1
        assert agent.metrics["foreign_session"] == 1
    finally:
        agent.stop()


def test_unknown_prop_and_bad_action_change_nothing():
    agent, factory = make_agent()
    agent.start()
    try:
        agent._handle(TopicParts("set", "hall", "nope"), Command(id="a", action="lock"))
        agent._handle(TopicParts("set", "hall", "mailbox_lock"), Command(id="b", action="explode"))
        assert not factory.pin(17).state
        assert agent.metrics["unknown_prop"] == 1
        assert agent.metrics["rejected_commands"] == 1
    finally:
        agent.stop()
