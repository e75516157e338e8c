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
from controller.check import CheckStatus, PropCheck, assess
from controller.core.errors import Bilingual, NotFoundError
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
from controller.registry import Boot, EventVerdict, Registry
from controller.store import Backlog, Store, StoreError
from props.kinds import ACTUATOR_KINDS, LOCK_KINDS, RFID_KINDS
from props.models import MaglockConfig
from props.sim import check_gesture
from props.start import one_shot
from protocol import contract
from protocol.contract import (
    ContractError,
    Emergency,
    Gesture,
    NodeHeartbeat,
    NodeStatus,
    PropEvent,
    PropState,
    Resync,
    TechReply,
    TechRequest,
)

log = logging.getLogger(__name__)

#: resend a command whose effect is not reported after this long; then twice as long each
#: time, up to RESEND_MAX_S (never given up: an unlock is resent for as long as it is wanted)
RESEND_AFTER_S = 1.0
RESEND_MAX_S = 5.0
#: a lock order not confirmed by its node's reported state within this long is an alert on
#: the console; ``POST /api/emergency`` and lock/unlock orders wait this long for it
CONFIRM_WITHIN_S = 1.0
#: during the pre-game check, resend a keypad's or reader's reset after this long
RECHECK_AFTER_S = 2.0
#: reported fields that show an output is in the desired state
_REACHED = {"lock": ("engaged", True), "unlock": ("engaged", False), "on": ("on", True),
            "off": ("on", False)}
#: actions that leave a maglock engaged (a pulse relocks, a reset is a lock)
_LOCKING = frozenset({"lock", "pulse", "reset"})
#: an order in words, and "confirmed" agreed with it
_ORDER_WORDS = {"lock": ("verrouillage", "confirmé"), "unlock": ("ouverture", "confirmée"),
                "on": ("allumage", "confirmé"), "off": ("extinction", "confirmée")}
#: who the controller itself is in the audit log
CONTROLLER = "controller"
#: how much longer than the node's own timeout the controller waits for its reply
TECH_MARGIN_S = 5.0
#: store meta key of the tags enrolled from the technician page
ENROLLED_META = "tech_enrolled"
#: store meta key of the last emergency message (``contract.Emergency`` as JSON)
EMERGENCY_META = "emergency"
#: what the game master is told to do when a lock did not confirm its release
RELEASE_BY_HAND = ("faites-la ouvrir sur place : bouton d'urgence de la pièce, "
                   "ou déverrouillage manuel (bris de glace)")
#: store meta key of each node's current boot (a reboot while no controller ran is seen)
BOOTS_META = "node_boots"


class EmergencyActive(EngineError):
    """An order that would lock something, given while the emergency alert is active."""


_WHY = {"broker": "liaison coupée avec les salles", "offline": "salle hors ligne",
        "no_answer": f"pas de réponse de la salle en {CONFIRM_WITHIN_S:.0f} s"}


def release_message(report: dict[str, Any]) -> str:
    """The emergency's answer, in plain French: what the relays confirmed, and nothing more."""
    done, left = report["confirmed"], report["unconfirmed"]
    total = len(done) + len(left)
    if not left:
        slowest = max((e["ms"] for e in done), default=0)
        return (f"Toutes les ventouses sont ouvertes : {total} sur {total}, confirmées par les "
                f"salles (la plus lente en {slowest} ms).")
    names = " ; ".join(f"{e['name']} ({_WHY[e['reason']]})" for e in left)
    head = ("AUCUNE ouverture n'est confirmée" + (" : liaison coupée avec les salles"
                                                  if not report["mqtt"] else "")
            if not done else f"{len(done)} ventouse(s) sur {total} confirmée(s) ouverte(s)")
    return (f"{head}. NON confirmées : {names}. L'ordre est renvoyé jusqu'à confirmation ; "
            f"en attendant, {RELEASE_BY_HAND.replace('faites-la', 'faites-les')}.")


