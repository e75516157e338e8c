"""The running controller: the game's parts wired together, on one loop.

Everything that changes game state runs on the asyncio loop, one message at a time: MQTT
messages from the bridge's queue, HTTP orders from the routes (``async def``), the timer
tick. Every change that matters (phase, solve, budget, clue, override) is written through
to the store at once, so a controller killed mid-game resumes the same game.

The parts (docs/architecture.md, "Inside the controller"): :mod:`controller.outputs`
(desired states, commands, reconciliation, confirmations), :mod:`controller.emergency`
(the alert), :mod:`controller.journal` (the store), :mod:`controller.liveness` (nodes,
boots, silences), :mod:`controller.events` (prop events applied to the game),
:mod:`controller.tech` (technician requests, rehearsal gestures), :mod:`controller.check`
(the pre-game check) and :mod:`controller.views` (what is shown and pushed). This class
wires them, runs the loop tasks and takes the game master's orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from config.game import Game
from controller.autonomy import status_fields
from controller.check import PreGameCheck
from controller.context import Context, Key
from controller.core.errors import NotFoundError
from controller.emergency import Alert
from controller.engine import ENDED, GAME_MASTER, PLAYING, PREPARING, Engine, EngineError, Phase, SentClue
from controller.events import PropEvents
from controller.hub import Hub
from controller.journal import Journal
from controller.liveness import Liveness
from controller.mqtt import Connection, Incoming, MqttBridge
from controller.outputs import Desired, Outputs
from controller.registry import Registry
from controller.store import Store
from controller.tech import TechDesk
from controller.views import Views
from protocol import contract
from protocol.contract import NodeHeartbeat, NodeStatus, PropEvent, PropState, TechReply

log = logging.getLogger(__name__)

#: who the controller itself is in the audit log
CONTROLLER = "controller"
#: at most this many queued MQTT messages are handled in one event-loop turn
_BATCH = 100


class GameService:
    """The engine, the registry, the MQTT bridge, the hub and the store, as parts on one loop."""

    def __init__(self, *, game: Game, bridge: MqttBridge, store: Store, demo: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.bridge = bridge
        self.store = store
        self.demo = demo
        self.clock = clock
        self.wall = wall
        self.ctx = Context(game, Engine(game, clock=clock, wall=wall), Registry(game, wall=wall))
        self.journal = Journal(self.ctx, store, on_failing=self.changed, clock=clock, wall=wall)
        self.alert = Alert(bridge, self.journal)
        self.outputs = Outputs(self.ctx, bridge, self.journal, self.alert, changed=self.changed,
                               publish_game_state=self.publish_game_state)
        self.liveness = Liveness(self.ctx, bridge, self.journal, self.outputs, changed=self.changed)
        self.check = PreGameCheck(self.ctx, self.outputs)
        self.tech = TechDesk(self.ctx, bridge, self.journal, self.alert, changed=self.changed, wall=wall)
        self.hub = Hub()
        self.views = Views(self.ctx, bridge, journal=self.journal, outputs=self.outputs,
                           alert=self.alert, check=self.check, hub=self.hub, demo=demo,
                           resumed=lambda: self.resumed)
        self.events = PropEvents(self.ctx, bridge, journal=self.journal, liveness=self.liveness,
                                 outputs=self.outputs, views=self.views,
                                 emergency=lambda who: self.emergency(who=who), wall=wall)
        #: the session taken up at start (None: none was open)
        self.resumed: dict[str, Any] | None = None
        #: called after each incoming MQTT message is handled (benchmarks and tests)
        self.on_handled: Callable[[Incoming | Connection], None] | None = None
        self._last_alert: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # What the controller status tells the nodes besides online/session/running.
        bridge.heartbeat_s = contract.heartbeat_interval(game.apartment.autonomy_after_s)
        bridge.status_source = lambda: status_fields(engine=self.engine, registry=self.registry)

    # -- the parts' state, by name ---------------------------------------------------------
    @property
    def game(self) -> Game:
        return self.ctx.game

    @property
    def engine(self) -> Engine:
        return self.ctx.engine

    @property
    def registry(self) -> Registry:
        return self.ctx.registry

    @property
    def desired(self) -> dict[Key, Desired]:
        return self.outputs.desired

    @property
    def events_seen(self) -> int:
        return self.liveness.events_seen

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        self.resume()
        self.bridge.start()
        self._tasks = [asyncio.create_task(self._consume(), name="mqtt-consumer"),
                       asyncio.create_task(self._ticker(), name="timer-and-reconcile")]

    async def stop(self) -> None:
        # NOTE: a clean controller stop opens every lock before it goes. The release is
        # not written as the desired state: a restart resumes the game's locks (see resume).
        self.outputs.stopping = True
        self.engine.audit("controller_stop", who=CONTROLLER, detail="toutes les serrures ouvertes")
        self.outputs.execute(self.engine.release_all())
        self.journal.save()
        self.journal.backlog.meta("clean_stop", "1")
        self.journal.write(force=True)
        self.journal.backlog.abandon()   # what a failing database still holds, to the log
        await asyncio.sleep(0.1)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.bridge.stop()

    def resume(self) -> None:
        """Take up where the last controller left: the alert, the nodes' boots, the desired
        output states (:meth:`Outputs.resume`), the open session."""
        clean = self.store.get_meta("clean_stop", "1") == "1"
        self.journal.meta("clean_stop", "0")
        self.alert.load(self.store)
        self.liveness.load_boots(self.store)
        self.outputs.resume(self.store.load_desired(), clean=clean)
        engine = self.journal.open_session(clock=self.clock, wall=self.wall)
        if engine is None:
            return
        how = "après un arrêt propre" if clean else "après un arrêt brutal"
        engine.audit("resume", who=CONTROLLER, detail=f"partie reprise {how}")
        self.ctx.engine = engine
        self.resumed = {"session": engine.session_id, "clean": clean, "phase": str(engine.phase)}
        log.warning("resumed session %s (%s, %.0f s left) %s", engine.session_id, engine.phase,
                    engine.remaining(), how)
        self.journal.save()
        self.views.sync_nodes(publish=False)

    def replace_game(self, game: Game) -> None:
        """Make *game* the game of this idle service (a reloaded file: controller/reload.py):
        a new engine; the registry, the desired states and the configs follow the new file;
        what is known of nodes and props that are still there is kept."""
        self.journal.save()   # the journal of the old engine first
        self.ctx.replace(game, Engine(game, clock=self.clock, wall=self.wall),
                         self.registry.for_game(game))
        self.outputs.game_replaced()
        self.bridge.heartbeat_s = contract.heartbeat_interval(game.apartment.autonomy_after_s)

    # -- the loop -----------------------------------------------------------------------
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
                if isinstance(item, Incoming) and isinstance(item.payload, NodeHeartbeat):
                    if self.handle(item):   # pushed only if the console's view changed
                        self.changed()
                    continue
                self.handle(item)
            except Exception:
                # NOTE: no message may stop the controller.
                self.bridge.metrics["handler_errors"] += 1
                log.exception("handling %s failed", item)
            if self.on_handled is not None:
                self.on_handled(item)
            self.changed()

    def handle(self, item: Incoming | Connection) -> bool:
        """One message from the broker, to the part it is for. False for a heartbeat that
        changed nothing the console shows."""
        if isinstance(item, Connection):
            if item.up:
                # The broker is (back) up: the emergency message again (a broker without
                # persistence lost it), and the resend back-off starts over.
                self.alert.publish()
                self.outputs.connected()
                self.publish_game_state()
            return True
        payload = item.payload
        if isinstance(payload, NodeHeartbeat):
            return self.liveness.on_heartbeat(item)
        node, prop = item.parts.node or "", item.parts.prop or ""
        if node not in self.registry.nodes:
            self.bridge.metrics["unknown_node"] += 1
            log.warning("message from unknown node %r", node)
        elif isinstance(payload, NodeStatus):
            self.liveness.on_status(node, payload, live=not item.retained)
        elif isinstance(payload, PropState):
            self.liveness.on_state(node, prop, payload, live=not item.retained)
        elif isinstance(payload, PropEvent):
            self.events.on_event(node, prop, payload)
        elif isinstance(payload, TechReply):
            self.tech.on_reply(payload)
        return True

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
        """Timer (time up), inactivity alert, check resends, silent nodes, reconcile, lock
        alerts, a failed write tried again: every 0.2 s."""
        if self.journal.backlog.waiting:
            self.journal.write()
        effects = self.engine.tick()
        if effects:
            self.outputs.execute(effects)
            self.views.sync_nodes()
            self.journal.save()
            self.changed()
        alert = self.engine.alert()
        if alert != self._last_alert:
            self._last_alert = alert
            if alert is not None:
                self.engine.note("inactivity", f"{alert}: {self.engine.idle_seconds():.0f} s sans action")
                self.journal.save()
            self.publish_game_state()
            self.changed()
        if self.engine.phase == Phase.CHECK and self.check.tick():
            self.changed()
        self.liveness.watch()
        self.outputs.reconcile()
        self.outputs.watch()

    # -- what is shown ------------------------------------------------------------------
    def changed(self) -> None:
        """Push the new state to every WebSocket (once per loop turn)."""
        self.views.changed()

    def publish_game_state(self) -> None:
        self.views.publish_game_state()

    def _done(self) -> None:
        """After a game master's order: save, publish, push."""
        self.journal.save()
        if self.engine.phase != Phase.IDLE:
            self.publish_game_state()
        self.changed()

    # -- the game master's orders: the pre-game check -------------------------------------
    def begin_check(self, *, parcours: str | None = None, players: int | None = None,
                    children: bool | None = None, who: str = GAME_MASTER) -> dict[str, Any]:
        """Open a session and check the apartment; again in check: resend what is not ready
        (and correct the group with what is given)."""
        self.alert.refuse_locking("lancer la vérification (elle verrouille les ventouses)",
                                  en="start the check (it locks the maglocks)")
        if self.engine.phase == Phase.CHECK:
            self.engine.configure(parcours=parcours, players=players, children=children)
            self.engine.audit("recheck", who=who)
            self.check.resend_start_state(only_not_ready=True)
            self._done()
            return self.check.report()
        if self.engine.phase in ENDED or self.engine.phase == Phase.DEBRIEF:
            self.reset_game(who=who)
        effects = self.engine.prepare(parcours=parcours or "primo", players=players or 4,
                                      children=bool(children), who=who)
        self.outputs.resets.clear()
        self.views.sync_nodes()
        self.outputs.execute(effects)
        self._done()
        return self.check.report()

    def brief(self, *, override: str | None = None, who: str = GAME_MASTER,
              parcours: str | None = None, players: int | None = None,
              children: bool | None = None) -> None:
        """Check → briefing: needs every prop ready, or an override with a reason."""
        if self.engine.phase == Phase.CHECK:
            self.engine.configure(parcours=parcours, players=players, children=children)
        self.engine.brief(not_ready=self.check.not_ready(), override=override, who=who)
        self._done()

    # -- the game master's orders: the run --------------------------------------------------
    def start_game(self, *, parcours: str | None = None, players: int | None = None,
                   children: bool | None = None, override: str | None = None,
                   who: str = GAME_MASTER) -> None:
        """Start the run: from briefing; from check (ready, or override); from idle or a
        finished game at once (the check is then overridden, and recorded as such)."""
        self.alert.refuse_locking("démarrer la partie (elle verrouille les ventouses)",
                                  en="start the game (it locks the maglocks)")
        if self.engine.phase in ENDED or self.engine.phase == Phase.DEBRIEF:
            self.reset_game(who=who)
        from_idle = self.engine.phase == Phase.IDLE
        not_ready = self.check.not_ready() if self.engine.phase == Phase.CHECK else []
        effects = self.engine.start(parcours=parcours, players=players, children=children,
                                    not_ready=not_ready, override=override, who=who)
        if from_idle:
            self.outputs.resets.clear()
        self.views.sync_nodes()
        self.outputs.execute(effects)
        self._done()

    def stop_game(self, *, who: str = GAME_MASTER) -> None:
        """Abort a run, or cancel a session still in check or briefing."""
        if self.engine.phase in PREPARING:
            session = self.engine.session_id or ""
            effects = self.engine.cancel(who=who)
            self.views.sync_nodes()
            self.outputs.execute(effects)
            self.journal.close(session, result="cancelled")
        else:
            effects = self.engine.abort(who=who)
            self.views.sync_nodes()
            self.outputs.execute(effects)
            self._done()
        self.changed()

    def pause(self, *, who: str = GAME_MASTER) -> None:
        self.engine.pause(who=who)
        self._done()

    def resume_game(self, *, who: str = GAME_MASTER) -> None:
        self.alert.refuse_locking("reprendre la partie", en="resume the game")
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
            self.journal.save()
        self.engine.reset(who=who)
        self.outputs.resets.clear()
        self.views.sync_nodes()
        if session is not None:
            self.journal.close(session)
        self.publish_game_state()
        self.changed()

    # -- the game master's orders: puzzles, clues, props -----------------------------------
    def force_solve(self, puzzle: str, *, who: str = GAME_MASTER) -> None:
        self.outputs.execute(self.engine.force_solve(puzzle, who=who))
        self._after_puzzle_order()

    def reset_puzzle(self, puzzle: str, *, who: str = GAME_MASTER) -> None:
        self.outputs.execute(self.engine.reset_puzzle(puzzle, who=who))
        self._after_puzzle_order()

    def skip_to(self, puzzle: str, *, who: str = GAME_MASTER) -> None:
        self.outputs.execute(self.engine.skip_to(puzzle, who=who))
        self._after_puzzle_order()

    def _after_puzzle_order(self) -> None:
        if self.engine.phase not in PLAYING:
            self.views.sync_nodes()   # that order won the game
        self._done()

    def send_clue(self, **order: Any) -> SentClue:
        clue, effects = self.engine.send_clue(**order)
        self.outputs.execute(effects)
        self._done()
        return clue

    def clue_shown(self, clue_id: str) -> SentClue:
        clue = self.engine.clue_shown(clue_id)
        self._done()
        return clue

    def command(self, node: str, prop: str, action: str, params: dict[str, Any] | None = None) -> str:
        """Send a command to a prop now (:meth:`Outputs.command`)."""
        return self.outputs.command(node, prop, action, params)

    def prop_order(self, node: str, prop: str, action: str, params: dict[str, Any], *,
                   who: str = GAME_MASTER) -> str:
        """The game master's hand on any lock or output (audited)."""
        key = (node, prop)
        if key not in self.registry.props:
            msg = f"accessoire inconnu {node}.{prop}"
            raise NotFoundError(msg, en=f"unknown prop {node}.{prop}")
        if action in ("lock", "unlock") and key not in self.ctx.maglocks:
            msg = f"{node}.{prop} n'est pas une serrure"
            raise EngineError(msg, en=f"{node}.{prop} is not a lock")
        if self.outputs.would_lock(key, action):
            label = self.registry.props[key].label
            self.alert.refuse_locking(f"verrouiller « {label} »", en=f"lock “{label}”")
        command_id = self.outputs.command(node, prop, action, params)
        detail = action + (f" {json.dumps(params, ensure_ascii=False)}" if params else "")
        self.engine.audit("prop", who=who, target=f"{node}.{prop}", detail=detail)
        self._done()
        return command_id

    # -- the emergency: a first-class message, not an ordinary command --------------------
    def emergency(self, *, who: str) -> list[Key]:
        """Open every lock of the apartment at once; pause a running game; raise the alert.

        Never refused: any phase, any caller, the broker down (then the retained
        ``Emergency`` and the unlocks wait in the MQTT client's queue and leave the moment
        the broker is back; reconciliation resends every unconfirmed unlock). While the
        alert lasts nothing is locked, and every node that (re)connects reads the retained
        message and releases at once. Returns the locks ordered open.
        """
        self.alert.raise_(who=who)   # first: every node releases on it, before anything queued
        self.outputs.execute(self.engine.release_all())
        self.alert.store()
        self.outputs.forget_relocks()
        if self.engine.phase == Phase.RUNNING:
            self.engine.pause(who=who)
        self.engine.audit("emergency", who=who, detail="toutes les serrures ouvertes")
        self.journal.save()
        self.publish_game_state()
        self.changed()
        return list(self.ctx.maglocks)

    def end_emergency(self, *, who: str = GAME_MASTER) -> None:
        """« Fin de l'alerte »: the retained message says so; nothing is locked again."""
        self.alert.end(who=who)
        self.engine.audit("emergency_end", who=who, detail="fin de l'alerte : rien n'est reverrouillé")
        self._done()
