"""The game master's hand on the screens' sound, from outside: HTTP and the WebSocket over
the real app with access control on (docs/media.md, "The console's hand").

A room's volume and the global mute are kept by the controller (a console reloaded, a
controller restarted on the same data find them), reach the room screens' views at
once, and are audited; bad input is refused in French and changes nothing. What the
console says plays in a room is what that room's screen reported, and a screen that
stopped reporting is shown off line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from config.game import Game
from controller.api.auth import AuthSettings
from controller.main import create_app
from controller.mixer import SILENT_S
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.controller.conftest import FakeClocks
from tests.support.livefeed import LiveFeed

AUTH = AuthSettings(gm_password="gm-password", tech_password="tech-password",
                    screen_secret="mix-screen-secret", session_secret="mix-session-secret")
JSON = {"Content-Type": "application/json"}


@contextmanager
def running(broker: BrokerHandle, db: Path, game: Game, clocks: FakeClocks | None = None) -> Iterator[FastAPI]:
    extra = {} if clocks is None else {"clock": clocks.monotonic, "wall": clocks.wall}
    application = create_app(game=game, auth=AUTH, db_path=db,
                             broker=BrokerAddress(broker.host, broker.port), **extra)
    with TestClient(application, headers=JSON) as client:
        application.state.lifespan_client = client
        yield application


def gm_of(app: FastAPI) -> TestClient:
    """The game master, on the client that runs the app's loop (its WebSocket gets the
    pushes the controller's timer makes); a second call logs in again (a console reloaded)."""
    client = app.state.lifespan_client
    assert client.post("/api/login", json={"password": AUTH.gm_password}).status_code == 200
    return client


def screen_of(app: FastAPI, room: str) -> TestClient:
    return TestClient(app, headers={**JSON, "X-Screen-Token": AUTH.screen_token(room)})


def mix(gm: TestClient) -> dict:
    reply = gm.get("/api/media/mix")
    assert reply.status_code == 200, reply.text
    return reply.json()


def room(view: dict, name: str) -> dict:
    return next(r for r in view["rooms"] if r["room"] == name)


def french_422(reply, words: str) -> None:
    assert reply.status_code == 422, reply.text
    body = reply.json()
    assert words in body["detail"], body
    assert body["detail_en"] and body["detail_en"] != body["detail"]


def test_volume_and_mute_reach_the_screens_and_survive_a_console_reload_and_a_restart(
        embedded_broker: BrokerHandle, tmp_path: Path, game: Game) -> None:
    db = tmp_path / "escape.db"
    with running(embedded_broker, db, game) as app:
        gm = gm_of(app)
        assert gm.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
        fresh = mix(gm)
        assert fresh["muted"] is False and {r["volume"] for r in fresh["rooms"]} == {1.0}
        reply = gm.post("/api/media/volume", json={"room": "hall", "volume": 0.3})
        assert reply.status_code == 200, reply.text
        assert room(reply.json(), "hall")["volume"] == 0.3
        assert gm.post("/api/media/mute", json={"muted": True}).json()["muted"] is True
        # a room screen's own view carries its room's volume and the mute
        hall, salon = screen_of(app, "hall"), screen_of(app, "salon")
        assert hall.get("/api/state").json()["game"]["sound"] == {"volume": 0.3, "muted": True}
        assert salon.get("/api/state").json()["game"]["sound"] == {"volume": 1.0, "muted": True}
        # a console reloaded (a new login, the staff snapshot) finds them
        again = gm_of(app).get("/api/state").json()["media"]
        assert again["muted"] is True and room(again, "hall")["volume"] == 0.3
        audit = [(a["action"], a["target"], a["detail"]) for a in gm.get("/api/state").json()["game"]["audit"]]
        assert ("media_volume", "hall", "30 %") in audit and ("media_mute", None, None) in audit
    # the controller restarted on the same data
    with running(embedded_broker, db, game) as app:
        gm = gm_of(app)
        kept = mix(gm)
        assert kept["muted"] is True and room(kept, "hall")["volume"] == 0.3
        assert room(kept, "salon")["volume"] == 1.0
        assert screen_of(app, "hall").get("/api/state").json()["game"]["sound"] == {"volume": 0.3, "muted": True}
        assert gm.post("/api/media/mute", json={"muted": False}).json()["muted"] is False


