"""Rehearsal routes (demo/rehearsal mode only): a simulated hand on a simulated prop.

The gesture goes over MQTT to the simulated node, which drives its MockFactory pins:
the node's real code sees exactly what a real keypad or door would do.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from controller.api.deps import ServiceDep

router = APIRouter(prefix="/api/sim", tags=["simulation"])


class GestureIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)   # sent on to a node

    gesture: str = Field(min_length=1, max_length=40)
    value: JsonValue = None


@router.post("/{node}/{prop}")
def gesture(node: str, prop: str, body: GestureIn, service: ServiceDep) -> dict[str, Any]:
    try:
        gesture_id = service.simulate(node, prop, body.gesture, body.value)
    except LookupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    return {"gesture_id": gesture_id}
