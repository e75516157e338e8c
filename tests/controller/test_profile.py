"""The group's profile over HTTP: chosen when the game starts, kept with the session (a
restarted controller has it), changed by the game master during the game, refused in
words when wrong; and what a room screen's view carries for it (docs/media.md,
« Profils du groupe »)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config.game import Game
from config.loader import parse_game
from controller.api.auth import AuthSettings
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.controller.conftest import GAME, FakeClocks

AUTH = AuthSettings(gm_password="gm-password", tech_password="tech-password",
                    screen_secret="profile-screen-secret", session_secret="profile-session-secret")

# the test game, its hall and first clue translated, with short and children's wordings
TRANSLATED = GAME.replace(
    "    label: Hall\n",
    "    label: {{fr: Hall, en: Hall, ar: \"المدخل\"}}\n").replace(
    '      - {{text: "Jour puis mois.", cost: 20}}\n',
    '      - {{text: {{fr: "Jour puis mois.", en: "Day then month.", ar: "اليوم ثم الشهر."}}, '
    'cost: 20, short: {{fr: "Jour, mois.", ar: "يوم، شهر."}}, kids: "Le jour, puis le mois !"}}\n').replace(
    "      - {{do: budget, amount: -100, label: Loyer}}\n",
    "      - {{do: budget, amount: -100, label: Loyer}}\n"
    '      - {{do: message, room: hall, text: "La boîte est ouverte."}}\n')


@pytest.fixture
def game() -> Game:
    return parse_game(TRANSLATED.format(apartment_id="tprofile")).game


@pytest.fixture
def controller(embedded_broker: BrokerHandle, tmp_path: Path, game: Game,
               clocks: FakeClocks) -> Callable[[], contextmanager[TestClient]]:
    """The controller on the test's database (restartable), the game master logged in."""

    @contextmanager
    def run() -> Iterator[TestClient]:
        app = create_app(game=game, auth=AUTH, db_path=tmp_path / "escape.db",
                         broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                         clock=clocks.monotonic, wall=clocks.wall)
        with TestClient(app) as client:
            assert client.post("/api/login", json={"password": "gm-password"}).status_code == 200
            yield client

    return run


def screen(client: TestClient, room: str = "hall") -> dict:
    """*room*'s screen view, as the screen gets it (its token, no staff cookie)."""
    view = TestClient(client.app).get(f"/api/state?token={AUTH.screen_token(room)}").json()
    assert view["screen"] is True
    return view


def test_the_game_offers_the_languages_it_is_translated_into(game: Game):
    assert game.languages() == ("en", "ar")


def test_profile_given_at_start_is_kept_by_a_restarted_controller(controller):
    profile = {"children": True, "low_literacy": True, "language": "ar", "hard_of_hearing": True}
    with controller() as client:
        reply = client.post("/api/game/start", json={"parcours": "primo", "players": 4, "profile": profile})
        assert reply.status_code == 200, reply.text
        assert reply.json()["profile"] == profile
        assert client.get("/api/game/profile").json() == {
            "profile": profile, "languages": [{"code": "en", "name": "anglais"},
                                              {"code": "ar", "name": "arabe"}]}
        audit = client.get("/api/state").json()["game"]["audit"]
        assert any(a["action"] == "profile" and "arabe" in a["detail"] for a in audit)
    with controller() as client:   # another process, same database
        assert client.get("/api/state").json()["game"]["profile"] == profile


def test_the_game_master_changes_the_profile_during_the_game(controller):
    with controller() as client:
        client.post("/api/game/start", json={"parcours": "primo", "players": 3})
        assert client.get("/api/game/profile").json()["profile"] == {
            "children": False, "low_literacy": False, "language": None, "hard_of_hearing": False}
        reply = client.post("/api/game/profile", json={"language": "en"})
        assert reply.status_code == 200, reply.text
        reply = client.post("/api/game/profile", json={"hard_of_hearing": True})
        assert reply.json()["profile"] == {"children": False, "low_literacy": False, "language": "en",
                                           "hard_of_hearing": True}, "a field left out stays"
        reply = client.post("/api/game/profile", json={"language": None})
        assert reply.json()["profile"]["language"] is None, "null: back to French only"
        assert client.get("/api/state").json()["game"]["phase"] == "running", "the game goes on"


