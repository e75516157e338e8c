"""A client's unacknowledged QoS 1 messages, kept and resent the way paho-mqtt 2.x does.

- a QoS 1 message is kept until its PUBACK; within ``max_inflight_messages`` it is sent
  at once (or, while disconnected, marked to send after the next CONNACK, ``rc`` =
  ``MQTT_ERR_NO_CONN``); beyond, it waits for a PUBACK to free a place;
- ``max_queued_messages`` (0: no limit) bounds how many are kept: beyond,
  ``MQTT_ERR_QUEUE_SIZE`` and the message is not kept;
- on a new connection, every kept message is to be sent again, those already sent with
  DUP, the window ignored (paho's ``_messages_reconnect_reset_out``), after what
  ``on_connect`` itself publishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from paho.mqtt.client import MQTTErrorCode

from simulation.packets import Publish


class PublishInfo:
    """What ``publish`` returns (paho's ``MQTTMessageInfo``, minus the blocking wait)."""

    __slots__ = ("mid", "published", "rc")

    def __init__(self, mid: int, rc: MQTTErrorCode = MQTTErrorCode.MQTT_ERR_SUCCESS) -> None:
        self.mid = mid
        self.rc = rc
        self.published = False

    def is_published(self) -> bool:
        return self.published

    def __iter__(self) -> Iterator[int]:
        return iter((self.rc, self.mid))


@dataclass(slots=True)
class _Kept:
    packet: Publish
    info: PublishInfo
    state: str  # "queued" (beyond the window), "publish" (to send), "wait" (for its PUBACK)


class Outgoing:
    """The kept QoS 1 messages of one client, in the order they were published."""

    def __init__(self) -> None:
        self.max_inflight = 20
        self.max_queued = 0
        self.inflight = 0
        self._kept: dict[int, _Kept] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def add(self, packet: Publish, *, sendable: bool) -> tuple[PublishInfo, Publish | None]:
        """Keep *packet*; return its info and what to send now (None: nothing)."""
        info = PublishInfo(packet.mid)
        if self.max_queued and len(self._kept) >= self.max_queued:
            info.rc = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
            return info, None
        kept = _Kept(packet, info, "queued")
        self._kept[packet.mid] = kept
        if self.max_inflight and self.inflight >= self.max_inflight:
            return info, None
        if not sendable:
            kept.state = "publish"
            info.rc = MQTTErrorCode.MQTT_ERR_NO_CONN
            return info, None
        self.inflight += 1
        kept.state = "wait"
        return info, packet.copy()

    def reconnecting(self) -> None:
        """A new connection starts: everything is to be sent again."""
        self.inflight = 0
        for kept in self._kept.values():
            if kept.state == "wait":
                kept.packet.dup = True
            kept.state = "publish"

    def acknowledged(self, mid: int) -> PublishInfo | None:
        kept = self._kept.pop(mid, None)
        if kept is None:
            return None
        self.inflight = max(0, self.inflight - 1)
        kept.info.published = True
        return kept.info

    def due(self, *, after_connack: bool) -> list[Publish]:
        """What to send now. After a CONNACK: every message marked to send, up to the first
        one still queued (paho stops there); after a PUBACK: queued ones, while the window
        has room (paho's ``_update_inflight``)."""
        out: list[Publish] = []
        for kept in self._kept.values():
            if after_connack:
                if kept.state == "queued":
                    break
                if kept.state != "publish":
                    continue
            elif self.inflight >= self.max_inflight:
                break
            elif kept.state != "queued":
                continue
            self.inflight += 1
            kept.state = "wait"
            out.append(kept.packet.copy())
        return out


def payload_bytes(payload: Any) -> bytes:
    """paho's payload rules: None → empty, str → UTF-8, numbers → their text."""
    if payload is None:
        return b""
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if isinstance(payload, int | float):
        return str(payload).encode("ascii")
    msg = "payload must be a string, bytearray, int, float or None."
    raise TypeError(msg)


def check_qos(qos: int) -> None:
    if qos not in (0, 1):
        msg = f"QoS {qos} is not simulated (this project uses 0 and 1)" if qos == 2 else "Invalid QoS level."
        raise ValueError(msg)
