"""Fault: the broker restarts in the middle of a game.

What players see: codes typed while the broker was down are not lost — the mailbox opens
as soon as the broker is back. What the game master sees: every room back online within
two seconds, each lock as the game wants it, the budget moved once.
"""

from __future__ import annotations

import time

import pytest

from controller.mqtt import Incoming
from protocol.contract import PropEvent
from tests.faults.conftest import fault_game, wait_for

pytestmark = pytest.mark.mosquitto


def test_broker_restart_mid_game_loses_no_code_and_applies_none_twice(make_rig, mosquitto):
    rig = make_rig(fault_game())
    hall, entree = rig.agents["hall"], rig.agents["entree"]
    rig.start_game("primo")
    budget_before = rig.service.engine.budget
    seen_before = rig.service.events_seen
    handled: list[tuple[str, PropEvent]] = []
    rig.service.on_handled = lambda item: handled.append((item.parts.node, item.payload)) \
        if isinstance(item, Incoming) and isinstance(item.payload, PropEvent) else None
    events_before = {n: a.metrics["events"] for n, a in rig.agents.items()}

    # -- the broker goes away (clean stop: it saves its retained messages) ----------------
    mosquitto.stop()
    wait_for(lambda: not any(a.connected.is_set() for a in rig.agents.values())
             and not rig.service.bridge.connected, what="everyone to notice the broker is gone")

    # players go on: a wrong code, the right one, a bell in the other room
    rig.gesture("hall", "mailbox_keypad", "type", "9999")
    rig.gesture("hall", "mailbox_keypad", "type", "0412")
    rig.gesture("entree", "bell", "press")
    rig.gesture("entree", "bell", "release")
    emitted = {n: a.metrics["events"] - events_before[n] for n, a in rig.agents.items()}
    assert len(hall.outbox) == emitted["hall"] and len(entree.outbox) == emitted["entree"], \
        "every event typed while the broker was down waits in its node's outbox"
    assert rig.relay_driven("hall"), "nobody has decided yet: the mailbox stays locked"

    # -- the broker is back, same port, same retained messages ----------------------------
    mosquitto.start()
    back_at = time.monotonic()
    reconnect: dict[str, float] = {}

    def note_reconnections() -> bool:
        for node_id, agent in rig.agents.items():
            if node_id not in reconnect and agent.connected.is_set():
                reconnect[node_id] = time.monotonic() - back_at
        return len(reconnect) == len(rig.agents)

    wait_for(note_reconnections, timeout=5, what="every node to reconnect")
    nodes_back_s = max(reconnect.values())
    wait_for(lambda: rig.service.bridge.connected, timeout=5, what="the controller to reconnect")
    controller_back_s = time.monotonic() - back_at
    assert nodes_back_s <= 2.0, reconnect

    wait_for(lambda: rig.puzzle("mailbox")["status"] == "solved", timeout=5,
             what="the code typed during the outage to solve the mailbox")
    wait_for(lambda: not rig.relay_driven("hall"), timeout=3,
             what="the mailbox to open (the node resubscribed: it got the unlock)")
    opened_s = time.monotonic() - back_at
    wait_for(lambda: len(hall.outbox) == 0 and len(entree.outbox) == 0, timeout=5,
             what="the controller to acknowledge every queued event")
    wait_for(rig.reconciled, timeout=3, what="desired == reported for every output")
    assert rig.relay_driven("entree"), "the front door stays locked, as the game wants"

    # nothing lost, nothing twice
    assert rig.service.events_seen - seen_before == sum(emitted.values())
    assert rig.service.engine.budget == budget_before - 100
    assert rig.puzzle("mailbox")["solved_by"] == "players"
    solves = [n for n in rig.service.engine.log if n["kind"] == "solved" and "mailbox" in n["text"]]
    assert len(solves) == 1
    for node in ("hall", "entree"):
        seqs = [e.seq for n, e in handled if n == node]
        assert seqs == sorted(seqs) and len(seqs) >= emitted[node]
        assert all(e.replayed for n, e in handled if n == node)
    codes = [e.value for n, e in handled if n == "hall" and e.type == "code"]
    assert codes == ["9999", "0412"]
    print(f"\n[broker restart] nodes reconnected {nodes_back_s * 1000:.0f} ms after the broker "
          f"was back (each: {', '.join(f'{n} {s * 1000:.0f} ms' for n, s in reconnect.items())}); "
          f"controller {controller_back_s * 1000:.0f} ms; mailbox open {opened_s * 1000:.0f} ms; "
          f"{sum(emitted.values())} queued events delivered, "
          f"{rig.metrics().get('duplicate_events', 0)} duplicates dropped")
