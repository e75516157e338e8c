"""The HTTP API of the game engine, through TestClient, over the embedded broker, no nodes.

Bad requests get a 4xx with a clear message and change nothing. Time is a fake clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient

from config.game import Game
from controller.main import create_app
from protocol.contract import Topics
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.controller.conftest import FakeClocks
from tests.integration.conftest import wait_for

WHO = {"who": "Awa"}


@pytest.fixture
def controller(embedded_broker: BrokerHandle, tmp_path: Path, game: Game,
               clocks: FakeClocks) -> Callable[[], TestClient]:
    """A context manager that runs the controller on the test's database (restartable)."""

    @contextmanager
    def run() -> Iterator[TestClient]:
        app = create_app(game=game, broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                         db_path=tmp_path / "escape.db", clock=clocks.monotonic, wall=clocks.wall)
        with TestClient(app) as client:
            yield client

    return run


@pytest.fixture
def client(controller) -> Iterator[TestClient]:
    with controller() as c:
        yield c


def post(client: TestClient, url: str, body: dict | None = None):
    return client.post(url, json=body or {})


def game_state(client: TestClient) -> dict:
    return client.get("/api/state").json()["game"]


def start(client: TestClient, **body) -> dict:
    reply = post(client, "/api/game/start", {"parcours": "primo", "players": 4, **body})
    assert reply.status_code == 200, reply.text
    return reply.json()


def assert_refused(reply, status: int, words: str = "") -> None:
    assert reply.status_code == status, f"{reply.request.method} {reply.request.url}: {reply.text}"
    detail = reply.json()["detail"]
    assert detail, "a refusal says why"
    assert isinstance(detail, str) and reply.json()["detail_en"], "in French, and in English beside it"
    if words:
        assert words in json.dumps(detail, ensure_ascii=False)


# -- lifecycle and pre-game check -----------------------------------------------------------
def test_check_then_briefing_needs_ready_props_or_a_recorded_reason(client: TestClient):
    report = post(client, "/api/game/check", {"parcours": "locataire", "players": 3}).json()
    assert report["phase"] == "check" and not report["ready"]
    statuses = {(p["node"], p["prop"]): p for p in report["props"]}
    assert statuses[("salon", "door_lock")]["status"] == "waiting_node"      # no node online
    assert statuses[("salon", "door_lock")]["status_label"] == "en attente du nœud"
    desired = {(p["node"], p["id"]): p["desired"] for p in client.get("/api/state").json()["props"]}
    assert desired[("salon", "door_lock")]["action"] == "lock", "the check sends the start state"
    assert desired[("salon", "lamp")]["action"] == "off"

    assert_refused(post(client, "/api/game/briefing"), 409, "pas prêt")
    assert game_state(client)["phase"] == "check"
    reply = post(client, "/api/game/briefing", {"override_reason": "nœuds en maintenance", **WHO})
    assert reply.status_code == 200 and reply.json()["phase"] == "briefing"
    assert reply.json()["check_override"]["reason"] == "nœuds en maintenance"
    audit = reply.json()["audit"]
    assert [a["action"] for a in audit] == ["check", "check_override", "briefing"]
    assert audit[1]["who"] == "Awa"
    assert post(client, "/api/game/start").json()["phase"] == "running"
    assert game_state(client)["parcours"] == "locataire", "start keeps the check's group"


def test_check_again_keeps_the_group_and_stop_cancels_it(client: TestClient):
    post(client, "/api/game/check", {"parcours": "locataire", "players": 3})
    assert post(client, "/api/game/check", {"players": 5}).status_code == 200
    state = game_state(client)
    assert (state["parcours"], state["players"]) == ("locataire", 5)
    assert post(client, "/api/game/stop").json()["phase"] == "idle"
    desired = {p["id"]: p["desired"]["action"] for p in client.get("/api/state").json()["props"]
               if p["desired"]}
    assert desired["door_lock"] == desired["box_lock"] == "unlock"


def test_start_from_idle_still_works_and_records_the_direct_start(client: TestClient):
    state = start(client)
    assert state["phase"] == "running" and state["budget"] == 1000
    assert state["check_override"]["reason"] == "démarrage direct, sans vérification préalable"


