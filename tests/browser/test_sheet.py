"""The take-home sheet in real Chromium: its print media fits on one A4 page, and the
``escape-apartment sheet --pdf`` command (a real process driving Debian's headless
Chromium) writes a one-page PDF with the group's budget and the phone numbers in it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from config.game import Game
from config.loader import load_game
from config.sheet import LABEL_MAX, Contact, SheetLabels, SheetWords, ThemeAdvice, label_max
from config.sheet import load as load_words
from controller.core.config import SHIPPED_GAME
from controller.debrief import debrief
from controller.engine import Engine
from controller.record import history_rows, to_record
from controller.sheet import euros, figures, sheet_html
from controller.store import DB_NAME, Store
from tests.browser.conftest import Server, api, chromium, shot
from tests.browser.test_debrief_history import back_to_idle, login

pytestmark = pytest.mark.browser

#: A4 less the sheet's @page margins (12 mm each side), in CSS pixels (96 per inch)
MM = 96 / 25.4
PRINTABLE_W, PRINTABLE_H = (210 - 24) * MM, (297 - 24) * MM
CLI = Path(sys.executable).with_name("escape-apartment")


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Game]:
    """A store holding one session of the shipped game: the rent paid, then stopped, so the
    other bills are charged late."""
    game = load_game(SHIPPED_GAME)
    data = tmp_path_factory.mktemp("data")
    store = Store(data / DB_NAME)
    engine = Engine(game)
    engine.start(parcours="primo", players=4)
    engine.force_solve("mailbox")
    engine.force_solve("front_door")      # pays the rent
    engine.abort()
    store.save_session(to_record(engine), history_rows(engine), engine.take_journal())
    row = store.session(engine.session_id)
    store.close()
    return data, row, game


def test_the_print_media_fits_on_one_a4_page(played: tuple[Path, dict, Game]) -> None:
    _data, row, game = played
    f = figures(debrief(row, game))
    assert f["paid"] > 0 and f["late"] > 0, f          # every budget line has something to say
    with chromium() as browser:
        page = browser.new_page(viewport={"width": round(PRINTABLE_W), "height": round(PRINTABLE_H)})
        page.set_content(sheet_html(row, game))
        page.emulate_media(media="print")
        assert not page.is_visible("button")                                # the print button is not printed
        # the content's height, not the viewport's (the document is at least the viewport)
        height = page.evaluate("document.body.getBoundingClientRect().bottom")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PRINTABLE_W + 1 and height <= PRINTABLE_H, (width, height, PRINTABLE_H)
        # the same page, printed by Chromium through Playwright: one page
        pdf = page.pdf(format="A4", prefer_css_page_size=True)
        page.close()
    assert len(PdfReader(_bytes_io(pdf)).pages) == 1


def test_the_longest_words_the_schema_allows_still_fit_on_one_page(played: tuple[Path, dict, Game]) -> None:
    _data, row, game = played
    fields = SheetWords.model_fields
    longest = {name: next(m.max_length for m in model.model_fields[name].metadata if hasattr(m, "max_length"))
               for model, name in ((ThemeAdvice, "title"), (ThemeAdvice, "advice"), (Contact, "who"))}
    most = next(m.max_length for m in fields["contacts"].metadata if hasattr(m, "max_length"))
    words = SheetWords(
        themes={t: ThemeAdvice(icon="💶", title="M" * longest["title"], advice="Mot " * (longest["advice"] // 4))
                for t in ("budget", "upkeep", "waste", "rights", "diy")},
        contacts=tuple(Contact(icon="🏠", who="Nom " * (longest["who"] // 4) + "Nm", phone="+33 1 23 45 67 89",
                               example=True) for _ in range(most)),
        labels=longest_labels())
    with chromium() as browser:
        page = browser.new_page(viewport={"width": round(PRINTABLE_W), "height": round(PRINTABLE_H)})
        page.set_content(sheet_html(row, game, words))
        page.emulate_media(media="print")
        height = page.evaluate("document.body.getBoundingClientRect().bottom")
        pdf = page.pdf(format="A4", prefer_css_page_size=True)
        page.close()
    print(f"\nthe longest words allowed: {height:.0f} px high of {PRINTABLE_H:.0f}")
    assert height <= PRINTABLE_H, (height, PRINTABLE_H)
    assert len(PdfReader(_bytes_io(pdf)).pages) == 1


def longest_labels() -> SheetLabels:
    """The sheet's own words, each as long as allowed (words as the advice test writes them)."""
    widest = ("Mots " * (LABEL_MAX // 5)).strip()
    texts = {name: {"fr": widest[:label_max(name)]}
             for name in SheetLabels.model_fields if name != "months"}
    texts["we_were"] = {"fr": widest[:LABEL_MAX - 4] + " {n}"}
    texts["date"] = {"fr": "le {day} {month} {year} " + widest[:LABEL_MAX - 24]}
    return SheetLabels.model_validate({**texts, "months": [{"fr": "septembre"}] * 12})


def test_the_cli_prints_the_sheet_to_a_one_page_pdf(played: tuple[Path, dict, Game], tmp_path: Path) -> None:
    data, row, game = played
    out = tmp_path / "fiche.pdf"
    done = subprocess.run([str(CLI), "sheet", row["id"], "--data-dir", str(data), "--pdf", str(out)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    raw = out.read_bytes()
    assert raw.startswith(b"%PDF")
    pdf = PdfReader(out)
    assert len(pdf.pages) == 1
    box = pdf.pages[0].mediabox                                    # A4 in points: 595 × 842
    assert abs(float(box.width) - 595.3) < 2 and abs(float(box.height) - 841.9) < 2
    text = " ".join(pdf.pages[0].extract_text().split())
    f = figures(debrief(row, game))
    # primo: 1 450 € at the start, the rent (620 €) paid, what was not paid charged late
    assert (f["start"], f["paid"], f["left"]) == (1450, 620, 1450 - 620 - f["late"])
    for amount in (f["start"], f["paid"], f["late"], f["left"]):
        assert euros(amount).replace("\u202f", " ") in text.replace("\u202f", " "), (amount, text)
    for contact in load_words().contacts:
        assert contact.phone in text


def test_the_cli_writes_the_sheet_in_english(played: tuple[Path, dict, Game], tmp_path: Path) -> None:
    data, row, _game = played
    out = tmp_path / "sheet.html"
    done = subprocess.run([str(CLI), "sheet", row["id"], "--data-dir", str(data), "--html", str(out),
                           "--lang", "en"], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    page = out.read_text(encoding="utf-8")
    words = load_words()
    assert '<html lang="en">' in page and words.labels.title.en in page and words.labels.title.fr not in page


def test_the_cli_refuses_an_unknown_session(played: tuple[Path, dict, Game], tmp_path: Path) -> None:
    data, _row, _game = played
    out = tmp_path / "none.pdf"
    done = subprocess.run([str(CLI), "sheet", "nope", "--data-dir", str(data), "--pdf", str(out)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Partie inconnue" in done.stdout and not out.exists()


def test_the_debrief_links_to_the_sheet_of_its_session(browser: object, server: Server) -> None:
    console = login(browser, server, width=1280, height=800)
    back_to_idle(console)
    started = api(console, "POST", "/api/game/start", {"parcours": "locataire", "players": 2})
    assert started["status"] == 200, started
    session = started["data"]["session"]
    assert api(console, "POST", "/api/game/stop", {})["status"] == 200
    console.goto(f"{server.url}/debrief?session={session}")
    console.wait_for_selector(f'body[data-session="{session}"] #content:not(.hidden)')
    link = console.locator("#print-sheet")
    assert link.is_visible() and link.text_content().strip() == "🖨️ Imprimer la fiche"
    assert console.evaluate("document.documentElement.scrollWidth <= innerWidth")
    # the header keeps its one row on the tablet (the link is in the page, not the header)
    assert console.evaluate("document.querySelector('header').offsetHeight") < 100
    shot(console, "debrief-sheet-link")
    with console.context.expect_page() as opened:
        link.click()
    sheet = opened.value
    sheet.wait_for_selector(f'body.sheet[data-session="{session}"]')
    shot(sheet, "sheet")
    # not shown when the debrief is presented to the participants
    console.goto(f"{server.url}/debrief?session={session}&present=1")
    console.wait_for_selector(f'body[data-session="{session}"] #content:not(.hidden)')
    assert not console.is_visible("#print-sheet")
    left = api(console, "GET", f"/api/history/sessions/{session}/debrief")["data"]["budget"]["final"]
    assert sheet.text_content(".budget .left").split(":")[-1].strip() == euros(left)
    assert load_words().contacts[0].phone in sheet.text_content(".contacts")
    back_to_idle(console)
    console.context.close()


def _bytes_io(raw: bytes) -> object:
    import io

    return io.BytesIO(raw)
