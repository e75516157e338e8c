"""The paho-mqtt client both the node agent and the controller use.

One place sets what every connection of this system needs: MQTT 3.1.1 with paho's
VERSION2 callbacks, TCP_NODELAY on the socket (without it each hop waits for the peer's
delayed ACK, ≈ 40 ms on Linux), the credentials of the process's settings, a last will,
and automatic reconnection with a short back-off.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

#: reconnection back-off (s): the first retry after the minimum, then doubling up to the
#: maximum (paho's ``reconnect_delay_set``; the controller's bridge uses the same numbers)
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 1.0


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is and how to log in."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, text: str, *, username: str | None = None, password: str | None = None) -> BrokerAddress:
        """``host``, ``host:port`` or ``mqtt://host:port``."""
        text = text.strip().removeprefix("mqtt://")
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = text, "1883"
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            msg = f"invalid broker address {text!r}: expected host or host:port"
            raise ValueError(msg)
        return cls(host=host, port=int(port), username=username, password=password)


def set_nodelay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # a websocket or a unix socket: nothing to do
        log.debug("TCP_NODELAY not set on %r", sock)


def make_client(client_id: str, broker: BrokerAddress, *, will_topic: str | None = None,
                will_payload: bytes | None = None) -> mqtt.Client:
    """A configured, not yet connected client (call ``connect_async`` + ``loop_start``)."""
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    client.on_socket_open = set_nodelay
    # NOTE: retry every 0.5 s, then every 1 s: back within a second of the broker (the
    # fault suite measures it); a handful of nodes retrying each second costs the broker nothing.
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)  # type: ignore[arg-type]  # floats work
    # Keep many QoS 1 messages in flight: events burst when a code is typed quickly.
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(10_000)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if will_topic is not None:
        client.will_set(will_topic, will_payload, qos=1, retain=True)
    return client
