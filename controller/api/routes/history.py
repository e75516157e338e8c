"""History routes: every session played, statistics, and CSV exports for the organisers.

Only sessions whose run started count (a session cancelled during its check does not).
CSV files are UTF-8 with a BOM and ``;`` between fields (what a French-locale spreadsheet
expects); ``?sep=,`` gives commas.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from config.game import Theme
from config.sheet import load_or_none as load_words_or_none
from controller.api.access import GM
from controller.api.deps import ServiceDep, StoreDep, actor
from controller.api.errors import ApiError
from controller.api.models import Debrief, EvaluationView, SessionDetail, SessionEvents, Sessions, Stats
from controller.core.errors import InvalidValue, NotFoundError
from controller.debrief import debrief, named
from controller.store import SessionNotEnded

router = APIRouter(prefix="/api/history", tags=["history"], dependencies=[GM])

DateFrom = Annotated[dt.date | None, Query(alias="from", description="first day (YYYY-MM-DD)")]
DateTo = Annotated[dt.date | None, Query(alias="to", description="last day (YYYY-MM-DD)")]
ParcoursQ = Annotated[Literal["primo", "locataire"] | None, Query()]
Sep = Annotated[Literal[";", ","], Query(description="field separator")]


THEME_ORDER: tuple[str, ...] = get_args(Theme)


class Evaluation(BaseModel):
    """How the group judged its session, as the game master notes it at the debrief."""

    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5, strict=True,
                        description="the group's overall rating, 1 (not useful) to 5 (very useful)")
    learned: list[Theme] = Field(default_factory=list, max_length=6,
                                 description="themes the participants say they learned something about")
    comment: str = Field(default="", max_length=2000, description="what the group said, in its words")

    @field_validator("learned")
    @classmethod
    def _each_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            msg = "chaque thème une seule fois"
            raise InvalidValue(msg, en="each theme once only")
        return sorted(value, key=THEME_ORDER.index)   # the game's order, whatever the page sent


def _filters(date_from: dt.date | None, date_to: dt.date | None, parcours: str | None) -> dict[str, Any]:
    if date_from and date_to and date_from > date_to:
        raise ApiError(422, "la date de début est après la date de fin",
                       en="the start date is after the end date")
    return {"date_from": date_from.isoformat() if date_from else None,
            "date_to": date_to.isoformat() if date_to else None, "parcours": parcours}


def _unknown_session(session_id: str) -> ApiError:
    return ApiError(404, f"session inconnue {session_id!r}", en=f"unknown session {session_id!r}")


class CsvResponse(Response):
    media_type = "text/csv"


CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "a CSV file"}}


def _csv(text: str, name: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/sessions", response_model=Sessions)
async def sessions(*, store: StoreDep, date_from: DateFrom = None, date_to: DateTo = None,
                   parcours: ParcoursQ = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    """Played sessions, newest first."""
    rows = store.sessions(limit=limit, offset=offset, **_filters(date_from, date_to, parcours))
    return {"sessions": rows, "limit": limit, "offset": offset}


@router.get("/sessions.csv", response_class=CsvResponse, responses=CSV)
async def sessions_csv(*, store: StoreDep, date_from: DateFrom = None, date_to: DateTo = None,
                       parcours: ParcoursQ = None, sep: Sep = ";") -> Response:
    """One line per session: date, parcours, players, result, time used, clues, budget."""
    return _csv(store.sessions_csv(sep=sep, **_filters(date_from, date_to, parcours)), "sessions.csv")


@router.get("/puzzles.csv", response_class=CsvResponse, responses=CSV)
async def puzzles_csv(*, store: StoreDep, date_from: DateFrom = None, date_to: DateTo = None,
                      parcours: ParcoursQ = None, sep: Sep = ";") -> Response:
    """One line per session and puzzle: when available, when solved, by whom, clues."""
    return _csv(store.puzzles_csv(sep=sep, **_filters(date_from, date_to, parcours)), "enigmes.csv")


@router.get("/stats", response_model=Stats)
async def stats(*, store: StoreDep, date_from: DateFrom = None, date_to: DateTo = None,
                parcours: ParcoursQ = None) -> dict[str, Any]:
    """Sessions, participants, success rate, average time, per-puzzle time and clues."""
    out = store.stats(**_filters(date_from, date_to, parcours))
    names = (words.names() if (words := load_words_or_none()) else {})
    for p in out["puzzles"]:
        p.update(named(names.get(p["theme"]), p["theme"]) if p["theme"] else {})
    return out


@router.get("/sessions/{session_id}", response_model=SessionDetail)
async def session(session_id: str, store: StoreDep) -> dict[str, Any]:
    """One session with its puzzles, budget lines, clues and audit log."""
    row = store.session(session_id)
    if row is None:
        raise _unknown_session(session_id)
    return row


@router.get("/sessions/{session_id}/debrief", response_model=Debrief)
async def session_debrief(session_id: str, store: StoreDep, service: ServiceDep) -> dict[str, Any]:
    """The debrief of a session: per theme what the group did, clues, budget history."""
    row = store.session(session_id)
    if row is None:
        raise _unknown_session(session_id)
    return debrief(row, service.game, load_words_or_none())


@router.put("/sessions/{session_id}/evaluation", response_model=EvaluationView)
async def evaluate(session_id: str, body: Evaluation, request: Request, store: StoreDep,
                   service: ServiceDep) -> dict[str, Any]:
    """Record (or correct) the group's evaluation of a finished session (audited); 503
    while the session log cannot be written (a full disk)."""
    service.journal.catch_up()
    try:
        return store.save_evaluation(session_id, rating=body.rating, learned=body.learned,
                                     comment=body.comment.strip(), who=actor(request))
    except SessionNotEnded as exc:
        raise ApiError.of(409, exc) from exc
    except NotFoundError as exc:
        raise ApiError.of(404, exc) from exc


@router.get("/sessions/{session_id}/events", response_model=SessionEvents)
async def session_events(session_id: str, store: StoreDep,
                         limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000) -> dict[str, Any]:
    """The event log of a session: every prop event and the engine's notes, oldest first."""
    if store.session(session_id) is None:
        raise _unknown_session(session_id)
    return {"session": session_id, "events": store.events(session_id, limit=limit)}
