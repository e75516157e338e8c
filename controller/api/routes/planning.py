"""The year's calendar: planned sessions, the groups registered ahead, starting one.

``GET /api/planning`` (``?from=&to=``, ``?today=true``) lists the planned sessions;
``POST /api/planning`` plans one; ``PATCH``/``DELETE /api/planning/{id}`` change or take
off one not played yet; ``POST /api/planning/{id}/groups`` registers a group (6 players
at most, children included: 409 beyond, nothing written); ``POST /api/planning/{id}/check``
opens the game's check with the plan's parcours and people and links the session (``/start``
starts it at once); their body may correct the plan on the day.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from controller.api.access import GM
from controller.api.deps import DEFAULT_WHO, ServiceDep, StoreDep, Who, actor, http_errors
from controller.api.errors import ApiError
from controller.api.models import CheckAnswer, GameView, PlanCancelled, PlannedSession, PlannedSessions
from controller.api.routes.game import WithProfile, apply_profile
from controller.core.errors import InvalidValue
from controller.planning import Planning, Referral, Tenancy, TooManyPlayers
from controller.views import game_view

router = APIRouter(prefix="/api/planning", tags=["planning"], dependencies=[GM])

Parcours = Literal["primo", "locataire"]
TimeOfDay = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM")]
#: a name as the staff write it (spaces around it dropped; blank refused)
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]


def get_planning(store: StoreDep, service: ServiceDep) -> Planning:
    return Planning(store, max_players=service.game.apartment.max_players, wall=service.wall)


PlanningDep = Annotated[Planning, Depends(get_planning)]


def today_iso(service: ServiceDep) -> str:
    """The controller's day (its wall clock, local time): the day's sessions on the console."""
    return dt.datetime.fromtimestamp(service.wall()).date().isoformat()


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: dt.date
    time: TimeOfDay
    game_master: Name
    parcours: Parcours
    note: str = Field(default="", max_length=300)


class PlanChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: dt.date | None = None
    time: TimeOfDay | None = None
    game_master: Name | None = None
    parcours: Parcours | None = None
    note: str | None = Field(default=None, max_length=300)


class GroupIn(BaseModel):
    """A group registered ahead; everyone counts, children included."""

    model_config = ConfigDict(extra="forbid")

    adults: int = Field(ge=0, le=12, strict=True)
    children: int = Field(default=0, ge=0, le=12, strict=True)
    households: int = Field(default=1, ge=1, le=12, strict=True)
    tenancy: Tenancy = Field(description="primo: first-time tenant; locataire: current tenant")
    referral: Referral = Field(description="who referred the group")
    first_visit: bool = True

    @model_validator(mode="after")
    def _someone(self) -> GroupIn:
        if self.adults + self.children == 0:
            msg = "un groupe compte au moins une personne"
            raise InvalidValue(msg, en="a group has at least one person")
        if self.adults == 0:
            msg = "un groupe compte au moins un adulte (les enfants viennent accompagnés)"
            raise InvalidValue(msg, en="a group has at least one adult (children come accompanied)")
        if self.households > self.adults + self.children:
            msg = "plus de foyers que de personnes"
            raise InvalidValue(msg, en="more households than people")
        return self


@router.get("", response_model=PlannedSessions)
def planned(planning: PlanningDep, service: ServiceDep,
            date_from: Annotated[dt.date | None, Query(alias="from")] = None,
            date_to: Annotated[dt.date | None, Query(alias="to")] = None,
            today: bool = False) -> dict[str, Any]:
    """Planned sessions in date order (``today=true``: the day's, for the console's home)."""
    if today:
        date_from = date_to = dt.date.fromisoformat(today_iso(service))
    if date_from and date_to and date_from > date_to:
        raise ApiError(422, "la date de début est après la date de fin",
                       en="the start date is after the end date")
    return {"sessions": planning.sessions(date_from=date_from.isoformat() if date_from else None,
                                          date_to=date_to.isoformat() if date_to else None),
            "max_players": planning.max_players, "today": today_iso(service)}


@router.post("", response_model=PlannedSession, status_code=201)
def plan(body: PlanIn, planning: PlanningDep) -> dict[str, Any]:
    """Plan a session: date, time, game master, parcours."""
    return planning.plan(date=body.date.isoformat(), time_of_day=body.time,
                         game_master=body.game_master, parcours=body.parcours,
                         note=body.note.strip())


@router.get("/{planned_id}", response_model=PlannedSession)
def planned_one(planned_id: int, planning: PlanningDep) -> dict[str, Any]:
    with http_errors():
        return planning.session(planned_id)


@router.patch("/{planned_id}", response_model=PlannedSession)
def change(planned_id: int, body: PlanChange, planning: PlanningDep) -> dict[str, Any]:
    """Change a session not played yet (409 once played)."""
    with http_errors():
        return planning.change(planned_id, date=body.date.isoformat() if body.date else None,
                               time_of_day=body.time, game_master=body.game_master,
                               parcours=body.parcours, note=body.note)


@router.delete("/{planned_id}", response_model=PlanCancelled)
def cancel(planned_id: int, planning: PlanningDep) -> dict[str, Any]:
    """Take a session not played yet off the calendar, with its groups."""
    with http_errors():
        planning.cancel(planned_id)
    return {"ok": True}


@router.post("/{planned_id}/groups", response_model=PlannedSession, status_code=201)
def register(planned_id: int, body: GroupIn, planning: PlanningDep) -> dict[str, Any]:
    """Register a group: refused with 409 when the session would hold more players than the
    apartment takes, children included."""
    try:
        with http_errors():
            return planning.register(planned_id, **body.model_dump())
    except TooManyPlayers as exc:
        raise ApiError.of(409, exc) from exc


@router.delete("/{planned_id}/groups/{group_id}", response_model=PlannedSession)
def unregister(planned_id: int, group_id: int, planning: PlanningDep) -> dict[str, Any]:
    with http_errors():
        return planning.unregister(planned_id, group_id)


class PlanStart(WithProfile):
    """What the game master corrects on the day (a family did not come): given, it replaces
    the plan's; the apartment's limit holds (6 players at most, children included); and the
    group's profile (children, reads little, a language, hard of hearing)."""

    model_config = ConfigDict(extra="forbid")

    parcours: Parcours | None = None
    players: int | None = Field(default=None, ge=1, le=12, strict=True,
                                description="everyone who plays, children included")
    children: bool | None = None
    override_reason: str | None = Field(default=None, max_length=300,
                                        description="start: why without the check (recorded)")
    who: Who = DEFAULT_WHO


