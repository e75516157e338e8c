"""Roles over the real app (embedded broker, no nodes): the audit log records who is logged
in, whatever the body says; a room screen gets its screen view only, over REST and the
WebSocket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config.game import Game
from controller.api.auth import AuthSettings
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.support.livefeed import LiveFeed

AUTH = AuthSettings(gm_password="gm-password", tech_password="tech-password",
                    screen_secret="roles-screen-secret")
STAFF_ONLY = {"props", "check", "mqtt", "resumed", "demo"}
GAME_STAFF_ONLY = {"audit", "log", "puzzles", "budget_history", "players", "alert", "session"}


@pytest.fixture
def app(embedded_broker: BrokerHandle, tmp_path: Path, game: Game) -> Iterator[TestClient]:
    application = create_app(game=game, auth=AUTH, db_path=tmp_path / "escape.db",
                             broker=BrokerAddress(embedded_broker.host, embedded_broker.port))
    with TestClient(application, headers={"Content-Type": "application/json"}) as client:
        yield client


def as_role(app: TestClient, password: str) -> TestClient:
    """Another client on the same app, logged in with *password*."""
    client = TestClient(app.app, headers={"Content-Type": "application/json"})
    assert client.post("/api/login", json={"password": password}).status_code == 200
    return client


def audit(client: TestClient) -> list[dict]:
    return client.get("/api/state").json()["game"]["audit"]


def test_the_audit_log_records_the_logged_in_role_not_the_bodys_who(app: TestClient) -> None:
    gm, tech = as_role(app, "gm-password"), as_role(app, "tech-password")
    assert gm.post("/api/game/start", json={"parcours": "primo", "players": 3,
                                            "who": "technicien"}).status_code == 200
    assert tech.post("/api/game/time", json={"seconds": 60, "who": "maître du jeu"}).status_code == 200
    assert gm.post("/api/props/salon/lamp/on", json={"who": "Mallory"}).status_code == 200
    assert tech.post("/api/clues", json={"text": "Sous le tapis", "who": "game master"}).status_code == 200
    assert gm.post("/api/game/puzzles/mailbox/solve", json={}).status_code == 200
    assert tech.post("/api/game/pause").status_code == 200   # no body at all
    assert gm.post("/api/emergency", json={"who": "technician"}).status_code == 202   # no node here
    got = [(a["action"], a["who"]) for a in audit(gm)]
    assert got[-7:] == [("start", "game master"), ("time", "technician"), ("prop", "game master"),
                        ("clue", "technician"), ("force_solve", "game master"),
                        ("pause", "technician"), ("emergency", "game master")]


def test_a_room_screen_reads_its_screen_view_only(app: TestClient) -> None:
    gm = as_role(app, "gm-password")
    assert gm.post("/api/game/start", json={"parcours": "primo", "players": 3}).status_code == 200
    gm.post("/api/clues", json={"text": "Pour le hall", "room": "hall"})
    gm.post("/api/clues", json={"text": "Pour le salon", "room": "salon"})
    gm.post("/api/clues", json={"text": "Pour tous", "room": "all"})
    token = AUTH.screen_token("hall")
    view = app.get(f"/api/state?token={token}").json()
    assert view["screen"] is True and view["room"] == "hall"
    assert not STAFF_ONLY & view.keys()
    assert not GAME_STAFF_ONLY & view["game"].keys()
    assert view["game"]["phase"] == "running" and view["game"]["budget"] == 1000
    assert [c["text"] for c in view["game"]["clues"]] == ["Pour le hall", "Pour tous"]
    assert set(view["game"]["clues"][0]) == {"id", "text", "text_en", "room", "status", "done", "icon", "voice_url"}
    assert view["nodes"] == [{"id": "hall", "label": "Hall", "label_en": None}]
    staff = gm.get("/api/state").json()
    assert staff.keys() >= STAFF_ONLY and "audit" in staff["game"]


def test_a_screen_websocket_never_receives_props_or_the_audit_log(app: TestClient) -> None:
    gm = as_role(app, "gm-password")
    token = AUTH.screen_token("salon")
    with app.websocket_connect(f"/ws?token={token}") as screen, gm.websocket_connect("/ws") as staff:
        on_screen, on_staff = LiveFeed(), LiveFeed()
        first = on_screen.receive(screen)
        assert json.loads(on_screen.frames[0])["type"] == "snapshot" and first["screen"] is True
        assert on_staff.receive(staff).keys() >= STAFF_ONLY
        assert gm.post("/api/game/start", json={"parcours": "primo", "players": 3}).status_code == 200
        assert gm.post("/api/clues", json={"text": "Cherchez la sonnette", "room": "salon"}).status_code == 200
        while True:   # pushes until the clue shows on the screen
            data = on_screen.receive(screen)
            assert not STAFF_ONLY & data.keys()
            assert not GAME_STAFF_ONLY & data["game"].keys()
            if any(c["text"] == "Cherchez la sonnette" for c in data["game"]["clues"]):
                break
        for text in on_screen.frames:
            assert '"audit"' not in text and '"props"' not in text
        while True:
            data = on_staff.receive(staff)
            if any(c["text"] == "Cherchez la sonnette" for c in data["game"]["clues"]):
                assert data["game"]["audit"] and data["props"]
                break


def test_one_push_builds_one_text_per_audience(app: TestClient, monkeypatch) -> None:
    service = app.app.state.service
    calls: list[str] = []
    views = service.views
    snapshot, screen_view = views.snapshot, views.screen_view
    monkeypatch.setattr(views, "snapshot", lambda: calls.append("staff") or snapshot())
    monkeypatch.setattr(views, "screen_view", lambda room: calls.append(room) or screen_view(room))
    gm = as_role(app, "gm-password")
    hall = AUTH.screen_token("hall")
    with app.websocket_connect(f"/ws?token={hall}") as s1, app.websocket_connect(f"/ws?token={hall}") as s2, \
            gm.websocket_connect("/ws") as g1, gm.websocket_connect("/ws") as g2:
        for ws in (s1, s2, g1, g2):
            ws.receive_text()
        calls.clear()
        app.portal.call(service.changed)
        for ws in (s1, s2, g1, g2):
            ws.receive_text()
        assert sorted(calls) == ["hall", "staff"]
