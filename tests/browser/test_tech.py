"""The technician page in headless Chromium: self-test a lock, enroll a tag, wiring sheet;
the game master is refused."""

from __future__ import annotations

import pytest

from tests.browser.conftest import GM_PASSWORD, TECH_PASSWORD, Server, shot

pytestmark = pytest.mark.browser
TIMEOUT_MS = 20_000


def login(browser: object, server: Server, password: str, page_path: str = "/tech") -> object:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{server.url}/login?next={page_path}")
    page.fill("#password", password)
    page.click("#submit")
    page.wait_for_url(f"**{page_path}")
    return page


def test_technician_tests_a_lock_enrolls_a_tag_and_reads_a_wiring_sheet(browser: object, server: Server) -> None:
    page = login(browser, server, TECH_PASSWORD)
    page.wait_for_selector("#link.ok")
    page.wait_for_selector('#nodes tr[data-node="hall"] td.age')
    assert "s" in page.text_content('#nodes tr[data-node="hall"] td.age')

    # self-test of a lock: the node clicks it and reports its steps
    page.click('[data-test="hall.mailbox_lock"]')
    page.wait_for_selector('[data-result="hall.mailbox_lock"].ok', timeout=TIMEOUT_MS)
    result = page.text_content('[data-result="hall.mailbox_lock"]')
    assert "réussi" in result and "locked" in result

    # enroll: a tag presented on the simulated reader (rehearsal API) while the node listens
    page.fill('[data-tag-name="cuisine.ingredients"]', "sel_fin")
    page.click('[data-enroll="cuisine.ingredients"]')
    page.evaluate("""async () => {
        const post = (body) => fetch('/api/sim/cuisine/ingredients', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
        for (let i = 0; i < 20; i++) {
          const box = document.querySelector('[data-result="cuisine.ingredients"]');
          if (box.classList.contains('ok') || box.classList.contains('bad')) return;
          await new Promise((r) => setTimeout(r, 500));
          await post({gesture: 'present', value: '04c0ffee'});
          await new Promise((r) => setTimeout(r, 300));
          await post({gesture: 'remove'});
        } }""")
    page.wait_for_selector('[data-result="cuisine.ingredients"].ok')
    assert "04c0ffee" in page.text_content('[data-result="cuisine.ingredients"]')
    page.wait_for_selector('#enrolled li[data-uid="04c0ffee"]')
    assert "sel_fin" in page.text_content('#enrolled li[data-uid="04c0ffee"]')

    # wiring sheet of a node
    page.click('#nodes tr[data-node="hall"] button')
    page.wait_for_selector("#wiring-box:not(.hidden)")
    assert "17" in page.text_content("#wiring")   # the mailbox lock's relay pin
    shot(page, "tech-tested")
    page.context.close()


def test_game_master_is_refused_the_technician_page(browser: object, server: Server) -> None:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{server.url}/login")
    assert page.evaluate("""(password) => fetch('/api/login', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({password})})
        .then((r) => r.json()).then((d) => d.role)""", GM_PASSWORD) == "gm"
    response = page.goto(f"{server.url}/tech")
    assert response.status == 403
    status = page.evaluate("""() => fetch('/api/tech/hall/mailbox_lock/test', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: '{}'}).then((r) => r.status)""")
    assert status == 403
    page.context.close()
