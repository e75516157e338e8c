"""The session store: WAL, write-through, resume after a crash, history, statistics, CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from config.game import Game
from controller.engine import Engine, Phase
from controller.record import from_record, history_rows, to_record
from controller.store import SCHEMA_VERSION, Store, StoreError
from tests.controller.conftest import FakeClocks, make_game

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "escape.db")
    yield s
    s.close()


def save(store: Store, engine: Engine) -> None:
    store.save_session(to_record(engine), history_rows(engine), engine.take_journal())


def test_database_runs_in_wal_mode_with_normal_sync(store: Store):
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") == 1     # NORMAL (see the module docstring for why)


def test_full_sync_can_be_chosen(tmp_path: Path):
    full = Store(tmp_path / "full.db", synchronous="FULL")
    assert full.pragma("synchronous") == 2
    full.close()
    with pytest.raises(ValueError, match="NORMAL or FULL"):
        Store(tmp_path / "x.db", synchronous="OFF")


def test_a_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "escape.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Store(path)


def test_open_session_round_trip_and_closing(store: Store, game: Game, clocks: FakeClocks):
    engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
    engine.start(parcours="primo", players=4)
    engine.on_event("hall", "keypad", "code", "0412")
    save(store, engine)
    record = store.open_session()
    assert record is not None and record["session"] == engine.session_id
    resumed = from_record(game, record, clock=clocks.monotonic, wall=clocks.wall)
    assert resumed.puzzles["mailbox"].status == "solved"
    store.close_session(engine.session_id)
    assert store.open_session() is None


def test_journal_keeps_the_audit_log_with_who_and_when(store: Store, game: Game, clocks: FakeClocks):
    engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
    engine.start(parcours="primo", players=4)
    engine.force_solve("mailbox", who="Awa")
    save(store, engine)
    notes, audits = store.recent_journal(engine.session_id)
    assert [a["action"] for a in audits] == ["check", "check_override", "briefing", "start", "force_solve"]
    assert audits[-1]["who"] == "Awa" and audits[-1]["at"] == clocks.now
    assert any(n["kind"] == "solved" for n in notes)
    detail = store.session(engine.session_id)
    assert detail["audit"][-1]["target"] == "mailbox"
    assert detail["budget_lines"] == [{"seq": 0, "at_s": 0.0, "amount": -100, "label": "Loyer", "label_en": None,
                                       "puzzle": "mailbox", "obligation": None, "kind": None}]


def test_desired_states_round_trip(store: Store):
    store.save_desired("salon", "door_lock", "lock", {}, False)
    store.save_desired("salon", "lamp", "on", {"x": 1}, False)
    store.save_desired("salon", "door_lock", "unlock", {}, True)
    assert sorted(store.load_desired(), key=lambda d: d["prop"]) == [
        {"node": "salon", "prop": "door_lock", "action": "unlock", "params": {}, "relock_pending": True},
        {"node": "salon", "prop": "lamp", "action": "on", "params": {"x": 1}, "relock_pending": False}]


CHILD = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, sys.argv[2])
    from controller.engine import Engine
    from controller.record import history_rows, to_record
    from controller.store import Store
    from tests.controller.conftest import make_game

    store = Store(sys.argv[1])
    engine = Engine(make_game("crash"))
    engine.start(parcours="primo", players=4)
    engine.on_event("hall", "keypad", "code", "0412")
    engine.send_clue(puzzle="mailbox", index=1)
    store.save_session(to_record(engine), history_rows(engine), engine.take_journal())
    store.save_desired("salon", "door_lock", "lock", {}, False)
    print(json.dumps({"session": engine.session_id, "remaining": engine.remaining(),
                      "wall": time.time()}), flush=True)
    time.sleep(60)
""")


def test_a_controller_killed_with_sigkill_resumes_from_the_database(tmp_path: Path):
    path = tmp_path / "escape.db"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(ROOT)],
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        saved = json.loads(line)
        assert Path(f"{path}-wal").exists(), "the commit sits in the WAL file"
    finally:
        os.kill(child.pid, signal.SIGKILL)   # no clean shutdown, no checkpoint
        child.wait(timeout=5)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    away = time.time() - saved["wall"]
    store = Store(path)
    try:
        assert store.pragma("journal_mode") == "wal"
        record = store.open_session()
        assert record is not None and record["session"] == saved["session"]
        engine = from_record(make_game("crash"), record)
        assert engine.phase == Phase.RUNNING
        assert engine.puzzles["mailbox"].status == "solved"
        assert engine.budget == 1000 - 100 - 20 and engine.clue_count == 1
        assert engine.remaining() == pytest.approx(saved["remaining"] - away, abs=1.0)
        assert store.load_desired()[0]["action"] == "lock"
    finally:
        store.close()


# -- history ------------------------------------------------------------------------------
@pytest.fixture
def history(store: Store, game: Game, clocks: FakeClocks) -> Store:
    played = [("primo", 4, "won", 40, 2), ("locataire", 3, "lost", 10, 0), ("primo", 5, "aborted", 20, 1)]
    for parcours, players, result, minutes, clues in played:
        engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
        engine.start(parcours=parcours, players=players, children=players == 5)
        clocks.advance(60 * minutes / 2)
        engine.on_event("hall", "keypad", "code", "0412" if parcours == "primo" else "1507")
        for _ in range(clues):
            engine.send_clue(puzzle="bell", text="Sonnez")
        clocks.advance(60 * minutes / 2)
        if result == "won":
            engine.skip_to("final")
            engine.force_solve("final")
        elif result == "lost":
            clocks.advance(3600)
            engine.tick()
        else:
            engine.abort()
        save(store, engine)
        session = engine.session_id
        engine.reset()
        store.close_session(session, journal=engine.take_journal())
        clocks.advance(86_400)
    # a session cancelled during its check is not a played session
    engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
    engine.prepare(parcours="primo", players=2)
    save(store, engine)
    session = engine.session_id
    engine.cancel()
    store.close_session(session, result="cancelled")
    return store


