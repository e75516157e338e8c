"""What goes over the broker, seen by a bare paho client subscribed to ``escape/#``.

None of the project's MQTT code is used here: a plain paho client logs in with the
controller's broker account (the ACL lets it read the whole tree), records every message
with the monotonic time it arrived, and keeps the latest payload of each topic — for the
retained topics (statuses, prop states, the emergency) that is what the broker holds.
Payloads are read as strict JSON: a NaN or an Infinity is a finding, not a number.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt


def strict_json(data: bytes | str) -> Any:
    """``json.loads`` that refuses NaN, Infinity and -Infinity (not JSON)."""

    def refuse(name: str) -> Any:
        msg = f"{name} is not JSON"
        raise ValueError(msg)

    return json.loads(data, parse_constant=refuse)


@dataclass(frozen=True)
class Msg:
    at: float              # monotonic, on receipt
    topic: str
    payload: bytes
    retain: bool
    data: Any              # the decoded JSON object, or None when it is not JSON
    valid: bool = True     # False: a payload that is not strict JSON

    @property
    def parts(self) -> list[str]:
        return self.topic.split("/")


Listener = Callable[[Msg], None]


class Wire:
    """The observer. Reconnects by itself (broker restarts); :attr:`bad_json` lists every
    payload under ``escape/`` that was not strict JSON."""

    def __init__(self, *, port: int, username: str, password: str, root: str) -> None:
        self.root = root
        self.lock = threading.RLock()
        self.messages: list[Msg] = []
        self.latest: dict[str, Msg] = {}
        self.bad_json: list[Msg] = []
        self.listeners: list[Listener] = []
        self.connected = threading.Event()
        self.connections = 0
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"soak-observer-{int(time.time() * 1000) % 10**9}",
                                  protocol=mqtt.MQTTv311, clean_session=True)
        self.client.username_pw_set(username, password)
        # NOTE: back before the nodes (0.5 s, then 1 s) after a broker restart, so that what
        # they are handed and do on reconnection is seen too
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)  # type: ignore[arg-type]  # floats work
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            return
        client.subscribe(f"{self.root}/#", qos=1)
        with self.lock:
            self.connections += 1
        self.connected.set()

    def _on_disconnect(self, *_args: object) -> None:
        self.connected.clear()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        try:
            data = strict_json(message.payload) if message.payload else None
            bad = False
        except ValueError:
            data, bad = None, True
        msg = Msg(time.monotonic(), message.topic, bytes(message.payload), bool(message.retain), data,
                  valid=not bad)
        with self.lock:
            self.messages.append(msg)
            self.latest[msg.topic] = msg
            if bad:
                self.bad_json.append(msg)
            for listener in self.listeners:
                listener(msg)

    # -- reading ------------------------------------------------------------------------
    def topic(self, *levels: str) -> str:
        return "/".join((self.root, *levels))

    def state(self, node: str, prop: str) -> Msg | None:
        with self.lock:
            return self.latest.get(self.topic("nodes", node, "props", prop, "state"))

    def state_fields(self, node: str, prop: str) -> dict[str, Any] | None:
        """A prop's latest reported fields, without the envelope (``v``, ``ack``, …)."""
        msg = self.state(node, prop)
        if msg is None or not isinstance(msg.data, dict):
            return None
        return {k: v for k, v in msg.data.items() if k not in ("v", "ack", "boot_id", "ts")}

    def status(self, node: str) -> dict[str, Any] | None:
        with self.lock:
            msg = self.latest.get(self.topic("nodes", node, "status"))
        return msg.data if msg is not None and isinstance(msg.data, dict) else None

    def since(self, at: float, predicate: Callable[[Msg], bool] | None = None) -> list[Msg]:
        with self.lock:
            # messages are appended in order of receipt: walk back from the end
            out: list[Msg] = []
            for msg in reversed(self.messages):
                if msg.at < at:
                    break
                if predicate is None or predicate(msg):
                    out.append(msg)
        out.reverse()
        return out
