"""The live WebSocket: a snapshot on connect, then one on every change."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from controller.hub import Hub

router = APIRouter(tags=["live"])
log = logging.getLogger(__name__)


@router.websocket("/ws")
async def live(ws: WebSocket) -> None:
    service = ws.app.state.service
    await ws.accept()
    service.hub.add(ws)
    try:
        await ws.send_text(json.dumps(Hub.frame("snapshot", service.snapshot()), default=str))
        while True:
            await ws.receive_text()  # pings from the page; nothing else is accepted
    except WebSocketDisconnect:
        pass
    finally:
        service.hub.discard(ws)