def _start_fields(planning: Planning, planned_id: int, body: PlanStart | None) -> dict[str, Any]:
    fields = planning.start_fields(planned_id)
    if body is not None:
        fields |= {k: v for k in ("parcours", "players", "children")
                   if (v := getattr(body, k)) is not None}
    return fields


@router.post("/{planned_id}/check", response_model=CheckAnswer)
async def check(planned_id: int, request: Request, planning: PlanningDep,
                service: ServiceDep, body: PlanStart | None = None) -> dict[str, Any]:
    """Open the game's check with the planned session's parcours and people (the console
    then goes on as usual: briefing, start); the session played is linked to the plan.
    A body corrects the plan on the day (``players``, ``children``, ``parcours``)."""
    with http_errors():
        fields = _start_fields(planning, planned_id, body)
        report = service.orders.begin_check(**fields, who=actor(request))
        if body is not None:
            apply_profile(body, service, request)
    if service.engine.session_id is not None:
        planning.link(planned_id, service.engine.session_id)
    return {"phase": str(service.engine.phase), **report}


@router.post("/{planned_id}/start", response_model=GameView)
async def start(planned_id: int, request: Request, planning: PlanningDep,
                service: ServiceDep, body: PlanStart | None = None) -> dict[str, Any]:
    """Start the planned session's game at once, without the check (« Lancer sans
    vérifier »: recorded as an override), linked to the plan like :func:`check`."""
    reason = body.override_reason if body is not None else None
    with http_errors():
        fields = _start_fields(planning, planned_id, body)
        service.orders.start_game(**fields, override=(reason or "").strip() or None, who=actor(request))
        if body is not None:
            apply_profile(body, service, request)
    if service.engine.session_id is not None:
        planning.link(planned_id, service.engine.session_id)
    return game_view(service.engine)
