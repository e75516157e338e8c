"""The pre-game check and the rehearsal gestures, from outside: HTTP, a real Mosquitto and a
raw MQTT client that is not our node code.

A group leaves the bathroom window open and the hi-fi button held down: the next group's
check must not say « prêt », must say in French what to put back, and becomes ready once
a hand (a rehearsal gesture) puts each back. A gesture the prop does not have is refused
with the list of those it has, and nothing reaches the broker.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from config.loader import parse_game
from nodes.agent import NodeAgent
from tests.faults.conftest import Rig, Wire, wait_for

pytestmark = pytest.mark.mosquitto

RELAY, SPEAKER = 17, 23

#: the shipped game's bathroom and bedroom, cut down to what this test needs
GAME = parse_game("""\
apartment: {id: depart, name: Départ}
nodes:
  - id: sdb
    label: Salle de bain
    props:
      - {id: window, kind: reed_switch, label: Fenêtre de la salle de bain, pin: 22}
      - {id: vmc_button, kind: button, label: Bouton de la VMC, pin: 23, hold_time: 0.3}
      - {id: cabinet_lock, kind: maglock, label: Ventouse de l'armoire de toilette, relay: 17,
         door: 27, relock_after_restart: true}
  - id: chambre
    label: Chambre
    props:
      - {id: music_button, kind: button, label: Bouton de la chaîne hi-fi, pin: 22}
      - {id: speaker, kind: relay, label: Chaîne hi-fi, pin: 23, initial_value: true}
      - {id: wardrobe_lock, kind: maglock, label: Ventouse de l'armoire, relay: 17}
puzzles:
  - id: damp_bathroom
    label: La salle de bain humide
    theme: upkeep
    room: sdb
    solve:
      when: all
      of:
        - {when: event, prop: sdb.window, event: opened}
        - {when: event, prop: sdb.vmc_button, event: held, min_value: 0.3}
    actions: [{do: unlock, target: sdb.cabinet_lock}]
  - id: noise
    label: Le bruit
    theme: rights
    room: chambre
    requires: [damp_bathroom]
    solve: {when: event, prop: chambre.music_button, event: press}
    actions:
      - {do: command, target: chambre.speaker, action: "off"}
      - {do: unlock, target: chambre.wardrobe_lock}
    final: true
""").game

WINDOW, MUSIC = ("sdb", "window"), ("chambre", "music_button")


def sim(rig: Rig, prop: tuple[str, str], gesture: str, value: Any = None) -> Any:
    return rig.client.post(f"/api/sim/{prop[0]}/{prop[1]}", json={"gesture": gesture, "value": value})


def check(rig: Rig) -> dict[str, Any]:
    return rig.client.get("/api/game/check").json()  # type: ignore[no-any-return]


def status(report: dict[str, Any], prop: tuple[str, str]) -> dict[str, Any]:
    return next(p for p in report["props"] if (p["node"], p["prop"]) == prop)


def reported(rig: Rig, prop: tuple[str, str]) -> dict[str, Any]:
    return rig.service.registry.props[prop].reported


def test_a_window_left_open_and_a_button_held_keep_the_next_check_from_being_ready(make_rig):
    rig: Rig = make_rig(GAME)
    # -- first group: a clean check, then the game ----------------------------------------
    assert rig.client.post("/api/game/check", json={"players": 3}).status_code == 200
    wait_for(lambda: check(rig)["ready"], what="the first check to be ready")
    assert rig.client.post("/api/game/briefing", json={}).json()["check_override"] is None
    assert rig.client.post("/api/game/start", json={}).status_code == 200

    assert sim(rig, WINDOW, "open").status_code == 200
    assert sim(rig, ("sdb", "vmc_button"), "hold", 0.5).status_code == 200
    wait_for(lambda: rig.puzzle("damp_bathroom")["status"] == "solved", what="the bathroom puzzle")
    # the group leaves a book on the hi-fi button: its contact closed, never released
    rig.factories["chambre"].pin(22).drive_low()
    wait_for(lambda: rig.service.engine.phase == "won", what="the game to be won")
    wait_for(lambda: reported(rig, MUSIC).get("pressed") is True, what="the button reported held")
    assert reported(rig, WINDOW).get("closed") is False

    # -- next group: the check names both, in French, and will not brief --------------------
    assert rig.client.post("/api/game/reset", json={}).status_code == 200
    assert rig.client.post("/api/game/check", json={"players": 4}).status_code == 200
    # the locks and the music: the check's own commands bring them back
    wait_for(lambda: all(p["status"] == "ready" for p in check(rig)["props"]
                         if (p["node"], p["prop"]) not in (WINDOW, MUSIC)),
             what="the check's commands to be applied")
    report = check(rig)
    assert not report["ready"]
    window, music = status(report, WINDOW), status(report, MUSIC)
    assert (window["status"], window["detail"]) == ("manual_reset", "Fermez : Fenêtre de la salle de bain")
    assert (music["status"], music["detail"]) == ("manual_reset", "Relâchez : Bouton de la chaîne hi-fi")
    assert window["instruction"]["key"] == "close" and music["instruction"]["key"] == "release"
    assert sorted(report["not_ready"]) == ["Fermez : Fenêtre de la salle de bain",
                                           "Relâchez : Bouton de la chaîne hi-fi"]
    refused = rig.client.post("/api/game/briefing", json={})
    assert refused.status_code == 409
    assert "Fermez : Fenêtre de la salle de bain" in refused.json()["detail"]
    assert "Relâchez : Bouton de la chaîne hi-fi" in refused.json()["detail"]

    # -- a hand puts them back: the check becomes ready on its own ------------------------
    assert sim(rig, WINDOW, "close").status_code == 200
    assert sim(rig, MUSIC, "release").status_code == 200
    took = wait_for(lambda: check(rig)["ready"], what="the check to see both put back")
    assert took < 2.0
    assert rig.factories["chambre"].pin(SPEAKER).state, "the music plays again before the game"
    assert rig.client.post("/api/game/briefing", json={}).json()["check_override"] is None


def test_an_unknown_gesture_is_refused_with_the_known_ones_and_nothing_is_published(make_rig, wire: Wire):
    rig: Rig = make_rig(GAME)
    topic = rig.topics.prop_simulate(*MUSIC)
    wire.subscribe(f"{rig.topics.root}/nodes/+/props/+/simulate", rig.topics.prop_event(*MUSIC),
                   rig.topics.prop_state(*MUSIC))

    reply = sim(rig, MUSIC, "tap")
    assert reply.status_code == 422
    body = reply.json()
    assert body["detail"].startswith("geste inconnu « tap » pour Bouton de la chaîne hi-fi ; gestes possibles : ")
    assert "appuyer (puis relâcher) (press)" in body["detail"] and "relâcher (release)" in body["detail"]
    assert [g["gesture"] for g in body["gestures"]] == ["press", "hold", "down", "release"]
    # a gesture of another kind, a bad value, a prop with no gesture at all
    assert sim(rig, WINDOW, "press").status_code == 422
    bad_value = sim(rig, MUSIC, "hold", "long")
    assert bad_value.status_code == 422 and "secondes" in bad_value.json()["detail"]
    none = sim(rig, ("chambre", "speaker"), "press")
    assert none.status_code == 422 and none.json()["gestures"] == []
    assert "gestes possibles : aucun" in none.json()["detail"]
    assert sim(rig, ("chambre", "nope"), "press").status_code == 404

    # a good one goes out — the first and only message on the simulate topics — and, being a
    # whole gesture, the button is pressed then released
    assert sim(rig, MUSIC, "press").status_code == 200
    wait_for(lambda: [e for e in wire.received(rig.topics.prop_event(*MUSIC))
                      if json.loads(e.payload)["type"] == "release"], what="the button's release event")
    simulated = [m for m in wire.seen if m.topic.endswith("/simulate")]
    assert [(m.topic, json.loads(m.payload)["gesture"]) for m in simulated] == [(topic, "press")]
    events = [json.loads(e.payload)["type"] for e in wire.received(rig.topics.prop_event(*MUSIC))]
    assert events == ["press", "release"]
    wait_for(lambda: reported(rig, MUSIC).get("pressed") is False, what="the button reported released")
    assert rig.agents["chambre"].metrics["bad_gestures"] == 0


def test_a_hand_holding_a_button_does_not_hold_up_the_room_s_commands(make_rig):
    rig: Rig = make_rig(GAME)
    rig.client.post("/api/props/sdb/cabinet_lock/lock", json={})
    wait_for(lambda: rig.relay_driven("sdb"), what="the cabinet to lock")
    button = rig.factories["sdb"].pin(23)
    assert sim(rig, ("sdb", "vmc_button"), "hold", 3).status_code == 200
    wait_for(lambda: not button.state, what="the simulated finger on the VMC button")
    started = time.monotonic()
    assert rig.client.post("/api/props/sdb/cabinet_lock/unlock", json={}).status_code == 200
    wait_for(lambda: not rig.relay_driven("sdb"), timeout=2, what="the cabinet to open")
    assert time.monotonic() - started < 1.0 and not button.state, "opened while the button is still held"
    wait_for(lambda: button.state, timeout=5, what="the finger to let go after its 3 s")


def test_a_gesture_for_a_node_offline_or_on_real_hardware_is_refused_not_lost(make_rig, wire: Wire):
    rig: Rig = make_rig(GAME)
    wire.subscribe(f"{rig.topics.root}/nodes/+/props/+/simulate")
    rig.agents["chambre"].stop()
    wait_for(lambda: not rig.service.registry.nodes["chambre"].online, what="the bedroom offline")
    offline = sim(rig, MUSIC, "press")
    assert offline.status_code == 503
    assert offline.json()["detail"] == "le nœud Chambre est hors ligne : le geste n'arriverait pas"

    # the same room, now driving (mock) hardware without --simulate: it would drop a gesture
    real = NodeAgent(game=GAME, node_id="chambre", broker=rig.address, pin_factory=MockFactory(),
                     simulate=False, data_dir=rig.tmp_path / "nodes" / "chambre-real")
    real.start()
    try:
        wait_for(lambda: rig.service.registry.nodes["chambre"].online
                 and rig.service.registry.nodes["chambre"].simulated is False,
                 what="the bedroom back, not simulated")
        refused = sim(rig, MUSIC, "press")
        assert refused.status_code == 409 and "sans --simulate" in refused.json()["detail"]
    finally:
        real.stop()
    assert sim(rig, WINDOW, "open").status_code == 200     # the bathroom still rehearses
    wait_for(lambda: wire.received(rig.topics.prop_simulate(*WINDOW)), what="the window gesture")
    assert [m.topic for m in wire.seen if m.topic.endswith("/simulate")] == [rig.topics.prop_simulate(*WINDOW)]
