"""The walking skeleton end to end: a code typed on node A's keypad opens node B's maglock.

Real broker (amqtt, then Mosquitto), two node agents on their own MockFactory, the
controller in-process; keys are pressed through the keypad matrix's mock pins and the
result is read on node B's relay pin.
"""

from __future__ import annotations

import threading
import time

from config.loader import parse_game
from tests.integration.conftest import wait_for

GAME = """\
apartment: {id: skeleton, name: Squelette}
nodes:
  - id: node_a
    label: Nœud A
    props:
      - {id: keypad, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20], code_length: 4}
  - id: node_b
    label: Nœud B
    props:
      - {id: door, kind: maglock, relay: 17, door: 27}
      - {id: bell, kind: button, pin: 22}
puzzles:
  - id: door_code
    label: Code de la porte
    theme: rights
    room: node_a
    solve: {when: event, prop: node_a.keypad, event: code, equals: "0412"}
    actions: [{do: unlock, target: node_b.door}]
    final: true
"""

RELAY = 17


def test_right_code_on_node_a_opens_node_b_lock_and_wrong_code_changes_nothing(make_apartment):
    apt = make_apartment(parse_game(GAME).game)
    assert not apt.relay_driven("node_b", RELAY), "relays start unlocked"

    response = apt.client.post("/api/game/start", json={"parcours": "primo", "players": 3})
    assert response.status_code == 200
    wait_for(lambda: apt.relay_driven("node_b", RELAY), what="the start of the game to lock node B")

    seen = apt.service.events_seen
    apt.gesture("node_a", "keypad", "type", "9999")
    session = apt.service.engine.session_id
    wait_for(lambda: any(e["type"] == "code" and e["value"] == "9999"
                         for e in apt.service.store.events(session) if e["kind"] == "prop"),
             what="the controller to receive the wrong code")
    assert apt.service.events_seen > seen
    assert apt.relay_driven("node_b", RELAY), "a wrong code must leave the lock locked"
    assert apt.service.engine.puzzles["door_code"].status == "available"

    keypad = apt.agents["node_a"].props["keypad"]
    forward, code_at = keypad.when_event, []

    def spy(event_type, value):
        if event_type == "code":
            code_at.append(time.perf_counter())
        forward(event_type, value)

    keypad.when_event = spy
    # The hand types in another thread: the gesture returns only once the last key is up.
    hand = threading.Thread(target=apt.gesture, args=("node_a", "keypad", "type", "0412"))
    hand.start()
    wait_for(lambda: not apt.relay_driven("node_b", RELAY), what="node B's maglock to open")
    opened_at = time.perf_counter()
    hand.join()
    assert len(code_at) == 1
    print(f"\n[{apt.broker.kind}] last key registered -> node B relay released: "
          f"{(opened_at - code_at[0]) * 1000:.1f} ms (polled every 2 ms)")
    wait_for(lambda: apt.service.engine.phase == "won", what="the game to be won")
    state = apt.client.get("/api/state").json()
    door = next(p for p in state["props"] if p["id"] == "door")
    wait_for(lambda: apt.service.registry.props[("node_b", "door")].reported.get("engaged") is False,
             what="node B to report the lock open")
    assert door["desired"]["action"] == "unlock"


def test_manual_unlock_and_lock_from_the_api(make_apartment):
    apt = make_apartment(parse_game(GAME).game)
    assert apt.client.post("/api/props/node_b/door/lock").status_code == 200
    wait_for(lambda: apt.relay_driven("node_b", RELAY), what="the lock to engage")
    reply = apt.client.post("/api/props/node_b/door/unlock")
    command_id = reply.json()["command_id"]
    wait_for(lambda: not apt.relay_driven("node_b", RELAY), what="the lock to open")
    wait_for(lambda: apt.service.registry.props[("node_b", "door")].ack == command_id,
             what="the node to acknowledge the command in its state")


def test_emergency_opens_every_lock(make_apartment):
    apt = make_apartment(parse_game(GAME).game)
    apt.client.post("/api/game/start", json={"parcours": "primo", "players": 2})
    wait_for(lambda: apt.relay_driven("node_b", RELAY), what="the lock to engage")
    assert apt.client.post("/api/emergency").status_code == 200
    wait_for(lambda: not apt.relay_driven("node_b", RELAY), what="emergency release")
    assert apt.service.engine.phase == "paused"


def test_bad_http_requests_get_clear_errors_and_change_nothing(make_apartment):
    apt = make_apartment(parse_game(GAME).game)
    assert apt.client.post("/api/props/node_b/nope/unlock").status_code == 404
    assert apt.client.post("/api/props/node_b/bell/unlock").status_code == 409
    assert apt.client.post("/api/props/node_b/door/explode").status_code == 422
    assert apt.client.post("/api/game/start", json={"parcours": "x"}).status_code == 422
    assert apt.client.post("/api/game/stop").status_code == 409
    assert apt.service.engine.phase == "idle"
    assert apt.service.desired == {}
