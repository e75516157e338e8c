"""The month's bills (``apartment.budget.obligations``): what is due is due.

On the shipped game: a group that leaves the electricity bill and the insurance unpaid is
charged them at the end, with their late fees, once; it ends poorer than a perfect game.
The charge survives a controller restart (the record carries it) and is never made twice;
the debrief says what was charged and why. Then the game file's checks on obligations, and
what « Nouvelle session » leaves of the last game (nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.game import Game, semantic_issues
from config.loader import SHIPPED_GAME, GameConfigError, load_game, parse_game
from controller.debrief import debrief
from controller.engine import Engine, LineKind, Phase, month_figures
from controller.record import from_record, history_rows, to_record
from controller.store import SCHEMA_VERSION, Store
from tests.controller.conftest import FakeClocks
from tests.solutions import FINAL_BUDGET, events

PERFECT = FINAL_BUDGET["primo"]          # 857 €
#: what the group skipping two bills ended on, unpaid bills never counted (the issue's
#: 977 €): rent paid, electricity and insurance never, the deposit forced, a 10 € clue,
#: the way out's +10 €
SKIPPER_BEFORE_END = 977
#: the same before the way out
SKIPPER_PLAYING = SKIPPER_BEFORE_END - 10
#: electricity and water 115 € + 10 € late fee, insurance 15 € + 10 € late fee
SKIPPER_CHARGES = 115 + 10 + 15 + 10


@pytest.fixture
def shipped() -> Engine:
    clocks = FakeClocks()
    return Engine(load_game(SHIPPED_GAME), clock=clocks.monotonic, wall=clocks.wall)


def skip_two_bills(engine: Engine) -> None:
    """primo: everything but the electricity bill and the insurance, then the game master
    forces the deposit and the way out."""
    engine.start(parcours="primo", players=4)
    for node, prop, event, value in events("primo"):
        if (node, prop) in {("sejour", "budget_keypad"), ("chambre", "documents")}:
            continue   # the bills: the budget keypad, the insurance certificate
        if (node, prop) == ("poubelles", "bins"):
            continue   # the exit: below, by the game master
        engine.on_event(node, prop, event, value)
    engine.send_clue(puzzle="household_budget", index=1)   # 10 €
    engine.force_solve("deposit")


def lines(engine: Engine, kind: LineKind) -> list[tuple[str | None, int]]:
    return [(b.obligation, b.amount) for b in engine.budget_history if b.kind == kind]


def test_bills_left_unpaid_are_charged_at_the_end_with_their_late_fees(shipped: Engine):
    skip_two_bills(shipped)
    assert shipped.budget == SKIPPER_PLAYING
    bills = {b.id: b for b in shipped.bills()}
    assert {k: b.status for k, b in bills.items()} == {"rent": "paid", "energy": "due", "insurance": "due"}
    assert (bills["energy"].unpaid, bills["insurance"].unpaid, bills["rent"].unpaid) == (115, 15, 0)
    assert not lines(shipped, LineKind.CHARGED)                   # nothing charged while playing

    shipped.force_solve("waste_sorting")                           # the way out: won
    assert shipped.phase == Phase.WON
    assert shipped.budget == SKIPPER_BEFORE_END - SKIPPER_CHARGES < PERFECT
    assert lines(shipped, LineKind.CHARGED) == [("energy", -115), ("insurance", -15)]
    assert lines(shipped, LineKind.LATE_FEE) == [("energy", -10), ("insurance", -10)]
    labels = [b.label for b in shipped.budget_history if b.kind == LineKind.LATE_FEE]
    assert labels[0] == "Électricité et eau : relance du fournisseur, frais de retard"
    assert {b.id: b.status for b in shipped.bills()} == {"rent": "paid", "energy": "charged",
                                                         "insurance": "charged"}
    # the month in three figures adds up
    assert shipped.month()["left"] == shipped.budget
    assert shipped.month()["income"] == 1450 + 15 + 12 + 20 + 100 + 10


def test_a_perfect_game_pays_everything_and_is_charged_nothing(shipped: Engine):
    shipped.start(parcours="locataire", players=2)
    for node, prop, event, value in events("locataire"):
        shipped.on_event(node, prop, event, value)
    assert shipped.phase == Phase.WON and shipped.budget == FINAL_BUDGET["locataire"]
    assert {b.status for b in shipped.bills()} == {"paid"}
    assert not lines(shipped, LineKind.CHARGED) and not lines(shipped, LineKind.LATE_FEE)


@pytest.mark.parametrize("end", ["time_up", "abort"])
def test_every_end_charges_what_is_due(end: str):
    clocks = FakeClocks()
    engine = Engine(load_game(SHIPPED_GAME), clock=clocks.monotonic, wall=clocks.wall)
    engine.start(parcours="primo", players=3)
    if end == "time_up":
        clocks.advance(3601)
        engine.tick()
        assert engine.phase == Phase.LOST
    else:
        engine.abort()
    # nothing was paid: rent, electricity and water, insurance, and their fees
    assert engine.budget == 1450 - (620 + 30) - (115 + 10) - (15 + 10)
    assert len(lines(engine, LineKind.CHARGED)) == 3


def test_charged_once_and_resumed_across_a_controller_restart():
    clocks = FakeClocks()
    game = load_game(SHIPPED_GAME)
    engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
    skip_two_bills(engine)
    # the controller restarts in the middle of the game: nothing charged yet, nothing lost
    engine = from_record(game, to_record(engine), clock=clocks.monotonic, wall=clocks.wall)
    assert not engine.settled and engine.budget == SKIPPER_PLAYING
    clocks.advance(3601)
    engine.tick()                                              # time is up on the new one
    assert engine.phase == Phase.LOST
    after_end = engine.budget
    assert after_end == SKIPPER_PLAYING - SKIPPER_CHARGES
    # …and restarts again after the end: the charge is in the record, never made twice
    record = to_record(engine)
    assert record["settled"] is True
    again = from_record(game, record, clock=clocks.monotonic, wall=clocks.wall)
    assert again.settled and again.budget == after_end
    assert {b.id: b.status for b in again.bills()}["energy"] == "charged"
    again.tick()
    again.debrief()
    assert again.budget == after_end
    assert len(lines(again, LineKind.CHARGED)) == 2 and len(lines(again, LineKind.LATE_FEE)) == 2


def test_the_debrief_explains_the_bills_charged(tmp_path: Path):
    clocks = FakeClocks()
    game = load_game(SHIPPED_GAME)
    engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
    skip_two_bills(engine)
    engine.force_solve("waste_sorting")
    store = Store(tmp_path / "escape.db")
    try:
        store.save_session(to_record(engine), history_rows(engine), engine.take_journal())
        d = debrief(store.session(engine.session_id), game)
    finally:
        store.close()
    bills = {b["id"]: b for b in d["budget"]["bills"]}
    assert bills["rent"]["status"] == "paid" and bills["rent"]["paid"] == 620
    energy = bills["energy"]
    assert (energy["status"], energy["charged"], energy["late_fee"]) == ("charged", 115, 10)
    assert energy["late_fee_label"] == "relance du fournisseur, frais de retard"
    assert "chèque énergie" in energy["consequence"] and energy["consequence_en"]
    assert d["budget"]["late"] == SKIPPER_CHARGES
    assert d["budget"]["final"] == SKIPPER_BEFORE_END - SKIPPER_CHARGES
    kinds = [(line["kind"], line["obligation"]) for line in d["budget"]["history"][-4:]]
    assert kinds == [("charged", "energy"), ("late_fee", "energy"),
                     ("charged", "insurance"), ("late_fee", "insurance")]
    assert d["budget"]["history"][-1]["balance"] == d["budget"]["final"]
    # the lines in English too, as stored (a participant who reads little French)
    assert [line["label_en"] for line in d["budget"]["history"][-4:-2]] == [
        "Paid late: Electricity and water", "Electricity and water: supplier's reminder, late fees"]
    assert d["budget"]["history"][0]["label_en"] == "Rent paid"
    assert d["budget"]["month"]["left"] == d["budget"]["final"]


def test_a_store_of_the_previous_schema_is_migrated_and_keeps_its_lines(tmp_path: Path):
    import sqlite3

    path = tmp_path / "escape.db"
    Store(path).close()
    db = sqlite3.connect(path)   # as the previous controller left it: no bill columns
    db.execute("DROP TABLE budget_lines")
    db.execute("CREATE TABLE budget_lines (session_id TEXT NOT NULL, seq INTEGER NOT NULL, at_s REAL "
               "NOT NULL, amount INTEGER NOT NULL, label TEXT NOT NULL, puzzle TEXT, "
               "PRIMARY KEY (session_id, seq))")
    db.execute("INSERT INTO budget_lines VALUES ('old', 0, 1.0, -620, 'Loyer payé', 'front_door')")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    Store(path).close()          # opened by this controller: migrated
    db = sqlite3.connect(path)
    try:
        columns = [r[1] for r in db.execute("PRAGMA table_info(budget_lines)")]
        assert columns[-3:] == ["obligation", "kind", "label_en"]
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION   # every later step too
        assert db.execute("SELECT label, kind FROM budget_lines").fetchone() == ("Loyer payé", None)
    finally:
        db.close()


def test_a_cancelled_payment_is_money_not_spent():
    assert month_figures(1000, [(-620, "paid"), (620, "cancel"), (15, None)]) == {
        "income": 1015, "spent": 0, "left": 1015}
    assert month_figures(1000, [(100, None), (-100, "cancel")]) == {"income": 1000, "spent": 0, "left": 1000}


# -- « Nouvelle session »: nothing of the last group's game is left ---------------------------
def test_a_new_session_starts_from_the_full_time_and_the_months_budget(shipped: Engine):
    skip_two_bills(shipped)
    shipped.send_clue(text="Regardez sous le tapis")
    shipped.add_time(120)
    shipped.abort()
    shipped.reset()
    assert shipped.phase == Phase.IDLE and shipped.session_id is None
    assert shipped.remaining() == shipped.duration == 3600
    assert (shipped.budget, shipped.budget_start, shipped.budget_history) == (1450, 1450, [])
    assert shipped.clues == [] and shipped.messages == [] and shipped.audit_log == []
    assert {st.status for st in shipped.puzzles.values()} == {"locked"}
    assert {b.status for b in shipped.bills()} == {"due"} and not shipped.settled
    assert shipped.month() == {"income": 1450, "spent": 0, "left": 1450}


# -- the game file ---------------------------------------------------------------------------
GAME = """\
apartment:
  id: bills
  name: Factures
  budget:
    start: 1000
    obligations:
      - {id: rent, label: Loyer, late_fee: {primo: 30, locataire: 20}}
      - {id: rent, label: Encore le loyer}
      - {id: water, label: Eau}
