"""The running controller: the game's parts wired together, on one loop.

Everything that changes game state runs on the asyncio loop, one message at a time: MQTT
messages from the bridge's queue, HTTP orders from the routes (``async def``), the timer
tick. Every change that matters (phase, solve, budget, clue, override) is written through
to the store at once, so a controller killed mid-game resumes the same game.

The parts (docs/architecture.md, "Inside the controller"), each on the one
:class:`~controller.context.Context` (game, engine, registry): :mod:`controller.orders`
(the game master's orders), :mod:`controller.events` (prop events applied to the game),
:mod:`controller.outputs` (desired states, commands, reconciliation, confirmations),
:mod:`controller.emergency` (the alert), :mod:`controller.liveness` (nodes, boots,
silences), :mod:`controller.journal` (the store), :mod:`controller.check` (the pre-game
check), :mod:`controller.tech` (technician requests, rehearsal gestures) and
:mod:`controller.views` (what is shown and pushed). This class wires them, resumes and
stops them, and runs the loop tasks that feed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.game import Game
from controller.autonomy import status_fields
from controller.backup import Backups
from controller.check import PreGameCheck
from controller.context import Context, Key
from controller.debrief_steps import DebriefSteps
from controller.distribution import Distribution
from controller.emergency import Alert
from controller.engine import Engine, Phase
from controller.events import PropEvents
from controller.hub import Hub
from controller.journal import Journal
from controller.liveness import Liveness
from controller.media import MediaLibrary
from controller.mixer import Mixer
from controller.mqtt import Connection, Incoming, MqttBridge
from controller.orders import Orders
from controller.outputs import Desired, Outputs
from controller.registry import Registry
from controller.store import Store
from controller.stuck import Stuck
from controller.tech import TechDesk
from controller.views import Views
from protocol import contract
from protocol.contract import NodeHeartbeat, NodeStatus, PropEvent, PropState, TechReply

log = logging.getLogger(__name__)

#: who the controller itself is in the audit log
CONTROLLER = "controller"
#: at most this many queued MQTT messages are handled in one event-loop turn
_BATCH = 100
#: the timer's period (s): time up, resends, silences, reconciliation
TICK_S = 0.2


@dataclass(frozen=True, slots=True)
class PendingGame:
    """A valid game file given during a session: taken once the session is over."""

    game: Game
    who: str
    source: str
    since: float   # wall clock


class GameService:
    """The engine, the registry, the MQTT bridge, the hub and the store, as parts on one loop."""

    def __init__(self, *, game: Game, bridge: MqttBridge, store: Store, demo: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, source: str | None = None,
                 backups: Backups | None = None,
                 media: MediaLibrary | None = None) -> None:
        self.bridge = bridge
        #: the sounds and videos the game file may name (None: not checked on reload)
        self.media = media
        self.store = store
        self.demo = demo
        self.clock = clock
        self.wall = wall
        #: the store's backups (controller/backup.py); none given: none taken
        self.backups = backups or Backups(None, Path(), create=False)
        self.backups.changed = self.changed
        self.ctx = Context(game, Engine(game, clock=clock, wall=wall, hush=lambda: self.alert.active),
                           Registry(game, clock=clock, wall=wall), clock=clock)
        self.journal = Journal(self.ctx, store, on_failing=self.changed,
                               on_closed=self.backups.after_session, clock=clock, wall=wall)
        self.alert = Alert(bridge, self.journal)
        self.outputs = Outputs(self.ctx, bridge, self.journal, self.alert, changed=self.changed,
                               publish_game_state=self.publish_game_state)
        self.liveness = Liveness(self.ctx, bridge, self.journal, self.outputs, changed=self.changed)
        #: each node's part of the game file, sent and compared with what it runs
        self.distribution = Distribution(self.ctx, bridge, source=source)
        #: a game file given during a session, taken once it is over (controller/reload.py)
        self.pending_game: PendingGame | None = None
        self.check = PreGameCheck(self.ctx, self.outputs, self.distribution)
        self.tech = TechDesk(self.ctx, bridge, self.journal, self.alert, changed=self.changed, wall=wall)
        self.hub = Hub()
        self.stuck = Stuck(self.ctx)
        #: the debrief's pages, the one on the screens, what the group answered
        self.debrief_steps = DebriefSteps(store, game=lambda: self.game, wall=wall)
        #: each room's volume, the global mute, what each screen says it plays
        self.mixer = Mixer(self.ctx, self.journal, changed=self.changed, clock=clock, wall=wall)
        self.views = Views(self.ctx, bridge, journal=self.journal, outputs=self.outputs,
                           alert=self.alert, check=self.check, hub=self.hub, demo=demo,
                           resumed=lambda: self.resumed, backups=self.backups,
                           distribution=self.distribution, pending_game=lambda: self.pending_game,
                           stuck=self.stuck, media_url=self.media_url,
                           debrief_page=self.debrief_steps.screen, mixer=self.mixer)
        self.orders = Orders(self.ctx, alert=self.alert, outputs=self.outputs, check=self.check,
                             journal=self.journal, views=self.views)
        self.events = PropEvents(self.ctx, bridge, journal=self.journal, liveness=self.liveness,
                                 outputs=self.outputs, views=self.views, stuck=self.stuck,
                                 emergency=lambda who: self.orders.emergency(who=who), wall=wall)
        #: the session taken up at start (None: none was open)
        self.resumed: dict[str, Any] | None = None
        #: called after each incoming MQTT message is handled (benchmarks and tests)
        self.on_handled: Callable[[Incoming | Connection], None] | None = None
        self._last_alert: str | None = None
        self._last_push = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        # What the controller status tells the nodes besides online/session/running.
        bridge.heartbeat_s = contract.heartbeat_interval(game.apartment.autonomy_after_s)
        bridge.status_source = lambda: status_fields(engine=self.engine, registry=self.registry)

    def media_url(self, name: str) -> str | None:
        """Where a screen loads the media file *name* (None: not in the library)."""
        item = self.media.get(name) if self.media is not None else None
        return item.url if item is not None else None

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
        self.backups.start()
        self.bridge.start()
        self._tasks = [asyncio.create_task(self._consume(), name="mqtt-consumer"),
                       asyncio.create_task(self._ticker(), name="timer-and-reconcile")]

    async def stop(self) -> None:
        self.release_and_save()
        await asyncio.sleep(0.1)
        await self.backups.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.bridge.stop()

    def release_and_save(self) -> None:
        """The first part of a clean stop: every lock opened, everything written; then the
        loop's tasks end and the bridge says "offline" (:meth:`stop`)."""
        # NOTE: a clean controller stop opens every lock before it goes. The release is
        # not written as the desired state: a restart resumes the game's locks (see resume).
        self.outputs.stopping = True
        self.engine.audit("controller_stop", who=CONTROLLER, detail="toutes les serrures ouvertes")
        self.outputs.execute(self.engine.release_all())
        self.journal.save()
        self.journal.backlog.meta("clean_stop", "1")
        self.journal.write(force=True)
        self.journal.backlog.abandon()   # what a failing database still holds, to the log

    def resume(self) -> None:
        """Take up where the last controller left: the alert, the nodes' boots, the desired
        output states (:meth:`Outputs.resume`), the open session."""
        clean = self.store.get_meta("clean_stop", "1") == "1"
        self.journal.meta("clean_stop", "0")
        self.alert.load(self.store)
        self.liveness.load_boots(self.store)
        self.mixer.load(self.store)
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

    def replace_game(self, game: Game) -> list[str]:
        """Make *game* the game of this idle service (a reloaded file: controller/reload.py):
        a new engine; the registry, the desired states and the configs follow the new file;
        what is known of nodes and props that are still there is kept; each node whose part
        changed is sent its new one. Return those nodes."""
        self.journal.save()   # the journal of the old engine first
        old = self.game
        self.ctx.replace(game, Engine(game, clock=self.clock, wall=self.wall, hush=lambda: self.alert.active),
                         self.registry.for_game(game))
        self.outputs.game_replaced()
        self.bridge.heartbeat_s = contract.heartbeat_interval(game.apartment.autonomy_after_s)
        return self.distribution.game_replaced(old)

    def take_game(self, game: Game, *, who: str, detail: str) -> list[str]:
        """Make *game* the game now (between two sessions: the engine idle), audited, saved
        and shown; return the nodes sent a new part."""
        self.pending_game = None
        changed = self.replace_game(game)
        self.engine.audit("config_reload", who=who, detail=detail)
        self.journal.save()
        self.publish_game_state()
        self.changed()
        self.bridge.metrics["config_reloads"] += 1
        log.warning("game file %s taken; new parts sent to: %s", detail, ", ".join(changed) or "none")
        return changed

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
            self.take(item)

    def take(self, item: Incoming | Connection) -> None:
        """One item of the bridge's queue: handled, then pushed (the loop's consumer, or
        whoever drains the queue without a loop)."""
        try:
            if isinstance(item, Incoming) and isinstance(item.payload, NodeHeartbeat):
                if self.handle(item):   # pushed only if the console's view changed
                    self.changed()
                return
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
                self.distribution.publish()
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
        while True:
            await asyncio.sleep(TICK_S)
            self.on_timer()

    def on_timer(self) -> None:
        """What the timer does every :data:`TICK_S`: :meth:`tick`, and while a game runs
        the game state once a second (the loop's ticker, or whoever drives time)."""
        try:
            self.tick()
            now = self.clock()
            if self.engine.phase == Phase.RUNNING and now - self._last_push >= 1.0:
                self._last_push = now
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
        pending = self.pending_game
        if pending is not None and self.engine.phase == Phase.IDLE:
            self.take_game(pending.game, who=pending.who,
                           detail=f"{pending.source} (attendait la fin de la session)")
        self.liveness.watch()
        self.outputs.reconcile()
        self.outputs.watch()
        self.backups.tick()
        if self.mixer.watch():
            self.changed()

    # -- what is shown ------------------------------------------------------------------
    def changed(self) -> None:
        """Push the new state to every WebSocket (once per loop turn)."""
        self.views.changed()

    def publish_game_state(self) -> None:
        self.views.publish_game_state()
