"""A room's Raspberry Pi in one command: ``sudo python3 nodes/install.py --id hall --env hall.env``.

Run from a checkout of this repository (as a script, or ``python3 -m nodes.install``) on a
fresh Raspberry Pi OS Lite (Bookworm, 64-bit), as root. It turns the Pi into room ``<id>``:

1. SPI and the serial port on (``/boot/firmware/config.txt``: a marked block; the serial
   console taken off ``cmdline.txt``) — a reboot applies them;
2. the Debian packages a venv and spidev's build need (``python3-venv``, ``python3-dev``,
   ``gcc``: spidev has no aarch64 wheel, docs/deploy.md);
3. the ``escape`` system user, in the ``gpio``, ``spi`` and ``dialout`` groups;
4. the node's extra, only in a venv (``/opt/escape-apartment/.venv``), from this checkout;
5. the game file and the room's env file (broker address and credentials, from ``broker
   credentials``; mode 0600) in ``/etc/escape-apartment``;
6. time from the game server (``systemd-timesyncd``, ``config/time/timesyncd-node.conf``);
7. the systemd unit ``escape-node@<id>``, enabled and started; its data directory is its
   ``StateDirectory=`` (``/var/lib/escape-apartment/<id>``, made by systemd for its user).

Idempotent: each step compares what is there with what it would write and does nothing
when they agree, so a second run changes nothing (and says so, step by step). Undoable:
``--undo`` takes away what the install wrote — files still as it wrote them (a file edited
since is kept, and named), the boot changes, the venv, the user — from the manifest it keeps
in ``/var/lib/escape-apartment/install/<id>.json``; the Debian packages stay (others may
use them).

``--root DIR`` writes every file under *DIR* instead of ``/`` and runs no system command
(``useradd``, ``apt-get``, ``systemctl``: they are listed instead, as what would run); the
venv is made and the extra installed for real under *DIR*. The tests check what it writes
(tests/deploy/test_node_install.py), units with ``systemd-analyze verify``.

Standard library only: it runs before anything of this project is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1]
UNIT = SOURCE / "nodes" / "systemd" / "escape-node@.service"
TIMESYNCD = SOURCE / "config" / "time" / "timesyncd-node.conf"
GAME = SOURCE / "config" / "apartment.yaml"

VENV = "opt/escape-apartment/.venv"
ETC = "etc/escape-apartment"
UNIT_DIR = "etc/systemd/system"
WANTS = "etc/systemd/system/multi-user.target.wants"
TIMESYNCD_DROPIN = "etc/systemd/timesyncd.conf.d/escape-apartment.conf"
BOOT_CONFIG = "boot/firmware/config.txt"
BOOT_CMDLINE = "boot/firmware/cmdline.txt"
STATE = "var/lib/escape-apartment/install"
USER, GROUPS = "escape", ("gpio", "spi", "dialout")
APT = ("python3-venv", "python3-dev", "gcc")
#: the serial console on the GPIO UART: off, or the RDM6300 readers get a login prompt
SERIAL_CONSOLE = re.compile(r"^console=(serial0|ttyAMA0|ttyS0),\d+$")
BEGIN = "# escape-apartment: begin (nodes/install.py; its --undo takes it away)"
END = "# escape-apartment: end"
BOOT_BLOCK = (f"{BEGIN}\n# SPI for the MFRC522 readers, the UART for the RDM6300 readers\n"
              f"dtparam=spi=on\nenable_uart=1\n{END}\n")
NODE_ID = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
ENV_REQUIRED = ("ESCAPE_MQTT_USERNAME", "ESCAPE_MQTT_PASSWORD", "ESCAPE_BROKER")


class InstallError(Exception):
    """Bad input, or a step that failed: the message says what, in French."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_env(text: str) -> dict[str, str]:
    """``KEY=value`` lines (as systemd's EnvironmentFile= reads them, without quoting)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            if not sep:
                msg = f"ligne sans « = » dans le fichier d'environnement : {line!r}"
                raise InstallError(msg)
            env[key.strip()] = value.strip()
    return env


def broker_host(broker: str) -> str:
    """The host of ``host[:port]`` (``[v6]:port`` too): the node's time server."""
    if broker.startswith("["):
        return broker[1:broker.index("]")]
    return broker.rsplit(":", 1)[0] if broker.count(":") == 1 else broker


