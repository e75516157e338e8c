"""The engine on its own: no broker, a fake clock, events fed directly."""

from __future__ import annotations

import pytest

from config.loader import SHIPPED_GAME, load_game, parse_game
from controller.engine import Engine, EngineError, Phase, PropCommand, ScreenMessage
from controller.record import from_record, to_record
from tests.solutions import FINAL_BUDGET, events


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(clock: FakeClock) -> Engine:
    return Engine(load_game(SHIPPED_GAME), clock=clock)


def test_start_locks_every_maglock(engine: Engine):
    effects = engine.start(parcours="primo", players=4)
    locks = {(e.node, e.prop) for e in effects if isinstance(e, PropCommand) and e.action == "lock"}
    every_maglock = {(n.id, p.id) for n in engine.game.nodes for p in n.props if p.kind == "maglock"}
    assert locks == every_maglock
    assert len(locks) == 7
    assert engine.phase == Phase.RUNNING
    assert engine.budget == 1450


def test_right_code_solves_mailbox_and_unlocks_it(engine: Engine):
    engine.start(parcours="primo", players=4)
    effects = engine.on_event("hall", "mailbox_keypad", "code", "0412")
    assert PropCommand("hall", "mailbox_lock", "unlock") in effects
    assert any(isinstance(e, ScreenMessage) for e in effects)
    assert engine.puzzles["mailbox"].status == "solved"
    assert engine.puzzles["front_door"].status == "available"


def test_wrong_code_changes_nothing(engine: Engine):
    engine.start(parcours="primo", players=4)
    assert engine.on_event("hall", "mailbox_keypad", "code", "9999") == []
    assert engine.puzzles["mailbox"].status == "available"


def test_code_differs_per_parcours(engine: Engine):
    engine.start(parcours="locataire", players=2)
    assert engine.on_event("hall", "mailbox_keypad", "code", "0412") == []
    assert engine.on_event("hall", "mailbox_keypad", "code", "1507") != []
    assert engine.budget == 1380


def test_puzzle_not_available_ignores_input_and_says_so(engine: Engine):
    engine.start(parcours="primo", players=4)
    assert engine.on_event("entree", "door_keypad", "code", "3179") == []
    assert engine.puzzles["front_door"].status == "locked"
    assert any(entry["kind"] == "ignored" for entry in engine.log)


@pytest.mark.parametrize("parcours", ["primo", "locataire"])
def test_play_through_wins_with_the_expected_budget_and_opens_every_lock(engine: Engine, parcours: str):
    engine.start(parcours=parcours, players=4)
    effects = []
    for node, prop, event, value in events(parcours):
        assert engine.phase == Phase.RUNNING, f"ended early at {node}.{prop}"
        effects = engine.on_event(node, prop, event, value)
    assert engine.phase == Phase.WON
    assert all(p.status == "solved" for p in engine.puzzles.values())
    unlocked = {(e.node, e.prop) for e in effects if isinstance(e, PropCommand) and e.action == "unlock"}
    assert unlocked == {(n.id, p.id) for n in engine.game.nodes for p in n.props if p.kind == "maglock"}
    assert engine.budget == FINAL_BUDGET[parcours]
    assert engine.budget_history[0].label == "Loyer payé"


def test_ingredients_in_the_wrong_order_do_not_make_the_product(engine: Engine):
    engine.start(parcours="primo", players=4)
    for node, prop, event, value in events("primo")[:4]:  # up to the kitchen hood
        engine.on_event(node, prop, event, value)
    for uid in ("04b2c3d4", "04a1b2c3", "04c3d4e5"):
        engine.on_event("cuisine", "ingredients", "tag", uid)
    assert engine.puzzles["cleaning_product"].status == "available"


