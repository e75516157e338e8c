"""The running controller: engine + registry + MQTT + WebSocket hub, on one asyncio loop.

Everything that changes game state runs on the loop, one message at a time: MQTT
messages from the bridge's queue, HTTP orders from the routes, the timer tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from config.game import Game
from controller.engine import Effect, Engine, EngineError, Phase, PropCommand, ScreenMessage
from controller.hub import Hub
from controller.mqtt import Connection, Incoming, MqttBridge
from controller.registry import EventVerdict, Registry
from nodes import contract
from nodes.contract import Command, Gesture, NodeStatus, PropEvent, PropState, Resync, TechReply
from props.models import MaglockConfig

log = logging.getLogger(__name__)

#: a command not applied by then is dropped by the node (a stale order is worse than none)
COMMAND_TTL_S = 30.0
#: resend a command whose effect is not reported after this long
RESEND_AFTER_S = 1.0
#: reported fields that show an output is in the desired state
_REACHED = {"lock": ("engaged", True), "unlock": ("engaged", False), "on": ("on", True),
            "off": ("on", False)}


@dataclass(slots=True)
class Desired:
    """The state the controller wants an output in, and the command that asks for it."""

    action: str
    params: dict[str, Any]
    command_id: str
    sent_at: float = 0.0
    relock_pending: bool = False   # opened by a node reboot; waits for the game master


class GameService:
    def __init__(self, *, game: Game, bridge: MqttBridge, demo: bool = False) -> None:
        self.game = game
        self.bridge = bridge
        self.demo = demo
        self.engine = Engine(game)
        self.registry = Registry(game)
        self.hub = Hub()
        self.desired: dict[tuple[str, str], Desired] = {}
        self.events_seen = 0
        self.tech_replies: dict[str, TechReply] = {}
        self.tech_waiters: dict[str, asyncio.Future[TechReply]] = {}
        self._push_scheduled = False
        self._tasks: list[asyncio.Task[None]] = []
        self._maglocks = {(n.id, p.id): p for n in game.nodes for p in n.props
                          if isinstance(p, MaglockConfig)}
        #: called after each incoming MQTT message is handled (benchmarks and tests)
        self.on_handled: Any = None

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self.bridge.start()
        self._tasks = [
            asyncio.create_task(self._consume(), name="mqtt-consumer"),
            asyncio.create_task(self._ticker(), name="timer-and-reconcile"),
        ]

    async def stop(self) -> None:
        # NOTE: a clean controller stop opens every lock before it goes.
        self._execute(self.engine.release_all())
        await asyncio.sleep(0.1)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.bridge.stop()

    async def _consume(self) -> None:
        while True:
            item = await self.bridge.queue.get()
            try:
                if isinstance(item, Connection):
                    if item.up:
                        self.publish_game_state()
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
                effects = self.engine.tick()
                if effects:
                    self._execute(effects)
                    self.changed()
                self._reconcile()
                now = time.monotonic()
                if self.engine.phase == Phase.RUNNING and now - last_push >= 1.0:
                    last_push = now
                    self.publish_game_state()
                    self.changed()
            except Exception:
                log.exception("timer tick failed")

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
                    log.warning("%s.%s opened by a reboot of %s: waits for the game master", n, p, n)
        if kind in ("birth", "reboot"):
            for (n, _p), want in self.desired.items():
                if n == node:
                    want.sent_at = 0.0   # resend what differs at the next reconcile

    def _on_event(self, node: str, prop: str, event: PropEvent) -> None:
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
        if info is None:
            self.bridge.metrics["unknown_prop"] += 1
            return
        self._execute(self.engine.on_event(node, prop, event.type, event.value))

    # -- outgoing ---------------------------------------------------------------------
    def _execute(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, PropCommand):
                self.command(effect.node, effect.prop, effect.action, effect.params)
            elif isinstance(effect, ScreenMessage):
                self.publish_game_state()
        if self.engine.phase != Phase.IDLE:
            self.publish_game_state()

    def command(self, node: str, prop: str, action: str, params: dict[str, Any] | None = None) -> str:
        """Send a command to a prop now; remember it as desired if it is a steady state."""
        params = dict(params or {})
        command = Command(id=contract.new_id(), action=action, params=params,
                          session=self.engine.session_id, expires=contract.now() + COMMAND_TTL_S)
        if action in _REACHED:
            self.desired[(node, prop)] = Desired(action, params, command.id, time.monotonic())
        self.bridge.send_command(node, prop, command)
        return command.id

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
            self.bridge.send_command(node, prop, Command(
                id=want.command_id, action=want.action, params=want.params,
                session=self.engine.session_id, expires=contract.now() + COMMAND_TTL_S))

    def publish_game_state(self) -> None:
        snap = self.engine.snapshot()
        state = {"v": 1, "phase": snap["phase"], "session": snap["session"],
                 "parcours": snap["parcours"], "remaining_s": snap["remaining_s"],
                 "budget": snap["budget"], "messages": snap["messages"][-3:], "ts": contract.now()}
        self.bridge.session = self.engine.session_id
        self.bridge.running = self.engine.phase in (Phase.RUNNING, Phase.PAUSED)
        self.bridge.publish(self.bridge.topics.game_state, json.dumps(state).encode(), retain=True)

    # -- game master's orders ----------------------------------------------------------
    def start_game(self, *, parcours: str, players: int, children: bool) -> None:
        if self.engine.phase in (Phase.WON, Phase.LOST, Phase.ABORTED):
            self.engine.reset()
        effects = self.engine.start(parcours=parcours, players=players, children=children)
        self.bridge.session = self.engine.session_id
        self.bridge.running = True
        self.bridge.publish_status()
        self._execute(effects)
        self.changed()

    def stop_game(self) -> None:
        self._execute(self.engine.abort())
        self.bridge.running = False
        self.bridge.publish_status()
        self.changed()

    def emergency(self, *, who: str) -> None:
        """Open every lock of the apartment at once; pause a running game."""
        log.warning("EMERGENCY RELEASE by %s", who)
        self._execute(self.engine.release_all())
        for want in self.desired.values():
            want.relock_pending = False
        if self.engine.phase == Phase.RUNNING:
            self.engine.pause()
        self.engine._note("emergency", f"every lock released by {who}")
        self.publish_game_state()
        self.changed()

    def prop_order(self, node: str, prop: str, action: str, params: dict[str, Any]) -> str:
        if (node, prop) not in self.registry.props:
            msg = f"unknown prop {node}.{prop}"
            raise LookupError(msg)
        if action in ("lock", "unlock") and (node, prop) not in self._maglocks:
            msg = f"{node}.{prop} is not a lock"
            raise EngineError(msg)
        command_id = self.command(node, prop, action, params)
        self.engine._note("override", f"{action} {node}.{prop}")
        self.changed()
        return command_id

    def simulate(self, node: str, prop: str, gesture: str, value: Any) -> str:
        if (node, prop) not in self.registry.props:
            msg = f"unknown prop {node}.{prop}"
            raise LookupError(msg)
        g = Gesture(id=contract.new_id(), gesture=gesture, value=value)
        self.bridge.publish(self.bridge.topics.prop_simulate(node, prop), g.to_bytes())
        return g.id

    # -- views ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        reg = self.registry.snapshot()
        for prop in reg["props"]:
            want = self.desired.get((prop["node"], prop["id"]))
            prop["desired"] = None if want is None else {
                "action": want.action, "command_id": want.command_id,
                "done": prop["ack"] == want.command_id or self._reached(prop["reported"], want),
                "relock_pending": want.relock_pending}
        return {"game": self.engine.snapshot(), **reg, "mqtt": {
            "connected": self.bridge.connected, "metrics": dict(self.bridge.metrics)},
            "apartment": {"id": self.game.apartment.id, "name": self.game.apartment.name.fr},
            "demo": self.demo, "ts": contract.now()}

    @staticmethod
    def _reached(reported: dict[str, Any], want: Desired) -> bool:
        key, value = _REACHED[want.action]
        return reported.get(key) == value

    def changed(self) -> None:
        """Schedule one push of the snapshot to every WebSocket (coalesced per loop turn)."""
        if self._push_scheduled or not self.hub.count():
            return
        self._push_scheduled = True
        asyncio.get_running_loop().call_soon(self._push)

    def _push(self) -> None:
        self._push_scheduled = False
        text = json.dumps(Hub.frame("snapshot", self.snapshot()), default=str)
        task = asyncio.ensure_future(self.hub.broadcast(text))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
