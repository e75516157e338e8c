"""A node's local puzzles, solved on the node itself while the controller is away.

A puzzle marked ``local: true`` in the game file is solved by events of its own room's
props and acts only on its own room's props (``config/game.py`` checks both). When the
controller has been silent for ``apartment.autonomy_after_s`` during a game, the node
agent feeds its props' events to :class:`LocalPuzzles`, which decides by the same rules as
the controller's engine, :mod:`config.rules` (matching, ``all`` / ``sequence`` progress,
availability). What is the node's own:

* the parcours is the one the controller announced in its status; if the node never
  learnt one it passes "unknown" to the rules, which then accept a value of *either*
  parcours — better a box opened with the other parcours' code than a room stuck without
  its controller;
* what is solved is what the controller last said (``ControllerStatus.solved``) and what
  was solved here meanwhile.

Only what a node can do alone happens here: its own locks and outputs. Budget, screens,
timer and the end of the game are for the controller, which learns of the solve from the
node's ``solved_locally`` event when it is back.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config import rules
from config.game import Game, NodePart, PropAction, Puzzle
from nodes.datadir import write_atomically


@dataclass(frozen=True, slots=True)
class GameView:
    """What the node knows of the game, from the controller's last status."""

    running: bool = False
    session: str | None = None
    parcours: str | None = None
    solved: frozenset[str] = field(default_factory=frozenset)


log = logging.getLogger(__name__)
#: while a game runs, the saved view is refreshed this often (its age bounds the trust)
VIEW_REFRESH_S = 60.0
#: across a reboot of the machine only the wall clock spans the gap; this much error on it
#: (a clock stepped by a time server, or not set yet on a Pi without RTC) is tolerated
WALL_CLOCK_SLACK_S = 2 * 3600.0
_OS_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True, slots=True)
class Stamp:
    """When, on both clocks, and in which boot of the machine (monotonic time is only
    comparable within one boot of the kernel)."""

    wall: float
    mono: float
    os_boot: str | None

    @classmethod
    def now(cls) -> Stamp:
        try:
            os_boot: str | None = _OS_BOOT_ID.read_text(encoding="ascii").strip() or None
        except OSError:
            os_boot = None
        return cls(wall=time.time(), mono=time.monotonic(), os_boot=os_boot)


