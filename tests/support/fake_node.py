"""A room that never does what it is told: a bare paho client speaking only the contract.

It announces itself as node *node_id* (a retained birth, the retained state of its
maglocks: engaged), records every command sent to it, and applies none — a relay welded
shut, a node whose worker thread hung, a firmware that drops ``set`` messages. Built on
raw JSON, not on the project's node code or payload models, as an outsider would write it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt


@dataclass(frozen=True)
class Received:
    prop: str
    command: dict[str, object]
    at: float   # monotonic


class DeafNode:
    """Registered as *node_id* of apartment *apartment_id*; its *maglocks* report engaged."""

    def __init__(self, *, host: str, port: int, apartment_id: str, node_id: str,
                 maglocks: tuple[str, ...]) -> None:
        self.root = f"escape/{apartment_id}/nodes/{node_id}"
        self.maglocks = maglocks
        self.boot_id = f"deaf{int(time.monotonic() * 1000) % 100000}"
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = False
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"deaf-{node_id}-{self.boot_id}", protocol=mqtt.MQTTv311)
        self.client.will_set(f"{self.root}/status",
                             json.dumps({"v": 1, "online": False, "boot_id": self.boot_id}),
                             qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        with self._cond:
            assert self._cond.wait_for(lambda: self._subscribed, 10), "the deaf node did not subscribe"

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, _rc: object, _p: object) -> None:
        client.subscribe(f"{self.root}/props/+/set", qos=1)
        # a birth without keepalive: watched through its will only (an older node)
        client.publish(f"{self.root}/status", json.dumps({
            "v": 1, "online": True, "boot_id": self.boot_id, "version": "deaf",
            "props": [{"id": p, "kind": "maglock"} for p in self.maglocks],
            "simulated": True, "ts": time.time()}), qos=1, retain=True)
        for prop in self.maglocks:
            client.publish(f"{self.root}/props/{prop}/state", json.dumps({
                "v": 1, "boot_id": self.boot_id, "ts": time.time(),
                "locked": True, "engaged": True, "door": "closed"}), qos=1, retain=True)

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, _r: object, _p: object) -> None:
        with self._cond:
            self._subscribed = True
            self._cond.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        prop = msg.topic.split("/")[-2]
        with self._cond:
            self.received.append(Received(prop, json.loads(msg.payload), time.monotonic()))
            self._cond.notify_all()

    def commands(self, action: str | None = None, *, since: float = 0.0) -> list[Received]:
        with self._cond:
            return [r for r in self.received
                    if r.at >= since and (action is None or r.command.get("action") == action)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
