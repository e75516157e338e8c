"""The room TV and the debrief shown to the group, in headless Chromium against a real
server, broker and simulated nodes (fixtures: tests/browser/conftest.py).

The TV at 1920×1080, read by a family from 3 metres: each end of a game says itself
(« Gagné », « Temps écoulé », « Partie terminée », « Sortez » then « Jeu en pause »);
« Nouvelle session » leaves nothing of the last group's game; the budget tells the truth
(unpaid bills charged at the end, the debrief on a 1280×800 tablet explains them); text
big enough, the last move of the budget and its reason, the month as a picture, the last
minutes announced, old clues no longer new, nothing to press. Screenshots in
test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import GameMaster as BaseGameMaster
from tests.browser.conftest import Server, shot

pytestmark = pytest.mark.browser
#: Chromium started as a room's kiosk starts it: sound allowed without a touch
KIOSK = True
TIMEOUT_MS = 20_000  # generous: CI machines have 2 cores and run Chromium beside 7 nodes
TV = {"width": 1920, "height": 1080}
TABLET = {"width": 1280, "height": 800}
#: the shipped game's primo parcours: the month's start, a perfect game's end
START, PERFECT = 1450, 857
NBSP = "\u202f"   # the French thousands separator of toLocaleString("fr-FR")


class GameMaster(BaseGameMaster):
    """The game master's orders, with those this module's tests give."""
    def idle(self) -> None:
        """Back to idle, no alert: the next test starts clean."""
        if (self.state().get("emergency") or {}).get("active"):
            assert self.post("/api/emergency/end")["ok"]
        if self.state()["game"]["phase"] in ("running", "paused", "check", "briefing"):
            assert self.post("/api/game/stop")["ok"]
        assert self.post("/api/game/reset")["ok"]

    def start(self, parcours: str = "primo") -> None:
        self.idle()
        assert self.post("/api/game/start", {"parcours": parcours, "players": 4})["ok"]

    def solve(self, *puzzles: str) -> None:
        for puzzle in puzzles:
            assert self.post(f"/api/game/puzzles/{puzzle}/solve")["ok"], puzzle


@pytest.fixture
def tv_for(browser: Any, server: Server) -> Iterator[Any]:
    """Open a room's TV (its kiosk URL, with its token) at 1920×1080."""
    contexts = []

    def open_tv(room: str) -> Any:
        context = browser.new_context(viewport=TV)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{server.url}/screen/{room}?token={server.auth.screen_token(room)}")
        page.wait_for_selector("#link.dot.ok")
        return page

    yield open_tv
    for context in contexts:
        context.close()


def said(page: Any) -> str:
    return page.inner_text("body")


def wait_phase(page: Any, phase: str) -> None:
    page.wait_for_selector(f'body[data-phase="{phase}"]')


def px(page: Any, selector: str) -> float:
    return page.evaluate("(s) => parseFloat(getComputedStyle(document.querySelector(s)).fontSize)", selector)


#: the TV's words cut off: a leaf element past its panel's edge or the screen's, or a name
#: shortened with an ellipsis
CLIPPED = """() => [...document.querySelectorAll('main.tv section')].flatMap((s) => {
  const box = s.getBoundingClientRect();
  return [...s.querySelectorAll('*')].filter((e) => e.getClientRects().length && !e.children.length)
    .filter((e) => { const r = e.getBoundingClientRect();
      return r.bottom > box.bottom + 1 || r.right > box.right + 1 || r.bottom > innerHeight
        || (getComputedStyle(e).overflow === 'hidden' && e.scrollWidth > e.clientWidth + 1); })
    .map((e) => e.id || e.className || e.textContent.slice(0, 30)); })"""


def tv_shot(page: Any, name: str) -> None:
    """Whatever the TV shows, all of it is in view, nothing cut off; then its screenshot."""
    assert page.evaluate("document.documentElement.scrollHeight <= window.innerHeight"), name
    assert page.evaluate(CLIPPED) == [], name
    shot(page, name)


