"""The two transports of :class:`controller.mqtt.MqttBridge`: the connection and the bytes.

Both run on the asyncio event loop (no paho thread), connect with MQTT 3.1.1, a clean
session, the controller's last will and TCP_NODELAY, publish QoS 1, and reconnect after
:data:`~protocol.mqtt.RECONNECT_MIN_S`, then doubling up to
:data:`~protocol.mqtt.RECONNECT_MAX_S`. They tell the bridge what happens through its
``on_link_up`` (connected and subscribed), ``on_link_down`` and ``on_link_message``.

* :class:`PahoLink` drives paho by hand, as aiomqtt does inside (``add_reader`` on paho's
  socket, ``add_writer`` while paho has bytes left, ``loop_misc`` on a timer), but writes
  a publish to the socket before :meth:`~PahoLink.send` returns.
* :class:`AiomqttLink` is aiomqtt: ``async with client``, ``client.messages``, a task per
  publish (aiomqtt's ``publish`` waits for the PUBACK); reconnection is its caller's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import aiomqtt
import paho.mqtt.client as mqtt

from protocol import contract
from protocol.contract import Topics
from protocol.mqtt import RECONNECT_MAX_S, RECONNECT_MIN_S, BrokerAddress, make_client

log = logging.getLogger(__name__)

#: how long a link's stop waits for the broker to acknowledge the offline status (s)
STOP_WAIT_S = 1.0
#: how long it then waits for a clean disconnection (s)
DISCONNECT_WAIT_S = 0.5


class Owner(Protocol):
    """What a link needs of the bridge (:class:`controller.mqtt.MqttBridge`)."""

    topics: Topics
    broker: BrokerAddress
    keepalive: int
    metrics: Counter[str]

    @property
    def client_id(self) -> str: ...
    @property
    def will(self) -> bytes: ...
    @property
    def stopping(self) -> bool: ...
    def on_link_up(self) -> None: ...
    def on_link_down(self, error: object) -> None: ...
    def on_link_message(self, topic: str, payload: bytes, retain: bool) -> None: ...


class Link(Protocol):
    """A transport, as the bridge drives it: it reports through the bridge's ``on_link_*``."""

    def start(self) -> None:
        """Connect (and keep reconnecting) in the background."""

    def send(self, topic: str, payload: bytes, *, retain: bool) -> None:
        """Publish QoS 1 (only called while connected)."""

    async def stop(self, offline: bytes | None) -> None:
        """Publish *offline* (the retained status) if given, then disconnect cleanly."""


# -- paho, on the loop, by hand ---------------------------------------------------------------
#: how often paho's ``loop_misc`` runs (keepalive PINGREQ, a missing PINGRESP) (s)
MISC_EVERY_S = 0.5


