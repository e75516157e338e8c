"""What the controller writes to its store, and when (docs/performance.md, durability).

A solve, a step of a puzzle, a phase or budget change is written at once (:meth:`save`):
durable before the next message is read. Prop events that change nothing but the log and
the inactivity clock are written together a little later (:meth:`record_event`, at most
:data:`FLUSH_AFTER_S` late, or at once when :data:`FLUSH_ROWS` wait): a ``kill -9`` may
lose that much of the log. Everything goes through the store's
:class:`~controller.store.Backlog`: a write that fails (a full disk) is kept and tried
again, and the console shows it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from controller.context import Context
from controller.engine import Engine
from controller.record import from_record, history_rows, to_record
from controller.store import Backlog, Store
from protocol.contract import PropEvent

log = logging.getLogger(__name__)

#: plain prop events are written at most this late, in one transaction (or at once when
#: this many are waiting)
FLUSH_AFTER_S = 0.05
FLUSH_ROWS = 500

Entry = tuple[str, dict[str, Any]]


class Journal:
    """The session's rows on their way to the store: event rows, notes, audit entries,
    the resume record, desired states and meta values."""

    def __init__(self, ctx: Context, store: Store, *, on_failing: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.ctx = ctx
        self.store = store
        self.wall = wall
        #: what is to be written, kept until it is (a full disk loses nothing)
        self.backlog = Backlog(store, clock=clock, wall=wall)
        #: called when the store starts or stops failing (the console shows it)
        self.on_failing = on_failing
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
        """The session is over (it stays in the history)."""
        self.backlog.add(self._take())
        self.backlog.close(session, result)
        self.write()

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
