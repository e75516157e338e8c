"""A room screen in real Chromium and the game's event sounds (``sounds:``), driven from
outside: a bare paho client (not our node code) types codes on the hall's keypad, the
game master's orders go over HTTP, the screen is reached through a TCP proxy that can cut
it from the controller (docs/media.md).

* each game event plays its sound once on the screen, even when MQTT delivers it twice;
  the time from the raw publish to the sound playing is measured;
* « Activer le son » shows only in a Chromium that wants a touch before any sound, and
  one touch turns sound on; sound allowed another way (a key pressed) turns it on too, at
  the first sound heard; the kiosk's Chromium never shows it;
* a clue's voice starts once the game's chime (the shipped 1.4 s chime.wav) has ended, the
  music ducked from the chime to the end of the voice; a chime that never loads holds the
  voice back a bounded time only;
* a screen cut from the network (offline, and the controller unreachable) keeps playing
  its music and plays a cue from memory; what happened meanwhile is not played late;
  back on the network, it follows the game live again.
"""

from __future__ import annotations

import base64
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from config.loader import parse_game
from controller.api.auth import AuthSettings
from controller.broker import EmbeddedBroker
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.browser.conftest import ARTIFACTS, _require_chromium, launch, serving, shot
from tests.controller.conftest import GAME
from tests.faults.rawnode import RawNode
from tests.support.kiosk import kiosk_flags
from tests.support.netfault import TcpProxy

pytestmark = pytest.mark.browser
AUTH = AuthSettings(gm_password="gm-events-password", tech_password="tech-events-password",
                    screen_secret="events-browser-secret")
SOUNDS = """\
music:
  hall:
    game: {file: chime.wav, volume: 0.5}
sounds:
  solved: {file: solved.wav}
  wrong_code: {file: wrong.wav}
  budget_down: {file: budget-down.wav}
  clue_chime: {file: chime.wav}
"""
FILES = {"chime.wav", "solved.wav", "wrong.wav", "budget-down.wav"}
GESTURE_REQUIRED = "--autoplay-policy=user-gesture-required"


@dataclass
class Rig:
    url: str            # the controller, through the proxy (what the screen uses)
    direct: str         # the controller itself (what the game master uses)
    proxy: TcpProxy
    node: RawNode
    gm: httpx.Client

    def screen(self) -> str:
        return f"{self.url}/screen/hall?token={AUTH.screen_token('hall')}"

    def start(self) -> None:
        assert self.gm.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    _require_chromium()
    apartment = f"t{uuid.uuid4().hex[:10]}"
    game = parse_game(GAME.format(apartment_id=apartment) + SOUNDS, media=FILES).game
    with EmbeddedBroker(port=0) as broker:
        app = create_app(game=game, broker=BrokerAddress("127.0.0.1", broker.port), auth=AUTH,
                         db_path=tmp_path / "escape.db")
        with serving(app) as direct:
            node = RawNode(None, apartment=apartment, node="hall", boot=f"b{uuid.uuid4().hex[:8]}",  # type: ignore[arg-type]
                           via=("127.0.0.1", broker.port))
            node.birth()
            try:
                with TcpProxy(upstream=("127.0.0.1", httpx.URL(direct).port)) as proxy, httpx.Client(
                        base_url=direct, timeout=10, headers={"Content-Type": "application/json"}) as gm:
                    assert gm.post("/api/login", json={"password": AUTH.gm_password}).status_code == 200
                    yield Rig(f"http://127.0.0.1:{proxy.port}", direct, proxy, node, gm)
            finally:
                node.close()


def effects_played(page: object) -> list[str]:
    """The ids of the game's cues the screen started playing (not its music, not a voice)."""
    return [p["id"] for p in page.evaluate("window.__cuesPlayed")  # type: ignore[attr-defined]
            if not p["id"].startswith(("music-", "clue-"))]


