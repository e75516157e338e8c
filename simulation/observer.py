"""What the invariants need to know that no single object holds: the truth over time.

The :class:`Observer` watches the apartment after every step of the scheduler and keeps
what happened — when each maglock's relay was driven or released, which game-master
orders were given, which of the players' gestures caused which node event and which
solve, which sessions ended and how, when the apartment was last *settled* (no fault
under way, every process up and connected) — and the obligations those facts create
("every maglock released by then"). The invariants themselves are the functions of
``simulation/invariants.py``; the observer calls them and collects what they find.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.engine import ENDED, PLAYING, Phase, PuzzleStatus
from controller.mqtt import Incoming
from protocol.contract import Command, PropEvent
from simulation import invariants
from simulation.invariants import ALL, Key
from simulation.props import Maglock

if TYPE_CHECKING:
    from controller.service import GameService
    from simulation.apartment import Apartment


@dataclass(slots=True)
class Cause:
    """A gesture of the players (or a node reading again what lies on a prop)."""

    label: str
    session: str | None
    at: float


@dataclass(slots=True)
class Obligation:
    """Every maglock must have been released at some time after *at* (an emergency, the
    end of a game): by *bound* seconds after *at*, or after the apartment settled."""

    at: float
    why: str
    keys: list[Key]
    void: bool = False


@dataclass(slots=True)
class Durable:
    """What the store held when the controller stopped (its backlog empty)."""

    session: str | None
    solved: frozenset[str]
    audit: int
    completed: dict[str, str] = field(default_factory=dict)


class Observer:
    """The apartment's truth over time, and the invariants' findings (:attr:`violations`)."""

    def __init__(self, flat: Apartment) -> None:
        self.flat = flat
        self.scheduler = flat.scheduler
        self.violations: list[str] = []
        self.session: str | None = None
        self.causes: list[Cause] = []
        self.event_causes: dict[tuple[str, str, int], int] = {}
        self.solves: dict[int, list[tuple[str | None, str]]] = {}
        self.completed: dict[str, str] = {}          # session -> result, as the engine said
        #: those the store held for sure: the last time nothing waited to be written
        self.completed_written: dict[str, str] = {}
        self.keys: list[Key] = [(n, p) for n, node in flat.nodes.items() for p in node.maglocks()]
        self.exit_doors = {k for k in self.keys if self._maglock(k).config.exit_door}
        self.engaged = dict.fromkeys(self.keys, False)
        self.last_in: dict[Key, dict[bool, float]] = {k: {False: 0.0, True: -1.0} for k in self.keys}
        self.released_at = dict.fromkeys(self.keys, 0.0)   # start of the current release
        self.release_causes: dict[Key, float] = {}         # when the order being applied was given
        self.alerts: dict[str, float] = {}                  # each emergency, when raised
        self.lock_orders: dict[Key, float] = {}
        self.gm_only = dict.fromkeys(self.keys, False)     # relocks need the game master
        self.obligations: list[Obligation] = []
        self.touched: dict[Key, float] = {}                 # last hand on a prop (any kind)
        self.states: dict[Key, dict[str, Any]] = {}         # each prop's state, and since when
        self.moved: dict[Key, float] = {}
        self.down_at: dict[str, float] = {}                  # a node died, started or was cut off
        self.faults = 0                                     # faults under way
        self.settled_since: float | None = 0.0
        self.durable: Durable | None = None
        self._phase: Phase | None = None
        self._alert: str | None = None
        self._last_check = -1.0

    def _maglock(self, key: Key) -> Maglock:
        prop = self.flat.nodes[key[0]].props[key[1]]
        assert isinstance(prop, Maglock)
        return prop

    def fail(self, invariant: str, text: str) -> None:
        self.violations.append(f"{self.scheduler.now:10.3f} {invariant}: {text}")

    # -- what the actors and faults tell ------------------------------------------------
    def cause(self, label: str) -> int:
        self.causes.append(Cause(label, self.session, self.scheduler.now))
        return len(self.causes) - 1

    def emitted(self, node: str, boot: str, seq: int, cause: int | None) -> None:
        if cause is not None:
            self.event_causes[(node, boot, seq)] = cause

    def order(self, name: str, *, keys: list[Key] | None, locking: bool) -> None:
        """A game-master order the game accepted."""
        if locking:
            for key in keys or [ALL]:
                self.lock_orders[key] = self.scheduler.now
            for key in keys or self.keys:
                self.gm_only[key] = False
        elif name == "unlock" and keys:
            self.obligations.append(Obligation(self.scheduler.now, "the game master's unlock", keys))
        if name == "brief":
            invariants.check_passes_only_in_start_state(self)

    def emergency_input(self, node: str) -> None:
        invariants.emergency_input_releases_at_once(self, node)
        for key in self.keys:
            if key[0] == node:
                self.gm_only[key] = True

    def releasing(self, node: str, props: list[str], *, command: Command | None = None,
                  emergency: str | None = None) -> None:
        """A node is about to release *props* on an order: when that order was given (a
        release it causes is as old as the order, for the relock rule)."""
        at = self.scheduler.now
        if command is not None and command.controller is not None and command.issued is not None:
            start = self.flat.controller.boots.get(command.controller)
            at = start + command.issued if start is not None else at
        elif emergency is not None:
            at = self.alerts.get(emergency, at)
        for prop in props:
            self.release_causes[(node, prop)] = at

    def hand(self, node: str, prop: str) -> None:
        self.touched[(node, prop)] = self.moved[(node, prop)] = self.scheduler.now

    def node_down(self, node: str) -> None:
        """A node died, came back or was cut off: its relays fell or its news is held, its
        props start again."""
        self.down_at[node] = self.scheduler.now
        for prop in self.flat.nodes[node].props:
            self.touched[(node, prop)] = self.moved[(node, prop)] = self.scheduler.now

    def fault(self, delta: int) -> None:
        self.faults += delta
        self.settled_since = None

    def controller_stopping(self, service: GameService) -> None:
        """The controller is about to crash or stop: what its store holds, if all written."""
        backlog = service.journal.backlog
        if backlog.waiting or backlog.failing:
            self.durable = None
            for ob in self.obligations:   # an order that was never written may be lost
                ob.void = True
            # a game that ended while the disk refused its record is lost with the process
            # (a full disk, then kill -9): only what was written is owed by the next one
            self.completed = dict(self.completed_written)
            return
        engine = service.engine
        self.durable = Durable(engine.session_id, _solved(service), len(engine.audit_log),
                               dict(self.completed))

    def controller_started(self, service: GameService) -> None:
        invariants.nothing_recorded_is_lost_after_a_crash(self, service)
        self._phase, self._alert = service.engine.phase, None

    # -- the controller's messages --------------------------------------------------------
    def before_take(self, service: GameService) -> dict[str, tuple[PuzzleStatus, str]]:
        return {pid: (st.status, st.solved_by) for pid, st in service.engine.puzzles.items()}

    def after_take(self, service: GameService, item: object,
                   before: dict[str, tuple[PuzzleStatus, str]]) -> None:
        """Solves made by one message: each gesture solves once, in its own session."""
        if not isinstance(item, Incoming) or not isinstance(item.payload, PropEvent):
            return
        engine = service.engine
        for pid, st in engine.puzzles.items():
            if st.status != PuzzleStatus.SOLVED or before[pid][0] == PuzzleStatus.SOLVED:
                continue
            if st.solved_by != "players" and not st.solved_by.startswith("node "):
                continue
            event: PropEvent = item.payload
            cause = self.event_causes.get((item.parts.node or "", event.boot_id, event.seq))
            self.solves.setdefault(-1 if cause is None else cause, []).append((engine.session_id, pid))
            invariants.each_solve_counted_once(self, cause, engine.session_id, pid,
                                               stamped=event.session is not None)

    # -- after every step of the scheduler ---------------------------------------------
    def step(self) -> None:
        now = self.scheduler.now
        service = self.flat.controller.service
        if service is not None:
            self._watch_game(service)
            backlog = service.journal.backlog
            if not (backlog.waiting or backlog.failing):
                self.completed_written = dict(self.completed)
        for key in self.keys:
            engaged = self._maglock(key).engaged
            self.last_in[key][engaged] = now
            if engaged != self.engaged[key]:
                self.engaged[key] = engaged
                if engaged:
                    invariants.exit_door_never_relocked_without_the_game_master(self, key)
                else:   # as old as the order that released it (else: now, a crash, a button)
                    self.released_at[key] = min(now, self.release_causes.get(key, now))
        self.release_causes.clear()
        if self.settled_since is None and self._settled():
            self.settled_since = now
        elif self.settled_since is not None and not self._settled():
            self.settled_since = None
        if self.obligations:
            invariants.locks_released_after_an_emergency_or_an_end(self)
        if now - self._last_check >= 0.5:
            self.checkpoint()

    def checkpoint(self) -> None:
        """The invariants that look at the whole apartment (not after every packet)."""
        now = self._last_check = self.scheduler.now
        for node_id, node in self.flat.nodes.items():
            for prop_id, prop in node.props.items():
                state = prop.state()
                key = (node_id, prop_id)
                if self.states.get(key) != state:
                    self.states[key], self.moved[key] = state, now
        for check in invariants.CHECKPOINT:
            check(self)

    def _watch_game(self, service: GameService) -> None:
        engine = service.engine
        self.session = engine.session_id if engine.session_id is not None else self.session
        phase = engine.phase
        if phase != self._phase:
            if phase in ENDED and self._phase in PLAYING:
                self.obligations.append(Obligation(self.scheduler.now, f"game {phase}", list(self.keys)))
            if phase in ENDED and engine.session_id is not None:
                self.completed[engine.session_id] = str(phase)
            self._phase = phase
        alert = service.alert.state
        alert_id = alert.id if alert is not None and alert.active else None
        if alert_id != self._alert:
            if alert_id is not None:
                self.alerts[alert_id] = self.scheduler.now
                self.obligations.append(Obligation(self.scheduler.now, "emergency", list(self.keys)))
                for key in self.keys:
                    self.gm_only[key] = True
            self._alert = alert_id

    def _settled(self) -> bool:
        flat = self.flat
        controller = flat.controller
        if self.faults or not flat.world.broker.running or controller.service is None:
            return False
        if not controller.service.bridge.connected:
            return False
        now = self.scheduler.now
        return all(n.client is not None and n.client.is_connected() and now >= n.stalled_until
                   for n in flat.nodes.values())

    def settled_for(self) -> float:
        """How long the apartment has been settled (0: it is not)."""
        since = self.settled_since
        return 0.0 if since is None else self.scheduler.now - since

    def summary(self) -> dict[str, Any]:
        return {"violations": len(self.violations), "causes": len(self.causes),
                "solves": sum(len(v) for v in self.solves.values()), "completed": len(self.completed)}


def _solved(service: GameService) -> frozenset[str]:
    return frozenset(p for p, st in service.engine.puzzles.items() if st.status == PuzzleStatus.SOLVED)
