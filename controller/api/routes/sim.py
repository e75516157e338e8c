"""Rehearsal routes (demo/rehearsal mode only): a simulated hand on a simulated prop.

The gesture goes over MQTT to the simulated node, which drives its MockFactory pins:
the node's real code sees exactly what a real keypad or door would do.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from controller.api.deps import ServiceDep
from controller.api.errors import ApiError
from controller.core.errors import NotFoundError

router = APIRouter(prefix="/api/sim", tags=["simulation"])


class GestureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gesture: str = Field(min_length=1, max_length=40)
    value: JsonValue = None


@router.post("/{node}/{prop}")
def gesture(node: str, prop: str, body: GestureIn, service: ServiceDep) -> dict[str, Any]:
    try:
        gesture_id = service.simulate(node, prop, body.gesture, body.value)
    except NotFoundError as exc:
        raise ApiError.of(404, exc) from exc
    return {"gesture_id": gesture_id}
