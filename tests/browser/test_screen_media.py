"""Sound on a room screen, in headless Chromium started as the kiosk is (autoplay allowed):
a sound action of the game plays on its room's screen (not paused, time advancing), the
room's music drops while a clue is spoken and comes back after, and everything stops
when the emergency alert is declared; what the room may play is preloaded, so it plays
while the controller's files cannot be reached (docs/media.md). Measures the time from the game
event to the sound playing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
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
AUTH = AuthSettings(gm_password="gm-media-password", tech_password="tech-media-password",
                    screen_secret="media-browser-secret")
MUSIC_VOLUME = 0.5


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _require_chromium()
    text = GAME.format(apartment_id=f"t{uuid.uuid4().hex[:10]}").replace(
        "      - {do: unlock, target: hall.box_lock}",
        "      - {do: unlock, target: hall.box_lock}\n"
        f"      - {{do: sound, file: ambiance.wav, room: hall, loop: true, volume: {MUSIC_VOLUME}}}\n"
        "      - {do: sound, file: unlock.wav, room: hall}")
    game = parse_game(text, media={"ambiance.wav", "unlock.wav"}).game
    with EmbeddedBroker(port=0) as broker:
        app = create_app(game=game, broker=BrokerAddress("127.0.0.1", broker.port), auth=AUTH,
                         db_path=Path(tmp_path_factory.mktemp("media")) / "escape.db")
        with serving(app) as url:
            yield url


def test_a_sound_action_plays_on_its_screen_and_the_music_ducks_under_a_spoken_clue(url: str) -> None:
    with httpx.Client(base_url=url, headers={"Content-Type": "application/json"}) as gm:
        screen_plays_the_game(gm, url)


def screen_plays_the_game(gm: httpx.Client, url: str) -> None:
    assert gm.post("/api/login", json={"password": AUTH.gm_password}).status_code == 200
    assert gm.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
    with chromium(*kiosk_flags()) as browser:   # as the room's kiosk
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.set_default_timeout(20_000)
        page.goto(f"{url}/screen/hall?token={AUTH.screen_token('hall')}")
        page.wait_for_selector("#link.dot.ok")
        # what the room may play is loaded before the game needs it; from now on the
        # controller's files cannot be reached (a network that fails under the screen)
        page.wait_for_function("window.__preloaded.length >= 2")
        assert sorted(page.evaluate("window.__preloaded")) == ["ambiance.wav", "unlock.wav"]
        page.route("**/api/media/files/**", lambda route: route.abort())

        sent = time.time()
        assert gm.post("/api/game/puzzles/mailbox/solve").status_code == 200
        page.wait_for_function("window.__cuesPlayed.length >= 2")
        started = page.evaluate("window.__cuesPlayed")
        latency_ms = min(p["wall"] for p in started) - sent * 1000
        print(f"\ngame event → sound playing on the screen: {latency_ms:.0f} ms")
        assert 0 < latency_ms < 3000

        def state(selector: str) -> dict:
            return page.eval_on_selector(selector, "(a) => ({paused: a.paused, t: a.currentTime, "
                                                   "v: a.volume, loop: a.loop})")

        music = '#cues audio[data-cue="1"]'
        first = state(music)
        page.wait_for_timeout(400)
        later = state(music)
        assert not later["paused"] and later["t"] > first["t"] and later["loop"]
        assert later["v"] == pytest.approx(MUSIC_VOLUME, abs=0.01)
        assert page.eval_on_selector(music, "(a) => a.src").startswith("blob:")   # the preloaded copy

        # a clue: the chime, then its voice; the music drops under it, then comes back
        said = time.time()
        reply = gm.post("/api/clues", json={"text": "Regardez sous le paillasson.", "room": "hall"})
        assert reply.status_code == 200, reply.text
        clue = reply.json()["clue"]["id"]
        voice = f'#cues audio[data-cue="clue-{clue}"]'
        page.wait_for_function("(sel) => { const v = document.querySelector(sel); "
                               "return v && !v.paused && v.currentTime > 0; }", arg=voice)
        voice_ms = next(p["wall"] for p in page.evaluate("window.__cuesPlayed")
                        if p["id"] == f"clue-{clue}") - said * 1000
        print(f"clue sent → its voice playing: {voice_ms:.0f} ms")
        page.wait_for_function("([sel, v]) => document.querySelector(sel).volume < v",
                               arg=[music, MUSIC_VOLUME * 0.3])
        assert not state(music)["paused"]
        shot(page, "screen-media-ducked")
        page.wait_for_selector(voice, state="detached", timeout=20_000)   # the voice has ended
        page.wait_for_function("([sel, v]) => document.querySelector(sel).volume > v",
                               arg=[music, MUSIC_VOLUME * 0.95])
        assert not state(music)["paused"]

        # the game master stops the room's music, then plays it again from the library
        assert gm.post("/api/media/stop", json={"room": "hall"}).status_code == 200
        page.wait_for_selector(music, state="detached")
        again = gm.post("/api/media/play", json={"file": "ambiance.wav", "room": "hall", "loop": True,
                                                 "volume": 0.3})
        assert again.status_code == 200, again.text
        music = f'#cues audio[data-cue="{again.json()["id"]}"]'
        page.wait_for_function("(sel) => { const m = document.querySelector(sel); "
                               "return m && !m.paused && m.currentTime > 0; }", arg=music)

        # the emergency alert: nothing plays any more, people must hear the staff
        assert gm.post("/api/emergency", json={}).status_code in (200, 202)   # 202: locks unconfirmed
        page.wait_for_selector("#evacuate:not(.hidden)")
        page.wait_for_selector(music, state="detached")
        assert page.eval_on_selector_all("#cues audio, #cue-video video", "(m) => m.length") == 0
