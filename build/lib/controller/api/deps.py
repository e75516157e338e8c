"""Dependencies shared by the routes (``Annotated`` aliases, as the FastAPI template does)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Request
from pydantic import Field

from controller.api.auth import principal
from controller.api.errors import ApiError
from controller.engine import GAME_MASTER, EngineError, NotFoundError
from controller.service import GameService
from controller.store import Store


def get_service(request: Request) -> GameService:
    return request.app.state.service


def get_store(request: Request) -> Store:
    return request.app.state.service.store


ServiceDep = Annotated[GameService, Depends(get_service)]
StoreDep = Annotated[Store, Depends(get_store)]
#: the ``who`` of a request body: still accepted (older pages send it) but not trusted
Who = Annotated[str, Field(min_length=1, max_length=60,
                           description="ignored when access control is on: the audit log "
                                       "records the logged-in role")]
DEFAULT_WHO = GAME_MASTER


def actor(request: Request, claimed: str | None = None) -> str:
    """Who the audit log records for an order: the authenticated principal (``game master``,
    ``technician``). A ``who`` sent in the body is ignored — anyone could write anything
    there; only with access control off (benches, unit tests) is it taken as given."""
    settings = getattr(request.app.state, "auth", None)
    if settings is not None and settings.enabled:
        return principal(request).who
    return claimed or DEFAULT_WHO


@contextmanager
def http_errors() -> Iterator[None]:
    """Orders the game refuses become clear HTTP errors: unknown thing 404, wrong phase 409.

    Nothing has changed when they are raised: the engine checks before it acts.
    """
    try:
        yield
    except NotFoundError as exc:
        raise ApiError.of(404, exc) from exc
    except EngineError as exc:
        raise ApiError.of(409, exc) from exc
