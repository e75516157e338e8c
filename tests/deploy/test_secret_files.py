"""Secrets in files, as a deployment keeps them (``NAME_FILE=/path``, mode 0600), through the
real programs: ``escape-apartment controller`` and ``escape-apartment node`` as processes,
the production Mosquitto with the users ``broker credentials`` made, HTTP and a raw MQTT
client. A file others may read stops the program with a clear line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config.loader import SHIPPED_GAME
from protocol.contract import NodeStatus, Topics
from tests.deploy.conftest import read_env_file
from tests.deploy.test_mosquitto_security import Peer
from tests.support.mosquitto import Mosquitto, free_port

#: bound of each wait for a program to start, answer or stop
START_S = 30.0


def command() -> list[str]:
    script = Path(sys.executable).with_name("escape-apartment")
    return [str(script)] if script.exists() else [sys.executable, "-m", "controller.cli"]


def clean_env(**values: str) -> dict[str, str]:
    """The test's environment without any ESCAPE_… variable, and *values*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESCAPE_", "GPIOZERO_"))}
    return {**env, **values}


def secret_file(directory: Path, name: str, text: str, mode: int = 0o600) -> str:
    path = directory / name
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(mode)
    return str(path)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The processes a test starts; each is stopped (then killed) at its end."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def refused(argv: list[str], env: dict[str, str], tmp_path: Path) -> str:
    """Run a program that must refuse to start: its exit code is 2; return what it said."""
    done = subprocess.run([*command(), *argv], env=env, capture_output=True, text=True,
                          timeout=START_S, cwd=tmp_path, check=False)
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert "Traceback" not in said
    return said


# -- the controller ---------------------------------------------------------------------------
def controller_env(tmp_path: Path, *, mode: int = 0o600, http_port: int) -> dict[str, str]:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700, exist_ok=True)
    return clean_env(
        ESCAPE_GM_PASSWORD_FILE=secret_file(secrets, "gm", "gm-from-a-file", mode),
        ESCAPE_TECH_PASSWORD_FILE=secret_file(secrets, "tech", "tech-from-a-file"),
        ESCAPE_SCREEN_TOKEN_SECRET_FILE=secret_file(secrets, "screen", "s" * 64),
        ESCAPE_SESSION_SECRET_FILE=secret_file(secrets, "session", "t" * 64),
        ESCAPE_MQTT_HOST="127.0.0.1", ESCAPE_MQTT_PORT=str(free_port()),   # no broker: it retries
        ESCAPE_HTTP_PORT=str(http_port), ESCAPE_DATA_DIR=str(tmp_path / "data"),
        ESCAPE_CONFIG=str(SHIPPED_GAME))


def test_the_controller_logs_in_with_passwords_from_files_on_the_port_of_its_flag(
        tmp_path: Path, started: list[subprocess.Popen[bytes]]) -> None:
    flag_port, env_port = free_port(), free_port()
    log = (tmp_path / "controller.log").open("wb")
    started.append(subprocess.Popen([*command(), "controller", "--port", str(flag_port)],
                                    env=controller_env(tmp_path, http_port=env_port), cwd=tmp_path,
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    url = f"http://127.0.0.1:{flag_port}"
    deadline = time.monotonic() + START_S
    with httpx.Client(base_url=url, timeout=5) as client:
        while True:
            try:
                reply = client.post("/api/login", json={"password": "gm-from-a-file"})
                break
            except httpx.TransportError:
                assert started[0].poll() is None, (tmp_path / "controller.log").read_text()
                assert time.monotonic() < deadline, "the controller did not answer"
                time.sleep(0.1)
        assert reply.status_code == 200 and reply.json() == {"role": "gm"}
        assert client.get("/api/me").json()["role"] == "gm"
        assert client.post("/api/login", json={"password": "tech-from-a-file"}).json() == {"role": "tech"}
    with pytest.raises(httpx.TransportError):   # --port won over ESCAPE_HTTP_PORT
        httpx.get(f"http://127.0.0.1:{env_port}/api/health", timeout=1)


def test_the_controller_refuses_a_password_file_others_can_read(tmp_path: Path) -> None:
    said = refused(["controller"], controller_env(tmp_path, mode=0o644, http_port=free_port()),
                   tmp_path)
    assert "ESCAPE_GM_PASSWORD_FILE" in said and "chmod 600" in said
    assert "gm-from-a-file" not in said


# -- a node -----------------------------------------------------------------------------------
def test_a_node_refuses_a_password_file_others_can_read(tmp_path: Path) -> None:
    env = clean_env(ESCAPE_MQTT_USERNAME="hall", ESCAPE_MQTT_PASSWORD_FILE=secret_file(
        tmp_path, "hall.password", "hall-from-a-file", 0o644))
    said = refused(["node", "--id", "hall", "--simulate", "--data-dir", str(tmp_path / "data")],
                   env, tmp_path)
    assert "ESCAPE_MQTT_PASSWORD_FILE" in said and "chmod 600" in said
    assert "hall-from-a-file" not in said


@pytest.mark.mosquitto
def test_a_node_set_by_its_environment_alone_logs_in_with_its_password_file(
        production_broker: Mosquitto, secrets_dir: Path, tmp_path: Path,
        started: list[subprocess.Popen[bytes]]) -> None:
    """No flag but --data-dir: id, game, broker, user, pins from the variables; the
    password from a 0600 file. The production broker lets only the right password in."""
    hall = read_env_file(secrets_dir / "hall.env")
    controller = read_env_file(secrets_dir / "controller.env")
    topic = Topics("temoin").node_status("hall")
    watcher = Peer(production_broker, username="controller",
                   password=controller["ESCAPE_MQTT_PASSWORD"], name="settings-watcher")
    assert not watcher.connect().is_failure
    try:
        watcher.subscribe(topic)
        env = clean_env(ESCAPE_NODE_ID="hall", ESCAPE_CONFIG=str(SHIPPED_GAME),
                        ESCAPE_BROKER=production_broker.address, ESCAPE_MQTT_USERNAME="hall",
                        ESCAPE_MQTT_PASSWORD_FILE=secret_file(tmp_path, "hall.password",
                                                              hall["ESCAPE_MQTT_PASSWORD"]),
                        GPIOZERO_PIN_FACTORY="mock")
        log = (tmp_path / "hall.log").open("wb")
        started.append(subprocess.Popen([*command(), "node", "--data-dir", str(tmp_path / "data")],
                                        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL))

        deadline = time.monotonic() + START_S
        while not any(not m.retain and NodeStatus.model_validate_json(m.payload).online
                      for m in watcher.got(topic)):   # a birth now, not one retained earlier
            assert started[0].poll() is None, (tmp_path / "hall.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "hall.log").read_text()
            time.sleep(0.05)
    finally:
        watcher.close()
