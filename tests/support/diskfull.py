"""A full disk, for real: a small tmpfs that another file fills up — and a room played by a
raw MQTT client (not our node code), whose every event is numbered so the session log can
be counted afterwards. No pytest fixtures here.

Mounting needs root (or password-less ``sudo``). Where neither is available the tests
skip — unless ``ESCAPE_REQUIRE_TMPFS=1`` (CI sets it, ``.ci/run``): then they fail.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from protocol.contract import NodeHeartbeat, NodeStatus, PropEvent, Topics, new_id, now

REQUIRE_ENV = "ESCAPE_REQUIRE_TMPFS"


def _mounter() -> list[str] | None:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True,
                                               check=False).returncode == 0:
        return ["sudo", "-n"]
    return None


@contextmanager
def small_tmpfs(path: Path, *, size_kb: int) -> Iterator[Path]:
    """A tmpfs of *size_kb* KiB mounted on *path* (created), unmounted afterwards."""
    prefix = _mounter()
    if prefix is None:
        reason = "mounting a tmpfs needs root or password-less sudo"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1")
        pytest.skip(reason)
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run([*prefix, "mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=1777", "tmpfs",
                    str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run([*prefix, "umount", "-l", str(path)], check=False)


def fill(path: Path) -> int:
    """Write *path* until its file system is full; return the bytes written."""
    written = 0
    chunk = b"\0" * 4096
    with path.open("wb", buffering=0) as out:
        try:
            while True:
                written += out.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return written


class RawRoom:
    """One room of the apartment as a bare paho client: its birth, heartbeats and events,
    each event numbered (``seq``, and ``value`` = the number as text for plain keys)."""

    def __init__(self, host: str, port: int, topics: Topics, node: str) -> None:
        self.topics, self.node = topics, node
        self.boot_id = f"raw{new_id()}"
        self.seq = 0
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"raw-{node}-{new_id()}", protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, msg.payload))

    def commands(self, prop: str) -> list[bytes]:
        topic = self.topics.prop_set(self.node, prop)
        with self._lock:
            return [p for t, p in self.received if t == topic]

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False, wait: bool = True) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if wait:
            info.wait_for_publish(5)
            assert info.is_published(), f"no PUBACK for {topic}"

    def birth(self, *, keepalive: float = 60, heartbeat: float = 20) -> None:
        """Born with a long keepalive: the test need not beat to stay online."""
        self.client.subscribe(f"{self.topics.root}/nodes/{self.node}/props/+/set", qos=1)
        self._publish(self.topics.node_status(self.node), NodeStatus(
            online=True, boot_id=self.boot_id, boot_n=1, version="raw", ts=now(), keepalive=keepalive,
            heartbeat=heartbeat).to_bytes(), retain=True)

    def beat(self) -> None:
        self._publish(self.topics.node_heartbeat(self.node),
                      NodeHeartbeat(boot_id=self.boot_id, boot_n=1, ts=now()).to_bytes())

    def event(self, prop: str, type_: str = "key", value: object = None, *, wait: bool = True) -> int:
        """Publish the next event; return its number (``value`` defaults to it, as text)."""
        self.seq += 1
        event = PropEvent(boot_id=self.boot_id, seq=self.seq, type=type_,
                          value=str(self.seq) if value is None else value, ts=now())
        self._publish(self.topics.prop_event(self.node, prop), event.to_bytes(), wait=wait)
        return self.seq

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
