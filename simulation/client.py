"""A simulated MQTT client with the part of paho-mqtt's API (2.x, VERSION2 callbacks) this
project uses, and paho's behaviour where it shows:

- ``publish`` returns an info with ``rc`` and ``mid``; QoS 0 while disconnected is lost
  (``MQTT_ERR_NO_CONN``); QoS 1 is kept and sent after the next CONNACK, with DUP set if
  it had been sent before; beyond ``max_inflight_messages`` it waits for a PUBACK while a
  later QoS 0 goes out at once;
- on reconnection, what ``on_connect`` publishes is sent before that backlog;
- keepalive: a PINGREQ after ``keepalive`` s without sending, the connection given up
  after ``keepalive`` s more without hearing back (and a CONNACK awaited as long);
- automatic reconnection (``reconnect_on_failure``) after ``reconnect_delay_set``'s
  delays: the minimum first, doubling up to the maximum, back to the minimum after a
  successful connection.

Callbacks get paho's own types (``ConnectFlags``, ``ReasonCode``, ``MQTTMessage``…), so
code written for paho runs unchanged. Simulation-only controls: :meth:`SimClient.crash`
(the process dies: the OS closes the socket, no DISCONNECT) and :meth:`SimClient.pause` /
:meth:`SimClient.resume` (the process hangs: nothing read, nothing sent, no ping).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from paho.mqtt.client import (
    ConnectFlags,
    DisconnectFlags,
    MQTTErrorCode,
    MQTTMessage,
    convert_connack_rc_to_reason_code,
)
from paho.mqtt.enums import ConnackCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from simulation.network import Connection, Network
from simulation.outgoing import Outgoing, PublishInfo, check_qos, payload_bytes
from simulation.packets import (
    Closed,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
)
from simulation.scheduler import Machine, Timer
from simulation.topics import valid_filter, valid_topic

Callback = Callable[..., Any] | None
#: below float rounding of virtual times, above zero: a deadline computed from a clock is
#: reached when the timer set for it fires, and a re-armed timer always moves time forward
TICK = 1e-6


class _End:
    """The client's end of one connection (packets of an older connection are ignored)."""

    __slots__ = ("client", "conn")

    def __init__(self, client: SimClient) -> None:
        self.client = client
        self.conn: Connection | None = None

    def receive(self, packet: Packet) -> None:
        self.client._receive(self, packet)


