"""The engine through a whole session, on the controller tests' own game and fake clocks:
lifecycle table, pre-game check override, timer presets, clues, overrides and their audit
log, inactivity alert, and the record a restarted controller resumes from."""

from __future__ import annotations

import json

import pytest

from config.game import Game
from controller.engine import (
    DIRECT_START_REASON,
    TRANSITIONS,
    Engine,
    EngineError,
    NotFoundError,
    Phase,
    PropCommand,
    ScreenMessage,
)
from controller.record import from_record, history_rows, to_record
from controller.views import clue_catalogue, game_view
from tests.controller.conftest import FakeClocks


@pytest.fixture
def engine(game: Game, clocks: FakeClocks) -> Engine:
    return Engine(game, clock=clocks.monotonic, wall=clocks.wall)


def running(engine: Engine, parcours: str = "primo") -> Engine:
    engine.prepare(parcours=parcours, players=4)
    engine.brief()
    engine.start()
    return engine


def actions(effects: list) -> set[tuple[str, str, str]]:
    return {(e.node, e.prop, e.action) for e in effects if isinstance(e, PropCommand)}


# -- lifecycle ----------------------------------------------------------------------------
def test_the_lifecycle_table_covers_every_phase_and_the_documented_path(engine: Engine):
    reachable = {Phase.IDLE}
    for row in TRANSITIONS:
        reachable |= {row["dest"], *row["source"]}
    assert reachable == set(Phase)
    path = ["check", "brief", "start", "pause", "resume", "abort", "debrief", "reset"]
    for trigger in path:
        assert engine.can(trigger), trigger
        engine.phase = next(r["dest"] for r in TRANSITIONS
                            if r["trigger"] == trigger and engine.phase in r["source"])
    assert engine.phase == Phase.IDLE


def test_full_session_check_briefing_run_won_debrief_idle(engine: Engine, clocks: FakeClocks):
    effects = engine.prepare(parcours="primo", players=5, children=True)
    assert engine.phase == Phase.CHECK and engine.session_id
    assert actions(effects) == {("hall", "keypad", "reset"), ("hall", "box_lock", "lock"),
                                ("salon", "door_lock", "lock"), ("salon", "lamp", "off")}
    engine.brief()
    assert engine.phase == Phase.BRIEFING
    clocks.advance(600)            # a long briefing does not eat the run's time
    engine.start()
    assert engine.remaining() == 3600
    engine.on_event("hall", "keypad", "code", "0412")
    engine.on_event("salon", "bell", "press", None)
    clocks.advance(100)
    effects = engine.on_event("hall", "keypad", "code", "9999")
    assert engine.phase == Phase.WON and engine.result == "won"
    assert {("hall", "box_lock", "unlock"), ("salon", "door_lock", "unlock")} <= actions(effects)
    engine.debrief()
    assert engine.phase == Phase.DEBRIEF
    engine.reset()
    assert engine.phase == Phase.IDLE and engine.session_id is None
    audited = [entry["action"] for kind, entry in engine.take_journal() if kind == "audit"]
    assert audited == ["check", "briefing", "start", "debrief", "reset"]


def test_briefing_needs_every_prop_ready_or_a_reason(engine: Engine):
    engine.prepare(parcours="primo", players=3)
    with pytest.raises(EngineError, match="pas prêt"):
        engine.brief(not_ready=["salon.door_lock (porte ouverte)"])
    with pytest.raises(EngineError):
        engine.brief(not_ready=["salon.door_lock"], override="   ")
    assert engine.phase == Phase.CHECK
    engine.brief(not_ready=["salon.door_lock"], override="porte bloquée, on la surveille", who="Awa")
    assert engine.phase == Phase.BRIEFING
    assert engine.check_override["reason"] == "porte bloquée, on la surveille"
    assert engine.check_override["not_ready"] == ["salon.door_lock"]
    entry = next(a for a in engine.audit_log if a["action"] == "check_override")
    assert entry["who"] == "Awa" and entry["target"] == "salon.door_lock"


