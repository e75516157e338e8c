"""Backups of the session store (controller/backup.py): SQLite's online backup API while the
controller writes, rotation, a missing USB stick, the controller's own backups (after a
session, nightly), and the restore drill through the real ``escape-apartment store`` command.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config import followup as questionnaire_file
from config.game import Game
from controller.backup import (
    AFTER_START,
    KEEP_DAILY,
    KEEP_MONTHLY,
    BackupError,
    Backups,
    backup,
    backups,
    exclusive,
    keep,
    verify,
)
from controller.core.config import Settings
from controller.engine import Engine
from controller.followup import Followup
from controller.main import create_app
from controller.record import history_rows, to_record
from controller.report import CSV_TABLES
from controller.store import Store, StoreError
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.controller.conftest import FakeClocks, make_game
from tests.integration.conftest import wait_for

REPO = Path(__file__).resolve().parents[2]


def play(store: Store, game: Game, n: int = 1) -> list[str]:
    """*n* whole sessions written and closed, as the controller writes them."""
    ids = []
    for _ in range(n):
        engine = Engine(game)
        engine.start(parcours="primo", players=4)
        engine.on_event("hall", "keypad", "code", "0412")
        store.save_session(to_record(engine), history_rows(engine), engine.take_journal())
        store.close_session(engine.session_id or "")
        ids.append(engine.session_id or "")
    return ids


def content(path: Path) -> list[tuple]:
    """Every session and every event row of the store at *path*, read back."""
    db = sqlite3.connect(path)
    try:
        return [*db.execute("SELECT id, state, closed FROM sessions ORDER BY id"),
                *db.execute("SELECT * FROM events ORDER BY id")]
    finally:
        db.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data" / "escape.db")
    yield s
    s.close()


# -- rotation -------------------------------------------------------------------------------
def test_rotation_keeps_the_last_14_days_and_the_last_12_months():
    start = dt.datetime(2025, 1, 1, 3, 0)
    # a nightly backup for two years, and three after-session backups on each of those days
    stamps = [start + dt.timedelta(days=d, hours=h) for d in range(730) for h in (0, 8, 11, 15)]
    kept = keep(stamps)
    newest = max(stamps)
    days = sorted({s.date() for s in kept}, reverse=True)
    assert len({s.date() for s in kept if newest - s < dt.timedelta(days=KEEP_DAILY)}) == KEEP_DAILY
    months = {(s.year, s.month) for s in kept}
    assert len(months) == KEEP_MONTHLY, "one a month for a year, no older"
    assert all(max(s for s in stamps if s.date() == day) in kept for day in days), \
        "each day kept is kept by its last backup (the most sessions)"
    assert len(kept) == KEEP_DAILY + KEEP_MONTHLY - 1, "the newest month shares its backup with today"
    assert newest in kept


def test_a_backup_is_rotated_on_disk(tmp_path: Path, store: Store, game: Game):
    play(store, game)
    directory = tmp_path / "usb"
    directory.mkdir()
    for day in range(60):   # 1 January to 1 March
        backup(store.path, directory, now=dt.datetime(2026, 1, 1, 3) + dt.timedelta(days=day))
    names = [p.name for _s, p in backups(directory)]
    assert len(names) == KEEP_DAILY + 1, "14 days (February's last among them), and January's last"
    assert names[0] == "escape-20260301-030000.db" and names[-1] == "escape-20260131-030000.db"
    assert names[-2] == "escape-20260216-030000.db"
    assert sorted(os.listdir(directory)) == sorted(names), "nothing else left: no temporary file"


# -- online: the store is written while it is backed up ---------------------------------------
def test_a_backup_is_consistent_while_the_controller_writes(tmp_path: Path, store: Store, game: Game):
    play(store, game, 2)
    directory = tmp_path / "backups"
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            play(store, game)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        counts = []
        for n in range(5):
            verdict = backup(store.path, directory, create=True,
                             now=dt.datetime(2026, 3, 1, 12) + dt.timedelta(minutes=n))
            assert verdict.ok, verdict.error
            counts.append(verdict.sessions)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert counts == sorted(counts) and counts[0] >= 2, "each a whole snapshot, never going back"
    for _stamp, path in backups(directory):
        assert verify(path).ok
        assert not Path(f"{path}-wal").exists(), "a backup is one self-contained file"
        db = sqlite3.connect(path)
        assert db.execute("SELECT count(*) FROM sessions WHERE players = 99").fetchone() == (0,)
        db.close()


def test_an_uncommitted_write_is_not_in_the_backup(tmp_path: Path, store: Store, game: Game):
    play(store, game, 1)
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")   # holds the write lock through the backup
    other.execute("UPDATE sessions SET players = 99")
    try:
        verdict = backup(store.path, tmp_path / "b", create=True)
    finally:
        other.execute("ROLLBACK")
        other.close()
    db = sqlite3.connect(verdict.path)
    assert db.execute("SELECT players FROM sessions").fetchall() == [(4,)]
    db.close()


# -- failures -------------------------------------------------------------------------------
def test_a_missing_usb_stick_is_a_failed_backup_and_a_notice(tmp_path: Path, store: Store, game: Game):
    play(store, game)
    stick = tmp_path / "media" / "usb"
    backups_ = Backups(store.path, stick, create=False)
    assert backups_.run("nightly") is None
    assert not stick.exists(), "never a copy onto the SD card under the stick's mount point"
    assert backups_.health()["ok"] is False and "clé USB absente" in backups_.health()["error"]
    assert backups_.notices() == [{"kind": "backup", "code": "backup_failed", "severity": "bad",
                                   "detail": backups_.health()["error"]}]
    stick.mkdir(parents=True)   # plugged in
    assert backups_.run("nightly") is not None
    assert backups_.notices() == [] and backups_.health()["last"]["sessions"] == 1


def test_a_corrupt_store_is_never_saved_over_a_good_backup(tmp_path: Path, store: Store, game: Game):
    play(store, game)
    directory = tmp_path / "b"
    good = backup(store.path, directory, create=True, now=dt.datetime(2026, 1, 1))
    with pytest.raises(BackupError):
        backup(tmp_path / "nothing.db", directory, now=dt.datetime(2026, 1, 2))
    assert [p for _s, p in backups(directory)] == [good.path]


# -- the controller's backups ---------------------------------------------------------------
def test_the_nightly_backup_is_due_at_its_hour_and_soon_after_a_start_without_one(
        tmp_path: Path, store: Store, game: Game):
    play(store, game)
    now = [dt.datetime(2026, 5, 4, 18, 0).timestamp()]
    nightly = Backups(store.path, tmp_path / "b", create=True, nightly=dt.time(3, 0), wall=lambda: now[0])
    nightly.start()
    assert nightly.next_nightly == now[0] + AFTER_START.total_seconds(), "none yet: soon"
    nightly.tick()
    assert nightly.taken == 0
    now[0] = nightly.next_nightly
    nightly.tick()
    assert nightly.taken == 1 and nightly.last["reason"] == "nightly"
    assert nightly.next_nightly == dt.datetime(2026, 5, 5, 3, 0).timestamp()
    restarted = Backups(store.path, tmp_path / "b", create=True, wall=lambda: now[0])
    restarted.start()
    assert restarted.next_nightly == dt.datetime(2026, 5, 5, 3, 0).timestamp(), \
        "a backup younger than a day: the next at its hour"


@pytest.fixture
def controller(embedded_broker: BrokerHandle, tmp_path: Path, clocks: FakeClocks):
    def run(backup_dir: Path | None = None) -> TestClient:
        settings = Settings.with_flags(DATA_DIR=str(tmp_path / "data"),
                                       BACKUP_DIR=None if backup_dir is None else str(backup_dir))
        app = create_app(game=make_game(), broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                         clock=clocks.monotonic, wall=clocks.wall, settings=settings)
        return TestClient(app)
    return run


def test_a_session_closed_over_http_is_backed_up(controller, tmp_path: Path):
    with controller() as client:
        assert client.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
        assert client.post("/api/game/stop", json={}).status_code == 200
        assert client.get("/api/state").json()["backup"]["taken"] == 0, "the session is not over yet"
        assert client.post("/api/game/reset", json={}).status_code == 200
        wait_for(lambda: client.get("/api/state").json()["backup"]["last"] is not None, 10, "the backup")
        state = client.get("/api/state").json()
    last = state["backup"]["last"]
    assert last["reason"].startswith("session ") and last["sessions"] == 1
    assert verify(Path(last["path"])).ok
    assert Path(last["path"]).parent == tmp_path / "data" / "backups"
    assert state["notices"] == []


def test_a_failed_backup_is_a_notice_between_sessions_never_during_one(controller, tmp_path: Path):
    with controller(backup_dir=tmp_path / "unplugged") as client:
        client.post("/api/game/start", json={"parcours": "primo", "players": 4})
        client.post("/api/game/stop", json={})
        assert client.post("/api/game/reset", json={}).status_code == 200
        wait_for(lambda: client.get("/api/state").json()["backup"]["failures"] == 1, 10, "the failure")
        state = client.get("/api/state").json()
        assert state["game"]["phase"] == "idle"
        assert [n["code"] for n in state["notices"]] == ["backup_failed"]
        assert "clé USB absente" in state["notices"][0]["detail"]
        client.post("/api/game/start", json={"parcours": "primo", "players": 4})
        playing = client.get("/api/state").json()
        assert playing["game"]["phase"] == "running" and playing["notices"] == [], \
            "nothing to do about it with players inside"
        assert playing["backup"]["ok"] is False, "the technician still sees it"


# -- the restore drill, by the real command ---------------------------------------------------
def cli(data: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ESCAPE_DATA_DIR": str(data)}
    env.pop("ESCAPE_BACKUP_DIR", None)
    return subprocess.run([sys.executable, "-m", "controller.cli", "store", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def corrupt(path: Path) -> None:
    """Garbage over the store's pages after the first (what a failing SD card does)."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(os.urandom(size - 4096))


