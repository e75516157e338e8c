"""Fault: the controller's disk fills up in the middle of a game; a controller killed in the
middle of a batch of writes.

What the players see: nothing — the game goes on, a code still opens its lock. What the
game master sees: ``/api/health`` answers 503 « degraded » with the store's error, how
many rows wait and since when, and the console a banner
(``tests/browser/test_store_banner.py``); once space is freed, every row of the game is
written, each exactly once, in order. A ``kill -9`` loses at most the rows of the last
``FLUSH_AFTER_S`` (docs/engine.md, "Write-through").

A real controller process under uvicorn, its database on a small tmpfs that another file
fills (``tests/support/diskfull.py``: needs root or password-less sudo, fails instead of
skipping under ``ESCAPE_REQUIRE_TMPFS=1``); the room is a raw MQTT client numbering its
events; the session log is counted with ``sqlite3`` once the controller has stopped.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.journal import FLUSH_AFTER_S, RETRY_MAX_S
from protocol.contract import Command, Topics
from tests.faults.conftest import ControllerProcess, game_file, wait_for
from tests.support.diskfull import RawRoom, fill, small_tmpfs

pytestmark = pytest.mark.mosquitto


def health(controller: ControllerProcess) -> tuple[int, dict[str, Any]]:
    reply = httpx.get(f"{controller.url}/api/health", timeout=5)
    return reply.status_code, reply.json()


def last_key(controller: ControllerProcess) -> int:
    """The number of the last plain key event the controller has handled (0: none)."""
    state = controller.state() or {}
    for prop in state.get("props", []):
        if (prop["node"], prop["id"]) == ("hall", "mailbox_keypad"):
            last = prop.get("last_event") or {}
            return int(last["value"]) if last.get("type") == "key" else -1
    return 0


def session_log(db: Path, session: str) -> tuple[list[str], list[dict[str, Any]], list[str], int]:
    """Prop event values, audit entries and note texts of *session*, and the rejects count."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        values = [json.loads(r["value"]) for r in con.execute(
            "SELECT value FROM events WHERE session_id = ? AND kind = 'prop' ORDER BY id", (session,))]
        audit = [dict(r) for r in con.execute(
            "SELECT at, who, action, target, detail FROM audit WHERE session_id = ? ORDER BY id",
            (session,))]
        notes = [r["text"] for r in con.execute(
            "SELECT text FROM events WHERE session_id = ? AND kind != 'prop' ORDER BY id", (session,))]
        rejects = con.execute("SELECT COUNT(*) FROM rejects").fetchone()[0]
    finally:
        con.close()
    return values, audit, notes, rejects


