"""Technician route: reload the game file into the running controller (controller/reload.py).

``POST /api/config/reload`` (technician only, see ``controller/api/auth.py``) does what
``SIGHUP`` to the controller process does: validate the file the controller was started
with and take it if allowed. 200 ``{"status": "reloaded" | "unchanged", …}``; 202
``pending`` when a session is open (taken as soon as it is over); 422 with every error
(file and line) when the file is invalid; 409 when the apartment id changed. Nothing
changes unless the answer is 200 ``reloaded`` or 202 ``pending``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from controller.api.access import TECH
from controller.api.deps import DEFAULT_WHO, ServiceDep, Who, actor
from controller.api.errors import ApiError
from controller.api.models import Reloaded
from controller.reload import ReloadRefused, ReloadResult, reload_game

router = APIRouter(prefix="/api/config", tags=["config"], dependencies=[TECH])


class ReloadOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    who: Who = DEFAULT_WHO


@router.post("/reload", response_model=Reloaded, responses={202: {"model": Reloaded}})
async def reload(request: Request, response: Response, service: ServiceDep,
                 body: ReloadOrder | None = None) -> ReloadResult:
    """Validate the game file again and make it the game, and the nodes' (between two
    sessions: during one it waits for its end)."""
    path = getattr(request.app.state, "config_path", None)
    if path is None:
        raise ApiError(409, "ce contrôleur n'a pas de fichier de jeu à recharger",
                       en="this controller has no game file to reload", errors=[])
    try:
        result = reload_game(service, path, who=actor(request, (body or ReloadOrder()).who))
    except ReloadRefused as exc:
        raise ApiError.of(exc.status, exc, errors=exc.errors) from exc
    if result.status == "pending":
        response.status_code = 202
    return result
