"""Builds the controller's FastAPI app and runs it."""

from __future__ import annotations

import gc
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from config.game import Game
from controller.api import auth as auth_api
from controller.api import errors as api_errors
from controller.api.auth import AuthConfigError, AuthMiddleware, AuthSettings
from controller.api.routes import clues as clue_routes
from controller.api.routes import config as config_routes
from controller.api.routes import game as game_routes
from controller.api.routes import history as history_routes
from controller.api.routes import pages as page_routes
from controller.api.routes import props as prop_routes
from controller.api.routes import sim as sim_routes
from controller.api.routes import tech as tech_routes
from controller.api.routes import ws as ws_routes
from controller.core.config import Settings
from controller.mqtt import MqttBridge
from controller.reload import install_sighup
from controller.service import GameService
from controller.store import Store, StoreError, default_path
from protocol import contract
from protocol.contract import Topics
from protocol.mqtt import BrokerAddress
from protocol.secrets import read_secret_file

log = logging.getLogger(__name__)
#: uvicorn's ``ws_per_message_deflate`` for every controller (service, demo, bench): off.
#: With it uvicorn compresses each 16 KB snapshot once per WebSocket client, on the loop,
#: for nothing on a LAN (docs/performance.md: push p99 13.4 → 5.7 ms with 20 clients)
WS_PER_MESSAGE_DEFLATE = False
STATIC_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "static"


def create_app(*, game: Game, broker: BrokerAddress, demo: bool = False, db_path: Path | None = None,
               clock: Callable[[], float] = time.monotonic,
               wall: Callable[[], float] = time.time,
               auth: AuthSettings | None = None, config_path: Path | None = None,
               freeze_gc: bool = False) -> FastAPI:
    """The app: one MQTT client, one session store and one game service for its whole life.

    *db_path* is the SQLite file of the sessions (default: ``Settings().DATA_DIR /
    "escape.db"``); a controller started on the file of one killed mid-game resumes that
    game. *clock* (monotonic, for the timer) and *wall* (for records) are for tests.
    *auth* holds the credentials (:mod:`controller.api.auth`); ``None`` turns access control
    off, for benches and unit tests only: :func:`run_controller` and the demo always pass one.
    *config_path* is the game file that ``SIGHUP`` and ``POST /api/config/reload`` load again
    (``controller/reload.py``); ``None``: no reload.
    *freeze_gc*: once started, move every object so far out of the garbage collector's
    sight (``gc.freeze()``, for the programs: :func:`run_controller`, the demo, the bench;
    not for tests, which build many apps in one process).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = Settings()
        store = Store(db_path if db_path is not None else default_path(settings.DATA_DIR))
        bridge = MqttBridge(topics=Topics(game.apartment.id), broker=broker,
                            boot_id=contract.new_id(), keepalive=settings.MQTT_KEEPALIVE)
        service = GameService(game=game, bridge=bridge, store=store, demo=demo, clock=clock, wall=wall)
        app.state.service = service
        try:
            await service.start()
            if config_path is not None:
                install_sighup(service, config_path)
            if freeze_gc:
                freeze_startup_objects()
            yield
        finally:
            try:
                await service.stop()
            finally:
                store.close()

    app = FastAPI(title="Escape apartment controller", lifespan=lifespan)
    api_errors.install(app)   # every error French first: {"detail": …, "detail_en": …}
    # -- access control (issue "Web pages"): one ASGI middleware for HTTP and WebSocket --
    app.state.auth = auth or AuthSettings.disabled()
    app.state.config_path = config_path
    app.add_middleware(AuthMiddleware, settings=app.state.auth)
    app.include_router(auth_api.router)
    app.include_router(page_routes.router)
    app.include_router(tech_routes.router)
    # -- end access control --
    app.include_router(game_routes.router)
    app.include_router(prop_routes.router)
    app.include_router(clue_routes.router)
    app.include_router(history_routes.router)
    app.include_router(config_routes.router)
    app.include_router(ws_routes.router)
    if demo:
        app.include_router(sim_routes.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(sqlite3.OperationalError, store_unavailable)
    app.add_exception_handler(StoreError, store_unavailable)
    return app


async def store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """A request that writes to the database at once (an evaluation, an enrolled tag) while
    it cannot be written (a full disk): 503, in words, nothing half done. The game's own
    writes never get here: they wait in memory (:class:`controller.journal.Backlog`)."""
    log.error("a request could not be written to the session database: %s", exc)
    return JSONResponse(api_errors.error_body(
        f"enregistrement impossible ({exc}) : disque plein ? Réessayez une fois la place libérée.",
        f"cannot record ({exc}): disk full? Try again once space is freed."), status_code=503)


def freeze_startup_objects() -> None:
    """``gc.collect()`` then ``gc.freeze()``: what start-up built (modules, models, routes,
    the game) lives as long as the process; the collector stops walking it on every full
    collection, which was a few ms in the middle of a key → lock path now and then
    (docs/performance.md). Objects made later are collected as usual."""
    gc.collect()
    gc.freeze()


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
    config_path = Path(config or settings.CONFIG)
    try:
        game = load_game(config_path)
    except GameConfigError as exc:
        log.error("the game file has errors; controller not started:\n%s", exc)
        return 2
    try:   # access control (issue "Web pages"): refuse to start without credentials
        auth = AuthSettings.from_env(demo=settings.DEMO)
    except (AuthConfigError, OSError) as exc:
        log.error("access control not configured; controller not started: %s", exc)
        return 2
    app = create_app(game=game, broker=broker_from_settings(settings, broker), demo=settings.DEMO,
                     db_path=default_path(settings.DATA_DIR), auth=auth, config_path=config_path,
                     freeze_gc=True)
    uvicorn.run(app, host=host or settings.HTTP_HOST, port=port or settings.HTTP_PORT,
                log_level="info", ws_per_message_deflate=WS_PER_MESSAGE_DEFLATE)
    return 0