def test_each_event_sound_plays_once_though_mqtt_delivers_it_twice(rig: Rig) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw, *kiosk_flags())
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.set_default_timeout(20_000)
        page.goto(rig.screen())
        page.wait_for_selector("#link.dot.ok")
        page.wait_for_function("window.__preloaded.length >= 4")
        rig.start()
        latencies = []
        for seq in range(1, 11):
            sent = time.time()
            rig.node.event("keypad", "code", "0000", seq=seq)
            rig.node.event("keypad", "code", "0000", seq=seq)   # the same event again
            page.wait_for_function("(n) => window.__cuesPlayed.filter((p) => !p.id.startsWith('music-'))"
                                   ".length >= n", arg=seq)
            latencies.append(page.evaluate("window.__cuesPlayed.filter((p) => !p.id.startsWith('music-'))"
                                           ".at(-1).wall") - sent * 1000)
        page.wait_for_timeout(800)   # time for a second play of any of them
        played = effects_played(page)
        assert len(played) == 10 and len(set(played)) == 10, played
        print(f"\nraw MQTT wrong code → its sound playing: p50 {statistics.median(latencies):.0f} ms, "
              f"max {max(latencies):.0f} ms (n={len(latencies)}): {[round(x) for x in latencies]}")
        assert max(latencies) < 3000

        rig.node.event("keypad", "code", "0412", seq=11)   # solved, and the rent paid
        page.wait_for_function("window.__cuesPlayed.filter((p) => !p.id.startsWith('music-')).length >= 12")
        view = httpx.get(f"{rig.direct}/api/state", params={"token": AUTH.screen_token("hall")}).json()
        cues = {str(c["id"]): c["file"] for c in view["game"]["cues"]}
        # both at once (which starts first is the browser's business)
        assert sorted(cues.get(i) for i in effects_played(page)[10:]) == ["budget-down.wav", "solved.wav"]
        browser.close()


def quietly(cdp: object, expression: str) -> object:
    """What the page says, read through a bare DevTools session: Playwright's evaluate,
    locators, clicks and screenshots run their script as a user gesture
    (Runtime.callFunctionOn with userGesture), which allows sound by itself for 5 s."""
    reply = cdp.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})  # type: ignore[attr-defined]
    return reply["result"].get("value")


def wait_quietly(cdp: object, expression: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not quietly(cdp, expression):
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {expression}"
        time.sleep(0.05)


MUSIC = '#cues audio[data-cue="music-game"]'
MUSIC_PLAYS = f"(() => {{ const a = document.querySelector('{MUSIC}'); return !!a && !a.paused && a.currentTime > 0.2; }})()"


@pytest.mark.parametrize("hand", ["finger", "mouse"])
def test_activer_le_son_shows_only_while_the_browser_refuses_sound(rig: Rig, hand: str) -> None:
    from playwright.sync_api import sync_playwright

    rig.start()   # the hall's music plays from now on
    with sync_playwright() as pw:
        # a screen opened by hand, in a browser that wants a touch before any sound: a
        # tablet touched with a finger, or a computer's mouse
        browser = launch(pw, GESTURE_REQUIRED)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, has_touch=hand == "finger")
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        # NOTE: nothing of Playwright's but goto and raw input until the music plays: the page
        # is read quietly(), else Playwright's own gestures would allow sound with no touch
        page.goto(rig.screen())
        wait_quietly(cdp, "(document.getElementById('sound-prompt') || {}).textContent === '🔊 Activer le son'")
        wait_quietly(cdp, f"!!document.querySelector('{MUSIC}')")   # the view came: the music was asked to play
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:   # …and refused: silent while nobody touches the screen
            assert quietly(cdp, "window.__cuesPlayed.length") == 0
            assert quietly(cdp, f"document.querySelector('{MUSIC}').paused") is True
            time.sleep(0.1)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "screen-sound-prompt.png").write_bytes(
            base64.b64decode(cdp.send("Page.captureScreenshot")["data"]))  # type: ignore[attr-defined]
        x, y = quietly(cdp, "(() => { const r = document.getElementById('sound-prompt').getBoundingClientRect(); "
                            "return [r.x + r.width / 2, r.y + r.height / 2]; })()")  # type: ignore[misc]
        touched = time.time() * 1000
        if hand == "finger":
            page.touchscreen.tap(x, y)                           # one touch
        else:
            page.mouse.click(x, y)
        wait_quietly(cdp, "window.__soundBlocked === false && !document.getElementById('sound-prompt')")
        wait_quietly(cdp, MUSIC_PLAYS)
        started = [p["wall"] for p in page.evaluate("window.__cuesPlayed") if p["id"] == "music-game"]
        assert len(started) == 1 and started[0] >= touched - 50, (started, touched)   # after the touch only
        browser.close()

        # the kiosk's Chromium: sound plays by itself, the prompt never shows
        browser = launch(pw, *kiosk_flags())
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        cdp = page.context.new_cdp_session(page)
        page.add_init_script("window.__promptSeen = false; new MutationObserver(() => { "
                             "if (document.getElementById('sound-prompt')) window.__promptSeen = true; })"
                             ".observe(document, {subtree: true, childList: true, attributes: true});")
        page.goto(rig.screen())
        wait_quietly(cdp, "window.__soundBlocked !== null")
        wait_quietly(cdp, MUSIC_PLAYS)
        assert quietly(cdp, "window.__soundBlocked") is False
        assert quietly(cdp, "document.getElementById('sound-prompt') === null && window.__promptSeen === false")
        browser.close()


