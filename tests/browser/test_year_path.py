"""A workshop's whole path through the year, in headless Chromium at 1280×800 (the tablet)
against a real server, broker and simulated nodes: a session planned for today and two
groups registered (the API, as the planning page does), the console's home listing the
day's session, « Préparer la partie » opening the start dialog filled in from the plan, the
game played and ended, the group's evaluation on the debrief, the take-home sheet
downloaded as the controller's PDF (read back with pypdf: the budget and the phone numbers
in it, French and English), two households' consent, the call a month later that erases
one number, and the other erased by the controller 3 months after (its clock moved)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from pypdf import PdfReader

from config.sheet import load as load_words
from controller.sheet import euros
from tests.browser.conftest import TECH_PASSWORD, Server, api, shot
from tests.browser.test_debrief_history import back_to_idle, login

pytestmark = pytest.mark.browser
DAY_S = 24 * 3600
PHONES = ("06 12 34 56 78", "07 98 76 54 32")


def pdf_text(path: Path) -> tuple[int, str]:
    """The page count and the text of a PDF, its spaces made plain."""
    pdf = PdfReader(path)
    text = " ".join(" ".join(p.extract_text() for p in pdf.pages).split())
    return len(pdf.pages), text.replace("\u202f", " ").replace("\xa0", " ")


def test_a_workshop_from_the_plan_to_the_follow_up_call(browser: object, server: Server) -> None:
    page = login(browser, server, width=1280, height=800)
    back_to_idle(page)
    service = server.app.state.service

    # -- planned for today, two groups registered ahead -------------------------------------
    today = api(page, "GET", "/api/planning?today=true")["data"]["today"]
    planned = api(page, "POST", "/api/planning", {"date": today, "time": "14:30", "game_master": "Awa",
                                                  "parcours": "primo"})["data"]
    first = {"adults": 2, "children": 1, "households": 1, "tenancy": "primo", "referral": "ccas",
             "first_visit": True}
    second = {**first, "adults": 1, "children": 0, "referral": "osica_cal", "first_visit": False}
    for group in (first, second):
        assert api(page, "POST", f"/api/planning/{planned['id']}/groups", group)["status"] == 201

    # -- the console's home: the day's session, « Préparer la partie » fills the dialog ------
    page.goto(f"{server.url}/console")
    row = page.locator(f'#today-list tr[data-planned="{planned["id"]}"]')
    row.wait_for()
    assert page.is_visible("#today-panel")
    text = row.inner_text()
    assert "14 h 30" in text and "Awa" in text and "Primo-accédant" in text
    assert "4 joueurs (3 adultes, 1 enfant)" in text
    assert "2 adultes, 1 enfant · Primo-accédant (nouveau locataire) · CCAS" in text
    assert "1 adulte · Primo-accédant (nouveau locataire) · OSICA (commission d'attribution)" in text
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    shot(page, "console_today_1280x800")
    row.locator(".prepare").click()
    page.wait_for_selector("#start-dialog[open]")
    assert page.input_value("#start-parcours") == "primo"
    assert page.input_value("#start-players") == "4"
    assert page.is_checked("#start-children")
    assert page.inner_text("#start-limit") == "6 joueurs au plus, enfants compris"
    assert page.get_attribute("#start-players", "max") == "6"
    assert page.inner_text("#start-plan-title") == "Séance de 14 h 30 — Awa"
    assert page.locator("#start-groups li").count() == 2
    shot(page, "console_start_from_plan_1280x800")
    # a seventh player is not sent: the form holds it (the API refuses it too: test_planning)
    page.fill("#start-players", "7")
    page.click("#start-check")
    assert page.is_visible("#start-dialog") and not page.evaluate("document.getElementById('start-players').checkValidity()")
    assert api(page, "GET", "/api/state")["data"]["game"]["phase"] == "idle"
    page.fill("#start-players", "4")
    page.click("#start-check")
    page.wait_for_selector('#flow li[data-step="check"][aria-current="step"]')
    game = api(page, "GET", "/api/state")["data"]["game"]
    assert (game["phase"], game["parcours"], game["players"], game["children"]) == ("check", "primo", 4, True)
    session = game["session"]
    assert api(page, "GET", f"/api/planning/{planned['id']}")["data"]["session_id"] == session
    assert not page.is_visible("#today-panel"), "a game is being prepared: the home list steps aside"

    # -- the game: briefing, run, the rent paid, then ended ---------------------------------
    page.wait_for_selector('#check-summary[data-ready="true"]')
    page.click("#to-briefing")
    page.wait_for_selector('#flow li[data-step="briefing"][aria-current="step"]')
    page.click("#start-run")
    page.wait_for_function("document.getElementById('phase').textContent === 'En cours'")
    for puzzle in ("mailbox", "front_door"):      # the front door pays the rent
        assert api(page, "POST", f"/api/game/puzzles/{puzzle}/solve", {})["status"] == 200
    assert api(page, "POST", "/api/game/stop", {})["status"] == 200
    page.wait_for_selector("#end-panel:not(.hidden)")
    played = page.locator(f'#today-list tr[data-planned="{planned["id"]}"][data-played="yes"]')
    played.wait_for()
    assert played.locator("a").get_attribute("href") == f"/debrief?session={session}"

    # -- the debrief: the group's evaluation, the take-home sheet as a PDF -------------------
    page.goto(f"{server.url}/debrief?session={session}")
    page.wait_for_selector(f'body[data-session="{session}"] #content:not(.hidden)')
    page.wait_for_selector("#evaluation:not(.hidden)")
    page.click('input[name="rating"][value="5"]')
    page.check('input[name="learned"][value="budget"]')
    page.fill("#eval-comment", "Ils paieront le loyer en premier.")
    page.click("#eval-save")
    page.wait_for_function("document.getElementById('eval-status').textContent.includes('avis enregistré')")
    evaluation = api(page, "GET", f"/api/history/sessions/{session}")["data"]["evaluation"]
    assert (evaluation["rating"], evaluation["learned"]) == (5, ["budget"])

    link = page.locator("#pdf-sheet")
    assert link.is_visible() and link.inner_text().strip() == "📄 Télécharger en PDF"
    assert page.evaluate("document.getElementById('pdf-sheet').parentElement === "
                         "document.getElementById('print-sheet').parentElement"), "beside « Imprimer la fiche »"
    began = time.monotonic()
    with page.expect_download() as download:
        link.click()
    pdf = Path(download.value.path())
    took = time.monotonic() - began
    assert download.value.suggested_filename == f"fiche-{session}.pdf"
    raw = pdf.read_bytes()
    assert raw.startswith(b"%PDF") and len(raw) > 10_000, len(raw)
    pages, text = pdf_text(pdf)
    budget = api(page, "GET", f"/api/history/sessions/{session}/debrief")["data"]["budget"]
    paid = sum(b["paid"] for b in budget["bills"])
    assert pages == 1 and (budget["start"], paid) == (1450, 620) and budget["late"] > 0
    for amount in (budget["start"], paid, budget["late"], budget["final"]):
        assert euros(amount).replace("\u202f", " ") in text, (amount, text)
    words = load_words()
    assert "Ce que nous avons appris" in text
    for contact in words.contacts:
        assert contact.phone in text, contact
    print(f"\nthe sheet's PDF from the controller: {len(raw)} bytes in {took:.1f} s")
    # the same sheet in English: the page's language chooses it
    page.click("#lang")
    page.wait_for_function("document.getElementById('pdf-sheet').href.endsWith('.pdf?lang=en')")
    with page.expect_download() as download:
        link.click()
    _pages, english = pdf_text(Path(download.value.path()))
    assert "What we learned" in english and "Ce que nous avons appris" not in english
    assert all(c.phone in english for c in words.contacts)
    page.click("#lang")
    page.wait_for_function("document.getElementById('pdf-sheet').href.endsWith('.pdf')")

    # -- two households agree to be called --------------------------------------------------
    page.wait_for_selector("#consent:not(.hidden)")
    for phone in PHONES:
        page.fill("#consent-phone", phone)
        page.check("#consent-agree")
        page.click("#consent-save")
        page.wait_for_function("(p) => document.getElementById('consent-phone').value === '' && "
                               "document.getElementById('consent-status').textContent.startsWith('✔')", arg=phone)
        page.evaluate("document.getElementById('consent-status').textContent = ''")
    contacts = api(page, "GET", "/api/followup/calls?all=true")["data"]["contacts"]
    assert sorted(c["phone"] for c in contacts) == sorted(re.sub(r"\D", "", p) for p in PHONES)
    assert {c["session_id"] for c in contacts} == {session}

    real = service.wall
    try:
        # -- a month later: the call, and its number erased -------------------------------------
        service.wall = lambda: real() + 31 * DAY_S
        page.goto(f"{server.url}/followup")
        page.wait_for_selector("body[data-loaded]")
        page.wait_for_function("() => document.querySelectorAll('#calls tbody tr').length === 2")
        call = page.locator("#calls tbody tr").filter(has_text=PHONES[0])
        call.locator(".open-call").click()
        page.wait_for_selector("#call:not(.hidden)")
        page.check('#questions [data-question="useful"] input[value="5"]')
        page.check('#questions [data-question="changed_at_home"] input[value="true"]')
        page.click("#call-save")
        page.wait_for_function("() => document.querySelectorAll('#calls tbody tr').length === 1")
        assert PHONES[0] not in page.inner_text("body") and PHONES[1] in page.inner_text("body")
        kept = {c["id"]: c for c in api(page, "GET", "/api/followup/calls?all=true")["data"]["contacts"]}
        called = next(c for c in kept.values() if c["called_at"] is not None)
        assert (called["phone"], called["erased_why"]) == (None, "called")
        assert called["answers"] == {"useful": 5, "changed_at_home": True}

        # -- 3 months after the consent: the other number is gone, uncalled -----------------
        service.wall = lambda: real() + 91 * DAY_S
        page.goto(f"{server.url}/followup")
        page.wait_for_selector("body[data-loaded]")
        page.wait_for_selector("#no-calls:not(.hidden)")
        page.check("#show-all")
        page.wait_for_function("() => document.querySelectorAll('#calls tbody tr').length === 2")
        body = page.inner_text("#calls")
        assert PHONES[1] not in body and "3 mois passés" in body
        shot(page, "followup_after_3_months_1280x800")
        left = api(page, "GET", "/api/followup/calls?all=true")["data"]["contacts"]
        assert [c["phone"] for c in left] == [None, None]
        assert sorted(c["erased_why"] for c in left) == ["called", "retention"]
        # the answers stay with the session, without a number
        assert next(c for c in left if c["erased_why"] == "called")["answers"]["useful"] == 5
    finally:
        service.wall = real

    # -- the technician: no follow-up link, no consent box (the game master's role only) -----
    tech = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        other = tech.new_page()
        other.goto(f"{server.url}/login?next=/console")
        other.fill("#password", TECH_PASSWORD)
        other.click("#submit")
        other.wait_for_url("**/console")
        other.wait_for_selector("#nav-tech:not(.hidden)")
        assert not other.is_visible("#nav-followup")
        other.goto(f"{server.url}/debrief?session={session}")
        other.wait_for_selector(f'body[data-session="{session}"] #content:not(.hidden)')
        other.wait_for_selector("#pdf-sheet:not(.hidden)")
        assert not other.is_visible("#consent") and not other.is_visible("#toast.bad.show")
        reply = api(other, "GET", "/api/followup/calls")
        assert reply["status"] == 403 and reply["data"]["detail"].startswith("réservé au maître du jeu")
    finally:
        tech.close()
    back_to_idle(page)
    page.context.close()
