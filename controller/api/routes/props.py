"""Prop routes: the game master's hand on any lock or output (audited)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from controller.api.deps import DEFAULT_WHO, ServiceDep, Who, actor, http_errors

router = APIRouter(prefix="/api/props", tags=["props"])

ACTIONS = ("lock", "unlock", "on", "off", "blink", "pulse", "beep", "reset", "clear")


class PropOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)   # sent on to a node

    params: dict[str, JsonValue] = Field(default_factory=dict)
    who: Who = DEFAULT_WHO


@router.post("/{node}/{prop}/{action}")
async def order(request: Request, node: str, prop: str, action: str, *, service: ServiceDep,
                body: PropOrder | None = None) -> dict[str, Any]:
    """Lock, unlock, or command a prop (``on``, ``off``, ``blink``, ``pulse``, ``reset``)."""
    if action not in ACTIONS:
        raise HTTPException(status_code=422, detail=f"action inconnue {action!r} : {', '.join(ACTIONS)}")
    body = body or PropOrder()
    with http_errors():
        command_id = service.prop_order(node, prop, action, dict(body.params),
                                        who=actor(request, body.who))
    return {"command_id": command_id}
