"""A room's Pi in one command (nodes/install.py), run for real with ``--root DIR`` on a fake
fresh Raspberry Pi OS: what it writes (units checked by ``systemd-analyze verify``, configs
parsed by what reads them), the venv with the node's extra and nothing more, a second run
that changes nothing, bad input that changes nothing, and ``--undo`` back to the fresh Pi.

The tests of this file share one install (the venv takes ~20 s) and run in order.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.loader import SHIPPED_GAME, load_game
from nodes.install import BOOT_BLOCK, TIMESYNCD_DROPIN, VENV, broker_host
from tests.deploy.conftest import read_env_file, run_cli

# the venv is really made and the extra installed (from PyPI): ~20-40 s
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
CONFIG_TXT = "# For more options and information see\n# http://rptl.io/configtxt\ndtparam=audio=on\n"
#: every option systemd-timesyncd reads from [Time] (timesyncd.conf(5), systemd 252)
TIMESYNCD_OPTIONS = {"NTP", "FallbackNTP", "RootDistanceMaxSec", "PollIntervalMinSec",
                     "PollIntervalMaxSec", "ConnectionRetrySec", "SaveIntervalSec"}


def fresh_pi(root: Path) -> Path:
    (root / "boot" / "firmware").mkdir(parents=True)
    (root / "boot" / "firmware" / "cmdline.txt").write_text(CMDLINE)
    (root / "boot" / "firmware" / "config.txt").write_text(CONFIG_TXT)
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    return root


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Every file and link under *root* (the venv aside): mode and content hash, or target."""
    out = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if relative.startswith(VENV) or (path.is_dir() and not path.is_symlink()):
            continue
        out[relative] = (("link", os.readlink(path)) if path.is_symlink()
                         else (oct(path.stat().st_mode & 0o777), hashlib.sha256(path.read_bytes()).hexdigest()))
    return out


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "nodes" / "install.py"), "--root", str(root), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every room's env file, with the game server's address, as §1 of docs/deploy.md writes them."""
    out = tmp_path_factory.mktemp("install") / "secrets"
    assert run_cli("broker", "credentials", "--config", str(SHIPPED_GAME), "--out", str(out),
                   "--broker", "192.168.1.10:1883") == 0
    return out


@pytest.fixture(scope="module")
def pi(tmp_path_factory: pytest.TempPathFactory, secrets: Path) -> dict:
    root = fresh_pi(tmp_path_factory.mktemp("pi") / "root")
    before = tree(root)
    started = time.monotonic()
    done = install(root, "--id", "hall", "--env", str(secrets / "hall.env"))
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"\n[install] --root install of node hall (venv and the [node] extra included): {took:.1f} s")
    return {"root": root, "before": before, "first": done, "env": secrets / "hall.env"}


def test_it_writes_the_node_its_settings_time_and_unit(pi: dict) -> None:
    root: Path = pi["root"]
    etc = root / "etc" / "escape-apartment"
    env_file = etc / "hall.env"
    assert env_file.stat().st_mode & 0o777 == 0o600, "credentials: root only"
    env = read_env_file(env_file)
    assert env == read_env_file(pi["env"]) and env["ESCAPE_MQTT_USERNAME"] == "hall"
    assert "hall" in [n.id for n in load_game(etc / "apartment.yaml").nodes]

    # SPI and the UART on, the serial console off the GPIO UART, the rest of the files kept
    config = (root / "boot/firmware/config.txt").read_text()
    assert config == CONFIG_TXT + BOOT_BLOCK
    assert (root / "boot/firmware/cmdline.txt").read_text().split() == [
        w for w in CMDLINE.split() if not w.startswith("console=serial0")]

    # time from the game server only
    timesyncd = configparser.ConfigParser(interpolation=None)
    timesyncd.optionxform = str  # type: ignore[assignment,method-assign]
    timesyncd.read_string((root / TIMESYNCD_DROPIN).read_text())
    assert set(timesyncd["Time"]) <= TIMESYNCD_OPTIONS
    assert broker_host(env["ESCAPE_BROKER"]) == "192.168.1.10"
    assert timesyncd["Time"]["NTP"] == "192.168.1.10" and timesyncd["Time"]["FallbackNTP"] == ""

    # the unit, enabled as `systemctl enable` does it, and verified by systemd
    unit = root / "etc/systemd/system/escape-node@.service"
    assert unit.read_bytes() == (REPO / "nodes/systemd/escape-node@.service").read_bytes()
    wants = root / "etc/systemd/system/multi-user.target.wants/escape-node@hall.service"
    assert os.readlink(wants) == "/etc/systemd/system/escape-node@.service"
    executable = root / VENV / "bin" / "escape-apartment"
    assert os.access(executable, os.X_OK), "the unit's ExecStart exists in the venv"
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (apt install systemd)"
    check = root.parent / "verify"
    check.mkdir(exist_ok=True)
    shutil.copy(unit, check / unit.name)
    done = subprocess.run([analyze, "verify", "--man=no", str(check / "escape-node@hall.service")],
                          capture_output=True, text=True, timeout=60, check=False)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()
                and f"{'/' + VENV}/bin/escape-apartment is not executable" not in line]
    assert problems == [], problems

    # on a real Pi these run; with --root they are listed
    out = pi["first"].stdout
    for command in ("apt-get update", "apt-get install -y python3-venv python3-dev gcc",
                    "useradd --system --no-create-home --groups gpio,spi,dialout escape",
                    "systemctl restart systemd-timesyncd", "systemctl restart escape-node@hall.service"):
        assert f"à lancer sur le Pi : {command}" in out, out


def test_the_venv_holds_the_node_extra_and_no_web_stack(pi: dict) -> None:
    python = pi["root"] / VENV / "bin" / "python"
    done = subprocess.run([str(python), "-c", "import gpiozero, lgpio, spidev, paho.mqtt, pydantic, yaml, serial\n"
                           "import importlib.util as u\nprint(u.find_spec('fastapi'), u.find_spec('uvicorn'))"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "None"], "a node has no web stack"


def test_a_second_run_changes_nothing(pi: dict) -> None:
    root: Path = pi["root"]
    installed = tree(root)
    venv = (root / VENV / "escape-installed.json").stat().st_mtime_ns
    again = install(root, "--id", "hall", "--env", str(pi["env"]))
    assert again.returncode == 0, again.stdout + again.stderr
    assert tree(root) == installed
    assert (root / VENV / "escape-installed.json").stat().st_mtime_ns == venv, "the venv untouched"
    assert "✔ fait" not in again.stdout and "rien n'a changé" in again.stdout, again.stdout
    assert "systemctl start escape-node@hall.service" in again.stdout, "started if stopped, not restarted"


def test_bad_input_is_refused_and_changes_nothing(pi: dict, tmp_path: Path, secrets: Path) -> None:
    root: Path = pi["root"]
    installed = tree(root)
    other = install(root, "--id", "hall", "--env", str(secrets / "cuisine.env"))
    assert other.returncode == 2 and "celui du nœud 'cuisine', pas de 'hall'" in other.stderr, other.stderr
    partial = tmp_path / "partial.env"
    partial.write_text("ESCAPE_MQTT_USERNAME=hall\n")
    missing = install(root, "--id", "hall", "--env", str(partial))
    assert missing.returncode == 2 and "ESCAPE_MQTT_PASSWORD, ESCAPE_BROKER" in missing.stderr, missing.stderr
    bad_id = install(root, "--id", "Hall;rm", "--env", str(pi["env"]))
    assert bad_id.returncode == 2 and "identifiant de nœud invalide" in bad_id.stderr
    assert tree(root) == installed


def test_undo_gives_back_the_fresh_pi_and_keeps_what_was_edited_since(pi: dict) -> None:
    root: Path = pi["root"]
    game = root / "etc/escape-apartment/apartment.yaml"
    game.write_text(game.read_text() + "# edited by the technician\n")
    done = install(root, "--id", "hall", "--undo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gardé (modifié depuis l'installation) : /etc/escape-apartment/apartment.yaml" in done.stdout
    assert "systemctl disable --now escape-node@hall.service" in done.stdout
    left = tree(root)
    assert left.pop("etc/escape-apartment/apartment.yaml")
    assert left == pi["before"], "the boot files as they were, nothing else of the install"
    assert not (root / VENV).exists()
    again = install(root, "--id", "hall", "--undo")
    assert again.returncode == 2 and "rien à défaire" in again.stderr


def test_no_module_beside_the_installer_hides_one_of_the_standard_library() -> None:
    # run as a script, nodes/ is first on sys.path: a nodes/signal.py would break it on the Pi
    beside = {p.stem for p in (REPO / "nodes").glob("*.py")} | {p.name for p in (REPO / "nodes").iterdir() if p.is_dir()}
    assert beside & set(sys.stdlib_module_names) == set()


def test_on_a_real_pi_it_runs_the_system_commands_in_order_and_only_what_is_needed(
        tmp_path: Path, secrets: Path) -> None:
    """The path a real Pi takes (commands run, not listed), with a recording runner, and a
    venv already installed from this checkout (its stamp; its python the tests' own)."""
    import json

    from nodes.install import SOURCE, Installer, source_hash

    root = fresh_pi(tmp_path / "root")
    venv = root / VENV
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    stamp = {"source": str(SOURCE), "hash": source_hash(SOURCE)}
    (venv / "escape-installed.json").write_text(json.dumps(stamp) + "\n")
    ran: list[str] = []
    lines: list[str] = []
    env = (secrets / "hall.env").read_text()

    def installer() -> Installer:
        return Installer("hall", root, env_text=env, runner=lambda argv: ran.append(" ".join(argv)),
                         say=lines.append, has_user=users.__contains__, has_package=packages.__contains__)

    users: set[str] = set()
    packages: set[str] = set()
    installer().install()
    assert ran[-4:] == ["timedatectl set-ntp true", "systemctl restart systemd-timesyncd",
                        "systemctl daemon-reload", "systemctl restart escape-node@hall.service"], ran
    assert "useradd --system --no-create-home --groups gpio,spi,dialout escape" in ran
    assert not any("à lancer" in line for line in lines), "run, not listed"
    assert ran[:2] == ["apt-get update", "apt-get install -y python3-venv python3-dev gcc"], ran
    users.add("escape")   # the Pi has its user and its packages now
    packages.update(("python3-venv", "python3-dev", "gcc"))

    ran.clear()
    installer().install()
    assert not any(r.startswith(("useradd", "apt-get")) for r in ran), ran
    assert "timedatectl set-ntp true" not in ran, "time sync already set: not touched"
    assert ran[-2:] == ["systemctl daemon-reload", "systemctl start escape-node@hall.service"], ran

    ran.clear()
    installer().undo()
    assert ran[0] == "systemctl disable --now escape-node@hall.service"
    assert "userdel escape" in ran, "the user it made is taken away"
    assert not venv.exists()
    assert tree(root) == tree(fresh_pi(tmp_path / "fresh"))
