"""Pushes the controller's state to every connected WebSocket (pages and tools).

Each client belongs to an *audience*: :data:`STAFF` (game master and technician: the full
snapshot) or ``screen:<room>`` (a room screen: only what its screen shows). A push builds
one JSON text per audience present, never one per client (see
:meth:`controller.views.Views.push`).

What is sent is incremental: a client gets its audience's whole view once
(``{"type": "snapshot", "v": 7, "data": …}``), then only what changed, as a JSON Patch
(``{"type": "patch", "v": 8, "ops": […]}``, :mod:`controller.delta`), each audience's
frames numbered. A client that misses one (``v`` is not its own plus one) sends
``resync`` and gets the whole view again; ``ping`` is answered ``{"type": "pong"}`` (the
pages' watchdog: a silent link is a dead one).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket

from controller import delta, jsonsafe

log = logging.getLogger(__name__)

#: the audience of the game master's and the technician's pages
STAFF = "staff"


def screen_audience(room: str | None) -> str:
    """The audience of one room's screen (``room`` None: a screen for every room)."""
    return f"screen:{room or '*'}"


#: the answer to a page's ``ping``
PONG = '{"type":"pong"}'


@dataclass(slots=True)
class Feed:
    """What every client of one audience holds: the view as last sent, and its number."""

    version: int
    data: Any


class Hub:
    """The live WebSockets and their audiences; :meth:`broadcast` sends each its text."""

    def __init__(self) -> None:
        self.clients: dict[WebSocket, str] = {}
        self.feeds: dict[str, Feed] = {}

    def add(self, ws: WebSocket, audience: str = STAFF) -> None:
        self.clients[ws] = audience

    def discard(self, ws: WebSocket) -> None:
        audience = self.clients.pop(ws, None)
        if audience is not None and audience not in self.clients.values():
            # nobody holds it any more: the next client starts from a whole view
            self.feeds.pop(audience, None)

    # -- incremental frames ---------------------------------------------------------------
    def update(self, audience: str, data: Any) -> str | None:
        """The frame that brings *audience* from its last view to *data*: a patch, the whole
        view for an audience nobody holds yet, None when nothing changed."""
        text = jsonsafe.dumps(self.frame("snapshot", data), what=f"push to {audience}")
        plain = json.loads(text)["data"]   # exactly what a page decodes
        feed = self.feeds.get(audience)
        if feed is None:
            self.feeds[audience] = Feed(1, plain)
            return self.snapshot_text(audience)
        ops = delta.diff(feed.data, plain)
        if not ops:
            return None
        feed.version += 1
        feed.data = plain
        return jsonsafe.dumps({"type": "patch", "v": feed.version, "ops": ops},
                              what=f"patch to {audience}")

    def snapshot_text(self, audience: str) -> str:
        """The whole view *audience* holds now, numbered (a new client, a ``resync``)."""
        feed = self.feeds[audience]
        return jsonsafe.dumps({"type": "snapshot", "v": feed.version, "data": feed.data},
                              what=f"snapshot to {audience}")

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
                self.discard(ws)

    def count(self) -> int:
        return len(self.clients)

    @staticmethod
    def frame(kind: str, data: Any) -> dict[str, Any]:
        return {"type": kind, "data": data}
