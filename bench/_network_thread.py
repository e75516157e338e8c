"""The bench's alternative network loop for a node: paho's, on a thread of ours, where a
publish is written to the socket by the thread that makes it.

The node ships paho's own loop (``nodes/transport.py``); this hand-written one is kept
here to measure the two side by side (``python -m bench.e2e --node-transports
paho,thread``; docs/performance.md, "Node transport"), and is not used by the node.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt

from protocol.mqtt import RECONNECT_MAX_S, RECONNECT_MIN_S

log = logging.getLogger(__name__)


class NetworkThread:
    """paho's network loop on a thread of ours, where a publish is written by its caller.

    With paho's ``loop_start()`` a publish made on another thread (the node's worker) only
    queues the packet and wakes paho's thread, which must then wake up, get the GIL from
    the thread that published and go round its ``select`` loop. Here the thread that
    publishes writes the packet to the socket before :meth:`publish` returns, through
    paho's external-loop hooks (``on_socket_register_write``, as the controller's asyncio
    bridge does).

    One lock serialises the writes: this thread holds it while paho writes, pings and
    reconnects; a caller holds it around ``client.publish()``, so two threads never write
    at once and packets never interleave. Only this thread reads, without the lock, so
    paho's callbacks (which take the agent's locks, then publish) never run under it: the
    lock is always taken after the agent's locks and before paho's own mutexes. A caller
    that cannot get it quickly (this thread in a slow TCP connect) leaves the packet
    queued for this thread, which is woken.

    Reconnection as paho's ``loop_forever`` does it: the first try at once, then after
    :data:`RECONNECT_MIN_S`, doubling up to :data:`RECONNECT_MAX_S`.
    """

    #: how long a publishing thread waits for the lock before leaving the write to us
    LOCK_WAIT_S = 0.25
    #: paho's loop_misc (keepalive pings, their timeout) runs at least this often
    TICK_S = 0.5

    def __init__(self, client: mqtt.Client, *, name: str = "mqtt-network") -> None:
        self.client = client
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._ident: int | None = None
        self._retry_delay: float | None = None
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- the lock -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _held(self, timeout: float = -1) -> Iterator[bool]:
        got = self._lock.acquire(timeout=timeout)
        if got:
            self._owner = threading.get_ident()
            self._depth += 1
        try:
            yield got
        finally:
            if got:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                self._lock.release()

    def _mine(self) -> bool:
        return self._owner == threading.get_ident()

    # -- for the other threads --------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """``client.publish``; on the wire when it returns (connected, socket not full).

        From paho's callbacks (this thread) the packet is written right after them."""
        if threading.get_ident() == self._ident:
            return self.client.publish(topic, payload, qos=qos, retain=retain)
        with self._held(self.LOCK_WAIT_S):
            return self.client.publish(topic, payload, qos=qos, retain=retain)

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, timeout: float = 2.0) -> None:
        """Send DISCONNECT (if connected) and end the thread; safe to call twice."""
        self._stop.set()
        with self._held(self.LOCK_WAIT_S):
            if self.client.is_connected():
                self.client.disconnect()
        self._poke()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        for sock in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()

    def _register_write(self, client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        # paho queued a packet and nothing was being written. Called inside paho (under its
        # message mutex): write now only if we hold the lock, else leave it to _run.
        if threading.get_ident() == self._ident:
            return   # _run writes after the read or reconnect that queued it
        if self._mine():
            client.loop_write()
            if not client.want_write():
                return   # all on the wire
        self._poke()     # the rest when the socket takes it (or the lock is free)

    def _poke(self) -> None:
        with contextlib.suppress(OSError):   # full: _run is awake anyway; closed: stopping
            self._wake_w.send(b"\0")

    # -- the network thread ------------------------------------------------------------
    def _run(self) -> None:
        self._ident = threading.get_ident()
        client = self.client
        while not self._stop.is_set():
            try:
                if client.socket() is None:
                    self._connect()
                    continue
                self._turn()
            except Exception:
                log.exception("MQTT network loop failed; going on")
                self._stop.wait(0.1)

    def _connect(self) -> None:
        if self._retry_delay is not None and self._stop.wait(self._retry_delay):
            return
        self._retry_delay = RECONNECT_MIN_S if self._retry_delay is None else \
            min(2 * self._retry_delay, RECONNECT_MAX_S)
        with self._held():
            if self._stop.is_set():
                return
            try:
                self.client.reconnect()
            except (OSError, ValueError) as exc:   # refused, unreachable, unknown host
                log.debug("MQTT connect failed: %s", exc)
                return
            if self.client.want_write():
                self.client.loop_write()

    def _turn(self) -> None:
        client = self.client
        sock = client.socket()
        if sock is None:
            return
        try:
            readable, writable, _ = select.select(
                [sock, self._wake_r], [sock] if client.want_write() else [], [], self.TICK_S)
        except (OSError, ValueError):   # closed under us (another thread disconnected)
            readable, writable = [], []
        if self._wake_r in readable:
            with contextlib.suppress(OSError):
                self._wake_r.recv(4096)
        if sock in readable and client.socket() is sock:
            # NOTE: read without the lock: only this thread reads, and paho's callbacks
            # (the agent's, which take its own locks, then publish) must not run under it.
            client.loop_read()
        with self._held():
            if client.socket() is not None and client.want_write():
                client.loop_write()
            if client.socket() is not None:
                client.loop_misc()
            if client.is_connected():
                self._retry_delay = None
        del writable
