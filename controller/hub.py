"""Pushes the controller's state to every connected WebSocket (pages and tools).

Each client belongs to an *audience*: :data:`STAFF` (game master and technician: the full
snapshot) or ``screen:<room>`` (a room screen: only what its screen shows). A push builds
one JSON text per audience present, never one per client (see
:meth:`controller.views.Views.push`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import WebSocket

log = logging.getLogger(__name__)

#: the audience of the game master's and the technician's pages
STAFF = "staff"


def screen_audience(room: str | None) -> str:
    """The audience of one room's screen (``room`` None: a screen for every room)."""
    return f"screen:{room or '*'}"


class Hub:
    """The live WebSockets and their audiences; :meth:`broadcast` sends each its text."""

    def __init__(self) -> None:
        self.clients: dict[WebSocket, str] = {}

    def add(self, ws: WebSocket, audience: str = STAFF) -> None:
        self.clients[ws] = audience

    def discard(self, ws: WebSocket) -> None:
        self.clients.pop(ws, None)

    def audiences(self) -> set[str]:
        """The audiences with at least one client now."""
        return set(self.clients.values())

    async def broadcast(self, text: str | Mapping[str, str]) -> None:
        """Send *text* to every client, or with a mapping ``{audience: text}`` each client
        the text of its audience (a client whose audience has none gets nothing)."""
        if not self.clients:
            return
        if isinstance(text, str):
            pairs = [(ws, text) for ws in self.clients]
        else:
            pairs = [(ws, text[aud]) for ws, aud in self.clients.items() if aud in text]
        results = await asyncio.gather(
            *(asyncio.wait_for(ws.send_text(t), timeout=2.0) for ws, t in pairs),
            return_exceptions=True,
        )
        for (ws, _t), result in zip(pairs, results, strict=True):
            if isinstance(result, BaseException):
                # NOTE: a slow or dead screen must not hold up the others.
                log.info("dropping a WebSocket client: %r", result)
                self.clients.pop(ws, None)

    def count(self) -> int:
        return len(self.clients)

    @staticmethod
    def frame(kind: str, data: Any) -> dict[str, Any]:
        return {"type": kind, "data": data}
