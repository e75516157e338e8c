"""Fault: NaN, Infinity, -Infinity and 1e999 in every number a node sends.

A raw MQTT client (not our node code) publishes births, heartbeats, events, states and
technician replies of a real room with a non-finite number in each numeric place in
turn. What the game master sees: nothing. Every message is refused at the door
(``bad_payloads``), nothing of the room changes, no row reaches the session log, and
what the controller hands out (``/api/state``, the WebSocket snapshot) is still JSON any
browser parses — one ``Infinity`` in a push once froze the console.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from controller.views import game_view
from protocol.contract import PropEvent, now
from tests.faults.conftest import Rig, fault_game, wait_for
from tests.support.badnumbers import NOT_NUMBERS, forged, strict_json
from tests.support.livefeed import LiveFeed


def strict_json_text(text: str) -> str:
    """*text*, once checked to be strict JSON (no NaN, no Infinity)."""
    strict_json(text)
    return text

pytestmark = pytest.mark.mosquitto

def room(rig: Rig) -> dict[str, Any]:
    """What the controller knows of the hall that a message could change."""
    service = rig.service
    node = service.registry.nodes["hall"]
    return {"node": (node.boot_id, node.last_seq, node.online, node.version, node.keepalive),
            "props": {p: (dict(service.registry.props[("hall", p)].reported),
                          service.registry.props[("hall", p)].last_event)
                      for p in ("mailbox_keypad", "mailbox_lock", "bell")},
            "events_seen": service.events_seen, "game": game_view(service.engine)["puzzles"]}


def test_non_finite_numbers_in_every_place_are_refused_and_nothing_changes(make_rig, wire):
    rig: Rig = make_rig(fault_game(), nodes=("hall",))
    rig.start_game()
    hall = rig.agents["hall"]
    before = room(rig)
    bad_before = rig.metrics().get("bad_payloads", 0)
    unknown_before = rig.metrics().get("unknown_prop", 0)
    db = sqlite3.connect(rig.tmp_path / "escape.db")
    rows_before = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    messages = forged(rig.topics, "hall", hall.boot_id, keypad="mailbox_keypad", lock="mailbox_lock")
    assert len(messages) == (4 + 3 + 5 + 3 + 2) * len(NOT_NUMBERS)
    for topic, payload in messages:
        wire.publish(topic, payload)
    # a fence: one well-formed message the controller counts, after all of them
    wire.publish(rig.topics.prop_event("hall", "no_such_prop"),
                 PropEvent(boot_id=hall.boot_id, seq=1, type="x", ts=now()).to_bytes())
    wait_for(lambda: rig.metrics().get("unknown_prop", 0) == unknown_before + 1,
             what="the controller to read every forged message")

    assert rig.metrics().get("bad_payloads", 0) - bad_before == len(messages), "every one refused at the door"
    assert room(rig) == before, "nothing of the room changed"
    rig.service.journal.flush()
    assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == rows_before
    db.close()

    # what the controller hands out is still JSON
    reply = rig.client.get("/api/state")
    assert reply.status_code == 200
    strict_json(reply.text)
    with rig.client.websocket_connect("/ws") as ws:
        frame = strict_json(ws.receive_text())
    assert frame["type"] == "snapshot"
    health = rig.client.get("/api/health")
    assert health.status_code == 200 and health.json()["store"]["ok"] is True

    # and the room still plays: the mailbox code solves its puzzle
    rig.gesture("hall", "mailbox_keypad", "type", "0412")
    wait_for(lambda: rig.puzzle("mailbox")["status"] == "solved", what="the mailbox to be solved")


def test_a_non_finite_number_the_controller_itself_computed_never_leaves_it(make_rig, caplog):
    """Should one get past the contract (a bug), what goes out is JSON with ``null`` in its
    place, and the log says where it was."""
    rig: Rig = make_rig(fault_game(), nodes=("hall",))
    rig.start_game()
    service = rig.service
    service.registry.props[("hall", "mailbox_lock")].reported["current"] = float("nan")
    service.engine.remaining = lambda: float("inf")   # type: ignore[method-assign]
    pushed: list[str] = []
    broadcast = service.hub.broadcast

    async def spy(texts: Any) -> None:
        pushed.extend(texts.values())
        await broadcast(texts)

    service.hub.broadcast = spy   # type: ignore[method-assign]
    game_states: list[bytes] = []
    publish = service.bridge.publish

    def spy_publish(topic: str, payload: bytes, **kw: Any) -> None:
        if topic == rig.topics.game_state:
            game_states.append(payload)
        publish(topic, payload, **kw)

    service.bridge.publish = spy_publish   # type: ignore[method-assign]

    with rig.client.websocket_connect("/ws") as ws:
        page = LiveFeed()
        first = page.feed(strict_json_text(ws.receive_text()))
        rig.client.post("/api/game/time", json={"seconds": 60})   # a push and a game state
        while (pushed := page.feed(strict_json_text(ws.receive_text()))) is None:
            pass
    assert first["game"]["remaining_s"] is None
    reported = next(p["reported"] for p in pushed["props"] if p["id"] == "mailbox_lock")
    assert reported["current"] is None
    wait_for(lambda: game_states, what="the game state to be published")
    assert strict_json(game_states[-1])["remaining_s"] is None
    state = rig.client.get("/api/state")
    assert strict_json(state.text)["game"]["remaining_s"] is None
    assert "non-finite number(s) at $.data.game.remaining_s" in caplog.text
    assert "props[" in caplog.text and "reported.current" in caplog.text


def test_a_non_finite_number_in_an_order_sent_on_to_a_node_is_refused(make_rig, wire):
    """HTTP bodies are JSON the server parses leniently (Python reads NaN): what is sent on
    to a node (an order's params, a rehearsal gesture's value) is refused with a 422, and
    every 422 that echoes the number is still JSON."""
    rig: Rig = make_rig(fault_game(), nodes=("hall",))
    wire.subscribe(rig.topics.prop_set("hall", "mailbox_lock"), rig.topics.prop_simulate("hall", "bell"))
    sent = rig.metrics().get("commands_sent", 0)
    for url, body in (("/api/props/hall/mailbox_lock/lock", '{"params": {"after": %s}}'),
                      ("/api/sim/hall/bell", '{"gesture": "hold", "value": %s}'),
                      ("/api/game/time", '{"seconds": %s}')):   # an error that echoes it
        for literal in NOT_NUMBERS:
            reply = rig.client.post(url, content=body % literal,
                                    headers={"Content-Type": "application/json"})
            assert reply.status_code == 422, (url, literal, reply.status_code, reply.text)
            strict_json(reply.text)
    assert rig.metrics().get("commands_sent", 0) == sent
    assert not wire.received(rig.topics.prop_set("hall", "mailbox_lock"))
    assert not wire.received(rig.topics.prop_simulate("hall", "bell"))