class SavedView:
    """The last game view the controller gave, kept in the node's data dir.

    A node that restarts while the controller is away (a controller crash leaves a last
    will that says nothing of the game) reads it back, so it still knows a game runs and
    plays its local puzzles. The file is written atomically only when the view changes,
    and at most every :data:`VIEW_REFRESH_S` while a game runs (so its age says when the
    controller was last heard). :meth:`load` trusts it only if it is younger than
    *max_age_s* (a game's length: a controller gone longer than that cannot have a game
    running).

    Its age is measured on the monotonic clock when the machine has not rebooted since
    (an agent restarted, killed, updated): a step of the wall clock changes nothing. After
    a reboot only the wall clock spans the gap, and it may have been stepped meanwhile (a
    Pi has no RTC): a view up to :data:`WALL_CLOCK_SLACK_S` outside ``[0, max_age_s]`` is
    still trusted, with a warning. Trusting a stale view costs little (a node on its own
    only ever opens locks); distrusting a live one leaves players stuck.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: tuple[Any, ...] | None = None
        self._written_at = 0.0

    def save(self, view: GameView, *, controller_boot: str | None, at: Stamp | None = None) -> bool:
        """Write *view* if it changed (or is due a refresh); return True if written."""
        key = (view.running, view.session, view.parcours, tuple(sorted(view.solved)))
        now = time.monotonic()
        if key == self._written and not (view.running and now - self._written_at >= VIEW_REFRESH_S):
            return False
        at = at or Stamp.now()
        data = {"v": 1, "running": view.running, "session": view.session,
                "parcours": view.parcours, "solved": sorted(view.solved),
                "controller_boot": controller_boot, "heard_at": at.wall, "heard_mono": at.mono,
                "os_boot": at.os_boot}
        try:
            write_atomically(self.path, json.dumps(data))
        except OSError:
            log.exception("saving the game view to %s failed", self.path)
            return False
        self._written, self._written_at = key, now
        return True

    def load(self, *, max_age_s: float, at: Stamp | None = None) -> GameView | None:
        """The saved view if it says a game runs and is recent enough; else None."""
        at = at or Stamp.now()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            same_boot = data.get("os_boot") is not None and data.get("os_boot") == at.os_boot \
                and data.get("heard_mono") is not None
            age = at.mono - float(data["heard_mono"]) if same_boot else at.wall - float(data["heard_at"])
            view = GameView(running=bool(data["running"]), session=data.get("session"),
                            parcours=data.get("parcours"),
                            solved=frozenset(str(s) for s in data.get("solved") or ()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("saved game view %s unreadable: %s", self.path, exc)
            return None
        if not view.running:
            return None
        if 0 <= age <= max_age_s:
            return view
        if not same_boot and -WALL_CLOCK_SLACK_S <= age <= max_age_s + WALL_CLOCK_SLACK_S:
            log.warning("saved game view %s: heard %.0f s ago by the wall clock, across a reboot "
                        "(the clock may have been stepped); trusted", self.path, age)
            return view
        log.warning("saved game view %s not trusted: heard %.0f s ago by the %s clock (limit %.0f s)",
                    self.path, age, "monotonic" if same_boot else "wall", max_age_s)
        return None


class LocalPuzzles:
    """The local puzzles of one node and their progress while the node is on its own.

    >>> local = LocalPuzzles(game=game, node_id="hall")
    >>> view = GameView(running=True, parcours="primo")
    >>> [p.id for p in local.on_event(prop="mailbox_keypad", event="code", value="0412", view=view)]
    ['mailbox']
    """

    def __init__(self, *, game: Game | NodePart, node_id: str) -> None:
        self.node_id = node_id
        self.puzzles: list[Puzzle] = [p for p in game.puzzles if p.local and p.room == node_id]
        self.progress: dict[str, list[int]] = {}
        self.solved_here: set[str] = set()
        self._session: str | None = None
        self._triggers = rules.Triggers(self.puzzles)

    def __bool__(self) -> bool:
        return bool(self.puzzles)

    def restart(self) -> None:
        """Forget partial progress (the controller's own progress is not known here)."""
        self.progress.clear()

    def new_session(self, session: str | None) -> None:
        """A new game: nothing is solved here any more."""
        if session != self._session:
            self._session = session
            self.progress.clear()
            self.solved_here.clear()

    # -- evaluation -----------------------------------------------------------------
    def available(self, puzzle: Puzzle, view: GameView) -> bool:
        return rules.available(puzzle, view.solved | self.solved_here, view.parcours)

    def on_event(self, *, prop: str, event: str, value: Any, view: GameView) -> list[Puzzle]:
        """Feed one event of this node; return the puzzles it solves (now marked solved)."""
        solved: list[Puzzle] = []
        seen = rules.Event.of(self.node_id, prop, event, value)
        for puzzle in self._triggers(seen):
            if not self.available(puzzle, view):
                continue
            progress = rules.advance(puzzle, self.progress.get(puzzle.id, []), seen, view.parcours)
            if rules.complete(puzzle, progress):
                self.solved_here.add(puzzle.id)
                self.progress.pop(puzzle.id, None)
                solved.append(puzzle)
            else:
                self.progress[puzzle.id] = progress
        return solved

    @staticmethod
    def prop_actions(puzzle: Puzzle) -> list[PropAction]:
        """The puzzle's actions a node can do itself: on its own props."""
        return [a for a in puzzle.actions if isinstance(a, PropAction)]

