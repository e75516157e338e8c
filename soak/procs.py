"""The apartment as real processes: Mosquitto, the controller and seven simulated rooms.

Set up the way docs/deploy.md does it: ``escape-apartment broker credentials`` writes every
secret, ``escape-apartment broker install`` lays out the shipped ``mosquitto.conf`` and ACL
for a broker started by hand (as root it runs as the ``mosquitto`` user), the controller
is ``escape-apartment controller`` in rehearsal mode (``ESCAPE_DEMO=1``) and each room is
``escape-apartment node --simulate`` with a data dir of its own, each reading its env file.

Every process runs under libfaketime with a clock file of its own (:class:`Clock`), its
offset 0 until a fault or the calendar steps it; its monotonic clock stays real. The
controller keeps its database on a small tmpfs (:class:`Tmpfs`) that a fault can fill.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: where Debian and Ubuntu put the preload library (package ``libfaketime``)
FAKETIME_LIBS = tuple(Path(p) for p in (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
))
#: the directory whose sitecustomize.py works around libfaketime's clock_nanosleep (below)
SLEEP_FIX_DIR = Path(__file__).resolve().parent / "sleepfix"


class StackError(RuntimeError):
    """A process of the apartment would not start, or a tool is missing."""


def faketime_library() -> Path | None:
    return next((p for p in FAKETIME_LIBS if p.exists()), None)


def mosquitto_executable() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for directory in ("/usr/sbin", "/usr/local/sbin"):
        candidate = Path(directory, "mosquitto")
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def console_script() -> list[str]:
    """``escape-apartment`` as installed beside this interpreter (as systemd runs it)."""
    script = Path(sys.executable).with_name("escape-apartment")
    return [str(script)] if script.exists() else [sys.executable, "-m", "controller.cli"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of an env file written by ``broker credentials``."""
    env: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip().strip("'\"")
    return env


# -- clocks -----------------------------------------------------------------------------
class Clock:
    """One machine's wall clock: an offset in seconds in a libfaketime timestamp file.

    With ``FAKETIME_NO_CACHE=1`` the process reads the file at every clock call, so a
    write steps its wall clock at once; ``FAKETIME_DONT_FAKE_MONOTONIC=1`` keeps its
    monotonic clock real. :attr:`base` is the calendar's offset (the date of the session),
    :attr:`fault` a fault's step on top of it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = 0
        self.fault = 0
        self._write()

    @property
    def offset(self) -> int:
        return self.base + self.fault

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{self.offset:+d}\n", encoding="ascii")
        tmp.replace(self.path)   # a reader never sees a half-written file

    def set(self, *, base: int | None = None, fault: int | None = None) -> None:
        if base is not None:
            self.base = base
        if fault is not None:
            self.fault = fault
        self._write()

    def env(self, library: Path) -> dict[str, str]:
        return {"LD_PRELOAD": str(library), "FAKETIME_TIMESTAMP_FILE": str(self.path),
                "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


# -- a small tmpfs ------------------------------------------------------------------------
class Tmpfs:
    """A tmpfs of *size_kb* on *path* (root only), and a file that fills it."""

    def __init__(self, path: Path, *, size_kb: int) -> None:
        self.path = path
        self.size_kb = size_kb
        self.mounted = False
        self.filler = path / "filler.bin"

    @staticmethod
    def possible() -> bool:
        return os.geteuid() == 0 and shutil.which("mount") is not None

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_kb}k,mode=0755", "tmpfs",
                        str(self.path)], check=True)
        self.mounted = True

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
            self.mounted = False

    def fill(self) -> int:
        """Write until the file system is full; return the bytes written."""
        written = 0
        chunk = b"\0" * 65536
        with self.filler.open("wb", buffering=0) as out:
            try:
                while True:
                    written += out.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        # the last partial pages too: a small write may still fit otherwise
        with self.filler.open("ab", buffering=0) as out, contextlib.suppress(OSError):
            while True:
                written += out.write(b"\0" * 512)
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def used_kb(self) -> int:
        stat = os.statvfs(self.path)
        return (stat.f_blocks - stat.f_bfree) * stat.f_frsize // 1024


# -- processes ----------------------------------------------------------------------------
@dataclass
class Exit:
    """A process that ended without the soak ending it."""

    name: str
    code: int | None
    at: float


class Proc:
    """One process of the apartment, restartable with the same command and environment."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log = log
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.expected_down = True
        #: monotonic: when it was last started, and since when it is down (None: up)
        self.started_at = 0.0
        self.down_since: float | None = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        if self.alive:
            msg = f"{self.name} is already running"
            raise StackError(msg)
        with self.log.open("ab") as out:
            out.write(f"\n==== soak: start #{self.starts + 1} of {self.name} ====\n".encode())
            out.flush()
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=self.cwd, start_new_session=True)
        self.starts += 1
        self.expected_down = False
        self.started_at = time.monotonic()
        self.down_since = None

    def kill(self) -> None:
        """``kill -9``: no goodbye, no last save."""
        self.expected_down = True
        self.down_since = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 8.0) -> None:
        self.expected_down = True
        self.down_since = time.monotonic()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def unexpected_exit(self) -> int | None:
        """The exit code when the process ended although nobody stopped it, else None."""
        if self.expected_down or self.process is None:
            return None
        return self.process.poll()


