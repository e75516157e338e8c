"""Two drivers for the same scripted MQTT scenarios: raw paho clients over a real
Mosquitto, and SimClients over the simulated broker.

A scenario only talks to a :class:`Driver` and its :class:`Handle` s; each handle records
what its client observes, in order, as plain tuples::

    ("connack", session_present)
    ("suback", [granted QoS, …])
    ("msg", topic, payload, qos, retain, dup)
    ("disconnect", reason)

so the two runs can be compared event for event. A handle name may be reconnected (a new
client object, the same client id by default): its events go on the same list.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from simulation.broker import BrokerConfig, SimBroker
from simulation.client import SimClient
from simulation.network import Network
from simulation.scheduler import Machine, Scheduler
from tests.support.mosquitto import Mosquitto

Event = tuple[Any, ...]
WillSpec = tuple[str, bytes, int, bool]


class Handle:
    """One scripted client (paho or simulated)."""

    def __init__(self, driver: Driver, name: str, client: Any, birth: tuple[str, bytes] | None = None) -> None:
        self.driver = driver
        self.birth = birth
        self.name = name
        self.client = client
        self.events = driver.events.setdefault(name, [])
        self._unacked: list[int] = []

    # what a scenario does
    def subscribe(self, *topics: tuple[str, int]) -> None:
        before = self.count("suback")
        self.client.subscribe(list(topics))
        self.driver.wait_until(lambda: self.count("suback") > before, timeout=5, what="SUBACK")

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, *,
                wait: bool = True) -> Any:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if wait and qos:
            self.driver.wait_until(info.is_published, timeout=5, what=f"PUBACK of {topic}")
        return info

    def ack_all(self) -> None:
        """Acknowledge every QoS 1 message received so far (a ``manual_ack`` client)."""
        for mid in self._unacked:
            self.client.ack(mid, 1)
        self._unacked.clear()

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e[0] == kind)

    def messages(self) -> list[Event]:
        return [e for e in self.events if e[0] == "msg"]

    # callbacks (the same signatures on both sides: paho's VERSION2)
    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        self.events.append(("connack", bool(flags.session_present)) if not reason.is_failure
                           else ("refused", str(reason)))
        if self.birth is not None and not reason.is_failure:
            self.client.publish(*self.birth, qos=1, retain=True)  # what a node does first

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        self.events.append(("suback", [int(c.value) for c in codes]))

    def _on_message(self, _c: Any, _u: Any, m: Any) -> None:
        self.events.append(("msg", m.topic, bytes(m.payload), m.qos, bool(m.retain), bool(m.dup)))
        if m.qos == 1:
            self._unacked.append(m.mid)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.events.append(("disconnect", str(reason)))

    def wire(self) -> None:
        c = self.client
        c.on_connect, c.on_subscribe = self._on_connect, self._on_subscribe
        c.on_message, c.on_disconnect = self._on_message, self._on_disconnect


class Driver:
    """What scenarios use; :class:`MosquittoDriver` and :class:`SimDriver` implement it."""

    events: dict[str, list[Event]]

    def client(self, name: str, *, client_id: str | None = None, clean: bool = True,
               keepalive: int = 60, will: WillSpec | None = None, manual_ack: bool = False,
               max_inflight: int = 20, reconnect: bool = False, birth: tuple[str, bytes] | None = None,
               ) -> Handle:
        raise NotImplementedError

    def disconnect(self, handle: Handle) -> None:
        """A clean DISCONNECT."""
        raise NotImplementedError

    def cut(self, handle: Handle) -> None:
        """The client's socket closes without DISCONNECT (its process died)."""
        raise NotImplementedError

    def hang(self, handle: Handle) -> None:
        """The client stops reading and sending (no keepalive ping); its socket stays open."""
        raise NotImplementedError

    def stop_broker(self) -> None: ...
    def kill_broker(self) -> None: ...
    def start_broker(self) -> None: ...

    def now(self) -> float:
        raise NotImplementedError

    def wait_until(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        raise NotImplementedError

    def settle(self) -> None:
        """Let everything in flight arrive."""
        raise NotImplementedError

    def connected(self, handle: Handle, before: int) -> None:
        """Wait for the CONNACK of a connection started when *handle* had *before* events."""
        self.wait_until(lambda: any(e[0] in ("connack", "refused") for e in handle.events[before:]),
                        timeout=5, what=f"CONNACK for {handle.name}")


class MosquittoDriver(Driver):
    """paho clients (their own network thread each) over a real Mosquitto."""

    def __init__(self, workdir: Path, *, persistence: bool = False) -> None:
        self.broker = Mosquitto.plain(workdir=workdir, persistence=persistence).start()
        self.events = {}
        self._clients: list[mqtt.Client] = []

    def close(self) -> None:
        for c in self._clients:
            c.loop_stop()
            sock = c.socket()
            if sock is not None:
                sock.close()
        self.broker.stop()

    def client(self, name: str, *, client_id: str | None = None, clean: bool = True,
               keepalive: int = 60, will: WillSpec | None = None, manual_ack: bool = False,
               max_inflight: int = 20, reconnect: bool = False, birth: tuple[str, bytes] | None = None,
               ) -> Handle:
        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                        client_id=client_id or name, protocol=mqtt.MQTTv311, clean_session=clean,
                        reconnect_on_failure=reconnect, manual_ack=manual_ack)
        if will is not None:
            c.will_set(*will)
        c.max_inflight_messages_set(max_inflight)
        c.reconnect_delay_set(min_delay=0.5, max_delay=1)  # type: ignore[arg-type]  # as protocol.mqtt
        handle = Handle(self, name, c, birth)
        handle.wire()
        self._clients.append(c)
        before = len(handle.events)
        c.connect(self.broker.host, self.broker.port, keepalive=keepalive)
        c.loop_start()
        self.connected(handle, before)
        return handle

    def disconnect(self, handle: Handle) -> None:
        handle.client.disconnect()
        handle.client.loop_stop()  # returns once the DISCONNECT is written and the socket closed

    def cut(self, handle: Handle) -> None:
        handle.client.loop_stop()
        sock = handle.client.socket()
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def hang(self, handle: Handle) -> None:
        handle.client.loop_stop()

    def stop_broker(self) -> None:
        self.broker.stop()

    def kill_broker(self) -> None:
        self.broker.kill()

    def start_broker(self) -> None:
        self.broker.start()

    def now(self) -> float:
        return time.monotonic()

    def wait_until(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                msg = f"timed out after {timeout} s waiting for {what}: {self.events}"
                raise AssertionError(msg)
            time.sleep(0.005)

    def settle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        seen, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            total = sum(len(v) for v in self.events.values())
            if total != seen:
                seen, since = total, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.01)


