"""The console, at tablet size, when the controller's disk fills up mid-game.

A real controller process (uvicorn) with its database on a small tmpfs that another file
fills (``tests/support/diskfull.py``: root or password-less sudo; fails instead of skipping
under ``ESCAPE_REQUIRE_TMPFS=1``), a room played by a raw MQTT client. The game master
sees a banner that stays — « Enregistrement impossible : N événements en attente (disque
plein ?). La partie continue. », N in French digits — while the timer runs on; it goes
away once space is freed and the rows are written.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from controller.journal import RETRY_MAX_S
from protocol.contract import Topics
from tests.browser.conftest import ARGS, CHROMIUM, _require_chromium, shot
from tests.faults.conftest import ControllerProcess, game_file, wait_for
from tests.support.diskfull import RawRoom, fill, small_tmpfs
from tests.support.mosquitto import Mosquitto, require_or_skip_mosquitto

pytestmark = [pytest.mark.browser, pytest.mark.mosquitto]
TIMEOUT_MS = 20_000
TABLET = {"width": 1280, "height": 800}
BANNER = re.compile(r"⚠ Enregistrement impossible : (\d[\d\u202f\u00a0]*) événements en attente "
                    r"\(disque plein \?\)\. La partie continue\.")


def test_the_console_shows_a_banner_while_the_disk_is_full_and_the_game_goes_on(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    _require_chromium()
    require_or_skip_mosquitto()
    with (small_tmpfs(tmp_path / "data", size_kb=1024) as data,
          Mosquitto.plain(workdir=tmp_path / "mosquitto") as broker):
        controller = ControllerProcess(game=game_file(tmp_path), db=data / "escape.db", broker=broker,
                                       log=tmp_path / "controller.log")
        room = None
        try:
            wait_for(lambda: controller.state() is not None, timeout=30, what="the controller to serve")
            room = RawRoom(broker.host, broker.port, Topics("faults"), "hall")
            room.birth()
            wait_for(lambda: controller.state()["nodes"][0]["online"], what="the hall online")
            assert controller.post("/api/game/start", {"parcours": "primo", "players": 3}).status_code == 200
            with sync_playwright() as pw:
                chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = chromium.new_page(viewport=TABLET)
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(f"{controller.url}/console")
                page.wait_for_selector("#link.ok")
                page.wait_for_function("document.getElementById('phase').textContent === 'En cours'")
                assert page.is_hidden("#store-banner")

                fill(data / "filler")
                full_at = time.monotonic()
                for _ in range(1100):            # over a thousand rows: French digit groups
                    room.event("mailbox_keypad", wait=False)
                room.event("mailbox_keypad")
                page.wait_for_selector("#store-banner:not(.hidden)")
                shown = time.monotonic() - full_at
                page.wait_for_function("Number(document.getElementById('store-banner').dataset.waiting) > 1000")
                text = page.text_content("#store-text")
                match = BANNER.fullmatch(text or "")
                assert match, text
                assert re.sub(r"\D", "", match[1]) == page.get_attribute("#store-banner", "data-waiting")
                assert re.search(r"\d[\u202f\u00a0]\d{3}", match[1]), f"French digit groups: {match[1]!r}"
                detail = page.text_content("#store-detail") or ""
                assert detail.startswith("Depuis ") and "full" in detail, detail
                # the game goes on: the timer runs, the banner stays
                first = page.text_content("#remaining")
                page.wait_for_function(f"document.getElementById('remaining').textContent !== '{first}'")
                assert page.is_visible("#store-banner")
                shot(page, "console-store-failing")

                (data / "filler").unlink()
                freed_at = time.monotonic()
                page.wait_for_selector("#store-banner.hidden", state="attached",
                                       timeout=(RETRY_MAX_S + 15) * 1000)
                gone = time.monotonic() - freed_at
                chromium.close()
        finally:
            if room is not None:
                room.close()
            controller.stop()
    print(f"\n[console banner] shown {shown:.2f} s after the disk filled; gone {gone:.2f} s after "
          f"space was freed")
