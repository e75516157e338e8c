"""Reloading the game file (controller/reload.py, ``POST /api/config/reload``): a bad file
changes nothing, a running game keeps its game, a valid file is taken between sessions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.api.access import route_roles
from controller.api.auth import AuthSettings
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.controller.conftest import GAME, make_game

APARTMENT = "reload_test"
#: no broker: the controller runs without one (paho retries in the background)
NOWHERE = BrokerAddress("127.0.0.1", 9)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def game_path(tmp_path: Path) -> Path:
    return write(tmp_path / "game.yaml", GAME.format(apartment_id=APARTMENT))


@pytest.fixture
def client(tmp_path: Path, game_path: Path) -> Iterator[TestClient]:
    app = create_app(game=make_game(APARTMENT), broker=NOWHERE, db_path=tmp_path / "escape.db",
                     config_path=game_path)
    with TestClient(app, headers={"Content-Type": "application/json"}) as c:
        yield c


def reload(client: TestClient):
    return client.post("/api/config/reload", json={})


def test_an_unchanged_file_is_a_no_op(client: TestClient) -> None:
    reply = reload(client)
    assert reply.status_code == 200 and reply.json()["status"] == "unchanged"


def test_a_bad_file_changes_nothing_and_says_every_error_with_its_line(client: TestClient,
                                                                         game_path: Path) -> None:
    service = client.app.state.service
    assert client.post("/api/game/start", json={"parcours": "primo", "players": 3}).status_code == 200
    before = (service.game, service.engine, service.engine.session_id)
    write(game_path, GAME.format(apartment_id=APARTMENT).replace("code_length: 4", "code_length: four"))
    reply = reload(client)
    assert reply.status_code == 422
    body = reply.json()
    assert "conservé" in body["detail"] and "kept" in body["detail_en"]
    assert [e for e in body["errors"] if e.startswith(f"{game_path}:13:") and "code_length" in e], \
        body["errors"]
    assert (service.game, service.engine, service.engine.session_id) == before
    assert client.get("/api/state").json()["game"]["phase"] == "running"
    assert service.bridge.metrics["config_reload_refused"] == 1


def test_a_valid_change_waits_for_the_end_of_the_session(client: TestClient, game_path: Path) -> None:
    """Given during a game it is kept, not refused, and taken by itself once the session is
    over (the engine idle again): the running game never changes under the players."""
    service = client.app.state.service
    assert client.post("/api/game/start", json={"parcours": "primo", "players": 3}).status_code == 200
    old_game = service.game
    write(game_path, GAME.format(apartment_id=APARTMENT).replace("label: Hall", "label: Hall d'entrée"))
    reply = reload(client)
    assert reply.status_code == 202, reply.text
    assert reply.json()["status"] == "pending" and reply.json()["nodes"] == ["hall"]
    assert service.game is old_game
    state = client.get("/api/state").json()
    assert state["game_file"]["pending"]["hash"] == reply.json()["game"]
    assert state["game"]["phase"] == "running"

    assert client.post("/api/game/stop", json={}).status_code == 200
    service.tick()
    assert service.game is old_game, "a stopped game is still a session (debrief, reset)"
    assert client.post("/api/game/reset", json={}).status_code == 200
    service.tick()
    assert service.game is not old_game, "taken as soon as the session is over"
    state = client.get("/api/state").json()
    assert state["game_file"]["pending"] is None
    assert state["game_file"]["hash"] == reply.json()["game"]
    hall = next(n for n in state["nodes"] if n["id"] == "hall")
    assert hall["label"] == "Hall d'entrée"
    assert service.bridge.metrics["config_reloads"] == 1
    assert reload(client).json()["status"] == "unchanged"
    # and a game runs on the new file
    assert client.post("/api/game/start", json={"parcours": "primo", "players": 3}).status_code == 200


def test_going_back_to_the_running_file_forgets_the_one_waiting(client: TestClient,
                                                               game_path: Path) -> None:
    service = client.app.state.service
    original = game_path.read_text(encoding="utf-8")
    assert client.post("/api/game/start", json={"parcours": "primo", "players": 3}).status_code == 200
    write(game_path, original.replace("label: Hall", "label: Hall d'entrée"))
    assert reload(client).status_code == 202
    write(game_path, original)
    assert reload(client).json()["status"] == "unchanged"
    assert service.pending_game is None
    assert client.get("/api/state").json()["game_file"]["pending"] is None


def test_a_new_apartment_id_needs_a_restart(client: TestClient, game_path: Path) -> None:
    write(game_path, GAME.format(apartment_id="other_flat"))
    reply = reload(client)
    assert reply.status_code == 409 and "redémarrez" in reply.json()["detail"]
    assert client.app.state.service.game.apartment.id == APARTMENT


def test_without_a_game_file_there_is_nothing_to_reload(tmp_path: Path) -> None:
    app = create_app(game=make_game(APARTMENT), broker=NOWHERE, db_path=tmp_path / "escape.db")
    with TestClient(app) as client:
        assert client.post("/api/config/reload", json={}).status_code == 409


def test_only_the_technician_may_reload(tmp_path: Path, game_path: Path) -> None:
    auth = AuthSettings(gm_password="gm-password", tech_password="tech-password", screen_secret="s" * 32)
    app = create_app(game=make_game(APARTMENT), broker=NOWHERE, db_path=tmp_path / "escape.db",
                     auth=auth, config_path=game_path)
    assert route_roles(app)["POST", "/api/config/reload"] == "tech"
    with TestClient(app, base_url="http://testserver") as client:
        assert client.post("/api/config/reload", json={}).status_code == 401
        assert client.post("/api/login", json={"password": "gm-password"}).status_code == 200
        assert client.post("/api/config/reload", json={}).status_code == 403
        client.cookies.clear()
        assert client.post("/api/login", json={"password": "tech-password"}).status_code == 200
        reply = client.post("/api/config/reload", json={})
        assert reply.status_code == 200 and reply.json()["status"] == "unchanged"


def test_every_part_of_the_service_sees_the_reloaded_game(client: TestClient, game_path: Path) -> None:
    """The orders, the outputs, the check, the views and the emergency all read the new file
    (one Context), and what was desired of a prop the file no longer has is forgotten."""
    assert client.post("/api/props/salon/lamp/on", json={}).status_code == 200
    assert client.post("/api/props/hall/box_lock/lock", json={}).status_code == 202   # no node
    service = client.app.state.service
    assert set(service.desired) == {("salon", "lamp"), ("hall", "box_lock")}
    text = GAME.format(apartment_id=APARTMENT)
    for was, now in (("{id: lamp, kind: relay, pin: 23}", "{id: fan, kind: relay, pin: 24}"),
                     ("target: salon.lamp", "target: salon.fan"),
                     ("{id: box_lock, kind: maglock, relay: 17, door: 27, relock_after_restart: true}",
                      "{id: box_light, kind: relay, pin: 17}"),
                     ("{do: unlock, target: hall.box_lock}", '{do: command, target: hall.box_light, action: "on"}')):
        assert was in text
        text = text.replace(was, now)
    write(game_path, text)
    reply = reload(client)
    assert reply.status_code == 200 and reply.json()["status"] == "reloaded", reply.text

    state = client.get("/api/state").json()
    props = {(p["node"], p["id"]) for p in state["props"]}
    assert ("salon", "fan") in props and ("salon", "lamp") not in props
    assert ("hall", "box_light") in props and ("hall", "box_lock") not in props
    checked = {(p["node"], p["prop"]) for p in client.get("/api/game/check").json()["props"]}
    assert checked == props
    assert service.desired == {}, "nothing is desired of props the file no longer has"
    assert client.post("/api/props/salon/fan/on", json={}).status_code == 200
    assert client.post("/api/props/hall/box_light/lock", json={}).status_code == 409, "no longer a lock"
    released = client.post("/api/emergency", json={}).json()
    assert [(e["node"], e["prop"]) for e in released["unconfirmed"]] == [("salon", "door_lock")]


def test_a_part_too_large_for_one_message_is_refused_and_changes_nothing(client: TestClient,
                                                                        game_path: Path) -> None:
    """Each node's part goes in one MQTT message (64 KiB): a file whose part would not fit
    is refused before anything changes, with the node named."""
    service = client.app.state.service
    before = service.game
    long_label = "x" * 70_000
    write(game_path, GAME.format(apartment_id=APARTMENT).replace("label: Hall", f"label: {long_label}", 1))
    reply = reload(client)
    assert reply.status_code == 422, reply.text
    assert any("'hall'" in e and "MQTT" in e for e in reply.json()["errors"]), reply.json()["errors"]
    assert service.game is before


def test_the_nodes_whose_part_changed_are_sent_it_between_sessions(client: TestClient,
                                                                  game_path: Path) -> None:
    service = client.app.state.service
    sent_before = dict(service.distribution.messages)
    write(game_path, GAME.format(apartment_id=APARTMENT).replace("label: Hall", "label: Hall d'entrée"))
    reply = reload(client)
    assert reply.status_code == 200 and reply.json()["status"] == "reloaded"
    assert reply.json()["nodes"] == ["hall"]
    after = service.distribution.messages
    assert after["hall"].hash != sent_before["hall"].hash
    assert all(after[n].hash == m.hash for n, m in sent_before.items() if n != "hall")
    hall = next(n for n in client.get("/api/state").json()["nodes"] if n["id"] == "hall")
    assert hall["game"]["expected"] == after["hall"].hash


def test_an_arabic_translation_or_a_short_wording_sends_no_node_a_part(client: TestClient,
                                                                        game_path: Path) -> None:
    """A node shows no text: a change only the screens use is no new part for any node."""
    service = client.app.state.service
    sent_before = {n: m.hash for n, m in service.distribution.messages.items()}
    text = GAME.format(apartment_id=APARTMENT)
    translated = (text.replace("    label: Hall\n", '    label: {fr: Hall, ar: "الردهة", pt: Entrada}\n')
                  .replace('{text: "Jour puis mois.", cost: 20}',
                           '{text: "Jour puis mois.", cost: 20, short: "Jour, mois.", kids: "Le jour."}'))
    assert translated.count("الردهة") == 1 and translated.count("short:") == 1
    write(game_path, translated)
    reply = reload(client)
    assert reply.status_code == 200 and reply.json()["status"] == "reloaded"
    assert reply.json()["nodes"] == []
    assert service.game.node("hall").label.ar == "الردهة"     # the screens have it
    assert {n: m.hash for n, m in service.distribution.messages.items()} == sent_before