def test_bad_input_is_refused_in_french_and_changes_nothing(
        embedded_broker: BrokerHandle, tmp_path: Path, game: Game) -> None:
    with running(embedded_broker, tmp_path / "escape.db", game) as app:
        gm = gm_of(app)
        assert gm.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
        assert gm.post("/api/media/volume", json={"room": "salon", "volume": 0.6}).status_code == 200
        before, cues = mix(gm), screen_of(app, "salon").get("/api/state").json()["game"]["cues"]
        audit = len(gm.get("/api/state").json()["game"]["audit"])

        french_422(gm.post("/api/media/volume", json={"room": "cave", "volume": 0.5}), "pièce inconnue")
        french_422(gm.post("/api/media/volume", json={"room": "salon", "volume": -0.1}), "volume")
        french_422(gm.post("/api/media/volume", json={"room": "salon", "volume": 1.01}), "volume")
        french_422(gm.post("/api/media/volume", content=b'{"room": "salon", "volume": NaN}'), "volume")
        french_422(gm.post("/api/media/volume", content=b'{"room": "salon", "volume": Infinity}'), "volume")
        french_422(gm.post("/api/media/volume", json={"room": "salon", "volume": "fort"}), "volume")
        french_422(gm.post("/api/media/volume", json={"room": "salon"}), "volume")
        french_422(gm.post("/api/media/mute", json={"muted": "peut-être"}), "muted")
        french_422(gm.post("/api/media/play", json={"file": "absent.wav", "room": "salon"}),
                   "n'est pas dans la médiathèque")
        french_422(gm.post("/api/media/play", json={"file": "chime.wav", "room": ["salon", "cave"]}),
                   "pièce inconnue")
        french_422(gm.post("/api/media/play", json={"file": "chime.wav", "volume": 2}), "volume")
        french_422(gm.post("/api/media/stop", json={"room": "cave"}), "pièce inconnue")

        assert mix(gm) == before
        assert screen_of(app, "salon").get("/api/state").json()["game"]["cues"] == cues
        assert len(gm.get("/api/state").json()["game"]["audit"]) == audit


def report(screen: TestClient, room_id: str, items: list[dict], page: str = "tv1", **extra: object):
    return screen.post("/api/media/playing", json={"room": room_id, "screen": page, "items": items, **extra})


MUSIC = {"key": "music-game", "file": "ambiance.wav", "kind": "music", "paused": False, "muted": False,
         "volume": 0.3, "played_s": 12.0}


def test_the_console_shows_what_each_screen_reports_and_a_silent_screen_off_line(
        embedded_broker: BrokerHandle, tmp_path: Path, game: Game, clocks: FakeClocks) -> None:
    with running(embedded_broker, tmp_path / "escape.db", game, clocks) as app:
        gm, hall = gm_of(app), screen_of(app, "hall")
        # nothing reported yet: no room is said to play anything
        assert {(r["screen"], len(r["playing"])) for r in mix(gm)["rooms"]} == {("offline", 0)}
        # a cue sent is not something playing until the screen says so
        assert gm.post("/api/media/play", json={"file": "chime.wav", "room": "hall"}).status_code == 200
        assert room(mix(gm), "hall") == {"room": "hall", "volume": 1.0, "screen": "offline", "playing": []}

        assert report(hall, "hall", []).status_code == 200
        assert room(mix(gm), "hall")["screen"] == "online" and room(mix(gm), "hall")["playing"] == []
        assert report(hall, "hall", [MUSIC]).json() == {"ok": True}
        playing = room(mix(gm), "hall")["playing"]
        assert playing == [{"file": "ambiance.wav", "kind": "music", "paused": False, "muted": False,
                            "volume": 0.3, "since": round(clocks.now - 12.0)}]
        # the next report of the same element keeps its date (its played time is the screen's guess)
        clocks.advance(3)
        assert report(hall, "hall", [{**MUSIC, "played_s": 15.4, "paused": True}]).status_code == 200
        assert room(mix(gm), "hall")["playing"][0]["since"] == playing[0]["since"]
        assert room(mix(gm), "hall")["playing"][0]["paused"] is True

        # a screen speaks for its own room only; a malformed report changes nothing
        assert report(hall, "salon", [MUSIC]).status_code == 403
        french_422(report(hall, "hall", [{**MUSIC, "kind": "karaoke"}]), "kind")
        french_422(report(hall, "hall", [{**MUSIC, "volume": 3}]), "volume")
        french_422(report(hall, "hall", [MUSIC], page="../../x"), "screen")
        assert room(mix(gm), "salon")["screen"] == "offline"
        assert room(mix(gm), "hall")["playing"][0]["paused"] is True

        # the console's live view turns « hors ligne » on its own when the screen goes silent
        with gm.websocket_connect("/ws") as ws:
            feed = LiveFeed()
            view = feed.receive(ws)
            assert room(view["media"], "hall")["screen"] == "online"
            clocks.advance(SILENT_S + 1)
            for _ in range(50):   # pushed by the controller's timer, no message needed
                view = feed.receive(ws)
                if view is not None and room(view["media"], "hall")["screen"] == "offline":
                    break
            assert room(view["media"], "hall") == {"room": "hall", "volume": 1.0, "screen": "offline",
                                                   "playing": []}

        # back, then gone: a page that closes says so and is off line at once
        assert report(hall, "hall", [MUSIC]).status_code == 200
        assert room(mix(gm), "hall")["screen"] == "online"
        assert report(hall, "hall", [], gone=True).status_code == 200
        assert room(mix(gm), "hall")["screen"] == "offline"


@pytest.mark.parametrize("volume", [0.0, 1.0])
def test_the_volume_bounds_themselves_are_accepted(embedded_broker: BrokerHandle, tmp_path: Path,
                                                   game: Game, volume: float) -> None:
    with running(embedded_broker, tmp_path / "escape.db", game) as app:
        gm = gm_of(app)
        assert room(gm.post("/api/media/volume", json={"room": "hall", "volume": volume}).json(),
                    "hall")["volume"] == volume
