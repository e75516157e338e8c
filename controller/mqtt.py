"""The controller's one MQTT client, kept for the controller's whole life.

paho runs **on the asyncio event loop**, as aiomqtt v2.5.1 runs it: no paho network
thread. The loop watches paho's socket (``add_reader``; ``add_writer`` while paho has
bytes to send) and calls ``loop_read`` / ``loop_write``; ``loop_misc`` (keepalive) runs on
a timer; the bridge reconnects with paho's back-off itself. A message is decoded in
``on_message`` on the loop — topic → :class:`~protocol.contract.TopicParts`, payload → a
validated frozen model — and put on :attr:`MqttBridge.queue` with no thread hand-off;
bad messages are counted and dropped there. A command is written to the socket inside
:meth:`MqttBridge.send_command`. Only the TCP connection itself is opened in the loop's
default executor (``connect`` may block on an unreachable host).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

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
from protocol.mqtt import RECONNECT_MAX_S, RECONNECT_MIN_S, BrokerAddress, make_client, set_nodelay

log = logging.getLogger(__name__)

#: how often paho's ``loop_misc`` runs (keepalive PINGREQ, a missing PINGRESP) (s)
MISC_EVERY_S = 0.5
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
    """Connects the controller to the broker, on its asyncio loop.

    While connected it republishes its retained status every :attr:`heartbeat_s` (and
    at once when a node is born, so a node that just subscribed hears a live controller
    without waiting): nodes tell a live controller from a retained leftover by it, learn
    the game they may play on their own, and which of their events were handled
    (:attr:`status_source` supplies ``parcours``, ``solved`` and ``acks``).

    paho is driven from the loop only (see the module's docstring); :meth:`publish`,
    :meth:`send_command` and :meth:`publish_status` called from another thread (a sync
    FastAPI route runs in a worker thread) are passed to the loop.
    """

    def __init__(self, *, topics: Topics, broker: BrokerAddress, boot_id: str,
                 heartbeat_s: float = contract.MAX_HEARTBEAT_S, keepalive: int = 5) -> None:
        self.topics = topics
        self.broker = broker
        self.boot_id = boot_id
        self.metrics: Counter[str] = Counter()
        self.queue: asyncio.Queue[Incoming | Connection] = asyncio.Queue(maxsize=100_000)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.connected = False
        #: the start of this controller boot on the monotonic clock: commands and statuses
        #: are dated from it (nodes measure a command's age on it, not on wall clocks)
        self.started = time.monotonic()
        #: monotonic time of the last (re)connection: node silence counts from there at most
        self.connected_at = 0.0
        self.session: str | None = None
        self.running = False
        self.heartbeat_s = heartbeat_s
        self.keepalive = keepalive
        #: called on the loop: extra ``ControllerStatus`` fields (parcours, solved, acks)
        self.status_source: Callable[[], dict[str, Any]] | None = None
        self._status_extra: dict[str, Any] = {}
        self._beat: asyncio.TimerHandle | None = None
        self._misc: asyncio.TimerHandle | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay: float | None = None
        #: the socket the loop watches (None: not connected, or a connection being opened)
        self._sock: Any = None
        self._writer_on = False
        #: inside loop_read/loop_write/loop_misc: paho's callbacks may run, and paho must
        #: not be re-entered from them (its callback lock is not re-entrant)
        self._in_paho = False
        self._connecting = False
        #: publishes made while the executor opens a connection, sent once it is open
        self._held: list[tuple[str, bytes, bool]] = []
        self._stopping = False
        will = ControllerStatus(online=False, boot_id=boot_id).to_bytes()
        client = make_client(f"{topics.apartment_id}-controller-{boot_id}", broker,
                             will_topic=topics.controller_status, will_payload=will)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_write_changed
        client.on_socket_unregister_write = self._on_socket_write_changed
        self.client = client

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopping = False
        # connect_async only records the address; _connect opens the connection.
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.keepalive)
        self._connect()
        self._beat = loop.call_later(self.heartbeat_s, self._heartbeat)
        self._misc = loop.call_later(MISC_EVERY_S, self._tick)

    def _heartbeat(self) -> None:
        # NOTE: call_later rather than a task: nothing is left pending when the loop closes.
        try:
            if self.connected:
                self.publish_status()
        except Exception:
            log.exception("controller heartbeat failed")
        if self._loop is not None and not self._loop.is_closed() and not self._stopping:
            self._beat = self._loop.call_later(self.heartbeat_s, self._heartbeat)

    def _tick(self) -> None:
        """paho's ``loop_misc``: a PINGREQ when due, the connection dropped when no PINGRESP."""
        try:
            if not self._connecting and self._sock is not None:
                with self._paho():
                    self.client.loop_misc()
                self._write()
        except Exception:
            log.exception("controller MQTT housekeeping failed")
        if self._loop is not None and not self._loop.is_closed() and not self._stopping:
            self._misc = self._loop.call_later(MISC_EVERY_S, self._tick)

    def stop(self) -> None:
        self._stopping = True
        for handle in (self._beat, self._misc, self._retry):
            if handle is not None:
                handle.cancel()
        self._beat = self._misc = self._retry = None
        if self.client.is_connected() and self._on_loop():
            info = self.client.publish(self.topics.controller_status,
                                       ControllerStatus(online=False, boot_id=self.boot_id).to_bytes(),
                                       qos=1, retain=True)
            if not self._pump(info.is_published, timeout=1.0):
                log.warning("controller offline status not confirmed")
            self.client.disconnect()
            self._pump(lambda: self.client.socket() is None, timeout=0.5)
        self._unwatch()

    def _pump(self, done: Callable[[], bool], *, timeout: float) -> bool:
        """Drive paho synchronously (on the loop, at shutdown) until *done* or *timeout*."""
        deadline = time.monotonic() + timeout
        while not done():
            sock = self.client.socket()
            left = deadline - time.monotonic()
            if sock is None or left <= 0:
                return done()
            try:
                if self.client.want_write():
                    with self._paho():
                        self.client.loop_write()
                    if self.client.socket() is None:
                        continue
                readable, _w, _x = select.select([sock], [], [], min(left, 0.05))
                if readable:
                    with self._paho():
                        self.client.loop_read()
            except (OSError, ValueError):
                return done()
        return True

    # -- connecting -------------------------------------------------------------------
    def _connect(self) -> None:
        """Open the TCP connection in the executor (it may block); CONNECT follows on the loop."""
        self._retry = None
        loop = self._loop
        if self._stopping or self._connecting or loop is None or loop.is_closed():
            return
        self._unwatch()   # a socket of before is closed by paho's reconnect(), not watched
        self._connecting = True
        try:
            future = loop.run_in_executor(None, self.client.reconnect)
        except RuntimeError:   # the executor is shut down: the loop is closing
            self._connecting = False
            return
        future.add_done_callback(self._connect_done)

    def _connect_done(self, future: asyncio.Future[Any]) -> None:
        self._connecting = False
        error = future.exception() if not future.cancelled() else asyncio.CancelledError()
        sock = self.client.socket()
        if self._stopping:
            if error is None and sock is not None:
                with contextlib.suppress(Exception), self._paho():
                    self.client.disconnect()
                    self.client.loop_write()
            return
        if error is not None or sock is None:
            self.metrics["connect_failures"] += 1
            log.log(logging.WARNING if self.metrics["connect_failures"] == 1 else logging.DEBUG,
                    "controller cannot reach the broker at %s:%s: %s", self.broker.host,
                    self.broker.port, error)
            self._schedule_reconnect()
            return
        self._watch(sock)
        held, self._held = self._held, []
        for topic, payload, retain in held:
            self.client.publish(topic, payload, qos=1, retain=retain)
        self._write()   # CONNECT (and what was held) on the wire now

    def _schedule_reconnect(self) -> None:
        """paho's back-off: the minimum first, then doubling up to the maximum."""
        loop = self._loop
        if self._stopping or self._connecting or self._retry is not None or loop is None \
                or loop.is_closed():
            return
        delay = RECONNECT_MIN_S if self._retry_delay is None else min(2 * self._retry_delay,
                                                                      RECONNECT_MAX_S)
        self._retry_delay = delay
        self._retry = loop.call_later(delay, self._connect)

    # -- the socket on the loop -------------------------------------------------------
    def _on_loop(self) -> bool:
        return self._loop_thread is None or threading.get_ident() == self._loop_thread

    def _watch(self, sock: Any) -> None:
        assert self._loop is not None
        self._unwatch()
        self._sock = sock
        self._loop.add_reader(sock, self._read)

    def _unwatch(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None or self._loop is None or self._loop.is_closed():
            self._writer_on = False
            return
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(sock)
            if self._writer_on:
                self._loop.remove_writer(sock)
        self._writer_on = False

    @contextlib.contextmanager
    def _paho(self) -> Iterator[None]:
        outer, self._in_paho = self._in_paho, True
        try:
            yield
        finally:
            self._in_paho = outer

    def _read(self) -> None:
        """The socket is readable: paho reads every complete packet (on_message → queue)."""
        try:
            with self._paho():
                self.client.loop_read()
        except Exception:
            log.exception("controller MQTT read failed")
        self._write()   # the PUBACKs, and what the callbacks published, at once

    def _write(self) -> None:
        """Write what paho has queued; watch for writability only while some is left."""
        if self._sock is None:
            return
        if self.client.want_write() and not self._in_paho:
            try:
                with self._paho():
                    self.client.loop_write()
            except Exception:
                log.exception("controller MQTT write failed")
        self._sync_writer()

    def _sync_writer(self) -> None:
        sock, loop = self._sock, self._loop
        if sock is None or loop is None or loop.is_closed():
            return
        if self.client.want_write():
            if not self._writer_on:
                loop.add_writer(sock, self._write)
                self._writer_on = True
        elif self._writer_on:
            loop.remove_writer(sock)
            self._writer_on = False

    def _flush(self) -> None:
        """After a publish on the loop: on the wire now (inside a paho callback: after it)."""
        if self._in_paho or self._sock is None:
            return   # inside a paho callback: written when paho returns (_read, _write)
        self._write()

    # paho's socket callbacks. on_socket_open comes from the executor (reconnect); the
    # others from the loop, except during reconnect(): the loop then re-syncs in
    # _connect_done, so a call from another thread only pokes the loop.
    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        set_nodelay(client, userdata, sock)   # TCP_NODELAY: see protocol/mqtt.py

    def _on_socket_close(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        if sock is self._sock and self._on_loop():
            self._unwatch()

    def _on_socket_write_changed(self, _client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        if self._on_loop():
            if not self._in_paho:   # inside: the caller writes next, and syncs the writer
                self._sync_writer()
        elif self._loop is not None:
            with contextlib.suppress(RuntimeError):   # loop closed
                self._loop.call_soon_threadsafe(self._sync_writer)

    # -- outgoing ---------------------------------------------------------------------
    def _from_thread(self, method: Callable[..., None], *args: Any, **kwargs: Any) -> bool:
        """Called off the loop? Run it on the loop instead (paho is the loop's alone)."""
        if self._on_loop():
            return False
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(lambda: method(*args, **kwargs))
        return True

    def _publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        if self._connecting:
            self._held.append((topic, payload, retain))
            return
        outer = self._in_paho
        with self._paho():   # no add_writer for a packet _flush writes at once
            self.client.publish(topic, payload, qos=1, retain=retain)
        if outer:
            return   # inside a paho callback: written when paho returns (_read, _write)
        self._flush()

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
        return time.monotonic() - self.started

    def new_command(self, action: str, params: dict[str, Any] | None = None, *,
                    session: str | None = None, command_id: str | None = None) -> Command:
        """A command dated on this controller's uptime (see ``contract.ControllerClock``)."""
        return Command(id=command_id or contract.new_id(), action=action, params=dict(params or {}),
                       session=session, controller=self.boot_id, issued=self.uptime(),
                       ttl=contract.COMMAND_TTL_S)

    def send_command(self, node: str, prop: str, command: Command) -> None:
        """Publish a command; on the loop it is written to the socket before this returns."""
        self.metrics["commands_sent"] += 1
        if self._from_thread(self._publish, self.topics.prop_set(node, prop), command.to_bytes(),
                             retain=False):
            return
        # NOTE: commands are never retained: a stale "unlock" must never replay.
        self._publish(self.topics.prop_set(node, prop), command.to_bytes(), retain=False)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if self._from_thread(self._publish, topic, payload, retain=retain):
            return
        self._publish(topic, payload, retain=retain)

    # -- paho callbacks (on the loop) -------------------------------------------------
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

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                    _properties: Any) -> None:
        if reason_code.is_failure:
            log.error("controller: broker refused the connection: %s", reason_code)
            return
        self._retry_delay = None
        client.subscribe([(t, contract.QOS) for t in self.topics.controller_subscriptions()])
        self.connected_at = time.monotonic()
        self.connected = True
        self.publish_status()
        log.info("controller connected to %s:%s", self.broker.host, self.broker.port)
        self._put(Connection(up=True))

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                       _properties: Any) -> None:
        self.connected = False
        if self._stopping:
            return
        log.warning("controller lost the broker (%s); reconnecting", reason_code)
        self._put(Connection(up=False))
        if self._on_loop():
            self._schedule_reconnect()
        elif self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._schedule_reconnect)

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
            # the text, not the exception: a log record kept (a test's capture) would hold its frames
            log.warning("dropped a message on %r: %s", message.topic[:200], str(exc))
            return
        self._put(Incoming(parts, payload, bool(message.retain)))
