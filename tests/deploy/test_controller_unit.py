"""The game server without Docker (docs/deploy.md §2c): the controller's systemd unit
(controller/systemd/escape-controller.service) beside the Debian Mosquitto, and the time
server's chrony configuration (config/time/chrony.conf), checked by the tools that read them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from unittest import mock

from controller import backup
from controller.cli import build_parser
from controller.core.config import Settings
from tests.deploy.conftest import read_env_file
from tests.deploy.test_systemd import UNIT as NODE_UNIT
from tests.deploy.test_systemd import load_unit

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "controller" / "systemd" / "escape-controller.service"
CHRONY = REPO / "config" / "time" / "chrony.conf"


def service() -> dict[str, str]:
    return dict(load_unit(UNIT)["Service"])


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (apt install systemd)"
    shutil.copy(UNIT, tmp_path / UNIT.name)
    done = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / UNIT.name)],
                          capture_output=True, text=True, timeout=30, check=False)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()
                and "/opt/escape-apartment/.venv/bin/escape-apartment is not executable" not in line]
    assert problems == []


def test_unit_runs_the_controller_command_on_the_files_the_guide_installs() -> None:
    svc = service()
    argv = shlex.split(svc["ExecStart"])
    args = build_parser().parse_args(argv[1:])
    assert args.command == "controller"
    assert (args.config, args.host, args.port) == ("/etc/escape-apartment/apartment.yaml", "0.0.0.0", 8000)
    node = load_unit(NODE_UNIT)["Service"]
    assert argv[0] == shlex.split(node["ExecStart"])[0], "one venv on a Pi, whichever runs it"
    assert Path(svc["EnvironmentFile"]).parent == Path(node["EnvironmentFile"]).parent
    assert svc["User"] == node["User"]
    assert "mosquitto.service" in load_unit(UNIT)["Unit"]["After"].split(), "after the broker beside it"


def test_unit_keeps_the_store_in_its_state_directory_and_lets_a_backup_finish() -> None:
    svc = service()
    data = Path(svc["Environment"].removeprefix("ESCAPE_DATA_DIR="))
    assert data == Path("/var/lib") / svc["StateDirectory"]
    assert float(svc["TimeoutStopSec"]) > backup.STOP_WAIT_S, "a stop never cuts a backup short"
    assert svc["Restart"] == "always" and svc["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "-/media/escape-backup" in svc["ReadWritePaths"].split(), "the guide's USB stick"
    assert "/media/escape-backup" in (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")


def test_the_env_file_it_reads_starts_a_controller(secrets_dir: Path) -> None:
    env = read_env_file(secrets_dir / "controller.env")
    env["ESCAPE_DATA_DIR"] = service()["Environment"].removeprefix("ESCAPE_DATA_DIR=")
    with mock.patch.dict(os.environ, env, clear=True):
        settings = Settings()
    assert settings.MQTT_USERNAME == "controller" and settings.GM_PASSWORD is not None
    assert (settings.MQTT_HOST, settings.MQTT_PORT) == ("127.0.0.1", 1883), "the broker beside it"


def test_chrony_serves_the_apartment_without_internet(tmp_path: Path) -> None:
    chronyd = shutil.which("chronyd") or "/usr/sbin/chronyd"
    assert Path(chronyd).exists(), "chronyd is needed (apt install chrony)"
    done = subprocess.run([chronyd, "-p", "-f", str(CHRONY)], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr   # chronyd parses it, as at start
    directives = [line.split() for line in done.stdout.splitlines()]
    assert ["local", "stratum", "10", "orphan"] in directives, "a time source with no upstream"
    assert ["allow", "192.168.0.0/16"] in directives, "the Pis may ask"
    bad = tmp_path / "bad.conf"
    bad.write_text("allow nonsense/99\n")
    assert subprocess.run([chronyd, "-p", "-f", str(bad)], capture_output=True, timeout=30,
                          check=False).returncode != 0, "the check above would see a mistake"