def test_a_screen_cut_from_the_network_keeps_playing_from_memory_then_follows_live_again(rig: Rig) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw, *kiosk_flags())
        context = browser.new_context(viewport={"width": 1920, "height": 1080})
        page = context.new_page()
        page.set_default_timeout(20_000)
        rig.start()   # the screen opened during the game: its music is due at once
        page.goto(rig.screen())
        page.wait_for_selector("#link.dot.ok")
        page.wait_for_function("window.__preloaded.length >= 4")   # its preload is done
        music = '#cues audio[data-cue="music-game"]'
        page.wait_for_function("(sel) => { const a = document.querySelector(sel); "
                               "return a && !a.paused && a.currentTime > 0.2; }", arg=music)
        # the music waited for its preload: it plays from memory, not from the network
        assert page.eval_on_selector(music, "(a) => a.src").startswith("blob:")

        # the controller's files unreachable, the live feed still up: a cue delivered now
        # plays from what was preloaded
        page.route("**/*", lambda route: route.abort())
        rig.node.event("keypad", "code", "0000", seq=1)
        page.wait_for_function("window.__cuesPlayed.filter((p) => !p.id.startsWith('music-')).length >= 1")
        assert page.eval_on_selector('#cues audio[data-cue="1"]', "(a) => a.src").startswith("blob:")

        # now the whole network: the browser offline, the controller unreachable
        context.set_offline(True)
        rig.proxy.cut()
        page.wait_for_selector("#link.dot.off")
        rig.node.event("keypad", "code", "0000", seq=2)   # happens while the screen is away
        page.evaluate("() => { window.__wraps = 0; const a = document.querySelector('#cues audio[data-cue=\"music-game\"]'); "
                      "let t = a.currentTime; a.addEventListener('timeupdate', () => { "
                      "if (a.currentTime < t) window.__wraps++; t = a.currentTime; }); }")
        samples = []
        for _ in range(6):   # 6 s cut off: the 1.4 s music loops from memory
            samples.append(page.eval_on_selector(music, "(a) => ({paused: a.paused, t: a.currentTime})"))
            page.wait_for_timeout(1000)
        assert not any(s["paused"] for s in samples)
        assert len({round(s["t"], 2) for s in samples}) == len(samples)   # time moving
        assert page.evaluate("window.__wraps") >= 2                        # looped, offline
        shot(page, "screen-network-cut")

        # the network comes back: the live feed resumes; what happened 6 s ago is not played
        context.set_offline(False)
        page.unroute("**/*")
        rig.proxy.restore()
        page.wait_for_selector("#link.dot.ok", timeout=30_000)
        page.wait_for_timeout(500)
        assert effects_played(page) == ["1"]
        rig.node.event("keypad", "code", "0000", seq=3)
        page.wait_for_function("window.__cuesPlayed.filter((p) => !p.id.startsWith('music-')).length >= 2")
        assert effects_played(page) == ["1", "3"]
        browser.close()


