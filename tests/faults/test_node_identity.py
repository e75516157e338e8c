"""A node's identity survives any delivery order: the retained status is the live boot's.

A node connects with the same MQTT client id at every boot (``<apartment>-<node>``), so the
broker closes an old connection of it — and delivers that connection's will — before it
accepts the new one. It counts its boots on its disk (``boot_n``: births, wills and
heartbeats carry it), and reads its own status topic back: a will or another boot's birth
landing after its birth makes it publish its birth again.

What the game master sees: a room that rebooted fast is online, whatever order the old
boot's will and the new birth arrived in, within one heartbeat interval.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory

from nodes.agent import NodeAgent
from protocol import contract
from protocol.contract import NodeHeartbeat, NodeStatus, PropEvent, Resync, Topics, new_id
from protocol.mqtt import BrokerAddress
from tests.faults.conftest import NodeProcess, Wire, fault_game, game_file, wait_for
from tests.support.fake_controller import FakeController, nodelay
from tests.support.mosquitto import Mosquitto, connect_packet, read_connack

pytestmark = pytest.mark.mosquitto

T = Topics("faults")
STATUS = T.node_status("hall")
KEEPALIVE = 3
HEARTBEAT = contract.node_heartbeat_interval(KEEPALIVE)


def retained_status(broker: Mosquitto) -> NodeStatus:
    """What a client subscribing now (a controller just restarted) reads on the hall's status."""
    got: list[bytes] = []
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"probe-{new_id()}", protocol=mqtt.MQTTv311)
    client.on_message = lambda _c, _u, m: got.append(m.payload)
    client.connect(broker.host, broker.port)
    client.subscribe(STATUS, qos=1)
    deadline = time.monotonic() + 5
    try:
        while not got and time.monotonic() < deadline:
            client.loop(timeout=0.05)
    finally:
        client.disconnect()
    assert got, "no retained status"
    return NodeStatus.model_validate_json(got[0])


def statuses(wire: Wire, since: float = 0.0) -> list[NodeStatus]:
    return [NodeStatus.model_validate_json(m.payload) for m in wire.received(STATUS, since=since)
            if m.payload]


def last_status(wire: Wire, since: float = 0.0) -> NodeStatus | None:
    seen = statuses(wire, since)
    return seen[-1] if seen else None


def is_birth_of(status: NodeStatus | None, agent_boot: str) -> bool:
    return status is not None and status.online and status.boot_id == agent_boot


def start_hall(broker: Mosquitto, data_dir: Path) -> NodeAgent:
    agent = NodeAgent(game=fault_game(), node_id="hall", broker=BrokerAddress(broker.host, broker.port),
                      pin_factory=MockFactory(), simulate=True, data_dir=data_dir, keepalive=KEEPALIVE)
    agent.start()
    wait_for(agent.connected.is_set, what="the hall to connect")
    return agent


@pytest.fixture
def hall_dir(tmp_path: Path) -> Path:
    """A data dir whose boot counter says this node booted 4 times already."""
    directory = tmp_path / "hall"
    directory.mkdir()
    (directory / "faults-hall.boot_n").write_text("4\n")
    return directory


@pytest.fixture
def hall(mosquitto: Mosquitto, hall_dir: Path) -> Iterator[NodeAgent]:
    agent = start_hall(mosquitto, hall_dir)
    yield agent
    agent.stop()


def test_an_old_boots_will_landing_after_the_birth_is_overwritten_within_a_heartbeat(
        mosquitto, wire, hall):
    wire.subscribe(STATUS)
    nodelay(wire.client)
    assert hall.boot_n == 5 and hall.client_id == "faults-hall"
    wait_for(lambda: any(s.online and s.boot_id == hall.boot_id for s in statuses(wire)),
             what="the birth")
    assert retained_status(mosquitto).boot_n == 5

    # the will of boot 4, delivered after boot 5's birth (a broker that kept it, a bridge,
    # a replay), then a burst of them: the birth is back, and not in a storm
    old_will = NodeStatus(online=False, boot_id="oldboot4", boot_n=4).to_bytes()
    since = time.monotonic()
    wire.publish(STATUS, old_will, retain=True)
    wait_for(lambda: is_birth_of(last_status(wire, since), hall.boot_id), timeout=HEARTBEAT,
             what="the birth published again over the old will")
    took = wire.received(STATUS, since=since)[-1].at - since
    burst_at = time.monotonic()
    for _ in range(20):
        wire.publish(STATUS, old_will, retain=True, wait=False)
    wait_for(lambda: is_birth_of(last_status(wire, burst_at), hall.boot_id),
             timeout=2 * HEARTBEAT, what="the birth again after the burst")
    births = [s for s in statuses(wire, burst_at) if s.online]
    assert len(births) <= 3, f"{len(births)} births for 20 wills: a storm"
    retained = retained_status(mosquitto)
    assert (retained.online, retained.boot_id, retained.boot_n) == (True, hall.boot_id, 5)
    assert hall.metrics["status_overwritten"] >= 21
    print(f"\n[identity] a late will of the old boot overwritten by the birth in {took * 1000:.1f} ms "
          f"(bound: one heartbeat, {HEARTBEAT:.2f} s); 20 more wills: {len(births)} births")