def test_pause_resume_time_presets(client: TestClient, clocks: FakeClocks):
    start(client)
    clocks.advance(100)
    assert post(client, "/api/game/pause", WHO).json()["phase"] == "paused"
    clocks.advance(1000)
    assert post(client, "/api/game/resume").json()["phase"] == "running"
    state = post(client, "/api/game/time", {"seconds": 300, **WHO}).json()
    assert state["remaining_s"] == pytest.approx(3600 - 100 + 300)
    state = post(client, "/api/game/time", {"seconds": -120}).json()
    assert state["duration_s"] == 3600 + 180
    assert [(a["action"], a["who"]) for a in state["audit"][-4:]] == [
        ("pause", "Awa"), ("resume", "game master"), ("time", "Awa"), ("time", "game master")]


def test_time_up_loses(client: TestClient, clocks: FakeClocks):
    start(client)
    clocks.advance(3601)
    wait_for(lambda: game_state(client)["phase"] == "lost", what="the ticker to end the game")
    assert game_state(client)["result"] == "lost"
    assert post(client, "/api/game/debrief").json()["phase"] == "debrief"
    assert post(client, "/api/game/reset").json()["phase"] == "idle"


BAD_IN_IDLE = [
    ("/api/game/stop", None, 409, "En attente"),
    ("/api/game/pause", None, 409, "mettre en pause"),
    ("/api/game/briefing", None, 409, "passer au briefing"),
    ("/api/game/debrief", None, 409, ""),
    ("/api/game/time", {"seconds": 60}, 409, "changer le temps"),
    ("/api/game/time", {"seconds": 0}, 422, "ne peut pas être 0"),
    ("/api/game/time", {"seconds": 99_999}, 422, ""),
    ("/api/game/time", {}, 422, "seconds"),
    ("/api/game/check", {"players": 50}, 422, ""),
    ("/api/game/check", {"parcours": "touriste"}, 422, ""),
    ("/api/game/start", {"players": 2, "colour": "red"}, 422, "colour"),
    ("/api/game/start", {"players": 2, "who": ""}, 422, "who"),
    ("/api/game/puzzles/mailbox/solve", None, 409, "résoudre"),
    ("/api/game/puzzles/mailbox/explode", None, 422, ""),
    ("/api/clues", {"text": "trop tôt"}, 409, "indice"),
    ("/api/clues/abc/shown", None, 404, "indice inconnu"),
    ("/api/props/salon/nope/unlock", None, 404, "accessoire inconnu"),
    ("/api/props/salon/bell/unlock", None, 409, "pas une serrure"),
    ("/api/props/salon/door_lock/explode", None, 422, "action inconnue"),
]


def test_bad_requests_in_idle_are_refused_and_change_nothing(client: TestClient):
    before = client.get("/api/state").json()
    for url, body, status, words in BAD_IN_IDLE:
        assert_refused(post(client, url, body), status, words)
    after = client.get("/api/state").json()
    assert after["game"]["phase"] == "idle" and after["game"]["session"] is None
    assert after["game"]["audit"] == []
    assert [p["desired"] for p in after["props"]] == [p["desired"] for p in before["props"]]
    assert client.get("/api/history/sessions").json()["sessions"] == []


def test_too_many_players_for_the_apartment_is_a_conflict(client: TestClient):
    assert_refused(post(client, "/api/game/start", {"players": 8}), 409, "de 1 à 6 joueurs")
    assert game_state(client)["phase"] == "idle"


# -- clues ----------------------------------------------------------------------------------
def retained_game_state(broker: BrokerHandle, game: Game, predicate: Callable[[dict], bool]) -> dict:
    """The first ``game/state`` (retained or live) that satisfies *predicate*."""
    found: list[dict] = []
    done = threading.Event()

    def on_message(_c, _u, message):
        payload = json.loads(message.payload)
        if predicate(payload):
            found.append(payload)
            done.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = on_message
    sub.connect(broker.host, broker.port)
    sub.subscribe(Topics(game.apartment.id).game_state, qos=1)
    sub.loop_start()
    try:
        assert done.wait(5), "no matching game/state"
    finally:
        sub.loop_stop()
        sub.disconnect()
    return found[0]


