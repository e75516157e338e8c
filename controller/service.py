"""The running controller: engine + registry + MQTT + WebSocket hub + store, on one loop.

Everything that changes game state runs on the asyncio loop, one message at a time: MQTT
messages from the bridge's queue, HTTP orders from the routes (``async def``), the timer
tick. Every change that matters (phase, solve, budget, clue, override) is written through
to the store at once, so a controller killed mid-game resumes the same game.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from config.game import Game
from controller import jsonsafe
from controller.autonomy import local_solve, status_fields
from controller.check import CHECK_LABELS, RESET_BY_COMMAND, CheckStatus, PropCheck, assess, start_action
from controller.engine import (
    ENDED,
    GAME_MASTER,
    PLAYING,
    PREPARING,
    Effect,
    Engine,
    EngineError,
    Phase,
    PropCommand,
    ScreenMessage,
    SentClue,
)
from controller.hub import STAFF, Hub
from controller.mqtt import Connection, Incoming, MqttBridge
from controller.registry import EventVerdict, Registry
from controller.store import Backlog, Store, StoreError
from nodes import contract
from nodes.contract import (
    Gesture,
    NodeHeartbeat,
    NodeStatus,
    PropEvent,
    PropState,
    Resync,
    TechReply,
    TechRequest,
)
from props.models import MaglockConfig

log = logging.getLogger(__name__)

#: resend a command whose effect is not reported after this long
RESEND_AFTER_S = 1.0
#: during the pre-game check, resend a keypad's or reader's reset after this long
RECHECK_AFTER_S = 2.0
#: reported fields that show an output is in the desired state
_REACHED = {"lock": ("engaged", True), "unlock": ("engaged", False), "on": ("on", True),
            "off": ("on", False)}
#: who the controller itself is in the audit log
CONTROLLER = "controller"
#: technician's requests (issue "Web pages"): kinds that read RFID tags (enroll) and kinds
#: whose self-test moves something (a lock clicks open): those are refused during a game
RFID_KINDS = frozenset({"mfrc522", "rdm6300", "sorting"})
ACTUATOR_KINDS = frozenset({"maglock", "relay", "led", "buzzer"})
#: how much longer than the node's own timeout the controller waits for its reply
TECH_MARGIN_S = 5.0
#: store meta key of the tags enrolled from the technician page
ENROLLED_META = "tech_enrolled"


class NodeUnavailable(RuntimeError):
    """The node of a technician's request is offline."""


class NodeTimeout(TimeoutError):
    """The node did not answer a technician's request in time."""


#: at most this many queued MQTT messages are handled in one event-loop turn
_BATCH = 100
#: prop events that change nothing but the log are written at most this late, in one
#: transaction (or at once when this many are waiting): docs/performance.md, durability
FLUSH_AFTER_S = 0.05
FLUSH_ROWS = 500


@dataclass(slots=True)
class Desired:
    """The state the controller wants an output in, and the command that asks for it."""

    action: str
    params: dict[str, Any]
    command_id: str
    sent_at: float = 0.0
    relock_pending: bool = False   # opened by a node reboot; waits for the game master


