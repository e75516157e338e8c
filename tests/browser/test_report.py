"""The « Bilan de l'année » in real Chromium: a year of 24 sessions played through the API
and MQTT (tests/support/year.py) on a real uvicorn server with access control, then the
page at 1280x800 with its charts, the console's link to it, its print media, and the PDF
the controller prints with Debian's headless Chromium (its totals read back with pypdf)."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from controller.api.auth import AuthSettings
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.browser.conftest import CHROMIUM, GM_PASSWORD, TECH_PASSWORD, chromium, serving, shot
from tests.conftest import BrokerHandle
from tests.controller.conftest import FakeClocks, make_game
from tests.support.year import SECRETS, YEAR, Year, expected, workshops

pytestmark = pytest.mark.browser
TIMEOUT_MS = 15_000


@dataclass
class Served:
    url: str
    want: dict[str, Any]
    cookies: httpx.Cookies
    data: Path


@pytest.fixture(scope="module")
def served(embedded_broker: BrokerHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing")
    clocks = FakeClocks()
    game = make_game()
    auth = AuthSettings(gm_password=GM_PASSWORD, tech_password=TECH_PASSWORD, screen_secret="report-screens")
    data = tmp_path_factory.mktemp("report")
    app = create_app(game=game, broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                     db_path=data / "escape.db", clock=clocks.monotonic,
                     wall=clocks.wall, auth=auth)
    with serving(app) as url, httpx.Client(base_url=url, timeout=30,
                                           headers={"Content-Type": "application/json"}) as http:
        assert http.post("/api/login", json={"password": GM_PASSWORD}).status_code == 200
        year = Year(http, apartment=game.apartment.id, broker=(embedded_broker.host, embedded_broker.port),
                    advance=clocks.advance, now=clocks.wall)
        try:
            year.play(workshops())
        finally:
            year.close()
        yield Served(url, expected(workshops()), http.cookies, data)


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[object]:
    with chromium() as b:
        yield b


def logged_in(browser: object, served: Served) -> object:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{served.url}/login")
    page.wait_for_selector("#password")
    page.fill("#password", GM_PASSWORD)
    page.click("#submit")
    page.wait_for_url("**/console")
    return page


def test_the_console_links_to_the_report_and_the_page_draws_its_charts(browser: object, served: Served):
    page = logged_in(browser, served)
    link = page.locator("#nav-report")
    assert link.inner_text() == "Bilan" and link.get_attribute("title") == "Bilan de l'année"
    page.wait_for_selector("#link.ok")
    # one more link, and the console's header is no taller on the tablet
    nav = "document.querySelector('header')"
    with_link = page.evaluate(f"{nav}.offsetHeight")
    assert link.bounding_box()["height"] >= 44, "a touch target"
    shot(page, "report-console-link-1280x800")
    page.evaluate("document.querySelector('#nav-report').style.display = 'none'")
    assert with_link == page.evaluate(f"{nav}.offsetHeight")
    page.evaluate("document.querySelector('#nav-report').style.display = ''")
    link.click()
    page.wait_for_url("**/report")
    want = served.want
    assert page.locator("h1").inner_text() == "Bilan de l'atelier « Appartement témoin »"
    # the current year by default: the fake clock ended in 2027, which had no session
    assert page.locator("#period").inner_text() == f"année {YEAR + 1}"
    page.fill("input[name=year]", str(YEAR))
    page.click("#period-form button[type=submit]")
    page.wait_for_url(f"**/report?year={YEAR}**")
    assert page.locator("#period").inner_text() == f"année {YEAR}"
    assert page.locator("#kpi-held b").inner_text() == "24 / 24"
    assert page.locator("#kpi-people b").inner_text() == str(want["people"])
    # the charts: inline SVG, one bar per row
    assert page.locator("svg.chart").count() >= 6
    assert page.locator("#chart-referral rect.bar").count() == 5
    assert page.locator("#chart-results rect.bar").count() == 4
    assert page.locator("#chart-ratings rect.bar").count() == 5
    assert page.locator("#chart-months rect.bar").count() == 2 * 12
    assert page.locator("#chart-puzzles rect.bar").count() == 4
    widths = [float(w) for w in page.locator("#chart-ratings rect.bar").evaluate_all(
        "rs => rs.map(r => r.getAttribute('width'))")]
    counts = want["ratings"][2]
    assert widths.index(max(widths)) == counts.index(max(counts)), "the longest bar is the most given rating"
    box = page.locator("#chart-referral").bounding_box()
    assert box["width"] > 300 and box["height"] > 60, box
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280, "no sideways scrolling"
    html = page.content()
    for secret in SECRETS:
        assert secret not in html
    shot(page, "report-1280x800")
    # printed: the form and the links are not
    page.emulate_media(media="print")
    assert not page.locator(".controls").is_visible()
    assert page.locator("#chart-referral").is_visible()
    page.context.close()


def test_the_csv_links_download_the_tables(browser: object, served: Served):
    page = logged_in(browser, served)
    page.goto(f"{served.url}/report?year={YEAR}")
    with page.expect_download() as got:
        page.click("#csv-zip")
    download = got.value
    assert download.suggested_filename == f"bilan-{YEAR}-01-01-{YEAR}-12-31.zip"
    page.context.close()


def test_the_pdf_holds_the_totals(served: Served):
    with httpx.Client(base_url=served.url, cookies=served.cookies, timeout=90) as http:
        assert httpx.get(f"{served.url}/report/{YEAR}.pdf").status_code in (401, 303, 307), \
            "the game master's only"
        began = time.monotonic()
        reply = http.get(f"/report/{YEAR}.pdf")
        took = time.monotonic() - began
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/pdf" and reply.content.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(reply.content))
    text = "\n".join(p.extract_text() for p in reader.pages)
    want = served.want
    print(f"report PDF: {len(reply.content)} bytes, {len(reader.pages)} pages, {took:.1f} s")
    assert 1 <= len(reader.pages) <= 6
    assert "24 / 24" in text and f"année {YEAR}" in text
    assert f"{want['people']} participants en tout" in " ".join(text.split())
    assert f"{want['adults']} adultes" in text
    for secret in SECRETS:
        assert secret not in text


def test_the_command_line_prints_the_pdf(served: Served, tmp_path: Path):
    """``escape-apartment report --year 2026 --pdf``: a real process, beside the running
    controller, reading its store."""
    out = tmp_path / "bilan.pdf"
    began = time.monotonic()
    done = subprocess.run([str(Path(sys.executable).with_name("escape-apartment")), "report", "--year", str(YEAR),
                           "--data-dir", str(served.data), "--pdf", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    took = time.monotonic() - began
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Bilan écrit : {out}" in done.stdout
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(out).pages).split())
    print(f"report CLI PDF: {out.stat().st_size} bytes in {took:.1f} s")
    assert "24 / 24" in text and f"{served.want['people']} participants en tout" in text


def test_an_empty_period_says_zero_and_a_wrong_year_has_no_pdf(served: Served):
    with httpx.Client(base_url=served.url, cookies=served.cookies, timeout=30) as http:
        empty = http.get("/api/report", params={"year": 2030}).json()
        assert empty["sessions"]["held"] == empty["participants"]["people"] == 0
        assert empty["times"]["won"] == {"count": 0, "median_s": None, "min_s": None, "max_s": None}
        assert empty["ratings"]["mean"] is None and empty["months"] == []
        page = http.get("/report", params={"year": 2030})
        assert page.status_code == 200 and "0 / 24" in page.text
        assert http.get("/report/1900.pdf").status_code == 404