def test_clue_sent_published_and_acknowledged_by_the_screen(client: TestClient, game: Game,
                                                            embedded_broker: BrokerHandle):
    start(client)
    reply = post(client, "/api/clues", {"puzzle": "mailbox", "index": 1, **WHO})
    assert reply.status_code == 200, reply.text
    clue = reply.json()["clue"]
    assert (clue["text"], clue["room"], clue["status"], clue["cost"]) == ("Jour puis mois.", "hall", "sent", 20)
    assert reply.json()["budget"] == 980 and reply.json()["clue_count"] == 1

    published = retained_game_state(embedded_broker, game,
                                    lambda s: any(c["id"] == clue["id"] for c in s.get("clues", [])))
    assert published["clues"][-1] == {"id": clue["id"], "text": "Jour puis mois.", "text_en": None,
                                      "room": "hall", "status": "sent"}
    assert post(client, f"/api/clues/{clue['id']}/shown").json()["clue"]["status"] == "shown"
    state = game_state(client)
    assert state["clues"][0]["status"] == "shown" and state["clue_count"] == 1
    retained_game_state(embedded_broker, game, lambda s: s.get("clues") and s["clues"][-1]["status"] == "shown")

    free = post(client, "/api/clues", {"text": "Regardez partout", "room": "all", "counts": False}).json()
    assert free["clue"]["room"] is None and free["clue_count"] == 1
    catalogue = client.get("/api/clues").json()
    assert catalogue["catalogue"][0]["clues"][1]["sent"] == 1
    assert len(catalogue["sent"]) == 2


BAD_CLUES = [
    ({}, 409),
    ({"puzzle": "mailbox"}, 409),
    ({"puzzle": "mailbox", "index": 0, "text": "les deux"}, 409),
    ({"puzzle": "nope", "index": 0}, 404),
    ({"puzzle": "mailbox", "index": 9}, 404),
    ({"text": "x", "room": "garage"}, 404),
    ({"text": "x" * 501}, 422),
    ({"text": "x", "cost": -5}, 422),
    ({"text": "x", "counts": "maybe"}, 422),
]


def test_bad_clues_are_refused_and_change_nothing(client: TestClient):
    start(client)
    audit = game_state(client)["audit"]
    for body, status in BAD_CLUES:
        assert_refused(post(client, "/api/clues", body), status)
    state = game_state(client)
    assert state["clues"] == [] and state["budget"] == 1000 and state["audit"] == audit


# -- overrides ------------------------------------------------------------------------------
def test_overrides_are_in_the_audit_log_with_who(client: TestClient):
    start(client)
    post(client, "/api/game/puzzles/final/skip", WHO)
    state = game_state(client)
    assert [p["status"] for p in state["puzzles"]] == ["solved", "solved", "available", "available"]
    post(client, "/api/game/puzzles/bell/reset", {"who": "Léo"})
    assert post(client, "/api/props/salon/lamp/on", {"who": "Léo"}).status_code == 200
    # no node runs here: the lock is sent, never confirmed (202, pending)
    locked = post(client, "/api/props/salon/door_lock/lock", WHO)
    assert (locked.status_code, locked.json()["confirmed"]) == (202, False)
    post(client, "/api/emergency", {"who": "Awa"})
    audit = game_state(client)["audit"]
    tail = [(a["action"], a["who"], a["target"]) for a in audit[-6:]]
    assert tail == [("skip_to", "Awa", "final"), ("reset_puzzle", "Léo", "bell"),
                    ("prop", "Léo", "salon.lamp"), ("prop", "Awa", "salon.door_lock"),
                    ("pause", "Awa", None), ("emergency", "Awa", None)]
    assert all(a["at"] and a["session"] == game_state(client)["session"] for a in audit)
    assert_refused(post(client, "/api/game/puzzles/nope/solve"), 404, "énigme inconnue")


