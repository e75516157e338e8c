"""The node agent — the shell around the core — from outside: MockFactory pins, MQTT bytes.

A bare MQTT client (``Wire``) plays the controller over a real Mosquitto; the relay is
read on its MockFactory pin. The rules themselves are tested on the core alone
(tests/nodes/test_core.py); here, that the shell hands everything over, in order, and
never lets the worker hold up a release.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from config.loader import parse_game
from nodes.agent import NodeAgent
from protocol.contract import Command, Emergency, Resync, Topics, new_id
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.faults.conftest import Wire, wait_for
from tests.support.fake_controller import FakeController

pytestmark = pytest.mark.mosquitto

RELAY, EMERGENCY = 17, 26
GAME = """\
apartment: {{id: {apartment}, name: Nœud}}
nodes:
  - id: hall
    label: Hall
    emergency: {{pin: 26}}
    props:
      - {{id: box, kind: maglock, relay: 17, door: 27}}
      - {{id: bell, kind: button, pin: 22}}
puzzles:
  - {{id: ring, label: Sonner, theme: story, room: hall, final: true,
     solve: {{when: event, prop: hall.bell, event: press}}}}
"""


def test_node_side_never_imports_fastapi():
    code = ("import sys, nodes.agent, nodes.cli, props.sim, props.factory; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'controller')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


class Hall:
    """A node agent on its own apartment id (the broker is shared by the session)."""

    def __init__(self, broker: BrokerHandle | None, tmp_path: Path) -> None:
        apartment = f"a{new_id()}"
        self.topics = Topics(apartment)
        self.factory = MockFactory()
        address = BrokerAddress(broker.host, broker.port) if broker else BrokerAddress("127.0.0.1", 9)
        self.agent = NodeAgent(game=parse_game(GAME.format(apartment=apartment)).game,
                               node_id="hall", broker=address, pin_factory=self.factory,
                               simulate=True, data_dir=tmp_path)
        self.agent.start()

    @property
    def locked(self) -> bool:
        return bool(self.factory.pin(RELAY).state)

    def fence(self, wire: Wire) -> None:
        """Wait until the agent has handled everything published before: a command to a
        prop it does not have goes through its worker, the last in line, and changes
        nothing (a Resync would publish every state again)."""
        marker, seen = Command(id=f"fence{new_id()}", action="lock"), []
        self.agent.on_handled = lambda _parts, payload: seen.append(payload)
        wire.publish(self.topics.prop_set("hall", "fence"), marker.to_bytes())
        wait_for(lambda: marker in seen, what="the hall to handle the fence")
        self.agent.on_handled = None


@pytest.fixture
def hall(mosquitto_broker: BrokerHandle, tmp_path: Path) -> Iterator[Hall]:
    node = Hall(mosquitto_broker, tmp_path)
    wait_for(node.agent.connected.is_set, what="the hall to connect")
    yield node
    node.agent.stop()


@pytest.fixture
def wire(mosquitto_broker: BrokerHandle) -> Iterator[Wire]:
    client = Wire(mosquitto_broker)   # type: ignore[arg-type]  # host and port are all it reads
    yield client
    client.close()


@pytest.fixture
def controller(hall: Hall, wire: Wire) -> Iterator[FakeController]:
    ctl = FakeController(publish=wire.publish, topics=hall.topics, heartbeat=0.3).start()
    wait_for(lambda: hall.agent.controller_online, what="the hall to hear the controller")
    yield ctl
    ctl.stop()


def test_the_emergency_input_releases_before_its_handler_returns_with_no_broker(tmp_path):
    node = Hall(None, tmp_path)
    try:
        node.agent.props["box"].apply("lock")     # as a command before the outage did
        assert node.locked
        node.factory.pin(EMERGENCY).drive_low()
        assert not node.locked, "released before the button's handler returned"
        assert node.agent.core.gate.held_open == {"box"}, "and held open at once"
        assert node.agent.wait_idle()
        assert [e.event.type for e in node.agent.outbox][-1] == "emergency"
        assert node.agent.status()["holds"] == {"box": node.agent.core.seq}
    finally:
        node.agent.stop()
    assert not node.factory.pin(RELAY).state, "stop() leaves the relay unlocked"


def test_commands_apply_at_most_once_and_stop_leaves_the_relay_open(hall, wire, controller):
    lock = controller.command("lock")
    controller.send("hall", "box", lock)
    wait_for(lambda: hall.locked, what="the lock to engage")
    controller.send("hall", "box", controller.command("unlock"))
    wait_for(lambda: not hall.locked, what="the unlock to release")
    controller.send("hall", "box", lock)             # QoS 1 redelivery: the same id
    controller.send("hall", "ghost", controller.command("lock"))
    controller.send("hall", "box", controller.command("explode"))
    hall.fence(wire)
    assert not hall.locked
    metrics = hall.agent.metrics
    assert (metrics["duplicate_commands"], metrics["unknown_prop"], metrics["rejected_commands"]) == (1, 2, 1)
    hall.agent.stop()
    assert not hall.locked


def test_each_command_publishes_the_props_state_once_with_its_ack(hall, wire, controller):
    state_topic = hall.topics.prop_state("hall", "box")
    wire.subscribe(state_topic)
    hall.fence(wire)
    for action in ("lock", "unlock", "lock"):
        since = time.monotonic()
        command = controller.command(action)
        controller.send("hall", "box", command)
        wait_for(lambda c=command, t=since: any(json.loads(m.payload).get("ack") == c.id
                                                for m in wire.received(state_topic, since=t)),
                 what=f"the {action}'s state")
        hall.fence(wire)
        reports = [json.loads(m.payload) for m in wire.received(state_topic, since=since)]
        assert [(r["ack"], r["engaged"]) for r in reports] == [(command.id, action == "lock")], \
            "one state per command, carrying its ack"


def test_a_release_never_waits_behind_a_busy_worker_and_a_lock_keeps_its_order(hall, wire):
    """A lock is applied in paho's thread when nothing waits ahead of it; behind a message
    the worker has in hand, it waits its turn; a release never waits, and a lock queued
    before it is refused when its turn comes (the later order wins)."""
    # a slow heartbeat: no status of the controller's in the worker's hands by chance
    controller = FakeController(publish=wire.publish, topics=hall.topics, heartbeat=5).start()
    wait_for(lambda: hall.agent.controller_online, what="the hall to hear the controller")
    hall.fence(wire)
    at_once: list[tuple[str, bool]] = []
    hall.agent.on_handled = lambda _p, payload: at_once.append(
        (getattr(payload, "id", ""), threading.current_thread().name.endswith("worker")))
    first = controller.command("lock")
    controller.send("hall", "box", first)
    wait_for(lambda: hall.locked and at_once, what="the lock")
    assert at_once == [(first.id, False)], "applied in paho's thread, not handed to the worker"

    stuck, freed = threading.Event(), threading.Event()

    def stall(_parts: object, payload: object) -> None:
        if isinstance(payload, Resync) and payload.reason == "stall":
            stuck.set()
            freed.wait(10)

    hall.agent.on_handled = stall
    wire.publish(hall.topics.node_resync("hall"), Resync(reason="stall").to_bytes())
    wait_for(stuck.is_set, what="the worker to be stuck")
    at_once_before = hall.agent.metrics["commands_now"]
    try:
        controller.send("hall", "box", controller.command("unlock"))
        wait_for(lambda: not hall.locked, what="a release behind the stuck worker")
        controller.send("hall", "box", controller.command("lock"))           # waits its turn
        controller.send("hall", "box", controller.command("unlock"))         # overtakes it
        wait_for(lambda: hall.agent.metrics["commands_now"] == at_once_before + 2,
                 what="both releases applied at once")
        assert not hall.locked, "the lock did not overtake the worker"
        controller.send("hall", "box", controller.command("lock"))           # after: applied
    finally:
        freed.set()
    hall.agent.on_handled = None
    hall.fence(wire)
    controller.stop()
    assert hall.agent.metrics["superseded_commands"] == 1
    assert hall.locked, "the last lock came after the release: applied, in order"


def test_a_release_never_waits_for_the_cores_lock(hall, wire, controller, monkeypatch):
    """The worker is stuck *inside* the core's lock (reading a prop's state hangs, as a
    driver might on a dead bus): an unlock and the emergency still release the relay at
    once (the relays move before any lock is taken), and everything is booked after."""
    controller.send("hall", "box", controller.command("lock"))
    wait_for(lambda: hall.locked, what="the lock")
    bell = hall.agent.props["bell"]
    inside, free = threading.Event(), threading.Event()
    real_state = type(bell).state

    def stuck_state(prop: object) -> object:
        if prop is bell and not free.is_set():
            inside.set()
            free.wait(10)
        return real_state.fget(prop)   # type: ignore[attr-defined]

    monkeypatch.setattr(type(bell), "state", property(stuck_state))
    hall.agent.simulators["bell"].perform("press")     # its state change: the worker hangs in it
    wait_for(inside.is_set, what="the worker to hang inside the core's lock")
    try:
        controller.send("hall", "box", controller.command("unlock"))
        wait_for(lambda: not hall.locked, timeout=2, what="the unlock, the core's lock held")
        controller.send("hall", "box", controller.command("lock"))   # waits behind the worker
        alert = Emergency(active=True, id=new_id(), who="test")
        wire.publish(hall.topics.emergency, alert.to_bytes(), retain=True)
        wait_for(lambda: hall.agent.emergency is not None, timeout=2,
                 what="the emergency held, the core's lock held")
        assert not hall.locked and not free.is_set(), "the worker was still hanging"
    finally:
        free.set()
    hall.fence(wire)
    assert not hall.locked and hall.agent.metrics["emergency_refused"] == 1
    wire.publish(hall.topics.emergency, Emergency(active=False, id=alert.id, who="test").to_bytes(),
                 retain=True)
    wait_for(lambda: hall.agent.emergency is None, what="the clear")
