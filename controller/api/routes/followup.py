"""The follow-up phone calls (docs/evaluation.md): consent, call list, answers, erasure.

``GET /api/followup/questionnaire`` the purpose and the questions; ``POST
/api/followup/sessions/{id}/contacts`` a household's number with its consent (a finished
session only; no consent, no number); ``GET /api/followup/calls`` the numbers due (a month
after; ``?all=true`` every contact); ``POST /api/followup/contacts/{id}/call`` the answers
(the number is erased); ``GET /api/followup/contacts/{id}`` everything kept about one
household; ``DELETE /api/followup/contacts/{id}`` erase it on request. Every access is
audited; numbers older than 3 months are erased before any answer. The game master's role
only: the technician is refused (403) — GDPR keeps the numbers to those who call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from config import followup as questionnaire_file
from controller.api.access import GM_ONLY
from controller.api.deps import ServiceDep, StoreDep, actor, http_errors
from controller.api.errors import ApiError
from controller.api.models import (
    FollowupContact,
    FollowupContacts,
    FollowupErased,
    FollowupExport,
    Questionnaire,
)
from controller.followup import BadAnswer, Followup

router = APIRouter(prefix="/api/followup", tags=["followup"], dependencies=[GM_ONLY])


def get_followup(store: StoreDep, service: ServiceDep) -> Followup:
    return Followup(store, questionnaire_file.load(), wall=service.wall)


FollowupDep = Annotated[Followup, Depends(get_followup)]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        with http_errors():
            yield
    except BadAnswer as exc:
        raise ApiError.of(422, exc) from exc


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=30)
    consent: bool = Field(description="the household agreed to be called once, for the purpose said")


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answers: dict[str, JsonValue] = Field(max_length=50, description="question id → answer")


@router.get("/questionnaire", response_model=Questionnaire)
def questionnaire() -> dict[str, Any]:
    """The purpose said to the household, and the questions of the call."""
    q = questionnaire_file.load()
    return {"purpose": q.purpose.fr, "purpose_en": q.purpose.get("en"),
            "questions": [{"id": x.id, "kind": x.kind, "text": x.text.fr, "text_en": x.text.get("en"),
                           "options": [o.fr for o in x.options],
                           "options_en": [o.get("en") for o in x.options]} for x in q.questions]}


@router.post("/sessions/{session_id}/contacts", response_model=FollowupContact, status_code=201)
def consent(session_id: str, body: ConsentIn, request: Request, followup: FollowupDep) -> dict[str, Any]:
    """A household's phone number, with its consent to be called once a month later."""
    with _errors():
        return followup.consent(session_id, phone=body.phone, consent=body.consent, who=actor(request))


@router.get("/calls", response_model=FollowupContacts)
def calls(request: Request, followup: FollowupDep, all: bool = False) -> dict[str, Any]:
    """The call list: numbers whose month has passed and not called yet (audited)."""
    return {"contacts": followup.due(who=actor(request), include_all=all)}


@router.post("/contacts/{contact_id}/call", response_model=FollowupContact)
def call(contact_id: int, body: CallIn, request: Request, followup: FollowupDep) -> dict[str, Any]:
    """The call's answers: kept with the session; the number is erased."""
    with _errors():
        return followup.record_call(contact_id, body.answers, who=actor(request))


@router.get("/contacts/{contact_id}", response_model=FollowupExport)
def export(contact_id: int, request: Request, followup: FollowupDep) -> dict[str, Any]:
    """Everything kept about one household's follow-up, and every access to it (audited)."""
    with _errors():
        return followup.export(contact_id, who=actor(request))


@router.delete("/contacts/{contact_id}", response_model=FollowupErased)
def erase(contact_id: int, request: Request, followup: FollowupDep) -> dict[str, Any]:
    """Erase a household's number and answers, on its request (audited)."""
    with _errors():
        return followup.erase(contact_id, who=actor(request))
