"""The game engine: runs a game file's puzzles, timer and budget. No I/O here.

The engine is fed prop events and the game master's orders and answers with *effects*
(commands for props, messages for room screens) that the service carries out. Time comes
from an injectable clock, so tests run a whole hour in microseconds.

The lifecycle is declared as a table (:data:`TRANSITIONS`), as ``transitions`` does.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from config.game import (
    BudgetAction,
    Condition,
    EndAction,
    EventCondition,
    Game,
    MessageAction,
    PerParcours,
    PropAction,
    Puzzle,
    Requires,
    TimerAction,
)

log = logging.getLogger(__name__)


class Phase(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    WON = "won"
    LOST = "lost"
    ABORTED = "aborted"


#: the lifecycle: which trigger moves the game from which phases to which
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start", "source": [Phase.IDLE], "dest": Phase.RUNNING},
    {"trigger": "pause", "source": [Phase.RUNNING], "dest": Phase.PAUSED},
    {"trigger": "resume", "source": [Phase.PAUSED], "dest": Phase.RUNNING},
    {"trigger": "win", "source": [Phase.RUNNING, Phase.PAUSED], "dest": Phase.WON},
    {"trigger": "time_up", "source": [Phase.RUNNING], "dest": Phase.LOST},
    {"trigger": "abort", "source": [Phase.RUNNING, Phase.PAUSED], "dest": Phase.ABORTED},
    {"trigger": "reset", "source": [Phase.WON, Phase.LOST, Phase.ABORTED, Phase.IDLE],
     "dest": Phase.IDLE},
]
ENDED = frozenset({Phase.WON, Phase.LOST, Phase.ABORTED})


class EngineError(ValueError):
    """An order that the game's current state does not allow (HTTP 409)."""


class PuzzleStatus(StrEnum):
    LOCKED = "locked"
    AVAILABLE = "available"
    SOLVED = "solved"


@dataclass(frozen=True, slots=True)
class PropCommand:
    """Effect: put a prop's output in a state (``lock``, ``unlock``, ``on``…)."""

    node: str
    prop: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScreenMessage:
    """Effect: show a text on a room screen (or every screen when room is None)."""

    text: str
    text_en: str | None = None
    room: str | None = None
    sound: str | None = None


Effect = PropCommand | ScreenMessage


@dataclass(slots=True)
class BudgetLine:
    amount: int
    label: str
    at: float
    puzzle: str | None = None


@dataclass(slots=True)
class PuzzleState:
    status: PuzzleStatus = PuzzleStatus.LOCKED
    solved_at: float | None = None
    solved_by: str = ""          # "players", "game master (force)", "node (offline)"
    progress: list[int] = field(default_factory=list)   # indices of matched conditions


