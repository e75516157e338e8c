"""The game engine end to end: simulated nodes on MockFactory, a real broker (amqtt, then
Mosquitto), the controller over HTTP, relay pins read on the nodes' mock pins.

Pre-game check, time up, emergency, a controller restarted cleanly and one killed with
SIGKILL mid-game, and the CSV export of the session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from gpiozero.pins.mock import MockFactory

from controller.main import create_app
from nodes.agent import NodeAgent
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.controller.conftest import GAME, FakeClocks, make_game
from tests.integration.conftest import wait_for
from tests.support.mosquitto import free_port

RELAYS = [("hall", 17), ("salon", 17)]      # box_lock, door_lock
LAMP = ("salon", 23)
ROOT = Path(__file__).resolve().parents[2]


def locked(apt, node: str, pin: int) -> bool:
    return apt.relay_driven(node, pin)


def check_report(client) -> dict:
    return client.get("/api/game/check").json()


def prop_status(report: dict, node: str, prop: str) -> str:
    return next(p["status"] for p in report["props"] if (p["node"], p["prop"]) == (node, prop))


def test_pre_game_check_resets_props_and_waits_for_a_human_to_close_a_door(make_apartment):
    apt = make_apartment(make_game())
    apt.gesture("hall", "keypad", "press", "1")           # a half-typed code
    apt.gesture("salon", "door_lock", "open_door")        # a door left open
    wait_for(lambda: apt.service.registry.props[("hall", "keypad")].reported.get("buffer_length") == 1,
             what="the keypad to report a key")
    report = apt.client.post("/api/game/check", json={"parcours": "primo", "players": 4}).json()
    assert report["phase"] == "check"
    wait_for(lambda: prop_status(check_report(apt.client), "hall", "keypad") == "ready",
             what="the keypad's reset")
    wait_for(lambda: all(locked(apt, n, p) for n, p in RELAYS), what="the check to engage every lock")
    report = check_report(apt.client)
    door = next(p for p in report["props"] if p["prop"] == "door_lock")
    # the prop has no label in this game file: its id stands in for it
    assert (door["status"], door["detail"]) == ("manual_reset", "Fermez la porte : door_lock")
    refused = apt.client.post("/api/game/briefing", json={})
    assert refused.status_code == 409 and "Fermez la porte : door_lock" in refused.json()["detail"]

    apt.gesture("salon", "door_lock", "close_door")
    wait_for(lambda: check_report(apt.client)["ready"], what="every prop to be ready")
    assert apt.client.post("/api/game/briefing", json={}).json()["check_override"] is None
    state = apt.client.post("/api/game/start", json={}).json()
    assert state["phase"] == "running"
    assert [a["action"] for a in state["audit"]] == ["check", "briefing", "start"]


def test_time_up_loses_opens_every_lock_and_the_session_is_in_the_csv(make_apartment):
    clocks = FakeClocks()
    apt = make_apartment(make_game(), clock=clocks.monotonic, wall=clocks.wall)
    session = apt.client.post("/api/game/start", json={"players": 3}).json()["session"]
    wait_for(lambda: all(locked(apt, n, p) for n, p in RELAYS), what="every lock to engage")
    clocks.advance(3600)
    wait_for(lambda: apt.service.engine.phase == "lost", what="the time to run out")
    wait_for(lambda: not any(locked(apt, n, p) for n, p in RELAYS), what="every lock to open")
    csv = apt.client.get("/api/history/sessions.csv").text
    line = next(row for row in csv.splitlines() if session in row)
    assert ";perdu;" in line and ";3;" in line


def test_emergency_mid_game_opens_every_lock_and_is_audited(make_apartment):
    apt = make_apartment(make_game())
    apt.client.post("/api/game/start", json={"players": 2})
    wait_for(lambda: all(locked(apt, n, p) for n, p in RELAYS), what="every lock to engage")
    apt.client.post("/api/clues", json={"text": "Bientôt fini"})
    assert apt.client.post("/api/emergency", json={"who": "Awa"}).status_code == 200
    wait_for(lambda: not any(locked(apt, n, p) for n, p in RELAYS), what="the emergency release")
    state = apt.client.get("/api/state").json()["game"]
    assert state["phase"] == "paused"
    last = state["audit"][-1]
    # the logged-in role (the apartment fixture logs in as the technician), not the body's "who"
    assert (last["action"], last["who"], last["detail"]) == ("emergency", "technician",
                                                             "toutes les serrures ouvertes")


def test_controller_restarted_cleanly_mid_game_resumes_it(make_apartment):
    clocks = FakeClocks()
    apt = make_apartment(make_game(), clock=clocks.monotonic, wall=clocks.wall)
    session = apt.client.post("/api/game/start", json={"players": 4}).json()["session"]
    wait_for(lambda: all(locked(apt, n, p) for n, p in RELAYS), what="every lock to engage")
    clocks.advance(300)
    apt.restart_controller()
    clocks.advance(20)
    state = apt.client.get("/api/state").json()["game"]
    assert (state["session"], state["phase"]) == (session, "running")
    assert state["remaining_s"] == pytest.approx(3600 - 320)
    # The clean stop opened both locks; the box may lock itself again, the exit door waits
    # for the game master.
    wait_for(lambda: locked(apt, "hall", 17), what="the box to be locked again")
    door = next(p for p in apt.client.get("/api/state").json()["props"] if p["id"] == "door_lock")
    assert door["desired"]["relock_pending"] and not locked(apt, "salon", 17)
    assert apt.client.post("/api/props/salon/door_lock/lock", json={}).status_code == 200
    wait_for(lambda: locked(apt, "salon", 17), what="the game master to relock the door")
    # the game goes on, on the same session
    apt.gesture("hall", "keypad", "type", "0412")
    wait_for(lambda: not locked(apt, "hall", 17), what="the right code to open the box")
    assert apt.service.engine.session_id == session and apt.service.engine.budget == 900


CONTROLLER = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import uvicorn
    from config.loader import load_game
    from controller.main import create_app
    from protocol.mqtt import BrokerAddress

    game_file, db, broker_host, broker_port, http_port = sys.argv[2:7]
    app = create_app(game=load_game(game_file), broker=BrokerAddress(broker_host, int(broker_port)),
                     db_path=Path(db))
    uvicorn.run(app, host="127.0.0.1", port=int(http_port), log_level="warning")
""")




