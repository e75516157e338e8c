"""The web pages (HTML from dashboard/static) and the read-only data they need.

``/console`` game master, ``/debrief`` debrief of a session, ``/history`` past sessions,
``/planning`` the year's calendar, ``/followup`` the follow-up phone calls,
``/sheet/<session>`` the take-home sheet (``/sheet/<session>.pdf`` its PDF; ``?lang=en``),
``/rehearsal`` simulated apartment (demo), ``/tech`` technician,
``/screen/<room>?token=…`` in-room screen, ``/login``; ``/docs``, ``/redoc`` and
``/openapi.json``, the API's description. Each declares who may open it
(:mod:`controller.api.access`): a page sends a visitor who is not logged in to ``/login``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.params import Depends
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.concurrency import run_in_threadpool

from config.game import Condition, EventCondition, Game, PerParcours, Puzzle
from config.sheet import SheetWordsError
from controller.api.access import GM, GM_ONLY_PAGE, GM_PAGE, OWN_ROOM, PUBLIC, TECH, TECH_PAGE
from controller.api.auth import AuthSettings
from controller.api.deps import ServiceDep, StoreDep
from controller.api.errors import ApiError
from controller.api.models import Layout
from controller.api.routes import report as report_routes
from controller.sheet import ChromiumMissing, PdfBusy, PdfError, PdfTimeout, pdf_bytes, sheet_html
from props.sim import gestures_of

STATIC_DIR = Path(__file__).resolve().parents[3] / "dashboard" / "static"
#: each page: its file, and who may open it
PAGES: dict[str, tuple[str, Depends]] = {
    "console": ("console.html", GM_PAGE), "rehearsal": ("rehearsal.html", GM_PAGE),
    "tech": ("tech.html", TECH_PAGE), "login": ("login.html", PUBLIC),
    "debrief": ("debrief.html", GM_PAGE), "history": ("history.html", GM_PAGE),
    "planning": ("planning.html", GM_PAGE), "followup": ("followup.html", GM_ONLY_PAGE)}

router = APIRouter(tags=["pages"])
#: the languages of the take-home sheet (config/sheet.yaml): French by default
SheetLang = Literal["fr", "en"]


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-store"})


@router.get("/", include_in_schema=False, dependencies=[GM_PAGE])
def index() -> RedirectResponse:
    return RedirectResponse("/console")


@router.get("/favicon.ico", include_in_schema=False, dependencies=[PUBLIC])
def favicon() -> FileResponse:
    """Every page's icon (browsers ask for it at this address without a ``<link>``)."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml",
                        headers={"Cache-Control": "max-age=86400"})


def _page_route(name: str) -> Callable[[], FileResponse]:
    def page() -> FileResponse:
        return _page(PAGES[name][0])
    page.__name__ = f"{name}_page"
    return page


# /login, /console, /rehearsal, /tech, /debrief (``?session=<id>`` for a past one), /history
for _name, (_file, _access) in PAGES.items():
    router.add_api_route(f"/{_name}", _page_route(_name), methods=["GET"], include_in_schema=False,
                         dependencies=[_access])


def _sheet(session_id: str, store: StoreDep, service: ServiceDep, lang: str) -> str:
    row = store.session(session_id)
    if row is None:
        raise ApiError(404, f"partie inconnue {session_id!r}", en=f"unknown session {session_id!r}")
    try:
        return sheet_html(row, service.game, lang=lang)
    except SheetWordsError as exc:
        raise ApiError(500, f"fiche impossible : {exc}", en=f"no sheet: {exc}") from exc


# declared before /sheet/{session_id}, which would take « <id>.pdf » for a session id
@router.get("/sheet/{session_id}.pdf", include_in_schema=False, dependencies=[GM_PAGE])
async def sheet_pdf(session_id: str, store: StoreDep, service: ServiceDep,
                    lang: SheetLang = "fr") -> Response:
    """The take-home sheet as a one-page A4 PDF, printed by the controller's headless
    Chromium in a worker thread (seconds: the event loop goes on meanwhile); 503 in French
    when Chromium is missing, does not finish in time, or another PDF is being printed."""
    html = _sheet(session_id, store, service, lang)
    try:
        pdf = await run_in_threadpool(pdf_bytes, html)
    except (ChromiumMissing, PdfTimeout, PdfBusy) as exc:
        raise ApiError(503, exc.fr, en=exc.en) from exc
    except PdfError as exc:
        raise ApiError(500, exc.fr, en=exc.en) from exc
    except OSError as exc:   # the temporary directory: a full disk
        raise ApiError(503, f"PDF impossible : {exc}", en=f"no PDF: {exc}") from exc
    name = f"fiche-{session_id}{'-en' if lang == 'en' else ''}.pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Cache-Control": "no-store",
                             "Content-Disposition": f'attachment; filename="{quote(name)}"'})


