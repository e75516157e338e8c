"""After a restore, in headless Chromium at 1280×800 (the tablet): a household that was
waiting for its call has no number any more (backups keep none), and « Suivi
téléphonique » says why, in words, instead of showing an empty line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from config.loader import SHIPPED_GAME, load_game
from controller.api.auth import AuthSettings
from controller.broker import EmbeddedBroker
from controller.main import create_app
from controller.store import Store
from protocol.mqtt import BrokerAddress
from tests.browser.conftest import GM_PASSWORD, TECH_PASSWORD, _require_chromium, chromium, serving, shot
from tests.controller.test_backup import NUMBER, cli, consents, finished

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000   # a loaded machine: the page waits on the API


def test_a_restored_store_s_pending_call_says_its_number_went_with_the_restore(tmp_path: Path) -> None:
    _require_chromium()
    game = load_game(SHIPPED_GAME)
    data = tmp_path / "data"
    store = Store(data / "escape.db")
    ids = consents(store, finished(store, game, 3), time.time())
    store.close()
    assert cli(data, "backup").returncode == 0
    assert cli(data, "restore").returncode == 0

    auth = AuthSettings(gm_password=GM_PASSWORD, tech_password=TECH_PASSWORD, screen_secret="restore-secret")
    with EmbeddedBroker(port=0) as broker:
        app = create_app(game=game, broker=BrokerAddress("127.0.0.1", broker.port), auth=auth,
                         db_path=data / "escape.db")
        with serving(app) as url, chromium() as browser:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.goto(f"{url}/followup")   # the login first, then back to the page
            page.fill("#password", GM_PASSWORD)
            page.click("#submit")
            page.wait_for_url("**/followup")
            page.wait_for_selector("#no-calls:not(.hidden)")   # nothing left to call
            page.check("#show-all")
            row = page.locator(f"tr[data-contact='{ids[NUMBER]}']")
            row.wait_for()
            status = row.locator(".status").inner_text()
            assert "numéro effacé le" in status and "restauration" in status, status
            assert "une sauvegarde ne garde aucun numéro" in status
            assert row.locator(".phone").inner_text() == "—"
            assert row.locator(".open-call").count() == 0, "no call to make without a number"
            assert NUMBER not in page.content()
            shot(page, "followup-after-restore")