def test_time_up_loses_and_opens_every_lock(engine: Engine, clock: FakeClock):
    engine.start(parcours="primo", players=4)
    clock.t += 59 * 60
    assert engine.tick() == []
    clock.t += 61
    effects = engine.tick()
    assert engine.phase == Phase.LOST
    assert {e.action for e in effects if isinstance(e, PropCommand)} == {"unlock"}


def test_pause_stops_the_clock_and_added_time_counts(engine: Engine, clock: FakeClock):
    engine.start(parcours="primo", players=4)
    clock.t += 600
    engine.pause()
    clock.t += 3000
    assert engine.remaining() == pytest.approx(3000)
    engine.resume()
    engine.add_time(300)
    engine.add_time(-120)
    assert engine.remaining() == pytest.approx(3180)


def test_orders_that_do_not_fit_the_phase_are_refused(engine: Engine):
    with pytest.raises(EngineError):
        engine.pause()
    engine.start(parcours="primo", players=4)
    with pytest.raises(EngineError):
        engine.start(parcours="primo", players=4)
    with pytest.raises(EngineError):
        engine.force_solve("nope")


def test_too_many_players_refused(engine: Engine):
    with pytest.raises(EngineError, match="il faut de 1 à 6 joueurs") as info:
        engine.start(parcours="primo", players=7)
    assert info.value.en == "at most 6 players, children included: players must be 1 to 6"
    assert engine.phase == Phase.IDLE


def test_force_solve_runs_the_puzzle_actions(engine: Engine):
    engine.start(parcours="primo", players=4)
    effects = engine.force_solve("mailbox")
    assert PropCommand("hall", "mailbox_lock", "unlock") in effects
    assert engine.puzzles["mailbox"].solved_by == "game master"


def test_events_outside_a_running_game_are_ignored(engine: Engine):
    assert engine.on_event("hall", "mailbox_keypad", "code", "0412") == []


def test_reset_puzzle_puts_an_output_back_to_its_start_state(engine: Engine):
    # « Le bruit » switches the music off; reset, the music plays again (initial_value: true)
    engine.start(parcours="primo", players=2)
    engine.force_solve("noise")
    effects = engine.reset_puzzle("noise")
    assert PropCommand("chambre", "speaker", "on") in effects
    # « Aérer en cuisinant » switches the hood on; reset, it is off again (its start state)
    engine.force_solve("kitchen_hood")
    assert PropCommand("cuisine", "hood", "off") in engine.reset_puzzle("kitchen_hood")


SEQUENCE_GAME = """\
apartment: {id: seq, name: Suite}
nodes:
  - id: hall
    label: Hall
    props:
      - {id: keypad, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20], code_length: 1}
      - {id: box, kind: maglock, relay: 17}
puzzles:
  - {id: steps, label: Suite, theme: diy, room: hall, final: true,
     solve: {when: sequence, of: [STEPS]},
     actions: [{do: unlock, target: hall.box}]}
"""


def sequence_game(*codes: str):
    steps = ", ".join(f'{{prop: hall.keypad, event: code, equals: "{c}"}}' for c in codes)
    return parse_game(SEQUENCE_GAME.replace("STEPS", steps)).game


def test_a_session_resumed_with_a_shorter_sequence_in_the_game_file_still_plays(clock: FakeClock):
    # Progress saved for three steps, the file edited down to one before the restart: the
    # resumed engine must neither crash on the next key nor leave the puzzle unsolvable.
    before = Engine(sequence_game("7", "8", "9"), clock=clock, wall=lambda: 0.0)
    before.start(parcours="primo", players=2)
    for code in ("7", "8"):
        before.on_event("hall", "keypad", "code", code)
    record = to_record(before)
    assert record["puzzles"]["steps"]["progress"] == [0, 1]
    after = from_record(sequence_game("7"), record, clock=clock, wall=lambda: 0.0)
    assert after.on_event("hall", "keypad", "code", "5") == []
    assert PropCommand("hall", "box", "unlock") in after.on_event("hall", "keypad", "code", "7")
    assert after.phase == Phase.WON
