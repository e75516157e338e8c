"""The node agent without a broker: props built on MockFactory, commands, safety."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
from gpiozero.pins.mock import MockFactory

from config.loader import SHIPPED_GAME, load_game
from nodes.agent import NodeAgent
from protocol.contract import Command, ControllerStatus, TopicParts
from protocol.mqtt import BrokerAddress


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
        # The controller says its uptime is 100 s; a lock it issued at 60 s is 40 s old.
        agent._on_controller_status(ControllerStatus(online=True, boot_id="c1", uptime=100.0),
                                    retained=False, epoch=agent._epoch)
        agent._handle(TopicParts("set", "hall", "mailbox_lock"),
                      Command(id="old", action="lock", controller="c1", issued=60.0, ttl=30))
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


def _message(topic: str, payload: bytes) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(topic=topic.encode())
    message.payload = payload
    return message


def test_a_lock_command_is_applied_in_pahos_callback_unless_the_worker_is_busy():
    """docs/performance.md, fix 9: no hand-off to the worker for a lock, but never ahead of
    a message the worker has not finished (a status changing the session). A release never
    waits: applied at once even behind a busy worker, and a lock queued before it is
    refused when its turn comes (the later order wins)."""
    agent, factory = make_agent()
    agent.start()
    try:
        topic = agent.topics.prop_set("hall", "mailbox_lock")
        seen: list[tuple[str, int]] = []
        agent.on_handled = lambda _parts, payload: seen.append((payload.id, threading.get_ident()))
        agent._on_message(None, None, _message(topic, Command(id="n1", action="lock").to_bytes()))
        assert factory.pin(17).state, "applied before _on_message returned"
        assert seen == [("n1", threading.get_ident())] and agent.metrics["commands_now"] == 1
        # at most once, as from the worker
        agent._on_message(None, None, _message(topic, Command(id="n1", action="lock").to_bytes()))
        assert agent.metrics["duplicate_commands"] == 1
        # the worker has a message in hand: the command waits behind it, in order
        release = threading.Event()
        agent.on_handled = None
        busy = agent._work_on

        def slow(item: object) -> None:
            if item == "blocker":
                release.wait(5)
            busy(item)   # type: ignore[arg-type]

        agent._work_on = slow   # type: ignore[method-assign]
        agent._inbox.put("blocker")
        agent._on_message(None, None, _message(topic, Command(id="n2", action="unlock").to_bytes()))
        assert not factory.pin(17).state, "a release does not wait behind the worker"
        agent._on_message(None, None, _message(topic, Command(id="n3", action="lock").to_bytes()))
        assert not factory.pin(17).state, "a lock waits behind the worker's message"
        agent._on_message(None, None, _message(topic, Command(id="n4", action="unlock").to_bytes()))
        agent._on_message(None, None, _message(topic, Command(id="n5", action="lock").to_bytes()))
        release.set()
        deadline = time.monotonic() + 5
        while agent._inbox.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        assert agent.metrics["superseded_commands"] == 1, "n3: the release n4 came after it"
        assert factory.pin(17).state, "n5 came after the release: applied, in order"
        assert agent.metrics["commands_now"] == 4, "n1 twice, n2, n4"
    finally:
        agent.stop()
