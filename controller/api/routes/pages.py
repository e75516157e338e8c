"""The web pages (HTML from dashboard/static) and the read-only data they need.

``/console`` game master, ``/debrief`` debrief of a session, ``/history`` past sessions,
``/rehearsal`` simulated apartment (demo), ``/tech`` technician,
``/screen/<room>?token=…`` in-room screen, ``/login``. Access is checked by
:mod:`controller.api.auth` before any of these run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse

from controller.api.auth import AuthSettings
from controller.api.deps import ServiceDep
from controller.api.errors import ApiError
from controller.api.models import Layout
from props.sim import gestures_of

STATIC_DIR = Path(__file__).resolve().parents[3] / "dashboard" / "static"
PAGES = {"console": "console.html", "rehearsal": "rehearsal.html", "tech": "tech.html",
         "login": "login.html", "debrief": "debrief.html", "history": "history.html"}

router = APIRouter(tags=["pages"])


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-store"})


@router.get("/", include_in_schema=False)
def index() -> RedirectResponse:
    return RedirectResponse("/console")


def _page_route(name: str) -> Callable[[], FileResponse]:
    def page() -> FileResponse:
        return _page(PAGES[name])
    page.__name__ = f"{name}_page"
    return page


# /login, /console, /rehearsal, /tech, /debrief (``?session=<id>`` for a past one), /history
for _name in PAGES:
    router.add_api_route(f"/{_name}", _page_route(_name), methods=["GET"], include_in_schema=False)


@router.get("/screen/{room}", include_in_schema=False)
def screen_page(room: str, service: ServiceDep) -> FileResponse:
    if room not in service.registry.nodes:
        raise ApiError(404, f"pièce inconnue {room!r}", en=f"unknown room {room!r}")
    return _page("screen.html")


@router.get("/api/layout", tags=["pages"], response_model=Layout)
def layout(service: ServiceDep) -> dict[str, Any]:
    """The apartment as the game file declares it: rooms, props, their known RFID tags and
    the gestures the rehearsal can make on each."""
    nodes = []
    for node in service.game.nodes:
        props = []
        for prop in node.props:
            cfg = prop.model_dump(mode="json")
            props.append({"id": prop.id, "kind": prop.kind, "label": cfg.get("label") or prop.id,
                          "tags": cfg.get("tags") or {}, "bins": sorted(cfg.get("bins") or {}),
                          "door_sensor": cfg.get("door") is not None,
                          "gestures": [g.name for g in gestures_of(prop)]})
        nodes.append({"id": node.id, "label": node.label.fr, "label_en": node.label.en,
                      "props": props})
    return {"apartment": service.game.apartment.id, "demo": service.demo, "nodes": nodes}


@router.get("/api/tech/wiring/{node}", tags=["pages"], response_class=PlainTextResponse)
def wiring(node: str, service: ServiceDep) -> str:
    """The wiring sheet of one node (technician only)."""
    from nodes.wiring import wiring_sheet

    found = next((n for n in service.game.nodes if n.id == node), None)
    if found is None:
        raise ApiError(404, f"nœud inconnu {node!r}", en=f"unknown node {node!r}")
    return wiring_sheet(found)


@router.get("/api/tech/screens", tags=["pages"])
def screen_links(request: Request, service: ServiceDep) -> dict[str, str]:
    """The kiosk URL of every room screen, with its token (technician only)."""
    auth: AuthSettings = request.app.state.auth
    return {n: f"/screen/{n}?token={auth.screen_token(n)}" for n in service.registry.nodes}
