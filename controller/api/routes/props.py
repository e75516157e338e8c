"""Prop routes: the game master's hand on any lock or output."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from controller.api.deps import ServiceDep
from controller.engine import EngineError

router = APIRouter(prefix="/api/props", tags=["props"])


class PropOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, JsonValue] = Field(default_factory=dict)


@router.post("/{node}/{prop}/{action}")
def order(node: str, prop: str, action: str, service: ServiceDep,
          body: PropOrder | None = None) -> dict[str, Any]:
    """Lock, unlock, or command a prop (``on``, ``off``, ``blink``, ``pulse``, ``reset``)."""
    if action not in ("lock", "unlock", "on", "off", "blink", "pulse", "beep", "reset", "clear"):
        raise HTTPException(status_code=422, detail=f"unknown action {action!r}")
    try:
        command_id = service.prop_order(node, prop, action, dict((body or PropOrder()).params))
    except LookupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except EngineError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    return {"command_id": command_id}
