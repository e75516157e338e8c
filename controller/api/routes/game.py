"""Game routes: state, pre-game check, briefing, start, pause, time, stop, overrides.

Every order is ``async def``: it runs on the event loop, like MQTT messages and the timer,
so the game's state changes one order at a time. The session's audit log records who
gave each order from the logged-in principal (``game master`` or ``technician``); a ``who``
in the body is still accepted but ignored (see :func:`controller.api.deps.actor`).

``POST /api/game/start`` works from every phase that can lead to a run: from briefing it
starts; from check it briefs first (every prop ready, or ``override_reason``); from idle,
or after a finished game, it opens a session and starts at once — the check is then
overridden with the reason « démarrage direct, sans vérification préalable » (or the one
given), recorded in the audit log.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from config.sheet import load_or_none as load_words_or_none
from controller import jsonsafe
from controller.api.access import GM, PUBLIC, SCREEN
from controller.api.auth import principal
from controller.api.deps import DEFAULT_WHO, ServiceDep, Who, actor, http_errors
from controller.api.errors import ApiError
from controller.api.models import (
    CheckAnswer,
    Debrief,
    EmergencyAnswer,
    EmergencyEnded,
    GameView,
    Health,
    ProfileView,
    ScreenView,
    Snapshot,
)
from controller.core.errors import InvalidValue
from controller.debrief import debrief as build_debrief
from controller.engine import PREPARING
from controller.outputs import release_message
from controller.profile import LANGUAGE_NAMES
from controller.service import GameService
from controller.views import game_view

router = APIRouter(prefix="/api", tags=["game"])
Parcours = Literal["primo", "locataire"]
_GROUP = ("parcours", "players", "children")


class _Order(BaseModel):
    model_config = ConfigDict(extra="forbid")

    who: Who = DEFAULT_WHO


class Order(_Order):
    """An order with nothing but who gives it."""


class ProfileChange(BaseModel):
    """The group's profile, or what changes of it (a field left out stays as it is)."""

    model_config = ConfigDict(extra="forbid")

    children: bool | None = None
    low_literacy: bool | None = Field(default=None, description="reads little French")
    language: Literal["en", "ar", "pt", "tr"] | None = Field(
        default=None, description="the explanations in this language too (null: French only)")
    hard_of_hearing: bool | None = None

    def given(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set}


class ProfileOrder(_Order, ProfileChange):
    """A change of the group's profile, and who orders it."""


class WithProfile(BaseModel):
    profile: ProfileChange | None = Field(default=None, description="the group's profile, kept "
                                          "with the session (POST /api/game/profile changes it)")


class GameCheck(_Order, WithProfile):
    parcours: Parcours = "primo"
    players: int = Field(default=4, ge=1, le=12)
    children: bool = False


class Override(BaseModel):
    override_reason: str | None = Field(
        default=None, max_length=300,
        description="why the game may start although some props are not ready (recorded)")

    @field_validator("override_reason")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


class GameBriefing(_Order, Override, WithProfile):
    parcours: Parcours | None = None
    players: int | None = Field(default=None, ge=1, le=12)
    children: bool | None = None


class GameStart(_Order, Override, WithProfile):
    parcours: Parcours = "primo"
    players: int = Field(default=4, ge=1, le=12)
    children: bool = False


class ResumeOrder(_Order):
    relock: bool = Field(default=False, description="lock again what the game holds locked "
                                                    "and an emergency opened")
    exit_doors: list[str] = Field(default_factory=list, max_length=20,
                                  description="exit doors (node.prop) to relock too: only on "
                                              "the game master's explicit choice")


class TimeChange(_Order):
    seconds: int = Field(ge=-3600, le=3600, description="seconds to add (negative: to remove)")

    @field_validator("seconds")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            msg = "le nombre de secondes ne peut pas être 0"
            raise InvalidValue(msg, en="seconds must not be 0")
        return value


def _group(body: BaseModel, service: GameService) -> dict[str, Any]:
    """The group fields to apply: all of them when a session opens, only those given when
    the session is already being prepared."""
    if service.engine.phase in PREPARING:
        return {k: getattr(body, k) for k in _GROUP if k in body.model_fields_set}
    return {k: getattr(body, k) for k in _GROUP}


def apply_profile(body: WithProfile, service: GameService, request: Request) -> None:
    """The profile given with an order that opens or prepares a session (same loop turn:
    no screen sees the session without it)."""
    if body.profile is not None and body.profile.given():
        service.orders.set_profile(who=actor(request, getattr(body, "who", DEFAULT_WHO)),
                                   **body.profile.given())


