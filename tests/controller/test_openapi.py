"""Every answer of the API is a declared model, and the answers hold to their models.

``/openapi.json`` is a valid OpenAPI document (FastAPI's own model of the specification,
every ``$ref`` resolved) in which every route says what its success answer holds: a
model with its fields, never an untyped object. The models forbid undeclared fields, so
a route (or the WebSocket push, or ``game/state``) that answers a field its model does not
know fails here instead of leaving the schema silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.openapi.models import OpenAPI
from fastapi.testclient import TestClient

from config.game import Game
from controller.api import models
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.controller.conftest import GAME, FakeClocks


@pytest.fixture
def client(embedded_broker: BrokerHandle, tmp_path: Path, game: Game,
           clocks: FakeClocks) -> Iterator[TestClient]:
    path = tmp_path / "game.yaml"
    path.write_text(GAME.format(apartment_id=game.apartment.id), encoding="utf-8")
    app = create_app(game=game, broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                     db_path=tmp_path / "escape.db", clock=clocks.monotonic, wall=clocks.wall,
                     config_path=path)
    with TestClient(app) as c:
        yield c


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def typed(schema: dict[str, Any], spec: dict[str, Any]) -> bool:
    """*schema* says what it holds: a closed model, a list or union of such, a scalar, or a
    mapping of typed values — not ``{}`` nor an object of anything."""
    if "$ref" in schema:
        target = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        return target.get("type") == "object" and bool(target.get("properties")) \
            and target.get("additionalProperties") is False
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return all(typed(s, spec) or s.get("type") == "null" for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return typed(schema.get("items", {}), spec)
    if kind == "object":
        extra = schema.get("additionalProperties")
        return isinstance(extra, dict) and typed(extra, spec)
    return kind in ("string", "integer", "number", "boolean")


def test_openapi_is_valid_and_every_route_says_what_it_answers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    OpenAPI.model_validate(spec)   # the structure of an OpenAPI 3.1 document
    names = set(spec["components"]["schemas"])
    assert {r.rsplit("/", 1)[1] for r in refs(spec)} <= names, "every $ref resolves"
    untyped = []
    operations = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            operations += 1
            ok = [code for code in op["responses"] if code.startswith("2")]
            assert ok, f"{method} {path}: no success answer"
            for code in ok:
                content = op["responses"][code].get("content", {})
                if not content or not all(typed(c.get("schema", {}), spec) for c in content.values()):
                    untyped.append(f"{method.upper()} {path} {code}")
    assert operations >= 38, sorted(spec["paths"])
    assert untyped == [], "answers the schema does not describe"


def test_every_answer_of_a_whole_game_holds_to_its_model(client: TestClient, clocks: FakeClocks) -> None:
    """A game from check to history through every JSON route: each answers 2xx, so each
    answer validated against its model (undeclared fields forbidden)."""

    def ok(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = client.request(method, url, json={} if body is None and method != "GET" else body)
        assert reply.status_code in (200, 202), f"{method} {url}: {reply.status_code} {reply.text}"
        return reply.json()

    for url in ("/api/state", "/api/game/check", "/api/layout", "/api/clues", "/api/me",
                "/api/tech/enrolled", "/api/tech/screens", "/api/history/stats",
                "/api/history/sessions"):
        ok("GET", url)
    assert ok("GET", "/api/health")["status"] == "ok"
    ok("POST", "/api/game/check", {"parcours": "primo", "players": 3})
    ok("POST", "/api/game/briefing", {"override_reason": "pas de nœud en test"})
    game = ok("POST", "/api/game/start", {"parcours": "primo", "players": 3})
    assert game["phase"] == "running"
    sent = ok("POST", "/api/clues", {"puzzle": "mailbox", "index": 1})
    ok("POST", f"/api/clues/{sent['clue']['id']}/shown")
    ok("POST", "/api/clues", {"text": "Cherchez la sonnette", "room": "all", "counts": False})
    ok("POST", "/api/game/time", {"seconds": 120})
    clocks.advance(60)
    ok("POST", "/api/game/puzzles/mailbox/solve")
    ok("POST", "/api/game/pause")
    ok("POST", "/api/game/resume")
    assert ok("POST", "/api/props/salon/lamp/on")["command_id"]
    pending = ok("POST", "/api/props/hall/box_lock/lock")
    assert pending["confirmed"] is False and pending["reason"] == "offline"
    models.Snapshot.model_validate(ok("GET", "/api/state"))
    released = ok("POST", "/api/emergency")
    assert released["all_confirmed"] is False and len(released["unconfirmed"]) == 2
    ok("POST", "/api/emergency/end")
    ok("POST", "/api/game/stop")
    debrief = ok("GET", "/api/game/debrief")
    ok("POST", "/api/game/debrief")
    session = debrief["session"]["id"]
    ok("PUT", f"/api/history/sessions/{session}/evaluation", {"rating": 4, "learned": ["budget"]})
    for url in (f"/api/history/sessions/{session}", f"/api/history/sessions/{session}/debrief",
                f"/api/history/sessions/{session}/events", "/api/history/sessions",
                "/api/history/stats"):
        ok("GET", url)
    ok("POST", "/api/game/reset")
    assert ok("POST", "/api/config/reload")["status"] == "unchanged"
    ok("POST", "/api/logout")


def test_what_is_pushed_and_published_holds_to_its_model(client: TestClient) -> None:
    service = client.app.state.service  # type: ignore[attr-defined]
    client.post("/api/game/start", json={"parcours": "primo", "players": 3})
    client.post("/api/clues", json={"puzzle": "mailbox", "index": 0, "room": "hall"})
    assert client.post("/api/game/puzzles/bell/skip", json={}).status_code == 200   # a budget line
    with client.websocket_connect("/ws") as ws:
        frame = json.loads(ws.receive_text())
    snapshot = models.Snapshot.model_validate(frame["data"])
    assert snapshot.game.clues and snapshot.game.budget_history
    screen = models.ScreenView.model_validate(service.views.screen_view("hall"))
    assert screen.game.clues[0].text == "La date du bail."
    state = models.GameStateMessage.model_validate(service.views.game_state())
    assert state.clues and state.clue_count == 1


def test_a_model_refuses_a_field_it_does_not_declare() -> None:
    with pytest.raises(ValueError, match="extra"):
        models.Message.model_validate({"text": "x", "colour": "red"})