def test_restore_drill_back_up_corrupt_restore_nothing_lost(tmp_path: Path, game: Game):
    data = tmp_path / "data"
    store = Store(data / "escape.db")
    sessions = play(store, game, 5)
    store.close()
    before = content(data / "escape.db")
    done = cli(data, "backup")
    assert done.returncode == 0 and "5 session(s)" in done.stdout, done.stdout + done.stderr

    corrupt(data / "escape.db")
    checked = cli(data, "verify")
    assert checked.returncode == 1 and "ABÎMÉE" in checked.stdout, checked.stdout

    done = cli(data, "restore")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ancien fichier gardé" in done.stdout, "the broken file is kept aside, never deleted"
    assert content(data / "escape.db") == before, "nothing lost"
    assert cli(data, "verify").returncode == 0
    again = Store(data / "escape.db")
    try:
        assert {s["id"] for s in again.sessions()} == set(sessions)
    finally:
        again.close()
    assert list(data.glob("escape.db.replaced-*")), "the broken file, for the curious"


def test_restore_is_refused_while_a_controller_has_the_store_open(tmp_path: Path, game: Game):
    data = tmp_path / "data"
    store = Store(data / "escape.db")
    play(store, game, 2)
    assert cli(data, "backup").returncode == 0
    play(store, game, 1)
    try:
        before = content(data / "escape.db")
        refused = cli(data, "restore")
        assert refused.returncode == 1 and "arrêtez-le d'abord" in refused.stdout, refused.stdout
        assert content(data / "escape.db") == before, "the live store untouched"
    finally:
        store.close()
    with exclusive(data / "escape.db"), pytest.raises(StoreError, match="being restored"):
        Store(data / "escape.db")


