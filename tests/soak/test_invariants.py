"""The soak's checks can fail: each one, fed what a broken system would show, records a
failure, and fed what a sound one shows, does not (a check that cannot fail proves
nothing). No process here: the wire's messages and the console's answers are made up.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from soak import invariants as inv
from soak.game import SHIPPED, GameFacts, read
from soak.groups import outcomes, play_order, year
from soak.wire import Msg
from tests.solutions import FINAL_BUDGET

ROOT = "escape/temoin"


@pytest.fixture(scope="module")
def facts() -> GameFacts:
    return read(SHIPPED)


class FakeWire:
    """What :class:`soak.wire.Wire` offers the checks, fed by hand."""

    def __init__(self) -> None:
        self.listeners: list[Any] = []
        self.latest: dict[str, Msg] = {}

    def publish(self, topic: str, data: dict[str, Any], *, at: float | None = None,
                retain: bool = False) -> Msg:
        msg = Msg(time.monotonic() if at is None else at, f"{ROOT}/{topic}",
                  json.dumps(data).encode(), retain, data)
        self.latest[msg.topic] = msg
        for listener in self.listeners:
            listener(msg)
        return msg

    def state(self, node: str, prop: str) -> Msg | None:
        return self.latest.get(f"{ROOT}/nodes/{node}/props/{prop}/state")

    def state_fields(self, node: str, prop: str) -> dict[str, Any] | None:
        msg = self.state(node, prop)
        return None if msg is None else {k: v for k, v in msg.data.items() if k not in ("v", "ack", "boot_id", "ts")}

    def status(self, node: str) -> dict[str, Any] | None:
        msg = self.latest.get(f"{ROOT}/nodes/{node}/status")
        return None if msg is None else msg.data


def lock_state(wire: FakeWire, key: tuple[str, str], engaged: bool, *, ts: float | None = None,
               **kw: Any) -> None:
    data = {"v": 1, "engaged": engaged, "locked": engaged, "door": "closed"}
    wire.publish(f"nodes/{key[0]}/props/{key[1]}/state", data if ts is None else {**data, "ts": ts}, **kw)


def locks(facts: GameFacts, wire: FakeWire, ledger: inv.Ledger, *, dead: set[str] = frozenset()) -> inv.Locks:
    return inv.Locks(facts, wire, ledger, alive=lambda node: node not in dead,  # type: ignore[arg-type]
                     path_up_since=lambda: 0.0)


# -- the game file, read from outside ---------------------------------------------------------
def test_the_shipped_game_read_from_outside(facts: GameFacts) -> None:
    assert len(facts.nodes) == 7 and len(facts.maglocks) == 7 and len(facts.puzzles) == 12
    assert facts.exit_doors == {("entree", "door_lock"), ("poubelles", "exit_lock")}
    for parcours in ("primo", "locataire"):
        every = set(play_order(facts, parcours))
        assert facts.expected_budget(parcours, every, 0) == FINAL_BUDGET[parcours]
        assert facts.expected_budget(parcours, every, 25) == FINAL_BUDGET[parcours] - 25
    assert facts.puzzles["household_budget"].clue_costs == [0, 10]


def test_the_year_alternates_parcours_and_draws_every_outcome(facts: GameFacts) -> None:
    import datetime as dt
    import random

    plans = year(facts, 24, random.Random(1), start=dt.date(2027, 1, 1), quick=False)
    assert [p.parcours for p in plans[:4]] == ["primo", "locataire", "primo", "locataire"]
    assert {p.outcome for p in plans} == {"win", "time_up", "abort"}
    assert [p.date.month for p in plans] == [m for m in range(1, 13) for _ in range(2)]
    assert all(2 <= p.players <= 6 for p in plans)
    assert outcomes(3, random.Random(5)).count("win") == 1


# -- safety ------------------------------------------------------------------------------------
def test_an_exit_door_relocked_after_its_release_without_an_order_fails(
        facts: GameFacts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inv, "RACE_S", 0.0)   # messages here are not late: no benefit of the doubt
    wire, ledger = FakeWire(), inv.Ledger()
    watch = locks(facts, wire, ledger)
    door = ("entree", "door_lock")
    lock_state(wire, door, False)
    watch.game_master_may_lock()
    lock_state(wire, door, True)        # the check locked it: an order allowed it
    lock_state(wire, door, False)       # solved, or its node rebooted
    lock_state(wire, door, True)        # relocked by nobody
    assert ledger.failed("no_relock_without_game_master") == 1
    assert "entree.door_lock engaged again" in ledger.failures[0].detail
    lock_state(wire, door, False)
    watch.game_master_may_lock([door])  # the game master's one click
    lock_state(wire, door, True)
    assert ledger.runs["no_relock_without_game_master"] == 3, ledger.runs
    assert ledger.failed("no_relock_without_game_master") == 1


def test_a_retained_state_is_not_a_relay_that_moved(facts: GameFacts) -> None:
    wire, ledger = FakeWire(), inv.Ledger()
    locks(facts, wire, ledger)
    door = ("poubelles", "exit_lock")
    lock_state(wire, door, True, at=1.0)
    lock_state(wire, door, False, at=2.0)
    lock_state(wire, door, True, at=3.0, retain=True)   # a broker restarted on old data
    assert ledger.runs["no_relock_without_game_master"] == 0


def test_a_retained_state_newer_than_any_seen_is_news(facts: GameFacts) -> None:
    wire, ledger = FakeWire(), inv.Ledger()
    watch = locks(facts, wire, ledger)
    door = ("poubelles", "exit_lock")
    lock_state(wire, door, True, at=1.0, ts=100.0)
    lock_state(wire, door, False, at=2.0, ts=50.0, retain=True)   # the old save
    assert watch.live_releases == []
    # the node released it while this client was away (it came back on the broker first)
    lock_state(wire, door, False, at=3.0, ts=101.0, retain=True)
    assert watch.live_releases == [(3.0, door)]
    lock_state(wire, door, True, at=4.0, ts=102.0)                # relocked by nobody
    assert ledger.failed("no_relock_without_game_master") == 1


def test_a_lock_still_engaged_after_an_end_fails_and_a_dead_node_counts_as_released(facts: GameFacts) -> None:
    wire, ledger = FakeWire(), inv.Ledger()
    watch = locks(facts, wire, ledger, dead={"sdb"})
    for key in facts.maglocks:
        lock_state(wire, key, True)
    for key in facts.maglocks:
        if key != ("hall", "mailbox_lock") and key[0] != "sdb":
            lock_state(wire, key, False)
    watch.release_ordered("won", at=time.monotonic() - inv.RELEASE_BOUND_S - 1)
    watch.every_maglock_released()
    assert ledger.failed("every_maglock_released") == 1
    assert "hall.mailbox_lock" in ledger.failures[0].detail and "sdb" not in ledger.failures[0].detail
    lock_state(wire, ("hall", "mailbox_lock"), False)
    watch.release_ordered("aborted")
    watch.every_maglock_released()
    assert ledger.runs["every_maglock_released"] == 2 and ledger.failed("every_maglock_released") == 1


# -- correctness -------------------------------------------------------------------------------
def game_view(budget: int, solved: dict[str, float], lines: list[tuple[str, int]]) -> dict[str, Any]:
    return {"session": "s1", "phase": "running", "budget": budget,
            "puzzles": [{"id": p, "status": "solved", "solved_at": at} for p, at in solved.items()],
            "budget_history": [{"puzzle": p, "amount": a} for p, a in lines]}


def test_the_budget_and_the_solves_are_checked_against_the_game_file(facts: GameFacts) -> None:
    ledger = inv.Ledger()
    game = inv.Game(facts, ledger)
    game.open("s1", "primo")
    game.clue_paid(10, "household_budget")
    good = game_view(1450 - 620 - 10, {"mailbox": 1.0, "front_door": 2.0}, [("front_door", -620)])
    game.on_state({"game": good})
    assert not ledger.failures
    game.on_state({"game": game_view(1450 - 620, {"mailbox": 1.0, "front_door": 2.0}, [("front_door", -620)])})
    assert ledger.failed("budget_is_start_plus_amounts_minus_clues") == 1
    twice = game_view(1450 - 620 - 10, {"mailbox": 1.0, "front_door": 2.0},
                      [("front_door", -620), ("front_door", -620)])
    game.on_state({"game": twice})
    moved = game_view(1450 - 620 - 10, {"mailbox": 1.0, "front_door": 3.0}, [("front_door", -620)])
    game.on_state({"game": moved})
    assert ledger.failed("each_solve_counted_once") == 2
    # a paid clue's line beside the solve's is not a second solve
    paid = game_view(1450 - 620 - 10 - 115, {"mailbox": 1.0, "front_door": 2.0, "household_budget": 4.0},
                     [("front_door", -620), ("household_budget", -10), ("household_budget", -115)])
    game.on_state({"game": paid})
    assert ledger.failed("each_solve_counted_once") == 2
    assert ledger.failed("budget_is_start_plus_amounts_minus_clues") == 1


def test_a_check_that_says_ready_with_a_window_open_or_a_room_down_fails(facts: GameFacts) -> None:
    wire, ledger = FakeWire(), inv.Ledger()
    long_ago = time.monotonic() - 10
    for (node, prop), p in facts.props.items():
        fields: dict[str, Any] = {"maglock": {"engaged": True, "door": "closed"}, "keypad": {"buffer_length": 0},
                                  "button": {"pressed": False}, "reed_switch": {"closed": True},
                                  "relay": {"on": bool(p.config.get("initial_value", False))},
                                  "mfrc522": {}, "rdm6300": {},
                                  "sorting": {"bins": {"jaune": None}}}[p.kind]
        wire.publish(f"nodes/{node}/props/{prop}/state", {"v": 1, **fields}, at=long_ago)

    def check(down: dict[str, float] | None = None) -> None:
        inv.check_passes_only_in_start_state(ledger, facts, wire, {"ready": True},  # type: ignore[arg-type]
                                             asked=time.monotonic(), down_since=(down or {}).get)

    check()
    assert not ledger.failures
    wire.publish("nodes/sdb/props/window/state", {"v": 1, "closed": False}, at=long_ago)
    check()
    assert ledger.failed("check_passes_only_in_start_state") == 1
    assert "sdb.window" in ledger.failures[0].detail
    wire.publish("nodes/sdb/props/window/state", {"v": 1, "closed": True}, at=long_ago)
    check({"cuisine": long_ago})
    assert ledger.failed("check_passes_only_in_start_state") == 2


def test_the_view_must_match_what_the_nodes_retained(facts: GameFacts) -> None:
    wire = FakeWire()
    for node in facts.nodes:
        wire.publish(f"nodes/{node}/status", {"v": 1, "online": True, "boot_id": f"b-{node}"})
    wire.publish("nodes/sdb/props/window/state", {"v": 1, "closed": True})
    nodes = [{"id": n, "online": True, "boot_id": f"b-{n}", "clock_skewed": False} for n in facts.nodes]
    props = [{"node": "sdb", "id": "window", "reported": {"closed": True}, "desired": None}]
    state = {"nodes": nodes, "props": props, "mqtt": {"connected": True}, "store": {"ok": True}}
    assert inv.view_differences(facts, wire, state, alive=lambda n: True) == []  # type: ignore[arg-type]
    nodes[0]["boot_id"] = "an-old-boot"
    props[0]["reported"] = {"closed": False}
    diffs = inv.view_differences(facts, wire, state, alive=lambda n: True)  # type: ignore[arg-type]
    assert len(diffs) == 2 and diffs[0].startswith(facts.nodes[0])
    assert inv.view_differences(facts, wire, state, alive=lambda n: n != "sdb")[1:] == [  # type: ignore[arg-type]
        "sdb: dead, shown online"]


# -- nothing lost ------------------------------------------------------------------------------
def event(at: float, node: str, prop: str, seq: int, value: Any, session: str = "s1") -> Msg:
    data = {"v": 1, "boot_id": "b1", "seq": seq, "type": "code", "value": value, "ts": 0.0, "session": session}
    return Msg(at, f"{ROOT}/nodes/{node}/props/{prop}/event", b"", False, data)


def test_an_event_missing_from_the_session_log_is_a_loss() -> None:
    ledger = inv.Ledger()
    wire = [event(1, "hall", "mailbox_keypad", 1, "9999"), event(2, "hall", "mailbox_keypad", 2, "0412"),
            event(2.5, "hall", "mailbox_keypad", 2, "0412"),          # the outbox sent it again
            event(3, "hall", "mailbox_keypad", 3, "1111", session="other")]
    logged = [{"kind": "prop", "node": "hall", "prop": "mailbox_keypad", "type": "code", "value": "9999"},
              {"kind": "solved", "node": None, "prop": None, "type": None, "value": None}]
    lost, total = inv.session_events_recorded(ledger, "s1", wire, logged)
    assert total == 2 and lost == ["hall.mailbox_keypad code 0412"]
    logged.append({"kind": "prop", "node": "hall", "prop": "mailbox_keypad", "type": "code", "value": "0412"})
    assert inv.session_events_recorded(ledger, "s1", wire, logged) == ([], 2)
    assert ledger.failed("session_events_recorded") == 1


def test_a_history_row_or_csv_line_that_differs_is_found() -> None:
    ledger = inv.Ledger()
    played = [{"id": "s1", "result": "won", "players": 3, "children": True, "final_budget": 857,
               "puzzles_solved": 12, "rating": 4, "learned": ["waste", "budget"], "comment": "Bien",
               "parcours": "primo"}]
    rows = [{**played[0], "learned": ["budget", "waste"]}]
    header = "session;parcours;joueurs;enfants;resultat;budget_final;note_groupe;themes_retenus;commentaire\r\n"
    sessions_csv = "\ufeff" + header + "s1;primo;3;oui;gagné;857;4;budget,waste;Bien\r\n"
    puzzles_csv = "\ufeffsession;enigme\r\n" + "".join(f"s1;p{i}\r\n" for i in range(12))
    inv.history_complete(ledger, played, rows, sessions_csv=sessions_csv, puzzles_csv=puzzles_csv, n_puzzles=12)
    assert not ledger.failures
    inv.history_complete(ledger, played, [{**rows[0], "final_budget": 847}], sessions_csv=sessions_csv,
                         puzzles_csv=puzzles_csv, n_puzzles=12)
    inv.history_complete(ledger, played, rows, sessions_csv="\ufeff" + header, puzzles_csv=puzzles_csv,
                         n_puzzles=12)
    inv.history_complete(ledger, played, rows, sessions_csv=sessions_csv, puzzles_csv=puzzles_csv, n_puzzles=13)
    assert ledger.failed("history_complete") == 3
    inv.completed_sessions_kept(ledger, {"s1": played[0]}, [], after="a crash")
    assert ledger.failed("completed_sessions_kept") == 1


def test_a_solved_puzzle_gone_after_a_crash_is_a_loss() -> None:
    ledger = inv.Ledger()
    after = {"game": {"session": "s1", "puzzles": [{"id": "mailbox", "status": "solved"}]}}
    inv.solved_puzzles_kept(ledger, {"mailbox"}, after, session_id="s1", after="a crash")
    inv.solved_puzzles_kept(ledger, {"mailbox", "front_door"}, after, session_id="s1", after="a crash")
    inv.solved_puzzles_kept(ledger, {"mailbox"}, {"game": {"session": None}}, session_id="s1", after="a crash")
    assert ledger.failed("solved_puzzles_kept") == 2 and ledger.runs["solved_puzzles_kept"] == 3


def test_known_bugs_do_not_fail_the_run_but_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(inv.KNOWN, "ended_emergency_stays_ended", "tests/soak/test_findings.py::a_test")
    ledger = inv.Ledger()
    ledger.check("ended_emergency_stays_ended", False, "seen")
    assert ledger.unknown_failures() == 0 and len(ledger.failures) == 1
    ledger.check("budget_is_start_plus_amounts_minus_clues", False, "wrong")
    assert ledger.unknown_failures() == 1


def test_an_ended_emergency_handed_back_fails_only_when_the_nodes_act_on_it(facts: GameFacts) -> None:
    wire, ledger = FakeWire(), inv.Ledger()
    watch = locks(facts, wire, ledger)
    emergencies = inv.Emergencies(ledger, watch)

    def emergency(active: bool, em_id: str, *, at: float, retain: bool = False) -> None:
        data = {"v": 1, "active": active, "id": em_id, "who": "game master"}
        emergencies.on_message(Msg(at, f"{ROOT}/emergency", b"", retain, data))

    for key in facts.maglocks:
        lock_state(wire, key, True, at=10.0)
    emergency(True, "e1", at=11.0)
    emergency(False, "e1", at=12.0)
    emergency(True, "e2", at=13.0)                 # a new one: the game master pressed again
    emergency(False, "e2", at=14.0)
    emergency(False, "e2", at=15.0, retain=True)   # said again at a reconnection: not a new end
    assert emergencies.ended_at == 14.0             # (a broker kill is drawn after a new one only)
    # a broker back on an old save hands e1 back; the nodes ignore it
    emergency(True, "e1", at=20.0, retain=True)
    lock_state(wire, ("hall", "mailbox_lock"), False, at=21.0)   # a solve: one lock
    emergencies.settle(now=22.0)
    assert emergencies.ghosts and not ledger.failures            # its window is not over
    emergencies.settle(now=30.0)
    assert not emergencies.ghosts and not ledger.failures, ledger.failures
    # e2 handed back, and every node releases every lock: they took it for a new one
    emergency(True, "e2", at=40.0, retain=True)
    for key in facts.maglocks:
        lock_state(wire, key, True, at=39.0)
    for key in facts.maglocks:
        lock_state(wire, key, False, at=40.2)
    emergencies.settle(now=50.0)
    assert ledger.failed("ended_emergency_stays_ended") == 1
    assert "took it for a new one" in ledger.failures[0].detail
    # the same releases with an emergency ordered meanwhile are that one's doing
    watch.release_ordered("emergency", at=60.0)
    emergency(True, "e1", at=60.1, retain=True)
    for key in facts.maglocks:
        lock_state(wire, key, True, at=59.0)
    for key in facts.maglocks:
        lock_state(wire, key, False, at=60.2)
    emergencies.settle(now=70.0)
    assert ledger.failed("ended_emergency_stays_ended") == 1
    # published live again (not the broker's save): a failure at once
    emergency(True, "e1", at=80.0)
    assert ledger.failed("ended_emergency_stays_ended") == 2
    assert emergencies.ghosts_seen == 3