def order_message(action: str, report: dict[str, Any]) -> str:
    """A lock or unlock order's answer: confirmed (in how long), or still pending and why."""
    entry = (report["confirmed"] or report["unconfirmed"])[0]
    word, agreed = _ORDER_WORDS[action]
    if report["confirmed"]:
        return f"{entry['name']} : {word} {agreed} par la salle en {entry['ms']} ms."
    advice = RELEASE_BY_HAND if action == "unlock" else "vérifiez la salle"
    return (f"{entry['name']} : {word} NON {agreed} ({_WHY[entry['reason']]}) ; l'ordre est "
            f"renvoyé jusqu'à confirmation. En attendant, {advice}.")


class NodeUnavailable(Bilingual, RuntimeError):
    """The node of a technician's request is offline."""


class NodeTimeout(Bilingual, TimeoutError):
    """The node did not answer a technician's request in time."""


#: at most this many queued MQTT messages are handled in one event-loop turn
_BATCH = 100
#: prop events that change nothing but the log are written at most this late, in one
#: transaction (or at once when this many are waiting): docs/performance.md, durability
FLUSH_AFTER_S = 0.05
FLUSH_ROWS = 500


@dataclass(slots=True)
class Desired:
    """The state the controller wants an output in, and the command that asks for it.

    *ordered_at* is when this state was last ordered (monotonic), *confirmed_at* when the
    node's reported state first showed it on the current broker connection (None: still
    pending); *attempts* counts the resends since the order (the resend back-off).
    """

    action: str
    params: dict[str, Any]
    command_id: str
    sent_at: float = 0.0
    relock_pending: bool = False   # opened by a node reboot; waits for the game master
    ordered_at: float = 0.0
    confirmed_at: float | None = None
    attempts: int = 0

    def resend_due(self, now: float) -> bool:
        """1 s after the last send, then 2, 4… up to RESEND_MAX_S between two resends."""
        return now - self.sent_at >= min(RESEND_AFTER_S * 2 ** self.attempts, RESEND_MAX_S)

    def resend_now(self) -> None:
        """At the next reconcile, and the back-off starts again (a node is back)."""
        self.sent_at, self.attempts = 0.0, 0

    def reorder(self, now: float) -> None:
        """The desired state changed in place (a reboot opened a lock): pending again."""
        self.ordered_at, self.confirmed_at, self.attempts = now, None, 0

    def pending_for(self, now: float) -> float | None:
        """Seconds since the order, while it is not confirmed; None once it is."""
        return None if self.confirmed_at is not None else now - self.ordered_at


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
        self.registry = Registry(game, wall=wall)
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
        #: each node's boot as last written to the store (see _save_boots)
        self._saved_boots: dict[str, tuple[str, int | None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # -- lock orders confirmed by the nodes (the console never claims what a relay did not do)
        #: the last emergency message (active or ended), as published retained and stored
        self.emergency_state: Emergency | None = None
        #: monotonic receipt time of each prop's last reported state
        self._state_at: dict[tuple[str, str], float] = {}
        #: awaiting a confirmation (see wait_confirmed): woken by each one
        self._confirm_waiters: list[asyncio.Future[None]] = []
        #: maglock orders not confirmed within CONFIRM_WITHIN_S, as last shown
        self._overdue: frozenset[tuple[str, str]] = frozenset()
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
        await self.bridge.stop()

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
        self.emergency_state = self._stored_emergency()
        self._load_boots()
        now = time.monotonic()
        for row in self.store.load_desired():
            key = (row["node"], row["prop"])
            if key not in self._configs:
                continue
            want = Desired(row["action"], row["params"], contract.new_id(), 0.0, row["relock_pending"],
                           ordered_at=now)
            cfg = self._maglocks.get(key)
            if clean and cfg and want.action == "lock" and not cfg.relock_after_restart:
                want.action, want.relock_pending = "unlock", True
                self._persist_desired(key, want)
            if cfg and want.action == "lock" and self.emergency_active:
                want.action = "unlock"   # nothing locks while the alert lasts
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
                        self._on_connected()
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
        self._watch_confirmations()

    # -- node liveness (issue "Reliability"): heartbeats, silence, returns ---------------
    def _on_heartbeat(self, item: Incoming) -> bool:
        node = item.parts.node or ""
        if node not in self.registry.nodes:
            self.bridge.metrics["unknown_node"] += 1
            return False
        self.bridge.metrics["heartbeats"] += 1
        kind = self.registry.on_heartbeat(node, item.payload)
        if kind == Boot.STALE:
            self.bridge.metrics["stale_heartbeats"] += 1
            return False
        self._on_boot(node, kind, item.payload.boot_id, how="heartbeat")
        if self.registry.returned:
            self._watch_nodes()
        return kind != Boot.SAME

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
            log.warning("node %s: back without a birth (boot %s): resync", node,
                        self.registry.nodes[node].boot_id)
            self.bridge.publish(self.bridge.topics.node_resync(node),
                                Resync(reason="back without a birth").to_bytes())
            for (n, _p), want in self.desired.items():
                if n == node:
                    want.resend_now()
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
            self._on_status(node, payload, live=not item.retained)
        elif isinstance(payload, PropState):
            prop = self.registry.on_state(node, parts.prop or "", payload, live=not item.retained)
            if prop is None:
                self.bridge.metrics["unknown_prop"] += 1
            elif prop is False:
                self.bridge.metrics["stale_states"] += 1
            else:
                key = (node, parts.prop or "")
                self._state_at[key] = time.monotonic()
                self._confirm(key)
        elif isinstance(payload, PropEvent):
            self._on_event(node, parts.prop or "", payload)
        elif isinstance(payload, TechReply):
            waiter = self.tech_waiters.pop(payload.id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(payload)

    def _on_status(self, node: str, status: NodeStatus, *, live: bool = True) -> None:
        kind = self.registry.on_status(node, status, live=live)
        if kind == Boot.STALE:
            self.bridge.metrics["stale_statuses"] += 1
        self._on_boot(node, kind, status.boot_id, how="birth" if status.online else "will")

    def _load_boots(self) -> None:
        try:
            boots = json.loads(self.store.get_meta(BOOTS_META) or "{}")
            for node, (boot_id, boot_n) in boots.items():
                if isinstance(boot_id, str) and (boot_n is None or isinstance(boot_n, int)):
                    self.registry.remember(node, boot_id, boot_n)
        except (sqlite3.Error, StoreError, ValueError, TypeError, AttributeError):
            log.exception("reading the nodes' last boots failed: every node starts unknown")
        self._saved_boots = self.registry.known_boots()

    def _save_boots(self) -> None:
        boots = self.registry.known_boots()
        if boots == self._saved_boots:
            return
        self.backlog.meta(BOOTS_META, json.dumps(boots))
        self._saved_boots = boots
        self._write()

    def _on_boot(self, node: str, kind: Boot, boot_id: str, *, how: str) -> None:
        """What a birth, will or heartbeat changed in *node*'s identity (controller/registry.py)."""
        if kind in (Boot.SAME, Boot.UPDATED):
            return
        self._save_boots()
        log.log(logging.WARNING if kind in (Boot.REBOOT, Boot.STALE, Boot.RETURN) else logging.INFO,
                "node %s: %s (%s of boot %s; current boot %s)", node, kind, how, boot_id,
                self.registry.nodes[node].boot_id)
        if kind == Boot.REBOOT:
            # A lock its node's reboot opened is not locked again on its own unless the
            # config says it may (a box may, a door on the way out may not).
            for (n, p), want in self.desired.items():
                cfg = self._maglocks.get((n, p))
                if n == node and cfg and want.action == "lock" and not cfg.relock_after_restart:
                    want.action, want.relock_pending = "unlock", True
                    want.reorder(time.monotonic())
                    self._persist_desired((n, p), want)
                    log.warning("%s.%s opened by a reboot of %s: waits for the game master", n, p, n)
        if kind in (Boot.BIRTH, Boot.REBOOT, Boot.RETURN):
            for (n, p), want in self.desired.items():
                if n == node:
                    want.resend_now()   # resend what differs at the next reconcile
                    self._confirm((n, p))

    def _on_event(self, node: str, prop: str, event: PropEvent) -> None:
        if not self._admit(node, prop, event):
            return
        if prop == "node" and event.type == "emergency":
            self.emergency(who=f"node {node} (emergency input)")
            return
        if event.session is not None and event.session != self.engine.session_id:
            self._other_session_event(node, prop, event)
            return
        info = self.registry.props.get((node, prop))
        if info is not None:
            info.last_event = {"type": event.type, "value": event.value, "ts": self.wall()}
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

    def _admit(self, node: str, prop: str, event: PropEvent) -> bool:
        """False for an event of an unknown prop or one already handled (registry: by boot
        and seq)."""
        if (node, prop) not in self.registry.props and not (
                prop == contract.NODE_PROP and event.type in contract.NODE_EVENTS):
            # Before the registry: an event of an unknown prop must not move a seq.
            self.bridge.metrics["unknown_prop"] += 1
            return False
        verdict = self.registry.on_event(node, event)
        if verdict == EventVerdict.DUPLICATE:
            self.bridge.metrics["duplicate_events"] += 1
            return False
        if verdict == EventVerdict.GAP:
            self.bridge.metrics["seq_gaps"] += 1
            self.bridge.publish(self.bridge.topics.node_resync(node),
                                Resync(reason="seq gap").to_bytes())
        elif verdict == EventVerdict.OTHER_BOOT:
            self.bridge.metrics["other_boot_events"] += 1
        self.events_seen += 1
        return True

    def _other_session_event(self, node: str, prop: str, event: PropEvent) -> None:
        """An event stamped with another session than the open one (a game before this one,
        delivered late): written to that session's log, noted in this one, never applied.
        (An event with no session — its node had not heard the controller yet — is applied.)"""
        self.bridge.metrics["other_session_events"] += 1
        log.warning("node %s: %s.%s %s of session %s (open: %s): recorded, not applied",
                    node, node, prop, event.type, event.session, self.engine.session_id)
        if self.engine.session_id is not None:
            self.engine._note("ignored", f"{node}.{prop} {event.type}={event.value!r} : "
                                         f"événement de la session {event.session}, pas de "
                                         "celle-ci : enregistré, non appliqué")
        self._record_event(node, prop, event, other_session=True)

    def _on_solved_locally(self, node: str, event: PropEvent) -> None:
        """Node autonomy: *node* solved a local puzzle while we were away (controller/autonomy.py)."""
        try:
            effects, done = local_solve(self.engine, node=node, puzzle_id=event.value)
        except EngineError as exc:
            self.bridge.metrics["refused_local_solves"] += 1
            log.warning("node %s solved %r on its own: not applied here: %s", node, event.value, exc)
            return
        for cmd in done:   # the node did these itself: the desired state now, not resent
            now = time.monotonic()
            want = Desired(cmd.action, dict(cmd.params), "", now, ordered_at=now)
            self.desired[(cmd.node, cmd.prop)] = want
            self._persist_desired((cmd.node, cmd.prop), want)
        self._execute(effects)
        if self.engine.phase not in PLAYING:
            self._sync_bridge()   # that puzzle won the game
        self._save()
        self.publish_game_state()   # the budget and the puzzles moved (even with no command)

    def _record_event(self, node: str, prop: str, event: PropEvent, *, activity: bool = False,
                      other_session: bool = False) -> None:
        """Queue the event's row (and the engine's notes about it) for :meth:`_flush`.

        *activity*: the event moved the inactivity clock (the game runs), which the resume
        record keeps. *other_session*: the row goes to the event's own session's log.
        """
        # NOTE: the controller's clock at receipt, like elapsed_s: the node's clock may be off.
        self._pending.append(("prop", {
            "session": event.session if other_session else self.engine.session_id,
            "wall": self.wall(), "at": None if other_session else round(self.engine.elapsed(), 3),
            "node": node, "prop": prop, "type": event.type, "value": event.value}))
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
        """Send a command to a prop now; remember it as desired if it is a steady state.

        While the emergency alert lasts nothing locks a maglock: such a command (a puzzle
        reset while paused, say) is not sent, and the journal says so (the game master's
        own orders are refused before: :meth:`_refuse_locking`). Returns the command id
        ("" when not sent).
        """
        params = dict(params or {})
        if self.emergency_active and self._would_lock(node, prop, action):
            self.bridge.metrics["locks_withheld"] += 1
            self.engine._note("emergency", f"{self._lock_name((node, prop))} : {action} non envoyé "
                                           "(alerte d'urgence en cours)")
            return ""
        command = self.bridge.new_command(action, params, session=self.engine.session_id)
        want = None
        if action in _REACHED:
            now = time.monotonic()
            want = Desired(action, params, command.id, now, ordered_at=now)
            self.desired[(node, prop)] = want
        # NOTE: the door first, then the books (as for the session: see _on_event).
        self.bridge.send_command(node, prop, command)
        if want is not None:
            self._confirm((node, prop))   # already so, and reported on this connection
            if not self._stopping:
                self._persist_desired((node, prop), want)
        return command.id

    def _persist_desired(self, key: tuple[str, str], want: Desired) -> None:
        self.backlog.desired(key[0], key[1], want.action, want.params, want.relock_pending)
        self._write()

    def _reconcile(self) -> None:
        """Resend what no node has confirmed yet: 1 s after the order, then less often
        (``Desired.resend_due``), for as long as it is wanted. Nothing is resent while the
        broker is away (the MQTT client would queue every resend; the order itself is
        queued already) nor to a node that is offline (its birth resends at once)."""
        if not self.bridge.connected:
            return
        now = time.monotonic()
        for (node, prop), want in self.desired.items():
            self._confirm((node, prop))
            if want.confirmed_at is not None or not self.registry.nodes[node].online \
                    or not want.resend_due(now):
                continue
            want.command_id, want.sent_at = contract.new_id(), now
            want.attempts += 1
            self.bridge.metrics["resent_commands"] += 1
            self.bridge.send_command(node, prop, self.bridge.new_command(
                want.action, want.params, session=self.engine.session_id, command_id=want.command_id))
            if (node, prop) in self._overdue:
                self.changed()   # the console shows how often it was sent

    # -- confirmation: what the nodes report, not what was ordered ------------------------
    def _confirm(self, key: tuple[str, str]) -> None:
        """Mark *key*'s desired state confirmed when its node reports it on this broker
        connection (and is online); pending again when a report contradicts it."""
        want = self.desired.get(key)
        if want is None:
            return
        reached = self._reached(self.registry.props[key].reported, want)
        if not reached:
            if want.confirmed_at is not None:
                want.reorder(time.monotonic())
            return
        if want.confirmed_at is not None or not self._fresh(key):
            return
        want.confirmed_at = time.monotonic()
        waiters, self._confirm_waiters = self._confirm_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fresh(self, key: tuple[str, str]) -> bool:
        """*key*'s reported state is current: broker connected, node online, and reported
        on this connection (the registry keeps what it heard before an outage)."""
        return (self.bridge.connected and self.registry.nodes[key[0]].online
                and self._state_at.get(key, -1.0) >= self.bridge.connected_at)

    def _watch_confirmations(self) -> None:
        """Push (and log) when a lock order becomes overdue or is confirmed at last."""
        now = time.monotonic()
        overdue = frozenset(key for key, want in self.desired.items() if key in self._maglocks
                            and (want.pending_for(now) or 0.0) > CONFIRM_WITHIN_S)
        if overdue == self._overdue:
            return
        for key in sorted(overdue - self._overdue):
            want = self.desired[key]
            log.warning("%s.%s: %s not confirmed after %.1f s (%s)", *key, want.action,
                        now - want.ordered_at, self._unconfirmed_reason(key))
            word, agreed = _ORDER_WORDS[want.action]
            self.engine._note("unconfirmed", f"{self._lock_name(key)} : {word} non {agreed} "
                                             f"en {CONFIRM_WITHIN_S:.0f} s")
        self._overdue = overdue
        self.changed()

    async def wait_confirmed(self, keys: Iterable[tuple[str, str]],
                             timeout: float = CONFIRM_WITHIN_S) -> None:
        """Wait (on the loop, never blocking it) until every one of *keys* is confirmed, or
        *timeout* s; at once while the broker is away (nothing can be confirmed: the game
        master had better know now)."""
        keys = list(keys)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def pending() -> bool:
            return any((w := self.desired.get(k)) is None or w.confirmed_at is None for k in keys)

        while pending() and self.bridge.connected:
            left = deadline - loop.time()
            if left <= 0:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._confirm_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                return
            finally:
                with contextlib.suppress(ValueError):
                    self._confirm_waiters.remove(waiter)

    def _lock_name(self, key: tuple[str, str]) -> str:
        """« Ventouse de l'armoire (Chambre) »: what the game master reads, never ids."""
        return f"{self.registry.props[key].label} ({self.registry.nodes[key[0]].label})"

    def _unconfirmed_reason(self, key: tuple[str, str]) -> str:
        if not self.bridge.connected:
            return "broker"
        if not self.registry.nodes[key[0]].online:
            return "offline"
        return "no_answer"

    def lock_report(self, keys: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """Which of *keys* (maglocks) are confirmed in their desired state, which are not."""
        now = time.monotonic()
        confirmed: list[dict[str, Any]] = []
        unconfirmed: list[dict[str, Any]] = []
        for key in keys:
            want = self.desired.get(key)
            entry: dict[str, Any] = {"node": key[0], "prop": key[1], "name": self._lock_name(key),
                                     "label": self.registry.props[key].label,
                                     "room": self.registry.nodes[key[0]].label,
                                     "action": want.action if want else None}
            if want is not None and want.confirmed_at is not None:
                entry["ms"] = round(max(0.0, want.confirmed_at - want.ordered_at) * 1000)
                confirmed.append(entry)
            else:
                entry["reason"] = self._unconfirmed_reason(key)
                entry["pending_s"] = round(want.pending_for(now) or 0.0, 3) if want else None
                entry["attempts"] = want.attempts if want else 0
                unconfirmed.append(entry)
        return {"confirmed": confirmed, "unconfirmed": unconfirmed,
                "all_confirmed": not unconfirmed, "mqtt": self.bridge.connected}

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
                                 reset_id=reset[0] if reset else None,
                                 node_label=self.registry.nodes[node].label))
        counts = Counter(str(c.status) for c in checks)
        not_ready = [c.summary() for c in checks if c.status != CheckStatus.READY]
        return {"ready": not not_ready, "counts": {str(s): counts.get(str(s), 0) for s in CheckStatus},
                "not_ready": not_ready, "props": [c.public() for c in checks]}

    def begin_check(self, *, parcours: str | None = None, players: int | None = None,
                    children: bool | None = None, who: str = GAME_MASTER) -> dict[str, Any]:
        """Open a session and check the apartment; again in check: resend what is not ready
        (and correct the group with what is given)."""
        self._refuse_locking("lancer la vérification (elle verrouille les ventouses)",
                             en="start the check (it locks the maglocks)")
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
        self._execute(command for command in self.engine.start_state()
                      if not (only_not_ready and report[(command.node, command.prop)] == CheckStatus.READY))

    def _check_tick(self) -> None:
        """During the check, a keypad or reader that drifted off its start state (a key
        pressed after its reset) gets another reset."""
        now = time.monotonic()
        for prop in self.check_report()["props"]:
            key = (prop["node"], prop["prop"])
            if prop["status"] != CheckStatus.NEEDS_RESET or not one_shot(self._configs[key]):
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
        self._refuse_locking("démarrer la partie (elle verrouille les ventouses)",
                             en="start the game (it locks the maglocks)")
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
        self._refuse_locking("reprendre la partie", en="resume the game")
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

    # -- the emergency: a first-class message, not an ordinary command ------------------
    @property
    def emergency_active(self) -> bool:
        return self.emergency_state is not None and self.emergency_state.active

    def emergency(self, *, who: str) -> list[tuple[str, str]]:
        """Open every lock of the apartment at once; pause a running game; raise the alert.

        Never refused: any phase, any caller, the broker down (then the retained
        ``Emergency`` and the unlocks wait in the MQTT client's queue and leave the moment
        the broker is back; reconciliation resends every unconfirmed unlock). While the
        alert lasts nothing is locked (see :meth:`_refuse_locking`), and every node that
        (re)connects reads the retained message and releases at once. Returns the locks
        ordered open.
        """
        log.warning("EMERGENCY RELEASE by %s", who)
        self.emergency_state = Emergency(active=True, id=contract.new_id(), who=who, ts=contract.now())
        self._publish_emergency()   # first: every node releases on it, before anything queued
        self._execute(self.engine.release_all())
        self._store_emergency()
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
        return list(self._maglocks)

    def end_emergency(self, *, who: str = GAME_MASTER) -> None:
        """« Fin de l'alerte »: the retained message says so; nothing is locked again."""
        state = self.emergency_state
        # NOTE: said again even with no alert known here: a node keeps an alert on its disk
        # (the controller's store may have lost it), and only this message lifts it.
        self.emergency_state = Emergency(active=False, id=state.id if state else contract.new_id(),
                                         who=who, ts=contract.now())
        self._publish_emergency()
        self._store_emergency()
        log.warning("emergency alert ended by %s", who)
        self.engine.audit("emergency_end", who=who, detail="fin de l'alerte : rien n'est reverrouillé")
        self._done()

    def _refuse_locking(self, what: str, *, en: str) -> None:
        """While the alert lasts, an order that would lock something is refused, clearly."""
        if self.emergency_active:
            msg = (f"impossible de {what} : alerte d'urgence en cours, les ventouses restent "
                   "ouvertes. Appuyez d'abord sur « Fin de l'alerte ».")
            raise EmergencyActive(msg, en=f"cannot {en}: the emergency alert is on, the maglocks "
                                          "stay open. Press “End of the alert” first.")

    def _would_lock(self, node: str, prop: str, action: str) -> bool:
        return (node, prop) in self._maglocks and action in _LOCKING

    def _publish_emergency(self) -> None:
        if self.emergency_state is not None:
            self.bridge.publish(self.bridge.topics.emergency, self.emergency_state.to_bytes(),
                                retain=True)

    def _store_emergency(self) -> None:
        if self.emergency_state is None:
            return
        self.backlog.meta(EMERGENCY_META, self.emergency_state.to_bytes().decode())
        self._write()

    def _stored_emergency(self) -> Emergency | None:
        raw = self.store.get_meta(EMERGENCY_META)
        if not raw:
            return None
        try:
            return contract.decode(raw.encode(), Emergency)
        except ContractError:
            log.exception("the stored emergency state is unreadable: ignored")
            return None

    def _on_connected(self) -> None:
        """The broker is (back) up: the emergency message again (a broker without
        persistence lost it), and the resend back-off starts over."""
        self._publish_emergency()
        now = time.monotonic()
        for want in self.desired.values():
            want.sent_at, want.attempts = now, 0

    def prop_order(self, node: str, prop: str, action: str, params: dict[str, Any], *,
                   who: str = GAME_MASTER) -> str:
        """The game master's hand on any lock or output (audited)."""
        if (node, prop) not in self.registry.props:
            msg = f"accessoire inconnu {node}.{prop}"
            raise NotFoundError(msg, en=f"unknown prop {node}.{prop}")
        if action in ("lock", "unlock") and (node, prop) not in self._maglocks:
            msg = f"{node}.{prop} n'est pas une serrure"
            raise EngineError(msg, en=f"{node}.{prop} is not a lock")
        if self._would_lock(node, prop, action):
            label = self.registry.props[(node, prop)].label
            self._refuse_locking(f"verrouiller « {label} »", en=f"lock “{label}”")
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
        """Send a rehearsal gesture to a simulated prop, once it is known to be one the prop
        has, with a value it takes, to a node that can perform it. Raises LookupError,
        :class:`props.sim.UnknownGesture`, BadActionParams, :class:`NodeUnavailable`
        (offline: the gesture would be lost), EngineError (a node not simulated would drop
        it), in French, and publishes nothing then."""
        config = self._configs.get((node, prop))
        if config is None:
            msg = f"accessoire inconnu {node}.{prop}"
            raise NotFoundError(msg, en=f"unknown prop {node}.{prop}")
        check_gesture(config, gesture, value)
        room = self.registry.nodes[node]
        if not room.online:
            msg = f"le nœud {room.label} est hors ligne : le geste n'arriverait pas"
            raise NodeUnavailable(msg, en=f"node {room.label} is offline: the gesture would be lost")
        if room.simulated is False:
            msg = (f"le nœud {room.label} pilote du vrai matériel (lancé sans --simulate) : "
                   "un geste de répétition n'y ferait rien")
            raise EngineError(msg, en=f"node {room.label} drives real hardware (started without "
                                      "--simulate): a rehearsal gesture would do nothing there")
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
            raise NotFoundError(msg, en=f"unknown node {node!r}")
        info = self.registry.props.get((node, prop))
        if info is None:
            msg = f"accessoire inconnu {node}.{prop}"
            raise NotFoundError(msg, en=f"unknown prop {node}.{prop}")
        if action == "enroll" and info.kind not in RFID_KINDS:
            msg = f"{node}.{prop} ({info.kind}) n'est pas un lecteur RFID"
            raise EngineError(msg, en=f"{node}.{prop} ({info.kind}) is not an RFID reader")
        if action == "self_test" and info.kind in ACTUATOR_KINDS and self.engine.phase in PLAYING:
            msg = (f"partie en cours : le test de {node}.{prop} ({info.kind}) la ferait bouger ; "
                   "arrêtez la partie d'abord")
            raise EngineError(msg, en=f"a game is running: testing {node}.{prop} ({info.kind}) would "
                                      "move it; stop the game first")
        if action == "self_test" and info.kind in LOCK_KINDS:
            self._refuse_locking(f"tester « {info.label} » (le test la verrouille un instant)",
                                 en=f"test “{info.label}” (the test locks it for a moment)")
        if not self.registry.nodes[node].online:
            msg = f"le nœud {node} est hors ligne"
            raise NodeUnavailable(msg, en=f"node {node} is offline")
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
            raise NodeTimeout(msg, en=f"node {node} did not answer within "
                                      f"{timeout + TECH_MARGIN_S:.0f} s") from None
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
        now = time.monotonic()
        for prop in reg["props"]:
            want = self.desired.get((prop["node"], prop["id"]))
            pending = None if want is None else want.pending_for(now)
            prop["desired"] = None if want is None else {
                "action": want.action, "command_id": want.command_id,
                # confirmed: the node reported it on this connection (not: it was sent)
                "confirmed": pending is None, "pending_s": None if pending is None else round(pending, 3),
                "overdue": pending is not None and pending > CONFIRM_WITHIN_S,
                "attempts": want.attempts, "relock_pending": want.relock_pending}
        return {"game": self.engine.snapshot(), **reg, "check": self.check_report(),
                "emergency": self.snapshot_emergency(),
                # lock orders not confirmed within CONFIRM_WITHIN_S: a red alert on the console
                "lock_alerts": self.lock_report(sorted(k for k in self._overdue
                                                       if k in self._maglocks))["unconfirmed"],
                "resumed": self.resumed, "store": self.backlog.health(), "mqtt": {
                    "connected": self.bridge.connected, "metrics": dict(self.bridge.metrics)},
                "apartment": {"id": self.game.apartment.id, "name": self.game.apartment.name.fr},
                "demo": self.demo, "ts": contract.now()}

    def snapshot_emergency(self) -> dict[str, Any] | None:
        """The emergency alert as the console shows it (None: there never was one)."""
        state = self.emergency_state
        return None if state is None else {"active": state.active, "id": state.id,
                                           "who": state.who, "ts": state.ts}

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
