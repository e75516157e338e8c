"""Sessions on disk: SQLite (stdlib ``sqlite3``), written through on every change.

Longer than most modules on purpose: it is all of the SQL, beside the schema it queries
(one lock and one connection guard every statement); what is written when is
:mod:`controller.journal`'s business.

One file (``Settings.DATA_DIR / "escape.db"``) holds:

* ``sessions``: one row per session (date, parcours, players, result, time used, clues,
  budget) and, in ``state``, the engine's record (:func:`controller.record.to_record`) that a
  restarted controller resumes from;
* ``puzzle_results``: per session and puzzle, when it became available, when it was
  solved, by whom, how many clues;
* ``budget_lines``, ``clues``: per session;
* ``events``: the event log (prop events and the engine's notes);
* ``audit``: every order of the game master, with who and when;
* ``desired``: the state the controller wants each output in (re-sent after a restart);
* ``meta``: small key/values (was the last stop clean?);
* ``rejects``: a row the database refused on its own, with its error (kept, not dropped);
* ``planned``, ``planned_groups``: the year's calendar and the groups registered ahead;
  ``followup_contacts``, ``followup_answers``: the follow-up phone calls (their SQL is in
  :mod:`controller.planning` and :mod:`controller.followup`, through :meth:`Store.transaction`).

Durability: WAL journal with ``synchronous=NORMAL``. In WAL mode a commit is a single
append to the ``-wal`` file; NORMAL skips the fsync at each commit (it syncs at
checkpoints). A killed controller (``kill -9``, a crash) loses nothing that was committed:
the data is in the file, the OS writes it out. Only a power cut or kernel crash may roll
back the last commits, and never corrupts the file. FULL would fsync on every commit: on
the controller's SD card or eMMC that is milliseconds to tens of milliseconds *on the
event loop*, on the path between a keypad code and its lock. A lost second of game state
after a power cut is a smaller harm (the game master force-solves) than a lagging room.

Erasing: ``secure_delete`` overwrites what a statement deletes or rewrites with zeros, and
:meth:`Store.scrub` empties the ``-wal`` file after an erasure (a follow-up phone number),
so an erased value is in none of the store's files (docs/reliability.md).

What is written when (docs/engine.md, "Write-through"): a solve, a phase or budget change
at once; plain prop events batched (one transaction for many rows): :mod:`controller.journal`.
All of it goes through its :class:`~controller.journal.Backlog`: the session log never
loses a valid row. A write that fails (a full disk) is kept in memory and tried again with
back-off; a row that fails on its own never sinks its batch (:meth:`Store.write` sets it
aside in ``rejects``); the backlog's health is what ``/api/health`` and the console show
(docs/reliability.md, "The session log"). Every method runs one short transaction; a lock
makes the store safe to share between the event loop and FastAPI's thread pool. (Queries built
with f-strings only splice in ``WHERE`` clauses made of constants; every value is a bound
parameter: hence the S608 ``noqa``.)
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import fcntl
import io
import json
import logging
import os
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller import jsonsafe
from controller.core.errors import Bilingual, NotFoundError

log = logging.getLogger(__name__)

DB_NAME = "escape.db"
SCHEMA_VERSION = 4

#: the year's calendar, the groups registered ahead, the follow-up calls (version 3)
_PLANNING_TABLES = (
    """CREATE TABLE IF NOT EXISTS planned (
    id INTEGER PRIMARY KEY,
    date TEXT NOT NULL,
    time TEXT NOT NULL,
    game_master TEXT NOT NULL,
    parcours TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    session_id TEXT,
    created_at REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS planned_date ON planned (date, time)",
    """CREATE TABLE IF NOT EXISTS planned_groups (
    id INTEGER PRIMARY KEY,
    planned_id INTEGER NOT NULL REFERENCES planned (id) ON DELETE CASCADE,
    adults INTEGER NOT NULL CHECK (adults >= 0),
    children INTEGER NOT NULL CHECK (children >= 0),
    households INTEGER NOT NULL CHECK (households >= 1),
    tenancy TEXT NOT NULL,
    referral TEXT NOT NULL,
    first_visit INTEGER NOT NULL,
    created_at REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS planned_groups_plan ON planned_groups (planned_id)",
    """CREATE TABLE IF NOT EXISTS followup_contacts (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    phone TEXT,
    consent INTEGER NOT NULL,
    given_at REAL NOT NULL,
    called_at REAL,
    erased_at REAL,
    erased_why TEXT
)""",
    "CREATE INDEX IF NOT EXISTS followup_due ON followup_contacts (called_at, given_at)",
    """CREATE TABLE IF NOT EXISTS followup_answers (
    contact_id INTEGER NOT NULL REFERENCES followup_contacts (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (contact_id, question)
)""",
)

#: the debrief's steps: the page on the screens, and what the group answered (version 4);
#: counts per pictogram, never a name
_DEBRIEF_TABLES = (
    """CREATE TABLE IF NOT EXISTS debrief_progress (
    session_id TEXT PRIMARY KEY REFERENCES sessions (id),
    page INTEGER NOT NULL CHECK (page >= 0),
    who TEXT NOT NULL,
    at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS debrief_answers (
    session_id TEXT NOT NULL REFERENCES sessions (id),
    step TEXT NOT NULL CHECK (step IN ('feelings', 'at_home')),
    choice TEXT NOT NULL,
    count INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (session_id, step, choice)
)""",
)

#: what brings a database of an older schema version up to the next one
_MIGRATIONS = {
    1: ("ALTER TABLE budget_lines ADD COLUMN obligation TEXT",
        "ALTER TABLE budget_lines ADD COLUMN kind TEXT",
        "ALTER TABLE budget_lines ADD COLUMN label_en TEXT"),
    2: _PLANNING_TABLES,
    3: _DEBRIEF_TABLES,
}
#: beside the database, ``escape.db.lock``: every open store holds it shared, a restore
#: (controller/backup.py) alone — so a restore never pulls the file from under a controller
LOCK_SUFFIX = ".lock"
#: how long a statement waits for another connection's lock (a backup's read, a restore)
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    apartment TEXT NOT NULL,
    created_at REAL NOT NULL,
    date TEXT NOT NULL,
    parcours TEXT NOT NULL,
    players INTEGER NOT NULL,
    children INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    ended_at REAL,
    result TEXT,
    phase TEXT NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0,
    duration_s REAL,
    time_used_s REAL,
    clues INTEGER NOT NULL DEFAULT 0,
    clues_sent INTEGER NOT NULL DEFAULT 0,
    budget_start INTEGER,
    final_budget INTEGER,
    check_override TEXT,
    state TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_open ON sessions (closed, updated_at);
CREATE TABLE IF NOT EXISTS puzzle_results (
    session_id TEXT NOT NULL REFERENCES sessions (id),
    puzzle_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    label TEXT NOT NULL,
    theme TEXT,
    room TEXT,
    status TEXT NOT NULL,
    available_at_s REAL,
    solved_at_s REAL,
    duration_s REAL,
    solved_by TEXT,
    clues INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, puzzle_id)
);
CREATE TABLE IF NOT EXISTS budget_lines (
    session_id TEXT NOT NULL REFERENCES sessions (id),
    seq INTEGER NOT NULL,
    at_s REAL NOT NULL,
    amount INTEGER NOT NULL,
    label TEXT NOT NULL,
    puzzle TEXT,
    obligation TEXT,
    kind TEXT,
    label_en TEXT,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS clues (
    session_id TEXT NOT NULL REFERENCES sessions (id),
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    puzzle TEXT,
    idx INTEGER,
    text TEXT NOT NULL,
    room TEXT,
    counts INTEGER NOT NULL,
    cost INTEGER NOT NULL,
    who TEXT,
    sent_at_s REAL NOT NULL,
    sent_wall REAL NOT NULL,
    shown_wall REAL,
    PRIMARY KEY (session_id, id)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    session_id TEXT,
    at REAL NOT NULL,
    elapsed_s REAL,
    kind TEXT NOT NULL,
    node TEXT,
    prop TEXT,
    type TEXT,
    value TEXT,
    text TEXT
);
CREATE INDEX IF NOT EXISTS events_session ON events (session_id, id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    session_id TEXT,
    at REAL NOT NULL,
    elapsed_s REAL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_session ON audit (session_id, id);
CREATE TABLE IF NOT EXISTS desired (
    node TEXT NOT NULL,
    prop TEXT NOT NULL,
    action TEXT NOT NULL,
    params TEXT NOT NULL,
    relock_pending INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (node, prop)
);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    error TEXT NOT NULL,
    row TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    session_id TEXT PRIMARY KEY REFERENCES sessions(id),
    rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    learned TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    who TEXT NOT NULL,
    at REAL NOT NULL
);
""" + "".join(f"{statement};\n" for statement in (*_PLANNING_TABLES, *_DEBRIEF_TABLES))

SESSION_CSV_COLUMNS = (
    ("session", "id"), ("date", "date"), ("parcours", "parcours"), ("joueurs", "players"),
    ("enfants", "children"), ("debut", "started"), ("fin", "ended"), ("resultat", "result"),
    ("temps_utilise_s", "time_used_s"), ("temps_utilise", "time_used"),
    ("duree_prevue_s", "duration_s"), ("indices", "clues"), ("budget_depart", "budget_start"),
    ("budget_final", "final_budget"), ("enigmes_resolues", "puzzles_solved"),
    ("enigmes", "puzzles"), ("verification_forcee", "check_override"),
    ("note_groupe", "rating"), ("themes_retenus", "learned_csv"), ("commentaire", "comment"),
    ("ressentis", "feelings_csv"), ("chez_vous", "at_home_csv"),
)
PUZZLE_CSV_COLUMNS = (
    ("session", "session_id"), ("date", "date"), ("parcours", "parcours"),
    ("ordre", "position"), ("enigme", "puzzle_id"), ("libelle", "label"), ("theme", "theme"),
    ("piece", "room"), ("statut", "status"), ("disponible_a_s", "available_at_s"),
    ("resolue_a_s", "solved_at_s"), ("temps_passe_s", "duration_s"), ("resolue_par", "solved_by"),
    ("indices", "clues"),
)
RESULT_LABELS = {"won": "gagné", "lost": "perdu", "aborted": "interrompu", "cancelled": "annulé",
                 None: "en cours"}


class StoreError(RuntimeError):
    """The session database cannot be used."""


#: a journal entry: ``("prop" | <note kind>, row of the event log)`` or ``("audit", row)``
Entry = tuple[str, dict[str, Any]]

#: what a row can fail with on its own (a constraint, a value SQLite cannot bind, a field
#: missing): that row is set aside, the rest of its batch is written. Anything else (disk
#: full, I/O error, database locked) fails the whole batch, which is kept and retried.
ROW_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.DataError,
    OverflowError, ValueError, TypeError, KeyError)

_EVENT_SQL = ("INSERT INTO events (session_id, at, elapsed_s, kind, node, prop, type, value, text) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
_AUDIT_SQL = ("INSERT INTO audit (session_id, at, elapsed_s, who, action, target, detail) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)")


def _event_params(kind: str, e: dict[str, Any]) -> tuple[Any, ...]:
    if kind == "prop":
        return (e["session"], e["wall"], e["at"], "prop", e["node"], e["prop"], e["type"],
                jsonsafe.dumps(e["value"], what=f"event {e['node']}.{e['prop']} value"), None)
    return (e["session"], e["wall"], e["at"], e["kind"], None, None, None, None, e["text"])


def _audit_params(e: dict[str, Any]) -> tuple[Any, ...]:
    return (e["session"], e["at"], e["elapsed"], e["who"], e["action"], e["target"], e["detail"])


@dataclass(slots=True)
class Batch:
    """What one transaction writes (:meth:`Store.write`), in this order."""

    #: ``(engine record, history rows)`` per session: the whole session, upserted
    sessions: Sequence[tuple[dict[str, Any], dict[str, Any]]] = ()
    #: ``(session, last_activity, time_used_s)``: only the inactivity clock moved
    activity: Sequence[tuple[str, float, float]] = ()
    #: ``(session, result)``: closed (never resumed again), with its result if given
    closes: Sequence[tuple[str, str | None]] = ()
    #: ``(node, prop, action, params, relock_pending)``
    desired: Sequence[tuple[str, str, str, dict[str, Any], bool]] = ()
    meta: Sequence[tuple[str, str]] = ()
    journal: Sequence[Entry] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row the database refused on its own; kept in the ``rejects`` table."""

    kind: str
    error: str
    row: Any

    def text(self) -> str:
        try:
            return jsonsafe.dumps(self.row, what=f"rejected {self.kind} row")
        except ValueError:
            return json.dumps(repr(self.row))


class SessionNotEnded(Bilingual, ValueError):
    """An order that needs a finished session (an evaluation) on one still open."""


def default_path(data_dir: Path) -> Path:
    return Path(data_dir) / DB_NAME


def _local_date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).date().isoformat()


def _local_time(ts: float | None) -> str:
    return "" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _mmss(seconds: float | None) -> str:
    if seconds is None:
        return ""
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"


class Store:
    """The controller's SQLite database.

    >>> store = Store(tmp_path / "escape.db")
    >>> store.save_session(to_record(engine), history_rows(engine), engine.take_journal())
    >>> store.open_session()["session"] == engine.session_id
    True
    """

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL"):
            msg = f"synchronous must be NORMAL or FULL, not {synchronous!r}"
            raise ValueError(msg)
        self.path = Path(path) if str(path) != ":memory:" else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._closed = False
        #: an erasure whose old bytes may still be in the ``-wal`` file (:meth:`scrub`)
        self._scrub_pending = False
        self._lock_fd = self._share_lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                       timeout=BUSY_TIMEOUT_MS / 1000)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA foreign_keys=ON")
            # what a statement deletes or rewrites is overwritten with zeros in the file, not
            # left in a free page or a cell's old place: an erased phone number is gone
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:   # a new file: the schema above is the latest
                version = SCHEMA_VERSION
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            while version in _MIGRATIONS:
                with self._db:   # one transaction per step: a step is all done or not at all
                    self._db.execute("BEGIN")
                    for statement in _MIGRATIONS[version]:
                        self._db.execute(statement)
                    version += 1
                    self._db.execute(f"PRAGMA user_version={version}")
            if version != SCHEMA_VERSION:
                msg = f"{path}: database schema version {version}, this controller knows {SCHEMA_VERSION}"
                raise StoreError(msg)
        except sqlite3.Error as exc:
            self._unlock()
            msg = f"cannot open the session database {path}: {exc}"
            raise StoreError(msg) from exc

    def _share_lock(self) -> int | None:
        if self.path is None:
            return None
        try:
            fd = os.open(self.path.with_name(self.path.name + LOCK_SUFFIX), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            msg = f"cannot open the session database's lock file beside {self.path}: {exc}"
            raise StoreError(msg) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            msg = f"the session database {self.path} is being restored from a backup: try again after"
            raise StoreError(msg) from None
        return fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        """Close the database (safe to call twice)."""
        with self._lock:
            self._closed = True
            try:
                self._db.close()
            except sqlite3.Error:
                log.exception("closing the session database failed")
            self._unlock()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                msg = "the session database is closed"
                raise StoreError(msg)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, for the modules that keep their own tables here
        (:mod:`controller.planning`, :mod:`controller.followup`): committed when the block
        ends, rolled back if it raises."""
        with self._tx() as db:
            yield db

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of one read-only query, as dicts."""
        with self._lock:
            if self._closed:
                msg = "the session database is closed"
                raise StoreError(msg)
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def _rollback(self) -> None:
        # NOTE: SQLite rolls a transaction back by itself on some errors (SQLITE_FULL,
        # SQLITE_IOERR): a second ROLLBACK then fails and would hide the first error.
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    @staticmethod
    @contextmanager
    def _savepoint(db: sqlite3.Connection, name: str) -> Iterator[None]:
        db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if db.in_transaction:   # else SQLite already rolled it all back
                with contextlib.suppress(sqlite3.Error):
                    db.execute(f"ROLLBACK TO {name}")
                    db.execute(f"RELEASE {name}")
            raise
        db.execute(f"RELEASE {name}")

    @property
    def scrub_pending(self) -> bool:
        """An erasure's old bytes may still be in the ``-wal`` file: :meth:`scrub` failed."""
        return self._scrub_pending

    def scrub(self) -> bool:
        """After an erasure (a phone number): move the WAL into the database file and empty it
        (``wal_checkpoint(TRUNCATE)``), so the erased bytes no longer sit in an old frame of
        the ``-wal`` file; the database file has them overwritten with zeros
        (``secure_delete``). Never raises: a reader holding an older snapshot (a backup
        running) or a full disk leaves it for the next call (:attr:`scrub_pending`), logged.
        Never waits for a reader either: writes queue behind this lock."""
        with self._lock:
            if self._closed:
                return False
            self._scrub_pending = True
            try:
                self._db.execute("PRAGMA busy_timeout=0")
                try:
                    busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                finally:
                    self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            except sqlite3.Error as exc:
                log.warning("erased data may still be in the session database's -wal file (%s): "
                            "tried again at the next erasure or hourly round", exc)
                return False
            if busy:
                log.warning("erased data may still be in the session database's -wal file (a reader "
                            "holds an older snapshot): tried again at the next erasure or hourly round")
                return False
            self._scrub_pending = False
            return True

    def pragma(self, name: str) -> Any:
        with self._lock:
            return self._db.execute(f"PRAGMA {name}").fetchone()[0]

    # -- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: str) -> list[Rejected]:
        return self.write(Batch(meta=[(key, value)]))

    # -- writing ----------------------------------------------------------------------------
    def write(self, batch: Batch) -> list[Rejected]:
        """Write *batch* in one transaction; return the rows set aside.

        A row that fails on its own (:data:`ROW_ERRORS`: a constraint, a value SQLite
        cannot bind, a field missing) sinks nothing: the transaction goes on with each
        row in a savepoint of its own, and the row is kept in the ``rejects`` table with
        its error. Any other error (disk full, I/O error) leaves nothing written and is
        raised: the caller keeps the batch and tries again (:class:`controller.journal.Backlog`).
        """
        with self._tx() as db:
            try:
                with self._savepoint(db, "batch"):
                    self._write_all(db, batch)
                return []
            except ROW_ERRORS:
                pass
            rejected = []
            for kind, row, put in self._items(batch):
                try:
                    with self._savepoint(db, "row"):
                        put(db, row)
                except ROW_ERRORS as exc:
                    rejected.append(Rejected(kind, f"{type(exc).__name__}: {exc}", row))
            for r in rejected:
                db.execute("INSERT INTO rejects (at, kind, error, row) VALUES (?, ?, ?, ?)",
                           (time.time(), r.kind, r.error, r.text()))
            return rejected

    def _write_all(self, db: sqlite3.Connection, batch: Batch) -> None:
        """The batch as it should be: the journal in two ``executemany`` (the hot path)."""
        for _kind, row, put in self._items(batch, journal=False):
            put(db, row)
        db.executemany(_EVENT_SQL, [_event_params(kind, e) for kind, e in batch.journal if kind != "audit"])
        db.executemany(_AUDIT_SQL, [_audit_params(e) for kind, e in batch.journal if kind == "audit"])

    def _items(self, batch: Batch, *, journal: bool = True) -> Iterator[tuple[str, Any, Any]]:
        """``(kind, row, put)`` for each row of *batch*, in the order they are written:
        the session records first (latest wins), then what patches them, then the rest."""
        for row in batch.sessions:
            yield "session", row, self._put_session
        for row in batch.activity:
            yield "activity", row, self._put_activity
        for row in batch.closes:
            yield "close", row, self._put_close
        for row in batch.desired:
            yield "desired", row, self._put_desired
        for row in batch.meta:
            yield "meta", row, self._put_meta
        if journal:
            for entry in batch.journal:
                yield entry[0], entry, self._put_entry

    @staticmethod
    def _put_session(db: sqlite3.Connection, row: tuple[dict[str, Any], dict[str, Any]]) -> None:
        record, rows = row
        s = rows["session"]
        if not s["id"]:
            msg = "no session to save"
            raise ValueError(msg)
        now = time.time()
        created = s["created_at"] or now
        db.execute(
            """INSERT INTO sessions (id, apartment, created_at, date, parcours, players, children,
                   started_at, ended_at, result, phase, duration_s, time_used_s, clues, clues_sent,
                   budget_start, final_budget, check_override, state, updated_at)
               VALUES (:id, :apartment, :created_at, :date, :parcours, :players, :children,
                   :started_at, :ended_at, :result, :phase, :duration_s, :time_used_s, :clues,
                   :clues_sent, :budget_start, :final_budget, :check_override, :state, :updated_at)
               ON CONFLICT (id) DO UPDATE SET parcours = excluded.parcours,
                   players = excluded.players, children = excluded.children,
                   started_at = excluded.started_at, ended_at = excluded.ended_at,
                   result = excluded.result, phase = excluded.phase,
                   duration_s = excluded.duration_s, time_used_s = excluded.time_used_s,
                   clues = excluded.clues, clues_sent = excluded.clues_sent,
                   budget_start = excluded.budget_start, final_budget = excluded.final_budget,
                   check_override = excluded.check_override, state = excluded.state,
                   updated_at = excluded.updated_at""",
            {**s, "created_at": created, "date": _local_date(s["started_at"] or created),
             "state": jsonsafe.dumps(record, what="session record"), "updated_at": now})
        db.executemany(
            """INSERT OR REPLACE INTO puzzle_results (session_id, puzzle_id, position, label, theme,
                   room, status, available_at_s, solved_at_s, duration_s, solved_by, clues)
               VALUES (:session_id, :puzzle_id, :position, :label, :theme, :room, :status,
                   :available_at_s, :solved_at_s, :duration_s, :solved_by, :clues)""",
            [{**p, "session_id": s["id"], "position": i} for i, p in enumerate(rows["puzzles"])])
        db.execute("DELETE FROM budget_lines WHERE session_id = ? AND seq >= ?",
                   (s["id"], len(rows["budget"])))
        db.executemany(
            "INSERT OR REPLACE INTO budget_lines (session_id, seq, at_s, amount, label, puzzle, "
            "obligation, kind, label_en) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(s["id"], i, b["at"], b["amount"], b["label"], b["puzzle"], b.get("obligation"),
              None if b.get("kind") is None else str(b["kind"]), b.get("label_en"))
             for i, b in enumerate(rows["budget"])])
        db.executemany(
            """INSERT OR REPLACE INTO clues (session_id, id, seq, puzzle, idx, text, room, counts,
                   cost, who, sent_at_s, sent_wall, shown_wall)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [(s["id"], c["id"], i, c["puzzle"], c["index"], c["text"], c["room"], int(c["counts"]),
              c["cost"], c["who"], c["sent_at"], c["sent_wall"], c["shown_wall"])
             for i, c in enumerate(rows["clues"])])

    @staticmethod
    def _put_activity(db: sqlite3.Connection, row: tuple[str, float, float]) -> None:
        session_id, last_activity, time_used = row
        db.execute("UPDATE sessions SET state = json_set(state, '$.last_activity', ?), "
                   "time_used_s = ?, updated_at = ? WHERE id = ?",
                   (last_activity, time_used, time.time(), session_id))

    @staticmethod
    def _put_close(db: sqlite3.Connection, row: tuple[str, str | None]) -> None:
        session_id, result = row
        if result is None:
            db.execute("UPDATE sessions SET closed = 1, updated_at = ? WHERE id = ?",
                       (time.time(), session_id))
        else:
            db.execute("UPDATE sessions SET closed = 1, result = ?, phase = ?, updated_at = ? "
                       "WHERE id = ?", (result, result, time.time(), session_id))

    @staticmethod
    def _put_desired(db: sqlite3.Connection, row: tuple[str, str, str, dict[str, Any], bool]) -> None:
        node, prop, action, params, relock_pending = row
        db.execute("INSERT OR REPLACE INTO desired (node, prop, action, params, relock_pending) "
                   "VALUES (?, ?, ?, ?, ?)",
                   (node, prop, action, jsonsafe.dumps(params, what="desired state"), int(relock_pending)))

    @staticmethod
    def _put_meta(db: sqlite3.Connection, row: tuple[str, str]) -> None:
        db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value", row)

    @staticmethod
    def _put_entry(db: sqlite3.Connection, entry: Entry) -> None:
        kind, e = entry
        if kind == "audit":
            db.execute(_AUDIT_SQL, _audit_params(e))
        else:
            db.execute(_EVENT_SQL, _event_params(kind, e))

    # -- the same, one kind at a time -------------------------------------------------------
    def save_session(self, record: dict[str, Any], rows: dict[str, Any],
                     journal: Sequence[Entry] = ()) -> list[Rejected]:
        """Write the whole session (upserts) and the new journal entries, in one transaction."""
        return self.write(Batch(sessions=[(record, rows)], journal=journal))

    def add_journal(self, journal: Sequence[Entry], *,
                    activity: tuple[str, float, float] | None = None) -> list[Rejected]:
        """Write prop events, notes and audit entries in one transaction (the controller
        batches the events of one event-loop turn: docs/performance.md).

        *activity* ``(session, last_activity, time_used_s)``: the session's inactivity
        clock moved; only that field of its resume record is rewritten (``json_set``), not
        the whole record: nothing else in it changed (else :meth:`save_session`).
        """
        return self.write(Batch(journal=journal, activity=[activity] if activity else []))

    def close_session(self, session_id: str, *, result: str | None = None,
                      journal: Sequence[Entry] = ()) -> list[Rejected]:
        """The session is over for the controller (reset or cancelled): never resumed again."""
        return self.write(Batch(closes=[(session_id, result)], journal=journal))

    def save_desired(self, node: str, prop: str, action: str, params: dict[str, Any],
                     relock_pending: bool) -> list[Rejected]:
        return self.write(Batch(desired=[(node, prop, action, params, relock_pending)]))

    def rejects(self) -> list[dict[str, Any]]:
        """The rows the database refused on their own (oldest first), with their error."""
        with self._lock:
            rows = self._db.execute("SELECT at, kind, error, row FROM rejects ORDER BY id").fetchall()
        return [{**dict(r), "row": json.loads(r["row"])} for r in rows]

    def open_session(self) -> dict[str, Any] | None:
        """The engine record of the session to resume (the newest not closed), if any."""
        with self._lock:
            row = self._db.execute("SELECT state FROM sessions WHERE closed = 0 "
                                   "ORDER BY updated_at DESC LIMIT 1").fetchone()
        return None if row is None else json.loads(row[0])

    def recent_journal(self, session_id: str, limit: int = 50) -> tuple[list[dict[str, Any]],
                                                                        list[dict[str, Any]]]:
        """The last notes and audit entries of a session, oldest first (for a resumed engine)."""
        with self._lock:
            notes = self._db.execute(
                "SELECT elapsed_s AS at, kind, text, at AS wall, session_id AS session FROM events "
                "WHERE session_id = ? AND kind != 'prop' ORDER BY id DESC LIMIT ?",
                (session_id, limit)).fetchall()
            audits = self._db.execute(
                "SELECT at, elapsed_s AS elapsed, who, action, target, detail, session_id AS session "
                "FROM audit WHERE session_id = ? ORDER BY id DESC LIMIT ?", (session_id, limit)).fetchall()
        return [dict(r) for r in reversed(notes)], [dict(r) for r in reversed(audits)]

    # -- desired output states ------------------------------------------------------------
    def load_desired(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT node, prop, action, params, relock_pending FROM desired").fetchall()
        return [{"node": r["node"], "prop": r["prop"], "action": r["action"],
                 "params": json.loads(r["params"]), "relock_pending": bool(r["relock_pending"])}
                for r in rows]

    # -- history --------------------------------------------------------------------------
    def _session_rows(self, where: str, args: Sequence[Any], limit: int | None = None,
                      offset: int = 0) -> list[dict[str, Any]]:
        sql = (f"""SELECT s.*, (SELECT COUNT(*) FROM puzzle_results p WHERE p.session_id = s.id
                                AND p.status = 'solved') AS puzzles_solved,
                               (SELECT COUNT(*) FROM puzzle_results p WHERE p.session_id = s.id) AS puzzles,
                               e.rating AS rating, e.learned AS learned, e.comment AS comment
                   FROM sessions s LEFT JOIN evaluations e ON e.session_id = s.id
                   WHERE {where} ORDER BY s.started_at DESC, s.created_at DESC""")  # noqa: S608
        params = list(args)
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        out = []
        for r in rows:
            d = {k: r[k] for k in r.keys() if k != "state"}  # noqa: SIM118 - sqlite3.Row
            d["children"] = bool(d["children"])
            d["closed"] = bool(d["closed"])
            d["result_label"] = RESULT_LABELS.get(d["result"], d["result"])
            d["started"], d["ended"] = _local_time(d["started_at"]), _local_time(d["ended_at"])
            d["time_used"] = _mmss(d["time_used_s"])
            d["learned"] = json.loads(d["learned"]) if d["learned"] is not None else None
            out.append(d)
        return out

    @staticmethod
    def _filters(date_from: str | None, date_to: str | None, parcours: str | None,
                 table: str = "") -> tuple[str, list[Any]]:
        t = f"{table}." if table else ""
        where, args = [f"{t}started_at IS NOT NULL"], []
        if date_from:
            where.append(f"{t}date >= ?")
            args.append(date_from)
        if date_to:
            where.append(f"{t}date <= ?")
            args.append(date_to)
        if parcours:
            where.append(f"{t}parcours = ?")
            args.append(parcours)
        return " AND ".join(where), args

    def sessions(self, *, limit: int = 100, offset: int = 0, date_from: str | None = None,
                 date_to: str | None = None, parcours: str | None = None) -> list[dict[str, Any]]:
        """Played sessions (their run started), newest first."""
        where, args = self._filters(date_from, date_to, parcours)
        return self._session_rows(where, args, limit, offset)

    def session(self, session_id: str) -> dict[str, Any] | None:
        """One session with its puzzles, budget lines, clues, audit log, and how many prop
        events it had."""
        rows = self._session_rows("s.id = ?", [session_id])
        if not rows:
            return None
        out = rows[0]
        with self._lock:
            out["puzzles_detail"] = [dict(r) for r in self._db.execute(
                "SELECT * FROM puzzle_results WHERE session_id = ? ORDER BY position", (session_id,))]
            out["budget_lines"] = [dict(r) for r in self._db.execute(
                "SELECT seq, at_s, amount, label, label_en, puzzle, obligation, kind FROM budget_lines "
                "WHERE session_id = ? "
                "ORDER BY seq", (session_id,))]
            out["clues_detail"] = [dict(r) for r in self._db.execute(
                "SELECT * FROM clues WHERE session_id = ? ORDER BY seq", (session_id,))]
            out["audit"] = [dict(r) for r in self._db.execute(
                "SELECT at, elapsed_s, who, action, target, detail FROM audit WHERE session_id = ? "
                "ORDER BY id", (session_id,))]
            evaluation = self._db.execute(
                "SELECT rating, learned, comment, who, at FROM evaluations WHERE session_id = ?",
                (session_id,)).fetchone()
            out["events"] = self._db.execute(
                "SELECT COUNT(*) FROM events WHERE session_id = ? AND kind = 'prop'",
                (session_id,)).fetchone()[0]
        for clue in out["clues_detail"]:
            clue["counts"] = bool(clue["counts"])
        out["evaluation"] = None if evaluation is None else {
            **dict(evaluation), "learned": json.loads(evaluation["learned"])}
        return out

    def save_evaluation(self, session_id: str, *, rating: int, learned: Sequence[str], comment: str,
                        who: str, at: float | None = None) -> dict[str, Any]:
        """Record (or correct) how the group judged a finished session: a 1–5 rating, the
        themes the participants say they learned something about, a comment.

        :raises LookupError: no such session, or it has not ended (nothing to judge yet).
        """
        at = time.time() if at is None else at
        with self._tx() as db:
            row = db.execute("SELECT result FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                msg = f"session inconnue {session_id!r}"
                raise NotFoundError(msg, en=f"unknown session {session_id!r}")
            if row["result"] not in ("won", "lost", "aborted"):
                msg = f"la session {session_id} n'est pas terminée : rien à évaluer encore"
                raise SessionNotEnded(msg, en=f"session {session_id} has not ended: nothing to "
                                              "evaluate yet")
            db.execute(
                """INSERT INTO evaluations (session_id, rating, learned, comment, who, at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (session_id) DO UPDATE SET rating = excluded.rating,
                       learned = excluded.learned, comment = excluded.comment, who = excluded.who,
                       at = excluded.at""",
                (session_id, rating, json.dumps(list(learned)), comment, who, at))
            db.execute("INSERT INTO audit (session_id, at, elapsed_s, who, action, target, detail) "
                       "VALUES (?, ?, NULL, ?, 'evaluation', ?, ?)",
                       (session_id, at, who, session_id, f"note {rating}/5"))
        return {"rating": rating, "learned": list(learned), "comment": comment, "who": who, "at": at}

    def events(self, session_id: str, *, limit: int = 10_000) -> list[dict[str, Any]]:
        """The event log of a session, oldest first: prop events and the engine's notes."""
        with self._lock:
            rows = self._db.execute(
                "SELECT at, elapsed_s, kind, node, prop, type, value, text FROM events "
                "WHERE session_id = ? ORDER BY id LIMIT ?", (session_id, limit)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            if d["value"] is not None:
                d["value"] = json.loads(d["value"])
            out.append(d)
        return out

    def stats(self, *, date_from: str | None = None, date_to: str | None = None,
              parcours: str | None = None) -> dict[str, Any]:
        """What the organisers report: sessions, participants, success, times, clues."""
        where, args = self._filters(date_from, date_to, parcours)
        joined, _ = self._filters(date_from, date_to, parcours, "s")
        with self._lock:
            s = self._db.execute(
                f"""SELECT COUNT(*) AS sessions, COALESCE(SUM(players), 0) AS participants,
                        COALESCE(SUM(children), 0) AS with_children,
                        SUM(result = 'won') AS won, SUM(result = 'lost') AS lost,
                        SUM(result = 'aborted') AS aborted, SUM(result IS NULL) AS in_progress,
                        AVG(CASE WHEN result IN ('won', 'lost', 'aborted') THEN time_used_s END)
                            AS average_time_s,
                        AVG(CASE WHEN result = 'won' THEN time_used_s END) AS average_time_won_s,
                        AVG(CASE WHEN result IN ('won', 'lost', 'aborted') THEN clues END)
                            AS average_clues,
                        AVG(CASE WHEN result IN ('won', 'lost', 'aborted') THEN final_budget END)
                            AS average_final_budget
                    FROM sessions WHERE {where}""", args).fetchone()  # noqa: S608
            per_parcours = self._db.execute(
                f"""SELECT parcours, COUNT(*) AS sessions, COALESCE(SUM(players), 0) AS participants,
                        SUM(result = 'won') AS won
                    FROM sessions WHERE {where} GROUP BY parcours ORDER BY parcours""",  # noqa: S608
                args).fetchall()
            puzzles = self._db.execute(
                f"""SELECT p.puzzle_id, MIN(p.position) AS position, MAX(p.label) AS label,
                        MAX(p.theme) AS theme, COUNT(*) AS sessions,
                        SUM(p.status = 'solved') AS solved,
                        SUM(p.status = 'solved' AND p.solved_by = 'players') AS solved_by_players,
                        AVG(CASE WHEN p.solved_by = 'players' THEN p.duration_s END) AS average_time_s,
                        AVG(p.clues) AS average_clues, SUM(p.clues) AS clues
                    FROM puzzle_results p JOIN sessions s ON s.id = p.session_id
                    WHERE {joined}
                    GROUP BY p.puzzle_id ORDER BY position, p.puzzle_id""", args).fetchall()  # noqa: S608
            evaluations = self._db.execute(
                f"""SELECT e.rating, e.learned FROM evaluations e JOIN sessions s ON s.id = e.session_id
                    WHERE {joined}""", args).fetchall()  # noqa: S608
            answered = self._db.execute(
                f"""SELECT a.step, a.choice, SUM(a.count) AS n FROM debrief_answers a
                    JOIN sessions s ON s.id = a.session_id WHERE {joined}
                    GROUP BY a.step, a.choice ORDER BY a.step, n DESC, a.choice""", args).fetchall()  # noqa: S608
            times: dict[str, list[float]] = {}
            for r in self._db.execute(
                    f"""SELECT p.puzzle_id, p.duration_s FROM puzzle_results p
                        JOIN sessions s ON s.id = p.session_id
                        WHERE {joined} AND p.solved_by = 'players' AND p.duration_s IS NOT NULL""",  # noqa: S608
                    args):
                times.setdefault(r["puzzle_id"], []).append(r["duration_s"])
        won, lost = s["won"] or 0, s["lost"] or 0
        learned: dict[str, int] = {}
        for e in evaluations:
            for theme in json.loads(e["learned"]):
                learned[theme] = learned.get(theme, 0) + 1
        return {
            "sessions": s["sessions"], "participants": s["participants"],
            "sessions_with_children": s["with_children"],
            "results": {"won": won, "lost": lost, "aborted": s["aborted"] or 0,
                        "in_progress": s["in_progress"] or 0},
            # NOTE: an aborted session (emergency, a fire drill) says nothing of the players.
            "success_rate": round(won / (won + lost), 3) if won + lost else None,
            "average_time_s": _round(s["average_time_s"]),
            "average_time_won_s": _round(s["average_time_won_s"]),
            "average_clues": _round(s["average_clues"], 2),
            "average_final_budget": _round(s["average_final_budget"]),
            "per_parcours": [dict(r) for r in per_parcours],
            # how the groups judged their sessions (the debrief's evaluation form)
            "evaluations": {"count": len(evaluations),
                            "average_rating": _round(statistics.fmean(e["rating"] for e in evaluations), 2)
                            if evaluations else None,
                            "learned": learned},
            # what the groups said at the debrief: how many picked each feeling, each thing
            # to do at home (counts, never names)
            "debrief": {step: {r["choice"]: r["n"] for r in answered if r["step"] == step}
                        for step in ("feelings", "at_home")},
            "puzzles": [{"id": r["puzzle_id"], "label": r["label"], "theme": r["theme"],
                         "sessions": r["sessions"], "solved": r["solved"],
                         "solved_by_players": r["solved_by_players"],
                         "solve_rate": round(r["solved"] / r["sessions"], 3) if r["sessions"] else None,
                         "average_time_s": _round(r["average_time_s"]),
                         "median_time_s": _round(statistics.median(times[r["puzzle_id"]]))
                         if r["puzzle_id"] in times else None,
                         "average_clues": _round(r["average_clues"], 2), "clues": r["clues"]}
                        for r in puzzles],
        }

    def sessions_csv(self, *, sep: str = ";", **filters: Any) -> str:
        """One line per played session, for a spreadsheet (UTF-8 with BOM, French headers)."""
        rows = self.sessions(limit=1_000_000, **filters)
        for r in rows:
            r["result"] = r["result_label"]
            r["children"] = "oui" if r["children"] else "non"
            r["check_override"] = r["check_override"] or ""
            r["learned_csv"] = ",".join(r["learned"] or [])
            r["comment"] = r["comment"] or ""
        answers = self.debrief_answers([r["id"] for r in rows])
        for r in rows:
            mine = answers.get(r["id"], {})
            for step in ("feelings", "at_home"):   # counts per pictogram: « happy:3,lost:1 »
                r[f"{step}_csv"] = ",".join(f"{k}:{n}" for k, n in mine.get(step, {}).items() if n)
        return _csv(SESSION_CSV_COLUMNS, rows, sep)

    def debrief_answers(self, session_ids: Sequence[str] | None = None,
                        ) -> dict[str, dict[str, dict[str, int]]]:
        """What the groups answered at the debrief, per session and step (``feelings``,
        ``at_home``): how many picked each pictogram. *session_ids* None: every session."""
        sql = "SELECT session_id, step, choice, count FROM debrief_answers"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY rowid").fetchall()
        wanted = None if session_ids is None else set(session_ids)
        out: dict[str, dict[str, dict[str, int]]] = {}
        for r in rows:
            if wanted is None or r["session_id"] in wanted:
                out.setdefault(r["session_id"], {}).setdefault(r["step"], {})[r["choice"]] = r["count"]
        return out

    def puzzles_csv(self, *, sep: str = ";", **filters: Any) -> str:
        """One line per session and puzzle."""
        where, args = self._filters(filters.get("date_from"), filters.get("date_to"),
                                    filters.get("parcours"), "s")
        with self._lock:
            rows = [dict(r) for r in self._db.execute(
                f"""SELECT p.*, s.date, s.parcours FROM puzzle_results p
                    JOIN sessions s ON s.id = p.session_id WHERE {where}
                    ORDER BY s.started_at, p.position""", args)]  # noqa: S608
        for r in rows:
            r["status"] = {"solved": "résolue", "available": "en cours", "locked": "pas atteinte"}.get(
                r["status"], r["status"])
            for key in ("available_at_s", "solved_at_s", "duration_s"):
                r[key] = "" if r[key] is None else round(r[key])
        return _csv(PUZZLE_CSV_COLUMNS, rows, sep)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _csv(columns: Sequence[tuple[str, str]], rows: list[dict[str, Any]], sep: str) -> str:
    out = io.StringIO()
    # NOTE: the BOM makes spreadsheet programs read the accents as UTF-8; ';' is what a
    # French-locale spreadsheet splits on.
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=sep, lineterminator="\r\n")
    writer.writerow([header for header, _ in columns])
    for row in rows:
        writer.writerow(["" if row.get(key) is None else _cell(row.get(key)) for _, key in columns])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return round(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # NOTE: no formula injection from a free-text field
    return value