def euros(n: int) -> str:
    return f"{n:,}".replace(",", NBSP) + " €"


# -- each end of the game, on the TV --------------------------------------------------------
def test_a_won_game_says_gagne_on_the_tv(gm: GameMaster, tv_for: Any) -> None:
    gm.start()
    tv = tv_for("poubelles")
    wait_phase(tv, "running")
    assert gm.post("/api/game/puzzles/waste_sorting/skip")["ok"]
    gm.solve("waste_sorting")
    wait_phase(tv, "won")
    text = said(tv)
    assert "Gagné ! Bravo !" in text and "🏆" in text
    assert "En attente" not in text
    assert tv.text_content("#budget") == euros(PERFECT)     # every bill paid on the way
    tv_shot(tv, "tv-won")


def test_time_up_says_temps_ecoule_after_the_last_minutes_cue(gm: GameMaster, tv_for: Any) -> None:
    gm.start()
    tv = tv_for("hall")
    wait_phase(tv, "running")
    assert tv.is_hidden("#hurry")
    # four minutes left: the last minutes are announced, the timer goes red
    remaining = gm.state()["game"]["remaining_s"]
    assert gm.post("/api/game/time", {"seconds": -int(remaining - 240)})["ok"]
    tv.wait_for_selector("body.hurry #hurry:not(.hidden)")
    assert "Plus que 5 minutes" in tv.text_content("#hurry")
    assert px(tv, "#hurry") >= 48
    red = tv.evaluate("getComputedStyle(document.getElementById('remaining')).color")
    assert red == "rgb(255, 138, 128)", red
    tv_shot(tv, "tv-last-minutes")
    # then the time runs out
    remaining = gm.state()["game"]["remaining_s"]
    assert gm.post("/api/game/time", {"seconds": -int(remaining - 2)})["ok"]
    wait_phase(tv, "lost")
    text = said(tv)
    assert "Temps écoulé" in text and "⌛" in text and "En attente" not in text
    assert tv.text_content("#remaining") == "00:00"
    assert tv.is_hidden("#hurry")
    tv_shot(tv, "tv-time-up")


def test_an_aborted_game_says_so_on_the_tv(gm: GameMaster, tv_for: Any) -> None:
    gm.start()
    tv = tv_for("cuisine")
    wait_phase(tv, "running")
    assert gm.post("/api/game/stop")["ok"]
    wait_phase(tv, "aborted")
    assert "Partie terminée" in said(tv) and "En attente" not in said(tv)
    tv_shot(tv, "tv-aborted")


def test_an_emergency_says_sortez_then_jeu_en_pause(gm: GameMaster, tv_for: Any) -> None:
    gm.start()
    tv = tv_for("chambre")
    wait_phase(tv, "running")
    assert gm.post("/api/emergency")["ok"]
    tv.wait_for_selector("#evacuate:not(.hidden)")
    assert tv.text_content("#evacuate h2") == "Sortez"
    assert "portes sont ouvertes" in tv.text_content("#evacuate")
    # it covers the whole screen, in letters a room away can read
    box = tv.locator("#evacuate").bounding_box()
    assert (box["width"], box["height"]) == (TV["width"], TV["height"])
    assert px(tv, "#evacuate h2") >= 150
    tv_shot(tv, "tv-emergency")
    assert gm.post("/api/emergency/end")["ok"]
    tv.wait_for_selector("#evacuate.hidden", state="attached")
    wait_phase(tv, "paused")
    assert "Jeu en pause" in said(tv)
    tv_shot(tv, "tv-paused-after-emergency")
    gm.idle()


