"""Each room screen's view names the music its room plays now, from the game file's
``music:`` and the moment of the game (welcome, game, last minutes, victory, defeat),
seen from outside: HTTP, with the screen's own token (docs/media.md)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from config.loader import parse_game
from tests.conftest import BrokerHandle
from tests.controller.conftest import GAME
from tests.controller.test_media import logged, running, screen

MUSIC = """\
music:
  hall:
    welcome: {file: ambiance.wav, volume: 0.3}
    game: {file: ambiance.wav, volume: 0.25}
    last_minutes: {file: wrong.wav, volume: 0.6}
    victory: {file: solved.wav, volume: 0.9}
    defeat: {file: chime.wav, volume: 0.4}
"""
FILES = {"ambiance.wav", "wrong.wav", "solved.wav", "chime.wav"}


@pytest.fixture
def music_app(embedded_broker: BrokerHandle, tmp_path: Path) -> Iterator[FastAPI]:
    game = parse_game(GAME.format(apartment_id=f"t{uuid.uuid4().hex[:10]}") + MUSIC, media=FILES).game
    with running(game, embedded_broker, tmp_path) as application:
        yield application


def music(client: TestClient) -> tuple[str, str, float] | None:
    reply = client.get("/api/state")
    assert reply.status_code == 200, reply.text
    m = reply.json()["game"]["music"]
    if m is not None:
        assert client.get(m["url"]).status_code == 200   # the screen can load what it is told to play
    return None if m is None else (m["moment"], m["file"], m["volume"])


def test_the_screen_view_carries_its_rooms_music_for_each_moment_of_the_game(music_app: FastAPI) -> None:
    gm = logged(music_app, "gm-password")
    hall, salon = screen(music_app, "hall"), screen(music_app, "salon")
    group = {"parcours": "primo", "players": 4}
    assert music(hall) is None                                      # idle: no music
    assert gm.post("/api/game/check", json=group).status_code == 200, "check"
    assert music(hall) == ("welcome", "ambiance.wav", 0.3)
    assert music(salon) is None                                     # no music for this room
    assert gm.post("/api/game/start", json={**group, "override_reason": "essai"}).status_code == 200
    assert music(hall) == ("game", "ambiance.wav", 0.25)
    assert music(salon) is None
    preload = hall.get("/api/state").json()["game"]["preload"]     # loaded before it is needed
    assert {p["file"] for p in preload} == FILES

    remaining = gm.get("/api/state").json()["game"]["remaining_s"]
    assert gm.post("/api/game/time", json={"seconds": -int(remaining - 290)}).status_code == 200
    assert music(hall) == ("last_minutes", "wrong.wav", 0.6)        # under 5 minutes left

    assert gm.post("/api/game/puzzles/final/skip").status_code == 200
    assert gm.post("/api/game/puzzles/final/solve").status_code == 200
    assert gm.get("/api/state").json()["game"]["phase"] == "won"
    assert music(hall) == ("victory", "solved.wav", 0.9)
    assert gm.post("/api/game/debrief").status_code == 200
    assert music(hall) == ("victory", "solved.wav", 0.9)            # still, while the group is told
    assert gm.post("/api/game/reset").status_code == 200
    assert music(hall) is None


def test_the_defeat_music_plays_when_the_time_is_up(music_app: FastAPI) -> None:
    gm = logged(music_app, "gm-password")
    hall = screen(music_app, "hall")
    assert gm.post("/api/game/start", json={"parcours": "primo", "players": 4,
                                            "override_reason": "essai"}).status_code == 200
    remaining = gm.get("/api/state").json()["game"]["remaining_s"]
    assert gm.post("/api/game/time", json={"seconds": -int(remaining - 2)}).status_code == 200
    deadline = time.monotonic() + 15
    while gm.get("/api/state").json()["game"]["phase"] != "lost":
        assert time.monotonic() < deadline, "the time did not run out"
        time.sleep(0.1)
    assert music(hall) == ("defeat", "chime.wav", 0.4)
