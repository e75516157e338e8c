"""Rehearsal routes (demo/rehearsal mode only): a simulated hand on a simulated prop.

The gesture goes over MQTT to the simulated node, which drives its MockFactory pins:
the node's real code sees exactly what a real keypad or door would do. A gesture the prop
does not have, or a value it does not take, is refused here (422, in French, with the
prop's gestures), as is one for a node offline (503) or driving real hardware (409): then
nothing is published.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from controller.api.access import GM
from controller.api.deps import ServiceDep
from controller.api.errors import ApiError
from controller.api.models import GestureSent
from controller.core.errors import EngineError, NotFoundError
from controller.tech import NodeUnavailable
from props.exc import BadActionParams
from props.sim import UnknownGesture

router = APIRouter(prefix="/api/sim", tags=["simulation"], dependencies=[GM])


class GestureIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)   # sent on to a node

    gesture: str = Field(min_length=1, max_length=40)
    value: JsonValue = None


@router.post("/{node}/{prop}", response_model=GestureSent)
def gesture(node: str, prop: str, body: GestureIn, service: ServiceDep) -> dict[str, Any]:
    try:
        gesture_id = service.tech.simulate(node, prop, body.gesture, body.value)
    except NotFoundError as exc:
        raise ApiError.of(404, exc) from exc
    except UnknownGesture as exc:
        known = ", ".join(g.name for g in exc.known)
        en = f"unknown gesture {body.gesture!r} for {node}.{prop}; known: {known}"
        raise ApiError(422, str(exc), en=en, gestures=[g.public() for g in exc.known]) from exc
    except BadActionParams as exc:
        en = f"gesture {body.gesture!r} does not take the value {body.value!r}"
        raise ApiError(422, str(exc), en=en) from exc
    except NodeUnavailable as exc:
        raise ApiError.of(503, exc) from exc
    except EngineError as exc:
        raise ApiError.of(409, exc) from exc
    return {"gesture_id": gesture_id}
