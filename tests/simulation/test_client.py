"""SimClient behaves like paho-mqtt where the later node and controller shells will see it:
return codes, what is kept while offline, the reconnection back-off, the in-flight window,
and the simulation's own controls (a hung or crashed process)."""

from __future__ import annotations

from paho.mqtt.client import MQTTErrorCode

from simulation.broker import BrokerConfig
from simulation.world import World
from tests.simulation.helpers import Inbox


def test_publishing_while_offline_loses_qos0_and_keeps_qos1_for_after_on_connect() -> None:
    world = World.create(1)
    node = world.client("node", connect=False)
    node.reconnect_delay_set(0.5, 1.0)
    node.on_connect = lambda c, *_: c.publish("n/birth", b"online", qos=1)
    sub = world.client("sub")
    inbox = Inbox(sub)
    sub.subscribe("n/#", 1)
    assert node.publish("n/0", b"lost", qos=0).rc == MQTTErrorCode.MQTT_ERR_NO_CONN
    kept = node.publish("n/1", b"kept", qos=1)
    assert kept.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and not kept.is_published()
    node.connect()
    world.run_for(1)
    assert inbox.payloads("n/birth") == [b"online"] and inbox.payloads("n/1") == [b"kept"]
    assert [m[0] for m in inbox.messages] == ["n/birth", "n/1"]
    assert kept.is_published()


def test_reconnection_backs_off_from_the_minimum_to_the_maximum_and_resets() -> None:
    world = World.create(2, start=False)
    fails: list[float] = []
    node = world.client("node", connect=False)
    node.on_connect_fail = lambda *_: fails.append(round(world.now, 1))
    node.reconnect_delay_set(0.5, 2.0)
    node.connect()
    world.run_for(6.1)
    # a refused attempt takes a round trip; then 0.5, 1, 2, 2 … s before the next one
    assert fails == [0.0, 0.5, 1.5, 3.5, 5.5]
    world.broker.start()
    world.run_for(2.1)
    assert node.is_connected()
    world.broker.kill()
    world.broker.start()
    world.run_for(0.6)                                  # back to the minimum after a success
    assert node.is_connected()


def test_beyond_its_window_a_client_queues_qos1_while_qos0_goes_out_at_once() -> None:
    world = World.create(3, config=BrokerConfig(max_inflight_messages=1000))
    sub, pub = world.client("sub"), world.client("pub")
    inbox = Inbox(sub)
    sub.subscribe("w/#", 1)
    world.run_for(1)
    for n in range(25):                                  # paho's default window is 20
        pub.publish("w/q1", f"{n}", qos=1)
    pub.publish("w/q0", b"overtakes", qos=0)
    world.run_for(1)
    order = [m[1] for m in inbox.messages]
    assert order == [*(f"{n}".encode() for n in range(20)), b"overtakes", *(f"{n}".encode() for n in range(20, 25))]


def test_max_queued_messages_refuses_more_than_it_keeps() -> None:
    world = World.create(4)
    node = world.client("node", connect=False)
    node.max_queued_messages_set(2)
    assert [node.publish("t", b"x", qos=1).rc for _ in range(3)] == [
        MQTTErrorCode.MQTT_ERR_NO_CONN, MQTTErrorCode.MQTT_ERR_NO_CONN, MQTTErrorCode.MQTT_ERR_QUEUE_SIZE]


def test_a_hung_process_reads_its_backlog_on_resume_and_finds_itself_disconnected() -> None:
    world = World.create(5)
    node = world.client("node", keepalive=2, connect=False)
    node.reconnect_delay_set(0.5, 1.0)
    inbox = Inbox(node, "h/#")
    node.connect(keepalive=2)
    pub = world.client("pub")
    world.run_for(1)
    node.pause()
    pub.publish("h/1", b"while hung", qos=1)
    world.run_for(15)                                    # the broker gave up on it meanwhile
    assert inbox.messages == [] and not world.broker.connected("node")
    node.resume()
    world.run_for(2)
    assert inbox.payloads("h/1") == [b"while hung"]      # it was in the socket buffer
    assert inbox.disconnects == ["Unspecified error"] and node.is_connected() and inbox.connects == 2


def test_disconnect_and_crash_stop_the_client_for_good() -> None:
    world = World.create(6)
    a, b = world.client("a"), world.client("b")
    inbox_a, inbox_b = Inbox(a), Inbox(b)
    world.run_for(1)
    assert a.disconnect() == MQTTErrorCode.MQTT_ERR_SUCCESS
    b.crash()
    world.run_for(10)
    assert inbox_a.disconnects == ["Normal disconnection"] and not a.is_connected()
    assert inbox_b.disconnects == [] and not b.is_connected()
    assert not world.broker.connected("a") and not world.broker.connected("b")


def test_a_reconnection_due_while_hung_waits_for_the_process_to_resume() -> None:
    world = World.create(7)
    node = world.client("node", keepalive=2, connect=False)
    node.reconnect_delay_set(0.5, 1.0)
    inbox = Inbox(node)
    node.connect(keepalive=2)
    world.run_for(1)
    world.network.cut("node")
    world.run_for(0.1)                                   # lost; a retry is due in 0.5 s…
    node.pause()
    world.run_for(5)                                     # …but the process hangs
    assert inbox.connects == 1 and not world.broker.connected("node")
    node.resume()
    world.run_for(1)
    assert inbox.connects == 2 and node.is_connected()