@dataclass
class Installer:
    """One run: what is installed where, what it did, and the manifest for ``--undo``."""

    node: str
    root: Path
    env_text: str = ""
    game: Path = GAME
    source: Path = SOURCE
    #: runs a system command; None (``--root``): commands are listed, not run
    runner: Callable[[list[str]], None] | None = None
    say: Callable[[str], None] = print
    #: is this Debian package installed (dpkg), does this system user exist (getent)
    has_package: Callable[[str], bool] = lambda name: subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False,
    ).stdout.strip() == "install ok installed"
    has_user: Callable[[str], bool] = lambda name: subprocess.run(
        ["getent", "passwd", name], capture_output=True, check=False).returncode == 0
    changed: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)

    # -- paths and records ------------------------------------------------------------------
    def path(self, relative: str) -> Path:
        return self.root / relative

    @property
    def manifest_path(self) -> Path:
        return self.path(f"{STATE}/{self.node}.json")

    def done(self, what: str, changed: bool) -> None:
        if changed:
            self.changed.append(what)
        self.say(f"{'✔ fait' if changed else '= déjà fait'} : {what}")

    def run(self, argv: list[str], *, check: bool = True) -> None:
        line = shlex.join(argv)
        if self.runner is None:
            self.commands.append(line)
            self.say(f"→ à lancer sur le Pi : {line}")
            return
        self.say(f"→ {line}")
        try:
            self.runner(argv)
        except subprocess.CalledProcessError as exc:
            if check:
                msg = f"la commande a échoué ({exc.returncode}) : {line}"
                raise InstallError(msg) from exc

    def write(self, relative: str, data: bytes, mode: int) -> bool:
        """Write *relative* unless it already holds *data* with *mode*; record it."""
        target = self.path(relative)
        self.manifest.setdefault("files", {})[relative] = sha256(data)
        if target.is_file() and target.read_bytes() == data and (target.stat().st_mode & 0o777) == mode:
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        tmp.chmod(mode)
        os.replace(tmp, target)
        return True

    def save_manifest(self) -> None:
        data = (json.dumps(self.manifest, indent=2, sort_keys=True) + "\n").encode()
        self.write(f"{STATE}/{self.node}.json", data, 0o600)

    # -- checks before anything is touched ------------------------------------------------------
    def validate(self) -> dict[str, str]:
        if not NODE_ID.match(self.node):
            msg = f"identifiant de nœud invalide : {self.node!r} (minuscules, chiffres, _)"
            raise InstallError(msg)
        env = read_env(self.env_text)
        missing = [key for key in ENV_REQUIRED if not env.get(key)]
        if missing:
            msg = (f"le fichier d'environnement n'a pas {', '.join(missing)} : prenez celui que "
                   "`escape-apartment broker credentials --broker HOST:1883` a écrit pour ce nœud")
            raise InstallError(msg)
        if env["ESCAPE_MQTT_USERNAME"] != self.node:
            msg = (f"ce fichier d'environnement est celui du nœud {env['ESCAPE_MQTT_USERNAME']!r}, "
                   f"pas de {self.node!r}")
            raise InstallError(msg)
        if not self.game.is_file():
            msg = f"fichier du jeu introuvable : {self.game}"
            raise InstallError(msg)
        return env

    # -- the steps ----------------------------------------------------------------------------
    def install(self) -> None:
        env = self.validate()
        if self.manifest_path.is_file():
            self.manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        self.manifest.update({"node": self.node, "files": {}})
        self.interfaces()
        self.packages()
        self.user()
        self.venv()
        self.check_game()
        self.config()
        self.time_sync(broker_host(env["ESCAPE_BROKER"]))
        self.unit()
        self.save_manifest()
        self.say(f"Nœud {self.node} installé" + (" (rien n'a changé)" if not self.changed else "")
                 + (" ; redémarrez le Pi pour SPI et le port série" if "SPI et port série" in self.changed
                    else ""))

    def interfaces(self) -> None:
        config = self.path(BOOT_CONFIG)
        text = config.read_text(encoding="utf-8") if config.is_file() else ""
        changed = False
        if BOOT_BLOCK not in text:
            text = _without_block(text)
            text = text + ("" if not text or text.endswith("\n") else "\n") + BOOT_BLOCK
            changed |= self._write_kept(BOOT_CONFIG, text.encode(), 0o644)
        cmdline = self.path(BOOT_CMDLINE)
        if cmdline.is_file():
            words = cmdline.read_text(encoding="utf-8").split()
            kept = [w for w in words if not SERIAL_CONSOLE.match(w)]
            if kept != words:
                self.manifest["cmdline_orig"] = cmdline.read_text(encoding="utf-8")
                cmdline.write_text(" ".join(kept) + "\n", encoding="utf-8")
                changed = True
        self.done("SPI et port série", changed)

    def _write_kept(self, relative: str, data: bytes, mode: int) -> bool:
        """A system file the install edits (not owns): not in the manifest's files."""
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file():
            mode = target.stat().st_mode & 0o777
        target.write_bytes(data)
        target.chmod(mode)
        return True

    def packages(self) -> None:
        if self.runner is None:
            self.run(["apt-get", "update"])
            self.run(["apt-get", "install", "-y", *APT])
            return
        missing = [p for p in APT if not self.has_package(p)]
        if missing:
            self.run(["apt-get", "update"])   # a fresh card's package lists are months old
            self.run(["apt-get", "install", "-y", *missing])
        self.done(f"paquets {', '.join(APT)}", bool(missing))

    def user(self) -> None:
        if self.runner is None:
            self.run(["useradd", "--system", "--no-create-home", "--groups", ",".join(GROUPS), USER])
            return
        exists = self.has_user(USER)
        if not exists:
            self.run(["useradd", "--system", "--no-create-home", "--groups", ",".join(GROUPS), USER])
            self.manifest["user_created"] = True
        self.done(f"utilisateur {USER} ({', '.join(GROUPS)})", not exists)

    def venv(self) -> None:
        venv = self.path(VENV)
        stamp = venv / "escape-installed.json"
        wanted = {"source": str(self.source), "hash": source_hash(self.source)}
        if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == wanted:
            self.done(f"venv {'/' + VENV} avec l'extra [node]", False)
            return
        try:
            if not (venv / "bin" / "python").exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", f"{self.source}[node]"],
                           check=True)
        except subprocess.CalledProcessError as exc:
            msg = f"installation du venv impossible ({exc.returncode}) : {shlex.join(exc.cmd)}"
            raise InstallError(msg) from exc
        stamp.write_text(json.dumps(wanted) + "\n", encoding="utf-8")
        self.done(f"venv {'/' + VENV} avec l'extra [node]", True)

    def check_game(self) -> None:
        """The game file is valid and has this node (the venv's own loader says so)."""
        probe = ("import sys\nfrom config.loader import load_game\n"
                 "game = load_game(sys.argv[1])\nids = [n.id for n in game.nodes]\n"
                 "sys.exit(0 if sys.argv[2] in ids else 'nœuds du jeu : ' + ', '.join(ids))\n")
        python = str(self.path(VENV) / "bin" / "python")
        done = subprocess.run([python, "-c", probe, str(self.game), self.node],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["?"])[-1]
            msg = f"le fichier du jeu {self.game} ne convient pas pour {self.node!r} : {why}"
            raise InstallError(msg)

    def config(self) -> None:
        changed = self.write(f"{ETC}/apartment.yaml", self.game.read_bytes(), 0o644)
        changed |= self.write(f"{ETC}/{self.node}.env", self.env_text.encode(), 0o600)
        self.done(f"/{ETC}/apartment.yaml et /{ETC}/{self.node}.env (0600)", changed)

    def time_sync(self, server: str) -> None:
        text = TIMESYNCD.read_text(encoding="utf-8").replace("NTP=GAME_SERVER", f"NTP={server}")
        changed = self.write(TIMESYNCD_DROPIN, text.encode(), 0o644)
        self.done(f"heure prise sur le serveur du jeu ({server})", changed)
        if changed or self.runner is None:
            self.run(["timedatectl", "set-ntp", "true"])
            self.run(["systemctl", "restart", "systemd-timesyncd"])

    def unit(self) -> None:
        unit = f"escape-node@{self.node}.service"
        changed = self.write(f"{UNIT_DIR}/{UNIT.name}", UNIT.read_bytes(), 0o644)
        link = self.path(f"{WANTS}/{unit}")
        target = f"/{UNIT_DIR}/{UNIT.name}"
        if not (link.is_symlink() and os.readlink(link) == target):
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)   # what `systemctl enable` makes
            changed = True
        self.manifest["enabled"] = unit
        self.done(f"service {unit}, activé au démarrage", changed)
        self.run(["systemctl", "daemon-reload"])
        self.run(["systemctl", "restart" if self.changed else "start", unit])

    # -- undo ---------------------------------------------------------------------------------
    def undo(self) -> None:
        if not self.manifest_path.is_file():
            msg = f"rien à défaire : pas d'installation du nœud {self.node!r} ici ({self.manifest_path})"
            raise InstallError(msg)
        manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        unit = manifest.get("enabled")
        if unit:
            self.run(["systemctl", "disable", "--now", unit], check=False)
            link = self.path(f"{WANTS}/{unit}")
            if link.is_symlink():
                link.unlink()
        kept = []
        for relative, digest in sorted(manifest.get("files", {}).items()):
            target = self.path(relative)
            if relative == f"{STATE}/{self.node}.json" or not target.is_file():
                continue
            if relative.endswith(UNIT.name) and self._other_instances():
                continue   # another room's node on this Pi still uses the template
            if sha256(target.read_bytes()) != digest:
                kept.append(f"/{relative}")
                continue
            target.unlink()
        self.run(["systemctl", "daemon-reload"], check=False)
        self.run(["systemctl", "restart", "systemd-timesyncd"], check=False)
        config = self.path(BOOT_CONFIG)
        if config.is_file() and BEGIN in config.read_text(encoding="utf-8"):
            config.write_text(_without_block(config.read_text(encoding="utf-8")), encoding="utf-8")
        if "cmdline_orig" in manifest:
            self.path(BOOT_CMDLINE).write_text(manifest["cmdline_orig"], encoding="utf-8")
        shutil.rmtree(self.path(VENV), ignore_errors=True)
        if manifest.get("user_created") or self.runner is None:
            self.run(["userdel", USER], check=False)
        self.manifest_path.unlink()
        for relative in (STATE, "var/lib/escape-apartment", ETC, "opt/escape-apartment",
                         "etc/systemd/timesyncd.conf.d", WANTS):
            with contextlib.suppress(OSError):
                self.path(relative).rmdir()   # only when empty: nothing of anyone else's
        for path in kept:
            self.say(f"⚠ gardé (modifié depuis l'installation) : {path}")
        self.say(f"Nœud {self.node} désinstallé (les paquets Debian restent ; redémarrez le Pi)")

    def _other_instances(self) -> bool:
        wants = self.path(WANTS)
        mine = f"escape-node@{self.node}.service"
        return wants.is_dir() and any(p.name.startswith("escape-node@") and p.name != mine
                                      for p in wants.iterdir())