class GameService:
    """Glues the engine, the registry, the MQTT bridge, the hub and the store."""

    def __init__(self, *, game: Game, bridge: MqttBridge, store: Store, demo: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.game = game
        self.bridge = bridge
        self.store = store
        self.demo = demo
        self.clock = clock
        self.wall = wall
        self.engine = Engine(game, clock=clock, wall=wall)
        #: what is to be written to the store, kept until it is (a full disk loses nothing)
        self.backlog = Backlog(store, clock=clock, wall=wall)
        self.registry = Registry(game)
        self.hub = Hub()
        self.desired: dict[tuple[str, str], Desired] = {}
        #: ``reset`` commands sent to keypads and readers during the check: id, when
        self.check_resets: dict[tuple[str, str], tuple[str, float]] = {}
        self.events_seen = 0
        self.resumed: dict[str, Any] | None = None
        self.tech_replies: dict[str, TechReply] = {}
        self.tech_waiters: dict[str, asyncio.Future[TechReply]] = {}
        self._push_scheduled = False
        # -- hot path (issue "Performance", docs/performance.md) --
        #: prop events and journal entries not yet written (see _flush: one transaction)
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._activity_due = False   # the inactivity clock moved since the last write
        self._flush_due = False
        self._game_state_due = False
        self._stopping = False
        self._last_alert: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # NOTE: what is derived from the game here is rebuilt by controller/reload.py
        # (replace_game) when the game file is reloaded: keep the two in step.
        self._configs = {(n.id, p.id): p for n in game.nodes for p in n.props}
        self._maglocks = {key: p for key, p in self._configs.items() if isinstance(p, MaglockConfig)}
        #: called after each incoming MQTT message is handled (benchmarks and tests)
        self.on_handled: Any = None
        # -- node autonomy (issue "Reliability"): what the status heartbeat tells nodes --
        bridge.heartbeat_s = contract.heartbeat_interval(game.apartment.autonomy_after_s)
        bridge.status_source = lambda: status_fields(engine=self.engine, registry=self.registry)

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self.resume()
        self.bridge.start()
        self._tasks = [
            asyncio.create_task(self._consume(), name="mqtt-consumer"),
            asyncio.create_task(self._ticker(), name="timer-and-reconcile"),
        ]

    async def stop(self) -> None:
        # NOTE: a clean controller stop opens every lock before it goes. The release is
        # not written as the desired state: a restart resumes the game's locks (see resume).
        self._stopping = True
        self.engine.audit("controller_stop", who=CONTROLLER, detail="toutes les serrures ouvertes")
        self._execute(self.engine.release_all())
        self._save()
        self.backlog.meta("clean_stop", "1")
        self._write(force=True)
        self.backlog.abandon()   # what a failing database still holds, to the log
        await asyncio.sleep(0.1)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.bridge.stop()

    def resume(self) -> None:
        """Take up where the last controller left: desired output states, open session.

        After a crash (``kill -9``) the nodes still hold their locks: the desired states
        are re-sent as they were. After a clean stop the locks were opened on the way out:
        as after a node reboot, only those whose config allows it are locked again; the
        others wait for the game master (``relock_pending``).
        """
        clean = self.store.get_meta("clean_stop", "1") == "1"
        self.backlog.meta("clean_stop", "0")
        self._write()
        for row in self.store.load_desired():
            key = (row["node"], row["prop"])
            if key not in self._configs:
                continue
            want = Desired(row["action"], row["params"], contract.new_id(), 0.0, row["relock_pending"])
            cfg = self._maglocks.get(key)
            if clean and cfg and want.action == "lock" and not cfg.relock_after_restart:
                want.action, want.relock_pending = "unlock", True
                self._persist_desired(key, want)
            self.desired[key] = want
        record = self.store.open_session()
        if record is None:
            return
        try:
            engine = Engine.from_record(self.game, record, clock=self.clock, wall=self.wall)
        except (ValueError, KeyError, TypeError):
            log.exception("cannot resume session %s: starting idle", record.get("session"))
            self._close(record.get("session") or "", result="aborted")
            return
        notes, audits = self.store.recent_journal(engine.session_id or "")
        engine.log, engine.audit_log = notes, audits
        how = "après un arrêt propre" if clean else "après un arrêt brutal"
        engine.audit("resume", who=CONTROLLER, detail=f"partie reprise {how}")
        self.engine = engine
        self.resumed = {"session": engine.session_id, "clean": clean, "phase": str(engine.phase)}
        log.warning("resumed session %s (%s, %.0f s left) %s", engine.session_id, engine.phase,
                    engine.remaining(), how)
        self._save()
        self._sync_bridge(publish=False)

    async def _consume(self) -> None:
        in_turn = 0
        while True:
            # NOTE: get() does not yield while the queue holds messages: a burst is handled
            # in one loop turn (its event rows written once, after it), but never more than
            # _BATCH in a row, so HTTP and pushes are not starved.
            if self.bridge.queue.empty():
                in_turn = 0   # get() waits: the loop turns
            elif in_turn >= _BATCH:
                in_turn = 0
                await asyncio.sleep(0)
            item = await self.bridge.queue.get()
            in_turn += 1
            try:
                if isinstance(item, Connection):
                    if item.up:
                        self.publish_game_state()
                elif isinstance(item.payload, NodeHeartbeat):
                    if self._on_heartbeat(item):   # pushed only if the console's view changed
                        self.changed()
                    continue
                else:
                    self._handle(item)
            except Exception:
                # NOTE: no message may stop the controller.
                self.bridge.metrics["handler_errors"] += 1
                log.exception("handling %s failed", item)
            if self.on_handled is not None:
                self.on_handled(item)
            self.changed()

    async def _ticker(self) -> None:
        last_push = 0.0
        while True:
            await asyncio.sleep(0.2)
            try:
                self.tick()
                now = time.monotonic()
                if self.engine.phase == Phase.RUNNING and now - last_push >= 1.0:
                    last_push = now
                    self.publish_game_state()
                    self.changed()
            except Exception:
                log.exception("timer tick failed")

    def tick(self) -> None:
        """Timer (time up), inactivity alert, check resends, reconcile, a failed write
        tried again: every 0.2 s."""
        if self.backlog.waiting:
            self._write()
        effects = self.engine.tick()
        if effects:
            self._execute(effects)
            self._sync_bridge()
            self._save()
            self.changed()
        alert = self.engine.alert()
        if alert != self._last_alert:
            self._last_alert = alert
            if alert is not None:
                self.engine._note("inactivity", f"{alert}: {self.engine.idle_seconds():.0f} s sans action")
                self._save()
            self.publish_game_state()
            self.changed()
        if self.engine.phase == Phase.CHECK:
            self._check_tick()
        self._watch_nodes()
        self._reconcile()

    # -- node liveness (issue "Reliability"): heartbeats, silence, returns ---------------
    def _on_heartbeat(self, item: Incoming) -> bool:
        node = item.parts.node or ""
        if node not in self.registry.nodes:
            self.bridge.metrics["unknown_node"] += 1
            return False
        self.bridge.metrics["heartbeats"] += 1
        changed = self.registry.on_heartbeat(node, item.payload)
        if self.registry.returned:
            self._watch_nodes()
        return changed

    def _watch_nodes(self) -> None:
        """Declare silent nodes offline (like a last will); resync the ones back without a
        birth (what they reported meanwhile may not have reached us); reconcile at once."""
        if self.bridge.connected and self.bridge.queue.empty():
            # NOTE: with messages still queued we are late, not the nodes: no verdict then.
            gone, late = self.registry.check_silence(time.monotonic(),
                                                     listening_since=self.bridge.connected_at)
            for node in gone:
                self.bridge.metrics["silent_nodes"] += 1
                log.warning("node %s: nothing heard for %.1f s: offline", node,
                            time.monotonic() - (self.registry.nodes[node].heard_at or 0.0))
            if gone or late:
                self.changed()
        while self.registry.returned:
            node = self.registry.returned.pop()
            self.bridge.metrics["silent_returns"] += 1
            log.warning("node %s: heard again after its silence (same boot): resync", node)
            self.bridge.publish(self.bridge.topics.node_resync(node),
                                Resync(reason="back after silence").to_bytes())
            for (n, _p), want in self.desired.items():
                if n == node:
                    want.sent_at = 0.0
            self.changed()

    # -- incoming ---------------------------------------------------------------------
    def _handle(self, item: Incoming) -> None:
        parts, payload = item.parts, item.payload
        node = parts.node or ""
        if node not in self.registry.nodes:
            self.bridge.metrics["unknown_node"] += 1
            log.warning("message from unknown node %r", node)
            return
        if isinstance(payload, NodeStatus):
            self._on_status(node, payload)
        elif isinstance(payload, PropState):
            if self.registry.on_state(node, parts.prop or "", payload) is None:
                self.bridge.metrics["unknown_prop"] += 1
        elif isinstance(payload, PropEvent):
            self._on_event(node, parts.prop or "", payload)
        elif isinstance(payload, TechReply):
            waiter = self.tech_waiters.pop(payload.id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(payload)

    def _on_status(self, node: str, status: NodeStatus) -> None:
        kind = self.registry.on_status(node, status)
        log.info("node %s: %s (boot %s)", node, kind, status.boot_id)
        if kind == "reboot":
            # A lock its node's reboot opened is not locked again on its own unless the
            # config says it may (a box may, a door on the way out may not).
            for (n, p), want in self.desired.items():
                cfg = self._maglocks.get((n, p))
                if n == node and cfg and want.action == "lock" and not cfg.relock_after_restart:
                    want.action, want.relock_pending = "unlock", True
                    self._persist_desired((n, p), want)
                    log.warning("%s.%s opened by a reboot of %s: waits for the game master", n, p, n)
        if kind in ("birth", "reboot"):
            for (n, _p), want in self.desired.items():
                if n == node:
                    want.sent_at = 0.0   # resend what differs at the next reconcile

    def _on_event(self, node: str, prop: str, event: PropEvent) -> None:
        if (node, prop) not in self.registry.props and not (
                prop == contract.NODE_PROP and event.type in contract.NODE_EVENTS):
            # Before the registry: an event of an unknown prop must not move seq or boot.
            self.bridge.metrics["unknown_prop"] += 1
            return
        verdict = self.registry.on_event(node, event)
        if verdict == EventVerdict.DUPLICATE:
            self.bridge.metrics["duplicate_events"] += 1
            return
        if verdict == EventVerdict.GAP:
            self.bridge.metrics["seq_gaps"] += 1
            self.bridge.publish(self.bridge.topics.node_resync(node),
                                Resync(reason="seq gap").to_bytes())
        self.events_seen += 1
        info = self.registry.props.get((node, prop))
        if info is not None:
            info.last_event = {"type": event.type, "value": event.value, "ts": event.ts}
        if prop == "node" and event.type == "emergency":
            self.emergency(who=f"node {node} (emergency input)")
            return
        if prop == contract.NODE_PROP and event.type == "solved_locally":
            self._on_solved_locally(node, event)
            return
        if info is None:
            self.bridge.metrics["unknown_prop"] += 1
            return
        was_running = self.engine.phase == Phase.RUNNING
        before = self._fingerprint() if was_running else None
        effects = self.engine.on_event(node, prop, event.type, event.value)
        self._execute(effects)   # first the doors, then the books
        if any(isinstance(e, PropCommand) for e in effects):
            self.bridge.let_out()   # the doors really first: on the wire before the books
        if was_running and self.engine.phase != Phase.RUNNING:
            self._sync_bridge()
        if self.engine.session_id is None:
            return
        self._record_event(node, prop, event, activity=was_running)
        after = self._fingerprint() if was_running else None
        if after != before:
            # A solve, a step of a puzzle, a budget or phase change: durable now, before
            # the next message is read (its commands are already on their way), and the
            # game state shows it (at the end of this loop turn).
            self._save()
            if after[:4] != before[:4]:   # type: ignore[index]
                self.publish_game_state()
        # NOTE: most events (keys, wrong codes) change nothing but the inactivity clock:
        # their rows are written together, a little later (see _flush); nothing is published.

    def _fingerprint(self) -> tuple[Any, ...]:
        """What an event may change in the resume record and the history rows, besides the
        inactivity clock; the first four items are what the game state shows."""
        engine = self.engine
        return (engine.phase, engine.budget, len(engine.budget_history), len(engine.messages),
                tuple((st.status, len(st.progress)) for st in engine.puzzles.values()))

    def _on_solved_locally(self, node: str, event: PropEvent) -> None:
        """Node autonomy: *node* solved a local puzzle while we were away (controller/autonomy.py)."""
        try:
            effects, done = local_solve(self.engine, node=node, puzzle_id=event.value)
        except EngineError as exc:
            self.bridge.metrics["refused_local_solves"] += 1
            log.warning("node %s solved %r on its own: not applied here: %s", node, event.value, exc)
            return
        for cmd in done:   # the node did these itself: the desired state now, not resent
            want = Desired(cmd.action, dict(cmd.params), "", time.monotonic())
            self.desired[(cmd.node, cmd.prop)] = want
            self._persist_desired((cmd.node, cmd.prop), want)
        self._execute(effects)
        if self.engine.phase not in PLAYING:
            self._sync_bridge()   # that puzzle won the game
        self._save()
        self.publish_game_state()   # the budget and the puzzles moved (even with no command)

    def _record_event(self, node: str, prop: str, event: PropEvent, *, activity: bool = False) -> None:
        """Queue the event's row (and the engine's notes about it) for :meth:`_flush`.

        *activity*: the event moved the inactivity clock (the game runs), which the resume
        record keeps.
        """
        self._pending.append(("prop", {
            "session": self.engine.session_id, "wall": event.ts or self.wall(),
            "at": round(self.engine.elapsed(), 3), "node": node, "prop": prop,
            "type": event.type, "value": event.value}))
        self._pending += self.engine.take_journal()
        self._activity_due = self._activity_due or activity
        if len(self._pending) >= FLUSH_ROWS:
            self._flush()
            return
        if self._flush_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:   # not on the loop (tests, start-up): at once
            self._flush()
            return
        self._flush_due = True
        loop.call_later(FLUSH_AFTER_S, self._flush)

    def _flush(self) -> None:
        """Write the queued event rows and notes, and the inactivity clock, in one transaction.

        Durability (docs/performance.md): these events changed nothing but the log and the
        inactivity clock; they are written at most :data:`FLUSH_AFTER_S` late (a ``kill -9``
        may lose that much of the log). A solve, a step of a puzzle, a phase or budget change
        is written at once by :meth:`_save`, with the rows queued before it.
        """
        self._flush_due = False
        self.backlog.add(self._take_journal())
        if self._activity_due and self.engine.session_id is not None:
            self.backlog.activity(self.engine.session_id, self.engine.last_activity,
                                  round(self.engine.elapsed(), 3))
        self._activity_due = False
        self._write()

    # -- outgoing ---------------------------------------------------------------------
    def _execute(self, effects: Iterable[Effect]) -> None:
        """Send the commands now; the game state is published (once, at the end of the loop
        turn) only when there was something to do: an order publishes it in :meth:`_done`."""
        acted = False
        for effect in effects:
            if isinstance(effect, PropCommand):
                command_id = self.command(effect.node, effect.prop, effect.action, effect.params)
                if effect.action == "reset":
                    self.check_resets[(effect.node, effect.prop)] = (command_id, time.monotonic())
            elif isinstance(effect, ScreenMessage):
                self.publish_game_state()
            acted = True
        if acted and self.engine.phase != Phase.IDLE:
            self.publish_game_state()

    def command(self, node: str, prop: str, action: str, params: dict[str, Any] | None = None) -> str:
        """Send a command to a prop now; remember it as desired if it is a steady state."""
        params = dict(params or {})
        command = self.bridge.new_command(action, params, session=self.engine.session_id)
        want = None
        if action in _REACHED:
            want = Desired(action, params, command.id, time.monotonic())
            self.desired[(node, prop)] = want
        # NOTE: the door first, then the books (as for the session: see _on_event).
        self.bridge.send_command(node, prop, command)
        if want is not None and not self._stopping:
            self._persist_desired((node, prop), want)
        return command.id

    def _persist_desired(self, key: tuple[str, str], want: Desired) -> None:
        self.backlog.desired(key[0], key[1], want.action, want.params, want.relock_pending)
        self._write()

    def _reconcile(self) -> None:
        now = time.monotonic()
        for (node, prop), want in self.desired.items():
            if not self.registry.nodes[node].online or now - want.sent_at < RESEND_AFTER_S:
                continue
            reported = self.registry.props[(node, prop)].reported
            key, value = _REACHED[want.action]
            if reported.get(key) == value:
                continue
            want.command_id, want.sent_at = contract.new_id(), now
            self.bridge.metrics["resent_commands"] += 1
            self.bridge.send_command(node, prop, self.bridge.new_command(
                want.action, want.params, session=self.engine.session_id, command_id=want.command_id))

    def publish_game_state(self) -> None:
        """The retained ``game/state``: what room screens and monitoring read.

        On the loop, published once at the end of the loop turn however often it is asked
        for (after the commands of that turn); elsewhere at once.
        """
        self.bridge.session = self.engine.session_id
        self.bridge.running = self.engine.phase in PLAYING
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._publish_game_state()
            return
        if not self._game_state_due:
            self._game_state_due = True
            loop.call_soon(self._publish_game_state)

    def _publish_game_state(self) -> None:
        self._game_state_due = False
        engine = self.engine
        state = {"v": 1, "phase": str(engine.phase), "session": engine.session_id,
                 "parcours": engine.parcours, "remaining_s": round(engine.remaining(), 3),
                 "duration_s": engine.duration, "budget": engine.budget,
                 "messages": [{"text": m.text, "text_en": m.text_en, "room": m.room}
                              for m in engine.messages[-3:]],
                 "clues": [{"id": c.id, "text": c.text, "text_en": c.text_en, "room": c.room,
                            "status": c.status} for c in engine.clues[-5:]],
                 "clue_count": engine.clue_count, "alert": engine.alert(), "ts": contract.now()}
        self.bridge.session = engine.session_id
        self.bridge.running = engine.phase in PLAYING
        self.bridge.publish(self.bridge.topics.game_state,
                            jsonsafe.dumps(state, what="game/state").encode(), retain=True)

    def _sync_bridge(self, *, publish: bool = True) -> None:
        """Tell the nodes (controller status) which session is current and if it runs."""
        self.bridge.session = self.engine.session_id
        self.bridge.running = self.engine.phase in PLAYING
        if publish:
            self.bridge.publish_status()

    def _save(self) -> None:
        """Write the session through to the store (and the journal: notes, audit)."""
        self.backlog.add(self._take_journal())
        self._activity_due = False   # the record below holds the inactivity clock
        if self.engine.session_id is not None:
            self.backlog.session(self.engine.to_record(), self.engine.history_rows())
        self._write()

    def _write(self, *, force: bool = False) -> None:
        """Hand what is queued to the store. A full disk must not stop a game in progress:
        what fails stays queued and is tried again (:class:`Backlog`); the console shows it."""
        failing = self.backlog.failing
        self.backlog.write(force=force)
        if self.backlog.failing != failing:
            self.changed()

    def _take_journal(self) -> list[tuple[str, dict[str, Any]]]:
        """The queued event rows and every note and audit entry since, in order."""
        journal, self._pending = self._pending, []
        journal += self.engine.take_journal()
        return journal

    def _done(self) -> None:
        """After a game master's order: save, publish, push."""
        self._save()
        if self.engine.phase != Phase.IDLE:
            self.publish_game_state()
        self.changed()

    # -- pre-game check ---------------------------------------------------------------
    def check_report(self) -> dict[str, Any]:
        """Where every prop stands against its start state (see :mod:`controller.check`)."""
        checks: list[PropCheck] = []
        for (node, prop), cfg in self._configs.items():
            info = self.registry.props[(node, prop)]
            want = self.desired.get((node, prop))
            reset = self.check_resets.get((node, prop))
            checks.append(assess(node, cfg, online=self.registry.nodes[node].online,
                                 reported=info.reported, ack=info.ack,
                                 desired_action=want.action if want else None,
                                 reset_id=reset[0] if reset else None))
        counts = Counter(str(c.status) for c in checks)
        not_ready = [f"{c.ref} ({CHECK_LABELS[c.status]}{' : ' + c.detail if c.detail else ''})"
                     for c in checks if c.status != CheckStatus.READY]
        return {"ready": not not_ready, "counts": {str(s): counts.get(str(s), 0) for s in CheckStatus},
                "not_ready": not_ready, "props": [c.public() for c in checks]}

    def begin_check(self, *, parcours: str | None = None, players: int | None = None,
                    children: bool | None = None, who: str = GAME_MASTER) -> dict[str, Any]:
        """Open a session and check the apartment; again in check: resend what is not ready
        (and correct the group with what is given)."""
        if self.engine.phase == Phase.CHECK:
            self.engine.configure(parcours=parcours, players=players, children=children)
            self.engine.audit("recheck", who=who)
            self._resend_start_state(only_not_ready=True)
            self._done()
            return self.check_report()
        if self.engine.phase in ENDED or self.engine.phase == Phase.DEBRIEF:
            self.reset_game(who=who)
        effects = self.engine.prepare(parcours=parcours or "primo", players=players or 4,
                                      children=bool(children), who=who)
        self.check_resets.clear()
        self._sync_bridge()
        self._execute(effects)
        self._done()
        return self.check_report()

    def _resend_start_state(self, *, only_not_ready: bool) -> None:
        report = {(p["node"], p["prop"]): p["status"] for p in self.check_report()["props"]}
        for (node, prop), cfg in self._configs.items():
            if only_not_ready and report[(node, prop)] == CheckStatus.READY:
                continue
            action = start_action(cfg) or ("reset" if isinstance(cfg, RESET_BY_COMMAND) else None)
            if action is not None:
                self._execute([PropCommand(node, prop, action)])

    def _check_tick(self) -> None:
        """During the check, a keypad or reader that drifted off its start state (a key
        pressed after its reset) gets another reset."""
        now = time.monotonic()
        for prop in self.check_report()["props"]:
            key = (prop["node"], prop["prop"])
            if prop["status"] != CheckStatus.NEEDS_RESET or not isinstance(self._configs[key],
                                                                            RESET_BY_COMMAND):
                continue
            sent = self.check_resets.get(key)
            if sent is None or now - sent[1] >= RECHECK_AFTER_S:
                self._execute([PropCommand(key[0], key[1], "reset")])
                self.changed()

    def brief(self, *, override: str | None = None, who: str = GAME_MASTER,
              parcours: str | None = None, players: int | None = None,
              children: bool | None = None) -> None:
        """Check → briefing: needs every prop ready, or an override with a reason."""
        if self.engine.phase == Phase.CHECK:
            self.engine.configure(parcours=parcours, players=players, children=children)
        self.engine.brief(not_ready=self.check_report()["not_ready"], override=override, who=who)
        self._done()

    # -- game master's orders ----------------------------------------------------------
    def start_game(self, *, parcours: str | None = None, players: int | None = None,
                   children: bool | None = None, override: str | None = None,
                   who: str = GAME_MASTER) -> None:
        """Start the run: from briefing; from check (ready, or override); from idle or a
        finished game at once (the check is then overridden, and recorded as such)."""
        if self.engine.phase in ENDED or self.engine.phase == Phase.DEBRIEF:
            self.reset_game(who=who)
        from_idle = self.engine.phase == Phase.IDLE
        not_ready = self.check_report()["not_ready"] if self.engine.phase == Phase.CHECK else []
        effects = self.engine.start(parcours=parcours, players=players, children=children,
                                    not_ready=not_ready, override=override, who=who)
        if from_idle:
            self.check_resets.clear()
        self._sync_bridge()
        self._execute(effects)
        self._done()

    def stop_game(self, *, who: str = GAME_MASTER) -> None:
        """Abort a run, or cancel a session still in check or briefing."""
        if self.engine.phase in PREPARING:
            session = self.engine.session_id or ""
            effects = self.engine.cancel(who=who)
            self._sync_bridge()
            self._execute(effects)
            self._close(session, result="cancelled")
        else:
            effects = self.engine.abort(who=who)
            self._sync_bridge()
            self._execute(effects)
            self._done()
        self.changed()

    def pause(self, *, who: str = GAME_MASTER) -> None:
        self.engine.pause(who=who)
        self._done()

    def resume_game(self, *, who: str = GAME_MASTER) -> None:
        self.engine.resume(who=who)
        self._done()

    def add_time(self, seconds: int, *, who: str = GAME_MASTER) -> None:
        self.engine.add_time(seconds, who=who)
        self._done()

    def debrief(self, *, who: str = GAME_MASTER) -> None:
        self.engine.debrief(who=who)
        self._done()

    def reset_game(self, *, who: str = GAME_MASTER) -> None:
        """Back to idle: the session is closed (it stays in the history)."""
        session = self.engine.session_id
        if session is not None and self.engine.phase != Phase.IDLE:
            self._save()
        self.engine.reset(who=who)
        self.check_resets.clear()
        self._sync_bridge()
        if session is not None:
            self._close(session)
        self.publish_game_state()
        self.changed()

    def _close(self, session: str, *, result: str | None = None) -> None:
        self.backlog.add(self._take_journal())
        self.backlog.close(session, result)
        self._write()

    def emergency(self, *, who: str) -> None:
        """Open every lock of the apartment at once; pause a running game."""
        log.warning("EMERGENCY RELEASE by %s", who)
        self._execute(self.engine.release_all())
        for key, want in self.desired.items():
            if want.relock_pending:
                want.relock_pending = False
                self._persist_desired(key, want)
        if self.engine.phase == Phase.RUNNING:
            self.engine.pause(who=who)
        self.engine.audit("emergency", who=who, detail="toutes les serrures ouvertes")
        self._save()
        self.publish_game_state()
        self.changed()

    def prop_order(self, node: str, prop: str, action: str, params: dict[str, Any], *,
                   who: str = GAME_MASTER) -> str:
        """The game master's hand on any lock or output (audited)."""
        if (node, prop) not in self.registry.props:
            msg = f"accessoire inconnu {node}.{prop}"
            raise LookupError(msg)
        if action in ("lock", "unlock") and (node, prop) not in self._maglocks:
            msg = f"{node}.{prop} n'est pas une serrure"
            raise EngineError(msg)
        command_id = self.command(node, prop, action, params)
        if action == "reset":
            self.check_resets[(node, prop)] = (command_id, time.monotonic())
        detail = action + (f" {json.dumps(params, ensure_ascii=False)}" if params else "")
        self.engine.audit("prop", who=who, target=f"{node}.{prop}", detail=detail)
        self._done()
        return command_id

    def force_solve(self, puzzle: str, *, who: str = GAME_MASTER) -> None:
        self._execute(self.engine.force_solve(puzzle, who=who))
        self._after_puzzle_order()

    def reset_puzzle(self, puzzle: str, *, who: str = GAME_MASTER) -> None:
        self._execute(self.engine.reset_puzzle(puzzle, who=who))
        self._after_puzzle_order()

    def skip_to(self, puzzle: str, *, who: str = GAME_MASTER) -> None:
        self._execute(self.engine.skip_to(puzzle, who=who))
        self._after_puzzle_order()

    def _after_puzzle_order(self) -> None:
        if self.engine.phase not in PLAYING:
            self._sync_bridge()   # that order won the game
        self._done()

    def send_clue(self, **order: Any) -> SentClue:
        clue, effects = self.engine.send_clue(**order)
        self._execute(effects)
        self._done()
        return clue

    def clue_shown(self, clue_id: str) -> SentClue:
        clue = self.engine.clue_shown(clue_id)
        self._done()
        return clue

    def simulate(self, node: str, prop: str, gesture: str, value: Any) -> str:
        if (node, prop) not in self.registry.props:
            msg = f"accessoire inconnu {node}.{prop}"
            raise LookupError(msg)
        g = Gesture(id=contract.new_id(), gesture=gesture, value=value)
        self.bridge.publish(self.bridge.topics.prop_simulate(node, prop), g.to_bytes())
        return g.id

    # -- technician (issue "Web pages") -------------------------------------------------
    async def tech_request(self, node: str, prop: str, action: str, *, timeout: float = 10.0,
                           who: str = GAME_MASTER) -> TechReply:
        """Ask *node* to self-test *prop* (``self_test``) or to read the next tag presented
        to it (``enroll``), and wait for its :class:`TechReply` (audited).

        Raises LookupError (unknown node or prop), EngineError (not an RFID reader; a
        self-test that moves something while a game is played), :class:`NodeUnavailable`
        (node offline), :class:`NodeTimeout` (no answer within *timeout* + a margin).
        """
        if node not in self.registry.nodes:
            msg = f"nœud inconnu {node!r}"
            raise LookupError(msg)
        info = self.registry.props.get((node, prop))
        if info is None:
            msg = f"accessoire inconnu {node}.{prop}"
            raise LookupError(msg)
        if action == "enroll" and info.kind not in RFID_KINDS:
            msg = f"{node}.{prop} ({info.kind}) n'est pas un lecteur RFID"
            raise EngineError(msg)
        if action == "self_test" and info.kind in ACTUATOR_KINDS and self.engine.phase in PLAYING:
            msg = (f"partie en cours : le test de {node}.{prop} ({info.kind}) la ferait bouger ; "
                   "arrêtez la partie d'abord")
            raise EngineError(msg)
        if not self.registry.nodes[node].online:
            msg = f"le nœud {node} est hors ligne"
            raise NodeUnavailable(msg)
        request = TechRequest(id=contract.new_id(), action=action, prop=prop, timeout=timeout)
        waiter: asyncio.Future[TechReply] = asyncio.get_running_loop().create_future()
        self.tech_waiters[request.id] = waiter
        self.bridge.publish(self.bridge.topics.node_tech(node), request.to_bytes())
        label = {"self_test": "test", "enroll": "enrôlement"}.get(action, action)
        try:
            reply = await asyncio.wait_for(waiter, timeout + TECH_MARGIN_S)
        except TimeoutError:
            self.engine.audit("tech", who=who, target=f"{node}.{prop}", detail=f"{label} : sans réponse")
            self._save()
            msg = f"le nœud {node} n'a pas répondu en {timeout + TECH_MARGIN_S:.0f} s"
            raise NodeTimeout(msg) from None
        finally:
            self.tech_waiters.pop(request.id, None)
        outcome = "réussi" if reply.ok else f"échec{' : ' + reply.message if reply.message else ''}"
        self.engine.audit("tech", who=who, target=f"{node}.{prop}", detail=f"{label} {outcome}")
        self._save()
        self.changed()
        return reply

    def enrolled_tags(self) -> list[dict[str, Any]]:
        """The tags enrolled from the technician page (newest last)."""
        try:
            return json.loads(self.store.get_meta(ENROLLED_META) or "[]")
        except (sqlite3.Error, StoreError, ValueError):
            log.exception("reading the enrolled tags failed")
            return []

    def remember_tag(self, node: str, prop: str, uid: str, name: str, *, who: str) -> dict[str, Any]:
        """Keep *uid* under *name* for *node.prop* (replacing an earlier name of that uid)."""
        entry = {"node": node, "prop": prop, "uid": uid, "name": name, "at": self.wall(), "who": who}
        tags = [t for t in self.enrolled_tags()
                if (t.get("node"), t.get("prop"), t.get("uid")) != (node, prop, uid)]
        tags.append(entry)
        self.store.set_meta(ENROLLED_META, json.dumps(tags[-200:], ensure_ascii=False))
        self.engine.audit("tech", who=who, target=f"{node}.{prop}", detail=f"badge {uid} enrôlé : {name}")
        self._save()
        return entry

    # -- views ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        reg = self.registry.snapshot()
        for prop in reg["props"]:
            want = self.desired.get((prop["node"], prop["id"]))
            prop["desired"] = None if want is None else {
                "action": want.action, "command_id": want.command_id,
                "done": prop["ack"] == want.command_id or self._reached(prop["reported"], want),
                "relock_pending": want.relock_pending}
        return {"game": self.engine.snapshot(), **reg, "check": self.check_report(),
                "resumed": self.resumed, "store": self.backlog.health(), "mqtt": {
                    "connected": self.bridge.connected, "metrics": dict(self.bridge.metrics)},
                "apartment": {"id": self.game.apartment.id, "name": self.game.apartment.name.fr},
                "demo": self.demo, "ts": contract.now()}

    @staticmethod
    def _reached(reported: dict[str, Any], want: Desired) -> bool:
        key, value = _REACHED[want.action]
        return reported.get(key) == value

    def view(self, who: Any) -> dict[str, Any]:
        """What *who* (a :class:`controller.api.auth.Principal`) may see: the full snapshot
        for the game master and the technician, the screen view for a room screen."""
        if getattr(who, "role", None) == "screen":
            return self.screen_view(who.room)
        return self.snapshot()

    def screen_view(self, room: str | None) -> dict[str, Any]:
        """What a room screen shows and nothing more (no props, audit log, check, metrics):
        phase, time, budget, and the messages and clues for *room* or for every room."""
        engine = self.engine

        def mine(target: str | None) -> bool:
            return target is None or room is None or target == room

        node = self.registry.nodes.get(room or "")
        clues = [{"id": c.id, "text": c.text, "text_en": c.text_en, "room": c.room,
                  "status": c.status} for c in engine.clues if mine(c.room)]
        return {"screen": True, "room": room,
                "game": {"phase": str(engine.phase), "remaining_s": round(engine.remaining(), 3),
                         "duration_s": engine.duration, "budget": engine.budget,
                         "budget_start": engine.budget_start,
                         "messages": [{"text": m.text, "text_en": m.text_en, "room": m.room,
                                       "sound": m.sound}
                                      for m in engine.messages[-10:] if mine(m.room)],
                         "clues": clues[-10:]},
                "nodes": [{"id": node.id, "label": node.label}] if node else [],
                "apartment": {"name": self.game.apartment.name.fr}, "ts": contract.now()}

    def changed(self) -> None:
        """Schedule one push to every WebSocket, each its audience's view (coalesced per
        loop turn)."""
        if self._push_scheduled or not self.hub.count():
            return
        self._push_scheduled = True
        asyncio.get_running_loop().call_soon(self._push)

    def _push(self) -> None:
        # One JSON text per audience present (staff: the snapshot; each room screen: its
        # screen view), never one per client.
        self._push_scheduled = False
        texts: dict[str, str] = {}
        for audience in self.hub.audiences():
            if audience == STAFF:
                data = self.snapshot()
            else:
                room = audience.partition(":")[2]
                data = self.screen_view(None if room == "*" else room)
            texts[audience] = jsonsafe.dumps(Hub.frame("snapshot", data), what=f"push to {audience}")
        task = asyncio.ensure_future(self.hub.broadcast(texts))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
