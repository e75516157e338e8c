"""Faults in the message streams, over the broker: lost events, repeated and stale commands.

What the game master sees: after a lost event the room's states are all reported again
(nothing on the console stays stale); a lock command delivered twice clicks the relay once;
an order that arrives after its time is not carried out.
"""

from __future__ import annotations

import time

import pytest

from protocol.contract import Command, PropEvent, Resync, new_id, now
from tests.faults.conftest import RELAY, Rig, fault_game, wait_for

pytestmark = pytest.mark.mosquitto


def test_a_lost_event_makes_the_controller_ask_the_room_for_all_its_states_again(make_rig, wire):
    rig: Rig = make_rig(fault_game())
    hall = rig.agents["hall"]
    props = [p.id for p in rig.game.node("hall").props]
    wire.subscribe(rig.topics.node_resync("hall"),
                   *(rig.topics.prop_state("hall", p) for p in props))
    rig.gesture("hall", "bell", "press")   # a first real event, so the controller has a seq
    wait_for(lambda: rig.service.registry.nodes["hall"].last_seq == hall.core.seq,
             what="the controller to see the hall's first event")
    seen = rig.service.events_seen
    resyncs = hall.metrics["resyncs"]

    # event seq+1 "was lost": the next one the controller sees is seq+2
    forged_at = time.monotonic()
    wire.publish(rig.topics.prop_event("hall", "bell"), PropEvent(
        boot_id=hall.boot_id, seq=hall.core.seq + 2, type="released", ts=now()).to_bytes())
    wait_for(lambda: wire.received(rig.topics.node_resync("hall"), since=forged_at),
             what="the controller to ask the hall for a resync")
    wait_for(lambda: hall.metrics["resyncs"] == resyncs + 1, what="the hall to handle the resync")
    wait_for(lambda: all(wire.received(rig.topics.prop_state("hall", p), since=forged_at) for p in props),
             what="every state of the hall to be published again")
    assert rig.metrics()["seq_gaps"] == 1
    assert rig.service.events_seen == seen + 1, "the event after the gap is still applied, once"


def test_a_lock_command_delivered_twice_clicks_once_and_a_stale_lock_does_nothing(make_rig, wire):
    rig: Rig = make_rig(fault_game(), nodes=("hall",))
    hall = rig.agents["hall"]
    topic = rig.topics.prop_set("hall", "mailbox_lock")
    relay = rig.factories["hall"].pin(RELAY)
    relay.clear_states()
    handled: list[object] = []
    hall.on_handled = lambda _parts, payload: handled.append(payload)

    controller = rig.service.bridge
    lock = controller.new_command("lock").to_bytes()
    wire.publish(topic, lock)
    wire.publish(topic, lock)               # QoS 1 redelivery, or a replay: same id
    # A lock this controller issued at its start (dated on its own uptime) and meant to
    # live 0.1 s, held up somewhere past its time: dropped. A stale unlock is applied.
    wait_for(lambda: controller.uptime() > 0.5, what="the controller to be up for 0.5 s")
    stale = Command(id=new_id(), action="lock", controller=controller.boot_id, issued=0.0, ttl=0.1)
    wire.publish(topic, Command(id=new_id(), action="unlock").to_bytes())
    wire.publish(topic, stale.to_bytes())
    fence = Resync(reason="fence")
    wire.publish(rig.topics.node_resync("hall"), fence.to_bytes())
    wait_for(lambda: fence in handled, what="the hall to handle everything up to the fence")

    assert not rig.relay_driven("hall"), "locked once, unlocked, and the stale lock was not applied"
    assert [s.state for s in relay.states] == [False, True, False], "no chatter"
    assert hall.metrics["duplicate_commands"] == 1
    assert hall.metrics["expired_commands"] == 1
    wait_for(lambda: rig.service.registry.props[("hall", "mailbox_lock")].reported.get("engaged") is False,
             what="the controller to see the lock released")
