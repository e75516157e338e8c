"""tests/support/mosquitto.py itself: the broker helper other tests build on."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from config.broker import MOSQUITTO_CONF
from tests.support import mosquitto as support
from tests.support.mosquitto import (
    Mosquitto,
    MosquittoError,
    connack_code,
    production_config,
    require_or_skip_mosquitto,
)


# -- skip or fail ---------------------------------------------------------------------------
def test_missing_mosquitto_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "mosquitto_executable", lambda: None)
    monkeypatch.delenv("ESCAPE_REQUIRE_MOSQUITTO", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_or_skip_mosquitto()


def test_missing_mosquitto_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "mosquitto_executable", lambda: None)
    monkeypatch.setenv("ESCAPE_REQUIRE_MOSQUITTO", "1")
    with pytest.raises(pytest.fail.Exception, match="ESCAPE_REQUIRE_MOSQUITTO"):
        require_or_skip_mosquitto()


# -- the production config rewrite ----------------------------------------------------------
def test_production_config_rewrites_only_port_paths_and_data(tmp_path: Path) -> None:
    text = production_config(port=18999, password_file=tmp_path / "passwd",
                             persistence_dir=tmp_path / "data")
    original = MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines()
    rendered = text.splitlines()
    changed = [(a, b) for a, b in zip(original, rendered, strict=False) if a != b]
    assert [a.split()[0] for a, _ in changed] == ["password_file", "acl_file", "listener",
                                                  "persistence_location"]
    assert "listener 18999 127.0.0.1" in rendered
    assert f"password_file {tmp_path / 'passwd'}" in rendered
    # the only possible addition: keep root when the tests run as root (see the helper)
    assert rendered[len(original):] in ([], ["user root"])


def test_production_config_refuses_a_file_it_cannot_adapt(tmp_path: Path) -> None:
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener 1883\nlistener 8883\npassword_file /x\nacl_file /y\n"
                    "persistence_location /z/\n")
    with pytest.raises(MosquittoError, match="listener 2 time"):
        production_config(port=1, password_file=tmp_path, persistence_dir=tmp_path, source=conf)


# -- the process ----------------------------------------------------------------------------
def _retained(broker: Mosquitto, topic: str) -> bytes | None:
    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        got.append(msg.payload)
        arrived.set()

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         client_id="helper-test-sub")
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        arrived.wait(3.0)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0] if got else None


@pytest.mark.mosquitto
def test_plain_broker_accepts_anonymous_clients_and_restarts_on_its_port(tmp_path: Path) -> None:
    require_or_skip_mosquitto()
    with Mosquitto.plain(workdir=tmp_path, persistence=True) as broker:
        port = broker.port
        assert connack_code(broker.host, port) == 0
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                             client_id="helper-test")
        client.connect(broker.host, port)
        info = client.publish("t/retained", b"kept", qos=1, retain=True)
        client.loop_start()
        info.wait_for_publish(3.0)
        assert info.is_published()
        client.disconnect()
        client.loop_stop()

        broker.restart()
        assert broker.port == port and broker.running
        assert _retained(broker, "t/retained") == b"kept"  # the persistence dir was kept

        broker.kill()
        assert not broker.running
        assert connack_code(broker.host, port, timeout=0.2) is None
        broker.start()
        assert broker.port == port and connack_code(broker.host, port) == 0
        # tcp_nodelay is what the contract requires of every broker
        assert "set_tcp_nodelay true" in broker.config_file.read_text()
    assert not broker.running
    broker.stop()  # idempotent


@pytest.mark.mosquitto
def test_a_broker_that_cannot_start_says_why(tmp_path: Path) -> None:
    require_or_skip_mosquitto()
    broker = Mosquitto.production(workdir=tmp_path, password_file=tmp_path / "missing-passwd")
    with pytest.raises(MosquittoError, match="passw"):
        broker.start()
    assert not broker.running


@pytest.mark.mosquitto
def test_a_taken_port_is_reported(tmp_path: Path) -> None:
    require_or_skip_mosquitto()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = Mosquitto.plain(workdir=tmp_path, port=port)
        with pytest.raises(MosquittoError):
            broker.start()
