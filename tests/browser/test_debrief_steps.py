"""The debrief that teaches, in headless Chromium against a real server, broker and
simulated nodes (fixtures: tests/browser/conftest.py): the game master steps through the
four steps on a 1280×800 tablet while the room TV at 1920×1080 follows each page, with
the budget lines of each step, each theme's message and phone numbers, the group's
answers; nothing on the TV scrolls or is cut off. Screenshots in test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from config.sheet import load as load_words
from tests.browser.conftest import GM_PASSWORD, Server, api, shot

pytestmark = pytest.mark.browser
TIMEOUT_MS = 20_000  # generous: CI machines have 2 cores and run Chromium beside 7 nodes
TV = {"width": 1920, "height": 1080}
TABLET = {"width": 1280, "height": 800}

#: the TV's words cut off: a leaf element past the page's edge or the screen's
CLIPPED = """() => { const box = document.querySelector('#tv-debrief').getBoundingClientRect();
  return [...document.querySelectorAll('#tv-debrief *')].filter((e) => e.getClientRects().length && !e.children.length)
    .filter((e) => { const r = e.getBoundingClientRect();
      return r.bottom > box.bottom + 1 || r.right > box.right + 1 || r.bottom > innerHeight || r.right > innerWidth; })
    .map((e) => e.className || e.textContent.slice(0, 30)); }"""


def play(console: Any) -> str:
    """A won game of the shipped primo parcours: clues, most puzzles, the insurance left
    unpaid (charged at the end), then the debrief phase."""
    state = api(console, "GET", "/api/state")["data"]["game"]
    if state["phase"] in ("running", "paused", "check", "briefing"):
        api(console, "POST", "/api/game/stop", {})
    api(console, "POST", "/api/game/reset", {})
    session = api(console, "POST", "/api/game/start", {"parcours": "primo", "players": 4})["data"]["session"]
    assert api(console, "POST", "/api/clues", {"puzzle": "mailbox", "index": 0})["status"] == 200
    for puzzle in ("mailbox", "front_door", "repairs", "kitchen_hood", "cleaning_product", "damp_bathroom",
                   "pests", "household_budget", "noise", "waste_sorting"):
        assert api(console, "POST", f"/api/game/puzzles/{puzzle}/solve", {})["status"] == 200, puzzle
    assert api(console, "GET", "/api/state")["data"]["game"]["phase"] == "won"
    assert api(console, "POST", "/api/game/debrief", {})["status"] == 200
    return session


def nothing_scrolls(tv: Any, name: str) -> None:
    shot(tv, name)
    assert tv.evaluate("document.documentElement.scrollHeight <= window.innerHeight"), name
    assert tv.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name
    assert tv.evaluate(CLIPPED) == [], name


def test_the_tv_follows_the_console_through_the_four_steps(browser: Any, server: Server) -> None:
    words = load_words()
    with played(browser, server) as (console, tv, session):
        tv.goto(f"{server.url}/screen/sejour?token={server.auth.screen_token('sejour')}")
        console.goto(f"{server.url}/debrief")
        console.wait_for_selector("#steps:not(.hidden) #step-page[data-page='0']")
        pages = api(console, "GET", f"/api/debrief/{session}")["data"]["pages"]
        assert [p["step"] for p in pages][:2] == [1, 2] and pages[-1]["step"] == 4
        themes = [p["theme"] for p in pages if p["kind"] == "theme"]
        assert set(themes) == {"budget", "rights", "upkeep", "diy", "waste"}

        # step 1: how did you feel — the TV shows the pictograms; the console counts them
        tv.wait_for_selector("body.debriefing #tv-debrief[data-page='0'][data-step='1']")
        assert tv.locator("main.tv").is_hidden()
        console.click("#step-page [data-choice='happy'] .plus")
        console.click("#step-page [data-choice='happy'] .plus")
        console.click("#step-page [data-choice='proud'] .plus")
        tv.wait_for_selector("#tv-debrief [data-choice='happy'][data-count='2']")
        tv.wait_for_selector("#tv-debrief [data-choice='proud'][data-count='1']")
        assert "1\u202f450 €" in tv.text_content("#tv-debrief .step-budget")       # the month's start and end
        nothing_scrolls(tv, "debrief-step1-tv")
        shot(console, "debrief-step1-console")

        # step 2: what happened — every budget line at its moment
        console.click("#step-next")
        tv.wait_for_selector("#tv-debrief[data-page='1'][data-step='2']")
        assert tv.locator("#tv-debrief .story li[data-kind='puzzle']").count() == 11   # 10 done, the insurance not
        assert "« L'assurance habitation » : pas trouvée" in tv.text_content("#tv-debrief .story")
        assert tv.locator("#tv-debrief .story .step-line").count() >= 8           # rent, energy, clue…
        assert "Loyer payé" in tv.text_content("#tv-debrief .story")
        assert "Assurance habitation" in tv.text_content("#tv-debrief .story li[data-kind='end']")
        nothing_scrolls(tv, "debrief-step2-tv")

        # step 3: theme by theme, its message, its budget lines and who to call
        for offset, theme in enumerate(themes):
            console.click("#step-next")
            tv.wait_for_selector(f"#tv-debrief[data-page='{2 + offset}'][data-step='3']")
            tv.wait_for_selector(f"#tv-debrief .step-message[data-theme='{theme}']")
            assert tv.text_content("#tv-debrief .step-message") == words.themes[theme].message
            phones = tv.locator("#tv-debrief .phone").all_text_contents()
            assert phones == [words.contact(c).phone for c in words.themes[theme].call], theme
            if theme == "budget":
                said = tv.text_content("#tv-debrief .theme-did")
                assert "Électricité et eau payées" in said and "Assurance habitation" in said
                assert tv.locator("#tv-debrief .step-bills [data-bill='insurance'][data-status='charged']").count() == 1
            nothing_scrolls(tv, f"debrief-step3-{theme}-tv")
        shot(console, "debrief-step3-console")

        # step 4: at home — the households' choices, the whole month
        console.click("#step-next")
        tv.wait_for_selector("#tv-debrief[data-step='4']")
        assert console.is_disabled("#step-next")
        console.click("#step-page [data-choice='sort_waste'] .plus")
        tv.wait_for_selector("#tv-debrief [data-choice='sort_waste'][data-count='1']")
        assert tv.locator("#tv-debrief .month-lines .step-line").count() >= 5
        assert tv.locator("#tv-debrief .step-bills li").count() == 3
        nothing_scrolls(tv, "debrief-step4-tv")
        shot(console, "debrief-step4-console")

        # back one step: the TV follows backwards too
        console.click("#step-prev")
        tv.wait_for_selector(f"#tv-debrief[data-page='{len(pages) - 2}'][data-step='3']")
        kept = api(console, "GET", f"/api/debrief/{session}")["data"]["answers"]
        assert kept == {"feelings": {"happy": 2, "proud": 1}, "at_home": {"sort_waste": 1}}
        # the console itself (its debrief phase panel) says the step and moves it too
        home = console.context.new_page()
        home.set_viewport_size(TABLET)
        home.goto(f"{server.url}/console")
        home.wait_for_selector(f"#steps-nav:not(.hidden)[data-page='{len(pages) - 2}']")
        assert "Étape 3 sur 4" in home.text_content("#console-step")
        home.click("#console-step-next")
        tv.wait_for_selector("#tv-debrief[data-step='4']")
        home.wait_for_selector("#console-step-next:disabled")
        assert "Étape 4 sur 4 — Et chez vous ?" in home.text_content("#console-step")
        home.click("#console-step-prev")
        tv.wait_for_selector(f"#tv-debrief[data-page='{len(pages) - 2}'][data-step='3']")
        shot(home, "debrief-steps-on-console")
        # a new session: the TV is the room's again
        api(console, "POST", "/api/game/reset", {})
        tv.wait_for_selector("body:not(.debriefing) #tv-debrief.hidden", state="attached")
        home.wait_for_selector("#steps-nav.hidden", state="attached")


def _french_left_out(words: Any) -> list[str]:
    """The words file's French texts that have their own English: none may show on a page
    in English."""
    texts = [(c.label, c.label_en) for c in words.feelings]
    texts += [(words.story.title, words.story.title_en)]
    texts += [(c.who, c.who_en) for c in words.contacts]
    for w in words.themes.values():
        texts += [(w.title, w.title_en), (w.message, w.message_en), (w.advice, w.advice_en)]
        texts += [(c.label, c.label_en) for c in w.at_home]
    return [fr for fr, en in texts if fr and en and fr != en]


def french_in(said: str, french: list[str]) -> list[str]:
    """The texts of *french* said in *said*, as whole words (« Surpris » is not in « Surprised »)."""
    return [fr for fr in french if re.search(rf"(?<!\w){re.escape(fr)}(?!\w)", said)]


@contextmanager
def played(browser: Any, server: Server, *, lang: str | None = None) -> Iterator[tuple[Any, Any, str]]:
    """A won game seen from the console (a tablet, logged in, in *lang*) and a TV page not
    opened yet, each in a context of its own, closed after: the console, the TV, the session."""
    console_ctx = browser.new_context(viewport=TABLET)
    tv_ctx = browser.new_context(viewport=TV)
    for ctx in (console_ctx, tv_ctx):
        ctx.set_default_timeout(TIMEOUT_MS)
    try:
        console = login(console_ctx, server, lang=lang)
        session = play(console)
        yield console, tv_ctx.new_page(), session
    finally:
        console_ctx.close()
        tv_ctx.close()


def login(ctx: Any, server: Server, *, lang: str | None = None) -> Any:
    """The console of *ctx*, the game master logged in; in *lang* (else the browser's)."""
    page = ctx.new_page()
    page.goto(f"{server.url}/login")
    if lang is not None:
        page.evaluate("(lang) => localStorage.setItem('lang', lang)", lang)
    page.fill("#password", GM_PASSWORD)
    page.click("#submit")
    page.wait_for_url("**/console")
    return page


def test_an_english_tv_and_console_say_the_debrief_in_english(browser: Any, server: Server) -> None:
    words = load_words()
    french = _french_left_out(words)
    assert len(french) > 30   # the shipped file gives its English to every text
    with played(browser, server, lang="en") as (console, tv, session):
        tv.goto(f"{server.url}/screen/sejour?token={server.auth.screen_token('sejour')}&lang=en")
        pages = api(console, "GET", f"/api/debrief/{session}")["data"]["pages"]
        for index, p in enumerate(pages):
            assert api(console, "PUT", f"/api/debrief/{session}/page", {"page": index})["status"] == 200
            tv.wait_for_selector(f"body.debriefing #tv-debrief[data-page='{index}']")
            said = tv.text_content("#tv-debrief")
            assert french_in(said, french) == [], p
            if p["kind"] == "feelings":
                assert all(c.label_en in said for c in words.feelings)
            if p["kind"] == "theme":
                w = words.themes[p["theme"]]
                assert tv.text_content("#tv-debrief .step-message") == w.message_en
                assert w.title_en in tv.text_content("#tv-debrief .step-title")
                assert [words.contact(c).who_en for c in w.call] == tv.locator(
                    "#tv-debrief .contact .who").all_text_contents()
            if p["kind"] == "home":
                assert all(c.label_en in said for w in words.themes.values() for c in w.at_home)
                assert all(w.title_en in said for w in words.themes.values() if w.at_home)
            nothing_scrolls(tv, f"debrief-en-{index}-{p['theme'] or p['kind']}-tv")

        # the debrief page in English: its steps, its theme-by-theme section, its form
        console.goto(f"{server.url}/debrief?session={session}")
        console.wait_for_selector(f"#steps:not(.hidden) #step-page[data-page='{len(pages) - 1}']")
        console.wait_for_selector("#eval-themes label")
        shown = console.text_content("main")
        assert french_in(shown, french) == []
        assert all(c.label_en in console.text_content("#step-page") for c in words.themes["waste"].at_home)
        titles = console.locator("#themes h3").all_text_contents()
        assert f"{words.themes['upkeep'].icon} {words.themes['upkeep'].title_en}" in titles
        assert len(titles) == len(words.themes)   # the five lessons played
        shot(console, "debrief-en-console")


def test_a_theme_title_edited_by_the_staff_shows_on_every_page(
        browser: Any, server: Server, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The words file names the themes for every page: edit a title there, and the debrief
    page (its steps, its theme-by-theme section, its form), the room TV, the console and
    the take-home sheet say it."""
    import yaml

    from config import sheet
    data = yaml.safe_load(sheet.PATH.read_text(encoding="utf-8"))
    data["themes"]["upkeep"].update(icon="🧹", title="Bien tenir son logement")
    edited = tmp_path / "sheet.yaml"
    edited.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setattr(sheet, "PATH", edited)   # the server runs in this process
    load_words.cache_clear()
    title = "🧹 Bien tenir son logement"
    try:
        with played(browser, server, lang="fr") as (console, tv, session):
            tv.goto(f"{server.url}/screen/sejour?token={server.auth.screen_token('sejour')}")
            pages = api(console, "GET", f"/api/debrief/{session}")["data"]["pages"]
            index = next(i for i, p in enumerate(pages) if p["theme"] == "upkeep")
            assert api(console, "PUT", f"/api/debrief/{session}/page", {"page": index})["status"] == 200
            tv.wait_for_selector(f"#tv-debrief[data-page='{index}']")
            assert title in tv.text_content("#tv-debrief .step-title")

            console.goto(f"{server.url}/debrief?session={session}")
            console.wait_for_selector(f"#step-page[data-page='{index}']")
            console.wait_for_selector("#eval-themes label")
            assert title in console.text_content("#step-page .step-title")
            button = console.locator("#step-pages button").nth(index)
            assert button.get_attribute("title") == "Bien tenir son logement"
            assert console.text_content("#themes [data-theme='upkeep'] h3") == title
            assert title in [x.strip() for x in console.locator("#eval-themes label").all_text_contents()]
            assert "Entretien du logement" not in console.text_content("main")   # the i18n name is gone

            home = console.context.new_page()
            home.goto(f"{server.url}/console")
            home.wait_for_selector(f"#steps-nav:not(.hidden)[data-page='{index}']")
            assert title in home.text_content("#console-step")

            console.goto(f"{server.url}/sheet/{session}")
            assert "Bien tenir son logement" in console.text_content("[data-theme='upkeep']")
    finally:
        load_words.cache_clear()