def _clean_environ() -> dict[str, str]:
    """This process's environment without any ESCAPE_* setting (each process gets its own)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("ESCAPE_", "FAKETIME")) and k != "LD_PRELOAD"}


class Stack:
    """Broker, controller and one simulated node per room, each under its own clock.

    *sleep_fix*: put :data:`SLEEP_FIX_DIR` on the Python processes' path. libfaketime
    0.9.10 with ``FAKETIME_DONT_FAKE_MONOTONIC=1`` makes ``clock_nanosleep`` fail with
    EINVAL, so every ``time.sleep`` of a faked Python process raises; the fix sends
    ``time.sleep`` to a monotonic wait instead (see ``soak/sleepfix/sitecustomize.py``).
    """

    NODE_KEEPALIVE = 5

    def __init__(self, *, workdir: Path, game_file: Path, node_ids: list[str],
                 tmpfs_kb: int = 24 * 1024, sleep_fix: bool = True) -> None:
        self.workdir = workdir
        self.game_file = game_file
        self.node_ids = node_ids
        self.sleep_fix = sleep_fix
        self.logs = workdir / "logs"
        self.secrets = workdir / "secrets"
        self.broker_dir = workdir / "broker"
        self.clock_dir = workdir / "clocks"
        self.data = workdir / "controller-data"
        self.tmpfs: Tmpfs | None = Tmpfs(self.data, size_kb=tmpfs_kb) if Tmpfs.possible() else None
        library = faketime_library()
        if library is None:
            msg = "libfaketime is not installed (Debian package faketime)"
            raise StackError(msg)
        self.faketime = library
        if mosquitto_executable() is None:
            msg = "mosquitto is not installed"
            raise StackError(msg)
        self.mqtt_port = free_port()
        self.http_port = free_port()
        self.clocks: dict[str, Clock] = {}
        self.procs: dict[str, Proc] = {}
        self.controller_env: dict[str, str] = {}

    # -- set up ----------------------------------------------------------------------
    def _cli(self, *args: str) -> None:
        done = subprocess.run([*console_script(), *args], capture_output=True, text=True,
                              env=_clean_environ(), check=False)
        if done.returncode != 0:
            msg = f"escape-apartment {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
            raise StackError(msg)

    def prepare(self) -> None:
        for directory in (self.logs, self.clock_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # the broker (run as the mosquitto user) must reach its files through these
        for directory in (self.workdir, *self.workdir.parents):
            if directory == Path("/"):
                break
            if os.geteuid() == 0 and directory.stat().st_mode & 0o001 == 0:
                msg = f"{directory} is closed to other users: the broker could not reach its files"
                raise StackError(msg)
        self._cli("broker", "credentials", "--config", str(self.game_file), "--out", str(self.secrets),
                  "--broker", f"127.0.0.1:{self.mqtt_port}")
        self._cli("broker", "install", "--secrets", str(self.secrets), "--dir", str(self.broker_dir),
                  "--port", str(self.mqtt_port))
        if self.tmpfs is not None:
            self.tmpfs.mount()
        else:
            self.data.mkdir(parents=True, exist_ok=True)
        self.controller_env = read_env_file(self.secrets / "controller.env")
        machines = ["broker", "controller", *self.node_ids]
        self.clocks = {m: Clock(self.clock_dir / f"{m}.clock") for m in machines}
        base = _clean_environ()
        mosquitto = [mosquitto_executable() or "mosquitto", "-c", str(self.broker_dir / "mosquitto.conf")]
        self.procs["broker"] = Proc(
            "broker", mosquitto,
            {**base, **self.clocks["broker"].env(self.faketime)}, self.logs / "broker.log",
            cwd=self.broker_dir)
        python_path = {"PYTHONPATH": str(SLEEP_FIX_DIR)} if self.sleep_fix else {}
        self.procs["controller"] = Proc(
            "controller",
            [*console_script(), "controller", "--config", str(self.game_file), "--broker",
             f"127.0.0.1:{self.mqtt_port}", "--host", "127.0.0.1", "--port", str(self.http_port)],
            {**base, **self.controller_env, "ESCAPE_DEMO": "1", "ESCAPE_DATA_DIR": str(self.data),
             **self.clocks["controller"].env(self.faketime), **python_path},
            self.logs / "controller.log", cwd=self.workdir)
        for node in self.node_ids:
            self.procs[node] = Proc(
                node,
                [*console_script(), "node", "--id", node, "--config", str(self.game_file), "--simulate",
                 "--data-dir", str(self.workdir / "nodes" / node)],
                {**base, **read_env_file(self.secrets / f"{node}.env"),
                 "ESCAPE_MQTT_KEEPALIVE": str(self.NODE_KEEPALIVE),
                 **self.clocks[node].env(self.faketime), **python_path},
                self.logs / f"{node}.log", cwd=self.workdir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def gm_password(self) -> str:
        return self.controller_env["ESCAPE_GM_PASSWORD"]

    @property
    def mqtt_login(self) -> tuple[str, str]:
        return self.controller_env["ESCAPE_MQTT_USERNAME"], self.controller_env["ESCAPE_MQTT_PASSWORD"]

    # -- the broker ------------------------------------------------------------------
    def broker_answers(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=0.5) as sock:
                # MQTT 3.1.1 CONNECT, anonymous: refused (5) by this broker, but answered
                sock.sendall(bytes.fromhex("101000044d5154540402000a0004736f616b"))
                return sock.recv(4)[:1] == b"\x20"
        except OSError:
            return False

    def start_broker(self, timeout: float = 15.0) -> None:
        self.procs["broker"].start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.procs["broker"].alive:
                msg = f"mosquitto exited at start: see {self.procs['broker'].log}"
                raise StackError(msg)
            if self.broker_answers():
                return
            time.sleep(0.05)
        msg = f"mosquitto did not answer within {timeout} s"
        raise StackError(msg)

    # -- everything ------------------------------------------------------------------
    def broker_saves(self) -> None:
        """Mosquitto writes its save now (SIGUSR1): what its autosave does every 60 s."""
        broker = self.procs["broker"].process
        if broker is not None and broker.poll() is None:
            broker.send_signal(signal.SIGUSR1)

    def start_all(self) -> None:
        self.start_broker()
        self.procs["controller"].start()
        for node in self.node_ids:
            self.procs[node].start()

    def stop_all(self) -> None:
        for name in [*self.node_ids, "controller", "broker"]:
            proc = self.procs.get(name)
            if proc is not None:
                proc.stop()
        if self.tmpfs is not None:
            self.tmpfs.free()
            self.tmpfs.unmount()

    def unexpected_exits(self) -> Iterator[tuple[str, int]]:
        for name, proc in self.procs.items():
            code = proc.unexpected_exit()
            if code is not None:
                yield name, code

    def set_calendar(self, offset_s: int) -> None:
        """Every machine's clock to the same offset (the session's date), in one sweep."""
        for clock in self.clocks.values():
            clock.set(base=offset_s)
