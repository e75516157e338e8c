"""Dependencies shared by the routes (``Annotated`` aliases, as the FastAPI template does)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from controller.service import GameService


def get_service(request: Request) -> GameService:
    return request.app.state.service


ServiceDep = Annotated[GameService, Depends(get_service)]