def test_sessions_list_played_sessions_newest_first(history: Store):
    rows = history.sessions()
    assert [r["result"] for r in rows] == ["aborted", "lost", "won"]
    assert rows[2]["time_used_s"] == pytest.approx(2400) and rows[2]["time_used"] == "40:00"
    assert rows[2]["clues"] == 2 and (rows[2]["puzzles_solved"], rows[2]["puzzles"]) == (3, 4)
    assert history.sessions(parcours="locataire")[0]["players"] == 3
    assert len(history.sessions(limit=1, offset=1)) == 1


def test_stats_give_what_the_organisers_report(history: Store):
    stats = history.stats()
    assert stats["sessions"] == 3 and stats["participants"] == 12
    assert stats["results"] == {"won": 1, "lost": 1, "aborted": 1, "in_progress": 0}
    assert stats["success_rate"] == 0.5     # aborted sessions do not count either way
    assert stats["average_time_won_s"] == pytest.approx(2400)
    mailbox = next(p for p in stats["puzzles"] if p["id"] == "mailbox")
    assert mailbox["solved"] == 3 and mailbox["average_time_s"] == pytest.approx((1200 + 300 + 600) / 3)
    bell = next(p for p in stats["puzzles"] if p["id"] == "bell")
    assert bell["clues"] == 3 and bell["solved_by_players"] == 0


def test_sessions_csv_for_a_spreadsheet(history: Store):
    text = history.sessions_csv()
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text[1:]), delimiter=";"))
    assert [r["resultat"] for r in rows] == ["interrompu", "perdu", "gagné"]
    assert rows[2]["joueurs"] == "4" and rows[2]["temps_utilise"] == "40:00"
    assert rows[0]["enfants"] == "oui"
    assert rows[2]["verification_forcee"] == "démarrage direct, sans vérification préalable"
    assert "," in history.sessions_csv(sep=",").splitlines()[0]


def test_puzzles_csv_has_a_line_per_session_and_puzzle(history: Store):
    rows = list(csv.DictReader(io.StringIO(history.puzzles_csv()[1:]), delimiter=";"))
    # primo sessions have 4 puzzles (one is primo only), the locataire one 3
    assert len(rows) == 4 + 3 + 4
    mailbox = [r for r in rows if r["enigme"] == "mailbox"]
    assert {r["statut"] for r in mailbox} == {"résolue"}
    assert {r["temps_passe_s"] for r in mailbox} == {"1200", "300", "600"}


def test_csv_cells_never_start_a_formula(store: Store, game: Game, clocks: FakeClocks):
    engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
    engine.prepare(parcours="primo", players=2)
    engine.brief(not_ready=["x"], override="=HYPERLINK(\"http://evil\")")
    engine.start()
    save(store, engine)
    assert "'=HYPERLINK" in store.sessions_csv()


def test_light_event_write_keeps_the_resume_record_current(store: Store, game: Game, clocks: FakeClocks):
    engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
    engine.start(parcours="primo", players=4)
    save(store, engine)
    clocks.advance(200)
    engine.on_event("hall", "keypad", "code", "0000")    # a wrong code: activity, no history row
    store.add_journal([("prop", {"session": engine.session_id, "wall": clocks.now, "at": 200.0,
                                 "node": "hall", "prop": "keypad", "type": "code", "value": "0000"}),
                       *engine.take_journal()],
                      activity=(engine.session_id, engine.last_activity, round(engine.elapsed(), 3)))
    record = store.open_session()
    assert record["last_activity"] == pytest.approx(200)
    assert store.session(engine.session_id)["events"] == 1
    prop_events = [e for e in store.events(engine.session_id) if e["kind"] == "prop"]
    assert prop_events == [{"at": clocks.now, "elapsed_s": 200.0, "kind": "prop", "node": "hall",
                            "prop": "keypad", "type": "code", "value": "0000", "text": None}]
    assert store.sessions()[0]["time_used_s"] == pytest.approx(200)


def test_a_store_of_schema_2_is_migrated_to_the_calendar_and_follow_up_tables(tmp_path: Path,
                                                                               game: Game, clocks: FakeClocks):
    from config.followup import load
    from controller.followup import Followup
    from controller.planning import Planning

    path = tmp_path / "escape.db"
    engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
    engine.prepare(parcours="primo", players=3)
    old = Store(path)
    save(old, engine)
    old.close()
    db = sqlite3.connect(path)   # as the controller of schema 2 left it: no calendar, no follow-up
    for table in ("followup_answers", "followup_contacts", "planned_groups", "planned"):
        db.execute(f"DROP TABLE {table}")
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()

    store = Store(path)          # opened by this controller: migrated, nothing lost
    try:
        assert store.pragma("user_version") == SCHEMA_VERSION   # and every later step
        assert store.open_session()["session"] == engine.session_id
        planning = Planning(store, max_players=6, wall=clocks.wall)
        planned = planning.plan(date="2026-03-12", time_of_day="14:00", game_master="Awa", parcours="primo")
        got = planning.register(planned["id"], adults=2, children=1, households=1, tenancy="primo",
                                referral="mds", first_visit=True)
        assert got["players"] == 3
        assert Followup(store, load(), wall=clocks.wall).due(who="test", include_all=True) == []
    finally:
        store.close()
