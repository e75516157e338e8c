"""The take-home sheet (controller/sheet.py): its figures from the session's budget lines,
its words from config/sheet.yaml, served at /sheet/<session> to the game master."""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import get_args

import pytest
import yaml
from fastapi.testclient import TestClient

from config import sheet as config_sheet
from config.game import Theme
from config.sheet import SheetWordsError
from config.sheet import load as load_words
from controller import sheet as controller_sheet
from controller.sheet import euros
from tests.controller.conftest import FakeClocks


def test_euros_the_french_way():
    assert euros(1250) == "1\u202f250 €" and euros(-20) == "−20 €" and euros(0) == "0 €"


def test_the_sheet_shows_the_groups_budget_every_advice_and_the_phone_numbers(
        client: TestClient, clocks: FakeClocks):
    session = client.post("/api/game/start", json={"parcours": "primo", "players": 3}).json()["session"]
    clocks.advance(90)
    assert client.post("/api/clues", json={"puzzle": "mailbox", "index": 1}).status_code == 200  # −20 €
    assert client.post("/api/game/puzzles/final/skip", json={}).status_code == 200                # −100, +30
    assert client.post("/api/game/puzzles/final/solve", json={}).status_code == 200

    reply = client.get(f"/sheet/{session}")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    page = reply.text
    assert f'data-session="{session}"' in page and "@page { size: A4" in page
    # the budget as the debrief counts it: start, what is left
    debrief = client.get(f"/api/history/sessions/{session}/debrief").json()["budget"]
    assert debrief["start"] == 1000 and debrief["final"] == 910
    assert f"<span>{euros(1000)}</span>" in page and f"<span>{euros(910)}</span>" in page
    # every theme's one-line advice and every phone number of the game data, examples marked
    words = load_words()
    for advice in words.themes.values():
        assert advice.title.replace("'", "&#x27;") in page
    for contact in words.contacts:
        assert contact.phone in page
    assert page.count('class="example"') == sum(c.example for c in words.contacts)


def test_an_unknown_session_has_no_sheet(client: TestClient):
    reply = client.get("/sheet/nope")
    assert reply.status_code == 404 and "partie inconnue" in reply.text


def test_the_shipped_words_give_advice_for_every_theme_and_mark_their_example_numbers():
    words = load_words()
    assert set(words.themes) == set(get_args(Theme)) - {"story"}     # the story is the framing
    assert all(c.example for c in words.contacts)                      # placeholders until the town's


@pytest.mark.parametrize("bad", [
    {"themes": {"budget": {"icon": "💶", "title": "x", "advice": "x"}}, "contacts": []},      # no number
    {"themes": {}, "contacts": [{"icon": "🏠", "who": "x", "phone": "appelez-nous"}]},        # not a number
    {"themes": {"moon": {"icon": "🌙", "title": "x", "advice": "x"}},                          # not a theme
     "contacts": [{"icon": "🏠", "who": "x", "phone": "01 02 03 04 05"}]},
    {"themes": {"budget": {"icon": "💶", "title": "x", "advice": "x" * 61}},                 # too long a line
     "contacts": [{"icon": "🏠", "who": "x", "phone": "01 02 03 04 05"}]},
    {"themes": {}, "contacts": [{"icon": "🏠", "who": "x", "phone": "01 02 03 04 05"}] * 7},  # over a page
])
def test_bad_sheet_words_are_refused(bad: dict[str, object], tmp_path: Path):
    path = tmp_path / "sheet.yaml"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    with pytest.raises(SheetWordsError, match=r"mal rempli — (contacts|themes)"):
        load_words(path)


