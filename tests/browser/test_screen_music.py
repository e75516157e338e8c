"""A room's music for the moment of the game, in headless Chromium started as the kiosk
is: the game's music plays looped at its volume, ducks under a spoken clue, and changes
to the victory's when the group wins; nothing plays during the emergency alert
(docs/media.md)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from config.loader import parse_game
from controller.api.auth import AuthSettings
from controller.broker import EmbeddedBroker
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.browser.conftest import _require_chromium, chromium, serving, shot
from tests.controller.conftest import GAME
from tests.support.kiosk import kiosk_flags

pytestmark = pytest.mark.browser
AUTH = AuthSettings(gm_password="gm-music-password", tech_password="tech-music-password",
                    screen_secret="music-browser-secret")
GAME_VOLUME, VICTORY_VOLUME = 0.4, 0.9
MUSIC = f"""\
music:
  hall:
    game: {{file: ambiance.wav, volume: {GAME_VOLUME}}}
    victory: {{file: solved.wav, volume: {VICTORY_VOLUME}}}
"""


def test_the_rooms_music_changes_from_the_games_to_the_victorys(tmp_path: Path) -> None:
    _require_chromium()
    text = GAME.format(apartment_id=f"t{uuid.uuid4().hex[:10]}") + MUSIC
    game = parse_game(text, media={"ambiance.wav", "solved.wav"}).game
    with EmbeddedBroker(port=0) as broker, chromium(*kiosk_flags()) as browser:
        app = create_app(game=game, broker=BrokerAddress("127.0.0.1", broker.port), auth=AUTH,
                         db_path=tmp_path / "escape.db")
        with serving(app) as url, httpx.Client(base_url=url, headers={"Content-Type": "application/json"}) as gm:
            assert gm.post("/api/login", json={"password": AUTH.gm_password}).status_code == 200
            assert gm.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.set_default_timeout(20_000)
            page.goto(f"{url}/screen/hall?token={AUTH.screen_token('hall')}")
            page.wait_for_selector("#link.dot.ok")

            def playing(selector: str) -> dict:
                """The element's state once it plays with its time advancing."""
                page.wait_for_function("(sel) => { const m = document.querySelector(sel); "
                                       "return m && !m.paused && m.currentTime > 0.2; }", arg=selector)
                return page.eval_on_selector(selector, "(a) => ({src: a.src, v: a.volume, loop: a.loop})")

            # opened in the middle of the game: the game's music plays at once, looped
            game_music = '#cues audio[data-cue="music-game"]'
            heard = playing(game_music)
            assert heard["loop"] and heard["v"] == pytest.approx(GAME_VOLUME, abs=0.01)

            # a spoken clue: the music drops under the voice, then comes back
            reply = gm.post("/api/clues", json={"text": "Cherchez sous le tapis.", "room": "hall"})
            assert reply.status_code == 200, reply.text
            page.wait_for_function("([sel, v]) => document.querySelector(sel).volume < v",
                                   arg=[game_music, GAME_VOLUME * 0.3])
            page.wait_for_function("([sel, v]) => document.querySelector(sel).volume > v",
                                   arg=[game_music, GAME_VOLUME * 0.95])

            # the group wins: the game's music stops, the victory's plays in its place
            assert gm.post("/api/game/puzzles/final/skip").status_code == 200
            won = time.time()
            assert gm.post("/api/game/puzzles/final/solve").status_code == 200
            victory = playing('#cues audio[data-cue="music-victory"]')
            started = next(p["wall"] for p in page.evaluate("window.__cuesPlayed") if p["id"] == "music-victory")
            print(f"\ngame won → the victory's music playing on the screen: {started - won * 1000:.0f} ms")
            assert 0 < started - won * 1000 < 3000
            assert victory["loop"] and victory["v"] == pytest.approx(VICTORY_VOLUME, abs=0.01)
            assert victory["src"].startswith("blob:")   # the copy loaded in advance
            page.wait_for_selector(game_music, state="detached")
            assert page.eval_on_selector_all("#cues audio", "(m) => m.length") == 1
            shot(page, "screen-music-victory")

            # the emergency alert: the music stops and does not come back while it lasts
            assert gm.post("/api/emergency", json={}).status_code in (200, 202)
            page.wait_for_selector("#evacuate:not(.hidden)")
            page.wait_for_selector('#cues audio[data-cue="music-victory"]', state="detached")
            page.wait_for_timeout(1500)   # a few pushes of the view: still nothing
            assert page.eval_on_selector_all("#cues audio", "(m) => m.length") == 0
