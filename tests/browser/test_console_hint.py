"""The console suggests a clue (and sends none) when the group makes no progress on an open
puzzle for ``apartment.hint_after_min``: the shipped game with that set to 6 s, in
Chromium at 1280×800 and 1920×1080."""

from __future__ import annotations

import pytest

from config.game import Game
from tests.browser.conftest import Server, api, shot
from tests.browser.test_console import SIZES, back_to_idle, login, start

pytestmark = pytest.mark.browser


def tweak_game(game: Game) -> Game:
    return game.model_copy(update={"apartment": game.apartment.model_copy(update={"hint_after_min": 0.1})})


@pytest.mark.parametrize("size", list(SIZES))
def test_a_clue_is_suggested_after_a_while_without_progress_and_none_is_sent(browser: object, server: Server,
                                                                           size: str) -> None:
    page = login(browser, server, size)
    start(page)
    mailbox = '#puzzles li[data-puzzle="mailbox"]'
    assert page.locator(f"{mailbox} .suggest").count() == 0, "not at once"
    page.wait_for_selector(f'{mailbox} .suggest[data-suggest="mailbox"]', timeout=15_000)
    assert "envoyez un indice" in page.text_content(f"{mailbox} .suggest")
    assert "hint-due" in page.get_attribute(mailbox, "class")
    shot(page, f"console-hint-suggested-{size}")
    assert api(page, "GET", "/api/state")["data"]["game"]["clues"] == [], "a suggestion, nothing sent"
    back_to_idle(page)
    page.context.close()
