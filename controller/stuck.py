"""What the group is stuck on: for each open puzzle, what the players tried on its props.

The game master's console shows, per puzzle open now: since when it is open, the codes
typed and tags presented on its props lately (right or wrong: a code that solved it closes
the puzzle), the last of its props the group touched, and since when the group made no
progress on it; the puzzle they have spent longest on is marked, and after
``apartment.hint_after_min`` without progress a clue is *suggested* (never sent: the
game master decides). Kept in memory for the open session only: a restarted controller
starts these lists afresh (the events themselves are in the session's journal).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from config import rules
from controller.context import Context
from controller.engine import Phase, PuzzleStatus

#: how many of the latest tries each puzzle keeps
TRIES_KEPT = 5


@dataclass(slots=True)
class Try:
    at: float          # run time (s)
    node: str
    prop: str
    type: str
    value: Any
    tag: str | None    # the known name of a tag presented (the game file's ``tags``)


@dataclass(slots=True)
class PuzzleWatch:
    tries: deque[Try] = field(default_factory=lambda: deque(maxlen=TRIES_KEPT))
    touched: Try | None = None          # the last event of any kind on its props
    progress: int = 0                   # conditions met, as last seen
    progress_at: float | None = None    # run time of the last step forward


class Stuck:
    """The tries of the open session, fed every prop event the game receives."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._session: str | None = None
        self._watch: dict[str, PuzzleWatch] = {}
        self._game: object = None
        self._props: dict[str, list[str]] = {}     # "node.prop" → puzzles with a condition on it
        self._triggers = rules.Triggers(())

    def _index(self) -> None:
        game = self.ctx.game
        if self._game is not game:
            self._game, self._triggers = game, rules.Triggers(game.puzzles)
            self._props = {}
            for puzzle in game.puzzles:
                for ref in dict.fromkeys(c.prop for c in puzzle.conditions()):
                    self._props.setdefault(ref, []).append(puzzle.id)

    def _watching(self) -> dict[str, PuzzleWatch]:
        session = self.ctx.engine.session_id
        if session != self._session:
            self._session, self._watch = session, {}
        return self._watch

    def open_now(self) -> set[str]:
        """The puzzles open now (to hand to :meth:`record` after the event)."""
        return {pid for pid, state in self.ctx.engine.puzzles.items()
                if state.status == PuzzleStatus.AVAILABLE}

    def record(self, node: str, prop: str, event_type: str, value: Any, *,
               open_before: set[str]) -> None:
        """A prop event the engine has just been given (call after ``Engine.on_event``);
        *open_before*: :meth:`open_now` before it (a puzzle this event opened was not tried)."""
        engine = self.ctx.engine
        if engine.phase not in (Phase.RUNNING, Phase.WON):   # the winning event lands in WON
            return
        self._index()
        watch = self._watching()
        tried = Try(at=round(engine.elapsed(), 1), node=node, prop=prop, type=event_type,
                    value=value, tag=self._tag_name(node, prop, value))
        ref = f"{node}.{prop}"
        moved = {p.id for p in self._triggers(rules.Event.of(node, prop, event_type, value))}
        for puzzle_id in self._props.get(ref, []):
            if puzzle_id not in open_before:
                continue
            w = watch.setdefault(puzzle_id, PuzzleWatch())
            w.touched = tried
            if puzzle_id in moved:
                w.tries.append(tried)
            steps = len(engine.puzzles[puzzle_id].progress)
            if steps > w.progress:
                w.progress_at = tried.at
            w.progress = steps

    def _tag_name(self, node: str, prop: str, value: Any) -> str | None:
        tags = getattr(self.ctx.configs.get((node, prop)), "tags", None) or {}
        uid = value.get("uid") if isinstance(value, dict) else value
        return tags.get(uid) if isinstance(uid, str) else None

    def view(self) -> list[dict[str, Any]]:
        """Each puzzle open now: since when (run time), what was tried, since when no
        progress, whether a clue is due; the one open longest marked."""
        engine = self.ctx.engine
        if engine.phase not in (Phase.RUNNING, Phase.PAUSED):
            return []
        watch = self._watching()
        now = engine.elapsed()
        hint_after = self.ctx.game.apartment.hint_after_min * 60
        out = []
        for puzzle in self.ctx.game.puzzles:
            state = engine.puzzles[puzzle.id]
            if state.status != PuzzleStatus.AVAILABLE or not engine.in_parcours(puzzle):
                continue
            w = watch.get(puzzle.id) or PuzzleWatch()
            opened = state.available_at or 0.0
            stalled = max(opened, w.progress_at or 0.0)
            out.append({"puzzle": puzzle.id, "available_at": round(opened, 1),
                        "progress_at": round(stalled, 1),
                        "tries": [_try(t) for t in w.tries],
                        "touched": _try(w.touched) if w.touched else None,
                        "hint_due": now - stalled >= hint_after, "longest": False})
        if out:
            min(out, key=lambda p: p["available_at"])["longest"] = True
        return out


def _try(t: Try) -> dict[str, Any]:
    return {"at": t.at, "node": t.node, "prop": t.prop, "type": t.type, "value": t.value,
            "tag": t.tag}
