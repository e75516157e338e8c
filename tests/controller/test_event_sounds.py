"""The game's event sounds (``sounds:`` of the game file) from outside: a bare paho client
that is not our node code types codes and reports a lock, the room screens' views are read
over HTTP with their own tokens (docs/media.md).

A wrong code, a solve, the budget moving and a lock confirmed open each put one cue on
the screens concerned, once even when the MQTT message comes twice; a lock only
commanded open plays nothing; during the emergency alert nothing is cued.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from config.loader import parse_game
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.controller.conftest import GAME
from tests.controller.test_media import AUTH, logged
from tests.controller.test_phase_music import screen
from tests.faults.rawnode import RawNode

SOUNDS = """\
sounds:
  solved: {file: solved.wav, volume: 0.8}
  wrong_code: {file: wrong.wav}
  unlock: {file: unlock.wav, volume: 0.9}
  budget_up: {file: budget-up.wav}
  budget_down: {file: budget-down.wav}
"""
FILES = {"solved.wav", "wrong.wav", "unlock.wav", "budget-up.wav", "budget-down.wav"}


@pytest.fixture
def sounds_app(embedded_broker: BrokerHandle, tmp_path: Path) -> Iterator[tuple[FastAPI, RawNode]]:
    apartment = f"t{uuid.uuid4().hex[:10]}"
    game = parse_game(GAME.format(apartment_id=apartment) + SOUNDS, media=FILES).game
    application = create_app(game=game, auth=AUTH, db_path=tmp_path / "escape.db",
                             broker=BrokerAddress(embedded_broker.host, embedded_broker.port))
    with TestClient(application):
        hall = RawNode(embedded_broker, apartment=apartment, node="hall", boot=f"b{uuid.uuid4().hex[:8]}")  # type: ignore[arg-type]
        hall.birth()
        try:
            yield application, hall
        finally:
            hall.close()


def cues(client: TestClient) -> list[tuple[int, str]]:
    reply = client.get("/api/state")
    assert reply.status_code == 200, reply.text
    found = reply.json()["game"]["cues"]
    for cue in found:   # the screen can load what it is told to play
        assert cue["url"] and client.get(cue["url"]).status_code == 200
    return [(c["id"], c["file"]) for c in found]


def until(what: Callable[[], bool], *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)


def handled(app: FastAPI, count: int) -> Callable[[], bool]:
    """The controller has admitted or refused as duplicates *count* events in all."""
    service = app.state.service
    return lambda: service.liveness.events_seen + service.bridge.metrics["duplicate_events"] >= count


def test_a_wrong_code_and_a_solve_sent_twice_over_mqtt_play_once_on_their_rooms_screens(
        sounds_app: tuple[FastAPI, RawNode]) -> None:
    app, node = sounds_app
    gm = logged(app, "gm-password")
    hall, salon = screen(app, "hall"), screen(app, "salon")
    assert gm.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200

    for _ in range(2):   # a node's resend after a lost acknowledgement: the same event twice
        node.event("keypad", "code", "0000", seq=1)
    until(handled(app, 2))
    assert [f for _, f in cues(hall)] == ["wrong.wav"]
    assert cues(salon) == []                                  # not its keypad

    for _ in range(2):
        node.event("keypad", "code", "0412", seq=2)
    until(handled(app, 4))
    assert [f for _, f in cues(hall)] == ["wrong.wav", "solved.wav", "budget-down.wav"]
    assert [f for _, f in cues(salon)] == ["budget-down.wav"]   # the budget is on every screen
    ids = [i for i, _ in cues(hall)]
    assert len(set(ids)) == len(ids)                          # a cue id per event

    node.event("keypad", "code", "0412", seq=3)   # the right code again, its puzzle solved: wrong
    node.event("keypad", "code", "9999", seq=4)   # right for a puzzle not open yet: early, not wrong
    until(handled(app, 6))
    assert [f for _, f in cues(hall)][3:] == ["wrong.wav"]

    # the game master solves the bell (salon): its sound there, the budget up everywhere
    assert gm.post("/api/game/puzzles/bell/solve").status_code == 200
    assert [f for _, f in cues(salon)][-2:] == ["solved.wav", "budget-up.wav"]
    assert "solved.wav" not in [f for _, f in cues(hall)][3:]


def test_a_lock_plays_when_its_node_confirms_it_open_not_when_it_is_commanded(
        sounds_app: tuple[FastAPI, RawNode]) -> None:
    app, node = sounds_app
    gm = logged(app, "gm-password")
    hall = screen(app, "hall")
    assert gm.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
    service = app.state.service
    reported = lambda engaged: lambda: (  # noqa: E731
        service.registry.props[("hall", "box_lock")].reported.get("engaged") is engaged)

    node.state("box_lock", engaged=True, locked=True, door="closed")
    until(reported(True))
    assert gm.post("/api/props/hall/box_lock/unlock", json={}).status_code in (200, 202)
    time.sleep(0.3)   # the order went out; the lock has not said it let go
    assert cues(hall) == []

    for _ in range(2):   # the same state twice (a resend): one sound
        node.state("box_lock", engaged=False, locked=False, door="closed")
    until(reported(False))
    until(lambda: [f for _, f in cues(hall)] == ["unlock.wav"])
    time.sleep(0.3)
    assert [f for _, f in cues(hall)] == ["unlock.wav"]


def test_nothing_is_cued_during_the_emergency_alert(sounds_app: tuple[FastAPI, RawNode]) -> None:
    app, node = sounds_app
    gm = logged(app, "gm-password")
    hall = screen(app, "hall")
    assert gm.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
    node.state("box_lock", engaged=True, locked=True, door="closed")
    until(lambda: app.state.service.registry.props[("hall", "box_lock")].reported.get("engaged") is True)
    assert gm.post("/api/emergency", json={}).status_code in (200, 202)
    node.state("box_lock", engaged=False, locked=False, door="closed")
    assert gm.post("/api/game/puzzles/mailbox/solve").status_code == 200   # paused: still solvable
    until(lambda: app.state.service.registry.props[("hall", "box_lock")].reported.get("engaged") is False)
    assert cues(hall) == []
    assert gm.post("/api/emergency/end", json={}).status_code == 200
    assert gm.post("/api/game/resume").status_code == 200
    node.event("keypad", "code", "0000", seq=1)
    until(lambda: cues(hall) != [])
    assert [f for _, f in cues(hall)] == ["wrong.wav"]         # after the alert: sound again


def test_a_clue_chimes_with_the_game_files_sound_instead_of_the_screens_beep(
        embedded_broker: BrokerHandle, tmp_path: Path) -> None:
    game = parse_game(GAME.format(apartment_id=f"t{uuid.uuid4().hex[:10]}") + SOUNDS
                      + "  clue_chime: {file: chime.wav, volume: 0.6}\n", media=FILES | {"chime.wav"}).game
    app = create_app(game=game, auth=AUTH, db_path=tmp_path / "escape.db",
                     broker=BrokerAddress(embedded_broker.host, embedded_broker.port))
    with TestClient(app):
        gm = logged(app, "gm-password")
        hall, salon = screen(app, "hall"), screen(app, "salon")
        assert hall.get("/api/state").json()["game"]["clue_chime"] is True   # no beep then
        assert gm.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
        assert gm.post("/api/clues", json={"text": "Cherchez sous le tapis.", "room": "hall"}).status_code == 200
        assert [f for _, f in cues(hall)] == ["chime.wav"] and cues(salon) == []
        # the screen knows its chime (a clue's voice waits for it to end): the cue names its event
        assert [c["event"] for c in hall.get("/api/state").json()["game"]["cues"]] == ["clue_chime"]
        assert gm.post("/api/clues", json={"puzzle": "mailbox", "index": 1}).status_code == 200   # costs 20
        assert sorted(f for _, f in cues(hall)[1:]) == ["budget-down.wav", "chime.wav"]
        assert [f for _, f in cues(salon)] == ["budget-down.wav"]
        assert {c["file"]: c["event"] for c in hall.get("/api/state").json()["game"]["cues"]} == {
            "chime.wav": "clue_chime", "budget-down.wav": "budget_down"}


def test_a_burst_of_one_cause_is_one_sound_and_a_lost_game_opens_its_doors_silently() -> None:
    """The engine's rule (shipped game, a fake clock): the bills charged at the end are one
    budget sound; two locks of a room confirmed open together are one; a lock opened at a
    defeat plays nothing; a victory's do."""
    from config.loader import SHIPPED_GAME, load_game
    from controller.engine import EVENT_SOUND_GAP_S, Engine

    now = [1000.0]
    engine = Engine(load_game(SHIPPED_GAME), clock=lambda: now[0])
    engine.start(parcours="primo", players=4)
    engine.lock_opened("hall")
    engine.lock_opened("hall")                    # a second lock of the hall, at once
    now[0] += EVENT_SOUND_GAP_S
    engine.lock_opened("hall")                    # later: heard again
    assert [(c.file, c.rooms) for c in engine.cues] == [("unlock.wav", ("hall",))] * 2
    now[0] += engine.remaining() + 1
    engine.tick()                                 # time up: every unpaid bill charged, with its fee
    charged = [b for b in engine.budget_history if b.amount < 0]
    assert len(charged) >= 2
    assert [c.file for c in engine.cues[2:]] == ["budget-down.wav"]
    engine.lock_opened("entree")                  # the doors a defeat opens: no sound
    assert len(engine.cues) == 3


def test_the_doors_a_victory_opens_play_their_sound() -> None:
    from config.loader import SHIPPED_GAME, load_game
    from controller.engine import Engine, Phase

    engine = Engine(load_game(SHIPPED_GAME), clock=lambda: 1000.0)
    engine.start(parcours="primo", players=4)
    final = next(p for p in engine.game.puzzles if p.final and engine.in_parcours(p))
    for puzzle in engine.game.puzzles:
        if engine.in_parcours(puzzle) and puzzle is not final:
            engine.force_solve(puzzle.id)
    engine.force_solve(final.id)
    assert engine.phase == Phase.WON
    before = len(engine.cues)
    engine.lock_opened("entree")
    assert [c.file for c in engine.cues[before:]] == ["unlock.wav"]
    hushed = Engine(load_game(SHIPPED_GAME), clock=lambda: 1000.0, hush=lambda: True)
    hushed.start(parcours="primo", players=4)
    hushed.lock_opened("hall")
    hushed.on_event("hall", "mailbox_keypad", "code", "0000")
    assert hushed.cues == []                      # the emergency alert: nothing cued