def test_a_damaged_backup_is_never_restored(tmp_path: Path, game: Game):
    data = tmp_path / "data"
    store = Store(data / "escape.db")
    play(store, game, 1)
    store.close()
    assert cli(data, "backup").returncode == 0
    (only,) = [p for _s, p in backups(data / "backups")]
    corrupt(only)
    before = content(data / "escape.db")
    refused = cli(data, "restore")
    assert refused.returncode == 1 and "aucune sauvegarde lisible" in refused.stdout, refused.stdout
    assert content(data / "escape.db") == before


def test_a_full_usb_stick_fails_in_words_and_leaves_no_half_backup(tmp_path: Path, store: Store, game: Game):
    from tests.support.diskfull import fill, small_tmpfs

    play(store, game, 3)
    with small_tmpfs(tmp_path / "stick", size_kb=2048) as stick:
        backups_ = Backups(store.path, stick, create=False)
        assert backups_.run("nightly") is not None
        (first,) = [p for _s, p in backups(stick)]
        (stick / ".escape-20200101-000000.db.tmp").write_bytes(b"cut short by kill -9")
        fill(stick / "holiday-photos.bin")
        now = dt.datetime.now() + dt.timedelta(minutes=1)
        backups_.wall = now.timestamp
        assert backups_.run("session s1") is None
        assert "sauvegarde impossible" in backups_.health()["error"], backups_.health()["error"]
        assert backups_.notices()[0]["code"] == "backup_failed"
        assert sorted(p.name for p in stick.iterdir()) == [first.name, "holiday-photos.bin"], \
            "no half-written backup, not even a temporary one; the good one kept"
        assert verify(first).ok
        (stick / "holiday-photos.bin").unlink()
        assert backups_.run("session s1") is not None and backups_.health()["ok"]
        (latest,) = [p for _s, p in backups(stick)]
        assert latest != first, "the same day's newer backup replaces it (rotation: one a day)"


