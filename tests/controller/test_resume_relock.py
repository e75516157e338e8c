"""« Reprendre et reverrouiller » after an emergency, over HTTP: the locks the game holds
locked come back locked; an exit door only on the game master's explicit choice; a wrong
choice changes nothing. (No node here: the locks' reported state is unknown, so every
lock the game holds is in the plan.)"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


def desired(client: TestClient) -> dict[str, str | None]:
    return {f"{p['node']}.{p['id']}": (p["desired"] or {}).get("action")
            for p in client.get("/api/state").json()["props"] if p["kind"] == "maglock"}


def after_an_emergency(client: TestClient) -> dict:
    assert client.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
    assert client.post("/api/emergency", json={}).status_code == 202
    assert client.post("/api/game/resume", json={"relock": True}).status_code == 409, "not during the alert"
    assert client.post("/api/emergency/end", json={}).status_code == 200
    state = client.get("/api/state").json()
    assert state["game"]["phase"] == "paused"
    assert desired(client) == {"hall.box_lock": "unlock", "salon.door_lock": "unlock"}
    return state


def test_resume_and_relock_locks_the_game_s_locks_but_not_the_exit_door(client: TestClient) -> None:
    state = after_an_emergency(client)
    assert [(p["prop"], p["exit_door"], p["room"]) for p in state["relock"]] == [
        ("box_lock", False, "Hall"), ("door_lock", True, "Salon")]
    reply = client.post("/api/game/resume", json={"relock": True})
    assert reply.status_code == 200 and reply.json()["phase"] == "running"
    assert desired(client) == {"hall.box_lock": "lock", "salon.door_lock": "unlock"}
    state = client.get("/api/state").json()
    assert state["relock"] == [], "running: nothing to propose"
    relock = [a for a in state["game"]["audit"] if a["action"] == "relock"]
    assert [a["detail"] for a in relock] == ["hall.box_lock"]


def test_an_exit_door_is_relocked_only_when_ticked(client: TestClient) -> None:
    after_an_emergency(client)
    reply = client.post("/api/game/resume", json={"relock": True, "exit_doors": ["salon.door_lock"]})
    assert reply.status_code == 200
    assert desired(client) == {"hall.box_lock": "lock", "salon.door_lock": "lock"}


def test_a_lock_the_puzzles_opened_stays_open(client: TestClient) -> None:
    assert client.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
    assert client.post("/api/game/puzzles/mailbox/solve", json={}).status_code == 200   # opens the box
    assert client.post("/api/emergency", json={}).status_code == 202
    assert client.post("/api/emergency/end", json={}).status_code == 200
    assert [p["prop"] for p in client.get("/api/state").json()["relock"]] == ["door_lock"]
    assert client.post("/api/game/resume", json={"relock": True}).status_code == 200
    assert desired(client) == {"hall.box_lock": "unlock", "salon.door_lock": "unlock"}


@pytest.mark.parametrize("doors", [["hall.box_lock"], ["salon.bell"], ["nope"]])
def test_a_wrong_exit_door_changes_nothing(client: TestClient, doors: list[str]) -> None:
    after_an_emergency(client)
    reply = client.post("/api/game/resume", json={"relock": True, "exit_doors": doors})
    assert reply.status_code == 409, reply.text
    assert "n'est pas une porte de sortie" in reply.json()["detail"] and reply.json()["detail_en"]
    assert client.get("/api/state").json()["game"]["phase"] == "paused"
    assert desired(client) == {"hall.box_lock": "unlock", "salon.door_lock": "unlock"}
