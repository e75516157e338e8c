"""The media library on the technician page, in headless Chromium: a sound uploaded from
the file picker is listed and plays in the page; a file that is no sound, renamed .mp3,
is refused with the controller's French words and nothing is added."""

from __future__ import annotations

import pytest

from tests.browser.conftest import TECH_PASSWORD, Server, shot
from tests.browser.test_tech import login
from tests.controller.test_media import tone_wav

pytestmark = pytest.mark.browser


def rows(page: object) -> list[str]:
    return page.eval_on_selector_all("#media tr", "(trs) => trs.map((tr) => tr.dataset.name)")


def test_the_technician_uploads_a_sound_and_a_fake_mp3_is_refused_in_french(browser: object,
                                                                               server: Server) -> None:
    page = login(browser, server, TECH_PASSWORD)
    page.wait_for_selector('#media tr[data-name="chime.wav"]')
    before = rows(page)

    page.set_input_files("#media-file", files=[{"name": "Porte Grinçante.wav", "mimeType": "audio/wav",
                                                "buffer": tone_wav(0.8)}])
    assert page.input_value("#media-name") == "porte_grincante.wav"
    page.click("#media-send")
    page.wait_for_selector('#media tr[data-name="porte_grincante.wav"]')
    assert "ajouté" in page.text_content("#media-status")
    # the page's own player loads it from the controller and plays it
    played = page.eval_on_selector('#media tr[data-name="porte_grincante.wav"] audio', """async (a) => {
        a.muted = true; await a.play(); await new Promise((r) => setTimeout(r, 300));
        return {paused: a.paused, t: a.currentTime, d: a.duration}; }""")
    assert not played["paused"] and played["t"] > 0 and played["d"] == pytest.approx(0.8, abs=0.05)

    page.set_input_files("#media-file", files=[{"name": "musique.mp3", "mimeType": "audio/mpeg",
                                                "buffer": b"ceci n'est pas un son\n" * 200}])
    page.click("#media-send")
    page.wait_for_function("document.querySelector('#media-status').textContent.startsWith('⚠')")
    status = page.text_content("#media-status")
    assert "ni un son ni une vidéo" in status, status
    assert sorted(rows(page)) == sorted([*before, "porte_grincante.wav"])
    shot(page, "tech-media")
    page.context.close()
