"""Fault: the controller is gone for longer than the autonomy threshold during a game.

What players see: the mailbox (a local puzzle of the hall) still opens when they type its
code. What the game master sees when the controller is back: the mailbox solved "by the
node (offline)", the budget moved once, every event of the outage in the history, once.
"""

from __future__ import annotations

import time

import pytest

from controller.mqtt import Incoming
from protocol.contract import PropEvent, heartbeat_interval
from tests.faults.conftest import RELAY, fault_game, wait_for

pytestmark = pytest.mark.mosquitto

AUTONOMY_S = 1.0


def test_controller_gone_the_mailbox_still_opens_and_the_game_catches_up_once(make_rig, wire):
    rig = make_rig(fault_game(autonomy_after_s=AUTONOMY_S), controller_via_proxy=True)
    hall, entree = rig.agents["hall"], rig.agents["entree"]
    rig.start_game("primo")
    budget_before = rig.service.engine.budget
    handled: list[tuple[str, str, PropEvent]] = []
    rig.service.on_handled = lambda item: handled.append(
        (item.parts.node, item.parts.prop, item.payload)) if isinstance(item, Incoming) and \
        isinstance(item.payload, PropEvent) else None
    wire.subscribe(rig.topics.prop_set("hall", "mailbox_lock"))
    events_before = {n: a.metrics["events"] for n, a in rig.agents.items()}

    # -- the controller's link to the broker is cut: the broker publishes its will --------
    cut_at = time.monotonic()
    rig.controller_link.cut()
    will_s = wait_for(lambda: not hall.controller_online and not entree.controller_online,
                      what="the nodes to get the controller's last will")
    wait_for(lambda: hall.autonomous, timeout=AUTONOMY_S + 3, what="the hall to go autonomous")
    autonomous_after = time.monotonic() - cut_at
    # silence counts from the controller's last heartbeat, at most one interval before the cut
    assert autonomous_after >= AUTONOMY_S - heartbeat_interval(AUTONOMY_S)
    assert not entree.autonomous, "the entrance has no local puzzle"

    # -- players: a wrong code, then the right one; a bell in the other room --------------
    rig.gesture("hall", "mailbox_keypad", "type", "1111")
    assert rig.relay_driven("hall"), "a wrong code keeps the mailbox locked, even alone"
    relay = rig.factories["hall"].pin(RELAY)
    rig.gesture("hall", "mailbox_keypad", "type", "0412")
    wait_for(lambda: not rig.relay_driven("hall"), timeout=1, what="the mailbox to open on its own")
    relay.clear_states()
    rig.gesture("entree", "bell", "press")
    rig.gesture("entree", "bell", "release")
    emitted = {n: a.metrics["events"] - events_before[n] for n, a in rig.agents.items()}
    assert hall.metrics["local_solves"] == 1
    wait_for(lambda: len(hall.outbox) == emitted["hall"] and len(entree.outbox) == emitted["entree"],
             what="every event of the outage to wait in the outboxes")
    assert rig.service.engine.puzzles["mailbox"].status == "available", "the controller heard nothing"

    # -- the controller is back ------------------------------------------------------------
    back_at = time.monotonic()
    rig.controller_link.restore()
    wait_for(lambda: rig.puzzle("mailbox")["status"] == "solved", timeout=5,
             what="the controller to learn the mailbox was solved")
    caught_up_s = time.monotonic() - back_at
    wait_for(lambda: len(hall.outbox) == 0 and len(entree.outbox) == 0, timeout=3,
             what="the controller to acknowledge every replayed event")
    wait_for(rig.reconciled, what="desired == reported")

    # what the game master sees: solved by the node, budget moved once, lock wanted open
    assert rig.puzzle("mailbox")["solved_by"] == "node hall (offline)"
    assert rig.service.engine.budget == budget_before - 100
    want = rig.service.desired[("hall", "mailbox_lock")]
    assert (want.action, want.relock_pending) == ("unlock", False)
    # what the players saw: the mailbox never locked again
    assert not any(state.state for state in relay.states), relay.states
    # the controller never re-ran the unlock the node had done
    unlocks = [m for m in wire.received(rig.topics.prop_set("hall", "mailbox_lock"), since=back_at)
               if b'"unlock"' in m.payload]
    assert unlocks == []

    # every event of the outage handled once, in order, marked replayed
    for node in ("hall", "entree"):
        seqs = [e.seq for n, _p, e in handled if n == node and e.replayed]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) >= emitted[node]
    ours = [(p, e.type, e.value) for n, p, e in handled if n == "hall" and e.type in ("code", "solved_locally")]
    assert ours[-3:] == [("mailbox_keypad", "code", "1111"), ("node", "solved_locally", "mailbox"),
                         ("mailbox_keypad", "code", "0412")]
    assert rig.service.registry.nodes["hall"].last_seq == hall.core.seq
    wait_for(lambda: not hall.autonomous, what="the hall to hand its puzzles back")
    print(f"\n[autonomy] controller will seen by the nodes after {will_s * 1000:.0f} ms; hall "
          f"autonomous after {autonomous_after:.2f} s (threshold {AUTONOMY_S} s); controller "
          f"caught up {caught_up_s * 1000:.0f} ms after its link came back; "
          f"{sum(emitted.values())} events replayed; commands refused while held: "
          f"{hall.metrics['held_commands']}")
