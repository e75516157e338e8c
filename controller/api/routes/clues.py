"""Clue routes: the game master sends clues; the room screen says it showed them.

A clue is either pre-written (``puzzle`` + ``index`` in the game file, in the text of the
current parcours) or free ``text``. It goes to one room's screen (``room``: a node id;
default: the puzzle's room) or to every screen (``"room": null`` or ``"all"``). It is
published on the retained ``game/state`` and in the WebSocket snapshot with an id; the
screen acknowledges it with ``POST /api/clues/{id}/shown``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from controller.api.access import GM, SCREEN
from controller.api.deps import DEFAULT_WHO, ServiceDep, Who, actor, http_errors
from controller.api.models import CLUES, Clue, Clues, ClueSent, ClueShown, dump
from controller.views import clue_catalogue

router = APIRouter(prefix="/api/clues", tags=["clues"])


class ClueOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    puzzle: str | None = Field(default=None, max_length=40, description="the puzzle it helps with")
    index: int | None = Field(default=None, ge=0, le=100, description="a pre-written clue of the puzzle")
    text: str | None = Field(default=None, max_length=500, description="a free text instead")
    text_en: str | None = Field(default=None, max_length=500)
    room: str | None = Field(default=None, max_length=40,
                             description="node id of the room screen; null or 'all': every screen")
    counts: bool = Field(default=True, description="counts in the game's clues (and costs its cost)")
    cost: int | None = Field(default=None, ge=0, le=100_000,
                             description="euros taken from the budget (default: the clue's own cost)")
    who: Who = DEFAULT_WHO


@router.get("", dependencies=[GM], response_model=Clues)
async def clues(service: ServiceDep) -> dict[str, Any]:
    """The pre-written clues of the current parcours, and the clues sent in this game."""
    engine = service.engine
    return {"catalogue": clue_catalogue(engine), "sent": dump(CLUES, engine.clues),
            "clue_count": engine.clue_count}


@router.post("", dependencies=[GM], response_model=ClueSent)
async def send(request: Request, body: ClueOrder, service: ServiceDep) -> dict[str, Any]:
    room_given = "room" in body.model_fields_set
    room = None if body.room == "all" else body.room
    with http_errors():
        clue = service.orders.send_clue(puzzle=body.puzzle, index=body.index, text=body.text,
                                 text_en=body.text_en, room=room, room_given=room_given,
                                 counts=body.counts, cost=body.cost,
                                 who=actor(request, body.who))
    return {"clue": Clue.model_validate(clue), "clue_count": service.engine.clue_count,
            "budget": service.engine.budget}


# the room screen acknowledges
@router.post("/{clue_id}/shown", dependencies=[SCREEN], response_model=ClueShown)
async def shown(clue_id: str, service: ServiceDep) -> dict[str, Any]:
    """The room screen displayed the clue (idempotent)."""
    with http_errors():
        clue = service.orders.clue_shown(clue_id)
    return {"clue": Clue.model_validate(clue)}
