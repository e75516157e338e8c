"""The live WebSocket: a snapshot on connect, then one on every change.

Game master and technician get the full snapshot; a room screen only its screen view
(:meth:`controller.views.Views.screen_view`): no props, audit log or metrics.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from controller import jsonsafe
from controller.api.access import SCREEN
from controller.api.auth import principal
from controller.hub import STAFF, Hub, screen_audience

router = APIRouter(tags=["live"])
log = logging.getLogger(__name__)


@router.websocket("/ws", dependencies=[SCREEN])
async def live(ws: WebSocket) -> None:
    service = ws.app.state.service
    who = principal(ws)
    await ws.accept()
    service.hub.add(ws, screen_audience(who.room) if who.role == "screen" else STAFF)
    try:
        first = Hub.frame("snapshot", service.views.view(who))
        await ws.send_text(jsonsafe.dumps(first, what="first snapshot"))
        while True:
            await ws.receive_text()  # pings from the page; nothing else is accepted
    except WebSocketDisconnect:
        pass
    finally:
        service.hub.discard(ws)
