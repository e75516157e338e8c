"""Safety: the console never claims what the relays did not do.

Over real Mosquitto, node agents on MockFactory (the relay pins are read directly), the
controller in-process, and outsiders on the wire (a raw subscriber, a room that never
acknowledges). What the game master is told after an emergency or a lock order is what
the nodes reported, no more: confirmed (with the milliseconds it took) or not (and why),
and an unconfirmed order shows on the console and keeps being resent.
"""

from __future__ import annotations

import json
import time
from itertools import pairwise
from statistics import median
from typing import Any

import pytest

from config.loader import SHIPPED_GAME, load_game
from protocol.contract import Emergency, Topics, decode
from tests.faults.conftest import Rig, Seen, Wire, fault_game, wait_for
from tests.support.fake_node import DeafNode

pytestmark = pytest.mark.mosquitto

GAME = load_game(SHIPPED_GAME)   # seven rooms, a maglock in each, labelled in French
LOCKS = [(n.id, p.id) for n in GAME.nodes for p in n.props if p.kind == "maglock"]


def state(rig: Rig) -> dict[str, Any]:
    return rig.client.get("/api/state").json()  # type: ignore[no-any-return]


def lock_alerts(rig: Rig) -> dict[tuple[str, str], dict[str, Any]]:
    return {(a["node"], a["prop"]): a for a in state(rig)["lock_alerts"]}


def retained_emergency(wire: Wire, topics: Topics, *, since: float) -> Emergency:
    """Subscribe afresh: what a node connecting now would read first (the retained message)."""
    wire.subscribe(topics.emergency)
    wait_for(lambda: wire.received(topics.emergency, since=since), what="the emergency on the wire")
    # It may have come live (a wire subscribed before it was published): subscribing again
    # gets what a node connecting now reads first, the retained copy.
    subscribed = time.monotonic()
    wire.subscribe(topics.emergency)

    def retained() -> list[Seen]:
        return [m for m in wire.received(topics.emergency, since=subscribed) if m.retain]

    wait_for(retained, what="the emergency delivered as retained: a node that connects later reads it first")
    return decode(retained()[-1].payload, Emergency)


def test_emergency_answers_every_lock_of_seven_rooms_confirmed_open_with_the_ms_it_took(make_rig):
    rig: Rig = make_rig(GAME)
    assert len(rig.agents) == len(LOCKS) == 7
    rig.start_game()
    slowest_ms: list[int] = []
    http_ms: list[float] = []
    for round_ in range(5):
        if round_:
            # the alert ended, the game master locks every door again: each one confirmed
            assert rig.client.post("/api/emergency/end", json={}).status_code == 200
            for node, prop in LOCKS:
                reply = rig.client.post(f"/api/props/{node}/{prop}/lock", json={})
                assert (reply.status_code, reply.json()["confirmed"]) == (200, True), reply.text
            assert all(rig.relay_driven(node) for node, _ in LOCKS)
        started = time.perf_counter()
        reply = rig.client.post("/api/emergency", json={})
        http_ms.append((time.perf_counter() - started) * 1000)
        body = reply.json()
        assert reply.status_code == 200, body
        assert body["unconfirmed"] == [] and body["all_confirmed"] is True
        assert {(e["node"], e["prop"]) for e in body["confirmed"]} == set(LOCKS)
        # confirmed means the relays really are open: nothing was claimed ahead of them
        assert not any(rig.relay_driven(node) for node, _ in LOCKS)
        assert all(0 <= e["ms"] <= 1000 for e in body["confirmed"])
        names = {e["name"] for e in body["confirmed"]}
        assert "Ventouse de l'armoire (Chambre)" in names and not any("_lock" in n for n in names)
        assert body["message"].startswith("Toutes les ventouses sont ouvertes : 7 sur 7, confirmées")
        slowest_ms.append(max(e["ms"] for e in body["confirmed"]))
    assert state(rig)["lock_alerts"] == []
    print(f"\n[emergency, 7 rooms] every relay confirmed open: slowest lock p50 "
          f"{median(slowest_ms):.0f} ms, max {max(slowest_ms)} ms over {len(slowest_ms)} rounds "
          f"({slowest_ms}); HTTP answer p50 {median(http_ms):.0f} ms, max {max(http_ms):.0f} ms")