def profile_view(service: GameService) -> dict[str, Any]:
    engine = service.engine
    return {"profile": {"children": engine.children, **engine.profile.as_dict()},
            "languages": [{"code": c, "name": LANGUAGE_NAMES.get(c, c)} for c in engine.game.languages()]}


@router.get("/health", dependencies=[PUBLIC], response_model=Health,
            responses={503: {"model": Health, "description": "the controller runs, but degraded"}})
async def health(service: ServiceDep) -> Response:
    """200 ``ok`` when everything works; **503** ``degraded`` with what is wrong while the
    session log cannot be written (a full disk): the game goes on, nothing is lost yet
    (``store.waiting`` rows wait in memory since ``store.since``), but someone must act.
    Docker's health check then marks the container *unhealthy* (it does not restart it:
    a restart would lose the rows waiting in memory). No login needed."""
    store = service.journal.backlog.health()
    ok = store["ok"]
    body = {"ok": ok, "status": "ok" if ok else "degraded", "mqtt": service.bridge.connected,
            "store": store}
    return Response(jsonsafe.dumps(body, what="health"), status_code=200 if ok else 503,
                    media_type="application/json")


@router.get("/state", dependencies=[SCREEN], response_model=Snapshot | ScreenView)
async def state(request: Request, service: ServiceDep) -> dict[str, Any]:
    """The whole state for the staff; a room screen gets only its screen view."""
    return service.views.view(principal(request))


@router.get("/game/check", dependencies=[GM], response_model=CheckAnswer)
async def check_report(service: ServiceDep) -> dict[str, Any]:
    """Where every prop stands against its start state."""
    return {"phase": str(service.engine.phase), **service.check.report()}


@router.post("/game/check", dependencies=[GM], response_model=CheckAnswer)
async def check(request: Request, service: ServiceDep, body: GameCheck | None = None) -> dict[str, Any]:
    """Open a session and check the apartment: every prop is sent its start state (locks
    engaged, outputs at rest, keypads cleared, readers emptied). In check already: the
    props not ready yet are sent it again."""
    body = body or GameCheck()
    with http_errors():
        report = service.orders.begin_check(**_group(body, service), who=actor(request, body.who))
        apply_profile(body, service, request)
    return {"phase": str(service.engine.phase), **report}


@router.post("/game/briefing", dependencies=[GM], response_model=GameView)
async def briefing(request: Request, service: ServiceDep, body: GameBriefing | None = None) -> dict[str, Any]:
    """Check → briefing: every prop ready, or an ``override_reason``."""
    body = body or GameBriefing()
    with http_errors():
        service.orders.brief(override=body.override_reason, who=actor(request, body.who),
                             **_group(body, service))
        apply_profile(body, service, request)
    return game_view(service.engine)


@router.post("/game/start", dependencies=[GM], response_model=GameView)
async def start(request: Request, body: GameStart, service: ServiceDep) -> dict[str, Any]:
    with http_errors():
        service.orders.start_game(**_group(body, service), override=body.override_reason,
                           who=actor(request, body.who))
        apply_profile(body, service, request)
    return game_view(service.engine)


@router.post("/game/pause", dependencies=[GM], response_model=GameView)
async def pause(request: Request, service: ServiceDep, body: Order | None = None) -> dict[str, Any]:
    with http_errors():
        service.orders.pause(who=actor(request, (body or Order()).who))
    return game_view(service.engine)


@router.post("/game/resume", dependencies=[GM], response_model=GameView)
async def resume(request: Request, service: ServiceDep, body: ResumeOrder | None = None) -> dict[str, Any]:
    """Resume a paused game. ``{"relock": true}``: « Reprendre et reverrouiller » — the locks
    the game holds locked that an emergency opened are locked again (the snapshot's
    ``relock`` lists them); an exit door only when named in ``exit_doors``. Refused while
    the emergency alert lasts; a door that is not an open exit door: 409, nothing done."""
    body = body or ResumeOrder()
    with http_errors():
        service.orders.resume_game(relock=body.relock, exit_doors=body.exit_doors,
                                   who=actor(request, body.who))
    return game_view(service.engine)


@router.post("/game/time", dependencies=[GM], response_model=GameView)
async def change_time(request: Request, body: TimeChange, service: ServiceDep) -> dict[str, Any]:
    """Add time (``{"seconds": 300}``) or remove some (``{"seconds": -120}``)."""
    with http_errors():
        service.orders.add_time(body.seconds, who=actor(request, body.who))
    return game_view(service.engine)


