"""Shared fixtures: real MQTT brokers (embedded amqtt everywhere, Mosquitto where installed).

``broker`` is parametrised over both; a test using it runs once per broker. Mosquitto
tests skip when it is not installed, unless ``ESCAPE_REQUIRE_MOSQUITTO=1`` (CI), where a
missing Mosquitto fails them instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.broker import EmbeddedBroker, free_port


@dataclass(frozen=True)
class BrokerHandle:
    kind: str
    host: str
    port: int


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def require_mosquitto() -> str:
    binary = mosquitto_binary()
    if binary is None:
        if os.environ.get("ESCAPE_REQUIRE_MOSQUITTO") == "1":
            pytest.fail("mosquitto is required (ESCAPE_REQUIRE_MOSQUITTO=1) but not installed")
        pytest.skip("mosquitto is not installed")
    return binary


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    msg = f"nothing listens on {host}:{port} after {timeout} s"
    raise TimeoutError(msg)


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[BrokerHandle]:
    with EmbeddedBroker(port=0) as broker:
        yield BrokerHandle("amqtt", broker.host, broker.port)


@pytest.fixture(scope="session")
def mosquitto_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerHandle]:
    binary = require_mosquitto()
    port = free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "test.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
                    "persistence false\n", encoding="utf-8")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_port("127.0.0.1", port)
        yield BrokerHandle("mosquitto", "127.0.0.1", port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=["amqtt", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def broker(request: pytest.FixtureRequest) -> BrokerHandle:
    """A running real broker: the embedded one, then Mosquitto."""
    name = "embedded_broker" if request.param == "amqtt" else "mosquitto_broker"
    return request.getfixturevalue(name)