def screen_view(rig: Rig) -> dict:
    """The hall screen's view, as the controller serves it."""
    return httpx.get(f"{rig.direct}/api/state", params={"token": AUTH.screen_token("hall")}).json()


def test_a_key_press_that_allows_sound_takes_the_prompt_away_at_the_first_sound_heard(rig: Rig) -> None:
    """No click on « Activer le son »: a key pressed on the screen's keyboard gives the page
    the browser's sticky activation; the next cue plays, heard, and the prompt goes and the
    room's refused music starts. Before the key, a cue is refused and the prompt stays."""
    from playwright.sync_api import sync_playwright

    rig.start()
    with sync_playwright() as pw:
        browser = launch(pw, GESTURE_REQUIRED)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        page.goto(rig.screen())   # then nothing of Playwright's but raw input (see quietly)
        wait_quietly(cdp, "!!document.getElementById('sound-prompt') && window.__soundBlocked === true")
        wait_quietly(cdp, f"!!document.querySelector('{MUSIC}') && window.__preloaded.length >= 4")
        rig.node.event("keypad", "code", "0000", seq=1)   # refused: nobody has touched the screen
        deadline = time.monotonic() + 10
        while not any(c["file"] == "wrong.wav" for c in screen_view(rig)["game"]["cues"]):
            assert time.monotonic() < deadline, "the wrong code was not cued"
            time.sleep(0.05)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert quietly(cdp, "window.__cuesPlayed.length") == 0
            assert quietly(cdp, f"document.querySelector('{MUSIC}').paused && "
                                "!!document.getElementById('sound-prompt')") is True
            time.sleep(0.1)

        pressed = time.time() * 1000
        page.keyboard.press("a")   # raw input: the browser's user activation, no click
        time.sleep(0.5)
        assert quietly(cdp, "!!document.getElementById('sound-prompt')") is True   # nothing heard yet
        rig.node.event("keypad", "code", "0000", seq=2)
        wait_quietly(cdp, "window.__soundBlocked === false && !document.getElementById('sound-prompt')")
        wait_quietly(cdp, MUSIC_PLAYS)
        played = quietly(cdp, "window.__cuesPlayed")
        assert [p["id"] for p in played if not p["id"].startswith("music-")] == ["2"], played
        assert all(p["wall"] >= pressed - 50 for p in played), (played, pressed)
        browser.close()


# what the page played and when its sounds ended, with the music's volume at each moment
WATCH = """
window.__heard = [];
for (const what of ["playing", "ended"]) document.addEventListener(what, (e) => {
  const music = document.querySelector('#cues audio[data-cue^="music-"]');
  window.__heard.push({what, id: e.target.dataset.cue, wall: performance.timeOrigin + performance.now(),
                       music: music ? music.volume : null});
}, true);
"""


def watched_tv(browser: object) -> object:
    """A TV-sized page of *browser* that notes in ``window.__heard`` each cue playing and ending."""
    page = browser.new_page(viewport={"width": 1920, "height": 1080})  # type: ignore[attr-defined]
    page.set_default_timeout(20_000)
    page.add_init_script(WATCH)
    return page


def send_clue(rig: Rig) -> tuple[float, str]:
    """A clue for the hall, typed by the game master: when it was sent (ms), its voice's cue."""
    sent = time.time() * 1000
    reply = rig.gm.post("/api/clues", json={"text": "Regardez sous le paillasson.", "room": "hall"})
    assert reply.status_code == 200, reply.text
    return sent, f"clue-{reply.json()['clue']['id']}"


