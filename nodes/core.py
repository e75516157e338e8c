"""The node's core: every rule of a node, synchronous — no threads, no MQTT client, no GPIO.

Inputs are method calls, with the monotonic time passed in (``now``): a prop's event or
state change, a message from the broker already decoded, a tick, the connection going up
or down. Outputs are calls on one narrow port (:class:`Ports`), in order: publish a
message, apply an action to a prop, read a prop's state, save the emergency or the game
view. The shell (``nodes/agent.py``) implements the port on paho and gpiozero; tests use
a recording fake and drive whole scenarios with no broker, no pins and no sleep.

It owns the event ``seq`` and the outbox (``nodes/outbox.py``: an event is published at
once only to a live controller, else it waits there, and stays until acknowledged), the
command gate and the holds (``nodes/gate.py``), the apartment's emergency, this boot's
identity (``nodes/identity.py``), the controller link (``nodes/link.py``, a declared state
machine) and the hand-off to the local puzzles (``nodes/autonomy.py``) when the
controller has been silent too long during a game.

Not thread-safe: the shell calls it under one lock, from its worker, except
:attr:`NodeCore.lane` and :attr:`NodeCore.gate`, which any thread may use (``nodes/lane.py``:
releasing never waits for that lock).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

from config.game import Game, NodePart, Puzzle
from nodes import gamefile
from nodes.autonomy import GameView, LocalPuzzles
from nodes.events import EventStream, Leftover
from nodes.gate import CommandGate
from nodes.identity import Identity, ReadBack
from nodes.lane import ReleaseLane
from nodes.link import ControllerLink, LinkState
from nodes.outbox import Outbox
from props.exc import PropError
from protocol import contract
from protocol.contract import (
    NODE_PROP,
    Command,
    ControllerStatus,
    Emergency,
    GameRefusal,
    NodeGame,
    NodeHealth,
    NodeHeartbeat,
    NodeStatus,
    PropState,
    Topics,
    is_release,
)

log = logging.getLogger(__name__)

MAGLOCK = "maglock"


class Ports(Protocol):
    """Everything the core does to the world."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                qos: int = contract.QOS) -> bool:
        """Hand a message to the broker link; False if not taken (not connected, queue full)."""

    def apply(self, prop: str, action: str, params: Mapping[str, Any]) -> None:
        """Apply *action* (``reset``: back to the pre-game state); raises PropError."""

    def state(self, prop: str) -> Mapping[str, Any]:
        """The prop's reported state, read now."""

    def engaged(self, prop: str) -> bool:
        """Is this maglock's relay driven now?"""

    def save_emergency(self, emergency: Emergency | None) -> None:
        """Keep the active emergency across a restart of the node (None: forget it)."""

    def save_view(self, view: GameView, *, controller_boot: str | None) -> None:
        """Keep the game view for a restart while the controller is away."""

    def rebuild(self, part: NodePart) -> str | None:
        """Close every prop (a maglock releases as it closes), then build *part*'s (each
        maglock starts released); None when done, else why not — the old props are built
        again and still run."""

    def save_part(self, raw: bytes) -> None:
        """Keep the game part just applied (the :class:`NodeGame` message) for a restart."""

    def health(self) -> NodeHealth | None:
        """The Pi's health, read now (``nodes/health.py``); never raises."""


