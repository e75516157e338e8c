"""Every API error is French first, with its English beside it: ``{"detail", "detail_en"}``.

Through HTTP (TestClient on the whole app, access control on): the access control's 401, 403,
415 and 429, the router's 404 and 405, the game's 404 and 409, FastAPI's 422 (one French
sentence per wrong field, naming it), a crash's 500. Before, 401 said "login required",
403 "technician only", 415 and every 422 were English, an unknown route "Not Found", an
unknown puzzle « énigme inconnue 'nope » and a clue in idle « impossible de envoyer … ».
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config.game import Game
from controller.api.auth import AuthSettings
from controller.api.limiter import MAX_FAILURES
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle

GM, TECH = "gm-password", "tech-password"
AUTH = AuthSettings(gm_password=GM, tech_password=TECH, screen_secret="s" * 32)
CONTROLLER = Path(__file__).resolve().parents[2] / "controller"


@pytest.fixture
def app(embedded_broker: BrokerHandle, tmp_path: Path, game: Game) -> Any:
    return create_app(game=game, broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                      db_path=tmp_path / "escape.db", auth=AUTH)


@pytest.fixture
def anonymous(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def gm(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/api/login", json={"password": GM}).status_code == 200
        yield client


def refusal(reply: Any, status: int) -> tuple[str, str]:
    """The French and English texts of an error answer, checked for the common shape."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    fr, en = body["detail"], body["detail_en"]
    assert isinstance(fr, str) and isinstance(en, str) and fr and en
    assert fr != en, f"the French text is not a translation: {fr!r}"
    return fr, en


# -- the access control: 401, 403, 415, 429 ---------------------------------------------
def test_no_credentials_is_401_in_french(anonymous: TestClient) -> None:
    fr, en = refusal(anonymous.get("/api/state"), 401)
    assert fr == "connexion requise : connectez-vous sur /login"
    assert en == "login required: log in on /login"


def test_wrong_password_is_401_in_french(anonymous: TestClient) -> None:
    assert refusal(anonymous.post("/api/login", json={"password": "nope"}), 401) == (
        "mot de passe incorrect", "wrong password")


def test_game_master_on_a_technician_route_is_403_in_french(gm: TestClient) -> None:
    fr, en = refusal(gm.get("/api/tech/wiring/hall"), 403)
    assert (fr, en) == ("réservé au technicien", "technician only")


def test_room_screen_posting_is_403_in_french(anonymous: TestClient) -> None:
    token = AUTH.screen_token("hall")
    fr, _ = refusal(anonymous.post(f"/api/emergency?token={token}", json={}), 403)
    assert fr == "un écran de salle peut seulement confirmer l'affichage d'un indice et dire ce qu'il joue"


def test_a_post_without_json_is_415_in_french(gm: TestClient) -> None:
    fr, en = refusal(gm.post("/api/emergency", content=b"x",
                             headers={"Content-Type": "text/plain"}), 415)
    assert fr.startswith("une requête qui change quelque chose doit être envoyée en JSON")
    assert "Content-Type: application/json" in en


def test_too_many_wrong_passwords_is_429_in_french(anonymous: TestClient) -> None:
    for _ in range(MAX_FAILURES):
        anonymous.post("/api/login", json={"password": "guess"})
    reply = anonymous.post("/api/login", json={"password": "guess"})
    fr, en = refusal(reply, 429)
    assert fr.startswith("trop d'essais incorrects : réessayez dans ") and en.startswith("too many")
    assert int(reply.headers["Retry-After"]) > 0


# -- the router: 404, 405 ------------------------------------------------------------------
def test_an_unknown_route_is_404_in_french(gm: TestClient) -> None:
    assert refusal(gm.get("/api/nope"), 404) == ("adresse inconnue : /api/nope", "not found: /api/nope")


def test_a_wrong_method_is_405_in_french(gm: TestClient) -> None:
    fr, en = refusal(gm.get("/api/emergency"), 405)
    assert fr == "méthode non permise : GET sur /api/emergency"
    assert en == "method not allowed: GET on /api/emergency"


# -- the game: 404, 409 --------------------------------------------------------------------
def test_an_unknown_puzzle_is_named_whole(gm: TestClient) -> None:
    fr, en = refusal(gm.post("/api/game/puzzles/nope/solve", json={}), 404)
    assert (fr, en) == ("énigme inconnue 'nope'", "unknown puzzle 'nope'")


def test_a_clue_before_the_game_says_d_envoyer(gm: TestClient) -> None:
    fr, en = refusal(gm.post("/api/clues", json={"text": "trop tôt"}), 409)
    assert fr == "impossible d'envoyer un indice : la partie est « En attente »"
    assert en == "cannot send a clue: the game is 'Waiting'"


