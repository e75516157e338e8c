"""The game master's hand on media, in real Chromium: the console (tablet) and a room
screen (TV, started as the kiosk is: autoplay allowed) open side by side (docs/media.md,
"The console's hand").

Played from the console, the file plays on the room's screen (not paused, time advancing)
and the console then shows it under that room, as the screen reported it; the room's
volume set to 30 % on the console is the screen's element volume; « Couper le son
partout » silences every element and the console says so; « Arrêter » leaves nothing
playing and the console says « rien »; the screen's network cut, the console says « écran
hors ligne » within 15 s, and at once when the screen is closed. Measures the time from the console's tap to the sound playing on the screen, and
to the console showing it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

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
AUTH = AuthSettings(gm_password="gm-console-media", tech_password="tech-console-media",
                    screen_secret="console-media-secret")
TABLET = {"width": 1280, "height": 800}
TV = {"width": 1920, "height": 1080}
HALL = '#media-rooms li[data-room="hall"]'


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _require_chromium()
    game = parse_game(GAME.format(apartment_id=f"t{uuid.uuid4().hex[:10]}")).game
    with EmbeddedBroker(port=0) as broker:
        app = create_app(game=game, broker=BrokerAddress("127.0.0.1", broker.port), auth=AUTH,
                         db_path=Path(tmp_path_factory.mktemp("console-media")) / "escape.db")
        with serving(app) as url:
            yield url


def elements(screen: object) -> list[dict]:
    return screen.eval_on_selector_all("#cues audio, #cue-video video", """(all) => all.map((m) => (
        {cue: m.dataset.cue, file: m.dataset.file, paused: m.paused, t: m.currentTime, v: m.volume,
         muted: m.muted}))""")


def test_the_console_plays_sets_the_volume_mutes_and_stops_what_the_screen_plays(url: str) -> None:
    with chromium(*kiosk_flags()) as browser:
        errors: list[str] = []
        console = browser.new_context(viewport=TABLET).new_page()
        console.set_default_timeout(20_000)
        console.on("pageerror", lambda e: errors.append(f"console: {e}"))
        console.goto(f"{url}/console")
        console.fill("#password", AUTH.gm_password)
        console.click("#submit")
        console.wait_for_url("**/console")
        console.wait_for_selector("#link.ok")
        # no screen open: no room is said to play anything
        console.wait_for_selector(f'{HALL}[data-state="offline"]')
        assert console.text_content(f"{HALL} .nothing") == "écran hors ligne"

        screen = browser.new_context(viewport=TV).new_page()
        screen.set_default_timeout(20_000)
        screen.on("pageerror", lambda e: errors.append(f"screen: {e}"))
        screen.goto(f"{url}/screen/hall?token={AUTH.screen_token('hall')}")
        screen.wait_for_selector("#link.dot.ok")
        console.wait_for_selector(f'{HALL}[data-state="nothing"]')
        assert console.text_content(f"{HALL} .nothing") == "rien"
        assert console.get_attribute('#media-rooms li[data-room="salon"]', "data-state") == "offline"

        # a game under way (a screen plays nothing between sessions)
        assert console.evaluate("""() => fetch('/api/game/start', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({parcours: 'primo', players: 4})}).then((r) => r.status)""") == 200
        # play: a file of the library by its name, in one room, as the room's music
        assert "ambiance.wav" in console.eval_on_selector_all("#media-file option", "(o) => o.map((x) => x.value)")
        console.select_option("#media-file", "ambiance.wav")
        console.select_option("#media-room", label="Hall")
        console.check("#media-loop")
        tapped = time.time()
        console.click("#media-play")
        screen.wait_for_function("""() => [...document.querySelectorAll('#cues audio')].some(
            (m) => m.dataset.file === 'ambiance.wav' && !m.paused && m.currentTime > 0)""")
        playing_ms = screen.evaluate("window.__cuesPlayed")[-1]["wall"] - tapped * 1000
        first = next(e for e in elements(screen) if e["file"] == "ambiance.wav")
        screen.wait_for_timeout(400)
        later = next(e for e in elements(screen) if e["file"] == "ambiance.wav")
        assert not later["paused"] and later["t"] > first["t"] and later["v"] == pytest.approx(1.0)
        shown = f'{HALL} li[data-file="ambiance.wav"][data-paused="false"]'
        console.wait_for_selector(shown)
        shown_ms = (time.time() - tapped) * 1000
        print(f"\nconsole tap → playing on the screen: {playing_ms:.0f} ms; "
              f"→ shown on the console: {shown_ms:.0f} ms")
        assert "musique" in console.text_content(shown)
        assert console.get_attribute(HALL, "data-state") == "playing"
        assert console.get_attribute('#media-rooms li[data-room="salon"]', "data-state") == "offline"

        # the room's volume: 30 % on the console's slider, by the keyboard as a finger would
        slider = f'{HALL} input[data-volume="hall"]'
        console.focus(slider)
        console.keyboard.press("Home")
        for _ in range(6):
            console.keyboard.press("ArrowRight")
        screen.wait_for_function("""() => { const m = [...document.querySelectorAll('#cues audio')].find(
            (x) => x.dataset.file === 'ambiance.wav'); return m && Math.abs(m.volume - 0.3) < 0.01; }""")
        console.wait_for_selector(f'{HALL} .pct[data-pct="30"]')
        console.locator("h1").click()   # the slider let go: the view's value shows
        audit = console.evaluate("() => fetch('/api/state').then((r) => r.json()).then((s) => s.game.audit)")
        assert [(a["target"], a["detail"]) for a in audit if a["action"] == "media_volume"] == [("hall", "30 %")]
        assert console.text_content(f"{HALL} .pct") == "Volume : 30 %"
        assert not next(e for e in elements(screen) if e["file"] == "ambiance.wav")["paused"]
        shot(console, "console-media-playing")

        # mute everywhere: every element silent, and the console says so
        console.click("#media-mute")
        screen.wait_for_function("""() => { const all = [...document.querySelectorAll('#cues audio, #cue-video video')];
            return all.length > 0 && all.every((m) => m.muted || m.paused); }""")
        console.wait_for_selector("#media-muted:not(.hidden)")
        assert console.text_content("#media-mute") == "🔊 Remettre le son"
        console.wait_for_selector(f'{HALL} li[data-file="ambiance.wav"][data-muted="true"]')
        # a sound played while muted is silent too
        assert console.evaluate("""() => fetch('/api/media/play', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({file: 'chime.wav', room: 'hall'})}).then((r) => r.status)""") == 200
        screen.wait_for_function("() => [...document.querySelectorAll('#cues audio')].some("
                                 "(m) => m.dataset.file === 'chime.wav')")
        assert all(e["muted"] or e["paused"] for e in elements(screen))
        # a clue while muted: no chime (the screen's oscillator is never started)
        screen.evaluate("""() => { window.__chimes = 0; const make = AudioContext.prototype.createOscillator;
            AudioContext.prototype.createOscillator = function () { window.__chimes += 1; return make.call(this); }; }""")
        send_clue = """(text) => fetch('/api/clues', {method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({text, room: 'hall'})}).then((r) => r.status)"""
        assert console.evaluate(send_clue, "Regardez sous le tapis.") == 200
        screen.wait_for_selector("#clues .clue")
        screen.wait_for_timeout(300)
        assert screen.evaluate("window.__chimes") == 0
        shot(console, "console-media-muted")
        console.click("#media-mute")
        console.wait_for_selector("#media-muted.hidden", state="attached")
        screen.wait_for_function("() => [...document.querySelectorAll('#cues audio')].every((m) => !m.muted)")
        assert console.evaluate(send_clue, "Et derrière la porte.") == 200   # the sound back: a chime
        screen.wait_for_function("window.__chimes > 0")

        # stop the room: nothing plays, and the console says « rien »
        console.click(f'{HALL} button[data-media-stop="hall"]')
        screen.wait_for_function("() => document.querySelectorAll('#cues audio, #cue-video video').length === 0")
        console.wait_for_selector(f'{HALL}[data-state="nothing"]')
        assert console.text_content(f"{HALL} .nothing") == "rien"

        # the screen's network cut: it cannot report, and within SILENT_S (15 s) the console
        # says « écran hors ligne » on its own; back, it reports again
        cut = time.monotonic()
        screen.context.set_offline(True)
        console.wait_for_selector(f'{HALL}[data-state="offline"]', timeout=30_000)
        offline_s = time.monotonic() - cut
        print(f"screen's network cut → « écran hors ligne » on the console: {offline_s:.1f} s")
        assert 10 < offline_s < 25
        screen.context.set_offline(False)
        console.wait_for_selector(f'{HALL}[data-state="nothing"]', timeout=30_000)

        # the screen closed: off line at once (it says so as it goes)
        screen.close()
        console.wait_for_selector(f'{HALL}[data-state="offline"]')
        assert console.text_content(f"{HALL} .nothing") == "écran hors ligne"
        assert errors == []
