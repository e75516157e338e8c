"""The console shows an API error in the page's language: the French ``detail`` by
default, the English ``detail_en`` once the game master switched to English (its own
module: a fresh server in idle)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import GM_PASSWORD, Server, shot

pytestmark = pytest.mark.browser
TIMEOUT_MS = 20_000


def _toast_after(page: object, url: str, body: dict[str, object]) -> str:
    """Send what the console's buttons send, through the page's own API helper."""
    page.evaluate("document.getElementById('toast') && (document.getElementById('toast').textContent = '')")
    status = page.evaluate("([url, body]) => App.post(url, body).then(r => r.status)", [url, body])
    assert status >= 400
    page.wait_for_selector("#toast.bad.show")
    return page.text_content("#toast")


def test_the_console_shows_refusals_in_french_then_in_english(browser: object, server: Server) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{server.url}/console")
    page.fill("#password", GM_PASSWORD)
    page.click("#submit")
    page.wait_for_url("**/console")
    page.wait_for_selector("#link.ok")

    # the game's refusal (409) and a wrong field (422), as the buttons would get them
    text = _toast_after(page, "/api/clues", {"text": "trop tôt"})
    # the refusal in words, no HTTP status (jargon for a game master)
    assert text == "⚠ impossible d'envoyer un indice : la partie est « En attente »", text
    text = _toast_after(page, "/api/game/time", {"seconds": 0})
    assert text.endswith("requête invalide : seconds : le nombre de secondes ne peut pas être 0"), text
    shot(page, "console-error-french")

    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    text = _toast_after(page, "/api/clues", {"text": "too early"})
    assert text == "⚠ cannot send a clue: the game is 'Waiting'", text
    page.evaluate("localStorage.removeItem('lang')")
    context.close()
