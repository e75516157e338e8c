"""The controller's side of node autonomy (see ``nodes/autonomy.py`` and docs/reliability.md).

Two things:

* :func:`status_fields` — what the controller's status tells the nodes besides
  online/session/running: the parcours and the solved puzzles (so a node on its own
  plays the right puzzles with the right answers), and per node the last event handled
  (``acks``: the node forgets the events up to there; it sends the others again).
* :func:`local_solve` — a node solved a local puzzle while the controller was away and
  says so with a ``solved_locally`` event (replayed when the controller is back). The
  puzzle is force-solved in the engine (audited as done by the node), and its commands
  to that node's props are *not* sent again: the node already did them. Steady ones
  (``unlock``, ``on``, ``off``) become the desired state, so reconciliation agrees with
  what the node reports; a ``lock`` the node refused to do on its own is sent now.
"""

from __future__ import annotations

from typing import Any

from config import rules
from config.game import PropAction
from controller.engine import Effect, Engine, EngineError, PropCommand, PuzzleStatus
from controller.registry import Registry
from protocol.contract import EventAck

#: commands that leave an output in a state (the node's own, when it solved locally)
STEADY = frozenset({"unlock", "on", "off"})


def status_fields(*, engine: Engine, registry: Registry) -> dict[str, Any]:
    """Extra ``ControllerStatus`` fields: ``parcours``, ``solved``, ``acks``."""
    playing = engine.session_id is not None
    return {
        "parcours": engine.parcours if playing else None,
        "solved": sorted(pid for pid, st in engine.puzzles.items()
                         if st.status == PuzzleStatus.SOLVED) if playing else [],
        "acks": {n.id: EventAck(boot_id=n.boot_id, seq=n.last_seq)
                 for n in registry.nodes.values() if n.boot_id is not None},
    }


def local_solve(engine: Engine, *, node: str, puzzle_id: Any) -> tuple[list[Effect], list[PropCommand]]:
    """Solve *puzzle_id* as *node* did on its own; return (effects to run, commands done).

    Raise :class:`EngineError` if it is not a local puzzle of that node, or the game does
    not allow it (not playing, not in the parcours). Solving an already solved puzzle
    returns nothing to do.
    """
    puzzle = engine.game.puzzle(puzzle_id) if isinstance(puzzle_id, str) else None
    if puzzle is None or not puzzle.local or puzzle.room != node:
        msg = f"node {node} cannot solve {puzzle_id!r} on its own: not one of its local puzzles"
        raise EngineError(msg)
    if engine.puzzles[puzzle.id].status == PuzzleStatus.SOLVED:
        return [], []
    # What the node did itself: its own props, every action it does alone (never a lock).
    done_by_node = {(node, a.target.partition(".")[2], a.command)
                    for a in puzzle.actions if isinstance(a, PropAction) and rules.done_alone(a)}
    effects = engine.force_solve(puzzle.id, who=f"node {node} (offline)")
    to_run: list[Effect] = []
    done: list[PropCommand] = []
    for effect in effects:
        if isinstance(effect, PropCommand) and (effect.node, effect.prop, effect.action) in done_by_node:
            if effect.action in STEADY:
                done.append(effect)
            continue
        to_run.append(effect)
    return to_run, done
