"""A session on disk: the engine's resume record and the rows of the history tables.

:func:`to_record` turns an :class:`~controller.engine.Engine` into a :class:`SessionRecord`
(JSON, kept in the ``state`` column of ``sessions``: :mod:`controller.store`);
:func:`from_record` makes an engine that carries on that session in another process (a
controller restarted mid-game resumes the same game). :func:`history_rows` gives the
session as the history tables hold it. The engine itself knows nothing of either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from config.game import Game
from controller.engine import (
    BudgetLine,
    Engine,
    Phase,
    PuzzleState,
    ScreenMessage,
    SentClue,
)
from controller.profile import GroupProfile

#: version of the record's layout (a record of another version is not resumed)
RECORD_VERSION = 1
#: the screen messages a record keeps (the newest)
RECORD_MESSAGES = 20


class SessionRecord(BaseModel):
    """Everything needed to resume a session in another process.

    The timer is saved as the run time so far (``elapsed``) plus a wall-clock anchor
    (``wall_at``): a controller that restarts adds the time it was away (the players kept
    playing). Fields a record of an older controller lacks take their defaults.
    """

    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = Field(description="version of this layout")
    session: str | None
    phase: Phase
    parcours: str
    players: int
    children: bool
    created_wall: float | None = None
    started_wall: float | None = None
    ended_wall: float | None = None
    result: str | None = None
    elapsed: float = 0.0
    running: bool = False
    wall_at: float | None = None
    added_seconds: int = 0
    budget: int
    budget_start: int = 0
    budget_history: list[BudgetLine] = Field(default_factory=list)
    settled: bool = Field(default=False, description="the unpaid bills were charged (the end)")
    puzzles: dict[str, PuzzleState] = Field(default_factory=dict)
    messages: list[ScreenMessage] = Field(default_factory=list)
    clues: list[SentClue] = Field(default_factory=list)
    last_activity: float = 0.0
    check_override: dict[str, Any] | None = None
    profile: dict[str, Any] = Field(default_factory=dict,
                                    description="the group's profile (controller/profile.py)")


def to_record(engine: Engine) -> dict[str, Any]:
    """*engine*'s session as a JSON-able :class:`SessionRecord`."""
    return SessionRecord(
        v=RECORD_VERSION, session=engine.session_id, phase=engine.phase, parcours=engine.parcours,
        players=engine.players, children=engine.children, created_wall=engine.created_wall,
        started_wall=engine.started_wall, ended_wall=engine.ended_wall, result=engine.result,
        elapsed=engine.elapsed(), running=engine.timer_running, wall_at=engine.wall(),
        added_seconds=engine.added_seconds, budget=engine.budget, budget_start=engine.budget_start,
        budget_history=engine.budget_history, settled=engine.settled, puzzles=engine.puzzles,
        messages=engine.messages[-RECORD_MESSAGES:], clues=engine.clues,
        last_activity=engine.last_activity, check_override=engine.check_override,
        profile=engine.profile.as_dict(),
    ).model_dump(mode="json")


def from_record(game: Game, record: dict[str, Any], *,
                clock: Callable[[], float] = time.monotonic,
                wall: Callable[[], float] = time.time) -> Engine:
    """An engine that carries on the session of *record* (see :func:`to_record`).

    Puzzles the game file no longer has are dropped, new ones start fresh. Raises
    ValueError (pydantic's ValidationError is one) for a record it cannot read.
    """
    if record.get("v") != RECORD_VERSION:
        msg = f"unknown game record version {record.get('v')!r}"
        raise ValueError(msg)
    saved = SessionRecord.model_validate(record)
    engine = Engine(game, clock=clock, wall=wall)
    engine.phase, engine.session_id, engine.parcours = saved.phase, saved.session, saved.parcours
    engine.players, engine.children = saved.players, saved.children
    engine.created_wall, engine.started_wall = saved.created_wall, saved.started_wall
    engine.ended_wall, engine.result = saved.ended_wall, saved.result
    engine.added_seconds = saved.added_seconds
    elapsed = saved.elapsed
    running = saved.running and saved.phase == Phase.RUNNING
    if running and saved.wall_at is not None:
        # NOTE: a wall clock that went backwards (NTP) must not give time back.
        elapsed += max(0.0, engine.wall() - saved.wall_at)
    engine.budget, engine.budget_start = saved.budget, saved.budget_start
    engine.budget_history = saved.budget_history
    engine.settled = saved.settled
    engine.puzzles.update({pid: st for pid, st in saved.puzzles.items() if pid in engine.puzzles})
    engine.messages, engine.clues = saved.messages, saved.clues
    engine.last_activity = saved.last_activity
    engine.check_override = saved.check_override
    engine.profile = GroupProfile.from_dict(saved.profile)
    engine.restore_timer(elapsed, running=running)
    return engine


def history_rows(engine: Engine) -> dict[str, Any]:
    """The session as the history tables hold it (see :mod:`controller.store`)."""
    started = engine.started_wall is not None
    clues_per_puzzle: dict[str, int] = {}
    for clue in engine.clues:
        if clue.counts and clue.puzzle:
            clues_per_puzzle[clue.puzzle] = clues_per_puzzle.get(clue.puzzle, 0) + 1
    puzzles = []
    for puzzle in engine.game.puzzles:
        if not engine.in_parcours(puzzle):
            continue
        st = engine.puzzles[puzzle.id]
        duration = (st.solved_at - st.available_at
                    if st.solved_at is not None and st.available_at is not None else None)
        puzzles.append({"puzzle_id": puzzle.id, "label": puzzle.label.fr, "theme": puzzle.theme,
                        "room": puzzle.room, "status": str(st.status),
                        "available_at_s": st.available_at, "solved_at_s": st.solved_at,
                        "duration_s": duration, "solved_by": st.solved_by or None,
                        "clues": clues_per_puzzle.get(puzzle.id, 0)})
    return {
        "session": {
            "id": engine.session_id, "apartment": engine.game.apartment.id,
            "created_at": engine.created_wall, "parcours": engine.parcours,
            "players": engine.players, "children": int(engine.children),
            "started_at": engine.started_wall, "ended_at": engine.ended_wall,
            "result": engine.result, "phase": str(engine.phase),
            "duration_s": engine.duration if started else None,
            "time_used_s": round(engine.elapsed(), 3) if started else None,
            "clues": engine.clue_count, "clues_sent": len(engine.clues),
            "budget_start": engine.budget_start, "final_budget": engine.budget,
            "check_override": engine.check_override["reason"] if engine.check_override else None,
        },
        "puzzles": puzzles if started else [],
        "budget": [asdict(b) for b in engine.budget_history],
        "clues": [asdict(c) for c in engine.clues],
    }
