"""A Pi under-powered and too hot: the technician page says so in French words, and the game
master's console shows it as a notice before a session, never during one.

The node is a real process (``escape-apartment node --simulate``) reading a fake Pi's sensor
files (``ESCAPE_HEALTH_ROOT``: the firmware's throttled word 0x50005, 83 °C); the controller
runs under uvicorn over a real Mosquitto; the pages in headless Chromium (tablet size).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.loader import load_game
from controller.api.auth import AuthSettings
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.browser.conftest import (
    GM_PASSWORD,
    TECH_PASSWORD,
    _require_chromium,
    chromium,
    serving,
    shot,
)
from tests.faults.conftest import console_command, game_file
from tests.nodes.test_health import fake_pi
from tests.support.mosquitto import Mosquitto, require_or_skip_mosquitto

pytestmark = [pytest.mark.browser, pytest.mark.mosquitto]
TIMEOUT_MS = 20_000
TABLET = {"width": 1280, "height": 800}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[str]:
    """Mosquitto, the controller (uvicorn thread), the hall node on a sick fake Pi."""

    _require_chromium()
    require_or_skip_mosquitto()
    path = game_file(tmp_path)
    pi = fake_pi(tmp_path / "pi", temp_mc=83_400, throttled="0x50005")
    with Mosquitto.plain(workdir=tmp_path / "mosquitto") as broker:
        env = {**os.environ, "ESCAPE_HEALTH_ROOT": str(pi), "ESCAPE_MQTT_KEEPALIVE": "2"}
        env.pop("ESCAPE_DATA_DIR", None)
        with (tmp_path / "hall.log").open("ab") as out:
            node = subprocess.Popen(
                [*console_command(), "node", "--id", "hall", "--simulate", "--config", str(path),
                 "--broker", broker.address, "--data-dir", str(tmp_path / "hall")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        auth = AuthSettings(gm_password=GM_PASSWORD, tech_password=TECH_PASSWORD,
                            screen_secret="health-screen-secret")
        app = create_app(game=load_game(path), broker=BrokerAddress(broker.host, broker.port),
                         auth=auth, db_path=tmp_path / "escape.db")
        try:
            with serving(app) as url:
                yield url
        finally:
            node.terminate()
            try:
                node.wait(timeout=5)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait(timeout=5)


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


def login(browser: object, url: str, password: str, page_path: str) -> object:
    context = browser.new_context(viewport=TABLET)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{url}/login?next={page_path}")
    page.fill("#password", password)
    page.click("#submit")
    page.wait_for_url(f"**{page_path}")
    return page


def test_an_under_powered_hot_pi_is_said_in_words_and_noticed_only_between_sessions(
        stack: str, browser: object) -> None:
    tech = login(browser, stack, TECH_PASSWORD, "/tech")
    row = '#health tr[data-node="hall"]'
    power = tech.wait_for_selector(f'{row} li[data-code="under_voltage"]')
    assert power.inner_text().startswith("alimentation insuffisante : changer le bloc secteur")
    hot = tech.inner_text(f'{row} li[data-code="hot"]')
    assert hot.startswith("trop chaud (83 °C, limite 80 °C)"), hot
    assert "bad" in tech.get_attribute(row, "class")
    assert tech.inner_text(f"{row} td:nth-child(2)") == "83,4 °C", "French number format"
    assert tech.inner_text(f"{row} td:nth-child(3)") == "⚠ insuffisante"
    assert tech.inner_text(f"{row} td:nth-child(5)") == "1 h 10 min", "uptime 4 242 s, in words"
    shot(tech, "tech-health")

    console = login(browser, stack, GM_PASSWORD, "/console")
    notices = console.wait_for_selector("#notices:not(.hidden)")
    texts = notices.inner_text()
    assert "À régler avant la prochaine session" in texts
    assert "alimentation insuffisante : changer le bloc secteur" in texts and "trop chaud" in texts
    shot(console, "console-health-notice")

    started = console.evaluate("""async () => (await App.post("/api/game/start",
        {parcours: "primo", players: 4})).status""")
    assert started == 200
    console.wait_for_selector("#notices.hidden", state="attached")
    assert tech.is_visible(f'{row} li[data-code="under_voltage"]'), "the technician still sees it"

    stopped = console.evaluate("""async () => { await App.post("/api/game/stop", {});
        return (await App.post("/api/game/reset", {})).status; }""")
    assert stopped == 200
    console.wait_for_selector("#notices:not(.hidden)")
