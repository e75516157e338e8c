"""The debrief that teaches, over HTTP (controller/debrief_steps.py): four steps, the budget
line by line through them, each theme's message and who to call from config/sheet.yaml,
the group's answers stored with the session as counts, a page the screens follow."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from config.game import Game
from config.sheet import SheetWordsError
from config.sheet import load as load_words
from controller.api.auth import AuthSettings
from controller.main import create_app
from controller.store import SCHEMA_VERSION, Store
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.controller.conftest import FakeClocks

AUTH = AuthSettings(gm_password="gm-password", tech_password="tech-password",
                    screen_secret="debrief-screen-secret")
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def controller(embedded_broker: BrokerHandle, tmp_path: Path, game: Game,
               clocks: FakeClocks) -> Callable[[], contextmanager]:
    """The controller on the test's database, logged in as the game master (restartable)."""

    @contextmanager
    def run() -> Iterator[TestClient]:
        app = create_app(game=game, auth=AUTH, db_path=tmp_path / "escape.db",
                         broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                         clock=clocks.monotonic, wall=clocks.wall)
        with TestClient(app, headers=JSON) as client:
            assert client.post("/api/login", json={"password": "gm-password"}).status_code == 200
            yield client

    return run


def play(client: TestClient, clocks: FakeClocks, *, players: int = 3) -> str:
    """A won session: a paying clue and the mailbox (budget theme), the rest skipped."""
    session = client.post("/api/game/start", json={"parcours": "primo", "players": players}).json()["session"]
    clocks.advance(90)
    assert client.post("/api/clues", json={"puzzle": "mailbox", "index": 1}).status_code == 200   # −20 €
    clocks.advance(60)
    assert client.post("/api/game/puzzles/mailbox/solve", json={}).status_code == 200            # −100 € rent
    clocks.advance(120)
    assert client.post("/api/game/puzzles/final/skip", json={}).status_code == 200
    assert client.post("/api/game/puzzles/final/solve", json={}).status_code == 200
    assert client.get("/api/state").json()["game"]["phase"] == "won"
    return session


def screen(client: TestClient, room: str = "hall") -> dict:
    view = client.get(f"/api/state?token={AUTH.screen_token(room)}",
                      headers={"Cookie": ""}).json()
    assert view["screen"] is True
    return view


def test_the_four_steps_carry_the_budget_each_themes_message_and_who_to_call(
        controller: Callable, clocks: FakeClocks) -> None:
    words = load_words()
    with controller() as client:
        session = play(client, clocks)
        d = client.get(f"/api/debrief/{session}").json()
        # 1 feelings, 2 what happened, 3 one page per theme played (the story is the frame), 4 at home
        assert [(p["step"], p["kind"], p["theme"]) for p in d["pages"]] == [
            (1, "feelings", None), (2, "story", None), (3, "theme", "budget"), (3, "theme", "rights"),
            (3, "theme", "diy"), (4, "home", None)]
        assert d["page"] == 0 and d["step"] == 1 and d["ended"] is True
        first = d["content"]
        assert first["budget"] == {"start": 1000, "final": 910, "change": -90}
        assert [c["id"] for c in first["choices"]] == [c.id for c in words.feelings]

        story = client.put(f"/api/debrief/{session}/page", json={"page": 1}).json()["content"]
        kinds = [e["kind"] for e in story["events"]]
        assert kinds[0] == "start" and kinds[-1] == "end" and story["events"][-1]["result"] == "won"
        mailbox = next(e for e in story["events"] if e.get("label") == "La boîte aux lettres")
        assert mailbox["room"] == "Hall" and mailbox["clues"] == 1 and mailbox["outcome"] == "forced"
        assert [b["amount"] for b in mailbox["lines"]] == [-20, -100]     # its clue, then the rent
        assert [b["balance"] for b in mailbox["lines"]] == [980, 880]

        for index, theme in ((2, "budget"), (3, "rights"), (4, "diy")):
            page = client.put(f"/api/debrief/{session}/page", json={"page": index}).json()
            content = page["content"]
            assert page["step"] == 3 and content["theme"] == theme
            assert content["message"] == words.themes[theme].message
            expected = [words.contact(c).phone for c in words.themes[theme].call]
            assert [c["phone"] for c in content["contacts"]] == expected and expected
        budget = client.put(f"/api/debrief/{session}/page", json={"page": 2}).json()["content"]
        assert sorted(b["amount"] for b in budget["lines"]) == [-100, -20] and budget["total"] == -120
        rights = client.put(f"/api/debrief/{session}/page", json={"page": 3}).json()["content"]
        assert [b["amount"] for b in rights["lines"]] == [30]         # the bell: « Voisin aidé »

        home = client.put(f"/api/debrief/{session}/page", json={"page": 5}).json()
        assert home["step"] == 4
        month = home["content"]
        assert [b["balance"] for b in month["lines"]][-1] == 910      # the whole month, line by line
        assert month["month"]["left"] == 910
        assert {t["theme"] for t in month["themes"]} == set(words.themes)


