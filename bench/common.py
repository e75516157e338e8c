"""What every bench of the suite shares: child processes, brokers, statistics, /proc.

Every process a bench starts is a :class:`Proc`: it speaks JSON lines on stdin/stdout,
is waited on with a timeout, and is killed in ``finally`` (and the bench runners exit on
their own when their stdin closes, so nothing outlives an interrupted run). Only
127.0.0.1 is ever used.

Timestamps that cross processes are ``time.monotonic_ns()``: on Linux CLOCK_MONOTONIC is
one clock for the whole machine, so a time taken in node A's process and one taken in
node B's process can be subtracted.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import math
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


class BenchError(RuntimeError):
    """A bench could not run (a process died, a wait timed out)."""


# -- statistics -------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (p in 0..100)."""
    if not sorted_values:
        return math.nan
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return float(sorted_values[min(k, len(sorted_values) - 1)])


def summarize_ns(samples_ns: Sequence[int]) -> dict[str, Any]:
    """n, min, p50, p90, p99, max and mean of durations in ns, given in ms."""
    xs = sorted(samples_ns)
    if not xs:
        return {"n": 0}
    ms = 1e-6
    return {
        "n": len(xs),
        "min_ms": round(xs[0] * ms, 4),
        "p50_ms": round(percentile(xs, 50) * ms, 4),
        "p90_ms": round(percentile(xs, 90) * ms, 4),
        "p99_ms": round(percentile(xs, 99) * ms, 4),
        "max_ms": round(xs[-1] * ms, 4),
        "mean_ms": round(sum(xs) / len(xs) * ms, 4),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b rounded, or None when either is missing or b is 0."""
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)


# -- child processes --------------------------------------------------------------------
def python_argv(module: str, *args: str) -> list[str]:
    """``python -m <module> args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("GPIOZERO_PIN_FACTORY", None)
    env.update(extra or {})
    return env


def _maybe_profiled(name: str, argv: list[str], workdir: Path) -> list[str]:
    """Run *argv* under py-spy when ``BENCH_PYSPY`` names it and ``BENCH_PROFILE`` matches.

    ``BENCH_PROFILE`` is a comma-separated list of process name prefixes
    (``tp-controller,e2e-node_b``); the raw flame graph lands beside the process's log.
    """
    spy = os.environ.get("BENCH_PYSPY")
    wanted = [p for p in os.environ.get("BENCH_PROFILE", "").split(",") if p]
    if not spy or not any(name.startswith(p) for p in wanted):
        return argv
    out = workdir / f"{name}.pyspy.txt"
    return [spy, "record", "--format", "raw", "--rate", "250", "--threads", "--output", str(out),
            "--", *argv]


class Proc:
    """A child process: JSON lines in and out, stderr to a log file, always killed.

    Each JSON line the child writes must be an object with a ``kind``; :meth:`expect`
    waits (with a timeout) for the next one of a kind. Lines that are not JSON are kept
    in :attr:`noise` (for error messages).
    """

    def __init__(self, name: str, argv: Sequence[str], *, workdir: Path,
                 env: dict[str, str] | None = None, stops_on_eof: bool = True) -> None:
        self.name = name
        #: a bench runner exits when its stdin closes; other programs get SIGTERM at once
        self.stops_on_eof = stops_on_eof
        self.argv = _maybe_profiled(name, list(argv), workdir)
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self._queues: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._queues_lock = threading.Lock()
        self.noise: list[str] = []
        self.ready_pid: int | None = None
        try:
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                cwd=ROOT, env=child_env(env),
            )
        except BaseException:
            self._log.close()
            raise
        self._reader = threading.Thread(target=self._read, name=f"bench-{name}-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """The child's pid (the Python process's own, as it said when ready, if profiled)."""
        return self.ready_pid or self.popen.pid

    def _queue(self, kind: str) -> queue.Queue[dict[str, Any]]:
        with self._queues_lock:
            return self._queues.setdefault(kind, queue.Queue())

    def _read(self) -> None:
        stdout = self.popen.stdout
        assert stdout is not None
        for raw in stdout:
            try:
                msg = json.loads(raw)
            except json.JSONDecodeError:
                self.noise.append(raw.decode(errors="replace").rstrip())
                del self.noise[:-50]
                continue
            if isinstance(msg, dict):
                if msg.get("kind") == "ready" and isinstance(msg.get("pid"), int):
                    self.ready_pid = msg["pid"]
                self._queue(str(msg.get("kind"))).put(msg)
        self._queue("__eof__").put({"kind": "__eof__"})

    def send(self, **message: Any) -> None:
        stdin = self.popen.stdin
        if stdin is None or self.popen.poll() is not None:
            msg = f"{self.name} is not running (exit code {self.popen.returncode}); {self.tail()}"
            raise BenchError(msg)
        stdin.write(json.dumps(message).encode() + b"\n")
        stdin.flush()

    def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        """The next message of *kind*; raise :class:`BenchError` after *timeout*."""
        q = self._queue(kind)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = f"{self.name}: no {kind!r} message within {timeout} s; {self.tail()}"
                raise BenchError(msg)
            try:
                return q.get(timeout=min(remaining, 0.25))
            except queue.Empty:
                if self.popen.poll() is not None and q.empty():
                    msg = (f"{self.name} exited with code {self.popen.returncode} while we "
                           f"waited for {kind!r}; {self.tail()}")
                    raise BenchError(msg) from None

    def drain(self, kind: str) -> list[dict[str, Any]]:
        """Every message of *kind* received so far (and not yet expected)."""
        q, out = self._queue(kind), []
        while True:
            try:
                out.append(q.get_nowait())
            except queue.Empty:
                return out

    def request(self, kind: str, timeout: float, **message: Any) -> dict[str, Any]:
        """Send *message*, wait for the reply of *kind*."""
        self.send(**message)
        return self.expect(kind, timeout)

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        last = "\n".join(text.splitlines()[-lines:])
        return f"log {self.log_path}:\n{last}" if last else f"(empty log {self.log_path})"

    def signal(self, sig: signal.Signals) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def ask_to_stop(self) -> None:
        """Close stdin (a runner exits on EOF) or send SIGTERM; do not wait."""
        if self.popen.poll() is not None:
            return
        if self.stops_on_eof:
            with contextlib.suppress(OSError, ValueError):
                if self.popen.stdin is not None:
                    self.popen.stdin.close()
        else:
            self.popen.terminate()

    def stop(self, timeout: float = 5.0) -> None:
        """Close stdin (runners exit on EOF), then SIGTERM, then SIGKILL. Idempotent."""
        try:
            if self.popen.poll() is None:
                with contextlib.suppress(OSError, ValueError):
                    if self.popen.stdin is not None:
                        self.popen.stdin.close()
                try:
                    if not self.stops_on_eof:
                        raise subprocess.TimeoutExpired(self.argv, 0)
                    self.popen.wait(timeout=timeout / 2)
                except subprocess.TimeoutExpired:
                    self.popen.terminate()
                    try:
                        self.popen.wait(timeout=timeout / 2)
                    except subprocess.TimeoutExpired:
                        self.popen.kill()
                        self.popen.wait(timeout=timeout)
        finally:
            with contextlib.suppress(OSError, ValueError):
                if self.popen.stdin is not None:
                    self.popen.stdin.close()
            self._log.close()

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_all(procs: Sequence[Proc]) -> None:
    """Ask every process to stop at once, then wait for (or kill) each."""
    for proc in procs:
        proc.ask_to_stop()
    for proc in procs:
        proc.stop()


def start_all(stack: contextlib.ExitStack, procs: Sequence[Proc], *, timeout: float = 20.0,
              kind: str = "ready") -> list[dict[str, Any]]:
    """Register *procs* for stopping (together), then wait until each says *kind*."""
    stack.callback(stop_all, list(procs))
    return [proc.expect(kind, timeout) for proc in procs]


def controller_proc(name: str, *, game: Path, broker: Broker, workdir: Path,
                    extra: Sequence[str] = ()) -> tuple[Proc, int]:
    """A ``bench._controller`` process on a free port, with a fresh session store."""
    port = free_port()
    data = workdir / f"{name}-data"
    data.mkdir(parents=True, exist_ok=True)
    for old in data.glob("controller.db*"):
        old.unlink()
    proc = Proc(name, python_argv("bench._controller", "--game", str(game), "--broker",
                                  broker.address, "--port", str(port), "--data-dir", str(data),
                                  *extra), workdir=workdir, env={"ESCAPE_DATA_DIR": str(data)})
    return proc, port


def pin_groups(groups: dict[str, Sequence[int]]) -> dict[str, Any] | None:
    """Pin each group of processes (every thread of each) to CPUs of its own: the last
    group gets the last CPU, the one before the one before, …; the first group gets what
    is left. Linux only; None if there are fewer CPUs than groups."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    names = list(groups)
    if len(cpus) < len(names):
        return None
    tail = len(names) - 1
    where = {name: ({cpus[len(cpus) - tail + i - 1]} if i else set(cpus[:len(cpus) - tail]))
             for i, name in enumerate(names)}
    for name, pids in groups.items():
        for pid in pids:
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task.name), where[name])
    return {name: sorted(cpu) for name, cpu in where.items()}


