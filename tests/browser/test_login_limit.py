"""Guessing the game master's password from the login page: after five wrong tries the
page says, in French, how long to wait, and even the right password waits (its own module:
the limit is per client address, and every browser test comes from 127.0.0.1)."""

from __future__ import annotations

import pytest

from controller.api.limiter import MAX_FAILURES
from tests.browser.conftest import GM_PASSWORD, Server, shot

pytestmark = pytest.mark.browser
TIMEOUT_MS = 20_000


def _try(page: object, password: str) -> str:
    page.evaluate("document.getElementById('error').textContent = ''")
    page.fill("#password", password)
    page.click("#submit")
    page.wait_for_selector("#error:not(:empty)")
    return page.text_content("#error")


def test_the_login_page_says_when_too_many_wrong_passwords_were_tried(browser: object, server: Server) -> None:
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{server.url}/login")
    for attempt in range(MAX_FAILURES):
        assert "Trop d'essais" not in _try(page, f"guess-{attempt}")
    message = _try(page, "guess-again")
    assert message.startswith("✖ Trop d'essais incorrects : réessayez dans "), message
    assert int(message.rsplit("dans ", 1)[1].split()[0]) > 0
    # the right password waits too: guessing on would be free otherwise
    assert "Trop d'essais" in _try(page, GM_PASSWORD)
    assert "/login" in page.url
    shot(page, "login-throttled")
    page.close()