def test_emergency_with_the_broker_down_confirms_nothing_then_releases_when_it_is_back(
        make_rig, mosquitto):
    rig: Rig = make_rig(GAME)
    rig.start_game()
    mosquitto.stop()
    wait_for(lambda: not rig.service.bridge.connected, what="the controller to lose the broker")
    resent_before = state(rig)["mqtt"]["metrics"].get("resent_commands", 0)

    asked = time.monotonic()
    reply = rig.client.post("/api/emergency", json={})
    answered_s = time.monotonic() - asked
    body = reply.json()
    assert reply.status_code == 202, body
    assert body["confirmed"] == [] and body["mqtt"] is False
    assert {(e["node"], e["prop"]) for e in body["unconfirmed"]} == set(LOCKS)
    assert {e["reason"] for e in body["unconfirmed"]} == {"broker"}
    assert body["message"].startswith("AUCUNE ouverture n'est confirmée : liaison coupée avec les salles")
    assert "bouton d'urgence" in body["message"] and "Toutes les ventouses" not in body["message"]
    assert all(rig.relay_driven(node) for node, _ in LOCKS), "no relay moved: and none was claimed"

    # the game master's own unlock: accepted, recorded, pending, and said so
    unlock = rig.client.post("/api/props/entree/door_lock/unlock", json={})
    assert (unlock.status_code, unlock.json()["confirmed"], unlock.json()["reason"]) == (202, False, "broker")
    assert "NON confirmée (liaison coupée avec les salles)" in unlock.json()["message"]
    assert [a["action"] for a in state(rig)["game"]["audit"]][-2:] == ["emergency", "prop"]

    snap = state(rig)
    assert snap["mqtt"]["connected"] is False
    wait_for(lambda: set(lock_alerts(rig)) == set(LOCKS), what="every lock in the console's red alert")
    assert {a["reason"] for a in lock_alerts(rig).values()} == {"broker"}
    # the orders wait in the MQTT client's queue; resends would only pile up behind them
    wait_for(lambda: min(a["pending_s"] for a in lock_alerts(rig).values()) > 2.5, timeout=5,
             what="every lock pending for more than two resend intervals")
    assert state(rig)["mqtt"]["metrics"].get("resent_commands", 0) == resent_before

    mosquitto.start()
    back = time.monotonic()
    wait_for(lambda: not any(rig.relay_driven(node) for node, _ in LOCKS), timeout=10,
             what="every relay released once the broker is back")
    released_s = time.monotonic() - back
    wait_for(lambda: state(rig)["lock_alerts"] == [], timeout=10, what="the console to show them confirmed")
    confirmed_s = time.monotonic() - back
    props = {(p["node"], p["id"]): p for p in state(rig)["props"]}
    assert all(props[key]["desired"]["confirmed"] for key in LOCKS)
    print(f"\n[emergency, broker down] answer in {answered_s * 1000:.0f} ms: 0/7 confirmed; broker back → every relay released "
          f"{released_s * 1000:.0f} ms later, console confirmed {confirmed_s * 1000:.0f} ms later")