def chime_cue(rig: Rig) -> str:
    return next(str(c["id"]) for c in screen_view(rig)["game"]["cues"] if c["event"] == "clue_chime")


def test_a_clues_voice_starts_once_its_chime_has_ended_the_music_ducked_throughout(rig: Rig) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw, *kiosk_flags())
        page = watched_tv(browser)
        page.goto(rig.screen())
        page.wait_for_selector("#link.dot.ok")
        page.wait_for_function("window.__preloaded.length >= 4")
        rig.start()
        page.wait_for_function(MUSIC_PLAYS)
        sent, voice = send_clue(rig)
        page.wait_for_function("(id) => window.__heard.some((h) => h.what === 'ended' && h.id === id)",
                               arg=voice, timeout=30_000)
        page.wait_for_function(f"document.querySelector('{MUSIC}').volume > 0.5 * 0.95")   # back up
        heard = page.evaluate("window.__heard")
        chime = chime_cue(rig)

        def at(what: str, cue: str) -> dict:
            return next(h for h in heard if h["what"] == what and h["id"] == cue)

        chime_ended, voice_playing = at("ended", chime), at("playing", voice)
        print(f"\nclue sent → chime playing {at('playing', chime)['wall'] - sent:.0f} ms, "
              f"ended {chime_ended['wall'] - sent:.0f} ms, its voice playing {voice_playing['wall'] - sent:.0f} ms")
        assert chime_ended["wall"] <= voice_playing["wall"] < chime_ended["wall"] + 1000, heard
        assert voice_playing["wall"] - at("playing", chime)["wall"] > 1200   # the whole 1.4 s chime first
        # ducked (20 % of 0.5) from the chime to the end of the voice
        assert chime_ended["music"] < 0.5 * 0.3 and voice_playing["music"] < 0.5 * 0.3, heard
        assert at("ended", voice)["music"] < 0.5 * 0.3, heard
        browser.close()


def test_two_clues_sent_at_once_are_spoken_one_after_the_other_the_music_ducked_throughout(rig: Rig) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw, *kiosk_flags())
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.set_default_timeout(20_000)
        page.add_init_script(WATCH)
        page.goto(rig.screen())
        page.wait_for_selector("#link.dot.ok")
        page.wait_for_function("window.__preloaded.length >= 4")
        rig.start()
        page.wait_for_function(MUSIC_PLAYS)
        voices, sent = [], time.time() * 1000
        for text in ("Regardez sous le paillasson, puis derrière le tableau de l'entrée.", "Le code a quatre chiffres."):
            reply = rig.gm.post("/api/clues", json={"text": text, "room": "hall"})
            assert reply.status_code == 200, reply.text
            voices.append(f"clue-{reply.json()['clue']['id']}")
            time.sleep(0.1)   # the second clue 100 ms after the first
        page.wait_for_function("(ids) => ids.every((id) => window.__heard.some((h) => h.what === 'ended' && h.id === id))",
                               arg=voices, timeout=40_000)
        page.wait_for_function(f"document.querySelector('{MUSIC}').volume > 0.5 * 0.95")   # back up
        heard = page.evaluate("window.__heard")

        def at(what: str, cue: str) -> dict:
            return next(h for h in heard if h["what"] == what and h["id"] == cue)

        first, second = voices
        print(f"\ntwo clues 100 ms apart → first voice {at('playing', first)['wall'] - sent:.0f}–"
              f"{at('ended', first)['wall'] - sent:.0f} ms, second from {at('playing', second)['wall'] - sent:.0f} ms")
        assert at("playing", first)["wall"] < at("ended", first)["wall"] <= at("playing", second)["wall"], heard
        assert sum(1 for h in heard if h["what"] == "playing" and h["id"] in voices) == 2, heard   # each once
        # ducked (20 % of 0.5) from the first voice to the end of the last, between them too
        for what, cue in (("playing", first), ("ended", first), ("playing", second), ("ended", second)):
            assert at(what, cue)["music"] < 0.5 * 0.3, (what, cue, heard)
        browser.close()


