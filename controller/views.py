"""What the controller shows: the staff's snapshot, the room screens' view, ``game/state``.

Views read the parts of the service and change nothing. :class:`Views` also pushes them:
:meth:`Views.changed` schedules one push per loop turn, each WebSocket audience getting
its own view (the staff: the snapshot; a room screen: its screen view), one JSON text per
audience, never one per client. The shapes are the models of :mod:`controller.api.models`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from controller import jsonsafe
from controller.api.models import CLUES, MESSAGES, SCREEN_CLUES, dump
from controller.context import Context
from controller.emergency import Alert
from controller.engine import PHASE_LABELS, PLAYING, Engine
from controller.hub import STAFF, Hub
from controller.journal import Journal
from controller.mqtt import MqttBridge
from controller.outputs import Outputs
from protocol import contract

if TYPE_CHECKING:
    from controller.check import PreGameCheck

#: how many of the newest screen messages and clues each view shows
SNAPSHOT_MESSAGES = 10
SCREEN_ITEMS = 10
STATE_MESSAGES, STATE_CLUES = 3, 5
#: how many of the newest journal entries the snapshot shows
SNAPSHOT_JOURNAL = 50


def game_view(engine: Engine) -> dict[str, Any]:
    """The game as the engine holds it (:class:`controller.api.models.GameView`)."""
    puzzles = engine.puzzles
    return {
        "session": engine.session_id, "phase": str(engine.phase),
        "phase_label": PHASE_LABELS[engine.phase], "parcours": engine.parcours,
        "players": engine.players, "children": engine.children,
        "duration_s": engine.duration, "elapsed_s": round(engine.elapsed(), 3),
        "remaining_s": round(engine.remaining(), 3), "result": engine.result,
        "started_wall": engine.started_wall, "ended_wall": engine.ended_wall,
        "budget": engine.budget, "budget_start": engine.budget_start,
        "budget_history": [{"amount": b.amount, "label": b.label, "at": round(b.at, 1),
                            "puzzle": b.puzzle} for b in engine.budget_history],
        "puzzles": [{"id": p.id, "label": p.label.fr, "theme": p.theme, "room": p.room,
                     "status": str(puzzles[p.id].status), "in_parcours": engine.in_parcours(p),
                     "available_at": puzzles[p.id].available_at,
                     "solved_at": puzzles[p.id].solved_at, "solved_by": puzzles[p.id].solved_by,
                     "clues": len(p.clues)} for p in engine.game.puzzles],
        "messages": dump(MESSAGES, engine.messages[-SNAPSHOT_MESSAGES:]),
        "clues": dump(CLUES, engine.clues),
        "clue_count": engine.clue_count,
        "alert": engine.alert(), "idle_s": round(engine.idle_seconds(), 1),
        "check_override": engine.check_override,
        "audit": engine.audit_log[-SNAPSHOT_JOURNAL:],
        "log": engine.log[-SNAPSHOT_JOURNAL:],
    }


def clue_catalogue(engine: Engine) -> list[dict[str, Any]]:
    """The pre-written clues of the current parcours, per puzzle, with their index and how
    many times each was sent (:class:`controller.api.models.CataloguePuzzle`)."""
    out = []
    parcours = engine.parcours
    for puzzle in engine.game.puzzles:
        if not engine.in_parcours(puzzle):
            continue
        clues = [{"index": i, "text": c.text_for(parcours).fr, "text_en": c.text_for(parcours).en,
                  "cost": c.cost,
                  "sent": sum(1 for s in engine.clues if s.puzzle == puzzle.id and s.index == i)}
                 for i, c in enumerate(puzzle.clues) if parcours in c.parcours]
        out.append({"puzzle": puzzle.id, "label": puzzle.label.fr, "room": puzzle.room,
                    "status": str(engine.puzzles[puzzle.id].status), "clues": clues})
    return out


class Views:
    """The snapshot, the screen views and ``game/state``, built and pushed."""

    def __init__(self, ctx: Context, bridge: MqttBridge, *, journal: Journal, outputs: Outputs,
                 alert: Alert, check: PreGameCheck, hub: Hub, demo: bool,
                 resumed: Callable[[], dict[str, Any] | None]) -> None:
        self.ctx = ctx
        self.bridge = bridge
        self.journal = journal
        self.outputs = outputs
        self.alert = alert
        self.check = check
        self.hub = hub
        self.demo = demo
        self.resumed = resumed
        self._push_scheduled = False
        self._game_state_due = False

    # -- views ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """What the game master and the technician see (:class:`~controller.api.models.Snapshot`)."""
        reg = self.ctx.registry.snapshot()
        now = self.ctx.clock()
        for prop in reg["props"]:
            prop["desired"] = self.outputs.view((prop["node"], prop["id"]), now)
        game = self.ctx.game
        return {"game": game_view(self.ctx.engine), **reg, "check": self.check.report(),
                "emergency": self.alert.view(), "lock_alerts": self.outputs.lock_alerts(),
                "resumed": self.resumed(), "store": self.journal.backlog.health(),
                "mqtt": {"connected": self.bridge.connected, "metrics": dict(self.bridge.metrics)},
                "apartment": {"id": game.apartment.id, "name": game.apartment.name.fr},
                "demo": self.demo, "ts": contract.now()}

    def view(self, who: Any) -> dict[str, Any]:
        """What *who* (a :class:`controller.api.auth.Principal`) may see: the full snapshot
        for the game master and the technician, the screen view for a room screen."""
        if getattr(who, "role", None) == "screen":
            return self.screen_view(who.room)
        return self.snapshot()

    def screen_view(self, room: str | None) -> dict[str, Any]:
        """What a room screen shows and nothing more (no props, audit log, check, metrics):
        phase, time, budget, and the messages and clues for *room* or for every room."""
        engine = self.ctx.engine

        def mine(target: str | None) -> bool:
            return target is None or room is None or target == room

        node = self.ctx.registry.nodes.get(room or "")
        messages = [m for m in engine.messages[-SCREEN_ITEMS:] if mine(m.room)]
        clues = [c for c in engine.clues if mine(c.room)][-SCREEN_ITEMS:]
        return {"screen": True, "room": room,
                "game": {"phase": str(engine.phase), "remaining_s": round(engine.remaining(), 3),
                         "duration_s": engine.duration, "budget": engine.budget,
                         "budget_start": engine.budget_start,
                         "messages": dump(MESSAGES, messages), "clues": dump(SCREEN_CLUES, clues)},
                "nodes": [{"id": node.id, "label": node.label}] if node else [],
                "apartment": {"name": self.ctx.game.apartment.name.fr}, "ts": contract.now()}

    def game_state(self) -> dict[str, Any]:
        """The retained ``game/state`` (:class:`~controller.api.models.GameStateMessage`)."""
        engine = self.ctx.engine
        return {"v": 1, "phase": str(engine.phase), "session": engine.session_id,
                "parcours": engine.parcours, "remaining_s": round(engine.remaining(), 3),
                "duration_s": engine.duration, "budget": engine.budget,
                "messages": dump(MESSAGES, engine.messages[-STATE_MESSAGES:]),
                "clues": dump(SCREEN_CLUES, engine.clues[-STATE_CLUES:]),
                "clue_count": engine.clue_count, "alert": engine.alert(), "ts": contract.now()}

    # -- to the nodes and room screens over MQTT ----------------------------------------
    def sync_nodes(self, *, publish: bool = True) -> None:
        """Tell the nodes (controller status) which session is current and if it runs."""
        engine = self.ctx.engine
        self.bridge.session = engine.session_id
        self.bridge.running = engine.phase in PLAYING
        if publish:
            self.bridge.publish_status()

    def publish_game_state(self) -> None:
        """The retained ``game/state``: what room screens and monitoring read.

        On the loop, published once at the end of the loop turn however often it is asked
        for (after the commands of that turn); elsewhere at once.
        """
        self.sync_nodes(publish=False)
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
        self.sync_nodes(publish=False)
        self.bridge.publish(self.bridge.topics.game_state,
                            jsonsafe.dumps(self.game_state(), what="game/state").encode(), retain=True)

    # -- to the WebSockets --------------------------------------------------------------
    def changed(self) -> None:
        """Schedule one push to every WebSocket, each its audience's view (coalesced per
        loop turn)."""
        if self._push_scheduled or not self.hub.count():
            return
        self._push_scheduled = True
        asyncio.get_running_loop().call_soon(self.push)

    def push(self) -> None:
        """Send each audience present its view now: one JSON text per audience."""
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