def test_an_unlock_the_room_never_acknowledges_is_named_on_the_console_and_resent_for_ever(
        make_rig, mosquitto):
    rig: Rig = make_rig(GAME, nodes=tuple(n.id for n in GAME.nodes if n.id != "chambre"))
    deaf = DeafNode(host=mosquitto.host, port=mosquitto.port, apartment_id=GAME.apartment.id,
                    node_id="chambre", maglocks=("wardrobe_lock",))
    try:
        registry = rig.service.registry
        wait_for(lambda: registry.nodes["chambre"].online
                 and registry.props[("chambre", "wardrobe_lock")].reported.get("engaged") is True,
                 what="the deaf room online, its lock engaged")
        ordered = time.monotonic()
        reply = rig.client.post("/api/props/chambre/wardrobe_lock/unlock", json={})
        body = reply.json()
        assert reply.status_code == 202, body
        assert (body["confirmed"], body["reason"], body["name"]) == (
            False, "no_answer", "Ventouse de l'armoire (Chambre)")
        assert "bouton d'urgence de la pièce" in body["message"]

        wait_for(lambda: ("chambre", "wardrobe_lock") in lock_alerts(rig), timeout=3,
                 what="the console's red alert for the wardrobe")
        alert_s = time.monotonic() - ordered
        alert = lock_alerts(rig)[("chambre", "wardrobe_lock")]
        assert (alert["label"], alert["room"], alert["action"]) == ("Ventouse de l'armoire", "Chambre", "unlock")
        assert alert_s < 2.5, alert_s

        # resent: 1 s after the order, then less often; never given up
        wait_for(lambda: len(deaf.commands("unlock", since=ordered)) >= 4, timeout=15,
                 what="the unlock to be sent again and again")
        sends = deaf.commands("unlock", since=ordered)
        gaps = [b.at - a.at for a, b in pairwise(sends)]
        assert 0.8 <= gaps[0] <= 2.0 and gaps[1] >= 1.6 and gaps[2] >= 3.2, gaps
        assert len({r.command["id"] for r in sends}) == len(sends), "every resend has an id of its own"
        assert rig.metrics()["resent_commands"] >= 3
        assert lock_alerts(rig)[("chambre", "wardrobe_lock")]["attempts"] >= 3

        # the emergency: six rooms confirm, the deaf one is named as not confirmed
        reply = rig.client.post("/api/emergency", json={})
        body = reply.json()
        assert reply.status_code == 202, body
        assert len(body["confirmed"]) == 6
        assert [(e["name"], e["reason"]) for e in body["unconfirmed"]] == [
            ("Ventouse de l'armoire (Chambre)", "no_answer")]
        assert body["message"].startswith("6 ventouse(s) sur 7 confirmée(s) ouverte(s). NON confirmées : "
                                          "Ventouse de l'armoire (Chambre)")
        print(f"\n[deaf room] red alert on the console {alert_s * 1000:.0f} ms after the unlock; "
              f"resends after {', '.join(f'{g:.1f}' for g in gaps)} s")
    finally:
        deaf.close()


def test_the_emergency_is_retained_until_the_game_master_ends_it_and_a_restarted_controller_says_it_again(
        make_rig, mosquitto, wire):
    rig: Rig = make_rig(fault_game())
    rig.start_game()
    assert rig.client.post("/api/emergency", json={}).status_code == 200
    raised = retained_emergency(wire, rig.topics, since=0.0)
    assert raised.active and raised.who == "game master"

    # while the alert lasts nothing locks: orders that would are refused, in French
    for path in ("/api/game/resume", "/api/props/entree/door_lock/lock"):
        refused = rig.client.post(path, json={})
        assert refused.status_code == 409, refused.text
        assert "alerte d'urgence en cours" in refused.json()["detail"]
        assert "« Fin de l'alerte »" in refused.json()["detail"]
    assert rig.client.post("/api/props/entree/door_lock/unlock", json={}).status_code == 200, \
        "releasing is never refused"
    assert rig.service.engine.phase == "paused"

    # a controller restarted on a broker that lost the retained message says it again
    rig.client.__exit__(None, None, None)
    cleared = time.monotonic()
    wire.publish(rig.topics.emergency, b"", retain=True)
    rig.client = rig.start_controller()
    fresh = Wire(mosquitto)
    try:
        again = retained_emergency(fresh, rig.topics, since=cleared)
    finally:
        fresh.close()
    assert again.active and again.id == raised.id
    assert state(rig)["emergency"]["active"] is True

    # « Fin de l'alerte »: the retained message says so; nothing locks again
    ended_at = time.monotonic()
    ended = rig.client.post("/api/emergency/end", json={})
    assert ended.status_code == 200 and ended.json()["emergency"]["active"] is False
    wait_for(lambda: wire.received(rig.topics.emergency, since=ended_at), what="the end of the alert on the wire")
    end = decode(wire.received(rig.topics.emergency, since=ended_at)[-1].payload, Emergency)
    assert (end.active, end.id) == (False, raised.id)
    # ending it again is harmless, and said again (a node may hold an alert on its disk)
    again_at = time.monotonic()
    assert rig.client.post("/api/emergency/end", json={}).status_code == 200
    wait_for(lambda: wire.received(rig.topics.emergency, since=again_at), what="the end said again")
    assert rig.client.post("/api/game/resume", json={}).status_code == 200
    assert {want.action for want in rig.service.desired.values()} == {"unlock"}, "nothing to relock"
    assert not rig.relay_driven("hall") and not rig.relay_driven("entree")
    audit = [a["action"] for a in state(rig)["game"]["audit"]]
    assert audit.index("emergency_end") > audit.index("emergency")
    assert json.loads(rig.service.store.get_meta("emergency") or "{}")["active"] is False
