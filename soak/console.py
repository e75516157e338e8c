"""The game master's side, over HTTP only: her orders, the rehearsal hands, and a poller
that reads ``/api/state`` and ``/api/health`` the way the console does.

Every order is logged with the monotonic time it was sent (:attr:`Console.orders`): the
invariants need to know which lock a game master's hand may have closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from soak.wire import strict_json


class Unavailable(RuntimeError):
    """The controller did not answer (down, restarting) within the time given."""


@dataclass
class Order:
    at: float
    method: str
    path: str
    body: Any
    status: int | None
    answer: Any = None


@dataclass
class Snapshot:
    at: float          # monotonic: when the answer came
    sent: float        # monotonic: when it was asked
    state: dict[str, Any]


@dataclass
class Console:
    """A logged-in game master's browser, reduced to HTTP."""

    url: str
    password: str
    orders: list[Order] = field(default_factory=list)
    logins: int = 0

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=10.0,
                                 headers={"Content-Type": "application/json"})
        self.lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def login(self) -> None:
        answer = self.http.post("/api/login", json={"password": self.password})
        answer.raise_for_status()
        self.logins += 1

    def request(self, method: str, path: str, body: Any = None, *, log: bool = True,
                timeout: float = 10.0) -> httpx.Response:
        """One request; logs in again on a 401 (a restarted controller, a stepped clock)."""
        with self.lock:
            sent = time.monotonic()
            for attempt in range(2):
                answer = self.http.request(method, path, json=body, timeout=timeout)
                if answer.status_code != 401 or attempt:
                    break
                self.login()
            if log:
                try:
                    parsed = answer.json()
                except ValueError:
                    parsed = answer.text
                self.orders.append(Order(sent, method, path, body, answer.status_code, parsed))
            return answer

    def order(self, path: str, body: Any = None, *, method: str = "POST", within: float = 90.0,
              accept: Callable[[httpx.Response], bool] | None = None) -> httpx.Response:
        """A game master's order, tried again while the controller does not answer (she
        clicks again), or answers 5xx; the answer otherwise, whatever its status."""
        deadline = time.monotonic() + within
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                answer = self.request(method, path, body)
            except httpx.HTTPError as exc:
                last = exc
            else:
                if answer.status_code < 500 or (accept is not None and accept(answer)):
                    return answer
                last = RuntimeError(f"{answer.status_code} {answer.text[:200]}")
            time.sleep(0.5)
        msg = f"{method} {path}: no answer within {within} s ({last})"
        raise Unavailable(msg)

    def get(self, path: str, *, within: float = 60.0) -> Any:
        """GET a JSON document (strict JSON), tried again while the controller is away."""
        deadline = time.monotonic() + within
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                answer = self.request("GET", path, log=False)
                if answer.status_code == 200:
                    return strict_json(answer.text)
                last = RuntimeError(f"{answer.status_code} {answer.text[:200]}")
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.5)
        msg = f"GET {path}: no answer within {within} s ({last})"
        raise Unavailable(msg)

    def text(self, path: str, *, within: float = 60.0) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                answer = self.request("GET", path, log=False)
                if answer.status_code == 200:
                    return answer.text
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        msg = f"GET {path}: no answer within {within} s"
        raise Unavailable(msg)


class Poller:
    """Reads ``/api/state`` every *period* s (and ``/api/health`` every other time) in a
    thread of its own; keeps the latest and hands every answer to *on_state*."""

    def __init__(self, url: str, password: str, *, period: float = 0.5,
                 on_state: Callable[[Snapshot], None] | None = None,
                 on_invalid: Callable[[str, str], None] | None = None) -> None:
        self.console = Console(url, password)
        self.period = period
        self.on_state = on_state
        self.on_invalid = on_invalid
        self.latest: Snapshot | None = None
        self.health: tuple[float, int, dict[str, Any]] | None = None
        self.polls = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.console.close()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            self.poll_once(health=n % 2 == 0)
            self._stop.wait(self.period)

    def poll_once(self, *, health: bool = True) -> Snapshot | None:
        sent = time.monotonic()
        try:
            answer = self.console.request("GET", "/api/state", log=False, timeout=5)
        except httpx.HTTPError:
            self.failures += 1
            return None
        if answer.status_code != 200:
            self.failures += 1
            return None
        self.polls += 1
        try:
            state = strict_json(answer.text)
        except ValueError as exc:
            if self.on_invalid is not None:
                self.on_invalid("/api/state", f"{exc}: {answer.text[:300]}")
            return None
        snap = Snapshot(time.monotonic(), sent, state)
        self.latest = snap
        if self.on_state is not None:
            self.on_state(snap)
        if health:
            try:
                h = self.console.request("GET", "/api/health", log=False, timeout=5)
                self.health = (time.monotonic(), h.status_code, strict_json(h.text))
            except (httpx.HTTPError, ValueError):
                pass
        return snap

    def fresh(self, *, after: float, within: float = 30.0) -> Snapshot:
        """A snapshot asked for after *after* (monotonic)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            snap = self.latest
            if snap is not None and snap.sent >= after:
                return snap
            time.sleep(0.05)
        msg = f"no answer from /api/state within {within} s"
        raise Unavailable(msg)