def test_emergency_without_a_body_still_works(client: TestClient):
    start(client)
    reply = client.post("/api/emergency", json={})
    # accepted (202), but no node runs here: nothing is confirmed open, and it says so
    assert reply.status_code == 202
    assert {(e["node"], e["prop"]) for e in reply.json()["unconfirmed"]} == {
        ("hall", "box_lock"), ("salon", "door_lock")}
    assert reply.json()["confirmed"] == []
    assert reply.json()["message"].startswith("AUCUNE ouverture n'est confirmée")
    assert game_state(client)["phase"] == "paused"


def test_inactivity_alert_in_the_snapshot(client: TestClient, clocks: FakeClocks):
    start(client)
    assert game_state(client)["alert"] is None
    clocks.advance(3 * 60)
    assert game_state(client)["alert"] == "warning"
    clocks.advance(2 * 60)
    assert game_state(client)["alert"] == "alert"
    post(client, "/api/game/pause")
    assert game_state(client)["alert"] is None


# -- persistence and history ------------------------------------------------------------------
def test_restarted_controller_resumes_the_game(controller, clocks: FakeClocks):
    with controller() as client:
        session = start(client, players=5)["session"]
        post(client, "/api/game/puzzles/mailbox/solve")
        post(client, "/api/clues", {"puzzle": "bell", "text": "Sonnez"})
        clocks.advance(600)
    clocks.advance(30)     # the controller is away for 30 s
    with controller() as client:
        snap = client.get("/api/state").json()
        state = snap["game"]
        assert (state["session"], state["phase"], state["players"]) == (session, "running", 5)
        assert state["remaining_s"] == pytest.approx(3600 - 630)
        assert state["puzzles"][0]["status"] == "solved" and state["budget"] == 900
        assert state["clue_count"] == 1
        assert snap["resumed"] == {"session": session, "clean": True, "phase": "running"}
        assert state["audit"][-1]["action"] == "resume"
        desired = {p["id"]: p["desired"] for p in snap["props"] if p["desired"]}
        # the clean stop opened the locks: the box may relock itself, the exit door waits
        assert desired["box_lock"]["action"] == "unlock"       # solved: it stays open
        assert desired["door_lock"] == {**desired["door_lock"], "action": "unlock", "relock_pending": True}


def test_history_after_a_game(client: TestClient, clocks: FakeClocks):
    session = start(client, players=3)["session"]
    clocks.advance(1200)
    post(client, "/api/game/puzzles/final/skip")
    post(client, "/api/game/puzzles/final/solve")
    assert game_state(client)["phase"] == "won"
    rows = client.get("/api/history/sessions").json()["sessions"]
    assert [(r["id"], r["result"], r["players"]) for r in rows] == [(session, "won", 3)]
    stats = client.get("/api/history/stats").json()
    assert (stats["sessions"], stats["participants"], stats["success_rate"]) == (1, 3, 1.0)
    reply = client.get("/api/history/sessions.csv")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
    assert session in reply.text and "gagné" in reply.text
    assert "attachment" in reply.headers["content-disposition"]
    assert reply.text.count(session) == 1
    assert client.get("/api/history/puzzles.csv").text.count(session) == 4
    detail = client.get(f"/api/history/sessions/{session}").json()
    assert [a["action"] for a in detail["audit"]][-2:] == ["skip_to", "force_solve"]
    log = client.get(f"/api/history/sessions/{session}/events").json()["events"]
    assert any(e["kind"] == "solved" and e["text"].startswith("final") for e in log)
    today = detail["date"]
    assert client.get(f"/api/history/stats?from={today}&to={today}").json()["sessions"] == 1
    assert client.get("/api/history/stats?from=2001-01-01&to=2001-12-31").json()["sessions"] == 0


BAD_HISTORY = [
    ("/api/history/sessions/nope", 404),
    ("/api/history/sessions/nope/events", 404),
    ("/api/history/stats?from=hier", 422),
    ("/api/history/stats?from=2025-02-01&to=2025-01-01", 422),
    ("/api/history/sessions?limit=0", 422),
    ("/api/history/sessions.csv?sep=|", 422),
    ("/api/history/sessions?parcours=touriste", 422),
]


def test_bad_history_queries(client: TestClient):
    for url, status in BAD_HISTORY:
        assert_refused(client.get(url), status)