@router.get("/sheet/{session_id}", include_in_schema=False, dependencies=[GM_PAGE])
def sheet_page(session_id: str, store: StoreDep, service: ServiceDep, lang: SheetLang = "fr") -> HTMLResponse:
    """A session's take-home sheet: one A4 page to print (controller/sheet.py); ``?lang=en``
    in English."""
    return HTMLResponse(_sheet(session_id, store, service, lang), headers={"Cache-Control": "no-store"})


@router.get("/screen/{room}", include_in_schema=False, dependencies=[OWN_ROOM])
def screen_page(room: str, service: ServiceDep) -> FileResponse:
    if room not in service.registry.nodes:
        raise ApiError(404, f"pièce inconnue {room!r}", en=f"unknown room {room!r}")
    return _page("screen.html")


@router.get("/api/layout", tags=["pages"], dependencies=[GM], response_model=Layout)
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
    return {"apartment": service.game.apartment.id, "demo": service.demo, "nodes": nodes,
            "puzzles": [_solution(service.game, p) for p in service.game.puzzles]}


def _solution(game: Game, puzzle: Puzzle) -> dict[str, Any]:
    """A puzzle and what solves it in each parcours, in the game file's terms made readable
    (the prop's and the room's names, a tag's name), for the rehearsal page."""
    def step(cond: EventCondition, parcours: str) -> dict[str, Any]:
        node_id, prop_id = cond.prop.split(".", 1)
        node = next(n for n in game.nodes if n.id == node_id)
        prop = node.prop(prop_id)
        value = cond.any_of if cond.any_of is not None else cond.equals
        if isinstance(value, PerParcours):
            value = getattr(value, parcours)
        tags = getattr(prop, "tags", None) or {}
        return {"prop": cond.prop, "label": getattr(prop, "label", None) or prop_id,
                "room": node.label.fr, "event": cond.event, "value": value,
                "tag": tags.get(value) if isinstance(value, str) else None,
                "min_value": cond.min_value}
    order = puzzle.solve.when if isinstance(puzzle.solve, Condition) else "one"
    return {"id": puzzle.id, "label": puzzle.label.fr, "label_en": puzzle.label.en,
            "room": puzzle.room, "parcours": list(puzzle.parcours), "order": order,
            "solution": {p: [step(c, p) for c in puzzle.conditions()] for p in puzzle.parcours}}


@router.get("/api/tech/wiring/{node}", tags=["pages"], response_class=PlainTextResponse,
            dependencies=[TECH])
def wiring(node: str, service: ServiceDep) -> str:
    """The wiring sheet of one node (technician only)."""
    from nodes.wiring import wiring_sheet

    found = next((n for n in service.game.nodes if n.id == node), None)
    if found is None:
        raise ApiError(404, f"nœud inconnu {node!r}", en=f"unknown node {node!r}")
    return wiring_sheet(found)


@router.get("/api/tech/screens", tags=["pages"], dependencies=[TECH])
def screen_links(request: Request, service: ServiceDep) -> dict[str, str]:
    """The kiosk URL of every room screen, with its token (technician only)."""
    auth: AuthSettings = request.app.state.auth
    return {n: f"/screen/{n}?token={auth.screen_token(n)}" for n in service.registry.nodes}


# -- the API's description: for staff, as FastAPI's own /docs would be for anyone ----------
@router.get("/openapi.json", include_in_schema=False, dependencies=[GM])
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False, dependencies=[GM])
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} - Swagger UI")


@router.get("/redoc", include_in_schema=False, dependencies=[GM])
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title=f"{request.app.title} - ReDoc")


# the « Bilan de l'année » page, its PDF and its API (controller/api/routes/report.py)
router.include_router(report_routes.router)