# -- « Nouvelle session »: nothing of the last group left --------------------------------------
def test_a_new_session_clears_the_tv_and_the_idle_console(gm: GameMaster, tv_for: Any, browser: Any,
                                                          server: Server) -> None:
    gm.start()
    tv = tv_for("hall")
    gm.solve("mailbox", "front_door")
    assert gm.post("/api/clues", {"text": "Regardez sous le paillasson", "room": "hall"})["ok"]
    tv.wait_for_selector("#clues .clue")
    tv.wait_for_selector("#notes .clue")
    remaining = gm.state()["game"]["remaining_s"]
    assert gm.post("/api/game/time", {"seconds": -int(remaining - 2)})["ok"]
    wait_phase(tv, "lost")
    assert gm.post("/api/game/reset")["ok"]                     # « Nouvelle session »
    wait_phase(tv, "idle")
    tv.wait_for_function("document.getElementById('remaining').textContent === '60:00'")
    assert tv.text_content("#budget") == euros(START)
    assert tv.locator("#clues .clue, #notes .clue").count() == 0
    assert "paillasson" not in said(tv) and "boîte aux lettres" not in said(tv)
    assert tv.text_content("#last-change") == ""
    assert "La partie va bientôt commencer" in said(tv)
    tv_shot(tv, "tv-new-session")
    game = gm.state()["game"]                                    # what the idle console shows
    assert (game["phase"], game["session"], game["parcours"]) == ("idle", None, "primo")
    assert (game["remaining_s"], game["duration_s"]) == (3600, 3600)
    assert (game["budget"], game["budget_start"], game["budget_history"]) == (START, START, [])
    assert game["clues"] == game["messages"] == game["audit"] == []
    assert {p["status"] for p in game["puzzles"]} == {"locked"}
    assert game["month"] == {"income": START, "spent": 0, "left": START}
    assert {b["status"] for b in game["bills"]} == {"due"}
    # the idle console on a tablet, opened fresh: the full hour and the month's start
    context = browser.new_context(viewport=TABLET)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_cookies(gm.request.storage_state()["cookies"])
    try:
        console = context.new_page()
        console.goto(f"{server.url}/console")
        console.wait_for_function(
            "(s) => { const t = document.body.innerText.replace(/[\\s\\u202f\\u00a0]/g, '');"
            " return t.includes('60:00') && t.includes(s); }", arg=str(START))
        text = console.inner_text("body")
        assert "paillasson" not in text and "Loyer payé" not in text and "✔ résolue" not in text
        shot(console, "console-new-session-tablet")
    finally:
        context.close()


# -- the budget tells the truth ------------------------------------------------------------------
def skip_two_bills(gm: GameMaster) -> None:
    """The issue's group: rent paid, the electricity bill and the insurance never; the
    deposit forced; a 10 € clue; the way out."""
    gm.start()
    gm.solve("mailbox", "front_door", "repairs", "kitchen_hood", "cleaning_product", "damp_bathroom",
             "pests", "noise", "deposit")
    assert gm.post("/api/clues", {"puzzle": "household_budget", "index": 1})["ok"]


def test_skipped_bills_are_charged_at_the_end_and_the_debrief_explains_them(
        gm: GameMaster, tv_for: Any, browser: Any, server: Server) -> None:
    skip_two_bills(gm)
    tv = tv_for("sejour")
    tv.wait_for_selector('#bills li[data-bill="energy"][data-status="due"]')
    assert "115 € à payer" in tv.text_content('#bills li[data-bill="energy"]')
    assert "payé" in tv.text_content('#bills li[data-bill="rent"]')
    gm.solve("waste_sorting")
    wait_phase(tv, "won")
    final = 977 - (115 + 10) - (15 + 10)
    assert final < PERFECT
    tv.wait_for_selector('#bills li[data-bill="energy"][data-status="charged"]')
    assert tv.text_content("#budget") == euros(final)
    assert "125 € en retard" in tv.text_content('#bills li[data-bill="energy"]')
    assert "Assurance habitation : mise en demeure de l'assureur" in tv.text_content("#last-change")
    assert tv.evaluate(CLIPPED) == []                            # every bill readable, in full
    assert tv.locator("#clues .clue.new").count() == 0           # the game is over: nothing new
    tv_shot(tv, "tv-bills-charged")

    # one figure everywhere: the console's snapshot, the debrief on a tablet and on a TV, the history
    game = gm.state()["game"]
    assert game["budget"] == game["month"]["left"] == final
    for viewport, name in ((TABLET, "tablet"), (TV, "tv")):
        present_debrief(browser, server, gm, viewport, final, name)
    context = browser.new_context(viewport=TABLET)
    context.add_cookies(gm.request.storage_state()["cookies"])
    try:
        history = context.new_page()
        history.goto(f"{server.url}/history")
        row = history.locator(f'#sessions tr[data-session="{game["session"]}"]')
        row.wait_for(timeout=TIMEOUT_MS)
        assert f"{final} €" in row.text_content()
    finally:
        context.close()


