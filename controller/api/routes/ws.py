"""The live WebSocket: the whole view on connect, then what changed (controller/hub.py).

Game master and technician get the full snapshot; a room screen only its screen view
(:meth:`controller.views.Views.screen_view`): no props, audit log or metrics. A page may
send ``ping`` (answered ``{"type": "pong"}``: its watchdog) and ``resync`` (answered with
the whole view: it missed a frame); nothing else.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from controller.api.access import SCREEN
from controller.api.auth import principal
from controller.hub import PONG, STAFF, screen_audience

router = APIRouter(tags=["live"])
log = logging.getLogger(__name__)


@router.websocket("/ws", dependencies=[SCREEN])
async def live(ws: WebSocket) -> None:
    service = ws.app.state.service
    who = principal(ws)
    audience = screen_audience(who.room) if who.role == "screen" else STAFF
    await ws.accept()
    service.hub.add(ws, audience)
    try:
        await ws.send_text(service.views.welcome(who, audience))
        while True:
            asked = await ws.receive_text()
            if asked == "ping":
                await ws.send_text(PONG)
            elif asked == "resync" and audience in service.hub.feeds:
                await ws.send_text(service.hub.snapshot_text(audience))
    except WebSocketDisconnect:
        pass
    except (OSError, RuntimeError) as exc:
        # the page gave up on us first (its watchdog closed a link we were too slow on):
        # answering it fails, and that is no error of the controller's
        log.info("live page gone before its answer: %r", exc)
    finally:
        service.hub.discard(ws)
