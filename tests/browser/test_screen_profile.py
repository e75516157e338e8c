"""The group's profile on the room TV (1920×1080) and on the console (1280×800), in real
Chromium against a real server, broker and simulated nodes (docs/media.md, « Profils du
groupe »): an Arabic group reads the clue right to left, in Arabic, the French beneath,
nothing cut off, even for a group with every need at once; a group that reads little gets
the clue bigger and shorter, and hears the game's messages; a group that
hears little sees a full-screen flash with the clue's chime and with a sound; the game
master chooses the profile in the start dialog and changes it during the game.
Screenshots in test-artifacts/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import GM_PASSWORD, Server, shot
from tests.browser.conftest import GameMaster as BaseGameMaster

pytestmark = pytest.mark.browser
#: Chromium started as a room's kiosk starts it: sound allowed without a touch
KIOSK = True
TIMEOUT_MS = 20_000   # generous: CI machines have 2 cores and run Chromium beside 7 nodes
TV = {"width": 1920, "height": 1080}
TABLET = {"width": 1280, "height": 800}
AR_WORDS = json.loads((Path(__file__).resolve().parents[2] / "dashboard/static/i18n/ar.json")
                      .read_text(encoding="utf-8"))
#: the shipped game's second clue of the mailbox (hall), its Arabic and its short wording
CLUE_FR = "Quatre chiffres : le jour (2 chiffres) puis le mois (2 chiffres)."
CLUE_AR = "أربعة أرقام: اليوم (رقمان) ثم الشهر (رقمان)."
CLUE_SHORT = "Jour puis mois : 4 chiffres."

#: every leaf of the TV's panels past its panel's edge (either side: right to left too) or
#: the screen's, or cut by an overflow
CLIPPED = """() => [...document.querySelectorAll('main.tv section')].flatMap((s) => {
  const box = s.getBoundingClientRect();
  return [...s.querySelectorAll('*')].filter((e) => e.getClientRects().length && !e.children.length)
    .filter((e) => { const r = e.getBoundingClientRect();
      return r.bottom > box.bottom + 1 || r.right > box.right + 1 || r.left < box.left - 1
        || r.bottom > innerHeight || e.scrollWidth > e.clientWidth + 1; })
    .map((e) => e.id || e.className || e.textContent.slice(0, 30)); })"""


class GameMaster(BaseGameMaster):
    """The game master's orders, with those this module's tests give."""
    def start(self, **profile: Any) -> None:
        """A new game of the primo parcours, for a group of *profile*."""
        if self.state()["game"]["phase"] in ("running", "paused", "check", "briefing"):
            assert self.post("/api/game/stop")["ok"]
        assert self.post("/api/game/reset")["ok"]
        reply = self.post("/api/game/start", {"parcours": "primo", "players": 4, "profile": profile})
        assert reply["ok"], reply

    def clue(self, puzzle: str = "mailbox", index: int = 1) -> None:
        assert self.post("/api/clues", {"puzzle": puzzle, "index": index})["ok"]


@pytest.fixture
def tv(browser: Any, server: Server) -> Iterator[Any]:
    """The hall's TV (its kiosk URL, with its token) at 1920×1080."""
    context = browser.new_context(viewport=TV)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda e: print(f"page error: {e}"))

    def open_tv() -> Any:
        page.goto(f"{server.url}/screen/hall?token={server.auth.screen_token('hall')}")
        page.wait_for_selector("#link.dot.ok")
        page.wait_for_selector('body[data-phase="running"]')
        return page

    yield open_tv
    context.close()


def clue_size(page: Any) -> float:
    return page.evaluate("parseFloat(getComputedStyle(document.querySelector('.clue.new')).fontSize)")


