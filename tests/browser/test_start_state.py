"""Rehearsal gestures and the pre-game check on a tablet (1280×800), in headless Chromium
against a real server, broker and the shipped game's simulated nodes."""

from __future__ import annotations

import pytest

from tests.browser.conftest import GM_PASSWORD, Server, api, shot

pytestmark = pytest.mark.browser
TIMEOUT_MS = 20_000  # generous: CI machines have 2 cores and run Chromium beside 7 nodes
TABLET = {"width": 1280, "height": 800}
MUSIC, WINDOW = "chambre.music_button", "sdb.window"


def login(browser: object, server: Server) -> object:
    context = browser.new_context(viewport=TABLET)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{server.url}/console")
    page.wait_for_selector("#password")
    page.fill("#password", GM_PASSWORD)
    page.click("#submit")
    page.wait_for_url("**/console")
    page.wait_for_selector("#link.ok")
    return page


def prop(page: object, key: str) -> dict:
    node, prop_id = key.split(".")
    props = api(page, "GET", "/api/state")["data"]["props"]
    return next(p for p in props if (p["node"], p["id"]) == (node, prop_id))


def back_to_idle(page: object) -> None:
    if api(page, "GET", "/api/state")["data"]["game"]["phase"] in ("running", "paused", "check", "briefing"):
        api(page, "POST", "/api/game/stop", {})
    api(page, "POST", "/api/game/reset", {})


def rehearsal_page(console: object, server: Server) -> object:
    page = console.context.new_page()
    page.goto(f"{server.url}/rehearsal")
    page.wait_for_selector("#link.ok")
    page.wait_for_selector(f'[data-prop="{MUSIC}"] button[data-gesture="press"]')
    return page


def gesture(page: object, key: str, name: str) -> None:
    page.click(f'[data-prop="{key}"] button[data-gesture="{name}"]')


def state_text(page: object, key: str) -> str:
    return page.text_content(f'[id="state-{key}"]').strip()


def test_rehearsal_press_is_pressed_then_released(browser: object, server: Server) -> None:
    console = login(browser, server)
    back_to_idle(console)
    assert api(console, "POST", "/api/game/start", {"players": 3})["status"] == 200
    # the noise puzzle (solved by a press of the hi-fi button) made available
    assert api(console, "POST", "/api/game/puzzles/noise/skip", {})["status"] == 200
    console.wait_for_selector('#puzzles li[data-puzzle="noise"][data-status="available"]')
    rehearsal = rehearsal_page(console, server)
    rehearsal.wait_for_function(f"document.getElementById('state-{MUSIC}').textContent === 'relâché'")

    gesture(rehearsal, MUSIC, "press")          # « 👆 Appuyer »

    console.wait_for_selector('#puzzles li[data-puzzle="noise"][data-status="solved"]')  # a press…
    rehearsal.wait_for_function(f"document.getElementById('state-{MUSIC}').textContent === 'relâché'")
    music = prop(console, MUSIC)                                                     # …then a release
    assert music["reported"]["pressed"] is False
    assert music["last_event"]["type"] == "release"
    shot(rehearsal, "rehearsal-press-released")

    # « Enfoncer » keeps it down until « Relâcher »
    gesture(rehearsal, MUSIC, "down")
    rehearsal.wait_for_function(f"document.getElementById('state-{MUSIC}').textContent === 'appuyé'")
    gesture(rehearsal, MUSIC, "release")
    rehearsal.wait_for_function(f"document.getElementById('state-{MUSIC}').textContent === 'relâché'")
    back_to_idle(console)
    console.context.close()


def test_console_check_list_says_what_to_put_back_in_french(browser: object, server: Server) -> None:
    console = login(browser, server)
    back_to_idle(console)
    rehearsal = rehearsal_page(console, server)
    # the last group left the bathroom window open and something on the hi-fi button
    gesture(rehearsal, WINDOW, "open")
    gesture(rehearsal, MUSIC, "down")
    rehearsal.wait_for_function(f"document.getElementById('state-{MUSIC}').textContent === 'appuyé'")

    console.click("#reset-all")        # idle: opens the check, every prop sent its start state
    console.wait_for_selector('#flow li[data-step="check"][aria-current="step"]')
    window = f'#check-list li[data-prop="{WINDOW}"][data-status="manual_reset"]'
    music = f'#check-list li[data-prop="{MUSIC}"][data-status="manual_reset"]'
    console.wait_for_selector(window)
    console.wait_for_selector(music)
    assert console.text_content(f"{window} .detail").strip() == "Fermez : Fenêtre de la salle de bain"
    assert console.text_content(f"{music} .detail").strip() == "Relâchez : Bouton de la chaîne hi-fi"
    # what needs a hand comes first, and the check is not ready
    first = console.eval_on_selector_all("#check-list li", "lis => lis.slice(0, 2).map(li => li.dataset.prop)")
    assert sorted(first) == sorted([WINDOW, MUSIC])
    console.wait_for_selector('#check-summary[data-ready="false"]')
    shot(console, "console-check-manual")
    console.click("#to-briefing")
    console.wait_for_selector("#toast.bad.show")
    assert "Fermez : Fenêtre de la salle de bain" in console.text_content("#toast")

    console.click("#lang")             # the English console words it in English
    console.wait_for_function(f"document.querySelector('{window} .detail').textContent === "
                              "'Close: Fenêtre de la salle de bain'")
    assert console.text_content(f"{music} .detail").strip() == "Release: Bouton de la chaîne hi-fi"
    console.click("#lang")

    gesture(rehearsal, WINDOW, "close")
    gesture(rehearsal, MUSIC, "release")
    console.wait_for_selector(f'#check-list li[data-prop="{WINDOW}"][data-status="ready"]')
    console.wait_for_selector(f'#check-list li[data-prop="{MUSIC}"][data-status="ready"]')
    console.wait_for_selector('#check-summary[data-ready="true"]')
    back_to_idle(console)
    console.context.close()
