"""The « Planning » page in headless Chromium at 1280×800 (the tablet), against a real
server, broker and simulated nodes: plan a session, register groups ahead (a seventh
player refused in French, children included), and prepare the game from the plan — the
console opens on the check with the planned parcours and people."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Server, api, shot
from tests.browser.test_debrief_history import back_to_idle, login

pytestmark = pytest.mark.browser


def register(page: object, *, adults: int, children: int, referral: str) -> None:
    page.fill("#group-adults", str(adults))
    page.fill("#group-children", str(children))
    page.select_option("#group-referral", referral)
    page.click("#group-save")


def test_plan_register_and_prepare_a_session_from_the_planning_page(browser: object, server: Server) -> None:
    page = login(browser, server, width=1280, height=800)
    back_to_idle(page)
    page.click("#nav-planning")
    page.wait_for_url("**/planning")
    page.wait_for_selector("body[data-loaded]")
    today = page.evaluate("(() => { const d = new Date(); return [d.getFullYear(), d.getMonth() + 1, d.getDate()]"
                          ".map((x) => String(x).padStart(2, '0')).join('-'); })()")

    page.fill("#plan-date", today)
    page.fill("#plan-time", "14:30")
    page.fill("#plan-gm", "Awa")
    page.select_option("#plan-parcours", "locataire")
    page.click("#plan-add")
    row = page.locator("#planned tbody tr").filter(has_text="Awa")
    row.wait_for()
    assert "14 h 30" in row.inner_text() and "Locataire en place" in row.inner_text()
    assert row.locator("td.num").inner_text() == "6"
    assert page.locator("#planned tbody tr .prepare").first.is_disabled(), "nobody registered yet"

    row.locator(".register").click()
    page.wait_for_selector("#group-dialog[open]")
    assert "6 joueurs au plus, enfants compris" in page.inner_text("#group-dialog")
    register(page, adults=2, children=1, referral="ccas")
    page.wait_for_function("() => document.querySelector('#planned tbody tr td.num')?.textContent === '3'")
    assert "2 adultes, 1 enfant, 1 foyer" in row.inner_text() and "CCAS" in row.inner_text()

    # four more would make seven: refused, said in French, nothing registered
    row.locator(".register").click()
    register(page, adults=2, children=2, referral="mds")
    page.wait_for_selector("#toast.bad.show")
    assert "6 joueurs au plus, enfants compris : ce groupe ferait 7 personnes" in page.inner_text("#toast")
    page.click("#group-dialog button[value=cancel]")
    assert row.locator("td.num").inner_text() == "3"

    # the tablet's width holds the whole table: nothing to scroll sideways
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    shot(page, "planning_1280x800")
    page.click("#lang")   # the same page in English, names and numbers in words
    page.wait_for_function("() => document.querySelector('h1').textContent === 'Workshop planning'")
    assert "2 adults, 1 child, 1 household" in row.inner_text() and "CCAS (social services)" in row.inner_text()
    page.click("#lang")
    page.wait_for_function("() => document.querySelector('h1').textContent === 'Planning des ateliers'")

    row.locator(".prepare").click()
    page.wait_for_url("**/console")
    game = api(page, "GET", "/api/state")["data"]["game"]
    assert (game["phase"], game["parcours"], game["players"], game["children"]) == ("check", "locataire", 3, True)
    planned = api(page, "GET", "/api/planning?today=true")["data"]["sessions"]
    assert [p["session_id"] for p in planned if p["game_master"] == "Awa"] == [game["session"]]
    back_to_idle(page)