nodes:
  - id: hall
    label: Hall
    props:
      - {id: bell, kind: button, pin: 22}
puzzles:
  - id: pay
    label: Payer
    theme: budget
    room: hall
    solve: {when: event, prop: hall.bell, event: press}
    actions:
      - {do: budget, amount: -500, label: Loyer payé, pays: rent}
      - {do: budget, amount: 10, label: Cadeau, pays: gift}
      - {do: budget, amount: 5, label: Eau, pays: water}
  - id: out
    label: Sortir
    theme: story
    room: hall
    requires: [pay]
    final: true
    parcours: [primo]
    solve: {when: event, prop: hall.bell, event: held}
"""


def issues(text: str) -> str:
    return "\n".join(i.message for i in semantic_issues(Game.model_validate(yaml.safe_load(text))))


def test_the_game_file_checks_its_obligations():
    found = issues(GAME)
    assert "duplicate obligation id 'rent'" in found
    assert "unknown obligation 'gift'" in found
    assert "a payment is a negative amount of euros" in found      # water "paid" with +5
    with pytest.raises(GameConfigError, match="unknown obligation 'gift'"):
        parse_game(GAME, source="bills.yaml")


def test_an_obligation_no_puzzle_pays_is_an_error():
    text = GAME.replace("      - {id: rent, label: Encore le loyer}\n", "").replace(
        "      - {do: budget, amount: 10, label: Cadeau, pays: gift}\n", "").replace(
        "      - {do: budget, amount: 5, label: Eau, pays: water}\n", "")
    assert "obligation 'water' is paid by no puzzle of parcours 'primo'" in issues(text)
    with pytest.raises(GameConfigError, match="late_fee"):
        parse_game(text.replace("late_fee: {primo: 30, locataire: 20}", "late_fee: -5"), source="b.yaml")
