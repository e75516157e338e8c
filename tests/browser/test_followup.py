"""The follow-up phone call in headless Chromium at 1280×800 (the tablet), against a real
server, broker and simulated nodes: a household's consent on the debrief of a finished game
(no number sent without the tick box), the clock a month later, the call on « Suivi
téléphonique » filled in from the questionnaire, and the number gone; another household
erased on request, after a confirmation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser.conftest import Server, api, shot
from tests.browser.test_debrief_history import back_to_idle, login

pytestmark = pytest.mark.browser
MONTH_S = 31 * 24 * 3600


def test_consent_on_the_debrief_then_the_call_a_month_later_erases_the_number(browser: object,
                                                                             server: Server) -> None:
    page = login(browser, server, width=1280, height=800)
    back_to_idle(page)
    page.click("#open-start")
    page.select_option("#start-parcours", "primo")
    page.fill("#start-players", "3")
    page.click("#start-confirm")
    page.wait_for_function("document.getElementById('phase').textContent === 'En cours'")
    session = api(page, "GET", "/api/state")["data"]["game"]["session"]
    assert api(page, "POST", "/api/game/stop", {})["status"] == 200

    page.goto(f"{server.url}/debrief?session={session}")
    page.wait_for_selector("#consent:not(.hidden)")
    assert "Être rappelé dans un mois ?" in page.inner_text("#consent h2")
    # the purpose, in the questionnaire file's words
    page.wait_for_function("() => document.getElementById('consent-purpose').textContent.includes('effacé après l')")
    assert "Votre numéro sert seulement à cet appel" in page.inner_text("#consent-purpose")

    # no tick, no number: nothing sent, said in French
    page.fill("#consent-phone", "06 12 34 56 78")
    page.click("#consent-save")
    page.wait_for_function("() => document.getElementById('consent-status').textContent.includes('aucun numéro')")
    assert api(page, "GET", "/api/followup/calls?all=true")["data"]["contacts"] == []
    page.check("#consent-agree")
    page.click("#consent-save")
    page.wait_for_function("() => document.getElementById('consent-status').textContent.startsWith('✔')")
    assert "appel prévu vers le" in page.inner_text("#consent-status")
    assert page.input_value("#consent-phone") == "", "the number does not stay on the screen"
    shot(page, "debrief_consent_1280x800")
    other = api(page, "POST", f"/api/followup/sessions/{session}/contacts",
                {"phone": "07 98 76 54 32", "consent": True})["data"]

    # not due before a month
    page.goto(f"{server.url}/followup")
    page.wait_for_selector("body[data-loaded]")
    assert page.locator("#calls tbody tr").count() == 0
    assert page.is_visible("#no-calls")

    service = server.app.state.service
    real = service.wall
    service.wall = lambda: real() + MONTH_S   # a month later
    try:
        page.goto(f"{server.url}/console")
        page.click("#nav-followup")
        page.wait_for_url("**/followup")
        page.wait_for_selector("body[data-loaded]")
        row = page.locator("#calls tbody tr").filter(has_text="06 12 34 56 78")
        row.wait_for()
        assert page.locator("#calls tbody tr").count() == 2
        # the session's date in words, French
        assert any(m in row.inner_text() for m in ("janvier", "février", "mars", "avril", "mai", "juin", "juillet",
                                                   "août", "septembre", "octobre", "novembre", "décembre"))

        row.locator(".open-call").click()
        page.wait_for_selector("#call:not(.hidden)")
        assert "le numéro est effacé" in page.inner_text("#call")
        assert page.locator("#questions fieldset").count() == 5
        page.check('#questions [data-question="useful"] input[value="4"]')
        page.check('#questions [data-question="changed_at_home"] input[value="true"]')
        page.check('#questions [data-question="theme_used"] input[value="1"]')
        page.check('#questions [data-question="centre_activity"] input[value="false"]')
        page.fill('#questions [data-question="remark"] textarea', "Nous avons baissé le chauffage.")
        assert "l'énergie et l'eau" in page.inner_text('#questions [data-question="theme_used"]')
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        shot(page, "followup_call_1280x800")
        # the same call in English: the questions from the file's English, the answers kept
        page.click("#lang")
        page.wait_for_function("() => document.querySelector('h1').textContent === 'Phone follow-up'")
        theme = page.locator('#questions [data-question="theme_used"]')
        assert "Which advice have you used most?" in theme.inner_text() and "energy and water" in theme.inner_text()
        assert theme.locator('input[value="1"]').is_checked()
        assert "Recording the call erases the number" in page.inner_text("#call")
        page.click("#lang")
        page.wait_for_function("() => document.querySelector('h1').textContent === 'Suivi téléphonique'")
        assert "Quel conseil avez-vous le plus utilisé ?" in theme.inner_text()
        page.click("#call-save")
        page.wait_for_selector("#toast.show")
        assert "le numéro est effacé" in page.inner_text("#toast")
        page.wait_for_function("() => document.querySelectorAll('#calls tbody tr').length === 1")
        assert "06 12 34 56 78" not in page.inner_text("body")

        kept = {c["id"]: c for c in api(page, "GET", "/api/followup/calls?all=true")["data"]["contacts"]}
        called = next(c for c in kept.values() if c["id"] != other["id"])
        assert (called["phone"], called["erased_why"]) == (None, "called")
        assert called["answers"] == {"useful": 4, "changed_at_home": True, "theme_used": 1,
                                     "centre_activity": False, "remark": "Nous avons baissé le chauffage."}

        # the other household asks to be erased: a confirmation first, refused then given
        line = page.locator(f'#calls tbody tr[data-contact="{other["id"]}"]')
        messages: list[str] = []
        page.once("dialog", lambda d: (messages.append(d.message), d.dismiss()))
        line.locator(".erase").click()
        assert api(page, "GET", "/api/followup/calls")["data"]["contacts"][0]["phone"] == "0798765432"
        page.once("dialog", lambda d: (messages.append(d.message), d.accept()))
        line.locator(".erase").click()
        page.wait_for_selector("#no-calls:not(.hidden)")
        assert len(messages) == 2
        assert "07 98 76 54 32" in messages[0] and "ne peut pas être annulé" in messages[0]
        export = api(page, "GET", f"/api/followup/contacts/{other['id']}")["data"]
        assert (export["contact"]["phone"], export["contact"]["erased_why"]) == (None, "request")
        # the dismissed confirmation sent nothing: one erasure only
        assert [a["action"] for a in export["audit"]].count("followup_erase") == 1

        # every household, where it stands; what is kept about one, as a file (right of access)
        page.check("#show-all")
        page.wait_for_function("() => document.querySelectorAll('#calls tbody tr').length === 2")
        done = page.locator(f'#calls tbody tr[data-contact="{called["id"]}"]')
        assert "numéro effacé" in done.locator(".status").inner_text() and done.locator(".open-call").count() == 0
        assert "à la demande du foyer" in line.locator(".status").inner_text()
        with page.expect_download() as download:
            done.locator(".export").click()
        kept_file = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
        assert kept_file["contact"]["phone"] is None and kept_file["contact"]["answers"]["useful"] == 4
        assert "followup_call" in [a["action"] for a in kept_file["audit"]]
    finally:
        service.wall = real
    back_to_idle(page)