def test_an_arabic_group_reads_the_clue_right_to_left(gm: GameMaster, tv: Any) -> None:
    gm.start(language="ar")
    page = tv()
    gm.clue()
    said = page.wait_for_selector('.clue.new .said[lang="ar"]')
    assert said.inner_text() == CLUE_AR
    assert page.evaluate("getComputedStyle(document.querySelector('.clue.new .said')).direction") == "rtl"
    assert page.evaluate("document.documentElement.dir") == "rtl"
    # the French beneath, small, left to right
    fr = page.query_selector(".clue.new .said-fr")
    assert fr.inner_text() == CLUE_FR and fr.get_attribute("dir") == "ltr"
    assert page.evaluate("getComputedStyle(document.querySelector('.clue.new .said-fr')).direction") == "ltr"
    # the screen's own words and the room's name in Arabic too
    page.wait_for_function("(w) => document.getElementById('state-text').textContent === w",
                           arg=AR_WORDS["screen_state_running"])
    assert page.inner_text('#room-name .said[lang="ar"]') == "مدخل العمارة"
    # drawn with an Arabic font, nothing cut off, no page wider or taller than the TV
    font = page.evaluate("getComputedStyle(document.querySelector('.clue.new .said')).fontFamily")
    assert "Noto Sans Arabic" in font
    assert page.evaluate(CLIPPED) == []
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"
                         " && document.documentElement.scrollHeight <= innerHeight")
    shot(page, "screen-profile-arabic")
    size = page.evaluate("new TextEncoder().encode(JSON.stringify(snap.say)).length")
    print(f"\nthe hall's view in Arabic: « say » of {size} bytes")
    # back to French only: the words and the clue in French, left to right
    assert gm.post("/api/game/profile", {"language": None})["ok"]
    page.wait_for_function("() => document.documentElement.dir === 'ltr' && !document.querySelector('.said')")
    assert CLUE_FR in page.inner_text(".clue.new")


def test_arabic_for_a_group_with_every_need_fits_the_tv(gm: GameMaster, tv: Any, server: Server) -> None:
    gm.start(language="ar", low_literacy=True, children=True, hard_of_hearing=True)
    page = tv()
    page.goto(f"{server.url}/screen/cuisine?token={server.auth.screen_token('cuisine')}")
    page.wait_for_selector('body[data-phase="running"]')
    for puzzle in ("mailbox", "front_door"):   # a message to every room, the kitchen's puzzle open
        assert gm.post(f"/api/game/puzzles/{puzzle}/solve")["ok"]
    gm.clue("kitchen_hood", 0)
    gm.clue("kitchen_hood", 1)
    page.wait_for_function("() => document.querySelectorAll('.clue .said[lang=ar]').length === 3")
    # a free clue the game master typed has no translation: French, as written
    assert gm.post("/api/clues", {"text": "Regardez sous l'évier.", "room": "cuisine"})["ok"]
    page.wait_for_function("() => document.querySelector('.clue.new').textContent.includes('sous l')")
    assert page.query_selector(".clue.new .said") is None
    # it keeps its own direction on the right-to-left screen: its full stop last
    assert page.evaluate("getComputedStyle(document.querySelector('.clue.new bdi')).direction") == "ltr"
    page.wait_for_function("() => !document.querySelector('#flash.on')")
    assert page.evaluate(CLIPPED) == []
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth"
                         " && document.documentElement.scrollHeight <= innerHeight")
    shot(page, "screen-profile-arabic-all-needs")


def test_a_group_that_reads_little_gets_the_clue_bigger_and_shorter(gm: GameMaster, tv: Any) -> None:
    gm.start()
    page = tv()
    gm.clue()
    page.wait_for_selector(".clue.new")
    assert CLUE_FR in page.inner_text(".clue.new")
    plain = clue_size(page)
    began = time.monotonic()
    assert gm.post("/api/game/profile", {"low_literacy": True})["ok"]
    page.wait_for_selector("body.p-low-literacy")
    print(f"\nprofile changed → the TV shows it: {(time.monotonic() - began) * 1000:.0f} ms (with the order's answer)")
    page.wait_for_function("(w) => document.querySelector('.clue.new').textContent.includes(w)", arg=CLUE_SHORT)
    bigger = clue_size(page)
    assert bigger >= plain * 1.3, (plain, bigger)
    assert page.evaluate(CLIPPED) == []
    shot(page, "screen-profile-low-literacy")
    # the game's message (the mailbox opens) is read out too
    assert gm.post("/api/game/puzzles/mailbox/solve")["ok"]
    page.wait_for_function("() => window.__cuesPlayed.some((c) => c.id === 'message-1')")


