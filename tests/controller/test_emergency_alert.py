"""The emergency alert over HTTP: while it lasts nothing locks; releasing is never refused.

No node runs here (embedded broker): every order is accepted and sent, none is confirmed,
and the answers say so.
"""

from __future__ import annotations

from fastapi.testclient import TestClient


def desired(client: TestClient) -> dict[str, str | None]:
    return {f"{p['node']}.{p['id']}": (p["desired"] or {}).get("action")
            for p in client.get("/api/state").json()["props"] if p["kind"] == "maglock"}


def assert_refused(client: TestClient, path: str, what: str) -> None:
    reply = client.post(path, json={})
    assert reply.status_code == 409, (path, reply.text)
    detail = reply.json()["detail"]
    assert what in detail and "alerte d'urgence en cours" in detail and "« Fin de l'alerte »" in detail, detail


def test_while_the_alert_lasts_nothing_locks_and_releasing_is_never_refused(client: TestClient):
    assert client.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
    assert desired(client) == {"hall.box_lock": "lock", "salon.door_lock": "lock"}
    raised = client.post("/api/emergency", json={})
    assert raised.status_code == 202 and raised.json()["emergency"]["active"] is True
    assert desired(client) == {"hall.box_lock": "unlock", "salon.door_lock": "unlock"}

    refused = {
        "/api/game/resume": "reprendre la partie",
        "/api/game/start": "démarrer la partie",
        "/api/game/check": "lancer la vérification",
        "/api/props/hall/box_lock/lock": "verrouiller « box_lock »",
        "/api/props/hall/box_lock/reset": "verrouiller",
        "/api/props/hall/box_lock/pulse": "verrouiller",
    }
    for path, what in refused.items():
        assert_refused(client, path, what)
    assert client.get("/api/state").json()["game"]["phase"] == "paused"

    # a puzzle replayed while paused would lock its box again: the lock is not sent, and noted
    assert client.post("/api/game/puzzles/mailbox/solve", json={}).status_code == 200
    assert client.post("/api/game/puzzles/mailbox/reset", json={}).status_code == 200
    assert desired(client)["hall.box_lock"] == "unlock"
    log = client.get("/api/state").json()["game"]["log"]
    assert any(n["kind"] == "emergency" and "non envoyé" in n["text"] for n in log)

    # releasing: accepted and recorded every time (pending: no node here to confirm it)
    for _ in range(2):
        unlock = client.post("/api/props/salon/door_lock/unlock", json={})
        assert (unlock.status_code, unlock.json()["confirmed"]) == (202, False)
    again = client.post("/api/emergency", json={})
    assert again.status_code == 202 and again.json()["emergency"]["id"] != raised.json()["emergency"]["id"]

    ended = client.post("/api/emergency/end", json={})
    assert ended.status_code == 200 and "rien n'est reverrouillé" in ended.json()["message"]
    assert client.post("/api/emergency/end", json={}).status_code == 200, "ending twice is harmless"
    assert client.post("/api/game/resume", json={}).status_code == 200
    assert desired(client) == {"hall.box_lock": "unlock", "salon.door_lock": "unlock"}, "ending relocks nothing"
    audit = [a["action"] for a in client.get("/api/state").json()["game"]["audit"]]
    assert audit[-3:] == ["emergency_end", "emergency_end", "resume"]

    # the game over and back to idle, a maglock's self-test would still lock it a moment
    assert client.post("/api/emergency", json={}).status_code == 202
    assert client.post("/api/game/stop", json={}).status_code == 200
    assert client.post("/api/game/reset", json={}).status_code == 200
    assert_refused(client, "/api/tech/hall/box_lock/test", "tester « box_lock »")
