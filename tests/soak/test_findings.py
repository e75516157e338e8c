"""Bugs the soak (``python -m soak``) found, each reproduced here through HTTP or MQTT alone.

Each test states the behaviour the rules ask for and failed on the code before its fix. A
bug found and not fixed yet gets its test here marked ``xfail(strict=True)`` (pytest
reports XPASS as a failure once it is fixed: then the mark comes off, with the check's
entry in ``soak.invariants.KNOWN``, if it has one).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config.loader import SHIPPED_GAME, load_game
from controller.main import create_app
from protocol.contract import Emergency, Topics, new_id
from protocol.mqtt import BrokerAddress
from soak.wire import Wire
from tests.conftest import BrokerHandle
from tests.faults.conftest import NodeProcess, _Process, game_file, mosquitto, processes
from tests.faults.conftest import Wire as FaultWire
from tests.integration.conftest import wait_for
from tests.support.diskfull import fill, small_tmpfs
from tests.support.fake_controller import FakeController
from tests.support.mosquitto import Mosquitto

__all__ = ["mosquitto", "processes"]   # the fault suite's fixtures, used here


@pytest.fixture
def client(embedded_broker: BrokerHandle, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(game=load_game(SHIPPED_GAME),
                     broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                     db_path=tmp_path / "escape.db")
    with TestClient(app, headers={"Content-Type": "application/json"}) as c:
        yield c


def test_time_changed_during_the_briefing_is_still_there_once_the_game_runs(client: TestClient) -> None:
    assert client.post("/api/game/check", json={"parcours": "primo", "players": 3}).status_code == 200
    briefing = client.post("/api/game/briefing", json={"override_reason": "répétition"})
    assert briefing.status_code == 200, briefing.text
    changed = client.post("/api/game/time", json={"seconds": 600})
    assert changed.status_code == 200, changed.text
    assert changed.json()["duration_s"] == 3600 + 600     # the answer says it is taken
    started = client.post("/api/game/start", json={"parcours": "primo", "players": 3})
    assert started.status_code == 200, started.text
    # the order was accepted and is in the audit log; the run must keep it
    assert [a["detail"] for a in started.json()["audit"] if a["action"] == "time"] == ["+600 s"]
    assert started.json()["duration_s"] == 3600 + 600


def test_an_evaluation_during_a_full_disk_is_not_refused_as_not_ended(
        embedded_broker: BrokerHandle, tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "data", size_kb=1024) as data:
        app = create_app(game=load_game(SHIPPED_GAME),
                         broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                         db_path=data / "escape.db")
        with TestClient(app, headers={"Content-Type": "application/json"}) as client:
            started = client.post("/api/game/start", json={"parcours": "primo", "players": 3})
            assert started.status_code == 200, started.text
            session = started.json()["session"]
            fill(data / "filler")
            assert client.post("/api/game/puzzles/waste_sorting/skip", json={}).status_code == 200
            won = client.post("/api/game/puzzles/waste_sorting/solve", json={})
            assert won.status_code == 200 and won.json()["phase"] == "won", won.text
            wait_for(lambda: client.get("/api/health").status_code == 503,
                     what="the health to say the session log cannot be written")
            answer = client.put(f"/api/history/sessions/{session}/evaluation",
                                json={"rating": 4, "learned": ["budget"], "comment": ""})
            assert "pas terminée" not in answer.text, (answer.status_code, answer.text)
            assert answer.status_code == 503, (answer.status_code, answer.text)
            assert "disque plein" in answer.json()["detail"]
            # the space back: the same evaluation is taken, on the session as it ended
            (data / "filler").unlink()
            again = client.put(f"/api/history/sessions/{session}/evaluation",
                               json={"rating": 4, "learned": ["budget"], "comment": ""})
            assert again.status_code == 200, again.text
            row = client.get(f"/api/history/sessions/{session}").json()
            assert row["result"] == "won" and row["evaluation"]["rating"] == 4, row


@pytest.mark.mosquitto
def test_a_broker_back_on_an_old_save_does_not_bring_back_an_ended_emergency(
        mosquitto: Mosquitto, tmp_path: Path, processes: list[_Process]) -> None:
    topics = Topics("faults")
    state = topics.prop_state("entree", "door_lock")
    seen = Wire(port=mosquitto.port, username="soak", password="soak", root=topics.root)
    wire = FaultWire(mosquitto)
    controller = FakeController(publish=wire.publish, topics=topics, heartbeat=0.3).start()
    try:
        assert seen.connected.wait(10)
        processes.append(NodeProcess(node_id="entree", game=game_file(tmp_path), broker=mosquitto.address,
                                     data_dir=tmp_path / "entree", log=tmp_path / "entree.log"))

        def engaged() -> bool | None:
            fields = seen.state_fields("entree", "door_lock")
            return None if fields is None else fields.get("engaged")

        wait_for(lambda: (seen.status("entree") or {}).get("online"), timeout=30, what="the entrée online")
        controller.send("entree", "door_lock", controller.command("lock"))
        wait_for(lambda: engaged() is True, what="the exit door locked")
        # the game master's emergency, while the broker saves (its autosave; SIGUSR1 now)
        raised = Emergency(active=True, id=f"em{new_id()}", who="game master")
        wire.publish(topics.emergency, raised.to_bytes(), retain=True)
        wait_for(lambda: engaged() is False, what="the emergency to release the door")
        saved = mosquitto.data_dir / "mosquitto.db"
        mtime = saved.stat().st_mtime_ns if saved.exists() else 0
        assert mosquitto.process is not None
        mosquitto.process.send_signal(signal.SIGUSR1)
        wait_for(lambda: saved.exists() and saved.stat().st_mtime_ns != mtime, what="the broker's save")
        # « Fin de l'alerte », then the game master locks the door again
        wire.publish(topics.emergency, Emergency(active=False, id=raised.id, who="game master").to_bytes(),
                     retain=True)
        time.sleep(0.3)
        controller.send("entree", "door_lock", controller.command("lock"))
        wait_for(lambda: engaged() is True, what="the door locked again")
        # the broker dies before its next save, and comes back on the old one
        since = time.monotonic()
        mosquitto.kill()
        mosquitto.start()
        wait_for(lambda: any(m.parts[-1] == "status" and m.data and m.data.get("online")
                             for m in seen.since(since) if "entree" in m.topic), timeout=30,
                 what="the entrée back on the broker")
        time.sleep(2.0)
        # (what the broker's save retained, engaged: false from the emergency, is not the
        # node's doing: only what the node publishes now counts)
        released = [m.data for m in seen.since(since) if m.topic == state and not m.retain
                    and m.data and m.data.get("engaged") is False]
        # (the broker hands the ended emergency back as active: it is in its save; a node
        # must not take it for a new one, whatever the fix — a node that remembers the ids
        # it saw cleared, a broker that saves each change)
        assert released == [], "the exit door was released by an emergency the game master had ended"
    finally:
        controller.stop()
        wire.close()
        seen.close()
