"""The node's systemd unit (nodes/systemd/escape-node@.service) and sd_notify helper."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from controller.cli import build_parser
from nodes.sdnotify import notify, watchdog_interval

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "nodes" / "systemd" / "escape-node@.service"


def load_unit(path: Path = UNIT) -> configparser.ConfigParser:
    # systemd files allow repeated keys and keep case; configparser needs telling
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       comment_prefixes=("#", ";"), empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


# -- the unit file ------------------------------------------------------------------------
def test_unit_restarts_the_agent_quickly_and_watches_it() -> None:
    service = load_unit()["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert service["RestartSec"] == "1"
    assert service["WatchdogSec"] == "10"
    # a crash loop must not make systemd give up on a room for good
    assert load_unit()["Unit"]["StartLimitIntervalSec"] == "0"


def test_unit_reads_the_nodes_env_file_and_runs_the_node_subcommand() -> None:
    service = load_unit()["Service"]
    assert service["EnvironmentFile"] == "/etc/escape-apartment/%i.env"
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/escape-apartment/.venv/bin/escape-apartment"
    assert argv[1:] == ["node", "--id", "%i", "--config", "/etc/escape-apartment/apartment.yaml",
                        "--broker", "${ESCAPE_BROKER}"]
    # the same words parse as a real sub-command of our CLI (as systemd would expand them)
    args = build_parser().parse_args(
        [a.replace("%i", "hall").replace("${ESCAPE_BROKER}", "10.0.0.2:1883") for a in argv[1:]])
    assert (args.command, args.node_id, args.broker) == ("node", "hall", "10.0.0.2:1883")


def test_unit_is_hardened_but_keeps_the_hardware_reachable() -> None:
    service = load_unit()["Service"]
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert set(service["SupplementaryGroups"].split()) >= {"gpio", "spi", "dialout"}
    assert service.get("User") not in (None, "", "root")
    # each of these would close /dev/gpiochip*, /dev/spidev* or the serial ports
    for closing in ("PrivateDevices", "DeviceAllow", "DevicePolicy", "ProtectClock"):
        assert closing not in service, closing


def test_unit_gives_lgpio_a_writable_working_directory() -> None:
    # lgpio creates FIFOs in the working directory; ProtectSystem=strict makes / read-only
    service = load_unit()["Service"]
    runtime = service["RuntimeDirectory"]
    assert service["WorkingDirectory"] == f"/run/{runtime}"


def test_unit_keeps_the_event_outbox_in_a_state_directory_of_its_own() -> None:
    # ProtectSystem=strict: the outbox (nodes/outbox.py) needs a writable, persistent place
    service = load_unit()["Service"]
    state = service["StateDirectory"]
    assert state == "escape-apartment/%i"
    assert service["Environment"] == f"ESCAPE_DATA_DIR=/var/lib/{state}"
    args = build_parser().parse_args(["node", "--id", "hall", "--data-dir", "/var/lib/x",
                                      "--keepalive", "3"])
    assert (args.data_dir, args.keepalive) == ("/var/lib/x", 3)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["node", "--id", "hall", "--keepalive", "1"])


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    shutil.copy(UNIT, tmp_path / UNIT.name)
    done = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / "escape-node@hall.service")],
                          capture_output=True, text=True, timeout=30, check=False)
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if line.strip()
                # the venv is on the Pi, not here
                and "/opt/escape-apartment/.venv/bin/escape-apartment is not executable" not in line]
    assert problems == []


# -- sd_notify ------------------------------------------------------------------------------
@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> socket.socket:
    """A unix datagram socket standing in for systemd, named by NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_notify_sends_the_state_to_notify_socket(notify_socket: socket.socket) -> None:
    assert notify("READY=1") is True
    assert notify_socket.recv(4096) == b"READY=1"
    assert notify("WATCHDOG=1\nSTATUS=3 props") is True
    assert notify_socket.recv(4096) == b"WATCHDOG=1\nSTATUS=3 props"


def test_notify_uses_the_abstract_namespace_for_at_names(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"escape-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1") is True
        assert sock.recv(4096) == b"READY=1"


def test_notify_outside_systemd_is_a_quiet_no_op(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert notify("WATCHDOG=1") is False  # and no exception


def test_watchdog_interval_is_half_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # another process is meant to ping
    assert watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    monkeypatch.delenv("WATCHDOG_PID")
    assert watchdog_interval() is None