class NodeCore:
    """One node's rules: see the module's doc. ``kinds`` maps each prop id to its kind."""

    def __init__(self, *, game: Game | NodePart, node_id: str, kinds: Mapping[str, str],
                 ports: Ports, outbox: Outbox, identity: Identity, now: float,
                 metrics: Counter[str] | None = None) -> None:
        self.node_id = node_id
        self.topics = Topics(game.apartment.id)
        self.kinds = dict(kinds)
        self.maglocks = frozenset(p for p, kind in self.kinds.items() if kind == MAGLOCK)
        self.ports = ports
        self.identity = identity
        self.gate = CommandGate(self.maglocks)
        self.link = ControllerLink(started_at=now)
        self.clock = contract.ControllerClock()
        self.local = LocalPuzzles(game=game, node_id=node_id)
        self.autonomy_after_s = game.apartment.autonomy_after_s
        self.view = GameView()
        self.session: str | None = None
        self.metrics: Counter[str] = metrics if metrics is not None else Counter()
        self.events = EventStream(node_id=node_id, boot_id=identity.boot_id, topics=self.topics,
                                  outbox=outbox, link=self.link, publish=ports.publish,
                                  metrics=self.metrics)
        #: what is done at once, from any thread (``nodes/lane.py``)
        self.lane = ReleaseLane(gate=self.gate, ports=ports, metrics=self.metrics)
        self._autonomous = False
        self._published: dict[str, tuple[dict[str, Any], str | None]] = {}
        self._status_epoch = 0               # the connection of the last status seen
        self._next_beat = now
        #: a game part received during a game: (part, hash, message), applied after it
        self._pending: tuple[NodePart, str, bytes] | None = None
        self._next_health = now

    @property
    def boot_id(self) -> str:
        return self.identity.boot_id

    @property
    def outbox(self) -> Outbox:
        return self.events.outbox

    @property
    def seq(self) -> int:
        """The seq of this boot's last event (0: none yet)."""
        return self.events.seq

    # -- start ------------------------------------------------------------------------
    def restore(self, *, emergency: Emergency | None, view: GameView | None,
                leftovers: list[Leftover]) -> None:
        """What the data dir kept from an earlier run: an uncleared emergency, the game view,
        events not delivered (``EventStream.restore``)."""
        if emergency is not None:
            self.gate.set_emergency(emergency)
            self.metrics["emergency_restored"] += 1
            log.warning("node %s: the emergency %s (%s) was active when this node stopped and "
                        "nobody has cleared it since: every lock refused until the game master "
                        "clears it", self.node_id, emergency.id, emergency.who)
        if view is not None:
            self.view, self.session = view, view.session
            self.local.new_session(view.session)
            self.metrics["game_view_restored"] += 1
            log.warning("node %s: a game was running when the controller was last heard "
                        "(session %s): local puzzles stay playable", self.node_id, view.session)
        first = self.events.seq + 1
        self.events.restore(leftovers)
        pressed = [first + i for i, (prop, event, _origin) in enumerate(leftovers)
                   if prop == NODE_PROP and event.type == "emergency"]
        if pressed:
            # The room's emergency button was pressed and the controller not told before the
            # crash: the locks stay open until it has handled it, as they would have.
            self.gate.hold(self.maglocks, pressed[-1])

    # -- the broker link --------------------------------------------------------------
    def connected(self) -> None:
        """A new connection (subscribed already): birth, then every state."""
        self.link.trigger("connect")
        self._next_health = -float("inf")   # the first heartbeat of a connection carries it
        self._publish_birth()
        self.publish_all_states()

    def disconnected(self) -> None:
        self.link.trigger("disconnect")

    def own_status(self, status: NodeStatus, raw: bytes, *, now: float) -> None:
        """Our own status topic, read back (``nodes/identity.py``)."""
        match self.identity.read_back(status, raw, now=now):
            case ReadBack.ECHO:
                self.link.trigger("subscribed")
                if self.link.state is LinkState.ALONE:
                    self.events.flush(now)   # no controller, not even a retained one: send what waited
            case ReadBack.REPUBLISH:
                self.metrics["status_overwritten"] += 1
                self._publish_birth()
            case ReadBack.LATER:
                self.metrics["status_overwritten"] += 1

    def resync(self) -> None:
        """Whoever asks may have missed our birth or a state, or hold an old one."""
        self.metrics["resyncs"] += 1
        self._publish_birth()
        self.publish_all_states()

    def tick(self, now: float) -> float:
        """The heartbeat (a birth due again goes first); return when the next one is due.

        A small QoS 0 sign of life every keepalive / 3 while connected lets the controller
        see a hung or cut-off node offline within 1.2 × keepalive; it says whether the node
        plays alone and how many events wait in its outbox; one in
        ``NODE_HEALTH_EVERY_S`` carries the Pi's health.
        """
        if now < self._next_beat:
            return self._next_beat
        self._next_beat = now + self.identity.interval
        if self.link.state is LinkState.OFFLINE:
            return self._next_beat
        if self.identity.due:
            self._publish_birth()
        health = None
        if now >= self._next_health:
            self._next_health = now + contract.NODE_HEALTH_EVERY_S
            health = self.ports.health()
        beat = NodeHeartbeat(boot_id=self.boot_id, boot_n=self.identity.boot_n, ts=contract.now(),
                             autonomous=self.autonomous(now), outbox=len(self.outbox),
                             game=self.identity.game, health=health)
        if self.ports.publish(self.topics.node_heartbeat(self.node_id), beat.to_bytes(), qos=0):
            self.metrics["heartbeats"] += 1
        return self._next_beat

    # -- the controller ---------------------------------------------------------------
    def controller_status(self, status: ControllerStatus, *, retained: bool, now: float) -> None:
        """The controller's birth, heartbeat or will: who listens, what to resend, what to forget."""
        # The first status after we subscribe may be a retained leftover (after a broker
        # restart with persistence, it can say "online" for a controller that is not
        # connected yet): it updates what we know of the game, but proves nobody listens.
        first_on_connection = self.link.epoch != self._status_epoch
        self._status_epoch = self.link.epoch
        live = not (retained and first_on_connection)
        link = self.link
        if not status.online and link.boot_id not in (None, status.boot_id):
            # The will of a controller boot before the one we follow, delivered late.
            self.metrics["stale_controller_wills"] += 1
            log.info("node %s: ignored the will of an old controller boot %s", self.node_id,
                     status.boot_id)
            return
        link.online = status.online
        if not status.online:
            log.warning("node %s: the controller is offline", self.node_id)
            link.trigger("lost")   # what it did not acknowledge went nowhere
            return
        if link.boot_id not in (None, status.boot_id):
            link.resend_due = True   # a new controller knows nothing of our events
        link.boot_id = status.boot_id
        if live:
            self.clock.observe(status.boot_id, uptime=status.uptime, local=now)
        link.heartbeat = status.heartbeat
        link.acks_supported = status.acks is not None
        self.session = status.session
        self.local.new_session(status.session)
        self.view = GameView(running=bool(status.running), session=status.session,
                             parcours=status.parcours, solved=frozenset(status.solved or ()))
        self.ports.save_view(self.view, controller_boot=status.boot_id)
        if self._pending is not None and not self.view.running:
            self._apply_part(*self._pending)   # the game it waited for is over
        if status.acks is not None:
            acknowledged = self.events.acknowledged(status.acks.get(self.node_id))
            if acknowledged is not None:
                self.gate.acknowledged(acknowledged)
        if not live:
            link.trigger("known")
            return
        if self._autonomous:
            self._autonomous = False
            log.warning("node %s: the controller is back; local puzzles handed back", self.node_id)
        link.hear(now)
        if link.resend_due or self.outbox.has_unsent():
            self.events.flush(now)

    # -- commands ---------------------------------------------------------------------
    def command(self, prop: str, command: Command, *, receipt: int | None, now: float) -> None:
        """Apply *command* to *prop* if the gate lets it through; publish the prop's state
        either way (the controller learns what the relay really does, and the ``ack`` of a
        duplicate it may have missed). *receipt*: its rank among the messages received."""
        if prop not in self.kinds:
            self.metrics["unknown_prop"] += 1
            log.warning("node %s: command for unknown prop %r", self.node_id, prop)
            return
        release = is_release(command.action)
        if release:
            self.gate.released([prop], receipt)
        age = self.clock.age(controller=command.controller, issued=command.issued, local=now)
        refusal = self.gate.refusal(prop, command, age=age, session=self.session, receipt=receipt)
        if refusal is not None:
            self.metrics[refusal.counter] += 1
            log.warning("node %s: %s %s of %s not applied: %s", self.node_id, command.action,
                        command.id, prop, refusal.reason)
            self.publish_state(prop, force=True)
            return
        if self.gate.applied(prop, command) and release:
            self.metrics["repeated_releases"] += 1   # applied again: harmless
        self._apply(prop, command.action, command.params, counter="rejected_commands")
        if not release:
            self.lane.undo_superseded(prop, receipt)   # a release booked meanwhile wins
        self.publish_state(prop, force=True)

    def released(self, prop: str) -> None:
        """The release lane released maglock *prop* and booked it: the state that confirms it."""
        self.publish_state(prop, force=True)

    def emergency_booked(self, emergency: Emergency, *, changed: bool) -> None:
        """The release lane applied the apartment's emergency (released every maglock, held
        them open — every lock refused — until an explicit clear) or its clear (nothing
        relocked): what is kept on disk, said, and reported. The same alert on every
        reconnection (retained) released again; it changes nothing else."""
        if emergency.active:
            if changed:
                log.warning("node %s: emergency %s (%s): every lock released, every lock "
                            "refused until it is cleared", self.node_id, emergency.id, emergency.who)
                self.ports.save_emergency(emergency)
            else:
                log.info("node %s: emergency %s still active: locks released again", self.node_id,
                         emergency.id)
            for prop in sorted(self.maglocks):
                self.publish_state(prop)
        elif changed:
            log.warning("node %s: emergency %s cleared (%s): locks may be locked again, none is "
                        "locked by this", self.node_id, emergency.id, emergency.who)
            self.metrics["emergency_clears"] += 1
            self.ports.save_emergency(None)

    def emergency_pressed(self, *, now: float) -> None:
        """The node's emergency input, after the release lane released and held every
        maglock: report it; the locks stay held until the controller has handled that report
        (and released every lock of the apartment): a relock it sends meanwhile is refused."""
        log.warning("emergency input pressed on node %s: locks released", self.node_id)
        self.metrics["emergency"] += 1
        seq = self.events.emit(NODE_PROP, "emergency", True, session=self.session, now=now)
        self.gate.hold(self.maglocks, seq)
        for prop in sorted(self.maglocks):
            self.publish_state(prop)

    def _apply(self, prop: str, action: str, params: Mapping[str, Any], *, counter: str) -> bool:
        try:
            self.ports.apply(prop, action, dict(params))
        except PropError as exc:
            self.metrics[counter] += 1
            log.warning("node %s: %s refused %s: %s", self.node_id, prop, action, exc)
            return False
        return True

    # -- events -----------------------------------------------------------------------
    def prop_event(self, prop: str, event_type: str, value: Any, *, now: float) -> None:
        """One event of a prop: to the local puzzles if the node is on its own, then out."""
        if self.autonomous(now):
            for puzzle in self.local.on_event(prop=prop, event=event_type, value=value, view=self.view):
                self._solve_locally(puzzle, now)
        self.events.emit(prop, event_type, value, session=self.session, now=now)

    # -- autonomy ---------------------------------------------------------------------
    def autonomous(self, now: float) -> bool:
        """Is the node on its own: local puzzles, a game running, the controller silent
        for ``autonomy_after_s``?"""
        if not self.local:
            return False
        silent = self.link.silent_for(now)
        autonomous = self.view.running and silent > self.autonomy_after_s
        if autonomous and not self._autonomous:
            self.metrics["autonomy"] += 1
            self.local.restart()
            log.warning("node %s: no word from the controller for %.0f s during a game: "
                        "running local puzzles on its own (%s)", self.node_id, silent,
                        ", ".join(p.id for p in self.local.puzzles))
        self._autonomous = autonomous
        return autonomous

    def _solve_locally(self, puzzle: Puzzle, now: float) -> None:
        """Do what a local puzzle does to this node's props, then say so."""
        opened: list[str] = []
        for action in self.local.prop_actions(puzzle):
            prop = action.target.partition(".")[2]
            if prop not in self.kinds:
                continue
            if action.do == "lock":
                # NOTE: never lock anything on our own: with the controller away, only the
                # emergency input could open it again.
                self.metrics["local_locks_skipped"] += 1
                log.warning("node %s: %s would lock %s; not done while the controller is away",
                            self.node_id, puzzle.id, prop)
                continue
            name = (action.action if action.do == "command" else action.do) or ""
            if self._apply(prop, name, action.params, counter="local_actions_refused") \
                    and prop in self.maglocks:
                opened.append(prop)
        seq = self.events.emit(NODE_PROP, "solved_locally", puzzle.id, session=self.session, now=now)
        self.gate.hold(opened, seq)   # not relocked before the controller knows why
        self.metrics["local_solves"] += 1
        log.warning("node %s solved %s on its own (controller away)", self.node_id, puzzle.id)

    # -- the game part (nodes/gamefile.py) ----------------------------------------------
    def game_offered(self, message: NodeGame, raw: bytes) -> None:
        """The controller's part of the game file for this node: checked, then applied at
        once if no game runs, else when it is over; refused (the node keeps the one it
        runs) if it cannot be applied. Every outcome is in the next birth."""
        identity = self.identity
        if message.hash == identity.game:
            if self._pending is not None:   # back to the part it runs: nothing waits any more
                self._pending, identity.game_pending = None, None
                self._publish_birth()
            return
        refused = identity.game_refused
        if refused is not None and refused.hash == message.hash:
            return   # the same part again (retained, on a reconnection): refused already
        try:
            part = gamefile.check(message, apartment=self.topics.apartment_id, node_id=self.node_id)
        except gamefile.PartRefused as exc:
            self._refuse_part(message.hash, str(exc))
            return
        if self.view.running:
            self._pending, identity.game_pending = (part, message.hash, raw), message.hash
            self.metrics["game_parts_deferred"] += 1
            log.warning("node %s: game part %s received during a game: applied when it is over",
                        self.node_id, message.hash)
            self._publish_birth()
            return
        self._apply_part(part, message.hash, raw)

    def _apply_part(self, part: NodePart, digest: str, raw: bytes) -> None:
        identity = self.identity
        self._pending, identity.game_pending = None, None
        error = self.ports.rebuild(part)
        if error is not None:
            self._refuse_part(digest, error)
            return
        self.reconfigure(part)
        identity.game, identity.game_refused = digest, None
        self.ports.save_part(raw)
        self.metrics["game_parts_applied"] += 1
        log.warning("node %s: now runs game part %s (%d props, %d local puzzles)", self.node_id,
                    digest, len(part.node.props), len(part.puzzles))
        self._publish_birth()
        self.publish_all_states()

    def _refuse_part(self, digest: str, reason: str) -> None:
        self.identity.game_refused = GameRefusal(hash=digest, reason=reason[:1000])
        self.metrics["game_parts_refused"] += 1
        log.error("node %s: game part %s refused, still runs %s: %s", self.node_id, digest,
                  self.identity.game, reason)
        self._publish_birth()

    def reconfigure(self, part: NodePart) -> None:
        """The props were rebuilt from *part*: its kinds, maglocks and local puzzles are
        the node's now (the emergency, the holds of the maglocks still there, the events
        waiting and the game view are kept)."""
        self.kinds = {p.id: p.kind for p in part.node.props}
        self.maglocks = frozenset(p for p, kind in self.kinds.items() if kind == MAGLOCK)
        self.gate.reconfigure(self.maglocks)
        self.local = LocalPuzzles(game=part, node_id=self.node_id)
        self.local.new_session(self.session)
        self.autonomy_after_s = part.apartment.autonomy_after_s
        self.identity.node = part.node
        self._published = {p: v for p, v in self._published.items() if p in self.kinds}

    # -- states -----------------------------------------------------------------------
    def publish_state(self, prop: str, *, force: bool = False) -> None:
        """Publish *prop*'s state (retained) if it changed since the last one published,
        or in any case with *force* (after a command: its ``ack``; on connect, on resync)."""
        try:
            fields = dict(self.ports.state(prop))
        except Exception:
            log.exception("state of %s failed", prop)
            return
        ack = self.gate.ack(prop)
        if not force and self._published.get(prop) == (fields, ack):
            return
        state = PropState(boot_id=self.boot_id, ack=ack, ts=contract.now(), **fields)
        if self.ports.publish(self.topics.prop_state(self.node_id, prop), state.to_bytes(), retain=True):
            self._published[prop] = (fields, ack)

    def publish_all_states(self) -> None:
        for prop in self.kinds:
            self.publish_state(prop, force=True)

    def _publish_birth(self) -> None:
        self.ports.publish(self.topics.node_status(self.node_id), self.identity.birth(), retain=True)
        self.metrics["births"] += 1

    # -- for the shell's status -------------------------------------------------------
    def status(self, *, now: float) -> dict[str, Any]:
        box = self.outbox
        emergency = self.gate.emergency
        return {"seq": self.seq, "link": str(self.link.state),
                "emergency": emergency.id if emergency is not None else None,
                "controller_online": self.link.online, "session": self.session,
                "autonomous": self.autonomous(now), "game": self.identity.game,
                "game_pending": self.identity.game_pending,
                "game_refused": (self.identity.game_refused.model_dump()
                                 if self.identity.game_refused else None),
                "outbox": {"events": len(box), "bytes": box.nbytes, "dropped": box.dropped},
                "holds": dict(self.gate.holds), "metrics": dict(self.metrics)}
