"""A node's boot played by a bare paho client that speaks only the MQTT contract (raw JSON,
none of our node code): what a foreign or older node, or a test of delivery orders, needs.

Its client id names its boot (as older nodes did), so the broker keeps the old boot's
connection, and its will, until it notices that connection gone.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from tests.support.mosquitto import Mosquitto


class RawNode:
    """One boot (*boot*, counter *boot_n*: None for a node without one) of node *node*."""

    def __init__(self, broker: Mosquitto, *, apartment: str, node: str, boot: str,
                 boot_n: int | None = None, keepalive: float = 3.0,
                 via: tuple[str, int] | None = None, clock_shift: float = 0.0) -> None:
        self.root = f"escape/{apartment}/nodes/{node}"
        self.boot, self.boot_n, self.keepalive = boot, boot_n, keepalive
        self.heartbeat = keepalive / 3
        self.clock_shift = clock_shift
        self.resyncs = 0
        #: answers a resync (False: a boot that is gone, whose late messages a test replays)
        self.answers_resync = True
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"raw-{node}-{boot}", protocol=mqtt.MQTTv311)
        self.client.will_set(f"{self.root}/status", self._json(online=False), qos=1, retain=True)
        self.client.on_message = self._on_message
        connected = threading.Event()
        self.client.on_connect = lambda *_a: connected.set()
        host, port = via or (broker.host, broker.port)
        self.client.connect(host, port, keepalive=int(keepalive))
        self.client.loop_start()
        assert connected.wait(5), "the raw node could not connect"
        self.client.subscribe(f"{self.root}/resync", qos=1)

    def _json(self, **fields: Any) -> bytes:
        data: dict[str, Any] = {"v": 1, "boot_id": self.boot, **fields}
        if self.boot_n is not None:
            data["boot_n"] = self.boot_n
        return json.dumps(data).encode()

    def _publish(self, leaf: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(f"{self.root}/{leaf}", payload, qos=qos, retain=retain)
        if qos:
            info.wait_for_publish(5)
            assert info.is_published(), f"no PUBACK for {leaf}"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/resync") and self.answers_resync:   # as the contract says: birth again
            self.resyncs += 1
            self.birth(wait=False)

    def now(self) -> float:
        return time.time() + self.clock_shift

    def birth(self, *, wait: bool = True) -> None:
        payload = self._json(online=True, version="raw", ts=self.now(), keepalive=self.keepalive,
                             heartbeat=self.heartbeat)
        if wait:
            self._publish("status", payload, retain=True)
        else:
            self.client.publish(f"{self.root}/status", payload, qos=1, retain=True)

    def will(self) -> None:
        """Its will, as the broker would publish it (retained)."""
        self._publish("status", self._json(online=False), retain=True)

    def clear_status(self) -> None:
        """Clear the node's retained status (what a previous test left)."""
        self._publish("status", b"", retain=True)

    def beat(self) -> float:
        """One heartbeat (QoS 0); return the monotonic time it was published."""
        at = time.monotonic()
        self._publish("heartbeat", self._json(ts=self.now(), autonomous=False, outbox=0), qos=0)
        return at

    def beat_every(self) -> float:
        """Heartbeats from now on, every interval its birth announces; return the first's time."""
        first = self.beat()

        def run() -> None:
            while not self._stop.wait(self.heartbeat):
                self.beat()
        self._beater = threading.Thread(target=run, name=f"raw-{self.boot}-beats", daemon=True)
        self._beater.start()
        return first

    def event(self, prop: str, type_: str, value: Any, *, seq: int, session: str | None = None,
              replayed: bool | None = None) -> None:
        data: dict[str, Any] = {"v": 1, "boot_id": self.boot, "seq": seq, "type": type_,
                                "value": value, "ts": self.now()}
        if session is not None:
            data["session"] = session
        if replayed is not None:
            data["replayed"] = replayed
        self._publish(f"props/{prop}/event", json.dumps(data).encode())

    def state(self, prop: str, **fields: Any) -> None:
        """A prop's reported state (retained, as a node publishes it), e.g. a maglock's
        ``engaged=False, locked=False, door="closed"``."""
        self._publish(f"props/{prop}/state", json.dumps({"v": 1, **fields}).encode(), retain=True)

    def close(self) -> None:
        self._stop.set()
        if self._beater is not None:
            self._beater.join(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()