def test_a_wrong_profile_is_refused_in_words_and_changes_nothing(controller, game: Game):
    with controller() as client:
        reply = client.post("/api/game/profile", json={"language": "en"})
        assert reply.status_code == 409 and "pas de session" in reply.json()["detail"]
        client.post("/api/game/start", json={"parcours": "primo", "players": 3,
                                             "profile": {"language": "ar"}})
        for body in ({"language": "de"}, {"low_literacy": "beaucoup"}, {"colour": "red"}):
            assert client.post("/api/game/profile", json=body).status_code == 422, body
        # Portuguese is a language a profile may name, but this game has no text in it
        reply = client.post("/api/game/profile", json={"language": "pt"})
        assert reply.status_code == 409 and "non traduite" in reply.json()["detail"]
        assert client.get("/api/game/profile").json()["profile"]["language"] == "ar"


def test_a_screen_shows_the_game_texts_in_the_profiles_language_and_wording(controller):
    with controller() as client:
        client.post("/api/game/start", json={"parcours": "primo", "players": 3,
                                             "profile": {"language": "ar"}})
        assert client.post("/api/clues", json={"puzzle": "mailbox", "index": 1}).status_code == 200
        view = screen(client)
        assert view["profile"]["dir"] == "rtl" and view["profile"]["language"] == "ar"
        assert view["say"]["Hall"] == {"text": "المدخل", "lang": "ar", "dir": "rtl", "fr": "Hall"}
        assert view["say"]["Jour puis mois."] == {"text": "اليوم ثم الشهر.", "lang": "ar", "dir": "rtl",
                                                   "fr": "Jour puis mois."}
        # reads little: the short wording, in Arabic, its French beneath
        client.post("/api/game/profile", json={"low_literacy": True})
        assert screen(client)["say"]["Jour puis mois."] == {
            "text": "يوم، شهر.", "lang": "ar", "dir": "rtl", "fr": "Jour, mois."}
        # children, French only: the children's wording (no Arabic, nothing beneath)
        client.post("/api/game/profile", json={"low_literacy": False, "children": True, "language": None})
        view = screen(client)
        assert view["say"]["Jour puis mois."] == {"text": "Le jour, puis le mois !", "lang": "fr",
                                                   "dir": "ltr", "fr": None}
        assert "Hall" not in view["say"] and view["profile"]["dir"] == "ltr"
        # a text without a translation stays French: the salon's screen has nothing to say
        assert "Salon" not in screen(client, "salon")["say"]


def test_a_screen_speaks_its_messages_and_the_clue_in_the_wording_shown(controller):
    with controller() as client:
        client.post("/api/game/start", json={"parcours": "primo", "players": 3,
                                             "profile": {"low_literacy": True}})
        hall = TestClient(client.app)   # the screen: its token, no staff cookie
        token = AUTH.screen_token("hall")
        said = "La boîte est ouverte."
        # not shown yet: a screen cannot have anything spoken
        reply = hall.get("/api/speech/messages", params={"text": said, "token": token})
        assert reply.status_code == 404 and reply.json()["detail"] == "message inconnu sur cet écran"
        assert client.post("/api/game/puzzles/mailbox/solve", json={}).status_code == 200
        reply = hall.get("/api/speech/messages", params={"text": said, "token": token})
        assert reply.status_code == 200 and reply.headers["content-type"] == "audio/wav"
        salon = {"text": said, "token": AUTH.screen_token("salon")}
        assert hall.get("/api/speech/messages", params=salon).status_code == 404, "another room's message"
        # the clue is spoken in the short wording the screen shows
        client.post("/api/clues", json={"puzzle": "mailbox", "index": 1})
        clue = screen(client)["game"]["clues"][-1]
        assert screen(client)["say"][clue["text"]]["text"] == "Jour, mois."
        reply = hall.get(f"/api/speech/clues/{clue['id']}?token={token}")
        assert reply.status_code == 200 and reply.headers["x-speech-cache"] == "miss"
        reply = client.get("/api/speech", params={"text": "Jour, mois."})
        assert reply.headers["x-speech-cache"] == "hit", "the short wording was the one spoken"
