"""The controller's side of the MQTT contract, spoken by a bare MQTT client.

For tests that drive a node (an agent on MockFactory, or a real ``escape-apartment node``
process) with nothing of the project's controller: retained statuses republished as a
heartbeat with this fake controller's *uptime* (its own monotonic clock, as the contract
says), and commands dated on it.

>>> ctl = FakeController(publish=wire.publish, topics=Topics("faults")).start()
>>> ctl.send("hall", "mailbox_lock", ctl.command("lock"))
>>> ctl.stop(will=True)      # the controller's last will: offline
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from protocol.contract import COMMAND_TTL_S, Command, ControllerStatus, Topics, new_id

Publish = Callable[..., Any]


class FakeController:
    """Heartbeats and dated commands of a controller boot that is only a test's client."""

    def __init__(self, *, publish: Publish, topics: Topics, session: str | None = "s1",
                 running: bool = True, heartbeat: float = 0.5, parcours: str | None = "primo",
                 uptime_at_start: float = 100.0) -> None:
        self.publish, self.topics = publish, topics
        self.boot_id = f"ctl{new_id()}"
        self.session, self.running, self.heartbeat, self.parcours = session, running, heartbeat, parcours
        self._started = time.monotonic() - uptime_at_start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def uptime(self) -> float:
        return time.monotonic() - self._started

    def status(self, *, online: bool = True) -> ControllerStatus:
        if not online:
            return ControllerStatus(online=False, boot_id=self.boot_id)
        return ControllerStatus(online=True, boot_id=self.boot_id, session=self.session,
                                running=self.running, uptime=self.uptime(), heartbeat=self.heartbeat,
                                parcours=self.parcours, solved=[])

    def beat(self) -> None:
        self.publish(self.topics.controller_status, self.status().to_bytes(), retain=True)

    def start(self) -> FakeController:
        self.beat()

        def run() -> None:
            while not self._stop.wait(self.heartbeat):
                try:
                    self.beat()
                except (AssertionError, OSError, RuntimeError, ValueError):
                    continue   # the broker away (a test restarts it): the next beat will do

        self._thread = threading.Thread(target=run, name="fake-controller", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, will: bool = False) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if will:
            self.publish(self.topics.controller_status, self.status(online=False).to_bytes(),
                         retain=True)

    def command(self, action: str, *, issued: float | None = None, ttl: float = COMMAND_TTL_S,
                session: str | None = "current", command_id: str | None = None) -> Command:
        """A command of this controller, issued now (or at *issued* on its uptime)."""
        return Command(id=command_id or new_id(), action=action,
                       session=self.session if session == "current" else session,
                       controller=self.boot_id, issued=self.uptime() if issued is None else issued,
                       ttl=ttl)

    def send(self, node: str, prop: str, command: Command) -> None:
        self.publish(self.topics.prop_set(node, prop), command.to_bytes())


def nodelay(client: mqtt.Client) -> None:
    """TCP_NODELAY on a test's own connected client (as every client of the project has):
    without it a small publish may wait ~40 ms for the peer's delayed ACK, and a latency
    measured through it would be the test's, not the system's."""
    sock = client.socket()
    assert sock is not None, "not connected"
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