def test_a_full_disk_mid_game_loses_nothing_and_says_so(mosquitto, tmp_path: Path, processes) -> None:
    with small_tmpfs(tmp_path / "data", size_kb=1024) as data:
        db = data / "escape.db"
        controller = ControllerProcess(game=game_file(tmp_path), db=db, broker=mosquitto,
                                       log=tmp_path / "controller.log")
        processes.append(controller)
        wait_for(lambda: controller.state() is not None, timeout=30, what="the controller to serve")
        room = RawRoom(mosquitto.host, mosquitto.port, Topics("faults"), "hall")
        try:
            room.birth()
            wait_for(lambda: controller.state()["nodes"][0]["online"], what="the hall online")
            reply = controller.post("/api/game/start", {"parcours": "primo", "players": 3})
            assert reply.status_code == 200, reply.text
            session = reply.json()["session"]
            keys: list[str] = []

            def play(n: int) -> None:
                for _ in range(n):
                    keys.append(str(room.event("mailbox_keypad")))
                wait_for(lambda: last_key(controller) == room.seq, timeout=20,
                         what=f"the controller to handle key {room.seq}")

            # -- the disk has room: the game writes as usual ------------------------------
            play(20)
            assert health(controller)[0] == 200

            # -- another file fills the disk: the game goes on ----------------------------
            filled = fill(data / "filler")
            full_at = time.monotonic()
            play(20)
            wait_for(lambda: health(controller)[0] == 503, timeout=20, what="/api/health to say so")
            detected = time.monotonic() - full_at
            for path, body in (("/api/game/time", {"seconds": 60}), ("/api/game/pause", {}),
                               ("/api/game/resume", {})):
                assert controller.post(path, body).status_code == 200
            play(20)
            code_at = time.monotonic()
            keys.append("0412")
            room.event("mailbox_keypad", "code", "0412")   # the mailbox's code: solved, unlocked
            wait_for(lambda: any(Command.model_validate_json(c).action == "unlock"
                                 for c in room.commands("mailbox_lock")), timeout=20,
                     what="the mailbox lock to be told to open")
            opened = time.monotonic() - code_at
            state = controller.state()
            assert next(p for p in state["game"]["puzzles"] if p["id"] == "mailbox")["status"] == "solved"
            play(10)
            status, body = health(controller)
            assert status == 503 and body["status"] == "degraded" and body["ok"] is False
            store = body["store"]
            assert "full" in store["error"], store
            assert store["waiting"] > 0 and store["since"] is not None and store["failing_s"] > 0
            assert state["store"]["ok"] is False, "the console's snapshot says it too"
            # full for a while: the writes are tried again, and fail again, with back-off
            wait_for(lambda: health(controller)[1]["store"]["failures"] >= 4, timeout=20,
                     what="the store to try again and fail again")
            play(10)
            waiting = health(controller)[1]["store"]["waiting"]

            # -- space freed: everything waiting is written --------------------------------
            (data / "filler").unlink()
            freed_at = time.monotonic()
            wait_for(lambda: health(controller)[0] == 200, timeout=RETRY_MAX_S + 10,
                     what="/api/health to be ok again")
            recovery = time.monotonic() - freed_at
            recovered = health(controller)[1]["store"]["recovered"]
            play(10)
            final = controller.state()
        finally:
            room.close()
        controller.stop()
        assert controller.process.returncode in (0, -signal.SIGTERM), "a clean stop (uvicorn re-raises SIGTERM)"

        values, audit, notes, rejects = session_log(db, session)
        assert values == keys, "every event of the game, once, in order"
        assert not [v for v, n in Counter(values).items() if n > 1]
        shown = [{k: a[k] for k in ("at", "who", "action", "target", "detail")}
                 for a in final["game"]["audit"]]
        assert audit[:len(shown)] == shown, "every audit entry, once"
        assert [a["action"] for a in audit[len(shown):]] == ["controller_stop"]
        assert {"time", "pause", "resume"} <= {a["action"] for a in audit}
        assert notes == [n["text"] for n in final["game"]["log"]], "every note, once"
        assert rejects == 0
    print(f"\n[disk full] {filled / 1024:.0f} KiB filler; /api/health 503 after {detected:.2f} s; "
          f"the code opened its lock {opened * 1000:.0f} ms after it was typed (disk full); "
          f"{waiting} rows waiting, {recovered['rows']} written after waiting {recovered['waited_s']:.1f} s "
          f"({recovered['failures']} failed writes); ok again {recovery:.2f} s after space was freed; "
          f"{len(values)} events and {len(audit)} audit entries in the database, none twice")


def test_a_controller_killed_mid_batch_loses_at_most_the_last_flush(mosquitto, tmp_path: Path,
                                                                    processes) -> None:
    db = tmp_path / "escape.db"
    controller = ControllerProcess(game=game_file(tmp_path), db=db, broker=mosquitto,
                                   log=tmp_path / "controller.log")
    processes.append(controller)
    wait_for(lambda: controller.state() is not None, timeout=30, what="the controller to serve")
    room = RawRoom(mosquitto.host, mosquitto.port, Topics("faults"), "hall")
    stop = threading.Event()
    samples: list[tuple[float, int]] = []   # (monotonic, last key handled by then)
    try:
        room.birth()
        wait_for(lambda: controller.state()["nodes"][0]["online"], what="the hall online")
        reply = controller.post("/api/game/start", {"parcours": "primo", "players": 3})
        session = reply.json()["session"]

        def stream() -> None:   # ~200 keys a second: every flush holds several rows
            while not stop.is_set():
                room.event("mailbox_keypad", wait=False)
                time.sleep(0.005)

        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            handled = last_key(controller)
            samples.append((time.monotonic(), handled))
        controller.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        controller.process.wait(timeout=5)
        stop.set()
        streamer.join(timeout=5)
    finally:
        stop.set()
        room.close()
    published = room.seq

    values, _audit, _notes, _rejects = session_log(db, session)
    keys = [int(v) for v in values]
    assert keys == list(range(1, len(keys) + 1)), "a prefix of the stream: no hole, none twice"
    # handled at least FLUSH_AFTER_S before the kill (+0.25 s for a busy loop's timer): on disk
    margin = FLUSH_AFTER_S + 0.25
    durable = max((n for at, n in samples if at <= killed_at - margin), default=0)
    assert durable > 100, "the stream ran"
    assert len(keys) >= durable, f"{durable} keys handled {margin:.2f} s before the kill, {len(keys)} on disk"
    last_seen = samples[-1][1]
    print(f"\n[kill -9 mid-batch] {published} keys published, {last_seen} handled at the last look "
          f"({(killed_at - samples[-1][0]) * 1000:.0f} ms before the kill), {len(keys)} on disk: "
          f"{max(0, last_seen - len(keys))} handled but not yet written were lost "
          f"(the promise: the last {FLUSH_AFTER_S * 1000:.0f} ms of rows)")