def test_answers_are_counts_kept_with_the_session_and_in_the_csv(controller: Callable, clocks: FakeClocks) -> None:
    with controller() as client:
        session = play(client, clocks, players=4)
        got = client.put(f"/api/debrief/{session}/answers",
                         json={"feelings": {"happy": 2, "lost": 1}}).json()
        assert got["answers"] == {"feelings": {"happy": 2, "lost": 1}, "at_home": {}}
        assert {c["id"]: c["count"] for c in got["content"]["choices"]}["happy"] == 2
        again = client.put(f"/api/debrief/{session}/answers",    # the same twice: nothing more
                           json={"feelings": {"happy": 2, "lost": 1}, "at_home": {"sort_waste": 3}}).json()
        assert again["answers"] == {"feelings": {"happy": 2, "lost": 1}, "at_home": {"sort_waste": 3}}
        # feelings left out: kept
        kept = client.put(f"/api/debrief/{session}/answers", json={"at_home": {"air_daily": 1}}).json()
        assert kept["answers"]["feelings"] == {"happy": 2, "lost": 1}
        assert kept["answers"]["at_home"] == {"air_daily": 1}
        csv = client.get("/api/history/sessions.csv").text.splitlines()
        header = csv[0].lstrip("\ufeff").split(";")
        row = dict(zip(header, csv[1].split(";"), strict=True))
        assert row["ressentis"] == "happy:2,lost:1" and row["chez_vous"] == "air_daily:1"
        other = play(client, clocks, players=2)      # the statistics add the sessions up
        client.put(f"/api/debrief/{other}/answers", json={"feelings": {"happy": 1, "stressed": 1}})
        assert client.get("/api/history/stats").json()["debrief"] == {
            "feelings": {"happy": 3, "lost": 1, "stressed": 1}, "at_home": {"air_daily": 1}}
        audit = client.get(f"/api/history/sessions/{session}").json()["audit"]
        assert [a["target"] for a in audit if a["action"] == "debrief_answers"] == ["feelings", "feelings",
                                                                                    "at_home", "at_home"]


@pytest.mark.parametrize(("url", "body", "words"), [
    ("answers", {"feelings": {"bored": 1}}, "choix inconnu"),
    ("answers", {"feelings": {"happy": 2, "lost": 2}}, "un par personne au plus"),
    ("answers", {"at_home": {"sort_waste": 4}}, "le groupe compte 3 personnes"),
    ("answers", {"feelings": {"happy": -1}}, ""),
    ("answers", {"feelings": {"happy": "2"}}, ""),
    ("answers", {"moods": {}}, ""),
    ("page", {"page": 6}, "page du débrief inconnue : 7 (de 1 à 6)"),
    ("page", {"page": -1}, ""),
    ("page", {"page": 1.5}, ""),
])
def test_bad_input_is_refused_in_french_and_changes_nothing(
        controller: Callable, clocks: FakeClocks, url: str, body: dict, words: str) -> None:
    with controller() as client:
        session = play(client, clocks)
        client.put(f"/api/debrief/{session}/answers", json={"feelings": {"happy": 1}})
        client.put(f"/api/debrief/{session}/page", json={"page": 2})
        before = client.get(f"/api/debrief/{session}").json()
        reply = client.put(f"/api/debrief/{session}/{url}", json=body)
        assert reply.status_code == 422, reply.text
        assert words in reply.json()["detail"] if words else reply.json()["detail"]
        assert client.get(f"/api/debrief/{session}").json() == before


def test_a_session_not_over_has_no_debrief_to_walk_and_an_unknown_one_none(
        controller: Callable, clocks: FakeClocks) -> None:
    with controller() as client:
        session = client.post("/api/game/start", json={"parcours": "primo", "players": 2}).json()["session"]
        for url, body in (("page", {"page": 1}), ("answers", {"feelings": {"happy": 1}})):
            reply = client.put(f"/api/debrief/{session}/{url}", json=body)
            assert reply.status_code == 409 and "pas terminée" in reply.json()["detail"]
        assert client.get(f"/api/debrief/{session}").json()["answers"] == {"feelings": {}, "at_home": {}}
        assert client.put("/api/debrief/nope/page", json={"page": 1}).status_code == 404


