"""Browser fixtures: a real uvicorn server (thread) + embedded broker + simulated nodes,
and headless Debian Chromium driven by Playwright (sync API)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from config.loader import SHIPPED_GAME, load_game
from controller.api.auth import AuthSettings
from controller.broker import EmbeddedBroker
from controller.main import create_app
from nodes.agent import NodeAgent
from protocol.mqtt import BrokerAddress
from tests.support.kiosk import kiosk_flags

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
GM_PASSWORD = "gm-browser-password"
TECH_PASSWORD = "tech-browser-password"


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("ESCAPE_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"{CHROMIUM} is missing and ESCAPE_REQUIRE_CHROMIUM=1")
    pytest.skip(f"{CHROMIUM} is missing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    auth: AuthSettings
    app: object
    loop: list[asyncio.AbstractEventLoop] = field(default_factory=list)

    def freeze(self, seconds: float) -> None:
        """Block the server's event loop for *seconds* (a frozen controller: the sockets stay
        open, nothing answers)."""
        self.loop[0].call_soon_threadsafe(time.sleep, seconds)


def _loop_keeper(app: object, keep: list[asyncio.AbstractEventLoop]) -> object:
    """*app*, noting the loop it runs on (the server runs in a thread of its own)."""
    async def asgi(scope: dict, receive: object, send: object) -> None:
        if not keep:
            keep.append(asyncio.get_running_loop())
        await app(scope, receive, send)
    return asgi


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import uvicorn

    _require_chromium()
    game = load_game(SHIPPED_GAME)
    # a test module may play a variant of the shipped game (``def tweak_game(game) -> Game``)
    tweak = getattr(request.module, "tweak_game", None)
    if tweak is not None:
        game = tweak(game)
    auth = AuthSettings(gm_password=GM_PASSWORD, tech_password=TECH_PASSWORD,
                        screen_secret="browser-screen-secret")
    with EmbeddedBroker(port=0) as broker:
        address = BrokerAddress("127.0.0.1", broker.port)
        agents = [NodeAgent(game=game, node_id=n.id, broker=address, pin_factory=MockFactory(),
                            simulate=True) for n in game.nodes]
        for agent in agents:
            agent.start()
        app = create_app(game=game, broker=address, demo=True, auth=auth,
                         db_path=tmp_path_factory.mktemp("db") / "escape.db")
        port = _free_port()
        loop: list[asyncio.AbstractEventLoop] = []
        uv = uvicorn.Server(uvicorn.Config(_loop_keeper(app, loop), host="127.0.0.1", port=port,
                                           log_level="warning"))
        thread = threading.Thread(target=uv.run, name="uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not uv.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        service = app.state.service
        while not all(n.online for n in service.registry.nodes.values()):
            assert time.monotonic() < deadline, "nodes did not come online"
            time.sleep(0.05)
        try:
            yield Server(f"http://127.0.0.1:{port}", auth, app, loop)
        finally:
            uv.should_exit = True
            thread.join(timeout=10)
            for agent in agents:
                agent.stop()


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest, server: Server) -> Iterator[object]:
    # a test module of the room screens starts Chromium as the room's kiosk does (``KIOSK = True``):
    # sound allowed without a touch
    flags = kiosk_flags() if getattr(request.module, "KIOSK", False) else ()
    with chromium(*flags) as b:
        yield b


class GameMaster:
    """The game master's orders, through the HTTP API with a logged-in session cookie."""

    def __init__(self, context: Any, url: str) -> None:
        self.request, self.url = context.request, url
        assert self.post("/api/login", {"password": GM_PASSWORD})["ok"]

    def post(self, path: str, body: dict | None = None) -> dict:
        res = self.request.post(f"{self.url}{path}", data=body or {})
        return {"ok": res.ok, "status": res.status, "data": res.json()}

    def state(self) -> dict:
        return self.request.get(f"{self.url}/api/state").json()


@contextmanager
def chromium(*flags: str) -> Iterator[object]:
    """Debian's Chromium, headless, driven by Playwright; *flags* added to its command line."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw, *flags)
        try:
            yield b
        finally:
            b.close()


def launch(pw: object, *flags: str) -> object:
    """Debian's Chromium, headless, from Playwright *pw*; *flags* added to its command line
    (for a test that opens several browsers one after another)."""
    return pw.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, *flags])  # type: ignore[attr-defined]


@contextmanager
def serving(app: object) -> Iterator[str]:
    """*app* served by uvicorn on a free port, in a thread: its base URL."""
    import uvicorn

    port = _free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not uv.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def gm(request: pytest.FixtureRequest, browser: Any, server: Server) -> Iterator[GameMaster]:
    """The game master, logged in: a module's own ``GameMaster`` (a subclass), else the plain one."""
    context = browser.new_context()
    try:
        yield getattr(request.module, "GameMaster", GameMaster)(context, server.url)
    finally:
        context.close()


def api(page: object, method: str, url: str, body: dict | None = None) -> dict:
    """A call from the logged-in page (its session cookie), as the console makes them."""
    return page.evaluate("""async ([method, url, body]) => {
        const opts = {method, headers: {"Content-Type": "application/json"}};
        if (method !== "GET") opts.body = JSON.stringify(body || {});
        const res = await fetch(url, opts);
        return {status: res.status, data: await res.json()}; }""", [method, url, body])


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    # NOTE: a full-page capture scrolls the page: a sticky header would be drawn where the
    # viewport happened to be, in the middle of the image.
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True,
                    style="header { position: static !important; }")