class PahoLink:
    """paho on the asyncio loop, driven by hand (see the module's docstring).

    Only the TCP connection itself is opened in the loop's default executor (``connect``
    may block on an unreachable host); the bridge publishes only while connected, so no
    publish races that connection.
    """

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
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
        # make_client sets TCP_NODELAY on the socket (on_socket_open)
        client = make_client(owner.client_id, owner.broker,
                             will_topic=owner.topics.controller_status, will_payload=owner.will)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_write_changed
        client.on_socket_unregister_write = self._on_socket_write_changed
        self.paho = client

    def start(self) -> None:
        # connect_async only records the address; _connect opens the connection.
        self.paho.connect_async(self.owner.broker.host, self.owner.broker.port,
                                keepalive=self.owner.keepalive)
        self._connect()
        self._misc = self._loop.call_later(MISC_EVERY_S, self._tick)

    def send(self, topic: str, payload: bytes, *, retain: bool) -> None:
        outer = self._in_paho
        with self._paho():   # no add_writer for a packet written at once just below
            self.paho.publish(topic, payload, qos=contract.QOS, retain=retain)
        if not outer:   # inside a paho callback: written when paho returns (_read, _write)
            self._write()

    async def stop(self, offline: bytes | None) -> None:
        for handle in (self._misc, self._retry):
            if handle is not None:
                handle.cancel()
        self._misc = self._retry = None
        if offline is not None and self.paho.is_connected():
            info = self.paho.publish(self.owner.topics.controller_status, offline, qos=1, retain=True)
            if not self._pump(info.is_published, timeout=STOP_WAIT_S):
                log.warning("controller offline status not confirmed")
            self.paho.disconnect()
            self._pump(lambda: self.paho.socket() is None, timeout=DISCONNECT_WAIT_S)
        self._unwatch()

    def _tick(self) -> None:
        """paho's ``loop_misc``: a PINGREQ when due, the connection dropped when no PINGRESP."""
        try:
            if not self._connecting and self._sock is not None:
                with self._paho():
                    self.paho.loop_misc()
                self._write()
        except Exception:
            log.exception("controller MQTT housekeeping failed")
        if not self._loop.is_closed() and not self.owner.stopping:
            self._misc = self._loop.call_later(MISC_EVERY_S, self._tick)

    def _pump(self, done: Callable[[], bool], *, timeout: float) -> bool:
        """Drive paho synchronously (on the loop, at shutdown) until *done* or *timeout*."""
        deadline = time.monotonic() + timeout
        while not done():
            sock = self.paho.socket()
            left = deadline - time.monotonic()
            if sock is None or left <= 0:
                return done()
            try:
                if self.paho.want_write():
                    with self._paho():
                        self.paho.loop_write()
                    if self.paho.socket() is None:
                        continue
                readable, _w, _x = select.select([sock], [], [], min(left, 0.05))
                if readable:
                    with self._paho():
                        self.paho.loop_read()
            except (OSError, ValueError):
                return done()
        return True

    # -- connecting -------------------------------------------------------------------
    def _connect(self) -> None:
        """Open the TCP connection in the executor (it may block); CONNECT follows on the loop."""
        self._retry = None
        loop = self._loop
        if self.owner.stopping or self._connecting or loop.is_closed():
            return
        self._unwatch()   # a socket of before is closed by paho's reconnect(), not watched
        self._connecting = True
        try:
            future = loop.run_in_executor(None, self.paho.reconnect)
        except RuntimeError:   # the executor is shut down: the loop is closing
            self._connecting = False
            return
        future.add_done_callback(self._connect_done)

    def _connect_done(self, future: asyncio.Future[Any]) -> None:
        self._connecting = False
        error = future.exception() if not future.cancelled() else asyncio.CancelledError()
        sock = self.paho.socket()
        if self.owner.stopping:
            if error is None and sock is not None:
                with contextlib.suppress(Exception), self._paho():
                    self.paho.disconnect()
                    self.paho.loop_write()
            return
        if error is not None or sock is None:
            self.owner.on_link_down(error)
            self._schedule_reconnect()
            return
        self._watch(sock)
        self._write()   # CONNECT on the wire now

    def _schedule_reconnect(self) -> None:
        """The minimum first, then doubling up to the maximum (reset once connected)."""
        loop = self._loop
        if self.owner.stopping or self._connecting or self._retry is not None or loop.is_closed():
            return
        delay = RECONNECT_MIN_S if self._retry_delay is None else min(2 * self._retry_delay,
                                                                      RECONNECT_MAX_S)
        self._retry_delay = delay
        self._retry = loop.call_later(delay, self._connect)

    # -- the socket on the loop -------------------------------------------------------
    def _watch(self, sock: Any) -> None:
        self._unwatch()
        self._sock = sock
        self._loop.add_reader(sock, self._read)

    def _unwatch(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None or self._loop.is_closed():
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
                self.paho.loop_read()
        except Exception:
            log.exception("controller MQTT read failed")
        self._write()   # the PUBACKs, and what the callbacks published, at once

    def _write(self) -> None:
        """Write what paho has queued; watch for writability only while some is left."""
        if self._sock is None:
            return
        if self.paho.want_write() and not self._in_paho:
            try:
                with self._paho():
                    self.paho.loop_write()
            except Exception:
                log.exception("controller MQTT write failed")
        self._sync_writer()

    def _sync_writer(self) -> None:
        sock, loop = self._sock, self._loop
        if sock is None or loop.is_closed():
            return
        if self.paho.want_write():
            if not self._writer_on:
                loop.add_writer(sock, self._write)
                self._writer_on = True
        elif self._writer_on:
            loop.remove_writer(sock)
            self._writer_on = False

    def _on_loop(self) -> bool:
        return threading.get_ident() == self._thread

    # paho's socket callbacks: from the loop, except during reconnect() (the executor);
    # the loop then re-syncs in _connect_done, so a call from another thread only pokes it.
    def _on_socket_close(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        if sock is self._sock and self._on_loop():
            self._unwatch()

    def _on_socket_write_changed(self, _client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        if self._on_loop():
            if not self._in_paho:   # inside: the caller writes next, and syncs the writer
                self._sync_writer()
        else:
            with contextlib.suppress(RuntimeError):   # loop closed
                self._loop.call_soon_threadsafe(self._sync_writer)

    # -- paho's callbacks (on the loop) ----------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                    _properties: Any) -> None:
        if reason_code.is_failure:
            log.error("controller: broker refused the connection: %s", reason_code)
            return
        self._retry_delay = None
        client.subscribe([(t, contract.QOS) for t in self.owner.topics.controller_subscriptions()])
        self.owner.on_link_up()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                       _properties: Any) -> None:
        self.owner.on_link_down(reason_code)
        if self._on_loop():
            self._schedule_reconnect()
        else:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._schedule_reconnect)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.owner.on_link_message(message.topic, message.payload, bool(message.retain))


# -- aiomqtt ----------------------------------------------------------------------------------
#: how long a publish's task waits for its PUBACK; paho keeps an unacknowledged QoS 1
#: message and sends it again on reconnection whether or not anyone still waits for it (s)
PUBACK_WAIT_S = 60.0


class AiomqttLink:
    """aiomqtt (see the module's docstring)."""

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self._loop = asyncio.get_running_loop()
        broker = owner.broker
        self.client = aiomqtt.Client(
            broker.host, broker.port, username=broker.username, password=broker.password,
            identifier=owner.client_id, protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=True, keepalive=owner.keepalive,
            will=aiomqtt.Will(owner.topics.controller_status, owner.will, qos=1, retain=True),
            # without it each hop waits for the peer's delayed ACK (≈ 40 ms on Linux)
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            # a CONNACK or SUBACK not there within a keepalive: the broker is not answering
            timeout=float(owner.keepalive),
            # many QoS 1 messages in flight: a release of every lock is one burst
            max_inflight_messages=100, max_queued_outgoing_messages=10_000)
        # NOTE: past the in-flight window paho queues: worth a warning, a burst below it is not
        self.client.pending_calls_threshold = 100
        # aiomqtt keeps its paho client private; read only by the bench's probe
        self.paho = self.client._client
        self._run_task: asyncio.Task[None] | None = None
        #: the publish tasks waiting for their PUBACK (kept referenced; cancelled on stop)
        self._sending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._run_task = self._loop.create_task(self._run(), name="mqtt-aiomqtt")

    def send(self, topic: str, payload: bytes, *, retain: bool) -> None:
        task = self._loop.create_task(self._publish(topic, payload, retain))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def stop(self, offline: bytes | None) -> None:
        if offline is not None:
            try:
                await self.client.publish(self.owner.topics.controller_status, offline, qos=1,
                                          retain=True, timeout=STOP_WAIT_S)
            except aiomqtt.MqttError as exc:
                log.warning("controller offline status not confirmed: %s", exc)
        if self._run_task is not None:
            self._run_task.cancel()   # leaves `async with client`: DISCONNECT
            await asyncio.wait({self._run_task}, timeout=DISCONNECT_WAIT_S)
        for task in list(self._sending):
            task.cancel()

    async def _run(self) -> None:
        delay: float | None = None
        client = self.client
        while True:
            try:
                async with client:
                    await client.subscribe([(t, contract.QOS)
                                            for t in self.owner.topics.controller_subscriptions()])
                    delay = None
                    self.owner.on_link_up()
                    async for message in client.messages:
                        self._on_message(message)
            except Exception as exc:   # aiomqtt.MqttError, or anything else: never give up
                if self.owner.stopping:
                    return
                self.owner.on_link_down(f"{exc}: {exc.__cause__}" if exc.__cause__ else exc)
            delay = RECONNECT_MIN_S if delay is None else min(2 * delay, RECONNECT_MAX_S)
            await asyncio.sleep(delay)

    def _on_message(self, message: aiomqtt.Message) -> None:
        try:
            self.owner.on_link_message(message.topic.value, message.payload,  # type: ignore[arg-type]
                                       bool(message.retain))
        except Exception:   # a bug of ours: this message is lost, not the connection
            self.owner.metrics["read_errors"] += 1
            log.exception("controller: reading a message on %s failed", message.topic)

    async def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        try:
            await self.client.publish(topic, payload, qos=contract.QOS, retain=retain,
                                      timeout=PUBACK_WAIT_S)
        except aiomqtt.MqttCodeError as exc:
            # NO_CONN: the connection dropped since; paho keeps the QoS 1 message and sends
            # it on reconnection. Anything else (its queue full): the message is lost.
            lost = exc.rc != mqtt.MQTT_ERR_NO_CONN
            log.log(logging.ERROR if lost else logging.DEBUG, "controller publish on %s: %s", topic, exc)
        except aiomqtt.MqttError as exc:   # no PUBACK in time: paho still holds it
            log.debug("controller publish on %s not acknowledged: %s", topic, exc)


#: the transports by name, the default first
LINKS: dict[str, Callable[[Owner], Link]] = {"paho": PahoLink, "aiomqtt": AiomqttLink}
TRANSPORTS = tuple(LINKS)