def _without_block(text: str) -> str:
    if BEGIN not in text:
        return text
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END + "\n") if END + "\n" in rest else rest.partition(END)
    return head + tail


def source_hash(source: Path) -> str:
    """What the checkout holds (its package files): the venv is installed again when it changes."""
    digest = hashlib.sha256()
    for path in sorted([source / "pyproject.toml", *(p for package in
                        ("config", "nodes", "props", "protocol", "controller", "dashboard")
                        for p in (source / package).rglob("*") if p.is_file()
                        and "__pycache__" not in p.parts)]):
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _system_runner(argv: list[str]) -> None:
    subprocess.run(argv, check=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sudo python3 nodes/install.py",
        description="Turn this Raspberry Pi into a room's node (idempotent; --undo takes it back).")
    parser.add_argument("--id", dest="node", required=True, help="the room's node id, as in the game file")
    parser.add_argument("--env", type=Path, help="its env file from `broker credentials` (install only)")
    parser.add_argument("--game", type=Path, default=GAME, help=f"the game file (default: {GAME})")
    parser.add_argument("--root", type=Path, default=None,
                        help="write under DIR instead of /, and run no system command (tests)")
    parser.add_argument("--undo", action="store_true", help="take away what the install wrote")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    root = args.root or Path("/")
    if args.root is None and os.geteuid() != 0:
        print("À lancer en root : sudo python3 nodes/install.py …", file=sys.stderr)
        return 2
    runner = None if args.root is not None else _system_runner
    try:
        if args.undo:
            Installer(args.node, root, runner=runner).undo()
            return 0
        if args.env is None:
            parser.error("--env is required to install")
        try:
            env_text = args.env.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"fichier d'environnement illisible : {exc}"
            raise InstallError(msg) from exc
        Installer(args.node, root, env_text=env_text, game=args.game.resolve(), runner=runner).install()
    except InstallError as exc:
        print(f"Installation refusée : {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
