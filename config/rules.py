"""The rules of play, one copy for the controller's engine and for a node on its own.

Pure functions of the game file's models (:mod:`config.game`): no I/O, no clock, no state
of their own. ``controller/engine.py`` (the game as the controller runs it) and
``nodes/autonomy.py`` (a node's local puzzles while the controller is away) both decide
with these, so a puzzle is solved by the same rule wherever it is solved.

* **Matching** (:func:`matches`): an event meets a condition when it comes from the
  condition's prop with its event type, and its value ``equals`` the value, is one of
  ``any_of``, is a number at least ``min_value`` (each only when given).
* **Progress** (:func:`advance`, :func:`complete`): ``when: all`` — every condition met,
  in any order; ``when: sequence`` — in order, a wrong step starts again (and counts as
  the first step if it is one). Only events on a prop and type the puzzle names touch it.
* **Availability** (:func:`available`): a puzzle is open to the players when it is in the
  parcours, not solved, and what it requires is solved (all of ``requires: [a, b]``, one
  of ``requires: {any: [a, b]}``: :meth:`config.game.Puzzle.requirements_met`).

**The parcours** is a parameter of every rule. ``None`` says it is not known: a node that
never heard the controller announce one. Then every puzzle is in it and a value of
*either* parcours is accepted — better a box opened with the other parcours' code than a
room stuck without its controller. The engine always passes the one it plays.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple

from config.game import PARCOURS, Condition, EventCondition, PerParcours, PropAction, Puzzle


class Event(NamedTuple):
    """One prop event, as the rules see it: ``hall.keypad`` said ``code`` ``"0412"``."""

    prop: str       # node.prop
    type: str
    value: Any = None

    @classmethod
    def of(cls, node: str, prop: str, type_: str, value: Any) -> Event:
        return cls(f"{node}.{prop}", type_, value)


# -- values per parcours ------------------------------------------------------------------
def resolve(setting: Any, parcours: str) -> Any:
    """A setting's value in *parcours* (a :class:`PerParcours`' own, else the setting)."""
    return getattr(setting, parcours) if isinstance(setting, PerParcours) else setting


def values(setting: Any, parcours: str | None) -> list[Any]:
    """The values a setting may take in *parcours*: one, or both when it is not known."""
    if not isinstance(setting, PerParcours):
        return [setting]
    if parcours is not None:
        return [resolve(setting, parcours)]
    return [resolve(setting, p) for p in PARCOURS]


def in_parcours(puzzle: Puzzle, parcours: str | None) -> bool:
    """Whether *puzzle* is played in *parcours* (every puzzle is, when it is not known)."""
    return parcours is None or parcours in puzzle.parcours


# -- matching ------------------------------------------------------------------------------
def names(cond: EventCondition, event: Event) -> bool:
    """Whether *cond* is about *event*'s prop and type (whatever its value)."""
    return cond.prop == event.prop and cond.event == event.type


def matches(cond: EventCondition, event: Event, parcours: str | None) -> bool:
    """Does *event* meet *cond* in *parcours*? A value per parcours set to ``null`` in the
    file means "any value" in that parcours; ``min_value`` wants a number."""
    if not names(cond, event):
        return False
    value = event.value
    if cond.equals is not None:
        equals = values(cond.equals, parcours)
        if None not in equals and value not in equals:
            return False
    if cond.any_of is not None:
        any_of = values(cond.any_of, parcours)
        if None not in any_of and not any(isinstance(c, list) and value in c for c in any_of):
            return False
    if cond.min_value is not None:
        return isinstance(value, int | float) and value >= cond.min_value
    return True


# -- progress ------------------------------------------------------------------------------
def advance(puzzle: Puzzle, progress: Sequence[int], event: Event, parcours: str | None) -> list[int]:
    """*puzzle*'s progress (indices of its conditions met) after *event*.

    An event on no prop and type the puzzle names leaves it as it was. Indices that do not
    fit the conditions (a record written for another game file) are dropped.
    """
    solve = puzzle.solve
    conds = solve.of if isinstance(solve, Condition) else (solve,)
    for cond in conds:
        if names(cond, event):
            break
    else:
        return list(progress)
    done = [i for i in progress if 0 <= i < len(conds)]
    if isinstance(solve, Condition) and solve.when == "sequence":
        step = len(done)
        if step < len(conds) and matches(conds[step], event, parcours):
            return [*done, step]
        # a wrong step: start again, this event being the first step if it is one
        return [0] if matches(conds[0], event, parcours) else []
    for i, cond in enumerate(conds):
        if i not in done and matches(cond, event, parcours):
            done.append(i)
    return done


def complete(puzzle: Puzzle, progress: Sequence[int]) -> bool:
    """Whether *progress* meets every condition of *puzzle* (a solve with none is never met)."""
    count = len(puzzle.solve.of) if isinstance(puzzle.solve, Condition) else 1
    return count > 0 and len(progress) >= count and set(range(count)) <= set(progress)


# -- availability --------------------------------------------------------------------------
def available(puzzle: Puzzle, solved: Collection[str], parcours: str | None) -> bool:
    """Whether the players can solve *puzzle* now: in the parcours, not solved yet, and what
    it requires is solved (*solved*: the ids of every puzzle solved so far)."""
    return (puzzle.id not in solved and in_parcours(puzzle, parcours)
            and puzzle.requirements_met(solved))


def done_alone(action: PropAction) -> bool:
    """Whether a node playing a local puzzle on its own does *action*: everything but a
    ``lock`` — with the controller away, only the emergency input could open it again."""
    return action.do != "lock"


class Triggers:
    """The puzzles an event may move, found at once: ``(node.prop, type)`` → the puzzles
    with a condition on it, in the game file's order (the order they are judged in)."""

    def __init__(self, puzzles: Iterable[Puzzle]) -> None:
        self._index: dict[tuple[str, str], list[Puzzle]] = {}
        for puzzle in puzzles:
            for key in dict.fromkeys((c.prop, c.event) for c in puzzle.conditions()):
                self._index.setdefault(key, []).append(puzzle)

    def __call__(self, event: Event) -> list[Puzzle]:
        return self._index.get((event.prop, event.type), [])
