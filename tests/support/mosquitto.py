"""A real Mosquitto broker for tests: start, stop, restart, kill — no pytest fixtures here.

Two kinds of broker:

- :meth:`Mosquitto.plain` — anonymous, one listener on 127.0.0.1, ``set_tcp_nodelay true``:
  the broker the integration tests run the system over;
- :meth:`Mosquitto.production` — the shipped ``config/mosquitto/mosquitto.conf`` and
  ``acl`` (the files docker-compose.yml mounts), with only the listener port, the file
  paths and the data directory rewritten (see :func:`production_config`).

Typical use, from a fixture in ``tests/conftest.py``::

    require_or_skip_mosquitto()              # skip, or fail under ESCAPE_REQUIRE_MOSQUITTO=1
    with Mosquitto.plain(workdir=tmp_path) as broker:
        client.connect(broker.host, broker.port)
        ...
        broker.restart()                     # same port, same persistence directory
        broker.kill()                        # SIGKILL: no clean shutdown, no final save

Start-up is judged ready when the broker answers an MQTT CONNECT with a CONNACK (accepted
or refused alike): by then its listener is open *and* its password and ACL files are
loaded — a bare TCP connect can succeed before Mosquitto has loaded them, or just before
it exits on a bad file.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from config.broker import MOSQUITTO_ACL, MOSQUITTO_CONF, CredentialsError, render_mosquitto_conf

#: set to 1 (CI does) to turn "mosquitto is not installed" from a skip into a failure
REQUIRE_ENV = "ESCAPE_REQUIRE_MOSQUITTO"
#: sbin directories are often not on a non-root user's PATH
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")

ConfigRenderer = Callable[[int], str]


class MosquittoError(RuntimeError):
    """The broker did not start, or died, or would not stop."""


# -- discovery ----------------------------------------------------------------------------
def mosquitto_executable() -> str | None:
    """Path of the ``mosquitto`` binary, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for directory in _SBIN_DIRS:
        candidate = Path(directory, "mosquitto")
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def mosquitto_available() -> bool:
    """True when a ``mosquitto`` binary can be run here."""
    return mosquitto_executable() is not None


