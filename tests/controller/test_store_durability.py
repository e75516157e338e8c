"""The session log never loses a valid row: one bad row never sinks its batch, a failed
write is kept and tried again, and the store's health says what is going on.

A write that fails for everyone is made real here two ways: SQLite's own page limit
(``PRAGMA max_page_count``: the very ``SQLITE_FULL`` a full disk gives) and another
connection holding the write lock (``database is locked``). The real full disk (a small
tmpfs filled by another file, under a real controller process) is in
``tests/faults/test_disk_full.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config.game import Game
from controller.engine import Engine
from controller.journal import RETRY_FIRST_S, RETRY_MAX_S, WRITE_ROWS, Backlog
from controller.main import create_app
from controller.mqtt import Incoming, MqttBridge
from controller.record import history_rows, to_record
from controller.service import GameService
from controller.store import Batch, Store
from protocol.contract import NodeStatus, PropEvent, TopicParts, Topics
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.controller.conftest import FakeClocks


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "escape.db")
    yield s
    s.close()


def prop(seq: int, session: str | None = "s1", **over: Any) -> tuple[str, dict[str, Any]]:
    return ("prop", {"session": session, "wall": 1000.0 + seq, "at": float(seq), "node": "hall",
                     "prop": "keypad", "type": "key", "value": f"k{seq}", **over})


def audit(n: int, session: str | None = "s1") -> tuple[str, dict[str, Any]]:
    return ("audit", {"session": session, "at": 2000.0 + n, "elapsed": float(n), "who": "game master",
                      "action": f"order{n}", "target": None, "detail": None})


def values(store: Store, session: str = "s1") -> list[Any]:
    return [e["value"] for e in store.events(session) if e["kind"] == "prop"]


def actions(store: Store, session: str = "s1") -> list[str]:
    return [a["action"] for a in store.recent_journal(session, limit=10_000)[1]]


class Locked:
    """Another connection holding the database's write lock: every write of the store
    fails at once with ``database is locked`` until :meth:`release`."""

    def __init__(self, store: Store) -> None:
        assert store.path is not None
        store.pragma("busy_timeout=0")   # fail at once, not after 5 s
        self.db = sqlite3.connect(store.path, isolation_level=None)
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


# -- one bad row never sinks its batch -------------------------------------------------------
def test_one_bad_row_never_sinks_its_batch_it_is_set_aside_with_its_error(
        store: Store, caplog: pytest.LogCaptureFixture):
    bad = [
        prop(2, wall=None),                  # NOT NULL constraint failed: events.at
        prop(4, wall=math.nan),              # SQLite binds NaN as NULL: the same
        prop(6, node=["not", "a", "str"]),   # a value SQLite cannot bind
        ("prop", {"session": "s1", "wall": 1.0}),   # fields missing
    ]
    journal = [prop(1), bad[0], prop(3), bad[1], audit(1), prop(5), bad[2], bad[3], prop(7),
               prop(8, value={"n": math.inf}), audit(2), prop(9)]
    with caplog.at_level(logging.ERROR):
        rejected = store.write(Batch(journal=journal))

    assert values(store) == ["k1", "k3", "k5", "k7", {"n": None}, "k9"], "every valid row, in order"
    assert "event hall.keypad value: non-finite number(s) at $.n sent as null" in caplog.text
    assert actions(store) == ["order1", "order2"]
    assert [r.row for r in rejected] == bad
    kept = store.rejects()
    assert [r["kind"] for r in kept] == ["prop"] * 4
    assert "NOT NULL constraint failed: events.at" in kept[0]["error"]
    assert "NOT NULL constraint failed: events.at" in kept[1]["error"]
    assert kept[2]["error"].startswith("ProgrammingError")
    assert kept[3]["error"].startswith("KeyError")
    assert kept[0]["row"][1]["value"] == "k2", "the refused row is kept whole"
    assert kept[1]["row"][1]["wall"] is None, "kept as valid JSON (NaN is not)"


def test_a_bad_session_record_is_set_aside_and_its_journal_still_written(store: Store, game: Game,
                                                                        clocks: FakeClocks):
    engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
    engine.start(parcours="primo", players=4)
    rows = history_rows(engine)
    rows["session"]["players"] = None    # NOT NULL constraint failed: sessions.players
    rejected = store.write(Batch(sessions=[(to_record(engine), rows)], journal=engine.take_journal()))
    assert [r.kind for r in rejected] == ["session"]
    assert store.open_session() is None
    assert "start" in actions(store, engine.session_id or ""), "the audit of the start is written"


def test_the_healthy_path_is_one_transaction_without_rejects(store: Store):
    assert store.write(Batch(journal=[prop(i) for i in range(1, 501)])) == []
    assert len(values(store)) == 500
    assert store.rejects() == []


# -- a write that fails for everyone: nothing written, nothing lost ----------------------------
def test_a_full_database_writes_nothing_of_the_batch_and_raises(store: Store):
    store.write(Batch(journal=[prop(1)]))
    store.pragma(f"max_page_count={store.pragma('page_count')}")   # no page more: SQLITE_FULL
    big = ("note", {"session": "s1", "wall": 1.0, "at": 1.0, "kind": "note", "text": "x" * 200_000})
    with pytest.raises(sqlite3.OperationalError, match="full"):
        store.write(Batch(journal=[prop(2), big, prop(3)]))
    assert values(store) == ["k1"], "all or nothing: the rows are the caller's to keep"
    assert store.rejects() == [], "a full disk is nobody's row fault"
    store.pragma("max_page_count=1000000")
    assert store.write(Batch(journal=[prop(2), big, prop(3)])) == []
    assert values(store) == ["k1", "k2", "k3"]


def test_a_failed_write_is_kept_and_written_once_the_database_is_back(store: Store, game: Game,
                                                                     clocks: FakeClocks):
    backlog = Backlog(store, clock=clocks.monotonic, wall=clocks.wall)
    engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
    engine.start(parcours="primo", players=4)
    lock = Locked(store)
    failed_at = clocks.now

    backlog.add(engine.take_journal())
    backlog.session(to_record(engine), history_rows(engine))
    backlog.desired("salon", "door_lock", "lock", {}, False)
    assert backlog.write() is False
    for seq in range(1, 6):
        clocks.advance(1)
        backlog.add([prop(seq, engine.session_id)])
        backlog.write()
    engine.on_event("hall", "keypad", "code", "0412")     # a solve while the store is down
    backlog.add(engine.take_journal())
    backlog.session(to_record(engine), history_rows(engine))   # the latest record wins
    backlog.desired("salon", "door_lock", "unlock", {}, True)    # so does the desired state
    backlog.meta("clean_stop", "0")

    health = backlog.health()
    assert health["ok"] is False and "locked" in health["error"]
    assert health["since"] == failed_at and health["failing_s"] == 5.0
    assert health["waiting"] == backlog.waiting >= 5 + 1 + 1 + 1
    assert store.open_session() is None, "nothing written while it fails"

    lock.release()
    clocks.advance(RETRY_MAX_S)
    assert backlog.write() is True
    session = engine.session_id or ""
    assert values(store, session) == [f"k{i}" for i in range(1, 6)], "every row, once, in order"
    assert {"check", "start"} <= set(actions(store, session))
    record = store.open_session()
    assert record is not None and record["puzzles"]["mailbox"]["status"] == "solved"
    assert store.load_desired() == [{"node": "salon", "prop": "door_lock", "action": "unlock",
                                     "params": {}, "relock_pending": True}]
    assert store.get_meta("clean_stop") == "0"
    health = backlog.health()
    assert health["ok"] is True and health["waiting"] == 0 and health["error"] is None
    assert health["recovered"]["rows"] >= 8 and health["recovered"]["waited_s"] == 5.0 + RETRY_MAX_S
    assert health["failures"] >= 2


def test_retries_back_off_and_the_database_is_not_hammered(store: Store, clocks: FakeClocks):
    backlog = Backlog(store, clock=clocks.monotonic, wall=clocks.wall)
    tries: list[float] = []
    write = store.write

    def counted(batch: Batch) -> Any:
        tries.append(clocks.mono)
        return write(batch)

    store.write = counted   # type: ignore[method-assign]
    lock = Locked(store)
    start = clocks.mono
    backlog.add([prop(1)])
    for _ in range(200):          # 20 s of ticks (0.1 s), an event at each
        backlog.add([prop(2)])
        backlog.write()
        clocks.advance(0.1)
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    delays = [min(RETRY_FIRST_S * 2 ** i, RETRY_MAX_S) for i in range(len(gaps))]
    assert tries[0] == start, "the first write is tried at once"
    for gap, delay in zip(gaps, delays, strict=True):   # the next tick after each delay
        assert delay - 1e-6 <= gap <= delay + 0.1 + 1e-6, (gaps, delays)
    assert delays[-1] == RETRY_MAX_S and len(tries) <= 20 / RETRY_MAX_S + 4, f"{len(tries)} tries in 20 s"
    assert backlog.write(force=True) is False, "forced (the controller stopping): tried at once"
    assert len(tries) == len(gaps) + 2
    lock.release()
    assert backlog.write(force=True) is True
    assert values(store) == ["k1"] + ["k2"] * 200


def test_catching_up_writes_in_chunks_and_a_failure_midway_keeps_the_rest_in_order(
        store: Store, clocks: FakeClocks):
    """Many rows waiting go WRITE_ROWS per transaction; a chunk that fails leaves the
    ones before it written (once) and itself and the rest queued (in order)."""
    backlog = Backlog(store, clock=clocks.monotonic, wall=clocks.wall)
    big = ("note", {"session": "s1", "wall": 1.0, "at": 1.0, "kind": "note", "text": "x" * 10_000_000})
    rows = [prop(i) for i in range(1, 2 * WRITE_ROWS + 1)] + [big] + \
        [prop(i) for i in range(2 * WRITE_ROWS + 1, 3 * WRITE_ROWS + 501)]
    store.write(Batch(journal=[prop(0)]))
    store.pragma(f"max_page_count={store.pragma('page_count') + 300}")   # 1.2 MB: not 10
    backlog.add(rows)
    assert backlog.write(force=True) is False
    assert values(store) == [f"k{i}" for i in range(2 * WRITE_ROWS + 1)], "two chunks written"
    assert backlog.waiting == WRITE_ROWS + 501 and backlog.failing
    store.pragma("max_page_count=1000000")
    clocks.advance(RETRY_MAX_S)
    assert backlog.write(force=True) is True
    assert values(store) == [f"k{i}" for i in range(3 * WRITE_ROWS + 501)], "every row once, in order"
    assert backlog.health()["recovered"]["rows"] == WRITE_ROWS + 501


def test_rows_waiting_are_bounded_and_what_is_dropped_is_counted_and_logged(
        store: Store, clocks: FakeClocks, caplog: pytest.LogCaptureFixture):
    backlog = Backlog(store, clock=clocks.monotonic, wall=clocks.wall, max_rows=10)
    lock = Locked(store)
    with caplog.at_level(logging.ERROR, logger="controller.store"):
        for seq in range(1, 16):
            backlog.add([prop(seq)])
            backlog.write()
    assert backlog.health()["dropped"] == 5 and backlog.waiting == 10
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and "dropping the oldest" in critical[0].getMessage()
    lock.release()
    clocks.advance(RETRY_MAX_S)
    assert backlog.write()
    assert values(store) == [f"k{i}" for i in range(6, 16)], "the newest 10 kept"


def test_stopping_with_rows_never_written_puts_them_in_the_log(store: Store, clocks: FakeClocks,
                                                              caplog: pytest.LogCaptureFixture):
    backlog = Backlog(store, clock=clocks.monotonic, wall=clocks.wall)
    lock = Locked(store)
    backlog.add([prop(1), audit(1)])
    backlog.write()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="controller.store"):
        backlog.abandon()
    lock.release()
    lines = [r.getMessage() for r in caplog.records]
    assert "stopping with 2 rows never written" in lines[0]
    unwritten = [json.loads(line.split(": ", 1)[1]) for line in lines[1:]]
    assert unwritten == [list(prop(1)), list(audit(1))]


# -- the service: the game goes on, the console is told, nothing is lost ------------------------
@pytest.fixture
def service(tmp_path: Path, game: Game, clocks: FakeClocks) -> Iterator[GameService]:
    store = Store(tmp_path / "escape.db")
    bridge = MqttBridge(topics=Topics(game.apartment.id), broker=BrokerAddress("127.0.0.1", 9),
                        boot_id="ctl")
    bridge.publish = lambda *_a, **_kw: None    # type: ignore[method-assign]
    bridge.send_command = lambda *_a, **_kw: None   # type: ignore[method-assign]
    bridge.publish_status = lambda **_kw: None   # type: ignore[method-assign]
    svc = GameService(game=game, bridge=bridge, store=store, clock=clocks.monotonic, wall=clocks.wall)
    svc.registry.on_status("hall", NodeStatus(online=True, boot_id="boot1"))
    yield svc
    store.close()


def key(seq: int, type_: str = "key", value: str = "1") -> Incoming:
    return Incoming(TopicParts("event", "hall", "keypad"),
                    PropEvent(boot_id="boot1", seq=seq, type=type_, value=value, ts=5000.0 + seq),
                    retained=False)


def test_the_game_goes_on_while_the_store_fails_and_every_row_is_written_after(
        service: GameService, clocks: FakeClocks):
    service.orders.start_game(parcours="primo", players=4)
    session = service.engine.session_id or ""
    lock = Locked(service.store)
    received: list[float] = []   # the controller's clock at receipt: the log's time

    async def play() -> None:
        for seq in range(1, 21):
            clocks.advance(0.5)
            received.append(clocks.wall())
            service.handle(key(seq, value=str(seq % 10)))
            await asyncio.sleep(0)
        received.append(clocks.wall())
        service.handle(key(21, "code", "0412"))      # the mailbox: solved all the same
        service.orders.add_time(60)
        await asyncio.sleep(0.1)                       # the batch's flush is due
        service.tick()

    asyncio.run(play())
    assert service.engine.puzzles["mailbox"].status == "solved"
    snap = service.views.snapshot()["store"]
    assert snap["ok"] is False and snap["waiting"] >= 21 and "locked" in snap["error"]

    lock.release()
    clocks.advance(RETRY_MAX_S)
    service.tick()
    assert service.views.snapshot()["store"]["ok"] is True
    rows = [e for e in service.store.events(session) if e["kind"] == "prop"]
    assert [e["value"] for e in rows] == [str(seq % 10) for seq in range(1, 21)] + ["0412"]
    assert [e["at"] for e in rows] == received
    assert actions(service.store, session).count("time") == 1
    record = service.store.open_session()
    assert record is not None and record["puzzles"]["mailbox"]["status"] == "solved"


# -- what HTTP says -----------------------------------------------------------------------------
def test_health_answers_503_degraded_while_writes_fail_and_a_direct_write_is_a_clear_503(
        embedded_broker: BrokerHandle, tmp_path: Path, game: Game, clocks: FakeClocks):
    app = create_app(game=game, broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                     db_path=tmp_path / "escape.db", clock=clocks.monotonic, wall=clocks.wall)
    with TestClient(app) as client:
        reply = client.get("/api/health")
        assert reply.status_code == 200
        assert reply.json()["status"] == "ok" and reply.json()["store"]["ok"] is True
        assert client.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
        assert client.post("/api/game/stop", json={}).status_code == 200
        session = client.get("/api/state").json()["game"]["session"]
        service: GameService = app.state.service
        lock = Locked(service.store)
        try:
            assert client.post("/api/game/debrief", json={}).status_code == 200, "the game goes on"
            reply = client.get("/api/health")
            assert reply.status_code == 503
            body = reply.json()
            assert body["ok"] is False and body["status"] == "degraded"
            assert "locked" in body["store"]["error"] and body["store"]["waiting"] >= 1
            assert body["store"]["since"] == clocks.now
            assert client.get("/api/state").json()["store"]["ok"] is False
            # a write the request itself makes (not queued): refused in words, nothing half done
            reply = client.put(f"/api/history/sessions/{session}/evaluation",
                               json={"rating": 4, "learned": [], "comment": ""})
            assert reply.status_code == 503 and "enregistrement impossible" in reply.json()["detail"]
        finally:
            lock.release()
        clocks.advance(RETRY_MAX_S)
        deadline = time.monotonic() + 10
        while client.get("/api/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/api/health").status_code == 200, "written again by the ticker"
        assert "debrief" in actions(service.store, session)