class SimClient:
    """A paho-like client of the simulated broker, on a simulated machine."""

    def __init__(self, network: Network, machine: Machine, client_id: str = "", *,
                 clean_session: bool = True, userdata: Any = None, reconnect_on_failure: bool = True,
                 manual_ack: bool = False) -> None:
        self.network = network
        self.machine = machine
        self.scheduler = network.scheduler
        self.client_id = client_id
        self.clean_session = clean_session
        self.reconnect_on_failure = reconnect_on_failure
        self.manual_ack = manual_ack
        self.on_connect: Callback = None
        self.on_connect_fail: Callback = None
        self.on_disconnect: Callback = None
        self.on_message: Callback = None
        self.on_publish: Callback = None
        self.on_subscribe: Callback = None
        self.on_unsubscribe: Callback = None
        self._userdata = userdata
        self._state = "new"  # connecting, connected, disconnected, dead
        self._wanted = False
        self._end: _End | None = None
        self._keepalive = 60
        self._will: Will | None = None
        self._reconnect_min, self._reconnect_max = 1.0, 120.0
        self._reconnect_delay: float | None = None
        self._out = Outgoing()
        self._last_mid = 0
        self._last_out = self._last_in = self._ping_t = 0.0
        self._keepalive_timer: Timer | None = None
        self._retry_timer: Timer | None = None
        self._paused = False
        self._backlog: deque[tuple[_End, Packet]] = deque()
        self._outbox: deque[Packet] = deque()

    # -- configuration (paho's names) ---------------------------------------------------
    def will_set(self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False) -> None:
        check_qos(qos)
        if not valid_topic(topic):
            msg = "Invalid topic."
            raise ValueError(msg)
        self._will = Will(topic, payload_bytes(payload), qos, retain)

    def will_clear(self) -> None:
        self._will = None

    def reconnect_delay_set(self, min_delay: float = 1, max_delay: float = 120) -> None:
        self._reconnect_min, self._reconnect_max = float(min_delay), float(max_delay)
        self._reconnect_delay = None

    def max_inflight_messages_set(self, inflight: int) -> None:
        self._out.max_inflight = inflight

    def max_queued_messages_set(self, queue_size: int) -> None:
        self._out.max_queued = queue_size

    def user_data_set(self, userdata: Any) -> None:
        self._userdata = userdata

    # -- connection ---------------------------------------------------------------------
    def connect(self, host: str = "broker", port: int = 1883, keepalive: int = 60) -> None:
        """Connect now, and (with ``reconnect_on_failure``) keep reconnecting until
        :meth:`disconnect`: paho's ``connect_async`` + ``loop_start``."""
        if self._state == "dead":
            msg = "this client's process crashed"
            raise RuntimeError(msg)
        self._keepalive = keepalive
        self._wanted = True
        self._open()

    connect_async = connect

    def reconnect(self) -> None:
        self._drop_connection()
        self._open()

    def is_connected(self) -> bool:
        return self._state == "connected"

    def disconnect(self) -> MQTTErrorCode:
        """Send DISCONNECT (the broker discards the will), close, stop reconnecting."""
        self._wanted = False
        self._cancel(retry=True)
        if self._end is None or self._state not in ("connecting", "connected"):
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        self._send(Disconnect())
        self._drop_connection()
        self.scheduler.call_soon(self._notify_disconnect, "Success")
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def crash(self) -> None:
        """The process dies: the OS closes its socket (no DISCONNECT, so the broker
        publishes the will); this object is dead (no callback, no reconnection)."""
        self._drop_connection()
        self._state, self._wanted = "dead", False
        self._cancel(retry=True)
        self.scheduler.log(self.machine.name, f"{self.client_id}: process crashed")

    def pause(self) -> None:
        """The process hangs: packets wait unread, nothing is sent, no keepalive ping."""
        self._paused = True
        self.scheduler.log(self.machine.name, f"{self.client_id}: paused")

    def resume(self) -> None:
        self._paused = False
        self.scheduler.log(self.machine.name, f"{self.client_id}: resumed")
        while self._outbox:
            self._send(self._outbox.popleft())
        while self._backlog and not self._paused:
            end, packet = self._backlog.popleft()
            self._receive(end, packet)
        if self._state in ("connecting", "connected"):
            self._check_keepalive()
        elif self._state == "disconnected" and self._retry_timer is None and self.reconnect_on_failure:
            self._retry()  # a reconnection that came due while hung

    def _open(self) -> None:
        self._drop_connection()
        self._cancel(retry=True)
        end = _End(self)
        end.conn = self.network.open(self.machine, end)
        self._end, self._state = end, "connecting"
        self._out.reconnecting()
        self._last_out = self._last_in = self.machine.monotonic()
        self._ping_t = 0.0
        self._send(Connect(self.client_id, self.clean_session, self._keepalive, self._will))
        self._arm_keepalive()

    def _drop_connection(self) -> None:
        """Close our end, if any (no DISCONNECT), and forget it."""
        end, self._end = self._end, None
        self._outbox.clear()
        if end is not None and end.conn is not None:
            end.conn.close_by_client()
        self._cancel(retry=False)
        if self._state in ("connecting", "connected"):
            self._state = "disconnected"

    def _lost(self, reason: str, *, refused: bool = False) -> None:
        was_connecting = self._state == "connecting"
        self._drop_connection()
        if refused and was_connecting:
            self._call(self.on_connect_fail, self, self._userdata)
        else:
            self._notify_disconnect(reason)
        if self._wanted and self.reconnect_on_failure:
            delay = self._reconnect_delay
            delay = self._reconnect_min if delay is None else min(delay * 2, self._reconnect_max)
            self._reconnect_delay = delay
            self._retry_timer = self.scheduler.call_later(delay, self._retry)

    def _retry(self) -> None:
        self._retry_timer = None
        if self._wanted and self._state == "disconnected" and not self._paused:
            self._open()

    def _notify_disconnect(self, reason: str) -> None:
        if self._state != "dead":
            self._call(self.on_disconnect, self, self._userdata, DisconnectFlags(False),
                       ReasonCode(PacketTypes.DISCONNECT, reason), Properties(PacketTypes.DISCONNECT))

    def _cancel(self, *, retry: bool) -> None:
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None
        if retry and self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None

    # -- keepalive (paho's _check_keepalive) ----------------------------------------------
    def _arm_keepalive(self) -> None:
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
        if self._keepalive:
            due = min(self._last_out, self._last_in) + self._keepalive - self.machine.monotonic()
            self._keepalive_timer = self.scheduler.call_later(max(due, TICK), self._check_keepalive)

    def _check_keepalive(self) -> None:
        self._keepalive_timer = None
        if self._paused or self._end is None:
            return
        now, k = self.machine.monotonic() + TICK, self._keepalive
        if now - self._last_out >= k or now - self._last_in >= k:
            if self._state == "connected" and (self._ping_t == 0 or now - self._last_in < k):
                if self._ping_t == 0 or now - self._ping_t >= k:
                    self._send(Pingreq())
                    self._ping_t = now
                self._last_out = self._last_in = now
            else:
                self._lost("Keep alive timeout")
                return
        self._arm_keepalive()

    # -- sending ------------------------------------------------------------------------
    def _send(self, packet: Packet) -> None:
        if self._paused:
            self._outbox.append(packet)  # a call made while hung takes effect on resume
        elif self._end is not None and self._end.conn is not None:
            self._end.conn.up.send(packet)
            self._last_out = self.machine.monotonic()

    def _sendable(self) -> bool:
        # paho writes to the socket as soon as it exists, before the CONNACK
        return self._end is not None and self._state in ("connecting", "connected")

    def _next_mid(self) -> int:
        self._last_mid = self._last_mid % 65_535 + 1
        return self._last_mid

    def publish(self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False) -> PublishInfo:
        if not valid_topic(topic):
            msg = "Invalid topic."
            raise ValueError(msg)
        check_qos(qos)
        packet = Publish(topic, payload_bytes(payload), qos, retain, False, self._next_mid())
        if qos == 0:
            info = PublishInfo(packet.mid)
            if self._sendable():
                self._send(packet)
                info.published = True
            else:
                info.rc = MQTTErrorCode.MQTT_ERR_NO_CONN
            return info
        info, now = self._out.add(packet, sendable=self._sendable())
        if now is not None:
            self._send(now)
        return info

    def subscribe(self, topic: str | list[tuple[str, int]], qos: int = 0) -> tuple[MQTTErrorCode, int | None]:
        topics = [(topic, qos)] if isinstance(topic, str) else list(topic)
        for name, q in topics:
            check_qos(q)
            if not valid_filter(name):
                msg = f"Invalid subscription filter {name!r}"
                raise ValueError(msg)
        if not self._sendable():
            return MQTTErrorCode.MQTT_ERR_NO_CONN, None
        mid = self._next_mid()
        self._send(Subscribe(mid, tuple(topics)))
        return MQTTErrorCode.MQTT_ERR_SUCCESS, mid

    def unsubscribe(self, topic: str | list[str]) -> tuple[MQTTErrorCode, int | None]:
        if not self._sendable():
            return MQTTErrorCode.MQTT_ERR_NO_CONN, None
        mid = self._next_mid()
        self._send(Unsubscribe(mid, (topic,) if isinstance(topic, str) else tuple(topic)))
        return MQTTErrorCode.MQTT_ERR_SUCCESS, mid

    def ack(self, mid: int, qos: int) -> MQTTErrorCode:
        """Acknowledge a received QoS 1 message (with ``manual_ack=True``)."""
        if self.manual_ack and qos == 1 and self._sendable():
            self._send(Puback(mid))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- receiving ----------------------------------------------------------------------
    def _receive(self, end: _End, packet: Packet) -> None:
        if end is not self._end or self._state == "dead":
            return
        if self._paused:
            self._backlog.append((end, packet))
            return
        self._last_in = self.machine.monotonic()
        if isinstance(packet, Publish):
            self._on_publish_packet(packet)
        elif isinstance(packet, Puback):
            if self._out.acknowledged(packet.mid) is not None:
                if self.on_publish is not None:
                    self.on_publish(self, self._userdata, packet.mid, ReasonCode(PacketTypes.PUBACK),
                                    Properties(PacketTypes.PUBACK))
                for due in self._out.due(after_connack=False):
                    self._send(due)
        elif isinstance(packet, Connack):
            self._on_connack(packet)
        elif isinstance(packet, Suback):
            codes = [ReasonCode(PacketTypes.SUBACK, identifier=g) for g in packet.granted]
            self._call(self.on_subscribe, self, self._userdata, packet.mid, codes,
                       Properties(PacketTypes.SUBACK))
        elif isinstance(packet, Unsuback):
            self._call(self.on_unsubscribe, self, self._userdata, packet.mid, [],
                       Properties(PacketTypes.UNSUBACK))
        elif isinstance(packet, Pingresp):
            self._ping_t = 0.0
        elif isinstance(packet, Closed):
            self._lost("Unspecified error", refused=packet.refused)

    def _on_connack(self, packet: Connack) -> None:
        code = convert_connack_rc_to_reason_code(ConnackCode(packet.return_code))
        if packet.return_code:
            self._call(self.on_connect, self, self._userdata, ConnectFlags(False), code,
                       Properties(PacketTypes.CONNACK))
            self._lost("Unspecified error")
            return
        self._state = "connected"
        self._reconnect_delay = None
        self.scheduler.log(self.machine.name, f"{self.client_id}: connected")
        self._call(self.on_connect, self, self._userdata, ConnectFlags(packet.session_present), code,
                   Properties(PacketTypes.CONNACK))
        if self._state == "connected":
            for due in self._out.due(after_connack=True):
                self._send(due)

    def _on_publish_packet(self, packet: Publish) -> None:
        message = MQTTMessage(packet.mid, packet.topic.encode())
        message.payload = packet.payload
        message.qos, message.retain, message.dup = packet.qos, packet.retain, packet.dup
        message.timestamp = self.machine.monotonic()
        self._call(self.on_message, self, self._userdata, message)
        if packet.qos == 1 and not self.manual_ack and self._end is not None:
            self._send(Puback(packet.mid))

    def _call(self, callback: Callback, *args: Any) -> None:
        if callback is not None:
            callback(*args)

    def __repr__(self) -> str:
        return f"<SimClient {self.client_id!r} on {self.machine.name}: {self._state}>"

