"""The introduction video and the clues every participant can perceive, in headless
Chromium started as the room's kiosk is (autoplay allowed), over the shipped game
(config/apartment.yaml: ``intro:`` on the hall screen, clues with ``icon:``):

* at the briefing, the game master's console button « ▶ Vidéo de présentation » plays the
  shipped WebM full screen on the hall's TV (1920x1080): not paused, its time advancing,
  a French text track with active cues drawn on the subtitle line at 40 px or more, the
  music ducked under it; a TV set to English shows the English track; the console's stop
  ends it and the music comes back;
* a clue sent to the hall shows big with its pictogram (the clue's ``icon:``), and while
  its voice speaks, its text is the subtitle line (docs/media.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config.loader import SHIPPED_GAME, load_game_file
from controller.api.auth import AuthSettings
from controller.broker import EmbeddedBroker
from controller.main import create_app
from controller.media import SHIPPED_DIR
from protocol.mqtt import BrokerAddress
from tests.browser.conftest import _require_chromium, chromium, serving, shot
from tests.support.kiosk import kiosk_flags

pytestmark = pytest.mark.browser
AUTH = AuthSettings(gm_password="gm-intro-password", tech_password="tech-intro-password",
                    screen_secret="intro-browser-secret")
PLAYING = ("(sel) => { const m = document.querySelector(sel); "
           "return !!m && !m.paused && m.currentTime > 0.3; }")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _require_chromium()
    shipped = frozenset(p.name for p in SHIPPED_DIR.iterdir() if p.suffix != ".md")
    game = load_game_file(SHIPPED_GAME, media=shipped).game
    with EmbeddedBroker(port=0) as broker:
        app = create_app(game=game, broker=BrokerAddress("127.0.0.1", broker.port), auth=AUTH,
                         db_path=Path(tmp_path_factory.mktemp("intro")) / "escape.db")
        with serving(app) as base:
            yield base


@pytest.fixture(scope="module")
def kiosk() -> Iterator[object]:
    with chromium(*kiosk_flags()) as browser:
        yield browser


def tv(kiosk: object, url: str, room: str, lang: str = "fr") -> object:
    page = kiosk.new_page(viewport={"width": 1920, "height": 1080})
    page.set_default_timeout(20_000)
    page.goto(f"{url}/screen/{room}?token={AUTH.screen_token(room)}&lang={lang}")
    page.wait_for_selector("#link.dot.ok")
    return page


def cue_text(vtt: str, n: int) -> str:
    """The text of the *n*-th cue (from 1) of a WebVTT file."""
    blocks = vtt.strip().split("\n\n")[1:]
    return blocks[n - 1].splitlines()[2]


def test_the_console_plays_the_intro_video_with_subtitles_on_the_hall_tv_at_the_briefing(
        url: str, kiosk: object) -> None:
    gm = httpx.Client(base_url=url, headers={"Content-Type": "application/json"})
    assert gm.post("/api/login", json={"password": AUTH.gm_password}).status_code == 200
    assert gm.post("/api/game/check", json={"parcours": "primo", "players": 4}).status_code == 200
    # no simulated node: the props are not ready, the game master passes over it, saying why
    reply = gm.post("/api/game/briefing", json={"override_reason": "essai du navigateur"})
    assert reply.status_code == 200, reply.text

    hall = tv(kiosk, url, "hall")
    english = tv(kiosk, url, "hall", "en")   # a second TV of the hall, its kiosk set to English
    music = '#cues audio[data-cue^="music-"]'
    hall.wait_for_function(PLAYING, arg=music)   # the welcome music of the briefing
    base_volume = hall.eval_on_selector(music, "(m) => Number(m.dataset.base)")

    console = kiosk.new_page(viewport={"width": 1280, "height": 800})   # the game master's tablet
    console.set_default_timeout(20_000)
    console.goto(f"{url}/login?next=/console")
    console.fill("#password", AUTH.gm_password)
    console.click("#submit")
    console.wait_for_url("**/console")
    button = console.get_by_role("button", name="▶ Vidéo de présentation")
    button.wait_for()
    assert button.is_visible()
    shot(console, "console-briefing-intro-video")
    pressed = time.time()
    button.click()

    video = "#cue-video video"
    hall.wait_for_function(PLAYING, arg=video)
    started = min(p["wall"] for p in hall.evaluate("window.__cuesPlayed") if p["id"].isdigit())
    print(f"\nconsole button → intro video playing on the hall TV: {started - pressed * 1000:.0f} ms")
    first = hall.eval_on_selector(video, "(v) => v.currentTime")
    hall.wait_for_timeout(500)
    later = hall.eval_on_selector(video, "(v) => ({t: v.currentTime, paused: v.paused, d: v.duration, "
                                         "w: v.getBoundingClientRect().width, h: v.getBoundingClientRect().height})")
    assert not later["paused"] and later["t"] > first
    assert 30 <= later["d"] <= 60
    assert (later["w"], later["h"]) == (1920, 1080)   # over the whole TV

    # its subtitles: the French track, its cues drawn big on the subtitle line
    tracks = hall.eval_on_selector(video, "(v) => [...v.textTracks].map((t) => ({lang: t.language, "
                                          "mode: t.mode, cues: t.cues ? t.cues.length : 0}))")
    assert [t["lang"] for t in tracks] == ["fr", "en"]
    assert tracks[0]["mode"] != "disabled" and tracks[1]["mode"] == "disabled"
    hall.wait_for_function("(sel) => { const t = document.querySelector(sel).textTracks[0]; "
                           "return t.activeCues && t.activeCues.length > 0; }", arg=video)
    french = (SHIPPED_DIR / "intro-fr.vtt").read_text(encoding="utf-8")
    hall.wait_for_function("() => !document.querySelector('#subtitle').classList.contains('hidden')")
    line = hall.eval_on_selector("#subtitle", "(s) => ({text: s.textContent, size: parseFloat("
                                              "getComputedStyle(s).fontSize), z: Number(getComputedStyle(s).zIndex), "
                                              "box: s.getBoundingClientRect().toJSON()})")
    assert line["text"] in {cue_text(french, n) for n in (1, 2, 3)}
    assert line["size"] >= 40
    assert line["box"]["height"] > 0 and line["box"]["bottom"] <= 1080
    assert hall.evaluate("() => { const s = document.querySelector('#subtitle').getBoundingClientRect(); "
                         "return document.elementFromPoint(s.x + s.width / 2, s.y + s.height / 2).id; }") == "subtitle"
    shot(hall, "intro-video-hall-tv")
    # the English TV shows the English track, on the same times
    english.wait_for_function(PLAYING, arg=video)
    assert english.eval_on_selector(video, "(v) => [...v.textTracks].map((t) => t.mode)")[0] == "disabled"
    english.wait_for_function("() => !document.querySelector('#subtitle').classList.contains('hidden')")
    english_vtt = (SHIPPED_DIR / "intro-en.vtt").read_text(encoding="utf-8")
    assert english.text_content("#subtitle") in {cue_text(english_vtt, n) for n in (1, 2, 3)}
    english.close()

    # the music went on, ducked under the story
    hall.wait_for_function("([sel, v]) => document.querySelector(sel).volume < v", arg=[music, base_volume * 0.3])
    assert not hall.eval_on_selector(music, "(m) => m.paused")

    # the console's stop: the video is gone, its subtitle too, the music back up
    console.get_by_role("button", name="■ Arrêter la vidéo").click()
    hall.wait_for_selector(video, state="detached")
    hall.wait_for_selector("#subtitle.hidden", state="attached")
    hall.wait_for_function("([sel, v]) => { const m = document.querySelector(sel); "
                           "return m && !m.paused && m.volume > v; }", arg=[music, base_volume * 0.95])
    audit = [e["action"] for e in gm.get("/api/state").json()["game"]["audit"]]
    assert "media_video" in audit and "media_stop" in audit
    hall.close()
    console.close()


def test_a_clue_shows_big_with_its_pictogram_and_its_text_is_the_subtitle_while_spoken(
        url: str, kiosk: object) -> None:
    gm = httpx.Client(base_url=url, headers={"Content-Type": "application/json"})
    assert gm.post("/api/login", json={"password": AUTH.gm_password}).status_code == 200
    reply = gm.post("/api/game/start", json={"parcours": "primo", "players": 4})
    assert reply.status_code == 200, reply.text
    hall = tv(kiosk, url, "hall")

    # the mailbox's second clue carries « 🔢 » in the shipped game
    reply = gm.post("/api/clues", json={"puzzle": "mailbox", "index": 1})
    assert reply.status_code == 200, reply.text
    clue = reply.json()["clue"]
    card = hall.wait_for_selector(f'#clue-card[data-clue="{clue["id"]}"]:not(.hidden)')
    assert card.eval_on_selector(".pict", "(p) => p.textContent") == "🔢"
    assert card.eval_on_selector(".pict", "(p) => parseFloat(getComputedStyle(p).fontSize)") >= 150
    assert clue["text"] in card.inner_text()
    assert hall.eval_on_selector(f'.clue[data-clue="{clue["id"]}"]', "(c) => c.textContent").startswith("🔢")

    voice = f'#cues audio[data-cue="clue-{clue["id"]}"]'
    hall.wait_for_function(PLAYING, arg=voice)
    line = hall.eval_on_selector("#subtitle", "(s) => ({text: s.textContent, hidden: s.classList.contains('hidden'), "
                                              "size: parseFloat(getComputedStyle(s).fontSize)})")
    assert not line["hidden"] and line["size"] >= 40
    assert line["text"] and line["text"] in clue["text"]   # what the voice says, sentence by sentence
    shot(hall, "clue-card-and-subtitle")
    hall.wait_for_selector(voice, state="detached", timeout=30_000)   # the voice ended
    assert hall.eval_on_selector("#subtitle", "(s) => s.classList.contains('hidden')")

    # a free text has no pictogram of its own: the default one
    reply = gm.post("/api/clues", json={"text": "Regardez sous le paillasson.", "room": "hall"})
    assert reply.status_code == 200, reply.text
    free = reply.json()["clue"]["id"]
    card = hall.wait_for_selector(f'#clue-card[data-clue="{free}"]:not(.hidden)')
    assert card.eval_on_selector(".pict", "(p) => p.textContent") == "💡"
    hall.close()