def test_start_straight_from_idle_records_the_override(engine: Engine):
    effects = engine.start(parcours="locataire", players=2)
    assert engine.phase == Phase.RUNNING
    assert engine.check_override["reason"] == DIRECT_START_REASON
    assert ("hall", "keypad", "reset") in actions(effects)
    assert engine.budget == 900


def test_start_from_check_refuses_when_not_ready_and_changes_nothing(engine: Engine):
    engine.prepare(parcours="primo", players=3)
    with pytest.raises(EngineError):
        engine.start(not_ready=["hall.box_lock"])
    assert engine.phase == Phase.CHECK
    engine.start(not_ready=["hall.box_lock"], override="boîte vide ce jour-là", players=4)
    assert engine.phase == Phase.RUNNING and engine.players == 4


def test_group_can_be_corrected_until_the_run_starts(engine: Engine):
    engine.prepare(parcours="primo", players=3)
    engine.configure(parcours="locataire", players=6, children=True)
    assert (engine.parcours, engine.players, engine.children, engine.budget) == ("locataire", 6, True, 900)
    with pytest.raises(EngineError, match="joueurs"):
        engine.configure(players=9)
    engine.brief()
    engine.start()
    with pytest.raises(EngineError):
        engine.configure(players=2)


def test_cancel_before_the_run_opens_every_lock(engine: Engine):
    engine.prepare(parcours="primo", players=3)
    effects = engine.cancel()
    assert engine.phase == Phase.IDLE and engine.result == "cancelled"
    assert actions(effects) == {("hall", "box_lock", "unlock"), ("salon", "door_lock", "unlock")}


def test_refused_orders_say_why_in_french(engine: Engine):
    with pytest.raises(EngineError, match="impossible de mettre en pause : la partie est « En attente »"):
        engine.pause()
    with pytest.raises(EngineError):
        engine.brief()
    with pytest.raises(EngineError):
        engine.debrief()


# -- timer --------------------------------------------------------------------------------
def test_time_presets_add_and_remove_and_are_audited(engine: Engine, clocks: FakeClocks):
    running(engine)
    clocks.advance(600)
    engine.add_time(300, who="Awa")
    engine.add_time(-120)
    assert engine.remaining() == pytest.approx(3600 - 600 + 180)
    assert [(a["who"], a["detail"]) for a in engine.audit_log if a["action"] == "time"] == [
        ("Awa", "+300 s"), ("game master", "-120 s")]


def test_removing_more_time_than_is_left_is_refused(engine: Engine, clocks: FakeClocks):
    running(engine)
    clocks.advance(3500)
    with pytest.raises(EngineError, match="terminerait la partie"):
        engine.add_time(-120)
    assert engine.remaining() == pytest.approx(100)


def test_time_up_loses_and_opens_every_lock(engine: Engine, clocks: FakeClocks):
    running(engine)
    clocks.advance(3599)
    assert engine.tick() == []
    clocks.advance(1)
    effects = engine.tick()
    assert engine.phase == Phase.LOST and engine.result == "lost"
    assert actions(effects) == {("hall", "box_lock", "unlock"), ("salon", "door_lock", "unlock")}


def test_pause_stops_the_clock(engine: Engine, clocks: FakeClocks):
    running(engine)
    clocks.advance(60)
    engine.pause()
    clocks.advance(10_000)
    assert engine.tick() == []
    engine.resume()
    assert engine.remaining() == pytest.approx(3540)


# -- clues --------------------------------------------------------------------------------
def test_prewritten_clue_in_the_parcours_text_goes_to_the_puzzle_room(engine: Engine):
    running(engine)
    clue, effects = engine.send_clue(puzzle="mailbox", index=0)
    assert (clue.text, clue.text_en, clue.room, clue.status) == ("La date du bail.", "The lease date.",
                                                                 "hall", "sent")
    assert effects == [ScreenMessage("La date du bail.", "The lease date.", "hall")]
    assert engine.clue_count == 1
    assert game_view(engine)["clues"][0]["id"] == clue.id


