"""Debrief, history and the console's pre-game check in headless Chromium, against a real
server, broker and simulated nodes (fixtures: tests/browser/conftest.py)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.browser.conftest import GM_PASSWORD, Server, api, shot

pytestmark = pytest.mark.browser
TIMEOUT_MS = 20_000  # generous: CI machines have 2 cores and run Chromium beside 7 nodes


def login(browser: object, server: Server, *, width: int = 1280, height: int = 900) -> object:
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{server.url}/console")
    page.wait_for_selector("#password")
    page.fill("#password", GM_PASSWORD)
    page.click("#submit")
    page.wait_for_url("**/console")
    page.wait_for_selector("#link.ok")
    return page


def phase_is(page: object, phase: str) -> None:
    page.wait_for_function("(p) => document.querySelector('#end-panel') && "
                           "fetch('/api/state').then(r => r.json()).then(s => s.game.phase === p)", arg=phase)


def back_to_idle(page: object) -> None:
    phase = api(page, "GET", "/api/state")["data"]["game"]["phase"]
    if phase in ("running", "paused", "check", "briefing"):
        api(page, "POST", "/api/game/stop", {})
    api(page, "POST", "/api/game/reset", {})


def test_checklist_shows_every_prop_and_reset_all_brings_them_back(browser: object, server: Server) -> None:
    console = login(browser, server)
    back_to_idle(console)
    console.wait_for_selector("#check-panel:not(.hidden)")
    console.wait_for_selector('#check-list li[data-prop="hall.mailbox_keypad"]')
    # every prop of the game file is listed, each with its status in words
    props = api(console, "GET", "/api/game/check")["data"]["props"]
    assert console.locator("#check-list li").count() == len(props) > 10
    # a lock left open: off its start state
    assert api(console, "POST", "/api/props/hall/mailbox_lock/unlock", {})["status"] == 200
    row = '#check-list li[data-prop="hall.mailbox_lock"]'
    console.wait_for_selector(f'{row}:not([data-status="ready"])')
    assert console.text_content(f"{row} .st").strip() != "✔ prêt"
    console.wait_for_selector('#check-summary[data-ready="false"]')
    shot(console, "console-check-not-ready")

    console.click("#reset-all")        # idle: opens the check, every prop sent its start state
    console.wait_for_selector('#flow li[data-step="check"][aria-current="step"]')
    console.wait_for_selector(f'{row}[data-status="ready"]')
    console.wait_for_selector('#check-summary[data-ready="true"]')
    assert console.text_content(f"{row} .st").strip() == "✔ prêt"
    shot(console, "console-check-ready")

    console.click("#to-briefing")
    console.wait_for_selector('#flow li[data-step="briefing"][aria-current="step"]')
    console.click("#start-run")
    console.wait_for_function("document.getElementById('phase').textContent === 'En cours'")
    console.wait_for_selector("#check-panel.hidden", state="attached")
    console.wait_for_selector('#flow li[data-step="run"][aria-current="step"]')
    audit = [a["action"] for a in api(console, "GET", "/api/state")["data"]["game"]["audit"]]
    assert audit[-3:] == ["check", "briefing", "start"]      # no override: everything was ready
    console.click("#stop")
    console.click('[data-ask="stop"]')      # a game under way ends only once confirmed
    console.wait_for_selector('#end-panel:not(.hidden)')
    assert "interrompue" in console.text_content("#end-result")
    back_to_idle(console)
    console.context.close()


def test_a_game_ends_in_its_debrief_and_shows_in_the_history(browser: object, server: Server,
                                                            tmp_path: Path) -> None:
    console = login(browser, server)
    back_to_idle(console)
    console.click("#open-start")
    console.select_option("#start-parcours", "primo")
    console.fill("#start-players", "5")
    console.click("#start-confirm")
    console.wait_for_function("document.getElementById('phase').textContent === 'En cours'")
    session = api(console, "GET", "/api/state")["data"]["game"]["session"]
    # the players open the mailbox (simulated keypad); a paid clue; the game master ends it
    assert api(console, "POST", "/api/sim/hall/mailbox_keypad", {"gesture": "type", "value": "0412"})["status"] == 200
    console.wait_for_selector('#puzzles li[data-puzzle="mailbox"][data-status="solved"]')
    console.click("#clue-catalogue details[data-puzzle='household_budget'] summary")
    console.click("[data-clue='household_budget:1']")
    console.wait_for_selector("#clues-sent li")
    assert api(console, "POST", "/api/game/puzzles/waste_sorting/skip", {})["status"] == 200
    assert api(console, "POST", "/api/game/puzzles/waste_sorting/solve", {})["status"] == 200
    console.wait_for_selector("#end-panel:not(.hidden)")
    assert "Gagné" in console.text_content("#end-result")
    shot(console, "console-game-over")
    console.click("#to-debrief")
    console.wait_for_selector('#flow li[data-step="debrief"][aria-current="step"]')
    assert console.get_attribute("#open-debrief", "href") == f"/debrief?session={session}"

    expected = api(console, "GET", "/api/game/debrief")["data"]
    assert expected["session"]["id"] == session
    # the perfect game's 857 €, less the 10 € clue
    assert expected["budget"]["final"] == 857 - 10
    assert expected["clues"] == 1 and expected["solved"] == 1

    # the debrief on a 1080p TV
    tv = console.context.browser.new_context(viewport={"width": 1920, "height": 1080})
    tv.add_cookies(console.context.cookies())
    tv.set_default_timeout(TIMEOUT_MS)
    screen = tv.new_page()
    screen.goto(f"{server.url}/debrief")
    screen.wait_for_selector(f'body[data-session="{session}"] #content:not(.hidden)')
    assert screen.text_content("#final-budget") == "847"
    assert screen.text_content("#clue-count") == "1"
    assert screen.text_content("#found") == f"1 / {expected['puzzles_total']}"
    assert "Gagné" in screen.text_content("#result")
    assert "5 joueurs" in screen.text_content("#group")
    themes = screen.eval_on_selector_all(".theme", "els => els.map(e => e.dataset.theme)")
    assert themes == ["upkeep", "waste", "budget", "rights", "diy"]
    mailbox = screen.locator('.theme tr[data-puzzle="mailbox"]')
    assert mailbox.get_attribute("data-outcome") == "solved"
    assert "trouvée" in mailbox.locator(".outcome").text_content()
    assert screen.locator('.theme tr[data-outcome="skipped"]').count() == expected["skipped"] > 5
    assert screen.text_content("#budget-end") == "847 €"
    lines = screen.locator("#budget-lines tbody tr")
    assert lines.count() == len(expected["budget"]["history"]) + 2     # + month's start and end
    assert "Indice" in screen.text_content("#budget-lines")
    font = screen.evaluate("parseFloat(getComputedStyle(document.querySelector('#final-budget')).fontSize)")
    assert font >= 48, f"the final budget must read from across the room: {font}px"
    shot(screen, "debrief-tv")
    screen.click("#lang")
    screen.wait_for_function("document.querySelector('.figure.budget .k').textContent === 'Final household budget'")
    assert "Won" in screen.text_content("#result")
    assert "The landlord's letter" in screen.text_content('.theme tr[data-puzzle="mailbox"]')
    shot(screen, "debrief-tv-en")
    screen.click("#lang")
    # the same on a 10" tablet, past session by its id
    screen.set_viewport_size({"width": 1280, "height": 800})
    screen.goto(f"{server.url}/debrief?session={session}")
    screen.wait_for_selector(f'body[data-session="{session}"] #content:not(.hidden)')
    assert screen.text_content("#final-budget") == "847"
    assert screen.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # the group's evaluation, noted by the game master at the end of the conversation
    screen.wait_for_selector("#evaluation:not(.hidden)")
    screen.click('input[name="rating"][value="4"]')
    screen.check('input[name="learned"][value="budget"]')
    screen.check('input[name="learned"][value="waste"]')
    screen.fill("#eval-comment", "Ils refont le budget du mois à la maison.")
    assert "non enregistrées" in screen.text_content("#eval-status")
    screen.click("#eval-save")
    screen.wait_for_function("document.getElementById('eval-status').textContent.includes('avis enregistré par maître du jeu')")
    saved = api(screen, "GET", f"/api/history/sessions/{session}")["data"]["evaluation"]
    assert (saved["rating"], saved["learned"], saved["who"]) == (4, ["waste", "budget"], "game master")
    shot(screen, "debrief-tablet")
    tv.close()

    # the history: the session, filters, its debrief link, the CSV files
    back_to_idle(console)
    page = console
    page.goto(f"{server.url}/history")
    row = f'#sessions tr[data-session="{session}"]'
    page.wait_for_selector(row)
    cells = page.locator(f"{row} td").all_text_contents()
    assert "Primo-accédant" in cells and "5" in cells and "847 €" in cells and "4 / 5" in cells
    assert "1 avis, note moyenne 4 / 5" in page.text_content("#summary")
    assert any("Gagné" in c for c in cells)
    assert page.locator('#puzzle-stats tr[data-puzzle="mailbox"]').count() == 1
    assert "%" in page.text_content('#puzzle-stats tr[data-puzzle="mailbox"]')
    shot(page, "history")
    page.select_option("#parcours-filter", "locataire")
    page.click("#apply")
    page.wait_for_selector('body[data-loaded="parcours=locataire"]')
    assert page.locator(row).count() == 0
    page.select_option("#parcours-filter", "primo")
    page.click("#apply")
    page.wait_for_selector(row)
    assert page.get_attribute("#csv-sessions", "href") == "/api/history/sessions.csv?parcours=primo"
    with page.expect_download() as info:
        page.click("#csv-sessions")
    path = tmp_path / "sessions.csv"
    info.value.save_as(path)
    text = path.read_text(encoding="utf-8-sig")
    rows = {r["session"]: r for r in csv.DictReader(io.StringIO(text), delimiter=";")}
    assert rows[session]["budget_final"] == "847" and rows[session]["resultat"] == "gagné"
    assert (rows[session]["note_groupe"], rows[session]["themes_retenus"]) == ("4", "waste,budget")
    page.click(f"{row} a")
    page.wait_for_url(f"**/debrief?session={session}")
    page.wait_for_selector(f'body[data-session="{session}"] #content:not(.hidden)')
    assert page.text_content("#final-budget") == "847"
    page.context.close()
