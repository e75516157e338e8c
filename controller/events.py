"""Prop events applied to the game: the path of a keypad code to its lock.

An event admitted by :class:`controller.liveness.Liveness` (new, of a known prop) goes to
the engine; its commands leave at once (the doors first), then the books: a solve, a step
of a puzzle, a budget or phase change is written at once and published; an event that
changes nothing but the inactivity clock is written with others a little later
(:meth:`controller.journal.Journal.record_event`). An event of another session is recorded,
never applied; a node's emergency input raises the alert; a puzzle a node solved on its
own while the controller was away is taken as done (:mod:`controller.autonomy`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from controller.autonomy import local_solve
from controller.context import Context
from controller.engine import PLAYING, EngineError, Phase
from controller.journal import Journal
from controller.liveness import Liveness
from controller.mqtt import MqttBridge
from controller.outputs import Outputs
from controller.stuck import Stuck
from controller.views import Views
from protocol import contract
from protocol.contract import PropEvent

log = logging.getLogger(__name__)


class PropEvents:
    """What each prop event does to the game."""

    def __init__(self, ctx: Context, bridge: MqttBridge, *, journal: Journal, liveness: Liveness,
                 outputs: Outputs, views: Views, emergency: Callable[[str], Any],
                 wall: Callable[[], float], stuck: Stuck) -> None:
        self.ctx = ctx
        self.bridge = bridge
        self.journal = journal
        self.liveness = liveness
        self.outputs = outputs
        self.views = views
        self.emergency = emergency
        self.wall = wall
        self.stuck = stuck

    def on_event(self, node: str, prop: str, event: PropEvent) -> None:
        if not self.liveness.admit(node, prop, event):
            return
        if prop == contract.NODE_PROP and event.type == "emergency":
            self.emergency(f"node {node} (emergency input)")
            return
        engine = self.ctx.engine
        if event.session is not None and event.session != engine.session_id:
            self._other_session(node, prop, event)
            return
        info = self.ctx.registry.props.get((node, prop))
        if info is not None:
            info.last_event = {"type": event.type, "value": event.value, "ts": self.wall()}
        if prop == contract.NODE_PROP and event.type == "solved_locally":
            self._solved_locally(node, event)
            return
        if info is None:
            self.bridge.metrics["unknown_prop"] += 1
            return
        was_running = engine.phase == Phase.RUNNING
        before = self._fingerprint() if was_running else None
        open_before = self.stuck.open_now()
        self.outputs.execute(engine.on_event(node, prop, event.type, event.value))
        self.stuck.record(node, prop, event.type, event.value, open_before=open_before)
        if was_running and engine.phase != Phase.RUNNING:
            self.views.sync_nodes()
        if engine.session_id is None:
            return
        self.journal.record_event(node, prop, event, activity=was_running)
        after = self._fingerprint() if was_running else None
        if after != before:
            # A solve, a step of a puzzle, a budget or phase change: durable now, before
            # the next message is read (its commands are already on their way), and the
            # game state shows it (at the end of this loop turn).
            self.journal.save()
            if after[:4] != before[:4]:   # type: ignore[index]
                self.views.publish_game_state()
        # NOTE: most events (keys, wrong codes) change nothing but the inactivity clock:
        # their rows are written together, a little later; nothing is published.

    def _fingerprint(self) -> tuple[Any, ...]:
        """What an event may change in the resume record and the history rows, besides the
        inactivity clock; the first four items are what the game state shows."""
        engine = self.ctx.engine
        return (engine.phase, engine.budget, len(engine.budget_history), len(engine.messages),
                tuple((st.status, len(st.progress)) for st in engine.puzzles.values()))

    def _other_session(self, node: str, prop: str, event: PropEvent) -> None:
        """An event stamped with another session than the open one (a game before this one,
        delivered late): written to that session's log, noted in this one, never applied.
        (An event with no session — its node had not heard the controller yet — is applied.)"""
        engine = self.ctx.engine
        self.bridge.metrics["other_session_events"] += 1
        log.warning("node %s: %s.%s %s of session %s (open: %s): recorded, not applied",
                    node, node, prop, event.type, event.session, engine.session_id)
        if engine.session_id is not None:
            engine.note("ignored", f"{node}.{prop} {event.type}={event.value!r} : événement de "
                                   f"la session {event.session}, pas de celle-ci : enregistré, "
                                   "non appliqué")
        self.journal.record_event(node, prop, event, other_session=True)

    def _solved_locally(self, node: str, event: PropEvent) -> None:
        """*node* solved a local puzzle while the controller was away."""
        engine = self.ctx.engine
        try:
            effects, done = local_solve(engine, node=node, puzzle_id=event.value)
        except EngineError as exc:
            self.bridge.metrics["refused_local_solves"] += 1
            log.warning("node %s solved %r on its own: not applied here: %s", node, event.value, exc)
            return
        self.outputs.done_by_node(done)
        self.outputs.execute(effects)
        if engine.phase not in PLAYING:
            self.views.sync_nodes()   # that puzzle won the game
        self.journal.save()
        self.views.publish_game_state()   # the budget and the puzzles moved (even with no command)
