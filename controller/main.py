"""Builds the controller's FastAPI app and runs it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from config.game import Game
from controller.api.routes import game as game_routes
from controller.api.routes import props as prop_routes
from controller.api.routes import sim as sim_routes
from controller.api.routes import ws as ws_routes
from controller.core.config import Settings
from controller.mqtt import MqttBridge
from controller.service import GameService
from nodes import contract
from nodes.contract import Topics
from nodes.mqtt import BrokerAddress, read_secret_file

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "static"


def create_app(*, game: Game, broker: BrokerAddress, demo: bool = False) -> FastAPI:
    """The app: one MQTT client and one game service for its whole life (lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bridge = MqttBridge(topics=Topics(game.apartment.id), broker=broker,
                            boot_id=contract.new_id())
        service = GameService(game=game, bridge=bridge, demo=demo)
        app.state.service = service
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="Escape apartment controller", lifespan=lifespan)
    app.include_router(game_routes.router)
    app.include_router(prop_routes.router)
    app.include_router(ws_routes.router)
    if demo:
        app.include_router(sim_routes.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/static/index.html")

    return app


def broker_from_settings(settings: Settings, override: str | None = None) -> BrokerAddress:
    password = settings.MQTT_PASSWORD
    if password is None and settings.MQTT_PASSWORD_FILE is not None:
        password = read_secret_file(settings.MQTT_PASSWORD_FILE)
    if override:
        return BrokerAddress.parse(override, username=settings.MQTT_USERNAME, password=password)
    return BrokerAddress(settings.MQTT_HOST, settings.MQTT_PORT, settings.MQTT_USERNAME, password)


def run_controller(*, config: str | None, broker: str | None, host: str | None,
                   port: int | None) -> int:
    import uvicorn

    from config.loader import GameConfigError, load_game

    settings = Settings()
    try:
        game = load_game(config or settings.CONFIG)
    except GameConfigError as exc:
        log.error("the game file has errors; controller not started:\n%s", exc)
        return 2
    app = create_app(game=game, broker=broker_from_settings(settings, broker), demo=settings.DEMO)
    uvicorn.run(app, host=host or settings.HTTP_HOST, port=port or settings.HTTP_PORT,
                log_level="info")
    return 0