def test_a_backup_of_a_newer_controller_is_never_restored(tmp_path: Path, game: Game):
    data = tmp_path / "data"
    store = Store(data / "escape.db")
    play(store, game, 1)
    store.close()
    newer = tmp_path / "newer.db"
    backup(data / "escape.db", tmp_path / "b", create=True)
    (made,) = [p for _s, p in backups(tmp_path / "b")]
    made.rename(newer)
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 99")
    db.close()
    assert "schéma 99" in (verify(newer).error or "")
    before = content(data / "escape.db")
    refused = cli(data, "restore", "--from", str(newer))
    assert refused.returncode == 1 and "schéma 99" in refused.stdout, refused.stdout
    assert content(data / "escape.db") == before


# -- no phone number ever leaves in a backup ---------------------------------------------------
NUMBER, CALLED, ERASED = "0612345678", "0798765432", "0655443322"
DAY = 24 * 3600


def finished(store: Store, game: Game, n: int) -> list[str]:
    """*n* sessions played then stopped by the game master (a household may give a number)."""
    ids = []
    for _ in range(n):
        engine = Engine(game)
        engine.start(parcours="primo", players=4)
        engine.abort()
        store.save_session(to_record(engine), history_rows(engine), engine.take_journal())
        store.close_session(engine.session_id or "")
        ids.append(engine.session_id or "")
    return ids


def consents(store: Store, sessions: list[str], wall: float) -> dict[str, int]:
    """Three households: one waits for its call, one was called (answers kept), one asked to be
    erased; the contacts' ids by number."""
    followup = Followup(store, questionnaire_file.load(), wall=lambda: wall)
    ids = {number: followup.consent(session, phone=number, consent=True, who="animateur")["id"]
           for number, session in zip((NUMBER, CALLED, ERASED), sessions, strict=True)}
    followup.record_call(ids[CALLED], {"useful": 4, "remark": "merci"}, who="animateur")
    followup.erase(ids[ERASED], who="animateur")
    return ids


def files_bytes(directory: Path) -> bytes:
    """Every byte of every file in *directory* (a backup, its -wal or -journal if any)."""
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def digits_in(blob: bytes) -> list[str]:
    return [n for n in (NUMBER, CALLED, ERASED) if n.encode() in blob]


def test_a_backup_holds_no_phone_number_and_the_live_store_keeps_its_own(tmp_path: Path, store: Store,
                                                                           game: Game):
    wall = dt.datetime(2026, 3, 12, 17, 0).timestamp()
    ids = consents(store, finished(store, game, 3), wall)
    assert NUMBER.encode() in files_bytes(store.path.parent), "the byte search finds a number kept"
    directory = tmp_path / "usb"
    directory.mkdir()
    when = dt.datetime(2026, 3, 13, 3, 0)
    verdict = backup(store.path, directory, now=when)
    assert verdict.ok and verdict.sessions == 3
    assert digits_in(files_bytes(directory)) == [], "no number, nor the bytes of one erased before"
    assert [p.name for p in directory.iterdir()] == [verdict.path.name], "no -wal, -journal, temporary"

    db = sqlite3.connect(verdict.path)
    try:
        rows = {r[0]: r[1:] for r in db.execute(
            "SELECT id, phone, consent, called_at IS NOT NULL, erased_why, erased_at FROM followup_contacts")}
        answers = db.execute("SELECT contact_id, question FROM followup_answers ORDER BY question").fetchall()
        erase_lines = db.execute("SELECT target, who, detail FROM audit WHERE action = 'followup_erase' "
                                 "ORDER BY id").fetchall()
    finally:
        db.close()
    assert rows[ids[NUMBER]] == (None, 1, 0, "restore", when.timestamp()), \
        "the consent and the call pending stay; only the number goes, and why"
    assert rows[ids[CALLED]] == (None, 1, 1, "called", wall)
    assert rows[ids[ERASED]] == (None, 1, 0, "request", wall)
    assert answers == [(ids[CALLED], "remark"), (ids[CALLED], "useful")], "the answers stay"
    assert erase_lines[-1] == (f"contact {ids[NUMBER]}", "controller", "une sauvegarde ne garde aucun numéro")

    assert store.read("SELECT phone FROM followup_contacts WHERE id = ?", (ids[NUMBER],)) == [
        {"phone": NUMBER}], "the live store keeps the number until its call or its 3 months"
    assert len(store.read("SELECT * FROM audit WHERE action = 'followup_erase'")) == 1, \
        "the backup wrote nothing into the live store"