def test_the_screens_follow_the_page_in_the_debrief_phase_and_a_restart_keeps_it(
        controller: Callable, clocks: FakeClocks) -> None:
    with controller() as client:
        session = play(client, clocks)
        client.put(f"/api/debrief/{session}/page", json={"page": 3})
        assert screen(client)["debrief"] is None                  # won, not in the debrief yet
        assert client.post("/api/game/debrief", json={}).status_code == 200
        view = screen(client)["debrief"]
        assert (view["page"], view["content"]["theme"]) == (3, "rights")
        client.put(f"/api/debrief/{session}/page", json={"page": 4})
        client.put(f"/api/debrief/{session}/answers", json={"feelings": {"proud": 3}})
        assert screen(client, "salon")["debrief"]["content"]["theme"] == "diy"
    with controller() as client:                                   # a restarted controller
        assert client.get("/api/state").json()["game"]["phase"] == "debrief"
        view = screen(client)["debrief"]
        assert (view["session"], view["page"], view["answers"]["feelings"]) == (session, 4, {"proud": 3})
        assert client.post("/api/game/reset", json={}).status_code == 200
        assert screen(client)["debrief"] is None


def test_an_old_database_gets_the_debrief_tables_and_keeps_its_sessions(tmp_path: Path) -> None:
    path = tmp_path / "escape.db"
    Store(path).close()
    db = sqlite3.connect(path)     # as the controller of schema 3 left it
    db.execute("INSERT INTO sessions (id, apartment, created_at, date, parcours, players, children, phase, "
               "closed, clues, clues_sent, updated_at, state) VALUES ('s1', 'a', 1, '2026-01-01', 'primo', 3, 0, "
               "'idle', 1, 0, 0, 1, '{}')")
    for table in ("debrief_answers", "debrief_progress"):
        db.execute(f"DROP TABLE {table}")
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    store = Store(path)
    try:
        assert store.pragma("user_version") == SCHEMA_VERSION
        assert store.read("SELECT id FROM sessions") == [{"id": "s1"}]
        assert store.debrief_answers() == {}
    finally:
        store.close()


def test_the_shipped_words_say_for_every_theme_a_message_who_to_call_and_what_to_do_at_home() -> None:
    words = load_words()
    for theme in words.themes.values():
        assert theme.message and theme.call and theme.at_home
        assert all(words.contact(c) for c in theme.call)
    assert {c.id for c in words.contacts} >= {"caretaker", "landlord", "energy", "bulky"}
    assert len(words.feelings) >= 3


@pytest.mark.parametrize(("change", "where"), [
    (lambda w: w["themes"]["waste"].update(call=["firemen"]), "themes.waste.call"),
    (lambda w: w["contacts"].append(dict(w["contacts"][0])), "the same id twice"),
    (lambda w: w["feelings"].append(dict(w["feelings"][0])), "feelings: the same id twice"),
    (lambda w: w["themes"]["waste"].update(message="x" * 221), "themes.waste.message"),
    (lambda w: w["themes"]["waste"].update(message_en="x" * 221), "themes.waste.message_en"),
    (lambda w: w["themes"]["waste"]["at_home"][1].update(label_en="x" * 51), "themes.waste.at_home.1.label_en"),
    (lambda w: w["feelings"][2].update(label_en="x" * 51), "feelings.2.label_en"),
    (lambda w: w["story"].update(title_en="x" * 31), "story.title_en"),
])
def test_bad_debrief_words_are_refused_with_what_to_correct(change: Callable, where: str, tmp_path: Path) -> None:
    from config import sheet
    words = yaml.safe_load(sheet.PATH.read_text(encoding="utf-8"))
    words["contacts"] = words["contacts"][:5]
    change(words)
    path = tmp_path / "sheet.yaml"
    path.write_text(yaml.safe_dump(words, allow_unicode=True), encoding="utf-8")
    with pytest.raises(SheetWordsError, match="mal rempli") as err:
        load_words(path)
    assert where in str(err.value)


