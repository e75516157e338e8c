"""Dependencies shared by the routes (``Annotated`` aliases, as the FastAPI template does)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from pydantic import Field

from controller.engine import GAME_MASTER, EngineError, NotFoundError
from controller.service import GameService
from controller.store import Store


def get_service(request: Request) -> GameService:
    return request.app.state.service


def get_store(request: Request) -> Store:
    return request.app.state.service.store


ServiceDep = Annotated[GameService, Depends(get_service)]
StoreDep = Annotated[Store, Depends(get_store)]
#: who gives an order, for the audit log (a role or a name; authentication comes later)
Who = Annotated[str, Field(min_length=1, max_length=60, description="who gives the order (audit log)")]
DEFAULT_WHO = GAME_MASTER


@contextmanager
def http_errors() -> Iterator[None]:
    """Orders the game refuses become clear HTTP errors: unknown thing 404, wrong phase 409.

    Nothing has changed when they are raised: the engine checks before it acts.
    """
    try:
        yield
    except (NotFoundError, LookupError) as exc:
        raise HTTPException(status_code=404, detail=str(exc).strip("'\"")) from exc
    except EngineError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