def test_clue_text_follows_the_parcours(engine: Engine):
    running(engine, "locataire")
    clue, _ = engine.send_clue(puzzle="mailbox", index=0)
    assert clue.text == "L'avis d'échéance." and clue.text_en is None
    with pytest.raises(EngineError, match="parcours"):
        engine.send_clue(puzzle="mailbox", index=2)
    assert [c["index"] for c in clue_catalogue(engine)[0]["clues"]] == [0, 1]


def test_clue_cost_comes_off_the_budget_only_when_it_counts(engine: Engine):
    running(engine)
    engine.send_clue(puzzle="mailbox", index=1)
    assert engine.budget == 980
    assert engine.budget_history[-1].label == "Indice : La boîte aux lettres"
    engine.send_clue(puzzle="mailbox", index=1, counts=False)
    assert engine.budget == 980
    assert engine.clue_count == 1 and len(engine.clues) == 2


def test_free_text_clue_to_every_screen_and_shown_ack(engine: Engine, clocks: FakeClocks):
    running(engine)
    clue, _ = engine.send_clue(text="  Cherchez sous le tapis  ", room=None, room_given=True, who="Léo")
    assert clue.room is None and clue.text == "Cherchez sous le tapis" and clue.puzzle is None
    clocks.advance(2)
    assert engine.clue_shown(clue.id).status == "shown"
    first = clue.shown_wall
    clocks.advance(2)
    assert engine.clue_shown(clue.id).shown_wall == first   # idempotent
    assert any(a["action"] == "clue" and a["who"] == "Léo" for a in engine.audit_log)


@pytest.mark.parametrize(("order", "error"), [
    ({}, EngineError),
    ({"puzzle": "mailbox", "index": 0, "text": "et un texte"}, EngineError),
    ({"index": 0}, EngineError),
    ({"puzzle": "nope", "index": 0}, NotFoundError),
    ({"puzzle": "mailbox", "index": 7}, NotFoundError),
    ({"text": "x", "room": "garage"}, NotFoundError),
])
def test_bad_clue_orders_are_refused_and_change_nothing(engine: Engine, order, error):
    running(engine)
    with pytest.raises(error):
        engine.send_clue(**order)
    assert engine.clues == [] and engine.budget == 1000


def test_clues_only_during_a_run(engine: Engine):
    with pytest.raises(EngineError):
        engine.send_clue(text="trop tôt")
    with pytest.raises(NotFoundError):
        engine.clue_shown("abc")


# -- overrides ----------------------------------------------------------------------------
def test_force_solve_is_audited_with_who(engine: Engine):
    running(engine)
    effects = engine.force_solve("mailbox", who="Awa")
    assert ("hall", "box_lock", "unlock") in actions(effects)
    assert engine.puzzles["mailbox"].solved_by == "Awa"
    assert engine.audit_log[-1]["action"] == "force_solve" and engine.audit_log[-1]["target"] == "mailbox"


def test_reset_puzzle_relocks_its_box_gives_back_its_budget_but_never_relocks_an_exit_door(engine: Engine):
    running(engine)
    engine.on_event("hall", "keypad", "code", "0412")
    engine.on_event("salon", "bell", "press", None)
    assert engine.budget == 930
    effects = engine.reset_puzzle("bell")
    assert engine.puzzles["bell"].status == "available"
    assert engine.budget == 900
    assert ("salon", "lamp", "off") in actions(effects)
    assert not any(a[2] == "lock" and a[1] == "door_lock" for a in actions(effects))
    effects = engine.reset_puzzle("mailbox")
    assert ("hall", "box_lock", "lock") in actions(effects)
    assert ("hall", "keypad", "reset") in actions(effects)
    assert engine.puzzles["bell"].status == "locked"
    assert engine.budget == 1000