def mosquitto_required() -> bool:
    """True when the environment demands the Mosquitto tests run (``ESCAPE_REQUIRE_MOSQUITTO``)."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def require_or_skip_mosquitto() -> str:
    """Return the mosquitto binary; else skip the test, or fail it when it is required.

    The rule of this project: tests over Mosquitto skip where it is not installed, except
    where ``ESCAPE_REQUIRE_MOSQUITTO=1`` (CI), where a missing broker is a failure — so CI
    can never go green by silently skipping them.
    """
    import pytest

    executable = mosquitto_executable()
    if executable is not None:
        return executable
    if mosquitto_required():
        pytest.fail(f"mosquitto is not installed but {REQUIRE_ENV}=1 requires it")
    pytest.skip(f"mosquitto is not installed (set {REQUIRE_ENV}=1 to make this a failure)")


# -- configuration ------------------------------------------------------------------------
def plain_config(*, port: int, host: str = "127.0.0.1",
                 persistence_dir: Path | None = None) -> str:
    """A minimal anonymous broker config: one listener, TCP_NODELAY, optional persistence."""
    lines = [
        "per_listener_settings false",
        f"listener {port} {host}",
        "allow_anonymous true",
        "set_tcp_nodelay true",
        "log_dest stdout",
        "connection_messages true",
    ]
    if persistence_dir is not None:
        lines += ["persistence true", f"persistence_location {persistence_dir}/"]
    lines += _stay_root()
    return "\n".join(lines) + "\n"


def _stay_root() -> list[str]:
    """``user root`` when the tests run as root, else nothing.

    Started as root, Mosquitto 2 switches to the ``mosquitto`` user *before* it reads the
    password and ACL files and writes its persistence file, which would then be out of
    reach in a root-owned temporary directory. Test containers and CI often run as root;
    in production the broker container runs as uid 1883 from the start, and a bare broker
    gets its files from ``escape-apartment broker install`` (tests/deploy/test_deploy_doc.py
    runs that as root, without this).
    """
    return ["user root"] if os.geteuid() == 0 else []


def production_config(*, port: int, password_file: Path, persistence_dir: Path,
                      host: str = "127.0.0.1", acl_file: Path = MOSQUITTO_ACL,
                      source: Path = MOSQUITTO_CONF) -> str:
    """The shipped ``mosquitto.conf`` with only its port, file paths and data dir rewritten
    (:func:`config.broker.render_mosquitto_conf`, the one ``broker install`` writes)."""
    try:
        text = render_mosquitto_conf(port=port, host=host, password_file=password_file,
                                     acl_file=acl_file, persistence_dir=persistence_dir, source=source)
    except CredentialsError as exc:
        raise MosquittoError(str(exc)) from exc
    return text + "".join(line + "\n" for line in _stay_root())


# -- the broker process -------------------------------------------------------------------
#: listening ports are taken below Linux's ephemeral range (32768–60999): a broker restarted
#: on its port must not find it taken by a client's outgoing connection meanwhile (the
#: nodes and the controller reconnect every 0.5–1 s while it is down)
LISTEN_PORTS = range(20_000, 32_000)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago, outside the ephemeral range."""
    rng = random.Random()
    for _ in range(200):
        port = rng.choice(LISTEN_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    msg = f"no free port in {LISTEN_PORTS}"
    raise OSError(msg)


def _encode_length(n: int) -> bytes:
    # MQTT "remaining length": 7 bits per byte, high bit set while more bytes follow
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def connect_packet(*, client_id: str, username: str | None = None, password: str | None = None,
                   will_topic: str | None = None, will_payload: bytes = b"", will_qos: int = 0,
                   will_retain: bool = False, keepalive: int = 10) -> bytes:
    """A raw MQTT 3.1.1 CONNECT packet (clean session).

    For what a client library makes awkward on purpose: a client that vanishes without a
    DISCONNECT (write this, read the CONNACK, close the socket: the broker publishes the
    will), or a probe that must not depend on paho.
    """
    flags = 0x02  # clean session
    payload = _string(client_id.encode())
    if will_topic is not None:
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += _string(will_topic.encode()) + _string(will_payload)
    if username is not None:
        flags |= 0x80
        payload += _string(username.encode())
        if password is not None:
            flags |= 0x40
            payload += _string(password.encode())
    variable = _string(b"MQTT") + bytes([0x04, flags]) + keepalive.to_bytes(2, "big")
    body = variable + payload
    return b"\x10" + _encode_length(len(body)) + body


def read_connack(sock: socket.socket) -> int | None:
    """Read a CONNACK from *sock*; return its return code (0 = accepted), None if not one."""
    data = b""
    while len(data) < 4:
        chunk = sock.recv(4 - len(data))
        if not chunk:
            return None
        data += chunk
    return data[3] if data[0] == 0x20 else None


def connack_code(host: str, port: int, *, timeout: float = 1.0) -> int | None:
    """Send an anonymous MQTT CONNECT and return the CONNACK return code, or None.

    0 means accepted, 5 "not authorised"; None means no broker answered (yet).
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(connect_packet(client_id="escape-test-probe"))
            code = read_connack(sock)
            if code == 0:
                sock.sendall(b"\xe0\x00")  # DISCONNECT, so no will and no warning in the log
            return code
    except OSError:
        return None


class Mosquitto:
    """One ``mosquitto`` process on 127.0.0.1, in a working directory of its own.

    *workdir* receives ``mosquitto.conf`` (as rendered), ``mosquitto.log`` (its output) and
    ``data/`` (persistence). *render* turns the port into the config text; use
    :meth:`plain` or :meth:`production` rather than calling this directly.
    """

    def __init__(self, *, workdir: Path, render: ConfigRenderer, host: str = "127.0.0.1",
                 port: int | None = None, executable: str | None = None,
                 start_timeout: float = 10.0) -> None:
        self.workdir = Path(workdir)
        self.host = host
        self._port = port
        self._render = render
        self._executable = executable
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.data_dir = self.workdir / "data"
        self.config_file = self.workdir / "mosquitto.conf"
        self.log_file = self.workdir / "mosquitto.log"

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def plain(cls, *, workdir: Path, persistence: bool = False, port: int | None = None,
              host: str = "127.0.0.1") -> Mosquitto:
        """An anonymous broker (the one the integration tests use)."""
        data = Path(workdir) / "data" if persistence else None
        return cls(workdir=workdir, host=host, port=port,
                   render=lambda p: plain_config(port=p, host=host, persistence_dir=data))

    @classmethod
    def production(cls, *, workdir: Path, password_file: Path, acl_file: Path = MOSQUITTO_ACL,
                   source: Path = MOSQUITTO_CONF, port: int | None = None,
                   host: str = "127.0.0.1") -> Mosquitto:
        """The shipped production config and ACL, with *password_file* as its users."""
        data = Path(workdir) / "data"
        return cls(workdir=workdir, host=host, port=port, render=lambda p: production_config(
            port=p, host=host, password_file=Path(password_file), persistence_dir=data,
            acl_file=Path(acl_file), source=Path(source)))

    # -- state --------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            msg = "the broker has not been started: no port yet"
            raise MosquittoError(msg)
        return self._port

    @property
    def address(self) -> str:
        """``host:port``, as ``BrokerAddress.parse`` and ``--broker`` take it."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        """Everything the broker logged so far (for assertion messages)."""
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Mosquitto:
        """Start the broker and wait until it answers MQTT; return self.

        The first start picks a free port (and tries another if that one was taken in the
        meantime); later starts reuse it, so clients reconnect to the same address.
        """
        if self.running:
            msg = "the broker is already running"
            raise MosquittoError(msg)
        executable = self._executable or mosquitto_executable()
        if executable is None:
            msg = "mosquitto is not installed"
            raise MosquittoError(msg)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        attempts = 3 if self._port is None else 1
        for attempt in range(attempts):
            port = self._port if self._port is not None else free_port(self.host)
            try:
                self._launch(executable, port)
            except MosquittoError:
                if attempt + 1 == attempts or "Address already in use" not in self.log_text():
                    raise
                continue
            self._port = port
            return self
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _launch(self, executable: str, port: int) -> None:
        self.config_file.write_text(self._render(port), encoding="utf-8")
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [executable, "-c", str(self.config_file)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = (f"mosquitto exited with code {self.process.returncode} at start:\n"
                       f"{self.log_text()[-2000:]}")
                self.process = None
                raise MosquittoError(msg)
            if connack_code(self.host, port, timeout=0.5) is not None:
                return
            time.sleep(0.02)
        self._terminate(signal.SIGKILL)
        msg = f"mosquitto did not answer on {self.host}:{port} within {self.start_timeout} s"
        raise MosquittoError(msg)

    def stop(self, *, timeout: float = 5.0) -> None:
        """Clean shutdown (SIGTERM): Mosquitto saves its persistence file. Idempotent."""
        self._terminate(signal.SIGTERM, timeout=timeout)

    def kill(self) -> None:
        """Sudden death (SIGKILL): no last save, clients see the socket drop. Idempotent."""
        self._terminate(signal.SIGKILL)

    def restart(self) -> Mosquitto:
        """Stop cleanly and start again on the same port with the same data directory."""
        self.stop()
        return self.start()

    def _terminate(self, sig: signal.Signals, *, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
            msg = f"mosquitto ignored {sig.name} for {timeout} s and was killed"
            raise MosquittoError(msg) from None

    # -- context manager ----------------------------------------------------------------
    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self._port is not None else "no port yet"
        return f"<Mosquitto {where} {'running' if self.running else 'stopped'}>"