def test_a_group_that_hears_little_sees_a_flash_with_the_chime_and_a_sound(gm: GameMaster, tv: Any) -> None:
    gm.start(hard_of_hearing=True)
    page = tv()
    assert page.evaluate("window.__flashes.length") == 0, "nothing flashes on opening"
    gm.clue()
    page.wait_for_selector("#flash.on")
    assert page.evaluate("getComputedStyle(document.getElementById('flash')).position") == "fixed"
    box = page.evaluate("(() => { const r = document.getElementById('flash').getBoundingClientRect();"
                        " return [r.width, r.height]; })()")
    assert box == [TV["width"], TV["height"]], "the whole screen"
    page.wait_for_function("() => !document.querySelector('#flash.on')")
    # the sounds of the game (the mailbox solved and opened, the budget moving: the game
    # file's event sounds): a flash too
    assert gm.post("/api/game/puzzles/mailbox/solve")["ok"]
    page.wait_for_function("() => window.__flashes.length >= 2")
    page.wait_for_function("() => !document.querySelector('#flash.on')")
    flashes = page.evaluate("window.__flashes.length")
    assert not page.evaluate("window.__cuesPlayed.some((c) => c.id.startsWith('message-'))"), \
        "a group that reads well is not read the messages"
    # the game master unticks it: a clue no longer flashes
    assert gm.post("/api/game/profile", {"hard_of_hearing": False})["ok"]
    page.wait_for_function("() => !document.body.classList.contains('p-hoh')")
    gm.clue("mailbox", 0)
    page.wait_for_function("() => document.getElementById('clues').parentNode.textContent.includes('sur le bail')")
    assert page.evaluate("window.__flashes.length") == flashes


def test_the_game_master_chooses_and_changes_the_profile_on_the_console(gm: GameMaster, browser: Any,
                                                                       server: Server) -> None:
    if gm.state()["game"]["phase"] in ("running", "paused", "check", "briefing"):
        assert gm.post("/api/game/stop")["ok"]
    assert gm.post("/api/game/reset")["ok"]
    context = browser.new_context(viewport=TABLET)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda e: print(f"page error: {e}"))
    try:
        page.goto(f"{server.url}/console")
        page.fill("#password", GM_PASSWORD)
        page.click("#submit")
        page.wait_for_url("**/console")
        page.wait_for_selector("#link.ok")
        page.click("#open-start")
        assert page.inner_text("#start-profile legend") == "Profil du groupe"
        # only the languages the game file is translated into
        options = page.eval_on_selector_all("#start-language option", "os => os.map((o) => o.textContent)")
        assert options == ["français seulement", "anglais", "arabe", "portugais"]
        page.check("#start-children")
        page.check("#start-low-literacy")
        page.select_option("#start-language", "ar")
        shot(page, "console-start-profile")
        page.click("#start-confirm")
        page.wait_for_selector("#profile-line:not(.hidden)")
        page.wait_for_function("() => document.getElementById('profile').textContent.includes('arabe')")
        assert gm.state()["game"]["profile"] == {"children": True, "low_literacy": True, "language": "ar",
                                                 "hard_of_hearing": False}
        # during the game: the game master changes it
        page.click("#edit-profile")
        assert page.is_checked("#profile-low-literacy") and page.input_value("#profile-language") == "ar"
        page.uncheck("#profile-low-literacy")
        page.check("#profile-hoh")
        page.select_option("#profile-language", "")
        page.click('#profile-form button[value="save"]')
        page.wait_for_function("() => document.getElementById('profile').textContent.includes('Malentendants')")
        assert gm.state()["game"]["profile"] == {"children": True, "low_literacy": False, "language": None,
                                                 "hard_of_hearing": True}
        assert gm.state()["game"]["phase"] == "running"
    finally:
        context.close()