@pytest.mark.slow
def test_controller_killed_with_sigkill_mid_game_is_resumed_by_the_next_one(broker: BrokerHandle,
                                                                          tmp_path: Path):
    apartment_id = f"k{os.getpid()}{int(time.time() * 1000) % 100_000}"
    game_file = tmp_path / "game.yaml"
    game_file.write_text(GAME.format(apartment_id=apartment_id), encoding="utf-8")
    game = make_game(apartment_id)
    db = tmp_path / "escape.db"
    address = BrokerAddress(broker.host, broker.port)
    factories = {n.id: MockFactory() for n in game.nodes}
    agents = {n.id: NodeAgent(game=game, node_id=n.id, broker=address, pin_factory=factories[n.id],
                              simulate=True) for n in game.nodes}
    port = free_port()
    child = subprocess.Popen([sys.executable, "-c", CONTROLLER, str(ROOT), str(game_file), str(db),
                              broker.host, str(broker.port), str(port)])
    try:
        for agent in agents.values():
            agent.start()
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return all(n["online"] for n in httpx.get(f"{url}/api/state", timeout=1).json()["nodes"])
            except (httpx.HTTPError, KeyError, ValueError):
                return False

        wait_for(up, timeout=20, what="the first controller to run and see the nodes")
        relay = {n: factories[n].pin(p) for n, p in RELAYS}
        session = httpx.post(f"{url}/api/game/start", json={"players": 4}).json()["session"]
        wait_for(lambda: all(pin.state for pin in relay.values()), what="every lock to engage")
        agents["hall"].simulators["keypad"].perform("type", "0412")
        wait_for(lambda: not relay["hall"].state, what="the box to open")
        wait_for(lambda: httpx.get(f"{url}/api/state").json()["game"]["budget"] == 900,
                 what="the first controller to book the rent")

        os.kill(child.pid, signal.SIGKILL)      # no clean stop: the nodes keep their locks
        child.wait(timeout=5)
        assert relay["salon"].state, "a crashed controller opens nothing"

        app = create_app(game=game, broker=address, db_path=db)
        with TestClient(app) as client:
            state = client.get("/api/state").json()
            assert state["resumed"] == {"session": session, "clean": False, "phase": "running"}
            game_state = state["game"]
            assert game_state["puzzles"][0]["status"] == "solved" and game_state["budget"] == 900
            assert 3500 < game_state["remaining_s"] < 3600
            door = next(p for p in state["props"] if p["id"] == "door_lock")
            assert door["desired"]["action"] == "lock" and not door["desired"]["relock_pending"]
            wait_for(lambda: all(n["online"] for n in client.get("/api/state").json()["nodes"]),
                     what="the new controller to see the nodes")
            assert relay["salon"].state and not relay["hall"].state
            agents["salon"].simulators["bell"].perform("press")
            wait_for(lambda: not relay["salon"].state, what="the next puzzle to open the door")
            assert client.get("/api/state").json()["game"]["session"] == session
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=5)
        for agent in agents.values():
            agent.stop()