def _clues(rig: Rig, *texts: str) -> list[str]:
    """Clues sent to the hall 100 ms apart: the ids of their voices."""
    voices = []
    for text in texts:
        reply = rig.gm.post("/api/clues", json={"text": text, "room": "hall"})
        assert reply.status_code == 200, reply.text
        voices.append(f"clue-{reply.json()['clue']['id']}")
        time.sleep(0.1)
    return voices


def test_a_stop_empties_the_voices_queue_and_a_voice_that_fails_holds_none(rig: Rig) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw, *kiosk_flags())
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.set_default_timeout(20_000)
        page.add_init_script(WATCH)
        asked: list[str] = []

        def first_fails(route: object) -> None:   # the first voice asked for cannot be loaded
            asked.append(route.request.url)  # type: ignore[attr-defined]
            route.abort() if len(asked) == 1 else route.continue_()  # type: ignore[attr-defined]
        page.route("**/api/speech/clues/**", first_fails)
        page.goto(rig.screen())
        page.wait_for_selector("#link.dot.ok")
        page.wait_for_function("window.__preloaded.length >= 4")
        rig.start()
        page.wait_for_function(MUSIC_PLAYS)
        broken, heard_one, *queued = _clues(rig, "Une voix qui ne vient pas.", "Regardez sous le paillasson, puis "
                                            "derrière le tableau de l'entrée.", "Le code a quatre chiffres.",
                                            "Cherchez la clé dans le salon.")
        page.wait_for_function("(id) => window.__heard.some((h) => h.what === 'playing' && h.id === id)",
                               arg=heard_one, timeout=15_000)   # the failed voice did not hold it
        assert rig.gm.post("/api/media/stop", json={"room": "hall"}).status_code == 200
        page.wait_for_function("!document.querySelector('#cues audio[data-cue^=\"clue-\"]')", timeout=10_000)
        stopped = time.monotonic()
        while time.monotonic() - stopped < 4:   # longer than the voice that was cut would have lasted
            assert not page.evaluate("document.querySelector('#cues audio[data-cue^=\"clue-\"]')")
            time.sleep(0.2)
        after = _clues(rig, "Le tiroir du bas.")[0]
        page.wait_for_function("(id) => window.__heard.some((h) => h.what === 'playing' && h.id === id)",
                               arg=after, timeout=15_000)   # the next clue is spoken: nothing left queued
        heard = page.evaluate("window.__heard")
        played = [h["id"] for h in heard if h["what"] == "playing" and h["id"].startswith("clue-")]
        assert played == [heard_one, after], (played, broken, queued)
        browser.close()


def test_a_chime_that_never_loads_holds_the_voice_back_a_bounded_time_only(rig: Rig) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw, *kiosk_flags())
        page = watched_tv(browser)
        page.route("**/api/media/files/**", lambda route: None)   # never answered: the chime stalls
        page.goto(rig.screen())
        page.wait_for_selector("#link.dot.ok")
        rig.start()
        sent, voice = send_clue(rig)
        page.wait_for_function("(id) => window.__heard.some((h) => h.what === 'playing' && h.id === id)",
                               arg=voice, timeout=15_000)
        heard = page.evaluate("window.__heard")
        after = next(h["wall"] for h in heard if h["what"] == "playing" and h["id"] == voice) - sent
        print(f"\nclue sent, its chime stalled → its voice playing: {after:.0f} ms")
        assert not any(h["id"] == chime_cue(rig) for h in heard)   # the chime never played
        assert 2500 < after < 8000   # held back (MediaCues CHIME_WAIT_MS, 3 s), then spoken
        browser.close()