def test_a_badly_filled_words_file_gives_no_sheet_but_says_what_to_correct(
        client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    session = client.post("/api/game/start", json={"parcours": "primo", "players": 2}).json()["session"]
    broken = tmp_path / "sheet.yaml"
    broken.write_text(config_sheet.PATH.read_text(encoding="utf-8").replace(
        '"01 23 45 67 80"', '"le bailleur"'), encoding="utf-8")
    monkeypatch.setattr(config_sheet, "PATH", broken)
    load_words.cache_clear()
    try:
        reply = client.get(f"/sheet/{session}")
    finally:
        load_words.cache_clear()
    assert reply.status_code == 500
    assert "fiche impossible" in reply.text and "contacts.1.phone" in reply.text


# -- the sheet in English, and its PDF from the controller ----------------------------------------
def test_the_sheet_in_english_takes_its_words_from_the_file(client: TestClient):
    session = client.post("/api/game/start", json={"parcours": "locataire", "players": 2}).json()["session"]
    words = load_words()
    english = client.get(f"/sheet/{session}?lang=en").text
    french = client.get(f"/sheet/{session}").text
    assert '<html lang="en">' in english and '<html lang="fr">' in french
    assert words.labels.title.en in english and words.labels.title.fr not in english
    assert words.labels.title.fr in french and words.labels.title.en not in french
    for advice in words.themes.values():
        assert advice.advice_en.replace("'", "&#x27;") in english
    assert all(c.who_en.replace("'", "&#x27;") in english and c.phone in english for c in words.contacts)
    reply = client.get(f"/sheet/{session}?lang=de")
    assert reply.status_code == 422, reply.text


def fake_chromium(tmp_path: Path, body: str) -> str:
    """A stand-in for Chromium: a script that finds --print-to-pdf=PATH, then runs *body*."""
    script = tmp_path / "chromium"
    script.write_text("#!/bin/sh\n"
                      'for a in "$@"; do case "$a" in --print-to-pdf=*) out="${a#--print-to-pdf=}";; esac; done\n'
                      f"echo $$ > {tmp_path}/pid\n{body}\n", encoding="utf-8")
    script.chmod(0o755)
    return str(script)


def test_without_chromium_the_pdf_is_a_french_503(client: TestClient, monkeypatch: pytest.MonkeyPatch):
    session = client.post("/api/game/start", json={"parcours": "primo", "players": 2}).json()["session"]
    monkeypatch.setattr(controller_sheet, "CHROMIUM", "no-such-chromium-here")
    reply = client.get(f"/sheet/{session}.pdf")
    assert reply.status_code == 503, reply.text
    assert reply.json()["detail"].startswith("Chromium n'est pas installé sur le contrôleur")
    assert "paquet Debian « chromium »" in reply.json()["detail"] and reply.json()["detail_en"]
    assert client.get("/sheet/nope.pdf").status_code == 404


def test_the_pdf_is_made_off_the_event_loop(client: TestClient, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch):
    """Chromium takes 2 s: meanwhile the controller answers at once (a blocking call on the
    event loop would hold every order and the timer for those 2 s)."""
    session = client.post("/api/game/start", json={"parcours": "primo", "players": 2}).json()["session"]
    monkeypatch.setattr(controller_sheet, "CHROMIUM",
                        fake_chromium(tmp_path, "sleep 2\nprintf '%%PDF-1.4 fake' > \"$out\""))
    with ThreadPoolExecutor(1) as pool:
        began = time.monotonic()
        pdf = pool.submit(client.get, f"/sheet/{session}.pdf")
        while not (tmp_path / "pid").exists():   # Chromium is running
            assert time.monotonic() - began < 10 and not pdf.done()
            time.sleep(0.02)
        asked = time.monotonic()
        assert client.get("/api/state").status_code == 200
        answered = time.monotonic() - asked
        reply = pdf.result(timeout=30)
    took = time.monotonic() - began
    assert reply.status_code == 200 and reply.content == b"%PDF-1.4 fake"
    assert reply.headers["content-type"] == "application/pdf"
    assert f'filename="fiche-{session}.pdf"' in reply.headers["content-disposition"]
    assert took >= 2 and answered < 1.0, (took, answered)


def test_a_chromium_that_hangs_is_killed_with_its_children_and_said_in_french(
        client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    session = client.post("/api/game/start", json={"parcours": "primo", "players": 2}).json()["session"]
    monkeypatch.setattr(controller_sheet, "PDF_TIMEOUT_S", 1)
    monkeypatch.setattr(controller_sheet, "CHROMIUM", fake_chromium(
        tmp_path, f"sleep 60 &\necho $! > {tmp_path}/child\nwait"))
    began = time.monotonic()
    reply = client.get(f"/sheet/{session}.pdf")
    assert time.monotonic() - began < 10
    assert reply.status_code == 503, reply.text
    assert reply.json()["detail"] == "Chromium n'a pas fini la fiche en 1 s : réessayez"
    for name in ("pid", "child"):
        pid = int((tmp_path / name).read_text())
        deadline = time.monotonic() + 5
        while _alive(pid):
            assert time.monotonic() < deadline, f"{name} {pid} still runs"
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to read it is gone for our purpose)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def counting_chromium(tmp_path: Path, seconds: float) -> str:
    """A fake Chromium that takes *seconds* and notes how many of it ran at its start."""
    running = tmp_path / "running"
    running.mkdir()
    return fake_chromium(tmp_path, f"touch {running}/$$\nls {running} | wc -l >> {tmp_path}/counts\n"
                                   f"sleep {seconds}\nrm {running}/$$\nprintf '%%PDF-1.4 fake' > \"$out\"")


def _started(tmp_path: Path) -> list[int]:
    counts = tmp_path / "counts"
    return [int(n) for n in counts.read_text().split()] if counts.exists() else []


def test_two_pdfs_asked_at_once_print_one_after_the_other(client: TestClient, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    """Two staff print at once (or a double click): never two Chromiums at the same time,
    both PDFs made, the second once the first is done; the controller answers meanwhile."""
    session = client.post("/api/game/start", json={"parcours": "primo", "players": 2}).json()["session"]
    monkeypatch.setattr(controller_sheet, "CHROMIUM", counting_chromium(tmp_path, 1.5))
    with ThreadPoolExecutor(2) as pool:
        began = time.monotonic()
        pdfs = [pool.submit(client.get, f"/sheet/{session}.pdf"),
                pool.submit(client.get, f"/sheet/{session}.pdf?lang=en")]
        answered = []
        while not all(p.done() for p in pdfs):
            assert time.monotonic() - began < 30
            asked = time.monotonic()
            assert client.get("/api/state").status_code == 200
            answered.append(time.monotonic() - asked)
            time.sleep(0.1)
        replies = [p.result() for p in pdfs]
    took = time.monotonic() - began
    assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]
    assert all(r.content == b"%PDF-1.4 fake" for r in replies)
    assert _started(tmp_path) == [1, 1], "two Chromiums ran at the same time"
    assert took >= 3, took   # one after the other
    assert max(answered) < 1.0, answered


def test_a_pdf_that_waits_too_long_for_another_gets_a_french_503(client: TestClient, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    """The sheet's PDF prints; the year report's PDF asked meanwhile waits PDF_WAIT_S, then
    is refused in French, without starting a second Chromium; the next one prints."""
    session = client.post("/api/game/start", json={"parcours": "primo", "players": 2}).json()["session"]
    year = dt.date.today().year
    monkeypatch.setattr(controller_sheet, "PDF_WAIT_S", 0.5)
    monkeypatch.setattr(controller_sheet, "CHROMIUM", counting_chromium(tmp_path, 2))
    with ThreadPoolExecutor(1) as pool:
        began = time.monotonic()
        first = pool.submit(client.get, f"/sheet/{session}.pdf")
        while not _started(tmp_path):   # the first Chromium runs
            assert time.monotonic() - began < 10 and not first.done()
            time.sleep(0.02)
        asked = time.monotonic()
        second = client.get(f"/report/{year}.pdf")
        waited = time.monotonic() - asked
        assert client.get("/api/state").status_code == 200
        assert first.result(timeout=30).status_code == 200
    assert second.status_code == 503, second.text
    assert second.json()["detail"] == "Une autre impression est en cours, réessayez dans un instant"
    assert second.json()["detail_en"]
    assert 0.4 < waited < 1.5, waited
    assert _started(tmp_path) == [1]
    assert client.get(f"/report/{year}.pdf").status_code == 200   # its turn now
    assert _started(tmp_path) == [1, 1]