def present_debrief(browser: Any, server: Server, gm: GameMaster, viewport: dict, final: int,
                    name: str) -> None:
    """The debrief shown to the group: presentation mode, the bills explained, nothing of
    the game master's; Escape gives it back to the game master."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_cookies(gm.request.storage_state()["cookies"])
    try:
        page = context.new_page()
        page.goto(f"{server.url}/debrief")
        page.wait_for_selector("#content:not(.hidden)")
        page.click("#present")
        page.wait_for_selector("body.presenting #content:not(.hidden)")
        assert page.text_content("#final-budget") == str(final)
        from_ = page.text_content("#budget-from")
        assert f"parti de {euros(START)}" in from_ and "150 €" in from_   # of which bills paid late
        assert page.text_content("#session-date").count(" déc. ") == 1    # « 4 déc. 2026 17:04 »
        energy = page.locator('#bills-list [data-bill="energy"]')
        assert energy.get_attribute("data-status") == "charged"
        words = energy.text_content()
        assert "115 €" in words and "10 €" in words and "relance du fournisseur" in words
        assert "chèque énergie" in words                              # what an unpaid bill leads to
        assert page.locator('#bills-list [data-bill="rent"]').get_attribute("data-status") == "paid"
        assert page.locator('#budget-lines tr[data-kind="late_fee"]').count() == 2
        assert page.locator('#budget-lines tr[data-kind="charged"]').count() == 2
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # nothing of the game master's on it
        for staff in ("#emergency", "#evaluation", "#nav-console", "#lang", "#present"):
            assert page.locator(staff).is_hidden(), staff
        page.locator("#bills").scroll_into_view_if_needed()
        shot(page, f"debrief-presentation-{name}")
        page.keyboard.press("Escape")                                 # the game master takes it back
        page.wait_for_selector("body:not(.presenting) #emergency")
        assert page.locator("#evaluation").is_visible()
        # on a tablet without a keyboard: a long press on the title; a short one does nothing
        page.click("#present")
        page.wait_for_selector("body.presenting")
        page.locator("header h1").scroll_into_view_if_needed()
        title = page.locator("header h1").bounding_box()
        page.mouse.move(title["x"] + 10, title["y"] + title["height"] / 2)
        page.mouse.down()
        page.mouse.up()
        assert page.locator("body.presenting").count() == 1
        page.mouse.down()
        page.wait_for_selector("body:not(.presenting) #emergency")
        page.mouse.up()
    finally:
        context.close()


# -- a family at 3 metres ----------------------------------------------------------------------
def test_the_tv_reads_from_across_the_room_and_has_nothing_to_press(gm: GameMaster, tv_for: Any) -> None:
    gm.start()
    tv = tv_for("entree")
    wait_phase(tv, "running")
    assert gm.post("/api/clues", {"puzzle": "front_door", "index": 0})["ok"]
    tv.wait_for_selector("#clues .clue.new")
    gm.solve("mailbox", "front_door")
    tv.wait_for_function("document.getElementById('budget').textContent.startsWith('830')")
    # the room's name, the last move of the budget and why, the month as a picture, the bills
    assert tv.text_content("#room-name") == "Entrée"
    assert tv.text_content("#last-change") == "−620 € Loyer payé"
    assert tv.text_content("#income") == f"Revenus {euros(START)}"
    assert tv.text_content("#spent") == "Dépensé 620 €"
    assert tv.text_content("#left") == "Il reste 830 €"
    spent_share = tv.evaluate("document.getElementById('bar-spent').getBoundingClientRect().width / "
                              "document.querySelector('#month .bar').getBoundingClientRect().width")
    assert spent_share == pytest.approx(620 / START, abs=0.01)
    assert [b.text_content()[:2].strip() for b in tv.locator("#bills li .pict").all()] == ["🏠", "⚡", "🛡"]
    # old clues are no longer marked new once their puzzle is solved
    tv.wait_for_selector("#notes .clue.done")
    assert tv.locator("#clues .clue.new").count() == 0
    assert "numéro de poste" in tv.text_content("#notes .clue.done")
    for selector in ("#room-name", "#budget", "#last-change", "#income", "#spent", "#bills li .name",
                     "#bills li .st", "#notes .clue", "#state-text"):
        assert px(tv, selector) >= 48, selector
    assert px(tv, "#remaining") >= 150
    # everything fits on the TV, nothing to press, the link a small dot
    assert tv.evaluate("document.documentElement.scrollHeight <= window.innerHeight")
    assert tv.evaluate(CLIPPED) == []
    assert tv.locator("button, a, input, select").count() == 0
    dot = tv.locator("#link").bounding_box()
    assert dot["width"] <= 24 and dot["height"] <= 24
    assert tv.text_content("#link") == "" and tv.get_attribute("#link", "aria-label") == "en direct"
    tv_shot(tv, "tv-running")
    # a new clue is new again
    assert gm.post("/api/clues", {"puzzle": "repairs", "index": 0})["ok"]
    tv.wait_for_selector("#clues .clue.new")
    assert "fiche « réparations »" in tv.text_content("#clues .clue.new")
    assert px(tv, "#clues .clue.new") >= 48
    tv_shot(tv, "tv-running-new-clue")
    gm.idle()


def test_the_tv_speaks_english_when_its_kiosk_url_says_so(gm: GameMaster, browser: Any, server: Server) -> None:
    gm.start()
    gm.solve("mailbox", "front_door")
    context = browser.new_context(viewport=TV)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/screen/entree?token={server.auth.screen_token('entree')}&lang=en")
        page.wait_for_function("document.getElementById('state-text').textContent === 'Your turn to play!'")
        assert page.text_content("#room-name") == "Entrance"
        assert page.text_content("#apartment") == "The show flat"
        assert "Rent" in page.text_content('#bills li[data-bill="rent"]')
        assert page.text_content("#last-change") == "−620 € Rent paid"
        assert page.locator("button").count() == 0
        tv_shot(page, "tv-running-en")
    finally:
        context.close()
    gm.idle()


def test_a_smaller_screen_shows_it_all_too(gm: GameMaster, browser: Any, server: Server) -> None:
    """A room with a smaller screen (1280×800): the same page, everything in view, nothing
    cut off, with two clues, a message and the three bills."""
    gm.start()
    gm.solve("mailbox", "front_door")
    assert gm.post("/api/clues", {"puzzle": "repairs", "index": 0})["ok"]
    assert gm.post("/api/clues", {"text": "Cherchez la fiche dans l'entrée, près de la porte", "room": "entree"})["ok"]
    context = browser.new_context(viewport=TABLET)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/screen/entree?token={server.auth.screen_token('entree')}")
        page.wait_for_selector("#clues .clue.new")
        page.wait_for_selector("#notes .clue.note")
        assert page.locator("#bills li").count() == 3
        assert page.evaluate("document.documentElement.scrollHeight <= window.innerHeight")
        assert page.evaluate(CLIPPED) == []
        tv_shot(page, "tv-running-1280x800")
    finally:
        context.close()
    gm.idle()