def test_restore_drill_brings_back_every_session_and_answer_but_no_number(tmp_path: Path, game: Game,
                                                                          embedded_broker: BrokerHandle,
                                                                          clocks: FakeClocks):
    data = tmp_path / "data"
    store = Store(data / "escape.db")
    sessions = finished(store, game, 3)
    ids = consents(store, sessions, clocks.wall())
    store.close()
    before = content(data / "escape.db")
    audit_before = sqlite3.connect(data / "escape.db").execute("SELECT * FROM audit ORDER BY id").fetchall()
    assert cli(data, "backup").returncode == 0
    assert digits_in(files_bytes(data / "backups")) == []

    corrupt(data / "escape.db")
    done = cli(data, "restore")
    assert done.returncode == 0, done.stdout + done.stderr
    assert content(data / "escape.db") == before, "every session and event back"
    restored = sqlite3.connect(data / "escape.db")
    try:
        audit_after = restored.execute("SELECT * FROM audit ORDER BY id").fetchall()
        answers = restored.execute("SELECT count(*) FROM followup_answers").fetchone()[0]
    finally:
        restored.close()
    assert audit_after[:len(audit_before)] == audit_before, "every audit line back"
    assert answers == 2
    live_files = b"".join(p.read_bytes() for p in data.iterdir() if p.is_file() and ".replaced-" not in p.name)
    assert digits_in(live_files) == []
    assert "numéros de téléphone" in done.stdout, "the file moved aside may hold some: said"

    settings = Settings.with_flags(DATA_DIR=str(data), BACKUP_DIR=None)
    app = create_app(game=make_game(), broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                     clock=clocks.monotonic, wall=clocks.wall, settings=settings)
    with TestClient(app) as client:
        contacts = {c["id"]: c for c in client.get("/api/followup/calls?all=true").json()["contacts"]}
        pending = contacts[ids[NUMBER]]
        assert (pending["phone"], pending["consent"], pending["called_at"], pending["erased_why"]) == (
            None, True, None, "restore"), "the staff see the call was wanted and why the number is gone"
        assert contacts[ids[CALLED]]["answers"] == {"useful": 4, "remark": "merci"}
        assert client.get("/api/followup/calls").json()["contacts"] == [], "nothing left to call"
        told = client.get(f"/api/followup/contacts/{ids[NUMBER]}").json()
        assert ("followup_erase", "une sauvegarde ne garde aucun numéro") in [
            (a["action"], a["detail"]) for a in told["audit"]], "the household's export says why"
        assert {s["id"] for s in client.get("/api/history/sessions").json()["sessions"]} == set(sessions)


