"""The debrief that teaches, step by step (docs/evaluation.md, controller/debrief_steps.py).

``GET /api/debrief/{session}`` the pages, the one shown and what it shows, the answers;
``PUT /api/debrief/{session}/page`` show another page (the console's next and previous;
the room screens follow while the game is in its debrief phase); ``PUT
/api/debrief/{session}/answers`` how many in the group picked each feeling and each thing
to do at home (counts, never names). A finished session only; a refused page or answer
changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from config.sheet import ChoiceId, SheetWordsError
from controller.api.access import GM
from controller.api.deps import ServiceDep, actor, http_errors
from controller.api.errors import ApiError
from controller.api.models import DebriefSteps
from controller.debrief_steps import BadDebriefAnswer
from controller.store import SessionNotEnded

router = APIRouter(prefix="/api/debrief", tags=["debrief"], dependencies=[GM])

Count = Annotated[int, Field(ge=0, le=99, strict=True)]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        with http_errors():
            yield
    except (BadDebriefAnswer, SessionNotEnded) as exc:
        raise ApiError.of(422 if isinstance(exc, BadDebriefAnswer) else 409, exc) from exc
    except SheetWordsError as exc:
        raise ApiError(500, f"débrief impossible : {exc}", en=f"no debrief: {exc}") from exc


class PageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page: int = Field(ge=0, le=99, strict=True, description="the page to show, from 0")


class AnswersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feelings: dict[ChoiceId, Count] | None = Field(
        default=None, max_length=20, description="feeling id → how many picked it (null: unchanged)")
    at_home: dict[ChoiceId, Count] | None = Field(
        default=None, max_length=50, description="thing to do at home → how many households picked it")


@router.get("/{session_id}", response_model=DebriefSteps)
async def steps(session_id: str, service: ServiceDep) -> dict[str, Any]:
    """The session's debrief, step by step."""
    with _errors():
        return service.debrief_steps.view(session_id)


@router.put("/{session_id}/page", response_model=DebriefSteps)
async def show(session_id: str, body: PageIn, request: Request, service: ServiceDep) -> dict[str, Any]:
    """Show another page of the debrief, on the console and the room screens."""
    with _errors():
        out = service.debrief_steps.go(session_id, body.page, who=actor(request))
    service.changed()
    return out


@router.put("/{session_id}/answers", response_model=DebriefSteps)
async def answer(session_id: str, body: AnswersIn, request: Request, service: ServiceDep) -> dict[str, Any]:
    """What the group answered: each step given replaces its counts (audited)."""
    with _errors():
        out = service.debrief_steps.record(session_id, {"feelings": body.feelings, "at_home": body.at_home},
                                           who=actor(request))
    service.changed()
    return out
