"""The controller's side of node autonomy: what its status tells nodes, and local solves."""

from __future__ import annotations

import pytest

from controller.autonomy import local_solve, status_fields
from controller.engine import Engine, EngineError, PropCommand
from controller.registry import Registry
from protocol.contract import ControllerStatus, EventAck, NodeStatus, PropEvent
from tests.nodes.test_autonomy import GAME


def started(parcours: str = "primo") -> Engine:
    engine = Engine(GAME, clock=lambda: 0.0, wall=lambda: 0.0)
    engine.start(parcours=parcours, players=2)
    return engine


def test_a_local_solve_is_recorded_as_the_nodes_and_does_not_redo_its_unlock():
    engine = started()
    to_run, done = local_solve(engine, node="hall", puzzle_id="code")
    assert done == [PropCommand("hall", "box", "unlock")]
    assert not any(isinstance(e, PropCommand) for e in to_run)
    assert engine.puzzles["code"].status == "solved"
    assert engine.puzzles["code"].solved_by == "node hall (offline)"
    assert engine.budget == engine.budget_start - 10
    assert engine.audit_log[-1]["who"] == "node hall (offline)"
    assert local_solve(engine, node="hall", puzzle_id="code") == ([], []), "applied once"


def test_a_lock_the_node_would_not_do_alone_is_sent_by_the_controller():
    engine = started()
    to_run, done = local_solve(engine, node="hall", puzzle_id="both")
    assert done == []
    assert PropCommand("hall", "box", "lock") in to_run


@pytest.mark.parametrize(("node", "puzzle"), [("hall", "final"), ("other", "code"), ("hall", "nope"),
                                              ("hall", 3)])
def test_only_a_nodes_own_local_puzzles_may_be_solved_that_way(node, puzzle):
    with pytest.raises(EngineError):
        local_solve(started(), node=node, puzzle_id=puzzle)


def test_status_fields_tell_the_game_and_the_last_event_handled_per_node():
    engine, registry = started("locataire"), Registry(GAME)
    registry.on_status("hall", NodeStatus(online=True, boot_id="b1"))
    registry.on_event("hall", PropEvent(boot_id="b1", seq=1, type="code", ts=1.0))
    local_solve(engine, node="hall", puzzle_id="code")
    fields = status_fields(engine=engine, registry=registry)
    assert fields == {"parcours": "locataire", "solved": ["code"],
                      "acks": {"hall": EventAck(boot_id="b1", seq=1)}}
    # and they fit the contract
    ControllerStatus(online=True, boot_id="c", **fields)