def older_backup(live: Path, path: Path) -> Path:
    """A backup as they were made before they left the numbers out: a plain copy by the
    backup API, numbers included."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(live)) as src, contextlib.closing(sqlite3.connect(path)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    assert NUMBER.encode() in path.read_bytes()
    return path


def test_an_older_backup_that_held_numbers_brings_none_back(tmp_path: Path, game: Game):
    data = tmp_path / "data"
    store = Store(data / "escape.db")
    ids = consents(store, finished(store, game, 3), dt.datetime(2026, 3, 12, 17).timestamp())
    store.close()
    older = older_backup(data / "escape.db", tmp_path / "usb" / "escape-20260313-030000.db")

    done = cli(data, "restore", "--from", str(older))
    assert done.returncode == 0, done.stdout + done.stderr
    live_files = b"".join(p.read_bytes() for p in data.iterdir() if p.is_file() and ".replaced-" not in p.name)
    assert digits_in(live_files) == []
    db = sqlite3.connect(data / "escape.db")
    try:
        assert db.execute("SELECT phone, erased_why FROM followup_contacts WHERE id = ?",
                          (ids[NUMBER],)).fetchone() == (None, "restore")
    finally:
        db.close()


def test_the_files_a_restore_moved_aside_are_deleted_3_months_on(tmp_path: Path, game: Game):
    data = tmp_path / "data"
    store = Store(data / "escape.db")
    consents(store, finished(store, game, 3), time.time())
    store.close()
    assert cli(data, "backup").returncode == 0
    assert cli(data, "restore").returncode == 0
    aside = sorted(data.glob("escape.db*.replaced-*"))
    assert aside and NUMBER.encode() in b"".join(p.read_bytes() for p in aside), "they may hold numbers"
    store = Store(data / "escape.db")
    try:
        later = [time.time() + 89 * DAY]
        backups_ = Backups(store.path, tmp_path / "usb", create=True, wall=lambda: later[0])
        assert backups_.run("nightly") is not None
        assert sorted(data.glob("escape.db*.replaced-*")) == aside, "kept for the curious, 3 months"
        later[0] = time.time() + 91 * DAY
        assert backups_.run("nightly") is not None
        assert list(data.glob("escape.db*.replaced-*")) == [], "then gone, and the numbers in them"
    finally:
        store.close()


def test_no_history_report_or_store_command_shows_a_number_kept(controller, tmp_path: Path):
    """Every way the sessions leave the controller besides the follow-up's own page: the
    history (CSV too), the year's report (page, CSV, zip), the console's state, the store's
    commands. None reads a number, even one waiting for its call."""
    with controller() as client:
        assert client.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
        assert client.post("/api/game/stop", json={}).status_code == 200
        (session,) = [s["id"] for s in client.get("/api/history/sessions").json()["sessions"]]
        given = client.post(f"/api/followup/sessions/{session}/contacts", json={"phone": NUMBER, "consent": True})
        assert given.status_code == 201, given.text
        assert client.get(f"/api/followup/contacts/{given.json()['id']}").json()["contact"]["phone"] == NUMBER
        paths = ["/api/state", "/api/history/sessions", "/api/history/sessions.csv", "/api/history/puzzles.csv",
                 "/api/history/stats", f"/api/history/sessions/{session}",
                 f"/api/history/sessions/{session}/events", f"/api/history/sessions/{session}/debrief",
                 f"/api/debrief/{session}", "/api/report", "/report",
                 *(f"/api/report/csv/{table}" for table in CSV_TABLES)]
        for path in paths:
            reply = client.get(path)
            assert reply.status_code == 200, (path, reply.text)
            assert NUMBER.encode() not in reply.content, path
        zipped = client.get("/api/report/csv")
        with zipfile.ZipFile(io.BytesIO(zipped.content)) as z:
            assert [n for n in z.namelist() if NUMBER.encode() in z.read(n)] == []
        assert client.post("/api/game/reset", json={}).status_code == 200
        wait_for(lambda: client.get("/api/state").json()["backup"]["last"] is not None, 10, "the backup")
    for argv in (("verify",), ("backup",)):
        done = cli(tmp_path / "data", *argv)
        assert done.returncode == 0 and NUMBER not in done.stdout + done.stderr, done.stdout
    assert digits_in(files_bytes(tmp_path / "data" / "backups")) == [], "the session's own backup too"


def test_the_next_backup_rewrites_the_older_ones_that_still_hold_numbers(tmp_path: Path, store: Store,
                                                                          game: Game):
    sessions = finished(store, game, 3)
    consents(store, sessions, dt.datetime(2026, 3, 12, 17).timestamp())
    directory = tmp_path / "usb"
    older = [older_backup(store.path, directory / f"escape-202603{day}-030000.db") for day in (13, 14)]
    newest = backup(store.path, directory, now=dt.datetime(2026, 3, 15, 3, 0))
    assert sorted(p for _s, p in backups(directory)) == [*older, newest.path], "same names, same rotation"
    assert digits_in(files_bytes(directory)) == [], "not one number left on the stick"
    for path in older:
        assert verify(path).ok and verify(path).sessions == 3
        db = sqlite3.connect(path)
        try:
            assert {r[0] for r in db.execute("SELECT session_id FROM followup_contacts")} == set(sessions)
        finally:
            db.close()