@router.post("/game/stop", dependencies=[GM], response_model=GameView)
async def stop(request: Request, service: ServiceDep, body: Order | None = None) -> dict[str, Any]:
    """Abort the run (every lock opens), or cancel a session still in check or briefing."""
    with http_errors():
        service.orders.stop_game(who=actor(request, (body or Order()).who))
    return game_view(service.engine)


@router.post("/game/debrief", dependencies=[GM], response_model=GameView)
async def debrief(request: Request, service: ServiceDep, body: Order | None = None) -> dict[str, Any]:
    with http_errors():
        service.orders.debrief(who=actor(request, (body or Order()).who))
    return game_view(service.engine)


@router.get("/game/debrief", dependencies=[GM], response_model=Debrief)
async def current_debrief(service: ServiceDep) -> dict[str, Any]:
    """The debrief of the current session, or of the last one played when none is open."""
    session_id = service.engine.session_id
    if session_id is None:
        last = service.store.sessions(limit=1)
        session_id = last[0]["id"] if last else None
    row = service.store.session(session_id) if session_id else None
    if row is None:
        raise ApiError(404, "aucune session jouée", en="no session played")
    return build_debrief(row, service.game, load_words_or_none())


@router.post("/game/reset", dependencies=[GM], response_model=GameView)
async def reset(request: Request, service: ServiceDep, body: Order | None = None) -> dict[str, Any]:
    """Close the session (it stays in the history) and go back to idle."""
    with http_errors():
        service.orders.reset_game(who=actor(request, (body or Order()).who))
    return game_view(service.engine)


@router.post("/game/puzzles/{puzzle}/{action}", dependencies=[GM], response_model=GameView)
async def puzzle_order(request: Request, puzzle: str, action: Literal["solve", "reset", "skip"],
                       service: ServiceDep, body: Order | None = None) -> dict[str, Any]:
    """Force-solve a puzzle, reset it (players do it again), or skip to it (force-solve
    what it requires)."""
    who = actor(request, (body or Order()).who)
    with http_errors():
        if action == "solve":
            service.orders.force_solve(puzzle, who=who)
        elif action == "reset":
            service.orders.reset_puzzle(puzzle, who=who)
        else:
            service.orders.skip_to(puzzle, who=who)
    return game_view(service.engine)


@router.post("/emergency", dependencies=[GM], response_model=EmergencyAnswer,
             responses={202: {"model": EmergencyAnswer,
                              "description": "some locks are not confirmed open yet"}})
async def emergency(request: Request, response: Response, service: ServiceDep,
                    body: Order | None = None) -> dict[str, Any]:
    """Open every lock of the apartment at once and raise the alert (retained ``Emergency``
    message: a node that reconnects releases at once). No confirmation, always accepted.

    Waits up to 1 s (without holding anything else up) for the nodes to report their relays
    open, then answers which locks are **confirmed** open (with the milliseconds it took)
    and which are **not** (with why: broker unreachable, room offline, no answer), and a
    French ``message`` that says plainly when nothing was confirmed. 200: every lock
    confirmed open; 202: accepted, some not confirmed (they are resent until they are).
    """
    keys = service.orders.emergency(who=actor(request, (body or Order()).who))
    await service.outputs.wait_confirmed(keys)
    report = service.outputs.lock_report(keys)
    if not report["all_confirmed"]:
        response.status_code = 202
    return {**report, "message": release_message(report), "emergency": service.alert.view()}


@router.post("/emergency/end", dependencies=[GM], response_model=EmergencyEnded)
async def end_emergency(request: Request, service: ServiceDep, body: Order | None = None) -> dict[str, Any]:
    """« Fin de l'alerte »: clears the retained emergency (audited). Nothing is locked
    again: the locks stay open until the game master locks them or a game starts."""
    with http_errors():
        service.orders.end_emergency(who=actor(request, (body or Order()).who))
    return {"emergency": service.alert.view(),
            "message": "Fin de l'alerte : les ventouses restent ouvertes, rien n'est reverrouillé."}


@router.get("/game/profile", dependencies=[GM], response_model=ProfileView)
async def get_profile(service: ServiceDep) -> dict[str, Any]:
    """The group's profile, and the languages the game file is translated into."""
    return profile_view(service)


@router.post("/game/profile", dependencies=[GM], response_model=ProfileView)
async def change_profile(request: Request, body: ProfileOrder, service: ServiceDep) -> dict[str, Any]:
    """Change the group's profile, in any phase of a session (the fields given; ``language``
    null: French only). How the room screens render cues changes at once, not the puzzles.
    No session: 409; a language the game file has no translation for: 409."""
    with http_errors():
        service.orders.set_profile(who=actor(request, body.who),
                                   **{k: v for k, v in body.given().items() if k != "who"})
    return profile_view(service)