def test_skip_to_solves_what_the_puzzle_requires(engine: Engine):
    running(engine)
    effects = engine.skip_to("final", who="Awa")
    assert engine.puzzles["mailbox"].status == engine.puzzles["bell"].status == "solved"
    assert engine.puzzles["final"].status == "available"
    assert engine.puzzles["bell"].solved_by == "Awa (saut)"
    assert {("hall", "box_lock", "unlock"), ("salon", "door_lock", "unlock")} <= actions(effects)
    assert engine.phase == Phase.RUNNING
    assert engine.audit_log[-1]["action"] == "skip_to" and engine.audit_log[-1]["detail"] == "mailbox, bell"


def test_overrides_on_a_puzzle_outside_the_parcours_are_refused(engine: Engine):
    running(engine, "locataire")
    for order in (engine.force_solve, engine.reset_puzzle, engine.skip_to):
        with pytest.raises(EngineError, match="parcours"):
            order("extra")
    assert engine.puzzles["extra"].status == "locked"


# -- inactivity ---------------------------------------------------------------------------
def test_inactivity_warning_then_alert_then_cleared_by_a_prop_event(engine: Engine, clocks: FakeClocks):
    running(engine)
    clocks.advance(179)
    assert engine.alert() is None
    clocks.advance(1)
    assert engine.alert() == "warning"
    clocks.advance(120)
    assert engine.alert() == "alert" and game_view(engine)["alert"] == "alert"
    engine.on_event("hall", "keypad", "code", "0000")   # a wrong code is still activity
    assert engine.alert() is None


def test_no_inactivity_alert_while_paused(engine: Engine, clocks: FakeClocks):
    running(engine)
    engine.pause()
    clocks.advance(1000)
    assert engine.alert() is None


# -- record and resume --------------------------------------------------------------------
def test_record_resumes_phase_timer_puzzles_budget_and_clues(game: Game, engine: Engine,
                                                              clocks: FakeClocks):
    running(engine)
    engine.on_event("hall", "keypad", "code", "0412")
    engine.send_clue(puzzle="mailbox", index=1)
    clocks.advance(600)
    record = json.loads(json.dumps(to_record(engine)))   # it is JSON
    clocks.advance(45)       # the controller is away 45 s; the players play on
    clocks.mono = 5.0        # a new process: its monotonic clock starts anywhere
    resumed = from_record(game, record, clock=clocks.monotonic, wall=clocks.wall)
    assert resumed.phase == Phase.RUNNING and resumed.session_id == engine.session_id
    assert resumed.remaining() == pytest.approx(3600 - 645)
    assert resumed.puzzles["mailbox"].status == "solved"
    assert resumed.puzzles["bell"].status == "available"
    assert resumed.budget == 1000 - 100 - 20
    assert [c.id for c in resumed.clues] == [c.id for c in engine.clues]
    clocks.advance(3600)
    assert actions(resumed.tick()) == {("hall", "box_lock", "unlock"), ("salon", "door_lock", "unlock")}


def test_paused_record_does_not_count_the_time_away(game: Game, engine: Engine, clocks: FakeClocks):
    running(engine)
    clocks.advance(100)
    engine.pause()
    record = to_record(engine)
    clocks.advance(1000)
    resumed = from_record(game, record, clock=clocks.monotonic, wall=clocks.wall)
    assert resumed.phase == Phase.PAUSED and resumed.remaining() == pytest.approx(3500)


def test_wall_clock_going_backwards_gives_no_time_back(game: Game, engine: Engine, clocks: FakeClocks):
    running(engine)
    clocks.advance(100)
    record = to_record(engine)
    clocks.now -= 3600
    resumed = from_record(game, record, clock=clocks.monotonic, wall=clocks.wall)
    assert resumed.remaining() == pytest.approx(3500)


