"""What the controller writes to its store, and when (docs/performance.md, durability).

A solve, a step of a puzzle, a phase or budget change is written at once (:meth:`save`):
durable before the next message is read. Prop events that change nothing but the log and
the inactivity clock are written together a little later (:meth:`record_event`, at most
:data:`FLUSH_AFTER_S` late, or at once when :data:`FLUSH_ROWS` wait): a ``kill -9`` may
lose that much of the log. Everything goes through the store's
:class:`Backlog`: a write that fails (a full disk) is kept and tried again, and the
console shows it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from controller.context import Context
from controller.engine import Engine
from controller.record import from_record, history_rows, to_record
from controller.store import Batch, Entry, Rejected, Store, StoreError
from protocol.contract import PropEvent

log = logging.getLogger(__name__)

#: plain prop events are written at most this late, in one transaction (or at once when
#: this many are waiting)
FLUSH_AFTER_S = 0.05
FLUSH_ROWS = 500

#: journal rows kept in memory while the database cannot be written (a full disk), at
#: most: ~10 hours of a real game's events (a few per second), 20 s of the bench's 5,000/s;
#: 43 MB (434 bytes a row). Past it the oldest are dropped, counted and logged as
#: critical: the controller's memory would be the next thing to fill.
MAX_WAITING_ROWS = 100_000
#: a failed write is tried again after this long, then twice as long each time up to
#: RETRY_MAX_S: a freed disk is written again within RETRY_MAX_S and one tick (0.2 s)
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 1.0
#: journal rows per transaction: a retry on a full disk fails after one of them, not after
#: building and inserting every row waiting
WRITE_ROWS = 1000
#: catching up on many waiting rows holds the event loop this long per call, at most
CATCH_UP_S = 0.05
#: while failing, the log says so again this often (not at every retry)
REMIND_EVERY_S = 60.0


class Backlog:
    """Everything the controller has to write to the session log, kept until it is written.

    The service queues journal rows, session records, closes, desired states and meta
    values, then calls :meth:`write`: all of it goes in one transaction
    (:meth:`Store.write`). When that fails (a full disk, an I/O error) nothing is lost:
    everything stays queued — the latest session record and desired state win over
    older ones — and is tried again at the next :meth:`write` once the back-off has run
    (the service's ticker calls it every 0.2 s). A row that fails on its own never
    blocks the others: :meth:`Store.write` sets it aside in the ``rejects`` table.

    :meth:`health` says what ``/api/health`` and the console show.
    """

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, max_rows: int = MAX_WAITING_ROWS) -> None:
        self.store = store
        self.clock, self.wall = clock, wall
        self.max_rows = max_rows
        self._journal: list[Entry] = []
        self._sessions: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._activity: dict[str, tuple[str, float, float]] = {}
        self._closes: dict[str, str | None] = {}
        self._desired: dict[tuple[str, str], tuple[str, str, str, dict[str, Any], bool]] = {}
        self._meta: dict[str, str] = {}
        #: why the last write failed (None: the last write succeeded)
        self.error: str | None = None
        self._since: tuple[float, float] | None = None   # first failure: monotonic, wall
        self._retry_at = 0.0
        self._delay = 0.0
        self._reminded = 0.0
        self._caught_up = 0   # rows written since the first failure (to report)
        self.failures = 0     # failed writes, since start
        self.rejected = 0     # rows set aside (rejects table), since start
        self.dropped = 0      # rows lost past max_rows, since start
        #: the last time the database came back: rows written, how long they waited, when
        self.recovered: dict[str, Any] | None = None

    # -- what to write ------------------------------------------------------------------
    def add(self, journal: Sequence[Entry]) -> None:
        self._journal += journal
        over = len(self._journal) - self.max_rows
        if over > 0:
            del self._journal[:over]
            if not self.dropped:
                log.critical("session log: %d rows waiting, the most kept in memory: dropping the "
                             "oldest (database failing: %s)", self.max_rows, self.error)
            self.dropped += over

    def session(self, record: dict[str, Any], rows: dict[str, Any]) -> None:
        """The whole session as it is now: replaces an older record of it not yet written."""
        session_id = rows["session"]["id"]
        self._sessions.pop(session_id, None)
        self._sessions[session_id] = (record, rows)
        self._activity.pop(session_id, None)   # the record holds the inactivity clock

    def activity(self, session_id: str, last_activity: float, time_used_s: float) -> None:
        self._activity[session_id] = (session_id, last_activity, time_used_s)

    def close(self, session_id: str, result: str | None = None) -> None:
        if result is None:
            result = self._closes.get(session_id)
        self._closes[session_id] = result

    def desired(self, node: str, prop: str, action: str, params: dict[str, Any],
                relock_pending: bool) -> None:
        self._desired[(node, prop)] = (node, prop, action, params, relock_pending)

    def meta(self, key: str, value: str) -> None:
        self._meta[key] = value

    @property
    def waiting(self) -> int:
        """Rows and records queued, not written yet."""
        return (len(self._journal) + len(self._sessions) + len(self._activity) + len(self._closes)
                + len(self._desired) + len(self._meta))

    @property
    def failing(self) -> bool:
        return self.error is not None

    # -- writing ------------------------------------------------------------------------
    def write(self, *, force: bool = False) -> bool:
        """Write what is queued, :data:`WRITE_ROWS` journal rows per transaction (the
        records, closes, desired states and meta with the first); True when nothing is left.

        While the database fails, a call before the back-off has run does nothing (unless
        *force*): a full disk is not hammered on every event. Catching up on many rows
        holds the caller (the event loop) for about :data:`CATCH_UP_S` at most per call
        (unless *force*); the ticker's next call goes on.
        """
        if not self.waiting:
            return True
        now = self.clock()
        if self.error is not None and not force and now < self._retry_at:
            return False
        started = time.perf_counter()
        while True:
            journal = self._journal[:WRITE_ROWS]
            batch = Batch(sessions=list(self._sessions.values()), activity=list(self._activity.values()),
                          closes=list(self._closes.items()), desired=list(self._desired.values()),
                          meta=list(self._meta.items()), journal=journal)
            try:
                rejected = self.store.write(batch)
            except Exception as exc:   # whatever it is, the rows stay queued
                self._failed(exc, now)
                return False
            self._written(len(journal), rejected)
            if not self._journal:
                break
            if not force and time.perf_counter() - started >= CATCH_UP_S:
                return False
        if self._since is not None:
            waited = self.clock() - self._since[0]
            self.recovered = {"rows": self._caught_up, "waited_s": round(waited, 3), "at": self.wall(),
                              "failures": self.failures}
            log.warning("session log: the database is written again: %d rows written after "
                        "waiting up to %.1f s", self._caught_up, waited)
            self._since, self._caught_up = None, 0
        return True

    def _written(self, rows: int, rejected: list[Rejected]) -> None:
        if self._since is not None:
            self._caught_up += rows + len(self._sessions) + len(self._activity) + len(self._closes) \
                + len(self._desired) + len(self._meta)
        del self._journal[:rows]
        for queued in (self._sessions, self._activity, self._closes, self._desired, self._meta):
            queued.clear()
        for r in rejected:
            log.error("session log: a %s row was refused on its own and set aside (table "
                      "rejects): %s: %s", r.kind, r.error, r.text()[:500])
        self.rejected += len(rejected)
        self.error, self._delay = None, 0.0

    def _failed(self, exc: Exception, now: float) -> None:
        self.failures += 1
        expected = isinstance(exc, sqlite3.Error | StoreError)
        fresh = self.error is None
        self.error = str(exc) if expected else f"{type(exc).__name__}: {exc}"
        self._delay = RETRY_FIRST_S if fresh else min(self._delay * 2, RETRY_MAX_S)
        self._retry_at = now + self._delay
        if self._since is None:
            self._since = (now, self.wall())
            self._reminded = now
            log.error("session log: cannot write (%s): %d rows kept in memory and retried; "
                      "the game goes on", self.error, self.waiting, exc_info=not expected)
        elif now - self._reminded >= REMIND_EVERY_S:
            self._reminded = now
            log.error("session log: still cannot write (%s) for %.0f s: %d rows waiting",
                      self.error, now - self._since[0], self.waiting)

    def abandon(self) -> None:
        """The controller stops with rows it could not write: they go to the log, one line
        each, the last place they can still be read from."""
        if not self.waiting:
            return
        log.critical("session log: stopping with %d rows never written (%s); here they are",
                     self.waiting, self.error)
        for name, rows in (("session", list(self._sessions.values())), ("close", list(self._closes.items())),
                           ("desired", list(self._desired.values())), ("meta", list(self._meta.items())),
                           ("activity", list(self._activity.values())), ("journal", self._journal)):
            for row in rows:
                log.error("unwritten %s: %s", name, Rejected(name, "", row).text())

    def health(self) -> dict[str, Any]:
        """The store's health for ``/api/health`` and the console."""
        since = self._since if self.error is not None else None
        return {"ok": self.error is None, "error": self.error, "waiting": self.waiting,
                "since": since[1] if since else None,
                "failing_s": round(self.clock() - since[0], 1) if since else None,
                "retry_s": self._delay if since else None, "failures": self.failures,
                "rejected": self.rejected, "dropped": self.dropped, "recovered": self.recovered}


class Journal:
    """The session's rows on their way to the store: event rows, notes, audit entries,
    the resume record, desired states and meta values."""

    def __init__(self, ctx: Context, store: Store, *, on_failing: Callable[[], None],
                 on_closed: Callable[[str], None] = lambda _session: None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.store = store
        self.wall = wall
        #: what is to be written, kept until it is (a full disk loses nothing)
        self.backlog = Backlog(store, clock=clock, wall=wall)
        #: called when the store starts or stops failing (the console shows it)
        self.on_failing = on_failing
        #: called once a session is closed and written (the service backs the store up)
        self.on_closed = on_closed
        self._pending: list[Entry] = []   # event rows not yet handed to the backlog
        self._activity_due = False        # the inactivity clock moved since the last write
        self._flush_due = False

    # -- prop events: batched ---------------------------------------------------------
    def record_event(self, node: str, prop: str, event: PropEvent, *, activity: bool = False,
                     other_session: bool = False) -> None:
        """Queue the event's row (and the engine's notes about it) for :meth:`flush`.

        *activity*: the event moved the inactivity clock (the game runs), which the resume
        record keeps. *other_session*: the row goes to the event's own session's log.
        """
        engine = self.ctx.engine
        # NOTE: the controller's clock at receipt, like elapsed_s: the node's clock may be off.
        self._pending.append(("prop", {
            "session": event.session if other_session else engine.session_id,
            "wall": self.wall(), "at": None if other_session else round(engine.elapsed(), 3),
            "node": node, "prop": prop, "type": event.type, "value": event.value}))
        self._pending += engine.take_journal()
        self._activity_due = self._activity_due or activity
        if len(self._pending) >= FLUSH_ROWS:
            self.flush()
            return
        if self._flush_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:   # not on the loop (tests, start-up): at once
            self.flush()
            return
        self._flush_due = True
        loop.call_later(FLUSH_AFTER_S, self.flush)

    def flush(self) -> None:
        """Write the queued event rows and notes, and the inactivity clock, in one transaction."""
        self._flush_due = False
        self.backlog.add(self._take())
        engine = self.ctx.engine
        if self._activity_due and engine.session_id is not None:
            self.backlog.activity(engine.session_id, engine.last_activity, round(engine.elapsed(), 3))
        self._activity_due = False
        self.write()

    # -- the session: at once ---------------------------------------------------------
    def save(self) -> None:
        """Write the session through to the store (and the journal: notes, audit)."""
        self.backlog.add(self._take())
        self._activity_due = False   # the record below holds the inactivity clock
        engine = self.ctx.engine
        if engine.session_id is not None:
            self.backlog.session(to_record(engine), history_rows(engine))
        self.write()

    def close(self, session: str, *, result: str | None = None) -> None:
        """The session is over (it stays in the history); then the store is backed up."""
        self.backlog.add(self._take())
        self.backlog.close(session, result)
        self.write()
        self.on_closed(session)

    def desired(self, key: tuple[str, str], action: str, params: dict[str, Any],
                relock_pending: bool) -> None:
        self.backlog.desired(key[0], key[1], action, params, relock_pending)
        self.write()

    def meta(self, key: str, value: str) -> None:
        self.backlog.meta(key, value)
        self.write()

    def write(self, *, force: bool = False) -> None:
        """Hand what is queued to the store. A full disk must not stop a game in progress:
        what fails stays queued and is tried again (:class:`Backlog`); the console shows it."""
        failing = self.backlog.failing
        self.backlog.write(force=force)
        if self.backlog.failing != failing:
            self.on_failing()

    def catch_up(self) -> None:
        """Write everything queued now, whatever the back-off: what a request that reads the
        store before writing to it (an evaluation) needs first, or it reads a session older
        than the console's (its end still waiting in memory).

        :raises StoreError: the store cannot be written (a full disk): nothing was lost.
        """
        self.backlog.add(self._take())
        self.write(force=True)
        if self.backlog.waiting:
            raise StoreError(self.backlog.error or "the session log is behind")

    def _take(self) -> list[Entry]:
        """The queued event rows and every note and audit entry since, in order."""
        journal, self._pending = self._pending, []
        journal += self.ctx.engine.take_journal()
        return journal

    # -- resuming -----------------------------------------------------------------------
    def open_session(self, *, clock: Callable[[], float], wall: Callable[[], float]) -> Engine | None:
        """An engine that carries on the session left open in the store (with its last
        notes and audit entries), or None; an unreadable one is closed as aborted."""
        record = self.store.open_session()
        if record is None:
            return None
        try:
            engine = from_record(self.ctx.game, record, clock=clock, wall=wall)
        except (ValueError, KeyError, TypeError):
            log.exception("cannot resume session %s: starting idle", record.get("session"))
            self.close(record.get("session") or "", result="aborted")
            return None
        engine.log, engine.audit_log = self.store.recent_journal(engine.session_id or "")
        return engine
