"""Pushes the controller's state to every connected WebSocket (pages and tools).

Each client has a sender task of its own: :meth:`Hub.broadcast` only hands the frame to
every sender and wakes it. So a broadcast creates no task (it used to make two per client
and gather them), a slow or dead screen never holds up the others, and a screen that falls
behind skips straight to the newest frame — frames are whole snapshots, so the newest is
all it needs (see docs/performance.md, "Dashboard push").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import WebSocket

log = logging.getLogger(__name__)

#: a client that takes longer than this to accept one frame is dropped
SEND_TIMEOUT_S = 2.0


class _Sender:
    """The newest frame not yet sent to one client, and the task that sends it."""

    __slots__ = ("pending", "task", "wake")

    def __init__(self) -> None:
        self.pending: str | None = None
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class Hub:
    """The set of live WebSockets; :meth:`broadcast` sends one JSON text to all."""

    def __init__(self) -> None:
        self.clients: set[WebSocket] = set()
        self._senders: dict[WebSocket, _Sender] = {}

    def add(self, ws: WebSocket) -> None:
        """Register *ws* (on the event loop); its sender starts waiting for frames."""
        self.clients.add(ws)
        sender = _Sender()
        self._senders[ws] = sender
        sender.task = asyncio.get_running_loop().create_task(self._send_loop(ws, sender),
                                                             name="websocket-sender")

    def discard(self, ws: WebSocket) -> None:
        """Forget *ws* and stop its sender; safe to call twice."""
        self.clients.discard(ws)
        sender = self._senders.pop(ws, None)
        if sender is not None and sender.task is not None and sender.task is not asyncio.current_task():
            sender.task.cancel()

    async def broadcast(self, text: str) -> None:
        """Hand *text* to every client's sender (replacing a frame it has not sent yet)."""
        for sender in self._senders.values():
            sender.pending = text
            sender.wake.set()

    async def _send_loop(self, ws: WebSocket, sender: _Sender) -> None:
        try:
            while True:
                await sender.wake.wait()
                sender.wake.clear()
                text, sender.pending = sender.pending, None
                if text is None:
                    continue
                # NOTE: asyncio.timeout, not wait_for: no extra task per frame.
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await ws.send_text(text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # NOTE: a slow or dead screen must not hold up the others.
            log.info("dropping a WebSocket client: %r", exc)
            self.discard(ws)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await ws.close()

    def count(self) -> int:
        return len(self.clients)

    @staticmethod
    def frame(kind: str, data: Any) -> dict[str, Any]:
        return {"type": kind, "data": data}
