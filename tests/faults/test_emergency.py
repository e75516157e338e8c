"""Fault + safety: the physical emergency input, pressed while the broker is down.

What players see: the hall's locks open the instant the button is pressed — no broker,
no controller needed. What the game master sees once the broker is back: the emergency,
every lock of the apartment opened, the game paused; the hall's lock is never relocked
by a controller that had not heard of the emergency yet.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import EMERGENCY, RELAY, Rig, fault_game, wait_for

pytestmark = pytest.mark.mosquitto


def test_emergency_button_with_the_broker_stopped_opens_the_room_at_once(make_rig, mosquitto):
    rig: Rig = make_rig(fault_game())
    hall = rig.agents["hall"]
    rig.start_game("primo")
    mosquitto.stop()
    wait_for(lambda: not hall.connected.is_set() and not rig.service.bridge.connected,
             what="the hall and the controller to lose the broker")
    relay = rig.factories["hall"].pin(RELAY)
    assert rig.relay_driven("hall")

    pressed = time.perf_counter()
    rig.factories["hall"].pin(EMERGENCY).drive_low()      # the red button (pull-up: low = pressed)
    opened_in = time.perf_counter() - pressed
    assert not rig.relay_driven("hall"), "the lock opens before the button handler returns"
    rig.factories["hall"].pin(EMERGENCY).drive_high()
    relay.clear_states()
    assert hall.metrics["emergency"] == 1
    assert [e.event.type for e in hall.outbox][-1] == "emergency", "the news waits in the outbox"
    assert rig.relay_driven("entree"), "another room's node does not know yet"

    # -- the broker is back: the controller hears of it and opens everything -------------
    mosquitto.start()
    wait_for(lambda: not rig.relay_driven("entree"), timeout=5,
             what="the controller to release every lock of the apartment")
    wait_for(lambda: rig.service.engine.phase == "paused", what="the game to be paused")
    audit = [a for a in rig.service.engine.audit_log if a["action"] == "emergency"]
    assert audit and audit[-1]["who"] == "node hall (emergency input)"
    wait_for(lambda: len(hall.outbox) == 0 and not hall.status()["holds"], timeout=5,
             what="the controller to acknowledge the emergency (the hold is lifted)")
    wait_for(rig.reconciled, what="desired == reported")
    assert not any(s.state for s in relay.states), "the hall's lock never closed again"
    print(f"\n[emergency] relay released {opened_in * 1e6:.0f} µs after the input went low "
          f"(broker stopped); commands refused while held: {hall.metrics['held_commands']}")
