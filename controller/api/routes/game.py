"""Game routes: read the state, start, stop, emergency release."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from controller.api.deps import ServiceDep
from controller.engine import EngineError

router = APIRouter(prefix="/api", tags=["game"])


class GameStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parcours: Literal["primo", "locataire"] = "primo"
    players: int = Field(default=4, ge=1, le=12)
    children: bool = False


@router.get("/health")
def health(service: ServiceDep) -> dict[str, Any]:
    return {"ok": True, "mqtt": service.bridge.connected}


@router.get("/state")
def state(service: ServiceDep) -> dict[str, Any]:
    return service.snapshot()


@router.post("/game/start")
def start(body: GameStart, service: ServiceDep) -> dict[str, Any]:
    try:
        service.start_game(parcours=body.parcours, players=body.players, children=body.children)
    except EngineError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    return service.engine.snapshot()


@router.post("/game/stop")
def stop(service: ServiceDep) -> dict[str, Any]:
    try:
        service.stop_game()
    except EngineError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    return service.engine.snapshot()


@router.post("/emergency")
def emergency(service: ServiceDep) -> dict[str, Any]:
    """Open every lock of the apartment at once. No confirmation, always allowed."""
    service.emergency(who="game master (API)")
    return {"released": [f"{n}.{p}" for n, p in service._maglocks]}