class SimDriver(Driver):
    """SimClients over the simulated broker, in virtual time."""

    def __init__(self, seed: int, *, persistence: bool = False) -> None:
        self.scheduler = Scheduler(seed)
        self.network = Network(self.scheduler)
        self.broker = SimBroker(self.network, Machine(self.scheduler, "broker"),
                                BrokerConfig(persistence=persistence))
        self.broker.start()
        self.events = {}

    def client(self, name: str, *, client_id: str | None = None, clean: bool = True,
               keepalive: int = 60, will: WillSpec | None = None, manual_ack: bool = False,
               max_inflight: int = 20, reconnect: bool = False, birth: tuple[str, bytes] | None = None,
               ) -> Handle:
        c = SimClient(self.network, Machine(self.scheduler, name), client_id or name,
                      clean_session=clean, reconnect_on_failure=reconnect, manual_ack=manual_ack)
        if will is not None:
            c.will_set(*will)
        c.max_inflight_messages_set(max_inflight)
        c.reconnect_delay_set(min_delay=0.5, max_delay=1)  # type: ignore[arg-type]  # as protocol.mqtt
        handle = Handle(self, name, c, birth)
        handle.wire()
        before = len(handle.events)
        c.connect(keepalive=keepalive)
        self.connected(handle, before)
        return handle

    def disconnect(self, handle: Handle) -> None:
        # like paho's loop_stop: back once the DISCONNECT is out and on_disconnect ran
        handle.client.disconnect()
        self.wait_until(lambda: handle.events[-1][0] == "disconnect", timeout=5, what="on_disconnect")

    def cut(self, handle: Handle) -> None:
        handle.client.crash()

    def hang(self, handle: Handle) -> None:
        handle.client.pause()

    def stop_broker(self) -> None:
        self.broker.stop()

    def kill_broker(self) -> None:
        self.broker.kill()

    def start_broker(self) -> None:
        self.broker.start()

    def now(self) -> float:
        return self.scheduler.now

    def wait_until(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        if not self.scheduler.run_until_true(condition, timeout=timeout):
            msg = f"timed out after {timeout} virtual s waiting for {what}: {self.events}"
            raise AssertionError(msg)

    def settle(self) -> None:
        self.scheduler.run_for(1.0)
