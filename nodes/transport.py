"""How a node's MQTT client talks to the broker: paho's own network loop.

paho's ``loop_start()`` runs its network thread: it connects (retrying with the back-off
``protocol.mqtt.make_client`` sets), reads, writes, pings, and calls our callbacks; a
publish from another thread queues the packet and wakes it. A hand-written loop where
the publishing thread writes to the socket itself saves that wake-up and was measured
side by side (docs/performance.md, "Node transport"): not better end to end, so not kept.
"""

from __future__ import annotations

from typing import Protocol

import paho.mqtt.client as mqtt


class Transport(Protocol):
    """A network loop for one configured paho client (``connect_async`` already called)."""

    def start(self) -> None: ...

    def publish(self, topic: str, payload: bytes, *, qos: int,
                retain: bool = False) -> mqtt.MQTTMessageInfo: ...

    def stop(self) -> None:
        """Send DISCONNECT (if connected: the broker keeps the will) and end the loop."""


class PahoLoop:
    """paho's own network thread."""

    def __init__(self, client: mqtt.Client, *, name: str = "mqtt-network") -> None:
        self.client = client
        self.name = name

    def start(self) -> None:
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, *, qos: int,
                retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def stop(self) -> None:
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()