#: a record as the controller wrote it before the record had a model (hand-built dict):
#: a controller upgraded in the middle of a game must resume it
HAND_BUILT_RECORD = {
    "v": 1, "session": "f58237834a13", "phase": "running", "parcours": "primo", "players": 3,
    "children": False, "created_wall": 1760000000.0, "started_wall": 1760000000.0,
    "ended_wall": None, "result": None, "elapsed": 120.0, "running": True,
    "wall_at": 1760000120.0, "added_seconds": 0, "budget": 880, "budget_start": 1000,
    "budget_history": [{"amount": -100, "label": "Loyer", "at": 100.0, "puzzle": "mailbox"},
                       {"amount": -20, "label": "Indice : La boîte aux lettres", "at": 100.0,
                        "puzzle": "mailbox"}],
    "puzzles": {"mailbox": {"status": "solved", "solved_at": 100.0, "solved_by": "players",
                            "progress": [0], "available_at": 0.0},
                "bell": {"status": "available", "solved_at": None, "solved_by": "", "progress": [],
                         "available_at": 100.0},
                "extra": {"status": "available", "solved_at": None, "solved_by": "", "progress": [],
                          "available_at": 100.0},
                "final": {"status": "locked", "solved_at": None, "solved_by": "", "progress": [],
                          "available_at": None}},
    "messages": [],
    "clues": [{"id": "80b69dce2093", "text": "Jour puis mois.", "text_en": None, "room": "hall",
               "puzzle": "mailbox", "index": 1, "counts": True, "cost": 20, "who": "game master",
               "sent_at": 100.0, "sent_wall": 1760000100.0, "shown_wall": 1760000120.0}],
    "last_activity": 100.0,
    "check_override": {"who": "game master", "reason": "démarrage direct, sans vérification préalable",
                       "not_ready": ["vérification non faite"], "at": 1760000000.0},
}


def test_a_record_of_the_hand_built_layout_resumes_and_is_written_back_the_same(game: Game,
                                                                                clocks: FakeClocks):
    clocks.now = 1760000120.0 + 30        # the controller was away 30 s
    resumed = from_record(game, HAND_BUILT_RECORD, clock=clocks.monotonic, wall=clocks.wall)
    assert resumed.phase == Phase.RUNNING and resumed.session_id == "f58237834a13"
    assert resumed.remaining() == pytest.approx(3600 - 150)
    assert resumed.puzzles["mailbox"].status == "solved" and resumed.puzzles["final"].status == "locked"
    assert resumed.clues[0].status == "shown" and resumed.budget == 880
    again = to_record(resumed)
    # written back the same, with the fields the layout gained since (their defaults)
    grown = {"settled": False, "profile": {"low_literacy": False, "language": None, "hard_of_hearing": False},
             "budget_history": [
        {**line, "label_en": None, "obligation": None, "kind": None}
        for line in HAND_BUILT_RECORD["budget_history"]]}
    assert again == {**HAND_BUILT_RECORD, **grown, "elapsed": pytest.approx(150.0), "wall_at": clocks.now}


def test_an_unreadable_record_is_refused_as_a_value_error(game: Game) -> None:
    for broken in ({**HAND_BUILT_RECORD, "v": 2}, {**HAND_BUILT_RECORD, "players": "many"},
                   {**HAND_BUILT_RECORD, "phase": "dancing"}, {"v": 1}):
        with pytest.raises(ValueError):
            from_record(game, broken)


def test_history_rows_hold_per_puzzle_times_and_clues(engine: Engine, clocks: FakeClocks):
    running(engine)
    clocks.advance(30)
    engine.on_event("hall", "keypad", "code", "0412")
    clocks.advance(50)
    engine.send_clue(puzzle="bell", text="Sonnez !")
    clocks.advance(20)
    engine.on_event("salon", "bell", "press", None)
    rows = history_rows(engine)
    by_id = {p["puzzle_id"]: p for p in rows["puzzles"]}
    assert by_id["mailbox"]["duration_s"] == pytest.approx(30)
    assert by_id["bell"]["duration_s"] == pytest.approx(70) and by_id["bell"]["clues"] == 1
    assert by_id["final"]["status"] == "available" and by_id["final"]["solved_at_s"] is None
    assert rows["session"]["clues"] == 1 and rows["session"]["final_budget"] == 930