def test_an_unknown_prop_is_404_and_a_wrong_action_422_in_french(gm: TestClient) -> None:
    assert refusal(gm.post("/api/props/salon/nope/unlock", json={}), 404) == (
        "accessoire inconnu salon.nope", "unknown prop salon.nope")
    fr, en = refusal(gm.post("/api/props/salon/door_lock/explode", json={}), 422)
    assert fr.startswith("action inconnue 'explode' : lock, unlock") and en.startswith("unknown action")


# -- FastAPI's request validation: 422 -----------------------------------------------------
INVALID = [
    ("/api/game/start", {"players": 2, "colour": "red"}, "colour : champ inconnu"),
    ("/api/game/start", {"players": "beaucoup"}, "players : doit être un nombre entier"),
    ("/api/game/start", {"players": 50}, "players : doit valoir au plus 12"),
    ("/api/game/start", {"parcours": "touriste"}, "parcours : doit être 'primo' ou 'locataire'"),
    ("/api/game/start", {"players": 2, "who": ""}, "who : au moins 1 caractère(s)"),
    ("/api/game/time", {}, "seconds : champ obligatoire manquant"),
    ("/api/game/time", {"seconds": 0}, "seconds : le nombre de secondes ne peut pas être 0"),
    ("/api/clues", {"text": "x" * 501}, "text : au plus 500 caractères"),
]


@pytest.mark.parametrize(("url", "body", "french"), INVALID)
def test_each_wrong_field_is_named_in_french(gm: TestClient, url: str, body: dict[str, Any],
                                             french: str) -> None:
    reply = gm.post(url, json=body)
    fr, en = refusal(reply, 422)
    assert fr == f"requête invalide : {french}"
    assert en.startswith("invalid request: ")
    [error] = reply.json()["errors"]
    assert error["message"] == french and error["field"] == french.split(" : ", maxsplit=1)[0]


def test_several_wrong_fields_are_all_named(gm: TestClient) -> None:
    reply = gm.post("/api/game/start", json={"players": 0, "parcours": "x", "colour": 1})
    fr, _ = refusal(reply, 422)
    assert [e["field"] for e in reply.json()["errors"]] == ["parcours", "players", "colour"]
    assert fr.count(" ; ") == 2


def test_a_body_that_is_not_json_is_422_in_french(gm: TestClient) -> None:
    reply = gm.post("/api/game/start", content=b"{players: 3",
                    headers={"Content-Type": "application/json"})
    fr, en = refusal(reply, 422)
    assert fr.startswith("requête invalide : le corps de la requête n'est pas du JSON valide")
    assert en.startswith("invalid request: the request body is not valid JSON")


@pytest.mark.parametrize(("query", "french"), [
    ("/api/history/stats?from=hier", "from : doit être une date (AAAA-MM-JJ)"),
    ("/api/history/sessions?limit=0", "limit : doit valoir au moins 1"),
])
def test_a_wrong_query_parameter_is_named_in_french(gm: TestClient, query: str, french: str) -> None:
    assert refusal(gm.get(query), 422)[0] == f"requête invalide : {french}"


def test_a_date_range_backwards_is_422_in_french(gm: TestClient) -> None:
    fr, _ = refusal(gm.get("/api/history/stats?from=2025-02-01&to=2025-01-01"), 422)
    assert fr == "la date de début est après la date de fin"


# -- a bug: 500 --------------------------------------------------------------------------
def test_a_crash_is_500_in_french_not_a_bare_text(gm: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    service = gm.app.state.service  # type: ignore[attr-defined]

    def broken(*_args: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(service.views, "view", broken)
    fr, en = refusal(gm.get("/api/state"), 500)
    assert fr.startswith("erreur interne du contrôleur") and "boom" not in fr + en


# -- the source: every refusal says both ----------------------------------------------------
#: exceptions whose message people read (controller/core/errors.py, controller/api/errors.py)
BILINGUAL = {"EngineError", "NotFoundError", "InvalidValue", "NodeUnavailable", "NodeTimeout",
             "SessionNotEnded", "ReloadRefused", "ApiError"}


def _called(path: Path) -> Iterator[tuple[int, str, ast.Call]]:
    """(line, name, call) of every call in *path*: ``f(…)`` and ``x.f(…)`` are named ``f``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            yield node.lineno, func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""), node


def test_every_error_people_read_is_raised_with_its_english() -> None:
    sources = [CONTROLLER / "engine.py", CONTROLLER / "service.py", CONTROLLER / "store.py",
               CONTROLLER / "reload.py", *sorted((CONTROLLER / "api").rglob("*.py"))]
    missing, raw = [], []
    for source in sources:
        for line, name, call in _called(source):
            where = f"{source.relative_to(CONTROLLER.parent)}:{line}"
            if name in BILINGUAL and not any(k.arg == "en" for k in call.keywords):
                missing.append(where)
            if name == "HTTPException":
                raw.append(where)
    assert missing == [], f"raise these with en=…: {missing}"
    assert raw == [], f"use controller.api.errors.ApiError (French and English): {raw}"