class Engine:
    """One game being played, from start to end.

    >>> engine = Engine(load_game(SHIPPED_GAME), clock=lambda: 0.0)
    >>> effects = engine.start(parcours="primo", players=4)
    >>> effects = engine.on_event("hall", "mailbox_keypad", "code", "0412")
    """

    def __init__(self, game: Game, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.game = game
        self.clock = clock
        self.phase = Phase.IDLE
        self.session_id: str | None = None
        self.parcours = "primo"
        self.players = 0
        self.children = False
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.result: str | None = None
        self._elapsed_before = 0.0
        self._running_since: float | None = None
        self.added_seconds = 0
        self.budget = 0
        self.budget_history: list[BudgetLine] = []
        self.puzzles: dict[str, PuzzleState] = {p.id: PuzzleState() for p in game.puzzles}
        self.messages: list[ScreenMessage] = []
        self.log: list[dict[str, Any]] = []

    # -- lifecycle --------------------------------------------------------------------
    def _move(self, trigger: str) -> None:
        for row in TRANSITIONS:
            if row["trigger"] == trigger and self.phase in row["source"]:
                self._note("phase", f"{self.phase} -> {row['dest']}")
                self.phase = row["dest"]
                return
        msg = f"cannot {trigger} while the game is {self.phase}"
        raise EngineError(msg)

    def start(self, *, parcours: str = "primo", players: int = 1, children: bool = False,
              session_id: str | None = None) -> list[Effect]:
        if parcours not in ("primo", "locataire"):
            msg = f"unknown parcours {parcours!r}: primo or locataire"
            raise EngineError(msg)
        if not 1 <= players <= self.game.apartment.max_players:
            msg = f"players must be 1 to {self.game.apartment.max_players}"
            raise EngineError(msg)
        self._move("start")
        self.session_id = session_id or uuid.uuid4().hex[:12]
        self.parcours, self.players, self.children = parcours, players, children
        now = self.clock()
        self.started_at, self._running_since, self._elapsed_before = now, now, 0.0
        self.ended_at, self.result, self.added_seconds = None, None, 0
        budget = self.game.apartment.budget
        self.budget = int(self._resolve(budget.start)) if budget else 0
        self.budget_history = []
        self.puzzles = {p.id: PuzzleState() for p in self.game.puzzles}
        self.messages = []
        self._refresh_availability()
        # Pre-game state: every lock locked, every output at rest.
        return [PropCommand(node.id, prop.id, "lock") for node in self.game.nodes
                for prop in node.props if prop.kind == "maglock"]

    def pause(self) -> None:
        self._move("pause")
        self._elapsed_before = self.elapsed()
        self._running_since = None

    def resume(self) -> None:
        self._move("resume")
        self._running_since = self.clock()

    def abort(self) -> list[Effect]:
        self._move("abort")
        return self._end(Phase.ABORTED)

    def reset(self) -> None:
        self._move("reset")
        self.session_id = None

    def _end(self, phase: Phase) -> list[Effect]:
        self._elapsed_before = self.elapsed()
        self._running_since = None
        self.ended_at = self.clock()
        self.result = str(phase)
        # NOTE: when a game ends, however it ends, every lock opens: nobody stays locked in.
        return self.release_all()

    def release_all(self) -> list[Effect]:
        """Effects that open every lock of the apartment."""
        return [PropCommand(node.id, prop.id, "unlock") for node in self.game.nodes
                for prop in node.props if prop.kind == "maglock"]

    # -- timer ------------------------------------------------------------------------
    @property
    def duration(self) -> float:
        return self.game.apartment.duration_min * 60 + self.added_seconds

    def elapsed(self) -> float:
        running = self.clock() - self._running_since if self._running_since is not None else 0.0
        return self._elapsed_before + running

    def remaining(self) -> float:
        return max(0.0, self.duration - self.elapsed())

    def add_time(self, seconds: int) -> None:
        if self.phase not in (Phase.RUNNING, Phase.PAUSED):
            msg = f"cannot change the time while the game is {self.phase}"
            raise EngineError(msg)
        self.added_seconds += seconds
        self._note("timer", f"{seconds:+d} s")

    def tick(self) -> list[Effect]:
        """Call often (every 0.2 s): ends the game when the time is up."""
        if self.phase == Phase.RUNNING and self.remaining() <= 0:
            self._move("time_up")
            return self._end(Phase.LOST)
        return []

    # -- puzzles ----------------------------------------------------------------------
    def in_parcours(self, puzzle: Puzzle) -> bool:
        return self.parcours in puzzle.parcours

    def _resolve(self, value: Any) -> Any:
        return getattr(value, self.parcours) if isinstance(value, PerParcours) else value

    def _refresh_availability(self) -> None:
        solved = {pid for pid, st in self.puzzles.items() if st.status == PuzzleStatus.SOLVED}
        for puzzle in self.game.puzzles:
            state = self.puzzles[puzzle.id]
            if state.status == PuzzleStatus.SOLVED or not self.in_parcours(puzzle):
                continue
            reqs = puzzle.required_ids()
            ok = (any(r in solved for r in reqs) if isinstance(puzzle.requires, Requires)
                  else all(r in solved for r in reqs))
            state.status = PuzzleStatus.AVAILABLE if ok else PuzzleStatus.LOCKED

    def _matches(self, cond: EventCondition, node: str, prop: str, event: str, value: Any) -> bool:
        if cond.prop != f"{node}.{prop}" or cond.event != event:
            return False
        equals = self._resolve(cond.equals)
        if equals is not None and value != equals:
            return False
        any_of = self._resolve(cond.any_of)
        if any_of is not None and value not in any_of:
            return False
        if cond.min_value is not None:
            return isinstance(value, int | float) and value >= cond.min_value
        return True

    def on_event(self, node: str, prop: str, event: str, value: Any) -> list[Effect]:
        """A prop event: solve what it solves. Puzzles not yet available ignore it."""
        if self.phase != Phase.RUNNING:
            return []
        effects: list[Effect] = []
        for puzzle in self.game.puzzles:
            state = self.puzzles[puzzle.id]
            if not self.in_parcours(puzzle) or state.status == PuzzleStatus.SOLVED:
                continue
            conditions = puzzle.conditions()
            relevant = [i for i, c in enumerate(conditions)
                        if c.prop == f"{node}.{prop}" and c.event == event]
            if not relevant:
                continue
            if state.status == PuzzleStatus.LOCKED:
                self._note("ignored", f"{node}.{prop} {event}={value!r}: puzzle {puzzle.id} "
                                      "is not available yet")
                continue
            if self._advance(puzzle, state, conditions, node=node, prop=prop, event=event,
                             value=value):
                effects += self._solve(puzzle, by="players")
        return effects

    def _advance(self, puzzle: Puzzle, state: PuzzleState, conditions: list[EventCondition],
                 *, node: str, prop: str, event: str, value: Any) -> bool:
        if isinstance(puzzle.solve, Condition) and puzzle.solve.when == "sequence":
            nxt = len(state.progress)
            if self._matches(conditions[nxt], node, prop, event, value):
                state.progress.append(nxt)
            else:
                state.progress.clear()  # wrong order: start again
                if self._matches(conditions[0], node, prop, event, value):
                    state.progress.append(0)
        else:
            for i, cond in enumerate(conditions):
                if i not in state.progress and self._matches(cond, node, prop, event, value):
                    state.progress.append(i)
        return len(state.progress) == len(conditions)

    def force_solve(self, puzzle_id: str) -> list[Effect]:
        puzzle = self.game.puzzle(puzzle_id)
        if puzzle is None:
            msg = f"unknown puzzle {puzzle_id!r}"
            raise EngineError(msg)
        if self.phase not in (Phase.RUNNING, Phase.PAUSED):
            msg = f"cannot solve a puzzle while the game is {self.phase}"
            raise EngineError(msg)
        if self.puzzles[puzzle_id].status == PuzzleStatus.SOLVED:
            return []
        return self._solve(puzzle, by="game master")

    def _solve(self, puzzle: Puzzle, *, by: str) -> list[Effect]:
        state = self.puzzles[puzzle.id]
        state.status, state.solved_at, state.solved_by = PuzzleStatus.SOLVED, self.elapsed(), by
        self._note("solved", f"{puzzle.id} by {by}")
        effects: list[Effect] = []
        ended = False
        for action in puzzle.actions:
            if isinstance(action, PropAction):
                node, prop = action.target.split(".")
                name = action.action if action.do == "command" else action.do
                effects.append(PropCommand(node, prop, name or "", dict(action.params)))
            elif isinstance(action, BudgetAction):
                self.move_budget(int(self._resolve(action.amount)), action.label.fr, puzzle.id)
            elif isinstance(action, MessageAction):
                message = ScreenMessage(action.text.fr, action.text.en, action.room, action.sound)
                self.messages.append(message)
                effects.append(message)
            elif isinstance(action, TimerAction):
                if action.op == "add":
                    self.add_time(action.seconds)
                elif action.op == "pause" and self.phase == Phase.RUNNING:
                    self.pause()
                elif action.op == "resume" and self.phase == Phase.PAUSED:
                    self.resume()
            elif isinstance(action, EndAction):
                ended = True
        self._refresh_availability()
        if (puzzle.final or ended) and self.phase in (Phase.RUNNING, Phase.PAUSED):
            self._move("win")
            effects += self._end(Phase.WON)
        return effects

    def move_budget(self, amount: int, label: str, puzzle: str | None = None) -> None:
        self.budget += amount
        self.budget_history.append(BudgetLine(amount, label, self.elapsed(), puzzle))

    def _note(self, kind: str, text: str) -> None:
        log.info("game %s: %s: %s", self.session_id, kind, text)
        self.log.append({"at": round(self.elapsed(), 3) if self.started_at else 0.0,
                         "kind": kind, "text": text})
        del self.log[:-500]

    # -- views ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "session": self.session_id, "phase": str(self.phase), "parcours": self.parcours,
            "players": self.players, "children": self.children,
            "duration_s": self.duration, "elapsed_s": round(self.elapsed(), 3),
            "remaining_s": round(self.remaining(), 3), "result": self.result,
            "budget": self.budget,
            "budget_history": [{"amount": b.amount, "label": b.label, "at": round(b.at, 1),
                                "puzzle": b.puzzle} for b in self.budget_history],
            "puzzles": [{"id": p.id, "label": p.label.fr, "theme": p.theme, "room": p.room,
                         "status": str(self.puzzles[p.id].status),
                         "in_parcours": self.in_parcours(p),
                         "solved_at": self.puzzles[p.id].solved_at,
                         "solved_by": self.puzzles[p.id].solved_by} for p in self.game.puzzles],
            "messages": [{"text": m.text, "room": m.room} for m in self.messages[-10:]],
            "log": self.log[-50:],
        }
