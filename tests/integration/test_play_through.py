"""A full play-through of the shipped apartment, for each parcours, over a real broker.

Every gesture drives a simulated node's MockFactory pins (keys through the matrix, tags
on the simulated MFRC522 chip and RDM6300 pty, the window's reed switch); the controller
only sees MQTT, as in the flat.
"""

from __future__ import annotations

import time

import pytest

from config.loader import SHIPPED_GAME, load_game
from tests.integration.conftest import wait_for
from tests.solutions import FINAL_BUDGET, GESTURES

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("parcours", ["primo", "locataire"])
def test_full_play_through_wins_with_expected_budget_and_every_lock_open(make_apartment, parcours):
    apt = make_apartment(load_game(SHIPPED_GAME))
    maglocks = [(n.id, p.relay) for n in apt.game.nodes for p in n.props if p.kind == "maglock"]
    assert apt.client.post("/api/game/start", json={"parcours": parcours, "players": 5}).status_code == 200
    wait_for(lambda: all(apt.relay_driven(node, pin) for node, pin in maglocks), timeout=10,
             what="every maglock to lock at the start")
    started = time.perf_counter()
    for node, prop, gesture, value in GESTURES[parcours]:
        apt.gesture(node, prop, gesture, value)
        if gesture == "present":
            # a tag must be seen by the reader (next poll) before it is taken away
            wait_for(lambda n=node, p=prop, v=value: apt.service.registry.props[(n, p)].last_event is not None
                     and apt.service.registry.props[(n, p)].last_event["value"] == v,
                     timeout=5, what=f"{node}.{prop} to report {value}")
    wait_for(lambda: apt.service.engine.phase == "won", timeout=10, what="the game to be won")
    elapsed = time.perf_counter() - started
    print(f"\n[{apt.broker.kind}] play-through {parcours}: {elapsed:.1f} s")
    state = apt.client.get("/api/state").json()["game"]
    assert state["budget"] == FINAL_BUDGET[parcours]
    assert all(p["status"] == "solved" for p in state["puzzles"] if p["in_parcours"])
    wait_for(lambda: not any(apt.relay_driven(node, pin) for node, pin in maglocks), timeout=5,
             what="every maglock to open at the end")
