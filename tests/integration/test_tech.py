"""The technician's requests end to end: controller HTTP → MQTT ``tech`` → simulated node
(MockFactory) → ``tech/reply`` → HTTP answer, over a real broker."""

from __future__ import annotations

import threading
import uuid

import pytest

from config.loader import parse_game
from controller import tech as tech_module
from tests.integration.conftest import GM_PASSWORD, TECH_PASSWORD, wait_for

GAME = """\
apartment:
  id: {apartment_id}
  name: Essai technicien
  duration_min: 60
  max_players: 6
  budget: {{start: {{primo: 1000, locataire: 900}}}}
nodes:
  - id: cuisine
    label: Cuisine
    props:
      - {{id: cupboard_lock, kind: maglock, relay: 17, door: 27, relock_after_restart: true}}
      - id: ingredients
        kind: mfrc522
        spi: {{clock: 11, mosi: 10, miso: 9, select: 8}}
        reset_pin: 25
        tags: {{"04a1b2c3": vinaigre_blanc}}
puzzles:
  - id: placard
    label: Le placard
    theme: diy
    room: cuisine
    final: true
    solve: {{when: event, prop: cuisine.ingredients, event: tag, equals: "04a1b2c3"}}
    actions:
      - {{do: unlock, target: cuisine.cupboard_lock}}
"""


@pytest.fixture
def apt(make_apartment):
    return make_apartment(parse_game(GAME.format(apartment_id=f"t{uuid.uuid4().hex[:10]}")).game)


def test_self_test_of_a_lock_returns_the_nodes_result_and_is_audited(apt) -> None:
    # during the pre-game check (a session is open, so the audit log is in the state)
    assert apt.client.post("/api/game/check", json={"who": "Mallory"}).status_code == 200
    reply = apt.client.post("/api/tech/cuisine/cupboard_lock/test", json={"timeout": 5})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["ok"] is True
    assert body["steps"][:3] == ["unlocked", "locked (relay engaged)", "unlocked again"]
    assert body["steps"][3].startswith("door sensor")
    audit = apt.client.get("/api/state").json()["game"]["audit"]
    assert [(a["action"], a["who"], a["target"]) for a in audit] == [
        ("check", "technician", None), ("tech", "technician", "cuisine.cupboard_lock")]
    assert audit[-1]["detail"] == "test réussi"
    assert apt.client.post("/api/tech/cuisine/nope/test", json={}).status_code == 404
    assert apt.client.post("/api/tech/grenier/lamp/test", json={}).status_code == 404


def test_enroll_returns_the_uid_of_the_next_tag_and_keeps_its_name(apt) -> None:
    stop = threading.Event()

    def present_until_answered() -> None:   # the tag comes once the node listens
        while not stop.wait(0.4):
            apt.gesture("cuisine", "ingredients", "present", "04deadbe")
            stop.wait(0.3)
            apt.gesture("cuisine", "ingredients", "remove")

    hand = threading.Thread(target=present_until_answered, daemon=True)
    hand.start()
    try:
        reply = apt.client.post("/api/tech/cuisine/ingredients/enroll",
                                json={"name": "bicarbonate", "timeout": 10})
    finally:
        stop.set()
        hand.join(5)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["ok"], body["uid"], body["name"]) == (True, "04deadbe", "bicarbonate")
    assert body["yaml"] == 'tags:\n  "04deadbe": bicarbonate'
    tags = apt.client.get("/api/tech/enrolled").json()["tags"]
    assert [(t["node"], t["prop"], t["uid"], t["name"], t["who"]) for t in tags] == [
        ("cuisine", "ingredients", "04deadbe", "bicarbonate", "technician")]
    # not a reader: 409; a bad name: 422
    assert apt.client.post("/api/tech/cuisine/cupboard_lock/enroll", json={}).status_code == 409
    assert apt.client.post("/api/tech/cuisine/ingredients/enroll",
                           json={"name": "Pas Bon!"}).status_code == 422


def test_enroll_without_a_tag_says_so(apt) -> None:
    reply = apt.client.post("/api/tech/cuisine/ingredients/enroll", json={"timeout": 0.5})
    assert reply.status_code == 200
    assert reply.json()["ok"] is False
    assert reply.json()["message"] == "aucun badge présenté à temps"


def test_a_silent_node_gives_504_and_an_offline_one_503(apt, monkeypatch) -> None:
    monkeypatch.setattr(tech_module, "TECH_MARGIN_S", 0.3)
    publish = apt.service.bridge.publish

    def drop_tech(topic: str, payload: bytes, **kw) -> None:   # the request is lost
        if not topic.endswith("/tech"):
            publish(topic, payload, **kw)

    monkeypatch.setattr(apt.service.bridge, "publish", drop_tech)
    reply = apt.client.post("/api/tech/cuisine/cupboard_lock/test", json={"timeout": 0.2})
    assert reply.status_code == 504
    assert "n'a pas répondu" in reply.json()["detail"]
    assert not apt.service.tech.waiters
    apt.agents["cuisine"].stop()
    wait_for(lambda: not apt.service.registry.nodes["cuisine"].online, what="the node's last will")
    reply = apt.client.post("/api/tech/cuisine/cupboard_lock/test", json={})
    assert reply.status_code == 503
    assert "hors ligne" in reply.json()["detail"]


def test_lock_self_test_is_refused_during_a_game_and_gm_may_not_use_tech_routes(apt) -> None:
    assert apt.client.post("/api/game/start", json={"parcours": "primo", "players": 2,
                                                    "who": "Mallory"}).status_code == 200
    reply = apt.client.post("/api/tech/cuisine/cupboard_lock/test", json={})
    assert reply.status_code == 409
    assert "partie en cours" in reply.json()["detail"]
    audit = apt.client.get("/api/state").json()["game"]["audit"]
    assert {a["who"] for a in audit if a["action"] == "start"} == {"technician"}
    apt.client.post("/api/logout", json={})
    assert apt.client.post("/api/login", json={"password": GM_PASSWORD}).status_code == 200
    assert apt.client.post("/api/tech/cuisine/ingredients/enroll", json={}).status_code == 403
    assert apt.client.get("/api/tech/enrolled").status_code == 403
    apt.client.post("/api/logout", json={})
    assert apt.client.post("/api/login", json={"password": TECH_PASSWORD}).status_code == 200
