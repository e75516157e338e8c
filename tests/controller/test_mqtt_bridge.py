"""The controller's MQTT bridge through a real Mosquitto, with each of its transports.

Driven from outside: the bridge's public methods and queue on one side, a bare paho
client (not our code) on the other. What it must do whatever the transport: reconnect
after a broker restart with its back-off (0.5 s, then 1 s), hold what is published while
the broker is away and send it in order once back, pass calls made on another thread to
the loop, say "offline" (retained) when stopped, and count and drop a bad payload.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from controller.mqtt import MAX_HELD, Connection, Incoming, MqttBridge
from controller.mqtt_transports import TRANSPORTS
from protocol.contract import Command, ControllerStatus, PropEvent, Topics, new_id
from protocol.mqtt import RECONNECT_MAX_S, RECONNECT_MIN_S, BrokerAddress
from tests.support.mosquitto import Mosquitto, require_or_skip_mosquitto

T = Topics("bridge")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    require_or_skip_mosquitto()
    # persistence: the watcher's session (and what it missed) survives a restart
    with Mosquitto.plain(workdir=tmp_path / "mosquitto", persistence=True) as b:
        yield b


class Watcher:
    """A bare paho client with a persistent session: records everything under the root."""

    def __init__(self, broker: Mosquitto) -> None:
        self.seen: list[tuple[float, str, bytes, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watcher-{new_id()}",
                                  protocol=mqtt.MQTTv311, clean_session=False)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_message = lambda _c, _u, m: self.seen.append(
            (time.monotonic(), m.topic, m.payload, bool(m.retain)))
        acked = threading.Event()
        self.client.on_subscribe = lambda *_args: acked.set()
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        self.client.subscribe(f"{T.root}/#", qos=1)
        assert acked.wait(5), "no SUBACK"

    def payloads(self, topic: str) -> list[bytes]:
        return [p for _t, top, p, _r in self.seen if top == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def watcher(broker: Mosquitto) -> Iterator[Watcher]:
    w = Watcher(broker)
    yield w
    w.close()


def bridge_on(broker: Mosquitto, transport: str, **kw: float) -> MqttBridge:
    return MqttBridge(topics=T, broker=BrokerAddress(broker.host, broker.port), boot_id=new_id(),
                      transport=transport, **kw)


async def next_item(bridge: MqttBridge, timeout: float = 5.0) -> Incoming | Connection:
    return await asyncio.wait_for(bridge.queue.get(), timeout)


async def until(predicate: Callable[[], object], *, timeout: float = 5.0, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.002)
    return time.monotonic() - start


@pytest.mark.mosquitto
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_it_reconnects_after_a_broker_restart_with_its_back_off_and_sends_what_was_held(
        broker: Mosquitto, watcher: Watcher, transport: str) -> None:
    bridge = bridge_on(broker, transport)

    async def main() -> None:
        bridge.start()
        assert await next_item(bridge) == Connection(up=True)
        await asyncio.to_thread(broker.stop)
        lost = time.monotonic()
        assert await next_item(bridge) == Connection(up=False)
        assert not bridge.connected
        # every failed attempt is counted: the times of the counts are the back-off
        attempts: list[float] = []
        while len(attempts) < 3:
            seen = bridge.metrics["connect_failures"]
            await until(lambda seen=seen: bridge.metrics["connect_failures"] > seen, timeout=3,
                        what="a connection attempt")
            attempts.append(time.monotonic())
        gaps = [b - a for a, b in zip([lost, *attempts], attempts, strict=False)]
        assert RECONNECT_MIN_S - 0.1 <= gaps[0] <= RECONNECT_MIN_S + 0.4, gaps
        assert all(RECONNECT_MAX_S - 0.05 <= g <= RECONNECT_MAX_S + 0.4 for g in gaps[1:]), gaps

        # while away: held, in order (and a retained one), sent once the broker is back
        for i in range(3):
            bridge.send_command("hall", "door", Command(id=f"held{i}", action="unlock"))
        bridge.publish(T.emergency, b'{"held": true}', retain=True)
        await asyncio.to_thread(broker.start)
        back = time.monotonic()
        assert await next_item(bridge) == Connection(up=True)
        assert time.monotonic() - back <= RECONNECT_MAX_S + 0.5, "back within one back-off step"
        await until(lambda: len(watcher.payloads(T.prop_set("hall", "door"))) == 3,
                    what="the held commands")
        ids = [json.loads(p)["id"] for p in watcher.payloads(T.prop_set("hall", "door"))]
        assert ids == ["held0", "held1", "held2"]
        await until(lambda: watcher.payloads(T.emergency), what="the held retained message")
        assert watcher.payloads(T.emergency) == [b'{"held": true}']

        # and it reads again: a node's event reaches the queue
        event = PropEvent(boot_id="b", seq=1, type="key", value="1", ts=1.0)
        watcher.client.publish(T.prop_event("hall", "keypad"), event.to_bytes(), qos=1)
        item = await next_item(bridge)
        assert isinstance(item, Incoming) and item.payload == event
        await bridge.stop()

    asyncio.run(main())


@pytest.mark.mosquitto
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_calls_from_another_thread_are_passed_to_the_loop_in_order(
        broker: Mosquitto, watcher: Watcher, transport: str) -> None:
    bridge = bridge_on(broker, transport)
    threads: list[int] = []

    async def main() -> None:
        bridge.start()
        assert await next_item(bridge) == Connection(up=True)
        assert bridge.link is not None
        send = bridge.link.send

        def spy(*args: object, **kwargs: object) -> None:
            threads.append(threading.get_ident())
            send(*args, **kwargs)   # type: ignore[arg-type]

        bridge.link.send = spy   # type: ignore[method-assign]

        def from_a_worker() -> None:   # a sync FastAPI route runs in a worker thread
            for i in range(50):
                bridge.send_command("hall", "door", Command(id=f"c{i}", action="unlock"))
            bridge.publish(T.game_state, b"{}")
            bridge.publish_status()

        await asyncio.to_thread(from_a_worker)
        await until(lambda: len(watcher.payloads(T.prop_set("hall", "door"))) == 50,
                    what="the 50 commands")
        ids = [json.loads(p)["id"] for p in watcher.payloads(T.prop_set("hall", "door"))]
        assert ids == [f"c{i}" for i in range(50)]
        await until(lambda: watcher.payloads(T.game_state), what="the game state")
        assert set(threads) == {threading.get_ident()}, "the transport is used on the loop only"
        assert len(threads) == 52
        await bridge.stop()

    asyncio.run(main())


@pytest.mark.mosquitto
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stop_says_offline_retained_within_a_second_and_disconnects_cleanly(
        broker: Mosquitto, watcher: Watcher, transport: str) -> None:
    bridge = bridge_on(broker, transport)

    async def main() -> float:
        bridge.start()
        assert await next_item(bridge) == Connection(up=True)
        started = time.monotonic()
        await bridge.stop()
        return time.monotonic() - started

    took = asyncio.run(main())
    assert took < 1.5, f"stop took {took:.2f} s"
    assert not bridge.connected
    # retained: a client that comes later reads it at once
    late = Watcher(broker)
    try:
        deadline = time.monotonic() + 2
        while not late.payloads(T.controller_status) and time.monotonic() < deadline:
            time.sleep(0.01)
        [retained] = late.payloads(T.controller_status)
    finally:
        late.close()
    status = ControllerStatus.model_validate_json(retained)
    assert status.online is False and status.boot_id == bridge.boot_id
    # a clean DISCONNECT: no will after the status (it would say "offline" a second time)
    time.sleep(0.3)
    offline = [p for p in watcher.payloads(T.controller_status) if b'"online":false' in p]
    assert len(offline) == 1, offline


@pytest.mark.mosquitto
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_payloads_are_counted_and_dropped_and_the_next_good_one_goes_through(
        broker: Mosquitto, watcher: Watcher, transport: str) -> None:
    bridge = bridge_on(broker, transport)
    topic = T.prop_event("hall", "keypad")

    async def main() -> None:
        bridge.start()
        assert await next_item(bridge) == Connection(up=True)
        for bad in (b"not json", b"{}", b'{"v":1,"boot_id":"b","seq":1,"type":"key","ts":NaN}',
                    b"[1, 2]", b"x" * 70_000):
            watcher.client.publish(topic, bad, qos=1)
        good = PropEvent(boot_id="b", seq=2, type="key", value="2", ts=1.0)
        watcher.client.publish(topic, good.to_bytes(), qos=1)
        item = await next_item(bridge)
        assert isinstance(item, Incoming) and item.payload == good, "the first item is the good one"
        assert bridge.metrics["bad_payloads"] == 5
        assert bridge.queue.empty()
        assert bridge.connected, "a bad payload costs nothing but itself"
        await bridge.stop()

    asyncio.run(main())


def test_an_unknown_transport_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown MQTT transport 'tcp'"):
        MqttBridge(topics=T, broker=BrokerAddress(), boot_id="b", transport="tcp")


@pytest.mark.mosquitto
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_node_born_live_hears_a_fresh_status_at_once_a_retained_birth_does_not(
        broker: Mosquitto, watcher: Watcher, transport: str) -> None:
    bridge = bridge_on(broker, transport, heartbeat_s=60.0)   # no heartbeat in the way
    statuses = lambda: len(watcher.payloads(T.controller_status))  # noqa: E731

    async def main() -> None:
        bridge.start()
        assert await next_item(bridge) == Connection(up=True)
        await until(lambda: statuses() == 1, what="the status of the connection")
        birth = b'{"v":1,"online":true,"boot_id":"n1"}'
        watcher.client.publish(T.node_status("hall"), birth, qos=1, retain=True)
        assert isinstance(await next_item(bridge), Incoming)
        took = await until(lambda: statuses() == 2, timeout=1, what="a fresh status for the birth")
        assert took < 0.5
        # a retained birth (the one just published, read by a new subscription) proves
        # nothing about the node now: no status for it
        late = bridge_on(broker, transport, heartbeat_s=60.0)
        late.start()
        assert await next_item(late) == Connection(up=True)
        item = await next_item(late)
        assert isinstance(item, Incoming) and item.retained
        await asyncio.sleep(0.3)
        assert statuses() == 3, "only the late bridge's own status of its connection"
        await late.stop()
        await bridge.stop()

    asyncio.run(main())


def test_a_full_queue_is_counted_and_logged_once_per_thousand(caplog: pytest.LogCaptureFixture) -> None:
    bridge = MqttBridge(topics=T, broker=BrokerAddress(), boot_id="b")
    while not bridge.queue.full():
        bridge.queue.put_nowait(Connection(up=True))
    event = PropEvent(boot_id="b", seq=1, type="key", value="1", ts=1.0).to_bytes()
    for _ in range(1001):
        bridge.on_link_message(T.prop_event("hall", "keypad"), event, False)
    assert bridge.metrics["queue_full"] == 1001
    assert len([r for r in caplog.records if "queue full" in r.getMessage()]) == 2
    assert bridge.queue.qsize() == bridge.queue.maxsize, "what was queued is kept"


def test_what_is_published_while_away_is_held_up_to_a_bound(caplog: pytest.LogCaptureFixture) -> None:
    """Never connected (no broker yet): every publish waits (sent in order once connected:
    the restart test above); past MAX_HELD the newest are dropped, counted and logged — the
    controller's memory stays bounded."""
    bridge = MqttBridge(topics=T, broker=BrokerAddress(), boot_id="b")
    for i in range(MAX_HELD + 3):
        bridge.send_command("hall", "door", Command(id=f"c{i}", action="unlock"))
    assert bridge.metrics["held_dropped"] == 3
    assert bridge.metrics["commands_sent"] == MAX_HELD + 3
    assert len([r for r in caplog.records if "publishes held" in r.getMessage()]) == 1