def test_a_badly_filled_words_file_says_what_to_correct_and_never_breaks_the_screens(
        controller: Callable, clocks: FakeClocks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from config import sheet
    broken = tmp_path / "sheet.yaml"
    broken.write_text(sheet.PATH.read_text(encoding="utf-8").replace("call: [bulky]", "call: [pompiers]"),
                      encoding="utf-8")
    with controller() as client:
        session = play(client, clocks)
        assert client.post("/api/game/debrief", json={}).status_code == 200
        monkeypatch.setattr(sheet, "PATH", broken)
        load_words.cache_clear()
        try:
            reply = client.put(f"/api/debrief/{session}/page", json={"page": 1})
            assert reply.status_code == 500
            assert "débrief impossible" in reply.json()["detail"] and "themes.waste.call" in reply.json()["detail"]
            view = screen(client)                       # the screens still get their view
            assert view["debrief"] is None and view["game"]["phase"] == "debrief"
        finally:
            load_words.cache_clear()


def test_in_english_the_steps_carry_the_words_files_english(controller: Callable, clocks: FakeClocks) -> None:
    words = load_words()
    with controller() as client:
        session = play(client, clocks)
        feelings = client.get(f"/api/debrief/{session}").json()
        assert [(c["label"], c["label_en"]) for c in feelings["content"]["choices"]] == [
            (c.label, c.label_en) for c in words.feelings]
        assert all(c.label_en and c.label_en != c.label for c in words.feelings)   # the shipped file says it
        pages = feelings["pages"]
        for index, p in enumerate(pages):
            page = client.put(f"/api/debrief/{session}/page", json={"page": index}).json()
            content = page["content"]
            if p["kind"] == "theme":
                w = words.themes[p["theme"]]
                assert (p["title"], p["title_en"]) == (w.title, w.title_en)
                assert (content["message"], content["message_en"]) == (w.message, w.message_en)
                assert content["message_en"] and content["message_en"] != content["message"]
                assert content["advice_en"] == w.advice_en
                assert [c["who_en"] for c in content["contacts"]] == [words.contact(c).who_en for c in w.call]
            if p["kind"] == "home":
                for theme in content["themes"]:
                    w = words.themes[theme["theme"]]
                    assert theme["title_en"] == w.title_en
                    assert [c["label_en"] for c in theme["choices"]] == [c.label_en for c in w.at_home]
                    assert all(c.label_en and c.label_en != c.label for c in w.at_home)


def test_an_english_text_left_out_is_said_in_french(tmp_path: Path) -> None:
    from config import sheet
    words = yaml.safe_load(sheet.PATH.read_text(encoding="utf-8"))
    del words["themes"]["waste"]["message_en"], words["themes"]["waste"]["at_home"][0]["label_en"]
    path = tmp_path / "sheet.yaml"
    path.write_text(yaml.safe_dump(words, allow_unicode=True), encoding="utf-8")
    waste = load_words(path).themes["waste"]
    assert waste.said("en") == waste.said("fr") == waste.message
    assert waste.at_home[0].name("en") == waste.at_home[0].label
    assert waste.at_home[1].name("en") == waste.at_home[1].label_en


def test_a_theme_title_edited_in_the_words_file_names_it_on_every_page(
        controller: Callable, clocks: FakeClocks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One name per theme: the staff edit config/sheet.yaml and the debrief page (its
    theme-by-theme section and evaluation form), the steps, the sheet, the history and
    the year's report all say it."""
    from config import sheet
    from controller.report import theme_labels
    words = yaml.safe_load(sheet.PATH.read_text(encoding="utf-8"))
    words["themes"]["budget"].update(icon="🪙", title="Les sous du mois", title_en="Money matters")
    words["story"].update(title="Le récit", title_en="The tale")
    edited = tmp_path / "sheet.yaml"
    edited.write_text(yaml.safe_dump(words, allow_unicode=True), encoding="utf-8")
    monkeypatch.setattr(sheet, "PATH", edited)
    load_words.cache_clear()
    try:
        with controller() as client:
            session = play(client, clocks)
            d = client.get(f"/api/history/sessions/{session}/debrief").json()
            names = {t["theme"]: (t["icon"], t["title"], t["title_en"]) for t in d["themes"]}
            assert names["budget"] == ("🪙", "Les sous du mois", "Money matters")
            assert names["story"] == ("📖", "Le récit", "The tale")
            assert client.get("/api/game/debrief").json()["themes"] == d["themes"]

            steps = client.get(f"/api/debrief/{session}").json()["pages"]
            index = next(i for i, p in enumerate(steps) if p["theme"] == "budget")
            assert (steps[index]["icon"], steps[index]["title"]) == ("🪙", "Les sous du mois")
            page = client.put(f"/api/debrief/{session}/page", json={"page": index}).json()["content"]
            assert (page["title"], page["title_en"]) == ("Les sous du mois", "Money matters")
            home = client.put(f"/api/debrief/{session}/page", json={"page": len(steps) - 1}).json()["content"]
            assert ("Les sous du mois", "Money matters") in [(t["title"], t["title_en"]) for t in home["themes"]]

            assert "Les sous du mois" in client.get(f"/sheet/{session}").text
            assert "Money matters" in client.get(f"/sheet/{session}?lang=en").text
            mailbox = next(p for p in client.get("/api/history/stats").json()["puzzles"] if p["id"] == "mailbox")
            assert (mailbox["theme"], mailbox["title"], mailbox["title_en"]) == ("budget", "Les sous du mois",
                                                                               "Money matters")
            assert theme_labels()["budget"] == "Les sous du mois" and theme_labels()["story"] == "Le récit"
    finally:
        load_words.cache_clear()
