"""Builds the controller's FastAPI app and runs it."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from config.game import Game
from controller.api import access
from controller.api import errors as api_errors
from controller.api.auth import AuthConfigError, AuthSettings
from controller.api.routes import clues as clue_routes
from controller.api.routes import config as config_routes
from controller.api.routes import debrief as debrief_routes
from controller.api.routes import followup as followup_routes
from controller.api.routes import game as game_routes
from controller.api.routes import history as history_routes
from controller.api.routes import media as media_routes
from controller.api.routes import pages as page_routes
from controller.api.routes import planning as planning_routes
from controller.api.routes import props as prop_routes
from controller.api.routes import sim as sim_routes
from controller.api.routes import tech as tech_routes
from controller.api.routes import ws as ws_routes
from controller.backup import Backups, default_directory
from controller.core.config import Settings
from controller.followup import Followup, purge_every
from controller.media import MediaLibrary
from controller.mqtt import MqttBridge
from controller.reload import install_sighup
from controller.service import GameService
from controller.speech import Speech
from controller.store import Store, StoreError, default_path
from protocol import contract
from protocol.contract import Topics
from protocol.mqtt import BrokerAddress
from protocol.settings import settings_error

log = logging.getLogger(__name__)
#: uvicorn's ``ws_per_message_deflate`` for every controller (service, demo, bench): off.
#: With it uvicorn compresses each 16 KB snapshot once per WebSocket client, on the loop,
#: for nothing on a LAN (docs/performance.md: push p99 13.4 → 5.7 ms with 20 clients)
WS_PER_MESSAGE_DEFLATE = False
STATIC_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "static"
#: the largest request body read (413 beyond, FastAPI's max_body_size): every order is a
#: few hundred bytes, and FastAPI reads a body before the route's role is checked, so
#: without a bound anyone on the network could fill the controller's memory
MAX_BODY_BYTES = 1024 * 1024


def create_app(*, game: Game, broker: BrokerAddress, demo: bool = False, db_path: Path | None = None,
               clock: Callable[[], float] = time.monotonic,
               wall: Callable[[], float] = time.time,
               auth: AuthSettings | None = None, config_path: Path | None = None,
               freeze_gc: bool = False, settings: Settings | None = None,
               media: MediaLibrary | None = None) -> FastAPI:
    """The app: one MQTT client, one session store and one game service for its whole life.

    *settings* is the process's settings object (default: read from the environment now);
    the app takes its MQTT keepalive and data directory from it.
    *db_path* is the SQLite file of the sessions (default: ``settings.DATA_DIR /
    "escape.db"``); a controller started on the file of one killed mid-game resumes that
    game. *clock* (monotonic, for the timer) and *wall* (for records) are for tests.
    *auth* holds the credentials (:mod:`controller.api.auth`); ``None`` turns access control
    off, for benches and unit tests only: :func:`run_controller` and the demo always pass one.
    *config_path* is the game file that ``SIGHUP`` and ``POST /api/config/reload`` load again
    (``controller/reload.py``); ``None``: no reload.
    *freeze_gc*: once started, move every object so far out of the garbage collector's
    sight (``gc.freeze()``, for the programs: :func:`run_controller`, the demo, the bench;
    not for tests, which build many apps in one process).
    *media*: the media library (default: :func:`media_library` of the data directory);
    spoken clues are cached beside it (``speech/``).
    """

    settings = settings or Settings()
    data_dir = db_path.parent if db_path is not None else settings.DATA_DIR
    media = media or media_library(data_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(db_path if db_path is not None else default_path(settings.DATA_DIR))
        bridge = MqttBridge(topics=Topics(game.apartment.id), broker=broker,
                            boot_id=contract.new_id(), keepalive=settings.MQTT_KEEPALIVE,
                            transport=settings.MQTT_TRANSPORT, clock=clock)
        live = store.path
        backups = Backups(live, settings.BACKUP_DIR or default_directory(live),
                          create=settings.BACKUP_DIR is None, nightly=settings.BACKUP_AT,
                          wall=wall) if live is not None else None
        service = GameService(game=game, bridge=bridge, store=store, demo=demo, clock=clock, wall=wall,
                              backups=backups,
                              source=config_path.name if config_path is not None else None,
                              media=media)
        app.state.service = service
        purge = asyncio.create_task(purge_every(Followup(store, wall=service.wall)))
        try:
            await service.start()
            if config_path is not None:
                install_sighup(service, config_path)
            if freeze_gc:
                freeze_startup_objects()
            yield
        finally:
            purge.cancel()
            try:
                await service.stop()
            finally:
                store.close()

    # the API's docs are routes of pages.py, for staff only, like every other route
    app = FastAPI(title="Escape apartment controller", lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None, max_body_size=MAX_BODY_BYTES)
    api_errors.install(app)   # every error French first: {"detail": …, "detail_en": …}
    access.install(app, auth or AuthSettings.disabled())   # each route declares its role
    app.state.config_path = config_path
    app.state.media = media
    app.state.speech = Speech(data_dir / "speech")
    app.include_router(page_routes.router)
    app.include_router(tech_routes.router)
    app.include_router(game_routes.router)
    app.include_router(prop_routes.router)
    app.include_router(clue_routes.router)
    app.include_router(history_routes.router)
    app.include_router(planning_routes.router)
    for extra in (followup_routes, debrief_routes):
        app.include_router(extra.router)
    app.include_router(config_routes.router)
    app.include_router(media_routes.router)
    app.include_router(ws_routes.router)
    if demo:
        app.include_router(sim_routes.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(sqlite3.OperationalError, store_unavailable)
    app.add_exception_handler(StoreError, store_unavailable)
    access.check_routes(app)
    return app


async def store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """A request that writes to the database at once (an evaluation, an enrolled tag) while
    it cannot be written (a full disk): 503, in words, nothing half done. The game's own
    writes never get here: they wait in memory (:class:`controller.journal.Backlog`)."""
    log.error("a request could not be written to the session database: %s", exc)
    return JSONResponse(api_errors.error_body(
        f"enregistrement impossible ({exc}) : disque plein ? Réessayez une fois la place libérée.",
        f"cannot record ({exc}): disk full? Try again once space is freed."), status_code=503)


def media_library(data_dir: Path) -> MediaLibrary:
    """The media library of a controller whose data directory is *data_dir*."""
    return MediaLibrary(data_dir / "media")


def freeze_startup_objects() -> None:
    """``gc.collect()`` then ``gc.freeze()``: what start-up built (modules, models, routes,
    the game) lives as long as the process; the collector stops walking it on every full
    collection, which was a few ms in the middle of a key → lock path now and then
    (docs/performance.md). Objects made later are collected as usual."""
    gc.collect()
    gc.freeze()


def run_controller(settings: Settings) -> int:
    """Run the controller of *settings* (``escape-apartment controller``) until stopped."""
    import uvicorn

    from config.loader import GameConfigError, load_game

    media = media_library(settings.DATA_DIR)
    try:
        game = load_game(settings.CONFIG, media=media.names())
    except GameConfigError as exc:
        log.error("the game file has errors; controller not started:\n%s", exc)
        return 2
    try:   # refuse to start without credentials
        auth = AuthSettings.from_settings(settings)
    except AuthConfigError as exc:
        log.error("access control not configured; controller not started: %s", exc)
        return 2
    app = create_app(game=game, broker=settings.broker(), demo=settings.DEMO,
                     db_path=default_path(settings.DATA_DIR), auth=auth, config_path=settings.CONFIG,
                     freeze_gc=True, settings=settings, media=media)
    uvicorn.run(app, host=settings.HTTP_HOST, port=settings.HTTP_PORT,
                log_level="info", ws_per_message_deflate=WS_PER_MESSAGE_DEFLATE)
    return 0


def read_settings(**flags: Any) -> Settings | None:
    """The controller's settings, its flags (``Settings.from_cli``) on top; wrong ones are
    logged, in words, and give None."""
    try:
        return Settings.from_cli(**flags)
    except ValueError as exc:   # ValidationError, SecretFileError, a wrong --broker
        log.error("wrong settings; controller not started: %s", settings_error(Settings, exc))
        return None
