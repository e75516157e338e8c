"""The controller's one MQTT client, kept for the controller's whole life.

:class:`MqttBridge` holds the rules of the controller's side of the contract: what it
reads (topic → :class:`~protocol.contract.TopicParts`, payload → a validated frozen
model, put on :attr:`MqttBridge.queue`; bad messages counted and dropped), its retained
status and heartbeat, commands dated on its uptime, what is held while the broker is
away (published in order once connected), calls from other threads passed to the loop.

The bytes go through one of two transports (``transport=``, the controller's
``ESCAPE_MQTT_TRANSPORT``), both on the asyncio event loop, without a paho thread, with
MQTT 3.1.1, a clean session, QoS 1, TCP_NODELAY and a reconnection back-off of
:data:`~protocol.mqtt.RECONNECT_MIN_S` then :data:`~protocol.mqtt.RECONNECT_MAX_S`:

* ``paho`` (the default) — paho driven on the loop by hand: a command is written to the
  socket inside :meth:`MqttBridge.send_command`, before the service writes the books;
* ``aiomqtt`` — the library: a publish is a task, its bytes leave when the loop next
  turns (after the service's handling of the message).

Both are in ``controller/mqtt_transports.py``.

Side by side in one bench run (docs/performance.md, "The controller's MQTT transport") the
first gets a command to node B ≈ 1.1 ms sooner at p50, and its end-to-end p99 was 29–38 %
lower where the shared machine allowed a measurement: it is the default.
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

from controller.mqtt_transports import LINKS, TRANSPORTS, Link
from protocol import contract
from protocol.contract import (
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
from protocol.mqtt import BrokerAddress

log = logging.getLogger(__name__)

_MODELS: dict[str, Any] = {"status": NodeStatus, "state": PropState, "event": PropEvent,
                           "tech_reply": TechReply, "heartbeat": NodeHeartbeat}
#: at most this many publishes held while the broker is away (then the newest are dropped,
#: counted): a broker gone for hours must not fill the controller's memory
MAX_HELD = 10_000


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
    """Connects the controller to the broker, on its asyncio loop.

    While connected it republishes its retained status every :attr:`heartbeat_s` (and
    at once when a node is born, so a node that just subscribed hears a live controller
    without waiting): nodes tell a live controller from a retained leftover by it, learn
    the game they may play on their own, and which of their events were handled
    (:attr:`status_source` supplies ``parcours``, ``solved`` and ``acks``).

    The transport is the loop's alone: :meth:`publish`, :meth:`send_command` and
    :meth:`publish_status` called from another thread (a sync FastAPI route runs in a
    worker thread) are passed to the loop.
    """

    def __init__(self, *, topics: Topics, broker: BrokerAddress, boot_id: str,
                 heartbeat_s: float = contract.MAX_HEARTBEAT_S, keepalive: int = 5,
                 transport: str = TRANSPORTS[0], clock: Callable[[], float] = time.monotonic) -> None:
        if transport not in TRANSPORTS:
            msg = f"unknown MQTT transport {transport!r}: one of {', '.join(TRANSPORTS)}"
            raise ValueError(msg)
        self.topics = topics
        self.broker = broker
        self.boot_id = boot_id
        self.transport = transport
        self.metrics: Counter[str] = Counter()
        self.clock = clock
        self.queue: asyncio.Queue[Incoming | Connection] = asyncio.Queue(maxsize=100_000)
        self.connected = False
        #: the start of this controller boot on the monotonic clock: commands and statuses
        #: are dated from it (nodes measure a command's age on it, not on wall clocks)
        self.started = clock()
        #: monotonic time of the last (re)connection: node silence counts from there at most
        self.connected_at = 0.0
        self.session: str | None = None
        self.running = False
        self.heartbeat_s = heartbeat_s
        self.keepalive = keepalive
        #: called on the loop: extra ``ControllerStatus`` fields (parcours, solved, acks)
        self.status_source: Callable[[], dict[str, Any]] | None = None
        #: the transport, made by :meth:`start` (it belongs to the running loop) or given to
        #: :meth:`open`
        self.link: Link | None = None
        self._status_extra: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._beat: asyncio.TimerHandle | None = None
        #: publishes made while the broker is away, published in order once connected
        self._held: deque[tuple[str, bytes, bool]] = deque()
        self._stopping = False

    @property
    def client_id(self) -> str:
        return f"{self.topics.apartment_id}-controller-{self.boot_id}"

    @property
    def will(self) -> bytes:
        """The last will: the retained "offline" status the broker publishes if we vanish."""
        return ControllerStatus(online=False, boot_id=self.boot_id).to_bytes()

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        """Connect through the configured transport, on the running loop, and beat."""
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.open(LINKS[self.transport](self))
        self._beat = loop.call_later(self.heartbeat_s, self._heartbeat)

    def open(self, link: Link) -> None:
        """Connect through *link*, a transport made for this bridge. :meth:`start` calls it
        on the loop; without a loop (the deterministic simulator), whoever drives time
        calls :meth:`beat` every :attr:`heartbeat_s`."""
        self._stopping = False
        self.link = link
        link.start()

    async def stop(self) -> None:
        """Say "offline" (retained; waits ≤ 1 s for the broker), then
        disconnect: a clean DISCONNECT, so the broker does not publish the will."""
        self._stopping = True
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        if self.link is not None:
            await self.link.stop(self.will if self.connected else None)
        self.connected = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    def beat(self) -> None:
        """The heartbeat: the retained status again, while connected."""
        try:
            if self.connected:
                self.publish_status()
        except Exception:
            log.exception("controller heartbeat failed")

    def _heartbeat(self) -> None:
        # NOTE: call_later rather than a task: nothing is left pending when the loop closes.
        self.beat()
        if self._loop is not None and not self._loop.is_closed() and not self._stopping:
            self._beat = self._loop.call_later(self.heartbeat_s, self._heartbeat)

    # -- what the transport reports (on the loop) ------------------------------------------
    def on_link_up(self) -> None:
        """Connected and subscribed: what was held first, then a fresh status."""
        self.connected_at = self.clock()
        self.connected = True
        log.info("controller connected to %s:%s", self.broker.host, self.broker.port)
        held, self._held = self._held, deque()
        for topic, payload, retain in held:
            self._publish(topic, payload, retain=retain)
        self.publish_status()
        self._put(Connection(up=True))

    def on_link_down(self, error: object) -> None:
        """The connection ended, or could not be made; the transport tries again."""
        if self._stopping:
            self.connected = False
            return
        if self.connected:
            self.connected = False
            log.warning("controller lost the broker (%s); reconnecting", error)
            self._put(Connection(up=False))
            return
        self.metrics["connect_failures"] += 1
        log.log(logging.WARNING if self.metrics["connect_failures"] == 1 else logging.DEBUG,
                "controller cannot reach the broker at %s:%s: %s", self.broker.host,
                self.broker.port, error)

    def on_link_message(self, topic: str, payload: bytes, retain: bool) -> None:
        """A message from the broker: decoded and queued, or counted and dropped."""
        try:
            parts = self.topics.parse(topic)
            model = _MODELS.get(parts.kind)
            if model is None:
                raise ContractError(f"the controller does not read {parts.kind} topics")
            if not payload:
                return  # a retained message being cleared
            decoded = contract.decode(payload, model)
        except ContractError as exc:
            self.metrics["bad_payloads"] += 1
            # the text, not the exception: a log record kept (a test's capture) would hold its frames
            log.warning("dropped a message on %r: %s", topic[:200], str(exc))
            return
        self._put(Incoming(parts, decoded, retain))

    def _put(self, item: Incoming | Connection) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.metrics["queue_full"] += 1
            if self.metrics["queue_full"] % 1000 == 1:   # the first, then one line per thousand
                log.error("controller queue full (%d messages): dropped %d so far, the last on %s",
                          self.queue.qsize(), self.metrics["queue_full"], item)
        if isinstance(item, Incoming) and isinstance(item.payload, NodeStatus) \
                and item.payload.online and not item.retained and self.connected:
            # A node just (re)connected: its first controller status was the retained one,
            # which proves nothing; a fresh one now lets it deliver its events at once.
            self.publish_status()

    # -- outgoing ---------------------------------------------------------------------
    def _on_loop(self) -> bool:
        return self._loop_thread is None or threading.get_ident() == self._loop_thread

    def _from_thread(self, method: Callable[..., None], *args: Any, **kwargs: Any) -> bool:
        """Called off the loop? Run it on the loop instead (the transport is the loop's alone)."""
        if self._on_loop():
            return False
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(lambda: method(*args, **kwargs))
        return True

    def _publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        if self.connected and not self._stopping and self.link is not None:
            self.link.send(topic, payload, retain=retain)
        elif len(self._held) < MAX_HELD:
            self._held.append((topic, payload, retain))
        else:
            self.metrics["held_dropped"] += 1
            if self.metrics["held_dropped"] % 1000 == 1:   # the first, then one line per thousand
                log.error("controller: broker away and %d publishes held: dropped %d so far, "
                          "the last on %s", len(self._held), self.metrics["held_dropped"], topic)

    def publish_status(self, *, refresh: bool = True) -> None:
        """Publish the retained online status; *refresh* asks the source for fresh fields."""
        if self._from_thread(self.publish_status, refresh=refresh):
            return
        # Before the first refresh: "acks supported, nothing handled yet" (a new controller
        # must not look like one that forgets nothing: nodes would stop keeping events).
        extra = self._status_extra or ({"acks": {}} if self.status_source is not None else {})
        if refresh and self.status_source is not None:
            try:
                extra = self._status_extra = dict(self.status_source())
            except Exception:
                log.exception("controller status fields failed; last ones reused")
        status = ControllerStatus(online=True, boot_id=self.boot_id, session=self.session,
                                  running=self.running, ts=contract.now(), uptime=self.uptime(),
                                  heartbeat=self.heartbeat_s, **extra)
        self._publish(self.topics.controller_status, status.to_bytes(), retain=True)

    def uptime(self) -> float:
        """Seconds since this controller boot, on the monotonic clock."""
        return self.clock() - self.started

    def new_command(self, action: str, params: dict[str, Any] | None = None, *,
                    session: str | None = None, command_id: str | None = None) -> Command:
        """A command dated on this controller's uptime (see ``contract.ControllerClock``)."""
        return Command(id=command_id or contract.new_id(), action=action, params=dict(params or {}),
                       session=session, controller=self.boot_id, issued=self.uptime(),
                       ttl=contract.COMMAND_TTL_S)

    def send_command(self, node: str, prop: str, command: Command) -> None:
        """Publish a command (never retained: a stale "unlock" must never replay)."""
        self.metrics["commands_sent"] += 1
        self.publish(self.topics.prop_set(node, prop), command.to_bytes())

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if self._from_thread(self._publish, topic, payload, retain=retain):
            return
        self._publish(topic, payload, retain=retain)
