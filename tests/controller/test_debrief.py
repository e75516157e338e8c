"""The debrief of a session (controller/debrief.py): per theme what the group did, the
clues, the household budget line by line — from a session played through the engine and
kept in the store, and through the API for the current and a past session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config.game import Game
from controller.debrief import debrief, outcome
from controller.engine import Engine
from controller.record import history_rows, to_record
from controller.store import Store
from tests.controller.conftest import FakeClocks


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "escape.db")
    yield s
    s.close()


def save(store: Store, engine: Engine) -> None:
    store.save_session(to_record(engine), history_rows(engine), engine.take_journal())


def play(engine: Engine, clocks: FakeClocks) -> None:
    """primo, 3 players: mailbox solved by the players after a paid clue, the bell forced,
    the primo-only puzzle left unsolved, the final one solved by the players: won."""
    engine.start(parcours="primo", players=3, children=True)
    clocks.advance(100)
    engine.send_clue(puzzle="mailbox", index=1)                  # costs 20 €
    clocks.advance(200)
    engine.on_event("hall", "keypad", "code", "0412")            # mailbox: −100 €, at 300 s
    clocks.advance(60)
    engine.send_clue(puzzle="bell", text="Sonnez !")
    engine.send_clue(text="Courage", counts=False)              # a nudge: does not count
    clocks.advance(60)
    engine.force_solve("bell")                                    # +30 €, by the game master
    clocks.advance(240)
    engine.on_event("hall", "keypad", "code", "9999")            # final, at 660 s: won


def test_a_played_session_debriefs_per_theme_with_its_budget(store: Store, game: Game, clocks: FakeClocks):
    engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
    play(engine, clocks)
    assert engine.result == "won"
    save(store, engine)

    d = debrief(store.session(engine.session_id), game)

    s = d["session"]
    assert (s["parcours"], s["players"], s["children"], s["result"]) == ("primo", 3, True, "won")
    assert s["time_used_s"] == pytest.approx(660)
    assert (d["puzzles_total"], d["solved"], d["forced"], d["skipped"], d["unsolved"]) == (4, 2, 1, 0, 1)
    assert (d["clues"], d["clues_sent"], d["clue_cost"]) == (2, 3, 20)
    assert d["budget"]["start"] == 1000
    assert d["budget"]["final"] == 1000 - 20 - 100 + 30 == 910
    assert d["budget"]["change"] == -90
    assert [(h["amount"], h["balance"]) for h in d["budget"]["history"]] == [(-20, 980), (-100, 880), (30, 910)]
    assert d["budget"]["history"][0]["label"].startswith("Indice")

    themes = {t["theme"]: t for t in d["themes"]}
    assert [t["theme"] for t in d["themes"]] == ["budget", "rights", "diy", "story"]   # the game's order
    budget = themes["budget"]
    assert (budget["total"], budget["solved"], budget["clues"], budget["budget"]) == (1, 1, 1, -100)
    mailbox = budget["puzzles"][0]
    assert mailbox["outcome"] == "solved" and mailbox["time_s"] == pytest.approx(300)
    assert mailbox["room_label"] == "Hall" and mailbox["clues"] == 1
    bell = themes["rights"]["puzzles"][0]
    assert (bell["outcome"], bell["time_s"], bell["clues"], bell["budget"]) == ("forced", None, 1, 30)
    assert themes["diy"]["puzzles"][0]["outcome"] == "unsolved" and themes["diy"]["solved"] == 0
    final = themes["story"]["puzzles"][0]
    assert final["outcome"] == "solved" and final["time_s"] == pytest.approx(240)


def test_skipped_and_not_reached_puzzles(store: Store, game: Game, clocks: FakeClocks):
    engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
    engine.start(parcours="locataire", players=2)
    clocks.advance(30)
    engine.skip_to("final")          # mailbox and bell solved on the way
    clocks.advance(30)
    engine.abort()
    save(store, engine)
    d = debrief(store.session(engine.session_id), game)
    assert d["session"]["result"] == "aborted"
    assert {p["id"]: p["outcome"] for p in d["puzzles"]} == {
        "mailbox": "skipped", "bell": "skipped", "final": "unsolved"}   # extra: primo only
    assert d["budget"]["final"] == 900 - 100 + 30


@pytest.mark.parametrize(("status", "by", "expected"), [
    ("solved", "players", "solved"), ("solved", "node hall (offline)", "solved"),
    ("solved", "Awa", "forced"), ("solved", "game master (saut)", "skipped"),
    ("available", None, "unsolved"), ("locked", None, "not_reached")])
def test_outcome(status: str, by: str | None, expected: str):
    assert outcome(status, by) == expected


# -- through the API ------------------------------------------------------------------------
def test_debrief_routes_for_the_current_and_a_past_session(client: TestClient, clocks: FakeClocks):
    assert client.get("/api/game/debrief").status_code == 404          # nothing played yet
    reply = client.post("/api/game/start", json={"parcours": "primo", "players": 5})
    session = reply.json()["session"]
    clocks.advance(90)
    assert client.post("/api/clues", json={"puzzle": "mailbox", "index": 1}).status_code == 200
    assert client.post("/api/game/puzzles/final/skip", json={}).status_code == 200
    clocks.advance(30)
    assert client.post("/api/game/puzzles/final/solve", json={}).status_code == 200
    assert client.post("/api/game/debrief", json={}).status_code == 200

    current = client.get("/api/game/debrief").json()
    assert current["session"]["id"] == session and current["session"]["result"] == "won"
    assert current["clues"] == 1 and current["budget"]["final"] == 1000 - 20 - 100 + 30
    assert current["skipped"] == 2 and current["forced"] == 1
    # after the reset (idle), the current debrief is the last session played
    assert client.post("/api/game/reset", json={}).status_code == 200
    assert client.get("/api/game/debrief").json()["session"]["id"] == session
    past = client.get(f"/api/history/sessions/{session}/debrief").json()
    assert past["budget"] == current["budget"] and past["themes"] == current["themes"]
    assert client.get("/api/history/sessions/nope/debrief").status_code == 404

    stats = client.get("/api/history/stats").json()
    mailbox = next(p for p in stats["puzzles"] if p["id"] == "mailbox")
    assert mailbox["solve_rate"] == 1.0 and mailbox["median_time_s"] is None   # skipped: no time


def test_median_time_per_puzzle(store: Store, game: Game, clocks: FakeClocks):
    for minutes in (2, 10, 4):
        engine = Engine(game, clock=clocks.monotonic, wall=clocks.wall)
        engine.start(parcours="primo", players=2)
        clocks.advance(60 * minutes)
        engine.on_event("hall", "keypad", "code", "0412")
        engine.abort()
        save(store, engine)
        engine.reset()
    mailbox = next(p for p in store.stats()["puzzles"] if p["id"] == "mailbox")
    assert mailbox["median_time_s"] == pytest.approx(240) and mailbox["solve_rate"] == 1.0
    bell = next(p for p in store.stats()["puzzles"] if p["id"] == "bell")
    assert bell["solve_rate"] == 0.0 and bell["median_time_s"] is None


# -- the group's evaluation ("every session is counted and can be evaluated") --------------
def test_an_ended_session_takes_an_evaluation_shown_in_history_stats_and_csv(
        client: TestClient, clocks: FakeClocks):
    session = client.post("/api/game/start", json={"parcours": "locataire", "players": 4}).json()["session"]
    url = f"/api/history/sessions/{session}/evaluation"
    body = {"rating": 4, "learned": ["budget", "waste"], "comment": "Le tri ; « enfin » clair"}
    # not over yet: nothing to evaluate, and nothing recorded
    assert client.put(url, json=body).status_code == 409
    assert client.post("/api/game/stop", json={}).status_code == 200

    assert client.put(url, json=body).status_code == 200
    # corrected later: one evaluation per session, the last one counts
    body["rating"] = 5
    saved = client.put(url, json=body).json()
    assert saved["rating"] == 5 and saved["learned"] == ["waste", "budget"]   # the game's order

    assert client.get(f"/api/history/sessions/{session}/debrief").json()["evaluation"]["rating"] == 5
    row = client.get("/api/history/sessions").json()["sessions"][0]
    assert (row["id"], row["rating"], row["learned"]) == (session, 5, ["waste", "budget"])
    stats = client.get("/api/history/stats").json()["evaluations"]
    assert stats == {"count": 1, "average_rating": 5.0, "learned": {"budget": 1, "waste": 1}}
    csv_text = client.get("/api/history/sessions.csv").text
    header, line = csv_text.lstrip("\ufeff").splitlines()[:2]
    assert header.endswith("note_groupe;themes_retenus;commentaire;ressentis;chez_vous")
    assert line.endswith('5;waste,budget;"Le tri ; « enfin » clair";;')   # no debrief answers
    audit = client.get(f"/api/history/sessions/{session}").json()["audit"]
    assert [a["detail"] for a in audit if a["action"] == "evaluation"] == ["note 4/5", "note 5/5"]


@pytest.mark.parametrize("bad", [
    {"rating": 0}, {"rating": 6}, {"rating": "5"}, {"rating": 3, "learned": ["cooking"]},
    {"rating": 3, "learned": ["budget", "budget"]}, {"rating": 3, "comment": "x" * 2001},
    {"rating": 3, "who": "someone"}, {},
])
def test_a_bad_evaluation_is_refused_and_changes_nothing(client: TestClient, bad: dict[str, object]):
    session = client.post("/api/game/start", json={"parcours": "primo", "players": 2}).json()["session"]
    assert client.post("/api/game/stop", json={}).status_code == 200
    reply = client.put(f"/api/history/sessions/{session}/evaluation", json=bad)
    assert reply.status_code == 422, reply.text
    assert client.get(f"/api/history/sessions/{session}").json()["evaluation"] is None
    assert client.put("/api/history/sessions/nope/evaluation", json={"rating": 3}).status_code == 404
