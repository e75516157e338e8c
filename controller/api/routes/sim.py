"""Rehearsal routes (demo/rehearsal mode only): a simulated hand on a simulated prop.

The gesture goes over MQTT to the simulated node, which drives its MockFactory pins:
the node's real code sees exactly what a real keypad or door would do. A gesture the prop
does not have, or a value it does not take, is refused here (422, in French, with the
prop's gestures), as is one for a node offline (503) or driving real hardware (409): then
nothing is published.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from controller.api.deps import ServiceDep
from controller.engine import EngineError
from controller.service import NodeUnavailable
from props.exc import BadActionParams
from props.sim import UnknownGesture

router = APIRouter(prefix="/api/sim", tags=["simulation"])


class GestureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gesture: str = Field(min_length=1, max_length=40)
    value: JsonValue = None


@router.post("/{node}/{prop}", response_model=None)
def gesture(node: str, prop: str, body: GestureIn, service: ServiceDep) -> dict[str, Any] | JSONResponse:
    try:
        gesture_id = service.simulate(node, prop, body.gesture, body.value)
    except LookupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    except UnknownGesture as exc:
        return JSONResponse(status_code=422, content={
            "detail": str(exc), "gestures": [g.public() for g in exc.known]})
    except BadActionParams as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    except NodeUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    except EngineError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    return {"gesture_id": gesture_id}
