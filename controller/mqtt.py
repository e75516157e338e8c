"""The controller's one MQTT client, kept for the controller's whole life.

The paho network thread only converts: topic → :class:`~nodes.contract.TopicParts`,
payload → a validated frozen model, then hands the pair to the asyncio loop's queue.
Bad messages are counted and dropped there. (aiomqtt v2.5.1 ``_on_message`` does the same.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from nodes import contract
from nodes.contract import (
    Command,
    ContractError,
    ControllerStatus,
    NodeHeartbeat,
    NodeStatus,
    PropEvent,
    PropState,
    TechReply,
    Topics,
)
from nodes.mqtt import BrokerAddress, make_client

log = logging.getLogger(__name__)

#: how long :meth:`MqttBridge.let_out` may hold the loop for a command to leave (s)
LET_OUT_S = 0.002
_MODELS: dict[str, Any] = {"status": NodeStatus, "state": PropState, "event": PropEvent,
                           "tech_reply": TechReply, "heartbeat": NodeHeartbeat}


@dataclass(frozen=True, slots=True)
class Incoming:
    """A validated message from a node."""

    parts: contract.TopicParts
    payload: Any
    retained: bool


@dataclass(frozen=True, slots=True)
class Connection:
    """The broker connection went up or down."""

    up: bool


class MqttBridge:
    """Connects the controller to the broker and to its asyncio loop.

    While connected it republishes its retained status every :attr:`heartbeat_s` (and
    at once when a node is born, so a node that just subscribed hears a live controller
    without waiting): nodes tell a live controller from a retained leftover by it, learn
    the game they may play on their own, and which of their events were handled
    (:attr:`status_source` supplies ``parcours``, ``solved`` and ``acks``).
    """

    def __init__(self, *, topics: Topics, broker: BrokerAddress, boot_id: str,
                 heartbeat_s: float = contract.MAX_HEARTBEAT_S, keepalive: int = 5) -> None:
        self.topics = topics
        self.broker = broker
        self.boot_id = boot_id
        self.metrics: Counter[str] = Counter()
        self.queue: asyncio.Queue[Incoming | Connection] = asyncio.Queue(maxsize=100_000)
        self._loop: asyncio.AbstractEventLoop | None = None
        #: handed over by the paho thread, not yet in :attr:`queue` (see :meth:`_hand_over`)
        self._handed: deque[Incoming | Connection] = deque()
        self.connected = False
        #: monotonic time of the last (re)connection: node silence counts from there at most
        self.connected_at = 0.0
        self.session: str | None = None
        self.running = False
        self.heartbeat_s = heartbeat_s
        self.keepalive = keepalive
        #: called on the loop: extra ``ControllerStatus`` fields (parcours, solved, acks)
        self.status_source: Callable[[], dict[str, Any]] | None = None
        self._status_extra: dict[str, Any] = {}
        self._status_lock = threading.Lock()
        self._beat: asyncio.TimerHandle | None = None
        will = ControllerStatus(online=False, boot_id=boot_id).to_bytes()
        self.client = make_client(f"{topics.apartment_id}-controller-{boot_id}", broker,
                                  will_topic=topics.controller_status, will_payload=will)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.keepalive)
        self.client.loop_start()
        self._beat = self._loop.call_later(self.heartbeat_s, self._heartbeat)

    def _heartbeat(self) -> None:
        # NOTE: call_later rather than a task: nothing is left pending when the loop closes.
        try:
            if self.connected:
                self.publish_status()
        except Exception:
            log.exception("controller heartbeat failed")
        if self._loop is not None and not self._loop.is_closed():
            self._beat = self._loop.call_later(self.heartbeat_s, self._heartbeat)

    def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        if self.client.is_connected():
            info = self.client.publish(self.topics.controller_status,
                                       ControllerStatus(online=False, boot_id=self.boot_id).to_bytes(),
                                       qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError):
                log.warning("controller offline status not confirmed")
            self.client.disconnect()
        self.client.loop_stop()

    # -- outgoing ---------------------------------------------------------------------
    def publish_status(self, *, refresh: bool = True) -> None:
        """Publish the retained online status; *refresh* (on the loop only) asks the source."""
        # Before the first refresh: "acks supported, nothing handled yet" (a new controller
        # must not look like one that forgets nothing: nodes would stop keeping events).
        extra = self._status_extra or ({"acks": {}} if self.status_source is not None else {})
        if refresh and self.status_source is not None:
            try:
                extra = self._status_extra = dict(self.status_source())
            except Exception:
                log.exception("controller status fields failed; last ones reused")
        status = ControllerStatus(online=True, boot_id=self.boot_id, session=self.session,
                                  running=self.running, ts=contract.now(),
                                  heartbeat=self.heartbeat_s, **extra)
        # A lock keeps two publishers (loop, paho thread) from interleaving ts and content.
        with self._status_lock:
            self.client.publish(self.topics.controller_status, status.to_bytes(), qos=1, retain=True)

    def send_command(self, node: str, prop: str, command: Command) -> None:
        # NOTE: commands are never retained: a stale "unlock" must never replay.
        self.client.publish(self.topics.prop_set(node, prop), command.to_bytes(), qos=1, retain=False)
        self.metrics["commands_sent"] += 1

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)

    def let_out(self, timeout: float = LET_OUT_S) -> None:
        """On the loop, right after urgent commands: give paho's thread the GIL until it has
        taken what is queued for the socket (at most *timeout*).

        ``publish`` only queues the packet and wakes paho's thread; that thread then waits
        for the GIL while the loop goes on (the books: SQLite, JSON) — up to the
        interpreter's switch interval (5 ms), measured ≈ 0.8 ms on the keypad → lock path.
        Sleeping here really releases the GIL (docs/performance.md, fix 5).
        """
        if not self.connected:
            return
        deadline = time.monotonic() + timeout
        while self.client.want_write() and time.monotonic() < deadline:
            time.sleep(0.00005)

    # -- paho thread ------------------------------------------------------------------
    def _hand_over(self, item: Incoming | Connection) -> None:
        """Paho thread → loop: one wake-up of the loop per burst, not per message.

        The item joins a deque; only the item that finds it empty wakes the loop
        (``call_soon_threadsafe``: a write to the loop's self-pipe), whose :meth:`_drain`
        then takes every item queued by then. (deque append/popleft are thread-safe.)
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._handed.append(item)
        if len(self._handed) == 1:
            with contextlib.suppress(RuntimeError):  # loop closing during shutdown
                loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        handed = self._handed
        while handed:
            self._put(handed.popleft())

    def _put(self, item: Incoming | Connection) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.metrics["queue_full"] += 1
        if isinstance(item, Incoming) and isinstance(item.payload, NodeStatus) \
                and item.payload.online and not item.retained and self.connected:
            # A node just (re)connected: its first controller status was the retained one,
            # which proves nothing; a fresh one now lets it deliver its events at once.
            self.publish_status()

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                    _properties: Any) -> None:
        if reason_code.is_failure:
            log.error("controller: broker refused the connection: %s", reason_code)
            return
        client.subscribe([(t, contract.QOS) for t in self.topics.controller_subscriptions()])
        self.connected_at = time.monotonic()
        self.connected = True
        self.publish_status(refresh=False)   # paho thread: the fields of the last heartbeat
        log.info("controller connected to %s:%s", self.broker.host, self.broker.port)
        self._hand_over(Connection(up=True))

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                       _properties: Any) -> None:
        self.connected = False
        log.warning("controller lost the broker (%s); reconnecting", reason_code)
        self._hand_over(Connection(up=False))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            parts = self.topics.parse(message.topic)
            model = _MODELS.get(parts.kind)
            if model is None:
                raise ContractError(f"the controller does not read {parts.kind} topics")
            if not message.payload:
                return  # a retained message being cleared
            payload = contract.decode(message.payload, model)
        except ContractError as exc:
            self.metrics["bad_payloads"] += 1
            log.warning("dropped a message on %r: %s", message.topic[:200], exc)
            return
        self._hand_over(Incoming(parts, payload, bool(message.retain)))
