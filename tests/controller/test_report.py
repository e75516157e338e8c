"""The year's impact report (controller/report.py) over a simulated year played through the
public surface (tests/support/year.py): every total of ``GET /api/report`` and of its CSV
files against the sessions as played; nothing personal in any export."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config.sheet import load as load_words
from controller.engine import Engine
from controller.main import create_app
from controller.record import history_rows, to_record
from controller.report import (
    CSV_TABLES,
    Period,
    debrief_labels,
    french_number,
    report_csvs,
    report_html,
    year_report,
)
from controller.store import Store
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.controller.conftest import FakeClocks, make_game
from tests.support.year import BEFORE, SECRETS, YEAR, Year, expected, workshops


@dataclass
class Played:
    client: TestClient
    db: Path
    sessions: list[str]
    want: dict[str, Any]


@pytest.fixture(scope="module")
def played(embedded_broker: BrokerHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    clocks = FakeClocks()
    game = make_game()
    db = tmp_path_factory.mktemp("report") / "escape.db"
    app = create_app(game=game, broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                     db_path=db, clock=clocks.monotonic, wall=clocks.wall)
    with TestClient(app, headers={"Content-Type": "application/json"}) as client:
        year = Year(client, apartment=game.apartment.id, broker=(embedded_broker.host, embedded_broker.port),
                    advance=clocks.advance, now=clocks.wall)
        try:
            year.play([BEFORE, *workshops()])
        finally:
            year.close()
        yield Played(client, db, year.sessions, expected(workshops()))


def report(played: Played, **params: Any) -> dict[str, Any]:
    reply = played.client.get("/api/report", params={"year": YEAR, **params})
    assert reply.status_code == 200, reply.text
    return reply.json()


def table(played: Played, name: str, **params: Any) -> list[list[str]]:
    reply = played.client.get(f"/api/report/csv/{name}", params={"year": YEAR, **params})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/csv")
    text = reply.content.decode("utf-8")
    assert text.startswith("\ufeff"), "a BOM: the spreadsheet reads UTF-8"
    return list(csv.reader(io.StringIO(text[1:]), delimiter=";"))


def test_the_sessions_held_against_the_plan_and_the_target(played: Played):
    r, want = report(played), played.want
    assert r["period"] == {"from": f"{YEAR}-01-01", "to": f"{YEAR}-12-31", "label": f"année {YEAR}"}
    assert r["sessions"] == {"planned": 24, "held": 24, "target": 24, "planned_held": 23,
                             "planned_not_held": 1, "unplanned": 1, "of_target": 1.0}
    assert (r["sessions"]["planned"], r["sessions"]["held"]) == (want["planned"], want["held"])
    assert sum(m["planned"] for m in r["months"]) == 24 and sum(m["held"] for m in r["months"]) == 24
    assert [m["month"] for m in r["months"]] == [f"{YEAR}-{k:02d}" for k in range(1, 13)]
    assert report(played, target=20)["sessions"]["of_target"] == 1.2


def test_the_participants_counted_and_split(played: Played):
    r, want = report(played), played.want
    p = r["participants"]
    for key in ("people", "adults", "children", "households", "groups", "first_visit_households",
                "first_visit_people", "unregistered_people"):
        assert p[key] == want[key], key
    assert p["people"] == p["adults"] + p["children"] + p["unregistered_people"]
    for row in r["by_referral"]:
        assert {k: row[k] for k in ("groups", "people", "households")} == want["by_referral"][row["referral"]]
    assert [row["label"] for row in r["by_referral"]] == [
        "OSICA (commission d'attribution)", "CCAS", "MDS (maison des solidarités)", "service habitat", "autre"]
    for row in r["by_parcours"]:
        assert {k: row[k] for k in ("sessions", "people", "won")} == want["by_parcours"][row["parcours"]]


def test_the_results_and_times(played: Played):
    r, want = report(played), played.want
    assert r["results"] == {**want["results"], "in_progress": 0}
    assert r["results"] == {"won": 18, "lost": 3, "aborted": 3, "in_progress": 0}
    won = r["times"]["won"]
    assert (won["median_s"], won["min_s"], won["max_s"], won["count"]) == pytest.approx(want["won_times"])
    finished = r["times"]["finished"]
    assert (finished["median_s"], finished["min_s"], finished["max_s"], finished["count"]) == \
        pytest.approx(want["finished_times"])


def test_the_clues_per_puzzle_the_hardest_first(played: Played):
    r, want = report(played), played.want
    puzzles = {p["id"]: p for p in r["puzzles"]}
    for puzzle_id, clues in want["clues"].items():
        assert puzzles[puzzle_id]["clues"] == clues, puzzle_id
    held = want["held"]
    assert puzzles["mailbox"]["reached"] == puzzles["mailbox"]["solved_by_players"] == held
    assert puzzles["bell"]["reached"] == held and puzzles["bell"]["solved_by_players"] == want["results"]["won"]
    assert puzzles["final"]["reached"] == want["results"]["won"]
    assert puzzles["mailbox"]["clues_per_session"] == round(want["clues"]["mailbox"] / held, 2)
    per_session = [p["clues_per_session"] or 0 for p in r["puzzles"]]
    assert per_session == sorted(per_session, reverse=True), "the hardest first"
    assert r["puzzles"][0]["id"] == "mailbox"


def test_themes_ratings_and_follow_up_answers(played: Played):
    r, want = report(played), played.want
    assert {t["theme"]: t["groups"] for t in r["themes"]} == want["learned"]
    count, mean, distribution = want["ratings"]
    assert (r["ratings"]["count"], r["ratings"]["mean"]) == (count, mean)
    assert [d["count"] for d in r["ratings"]["distribution"]] == distribution
    f = r["followup"]
    assert (f["contacts"], f["called"], f["erased_uncalled"]) == (want["contacts"], want["called"], 1)
    q = {x["id"]: x for x in f["questions"]}
    assert [a["count"] for a in q["useful"]["answers"]] == want["useful"]
    assert [(a["answer"], a["count"]) for a in q["changed_at_home"]["answers"]] == [
        ("oui", want["changed"][0]), ("non", want["changed"][1])]
    assert [a["count"] for a in q["theme_used"]["answers"]] == want["theme_used"]
    assert q["theme_used"]["answers"][0]["answer"] == "le budget du mois"
    assert q["remark"]["answered"] == want["called"] and q["remark"]["answers"] == [], \
        "a free-text answer is counted, never shown"


def test_every_total_in_the_csv_files(played: Played):
    r, want = report(played), played.want
    summary = dict(table(played, "resume")[1:])
    assert summary["séances prévues"] == "24" and summary["séances tenues"] == "24"
    assert summary["objectif"] == "24" and summary["séances hors planning"] == "1"
    for key, words in (("people", "participants"), ("adults", "adultes inscrits"),
                       ("children", "enfants inscrits"), ("households", "foyers"),
                       ("first_visit_households", "foyers venus pour la première fois")):
        assert summary[words] == str(want[key]), words
    assert summary["parties : gagnée"] == "18" and summary["parties : temps écoulé"] == "3"
    assert summary["parties : arrêtée"] == "3"
    median_min = want["won_times"][0] / 60
    assert summary["temps des parties gagnées, médiane (min)"] == f"{median_min:.2f}".rstrip("0").rstrip(
        ".").replace(".", ","), "a decimal comma"
    assert summary["note moyenne (sur 5)"] == "3,6" == f"{want['ratings'][1]}".replace(".", ",")
    assert summary["foyers rappelés"] == str(want["called"]) == str(r["followup"]["called"])

    referral = table(played, "orientation")
    assert referral[0] == ["orientation", "groupes", "foyers", "adultes", "enfants", "personnes"]
    assert sum(int(row[5]) for row in referral[1:]) == want["adults"] + want["children"]
    sessions = table(played, "seances")
    assert len(sessions) - 1 == want["held"]
    assert sessions[1][0] == f"05/01/{YEAR}", "dates JJ/MM/AAAA"
    assert sum(int(row[2]) for row in sessions[1:]) == want["people"]
    puzzles = table(played, "enigmes")
    assert {row[1]: int(row[7]) for row in puzzles[1:]}["La boîte aux lettres"] == want["clues"]["mailbox"]
    # the theme named as config/sheet.yaml names it for every page
    budget = load_words().themes["budget"].title
    assert puzzles[1][:3] == ["1", "La boîte aux lettres", budget], "the hardest first, in words"
    ratings = table(played, "notes")
    assert [int(row[1]) for row in ratings[1:]] == want["ratings"][2]
    themes = table(played, "themes")
    assert sum(int(row[1]) for row in themes[1:]) == sum(want["learned"].values())
    followup = table(played, "suivi")
    useful = [row for row in followup if row[0].startswith("L'atelier vous a-t-il été utile")]
    assert [int(row[2]) for row in useful[1:]] == want["useful"]

    reply = played.client.get("/api/report/csv", params={"year": YEAR})
    assert reply.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(reply.content)) as z:
        assert sorted(z.namelist()) == sorted(f"{t}.csv" for t in CSV_TABLES)
        assert z.read("resume.csv").decode("utf-8") == played.client.get(
            "/api/report/csv/resume", params={"year": YEAR}).content.decode("utf-8")


def test_another_period_and_a_wrong_one(played: Played):
    before = report(played, year=YEAR - 1)
    assert (before["sessions"]["held"], before["participants"]["people"]) == (1, 6)
    assert before["participants"]["households"] == 2
    spring = report(played, **{"from": f"{YEAR}-03-01", "to": f"{YEAR}-05-31"})
    assert spring["sessions"]["planned"] == spring["sessions"]["held"] == 6
    assert spring["period"]["label"] == f"du 1 mars {YEAR} au 31 mai {YEAR}"
    reply = played.client.get("/api/report", params={"from": f"{YEAR}-05-01", "to": f"{YEAR}-04-01"})
    assert reply.status_code == 422 and "la date de début est après la date de fin" in reply.json()["detail"]
    assert played.client.get("/api/report", params={"year": 1900}).status_code == 422
    assert played.client.get("/api/report/csv/passwords", params={"year": YEAR}).status_code == 422


def test_no_name_no_number_no_free_text_in_any_export(played: Played):
    """The simulation wrote a game master's name, a note naming someone with a phone number,
    comments naming people, phone numbers and free-text answers naming people: none of it
    leaves in the report, its CSV files or its page."""
    exports = {"api": played.client.get("/api/report", params={"year": YEAR}).text,
               "page": played.client.get("/report", params={"year": YEAR}).text}
    with zipfile.ZipFile(io.BytesIO(played.client.get("/api/report/csv", params={"year": YEAR}).content)) as z:
        exports |= {name: z.read(name).decode("utf-8") for name in z.namelist()}
    # the secrets are really in the store: the check below would catch them if read
    history = played.client.get(f"/api/history/sessions/{played.sessions[1]}").json()
    assert "Dupontel" in history["comment"]
    for name, text in exports.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} in {name}"
        for session in played.sessions:
            assert session not in text, f"a session id in {name}"
    assert "les commentaires des groupes" in exports["page"], "the page says what it leaves out"


def test_the_page_has_its_charts_and_french_numbers(played: Played):
    page = played.client.get("/report", params={"year": YEAR})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html, want = page.text, played.want
    assert "<h1>Bilan de l'atelier « Appartement témoin »</h1>" in html
    assert "@page { size: A4" in html and "@media print" in html
    assert html.count('class="bar"') >= 5 + 4 + 5 and 'id="chart-referral"' in html
    assert f">{french_number(want['people'], 0)}</b>participants" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', ""), "nothing from the internet"


def test_the_command_line_writes_the_csv_and_the_html(played: Played, tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-m", "controller.cli", "report", "--year", str(YEAR),
         "--data-dir", str(played.db.parent), "--csv", str(tmp_path / "bilan.zip"),
         "--html", str(tmp_path / "bilan.html")], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    with zipfile.ZipFile(tmp_path / "bilan.zip") as z:
        summary = z.read("resume.csv").decode("utf-8")
    assert "séances tenues;24" in summary
    assert 'id="chart-results"' in (tmp_path / "bilan.html").read_text(encoding="utf-8")


def test_the_debrief_answers_are_added_up_when_the_store_keeps_them(tmp_path: Path):
    """The debrief's steps keep, per session, how many people picked each pictogram (table
    ``debrief_answers``): the report adds them up over the period, with their words."""
    clocks = FakeClocks()
    store = Store(tmp_path / "escape.db")
    try:
        assert year_report(store, Period.year(2025))["debrief"] == [], "no answers: no section"
        sessions = []
        for _ in range(2):
            engine = Engine(make_game(), clock=clocks.monotonic, wall=clocks.wall)
            engine.start(parcours="primo", players=3)
            engine.abort()
            store.save_session(to_record(engine), history_rows(engine), engine.take_journal())
            sessions.append(engine.session_id)
        with store.transaction() as db:
            db.executemany("INSERT INTO debrief_answers VALUES (?, ?, ?, ?)", [
                (sessions[0], "feelings", "happy", 2), (sessions[0], "feelings", "lost", 1),
                (sessions[1], "feelings", "happy", 3), (sessions[1], "at_home", "pay_first", 2)])
        r = year_report(store, Period.year(2025))
    finally:
        store.close()
    feelings, at_home = r["debrief"]
    assert [(a["choice"], a["count"]) for a in feelings["answers"]] == [("happy", 5), ("lost", 1)]
    assert [(a["choice"], a["count"]) for a in at_home["answers"]] == [("pay_first", 2)]
    assert "feelings" in {d["step"] for d in r["debrief"]} and r["participants"]["people"] == 6
    rows = list(csv.reader(io.StringIO(report_csvs(r)["debrief"][1:]), delimiter=";"))
    assert rows[1:] == [[feelings["label"], feelings["answers"][0]["label"], "5"],
                        [feelings["label"], feelings["answers"][1]["label"], "1"],
                        [at_home["label"], at_home["answers"][0]["label"], "2"]]
    page = report_html(r)
    chart = page[page.index('id="chart-debrief-feelings"'):]
    assert chart[:chart.index("</svg>")].count('<rect class="bar"') == 2, "one bar per pictogram picked"
    assert "Au débrief, les groupes ont dit" in page
    labels = debrief_labels()
    assert labels["pay_first"] == "Payer le loyer et les factures en premier"
    assert feelings["answers"][0]["label"] == labels["happy"]
    broken = tmp_path / "sheet.yaml"
    broken.write_text("themes: [\n", encoding="utf-8")
    assert debrief_labels(broken) == {}, "a words file that cannot be read: the ids are shown"


def test_a_pdf_chromium_cannot_print_is_said_in_french(played: Played, monkeypatch: pytest.MonkeyPatch):
    from controller.api.routes import report as report_routes

    def broken(_html: str, _out: Path) -> None:
        raise subprocess.CalledProcessError(1, ["chromium"])
    monkeypatch.setattr(report_routes, "write_pdf", broken)
    reply = played.client.get(f"/report/{YEAR}.pdf")
    assert reply.status_code == 503 and reply.json()["detail"].startswith("PDF impossible")
    assert played.client.get("/report/1999.pdf").status_code == 404