def test_a_half_open_connection_of_the_old_boot_is_taken_over_and_its_will_comes_first(
        mosquitto, wire, hall_dir):
    """A node that rebooted fast: its old boot's TCP connection is still open on the broker
    (a power cut: nothing closed it). The new boot connects with the same client id."""
    wire.subscribe(STATUS)
    old_will = NodeStatus(online=False, boot_id="oldboot4", boot_n=4).to_bytes()
    old = socket.create_connection((mosquitto.host, mosquitto.port), timeout=5)
    with contextlib.closing(old):
        old.sendall(connect_packet(client_id="faults-hall", will_topic=STATUS, will_payload=old_will,
                                   will_qos=1, will_retain=True, keepalive=60))
        assert read_connack(old) == 0
        started = time.monotonic()
        agent = start_hall(mosquitto, hall_dir)
        try:
            wait_for(lambda: is_birth_of(last_status(wire, started), agent.boot_id),
                     timeout=HEARTBEAT, what="the new birth to be the last status")
            took = wire.received(STATUS, since=started)[-1].at - started
            # the half-open connection finally goes (if the broker had not closed it)
            with contextlib.suppress(OSError):
                old.shutdown(socket.SHUT_RDWR)
            old.close()
            assert_converges(mosquitto, wire, agent)
            seen = [(s.online, s.boot_n) for s in statuses(wire, started)]
            assert seen[:2] == [(False, 4), (True, 5)], "the old will first, then the new birth"
        finally:
            agent.stop()
    print(f"\n[identity] fast reboot, old connection half-open: taken over, its will first; the "
          f"new birth retained {took * 1000:.0f} ms after the new boot's agent started")


def assert_converges(broker: Mosquitto, wire: Wire, agent: NodeAgent) -> None:
    """Within one heartbeat interval the retained status is the agent's birth, and stays."""
    deadline = time.monotonic() + HEARTBEAT
    while True:
        retained = retained_status(broker)
        if retained.online and retained.boot_id == agent.boot_id:
            break
        assert time.monotonic() < deadline, f"retained status still {retained}"
        time.sleep(0.05)
    settle = time.monotonic()
    wait_for(lambda: time.monotonic() - settle > HEARTBEAT, timeout=2 * HEARTBEAT, what="a heartbeat")
    assert is_birth_of(last_status(wire), agent.boot_id), last_status(wire)


def test_resync_republishes_the_birth_and_another_boots_birth_is_overwritten(wire, hall):
    wire.subscribe(STATUS)
    since = time.monotonic()
    wire.publish(T.node_resync("hall"), Resync(reason="controller restarted").to_bytes())
    wait_for(lambda: any(s.online and s.boot_id == hall.boot_id for s in statuses(wire, since)),
             what="the birth again after a resync")
    # a birth of another boot of "hall" (a second process with the same id, a replay)
    since = time.monotonic()
    wire.publish(STATUS, NodeStatus(online=True, boot_id="impostor", boot_n=9).to_bytes(), retain=True)
    wait_for(lambda: is_birth_of(last_status(wire, since), hall.boot_id), timeout=HEARTBEAT,
             what="our birth over another boot's")


def test_boot_n_counts_restarts_and_is_in_births_wills_and_heartbeats(mosquitto, wire, tmp_path,
                                                                      processes):
    path = game_file(tmp_path)
    data_dir = tmp_path / "hall"
    wire.subscribe(STATUS, T.node_heartbeat("hall"))

    def spawn() -> NodeProcess:
        proc = NodeProcess(node_id="hall", game=path, broker=mosquitto.address, data_dir=data_dir,
                           log=tmp_path / "hall.log", keepalive=KEEPALIVE)
        processes.append(proc)
        return proc

    first = spawn()
    wait_for(lambda: any(s.online for s in statuses(wire)), timeout=20, what="the first birth")
    birth = next(s for s in statuses(wire) if s.online)
    assert birth.boot_n == 1
    wait_for(lambda: wire.received(T.node_heartbeat("hall")), what="a heartbeat")
    beat = NodeHeartbeat.model_validate_json(wire.received(T.node_heartbeat("hall"))[-1].payload)
    assert (beat.boot_id, beat.boot_n) == (birth.boot_id, 1)

    first.kill()   # no goodbye: the broker publishes the will
    wait_for(lambda: any(not s.online for s in statuses(wire)), what="the will")
    will = next(s for s in statuses(wire) if not s.online)
    assert (will.boot_id, will.boot_n) == (birth.boot_id, 1)

    spawn()
    wait_for(lambda: (s := last_status(wire)) is not None and s.online, timeout=20,
             what="the second birth")
    second = statuses(wire)[-1]
    assert second.boot_n == 2 and second.boot_id != birth.boot_id
    assert (data_dir / "faults-hall.boot_n").read_text().strip() == "2"


def test_the_will_of_an_old_controller_boot_does_not_silence_the_node(wire, hall):
    """A controller restarted: the old boot's will arrives after the new boot's statuses.
    The node keeps delivering its events at once to the live controller."""
    wire.subscribe(T.prop_event("hall", "bell"))
    old = FakeController(publish=wire.publish, topics=T)
    new = FakeController(publish=wire.publish, topics=T, heartbeat=5.0)
    new.beat()
    new.beat()   # the second one is live (the first after a subscription may be a leftover)
    wait_for(lambda: hall.status()["controller_online"], what="the hall to hear the controller")
    assert wait_for_event(wire, hall, "down"), "delivered at once to a live controller"
    wire.publish(T.controller_status, old.status(online=False).to_bytes(), retain=True)
    assert wait_for_event(wire, hall, "release"), "still delivered at once after the old will"
    assert hall.metrics["stale_controller_wills"] == 1
    new.beat()   # the retained status is the live controller's again


def wait_for_event(wire: Wire, hall: NodeAgent, gesture: str) -> PropEvent:
    since = time.monotonic()
    hall.simulators["bell"].perform(gesture)
    wait_for(lambda: wire.received(T.prop_event("hall", "bell"), since=since), timeout=2,
             what=f"the bell's {gesture} event on the wire")
    return PropEvent.model_validate_json(wire.received(T.prop_event("hall", "bell"), since=since)[-1].payload)

