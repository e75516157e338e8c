"""Technician routes (``/api/tech/*``, technician only: ``TECH``, controller/api/access.py).

A request goes to the node over MQTT (``…/nodes/<node>/tech``, :class:`TechRequest`); the
node runs the prop's own self-test or waits for the next RFID tag, and answers on
``…/tech/reply``. Every request is written to the audit log.

* ``POST /api/tech/{node}/{prop}/test`` ``{"timeout": 10}``: the prop's self-test (a lock
  clicks unlock → lock → unlock, an LED blinks, a relay pulses, an input waits for a hand,
  a reader checks its chip). Refused (409) for locks and outputs while a game is played.
* ``POST /api/tech/{node}/{prop}/enroll`` ``{"name": "vinaigre_blanc", "timeout": 20}``:
  the UID of the next tag presented to an RFID reader (or sorting bin); with a ``name`` it
  is kept under that name (``GET /api/tech/enrolled``) with the YAML lines to paste under
  the prop's ``tags:`` in the game file (the game file itself is never rewritten).

Unknown node or prop: 404; node offline: 503; no answer in time: 504.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from controller.api.access import TECH
from controller.api.deps import ServiceDep, actor, http_errors
from controller.api.errors import ApiError
from controller.api.models import Enrolled, EnrolledTags, SelfTest
from controller.tech import NodeTimeout, NodeUnavailable

router = APIRouter(prefix="/api/tech", tags=["technician"], dependencies=[TECH])
TAG_NAME = r"^[a-z0-9][a-z0-9_]{0,39}$"


class TechTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=10.0, gt=0, le=60,
                           description="seconds an input waits for a hand (a lock does not wait)")


class TechEnroll(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=TAG_NAME,
                             description="keep the tag under this name (lower_snake_case)")
    timeout: float = Field(default=20.0, gt=0, le=60, description="seconds to wait for a tag")


@contextmanager
def _errors() -> Iterator[None]:
    with http_errors():
        try:
            yield
        except NodeUnavailable as exc:
            raise ApiError.of(503, exc) from exc
        except NodeTimeout as exc:
            raise ApiError.of(504, exc) from exc


def yaml_lines(uid: str, name: str | None) -> str:
    return f'tags:\n  "{uid}": {name or "nom_du_badge"}'


@router.post("/{node}/{prop}/test", response_model=SelfTest)
async def self_test(request: Request, node: str, prop: str, service: ServiceDep,
                    body: TechTest | None = None) -> dict[str, Any]:
    """Run the prop's self-test on its node; ``ok`` and the steps the node reports."""
    body = body or TechTest()
    with _errors():
        reply = await service.tech.request(node, prop, "self_test", timeout=body.timeout,
                                           who=actor(request))
    steps = reply.result if isinstance(reply.result, list) else []
    return {"node": node, "prop": prop, "ok": reply.ok, "steps": steps, "message": reply.message}


@router.post("/{node}/{prop}/enroll", response_model=Enrolled)
async def enroll(request: Request, node: str, prop: str, service: ServiceDep,
                 body: TechEnroll | None = None) -> dict[str, Any]:
    """Read the next tag presented to an RFID reader; keep it under ``name`` if given."""
    body = body or TechEnroll()
    who = actor(request)
    with _errors():
        reply = await service.tech.request(node, prop, "enroll", timeout=body.timeout, who=who)
    uid = reply.result if reply.ok and isinstance(reply.result, str) else None
    answer: dict[str, Any] = {"node": node, "prop": prop, "ok": uid is not None, "uid": uid,
                              "name": None, "message": reply.message, "yaml": None}
    if uid is not None:
        if body.name:
            answer["name"] = service.tech.remember_tag(node, prop, uid, body.name, who=who)["name"]
        answer["yaml"] = yaml_lines(uid, body.name)
    elif reply.message in ("", "no tag presented in time"):
        answer["message"] = "aucun badge présenté à temps"
    return answer


@router.get("/enrolled", response_model=EnrolledTags)
async def enrolled(service: ServiceDep) -> dict[str, Any]:
    """The tags enrolled from the technician page, newest last."""
    return {"tags": service.tech.enrolled_tags()}