# -- /proc ------------------------------------------------------------------------------
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU seconds used so far, resident memory now and at its peak, and when."""

    t: float
    cpu_s: float
    rss_kb: int
    hwm_kb: int
    threads: int


def proc_sample(pid: int) -> ProcSample:
    """Read /proc/<pid>/stat and /proc/<pid>/status (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat[stat.rindex(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime, all threads
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            values[key] = int(rest.split()[0])
    return ProcSample(time.monotonic(), cpu, values.get("VmRSS", 0), values.get("VmHWM", 0),
                      values.get("Threads", 0))


def cpu_percent(before: ProcSample, after: ProcSample) -> float:
    """CPU used between two samples, in % of one core."""
    wall = after.t - before.t
    return round(100 * (after.cpu_s - before.cpu_s) / wall, 2) if wall > 0 else math.nan


# -- network ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Http:
    """A tiny keep-alive JSON client for the controller's API (stdlib only)."""

    def __init__(self, port: int, *, timeout: float = 5.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            try:
                self._conn.request(method, path, body=data, headers=headers)
                response = self._conn.getresponse()
                text = response.read()
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
                continue
            if response.status >= 400:
                msg = f"{method} {path}: HTTP {response.status}: {text[:300]!r}"
                raise BenchError(msg)
            return json.loads(text) if text else None
        raise AssertionError  # pragma: no cover

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        # NOTE: the app wants a JSON body on every state-changing request.
        return self.call("POST", path, {} if body is None else body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def wait_until(predicate: Any, *, timeout: float, what: str, interval: float = 0.005) -> None:
    """Poll *predicate* until true; raise :class:`BenchError` after *timeout*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    msg = f"timed out after {timeout} s waiting for {what}"
    raise BenchError(msg)


# -- brokers ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Broker:
    """A running broker: what it is, where it listens, and its process (for restarts)."""

    kind: str           # "mosquitto", "mosquitto-naive", "amqtt"
    port: int
    handle: Any = None  # tests.support.mosquitto.Mosquitto or Proc

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        process = getattr(self.handle, "process", None) or getattr(self.handle, "popen", None)
        return None if process is None else int(process.pid)


def mosquitto_available() -> bool:
    from tests.support.mosquitto import mosquitto_available as available

    return available()


#: the throughput lines of the shipped broker config, which the bench's brokers use too
TUNING_DIRECTIVES = ("max_inflight_messages", "max_queued_messages", "max_queued_bytes")


def shipped_tuning() -> list[str]:
    """The ``max_inflight_messages`` / ``max_queued_messages`` lines of
    ``config/mosquitto/mosquitto.conf`` (the bench measures the shipped tuning)."""
    conf = ROOT / "config" / "mosquitto" / "mosquitto.conf"
    return [line.strip() for line in conf.read_text(encoding="utf-8").splitlines()
            if line.split(" ", 1)[0] in TUNING_DIRECTIVES]


@contextlib.contextmanager
def mosquitto(workdir: Path, *, nodelay: bool = True, persistence: bool = False,
              name: str = "mosquitto", options: Sequence[str] = ()) -> Iterator[Broker]:
    """Mosquitto on a free port, ``set_tcp_nodelay true`` unless *nodelay* is False.

    *options* are extra lines for its config (``max_inflight_messages 100``).
    """
    from tests.support.mosquitto import Mosquitto, plain_config

    directory = workdir / name
    data = directory / "data" if persistence else None

    def render(port: int) -> str:
        text = plain_config(port=port, host=HOST, persistence_dir=data)
        if not nodelay:
            assert "set_tcp_nodelay true\n" in text
            text = text.replace("set_tcp_nodelay true\n", "")
        # NOTE: per-connection log lines cost the broker a write each; keep the defaults
        # of a production log level.
        text = text.replace("connection_messages true\n", "connection_messages false\n")
        return text + "".join(f"{line}\n" for line in (*(shipped_tuning() if nodelay else ()), *options))

    broker = Mosquitto(workdir=directory, render=render, host=HOST)
    broker.start()
    try:
        yield Broker("mosquitto" if nodelay else "mosquitto-naive", broker.port, broker)
    finally:
        broker.kill()


@contextlib.contextmanager
def amqtt(workdir: Path) -> Iterator[Broker]:
    """The embedded amqtt broker (controller/broker.py), in a process of its own."""
    port = free_port()
    proc = Proc("amqtt", python_argv("bench._amqtt", "--port", str(port)), workdir=workdir)
    try:
        proc.expect("ready", 20)
        yield Broker("amqtt", port, proc)
    finally:
        proc.stop()


@contextlib.contextmanager
def broker(kind: str, workdir: Path, *, options: Sequence[str] = ()) -> Iterator[Broker]:
    if kind == "amqtt":
        with amqtt(workdir) as b:
            yield b
    elif kind == "mosquitto":
        with mosquitto(workdir, options=options) as b:
            yield b
    else:
        msg = f"unknown broker kind {kind!r}"
        raise ValueError(msg)


@contextlib.contextmanager
def workdir_for(prefix: str) -> Iterator[Path]:
    """A scratch directory for logs and game files: ``$BENCH_WORKDIR`` (kept) or a temporary one."""
    kept = os.environ.get("BENCH_WORKDIR")
    if kept:
        path = Path(kept) / prefix.strip("-")
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


# -- game files -------------------------------------------------------------------------
def write_game(workdir: Path, name: str, text: str) -> Path:
    """Write a bench game file and check that it loads; return its path."""
    from config.loader import parse_game

    parse_game(text)  # fail here, not in five child processes
    path = workdir / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def machine_busy_percent(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """How busy every CPU of the machine was between two :func:`cpu_times`, in %."""
    total = after[1] - before[1]
    return round(100 * (after[0] - before[0]) / total, 1) if total > 0 else None


def own_cpu_s() -> float:
    """CPU seconds used by this process and its children that have been waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def foreign_cpu_percent(before: tuple[int, int], after: tuple[int, int], own_s: float,
                        wall_s: float) -> float | None:
    """CPU other programs used meanwhile, in % of one core: the machine's busy time minus
    this bench's own (and its reaped children's). Above a few %, latencies are noisy."""
    if wall_s <= 0:
        return None
    busy_s = (after[0] - before[0]) / _TICKS
    return round(max(0.0, 100 * (busy_s - own_s) / wall_s), 1)


def git_state() -> dict[str, Any]:
    """The commit measured, and whether the working tree had changes on top of it."""
    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def machine() -> dict[str, Any]:
    import platform

    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "machine": platform.machine()}
