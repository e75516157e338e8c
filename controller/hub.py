"""Pushes the controller's state to every connected WebSocket (pages and tools)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import WebSocket

log = logging.getLogger(__name__)


class Hub:
    """The set of live WebSockets; :meth:`broadcast` sends one JSON text to all."""

    def __init__(self) -> None:
        self.clients: set[WebSocket] = set()

    def add(self, ws: WebSocket) -> None:
        self.clients.add(ws)

    def discard(self, ws: WebSocket) -> None:
        self.clients.discard(ws)

    async def broadcast(self, text: str) -> None:
        if not self.clients:
            return
        clients = list(self.clients)
        results = await asyncio.gather(
            *(asyncio.wait_for(ws.send_text(text), timeout=2.0) for ws in clients),
            return_exceptions=True,
        )
        for ws, result in zip(clients, results, strict=True):
            if isinstance(result, BaseException):
                # NOTE: a slow or dead screen must not hold up the others.
                log.info("dropping a WebSocket client: %r", result)
                self.clients.discard(ws)

    def count(self) -> int:
        return len(self.clients)

    @staticmethod
    def frame(kind: str, data: Any) -> dict[str, Any]:
        return {"type": kind, "data": data}
