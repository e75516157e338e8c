"""The bench's hand-written network loop for a node (``bench._network_thread``: the
alternative to paho's own loop that ``bench.e2e --node-transports`` measures).

A publish is written to the socket by the thread that makes it, before ``publish()``
returns; several threads publishing at once never interleave their packets; paho's
callbacks may publish (no deadlock, written right after them); the thread reconnects on
its own and stops with a DISCONNECT. Over the real brokers, and over a bare socket where
the test needs to see the bytes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
from bench._network_thread import NetworkThread

from protocol.mqtt import BrokerAddress, make_client
from tests.conftest import BrokerHandle


def _wait(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def _started(name: str, broker: BrokerHandle) -> tuple[mqtt.Client, NetworkThread]:
    client = make_client(name, BrokerAddress(broker.host, broker.port))
    client.connect_async(broker.host, broker.port, keepalive=10)
    net = NetworkThread(client, name=f"test-{name}")
    net.start()
    assert _wait(client.is_connected), f"{name} did not connect to {broker.kind}"
    return client, net


def _subscriber(broker: BrokerHandle, topic: str) -> tuple[mqtt.Client, list[bytes]]:
    got: list[bytes] = []
    sub = make_client(f"sub-{time.monotonic_ns()}", BrokerAddress(broker.host, broker.port))
    ready = threading.Event()
    sub.on_message = lambda _c, _u, m: got.append(m.payload)
    sub.on_subscribe = lambda *_a: ready.set()
    sub.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
    sub.connect(broker.host, broker.port)
    sub.loop_start()
    assert ready.wait(5), "subscriber not ready"
    return sub, got


@contextlib.contextmanager
def _node_and_listener(broker: BrokerHandle, name: str, topic: str
                       ) -> Iterator[tuple[mqtt.Client, NetworkThread, list[bytes]]]:
    """A client run by a NetworkThread, and a plain subscriber to *topic*; both stopped after."""
    client, net = _started(name, broker)
    sub, got = _subscriber(broker, topic)
    try:
        yield client, net, got
    finally:
        net.stop()
        sub.loop_stop()
        sub.disconnect()


def test_a_publish_is_written_by_its_caller_before_it_returns(broker: BrokerHandle) -> None:
    with _node_and_listener(broker, "direct", "test/direct") as (client, net, got):
        writers: list[int] = []
        send = client._sock_send

        def spy(buf: bytes) -> int:
            writers.append(threading.get_ident())
            return send(buf)

        client._sock_send = spy  # type: ignore[method-assign]
        info = net.publish("test/direct", b"hello", qos=1)
        assert writers == [threading.get_ident()], "written here, not by the network thread"
        assert info.is_published() or info.rc == mqtt.MQTT_ERR_SUCCESS
        assert _wait(lambda: got == [b"hello"])
        assert _wait(info.is_published), "the PUBACK was read by the network thread"
        assert client._thread is None, "no paho thread: ours"


def test_threads_publishing_at_once_never_interleave_their_packets(broker: BrokerHandle) -> None:
    per_thread, n_threads = 300, 4
    with _node_and_listener(broker, "many", "test/many/#") as (client, net, got):
        def burst(t: int) -> None:
            for i in range(per_thread):
                net.publish(f"test/many/{t}", f"{t}:{i}:".encode() + b"x" * (i % 200), qos=1)

        threads = [threading.Thread(target=burst, args=(t,)) for t in range(n_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert _wait(lambda: len(got) == per_thread * n_threads, timeout=30), len(got)
        assert client.is_connected(), "no broken packet: the broker kept the connection"
        for t in range(n_threads):
            mine = [int(p.split(b":")[1]) for p in got if p.startswith(f"{t}:".encode())]
            assert mine == list(range(per_thread)), f"thread {t}'s messages in order"


def test_a_callback_may_publish_and_its_packet_leaves_at_once(broker: BrokerHandle) -> None:
    with _node_and_listener(broker, "echo", "test/echo/out") as (client, net, got):
        def echo(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
            net.publish("test/echo/out", message.payload, qos=1)   # on the network thread

        client.on_message = echo
        subscribed = threading.Event()
        client.on_subscribe = lambda *_a: subscribed.set()
        client.subscribe("test/echo/in", qos=1)   # not through net: the network thread writes it
        assert subscribed.wait(5)
        for i in range(50):
            net.publish("test/echo/in", str(i).encode(), qos=1)
        assert _wait(lambda: len(got) == 50), f"{len(got)} echoed"
        assert got == [str(i).encode() for i in range(50)]


class _BareBroker:
    """A listening socket that answers CONNECT with CONNACK: enough to watch a client connect."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(10)
        self.port = self.server.getsockname()[1]

    def accept_connect(self) -> socket.socket:
        conn, _ = self.server.accept()
        conn.settimeout(5)
        assert conn.recv(1)[0] >> 4 == 1, "CONNECT first"
        length = conn.recv(1)[0]
        conn.recv(length)
        conn.sendall(b"\x20\x02\x00\x00")   # CONNACK, accepted
        return conn


def test_it_reconnects_on_its_own_and_stops_with_a_disconnect() -> None:
    bare = _BareBroker()
    client = make_client("bare", BrokerAddress("127.0.0.1", bare.port))
    client.connect_async("127.0.0.1", bare.port, keepalive=10)
    net = NetworkThread(client, name="test-bare")
    net.start()
    try:
        first = bare.accept_connect()
        assert _wait(client.is_connected)
        first.close()                                   # the broker goes away
        assert _wait(lambda: not client.is_connected())
        t0 = time.monotonic()
        # NOTE: a publish while the link is down neither blocks nor fails: queued (QoS 1).
        info = net.publish("test/later", b"queued", qos=1)
        assert time.monotonic() - t0 < 0.2
        second = bare.accept_connect()                  # it came back by itself
        assert _wait(client.is_connected)
        second.settimeout(5)
        data = b""
        while b"queued" not in data:
            data += second.recv(4096)
        assert data[0] >> 4 == 3, "the queued publish is sent again after the new CONNACK"
        assert not info.is_published(), "not acknowledged yet"
        net.stop()
        assert second.recv(2) == b"\xe0\x00", "DISCONNECT on stop"
        assert not net._thread.is_alive()
    finally:
        net.stop()
        bare.server.close()
