"""The rules the simulated apartment must keep, whatever the seed does to it.

Each rule is a function of the :class:`~simulation.observer.Observer` (what happened, the
apartment now) that reports what breaks it with ``observer.fail(name, words)``. The
observer calls them after every step of the scheduler (the cheap ones, and those an event
triggers: a relay driven, an emergency button pressed, a briefing accepted) or at its
checkpoints, every half second of virtual time (:data:`CHECKPOINT`).

"Settled" is the apartment with no fault under way, every process up and connected: a
bound that counts from "settled" holds whatever the faults were, once they are over.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from config.rules import resolve
from controller.engine import PLAYING, PuzzleStatus
from props.start import off_start
from protocol.contract import node_silence_limit
from simulation.node import KEEPALIVE as NODE_KEEPALIVE

if TYPE_CHECKING:
    from controller.service import GameService
    from simulation.observer import Observer

Key = tuple[str, str]   # (node id, prop id)
#: an order for every maglock at once (the start of a check, an emergency)
ALL: Key = ("*", "*")

#: every maglock released within this long after an emergency or the end of a game, or
#: after the apartment settled (s)
RELEASE_BOUND_S = 3.0
#: the controller's view of every node is the truth this long after the apartment settled:
#: one controller heartbeat (a node's is shorter), the time for a word to cross (s)
CONVERGE_S = 2.5
#: a prop touched this recently may not be reported yet (s)
FRESH_S = 1.0
#: a node that died silently (a power cut) is seen offline this long after, at most: its
#: silence limit (1.2 × its keepalive), and a heartbeat of the controller's timer (s)
SILENCE_S = node_silence_limit(keepalive=NODE_KEEPALIVE) + 0.5


# -- safety -------------------------------------------------------------------------------
def locks_released_after_an_emergency_or_an_end(obs: Observer) -> None:
    """After an emergency (the game master's or a room's button), an abort or the end of a
    game, every maglock's relay is released (after the game master's unlock, that lock's)
    within :data:`RELEASE_BOUND_S` — counted from
    the order, or from when the apartment settled if faults were under way — unless the
    game master has ordered it locked again since (the next session's check)."""
    now = obs.scheduler.now
    keep = []
    for ob in obs.obligations:
        # released since, or a later order of the game master locks it again (a new check)
        waiting = [k for k in ob.keys if obs.last_in[k][False] < ob.at
                   and max(obs.lock_orders.get(k, -1.0), obs.lock_orders.get(ALL, -1.0)) <= ob.at]
        if not waiting or ob.void:
            continue
        since = obs.settled_since
        if since is not None and now > max(ob.at, since) + RELEASE_BOUND_S:
            obs.fail("locks_released_after_an_emergency_or_an_end",
                     f"{ob.why} at {ob.at:.3f}: still locked {RELEASE_BOUND_S} s after "
                     f"{'it' if ob.at >= since else 'the apartment settled'}: "
                     + ", ".join(f"{n}.{p}" for n, p in waiting))
            continue
        keep.append(ob)
    obs.obligations = keep


def exit_door_never_relocked_without_the_game_master(obs: Observer, key: Key) -> None:
    """An exit door, and any maglock after an emergency, is locked again only by an order
    of the game master given since it was released (a start, a check, a lock, a puzzle
    reset): never by a reboot, a restart, a late or repeated message."""
    if key not in obs.exit_doors and not obs.gm_only[key]:
        return
    ordered = max(obs.lock_orders.get(key, -1.0), obs.lock_orders.get(ALL, -1.0))
    if ordered < obs.released_at[key]:
        why = "exit door" if key in obs.exit_doors else "after an emergency"
        obs.fail("exit_door_never_relocked_without_the_game_master",
                 f"{key[0]}.{key[1]} ({why}) locked again with no order since its release at "
                 f"{obs.released_at[key]:.3f} (last locking order {ordered:.3f})")


def emergency_input_releases_at_once(obs: Observer, node: str) -> None:
    """A room's emergency button releases every maglock of its node at once, on the node
    alone: with the broker, the controller and the network doing nothing."""
    for prop_id, prop in obs.flat.nodes[node].props.items():
        if getattr(prop, "engaged", False):
            obs.fail("emergency_input_releases_at_once", f"{node}.{prop_id} still driven")


# -- correctness --------------------------------------------------------------------------
def each_solve_counted_once(obs: Observer, cause: int | None, session: str | None, puzzle: str,
                            *, stamped: bool = True) -> None:
    """A puzzle solved by the players comes from a gesture of theirs, in the session that
    gesture was made in, and one gesture solves a puzzle once (not again when its event is
    delivered twice, replayed, or read by another session). An event its node could not
    stamp with a session (it had heard of none) is applied to the session open when it
    arrives (docs/mqtt.md): for it, only "once" is checked."""
    if cause is None:
        obs.fail("each_solve_counted_once", f"{puzzle} solved in {session} by an event no gesture made")
        return
    made = obs.causes[cause]
    if stamped and made.session is not None and made.session != session:
        obs.fail("each_solve_counted_once", f"{puzzle} solved in session {session} by a gesture "
                                            f"of session {made.session} ({made.label} at {made.at:.3f})")
    if sum(1 for _s, p in obs.solves[cause] if p == puzzle) > 1:
        obs.fail("each_solve_counted_once", f"{puzzle} solved twice by one gesture ({made.label} "
                                            f"at {made.at:.3f}): {obs.solves[cause]}")


def budget_is_start_plus_solves_minus_clues(obs: Observer) -> None:
    """The budget is the parcours' start, plus the budget actions of the puzzles solved,
    minus the clues paid and, once the game is over, minus each bill its unsolved puzzles
    left unpaid and that bill's late fee: nothing counted twice, nothing lost."""
    service = obs.flat.controller.service
    if service is None or service.engine.session_id is None:
        return
    engine = service.engine
    expected = engine.budget_start
    unpaid: dict[str, int] = {}
    for puzzle in engine.game.puzzles:
        solved = engine.puzzles[puzzle.id].status == PuzzleStatus.SOLVED
        for action in puzzle.actions:
            if action.do != "budget":
                continue
            amount = int(resolve(action.amount, engine.parcours))  # type: ignore[union-attr]
            if solved:
                expected += amount
            elif action.pays is not None and engine.in_parcours(puzzle):  # type: ignore[union-attr]
                unpaid[action.pays] = unpaid.get(action.pays, 0) - amount  # type: ignore[union-attr]
    expected -= sum(c.cost for c in engine.clues if c.counts)
    budget = engine.game.apartment.budget
    if engine.settled and budget is not None:
        for obligation in budget.obligations:
            if unpaid.get(obligation.id):
                expected -= unpaid[obligation.id] + int(resolve(obligation.late_fee, engine.parcours))
    if engine.budget != expected:
        obs.fail("budget_is_start_plus_solves_minus_clues",
                 f"budget {engine.budget}, expected {expected} (history {engine.budget_history})")


def view_converges_to_the_truth(obs: Observer) -> None:
    """Once the apartment has settled for :data:`CONVERGE_S`, the controller sees every
    node as it is: online, its current boot, and the state of every prop that has not
    moved for as long."""
    service = obs.flat.controller.service
    if service is None or obs.settled_for() < CONVERGE_S:
        return
    registry = service.registry
    now = obs.scheduler.now
    for node_id, node in obs.flat.nodes.items():
        info = registry.nodes[node_id]
        core = node.core
        if core is None:
            continue
        if not info.online or info.boot_id != core.boot_id:
            obs.fail("view_converges_to_the_truth",
                     f"{node_id}: shown {'online' if info.online else 'offline'} "
                     f"({info.offline_reason}), boot {info.boot_id}; it runs boot {core.boot_id}")
            continue
        for prop_id, prop in node.props.items():
            if now - obs.moved.get((node_id, prop_id), 0.0) < CONVERGE_S:
                continue   # it moved: its news is on its way
            reported = registry.props[(node_id, prop_id)].reported
            truth = {k: v for k, v in prop.state().items() if v is not None}   # as sent
            if reported != truth:
                obs.fail("view_converges_to_the_truth",
                         f"{node_id}.{prop_id}: shown {reported}, is {truth}")


def console_confirms_only_what_relays_did(obs: Observer) -> None:
    """A lock order shows as done only once its relay really was in that state since the
    order (the console never says "open" before the relay did)."""
    controller = obs.flat.controller
    service = controller.service
    if service is None:
        return
    to_virtual = obs.scheduler.now - controller.machine.monotonic()
    for key in obs.keys:
        want = service.outputs.desired.get(key)
        if want is None or want.confirmed_at is None or want.action not in ("lock", "unlock"):
            continue
        engaged = want.action == "lock"
        ordered = want.ordered_at + to_virtual
        if obs.last_in[key][engaged] < ordered - 1e-6:
            obs.fail("console_confirms_only_what_relays_did",
                     f"{key[0]}.{key[1]}: {want.action} shown confirmed; the relay has not been "
                     f"{'driven' if engaged else 'released'} since the order at {ordered:.3f}")


def console_state_is_valid_json(obs: Observer) -> None:
    """What the game master's console is pushed (the staff snapshot) is valid JSON."""
    service = obs.flat.controller.service
    if service is None:
        return
    try:
        json.dumps(service.views.snapshot(), allow_nan=False)
    except (TypeError, ValueError) as exc:
        obs.fail("console_state_is_valid_json", str(exc))


def nothing_recorded_is_lost(obs: Observer) -> None:
    """With nothing waiting to be written, the store holds the game as the engine does:
    its solved puzzles, every audit entry, every session that ended with its result."""
    service = obs.flat.controller.service
    if service is None:
        return
    backlog = service.journal.backlog
    if backlog.waiting or backlog.failing:
        return
    _store_holds(obs, service, "nothing_recorded_is_lost", service.engine.session_id,
                 solved=_solved(service), audit=len(service.engine.audit_log), completed=obs.completed)


def nothing_recorded_is_lost_after_a_crash(obs: Observer, service: GameService) -> None:
    """A controller started again holds every session that had ended and every puzzle
    solved that its predecessor had written."""
    durable = obs.durable
    obs.durable = None
    if durable is None:
        return
    engine = service.engine
    if durable.session is not None and durable.session not in durable.completed:
        if engine.session_id != durable.session:
            obs.fail("nothing_recorded_is_lost_after_a_crash",
                     f"session {durable.session} not resumed (resumed: {engine.session_id})")
        elif not durable.solved <= _solved(service):
            obs.fail("nothing_recorded_is_lost_after_a_crash",
                     f"solved puzzles lost: {sorted(durable.solved - _solved(service))}")
    _store_holds(obs, service, "nothing_recorded_is_lost_after_a_crash", None,
                 solved=frozenset(), audit=0, completed=durable.completed)


def _store_holds(obs: Observer, service: GameService, name: str, session: str | None, *,
                 solved: frozenset[str], audit: int, completed: dict[str, str]) -> None:
    store = service.store
    if session is not None:
        row = store.session(session)
        stored = {p["puzzle_id"] for p in row["puzzles_detail"] if p["status"] == "solved"} if row else set()
        if service.engine.phase in PLAYING and not solved <= stored:
            obs.fail(name, f"session {session}: solved {sorted(solved - stored)} not in the store")
        if row is not None and len(row["audit"]) < audit:
            obs.fail(name, f"session {session}: {audit} audit entries, {len(row['audit'])} stored")
    for sid, result in completed.items():
        row = store.session(sid)
        if row is None or row["result"] != result:
            obs.fail(name, f"session {sid} ended {result}; the store says "
                           f"{row['result'] if row else 'nothing'}")


# -- readiness ----------------------------------------------------------------------------
def check_passes_only_in_start_state(obs: Observer) -> None:
    """The pre-game check lets a session start only when every prop is in its start state
    (locks locked, doors and windows shut, buttons released, no tag left, bins empty) —
    props a hand touched in the last :data:`FRESH_S` aside (their news is on its way), and
    the props of a node that died, was cut off or stalled in the last :data:`SILENCE_S`
    (not known silent yet)."""
    now = obs.scheduler.now
    for node_id, node in obs.flat.nodes.items():
        if now - obs.down_at.get(node_id, -99.0) < SILENCE_S:
            continue   # a node that died is taken for alive until it has been silent that long
        for prop_id, prop in node.props.items():
            if now - obs.touched.get((node_id, prop_id), -99.0) < FRESH_S:
                continue
            off = off_start(prop.config, prop.state())
            if off is not None:
                obs.fail("check_passes_only_in_start_state",
                         f"briefing accepted with {node_id}.{prop_id} off its start state: "
                         f"{off.instruction.text} ({prop.state()})")


def nothing_crashes(obs: Observer) -> None:
    """No message, order or tick raises in the controller (it would be logged and counted
    as a handler error, the game going on without what it should have done)."""
    service = obs.flat.controller.service
    if service is not None and service.bridge.metrics["handler_errors"]:
        obs.fail("nothing_crashes", f"{service.bridge.metrics['handler_errors']} handler errors")
        service.bridge.metrics["handler_errors"] = 0


def _solved(service: GameService) -> frozenset[str]:
    return frozenset(p for p, st in service.engine.puzzles.items() if st.status == PuzzleStatus.SOLVED)


#: checked at every checkpoint
CHECKPOINT: list[Callable[[Observer], None]] = [
    budget_is_start_plus_solves_minus_clues, view_converges_to_the_truth,
    console_confirms_only_what_relays_did, console_state_is_valid_json, nothing_recorded_is_lost,
    nothing_crashes,
]
