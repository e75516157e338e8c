"""A node's clock steps an hour ahead mid-run: the technician page (tablet size) shows the
offset and warns in French; nothing else changes (the room stays online); the warning goes
once the clock is back.

The node is a real process (``escape-apartment node --simulate``) whose wall clock
libfaketime steps live (``FAKETIME_TIMESTAMP_FILE``; its monotonic clock stays real); the
controller runs under uvicorn over a real Mosquitto.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.loader import load_game
from controller.api.auth import AuthSettings
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.browser.conftest import TECH_PASSWORD, _require_chromium, chromium, serving, shot
from tests.faults.conftest import console_command, game_file
from tests.support.mosquitto import Mosquitto, require_or_skip_mosquitto

pytestmark = [pytest.mark.browser, pytest.mark.mosquitto]
TIMEOUT_MS = 20_000
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
TABLET = {"width": 1280, "height": 800}


def _require_faketime() -> None:
    if LIBFAKETIME.exists():
        return
    if os.environ.get("ESCAPE_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"{LIBFAKETIME} is missing (Debian package libfaketime)")
    pytest.skip(f"{LIBFAKETIME} is missing")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """Mosquitto, the controller (uvicorn thread), the hall node under libfaketime."""

    _require_chromium()
    _require_faketime()
    require_or_skip_mosquitto()
    path = game_file(tmp_path)
    shift = tmp_path / "faketime"
    shift.write_text("+0\n")
    with Mosquitto.plain(workdir=tmp_path / "mosquitto") as broker:
        env = {**os.environ, "LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(shift),
               "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
               "ESCAPE_MQTT_KEEPALIVE": "2"}
        env.pop("ESCAPE_DATA_DIR", None)
        with (tmp_path / "hall.log").open("ab") as out:
            node = subprocess.Popen(
                [*console_command(), "node", "--id", "hall", "--simulate", "--config", str(path),
                 "--broker", broker.address, "--data-dir", str(tmp_path / "hall")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        auth = AuthSettings(gm_password="gm-clock-password", tech_password=TECH_PASSWORD,
                            screen_secret="clock-screen-secret")
        app = create_app(game=load_game(path), broker=BrokerAddress(broker.host, broker.port),
                         auth=auth, db_path=tmp_path / "escape.db")
        try:
            with serving(app) as url:
                yield url, shift, node
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


def test_a_node_clock_stepped_an_hour_ahead_is_shown_and_warned_on_the_technician_page(
        stack: tuple[str, Path, subprocess.Popen[bytes]], browser: object, tmp_path: Path) -> None:
    url, shift, node = stack
    context = browser.new_context(viewport=TABLET)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{url}/login?next=/tech")
    page.fill("#password", TECH_PASSWORD)
    page.click("#submit")
    page.wait_for_url("**/tech")
    row = '#nodes tr[data-node="hall"]'
    page.wait_for_selector(f'{row}[data-online="true"] td.clock[data-offset]')
    assert "warn" not in page.get_attribute(f"{row} td.clock", "class")
    assert abs(float(page.get_attribute(f"{row} td.clock", "data-offset"))) < 2
    assert page.inner_text("#clock-warnings").strip() == ""

    shift.write_text("+3600\n")   # the node's wall clock steps an hour ahead, live
    stepped = time.monotonic()
    warning = page.wait_for_selector('#clock-warnings li[data-node="hall"]')
    shown_after = time.monotonic() - stepped
    text = warning.inner_text()
    assert "Horloge décalée de 1 h 00 min : vérifier la synchronisation de l'heure" in text, text
    cell = page.inner_text(f"{row} td.clock")
    assert cell.startswith("⚠ +1 h 00 min"), cell
    assert page.get_attribute(row, "data-online") == "true", "a clock step changes nothing but a warning"
    shot(page, "tech-clock-offset")

    shift.write_text("+0\n")
    back = time.monotonic()
    page.wait_for_selector('#clock-warnings li[data-node="hall"]', state="detached")
    print(f"\n[clock] +1 h step warned {shown_after:.1f} s after it, cleared "
          f"{time.monotonic() - back:.1f} s after the clock was back (heartbeat 0.67 s)")
    assert page.get_attribute(row, "data-online") == "true"
    assert node.poll() is None, (tmp_path / "hall.log").read_text()[-2000:]
    context.close()
