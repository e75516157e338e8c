"""How many wrong passwords (or screen tokens) a client address may try: the login's and
the screens' rate limit (``controller/api/auth.py``)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any

#: wrong passwords (or screen tokens) allowed per client address within FAILURE_WINDOW_S
MAX_FAILURES = 5
FAILURE_WINDOW_S = 60.0


class FailureLimiter:
    """Counts failed attempts per client address: more than *limit* within *window_s*
    seconds and that address is refused (``retry_after`` > 0) until the oldest failure is
    *window_s* old. Other addresses are not affected. Memory stays bounded."""

    MAX_KEYS = 10_000

    def __init__(self, limit: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = self.clock() - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def retry_after(self, key: str) -> int:
        """Seconds before *key* may try again (0: it may now)."""
        failures = self._recent(key)
        if failures is None or len(failures) < self.limit:
            return 0
        return max(1, int(failures[0] + self.window_s - self.clock() + 0.999))

    def fail(self, key: str) -> None:
        if len(self._failures) >= self.MAX_KEYS:
            for old in list(self._failures):
                self._recent(old)
            if len(self._failures) >= self.MAX_KEYS:   # still full: forget the oldest address
                self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(key, deque(maxlen=self.limit)).append(self.clock())

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


def client_address(scope: MutableMapping[str, Any]) -> str:
    """The peer's address (behind a reverse proxy: run uvicorn with ``--proxy-headers``)."""
    client = scope.get("client")
    return str(client[0]) if client else "?"
