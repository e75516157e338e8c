"""A simulated year of workshops, played through the controller's public surface only: the
HTTP API (plan, register groups, prepare from the plan, start, clues, evaluation, consent,
follow-up calls) and MQTT events from a bare paho client for the players' moves (a keypad
code, a bell press), on the controller's fake clocks. No pytest fixtures here.

The year is :data:`YEAR` (2026) on the controller tests' game (tests/controller/conftest.py):
24 sessions planned twice a month, 23 of them played, one not held; one session started
without the calendar; one more planned and played in December 2025 (outside the year). Every
figure of the report can be computed from :func:`workshops` with plain sums
(:func:`expected`), which the tests compare with the report.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol.contract import Topics
from tests.support.diskfull import RawRoom

YEAR = 2026
MIN = 60
DAY = 24 * 3600
REFERRALS = ("osica_cal", "ccas", "mds", "service_habitat", "autre")
THEMES = ("upkeep", "waste", "budget", "rights", "diy")
#: what must never leave the controller in a report (names, numbers, free text)
GAME_MASTER = "Awa Diallo"
NOTE = "Mme Bernardeau, tél. 06 11 22 33 44"
COMMENT = "Mme Dupontel a adoré, son fils Kevin aussi"
REMARK = "Rappelez Mme Martinez au 06 98 76 54 32"
SECRETS = ("Awa", "Diallo", "Bernardeau", "Dupontel", "Kevin", "Martinez", "06 11 22 33 44",
           "0611223344", "06 98 76 54 32", "0698765432", "06 12 34 56", "06123456")


class Http(Protocol):
    """What the simulation needs of an HTTP client (TestClient or httpx.Client)."""

    def get(self, url: str, **kw: Any) -> Any: ...
    def post(self, url: str, **kw: Any) -> Any: ...
    def put(self, url: str, **kw: Any) -> Any: ...


@dataclass
class Group:
    adults: int
    children: int
    households: int
    tenancy: str
    referral: str
    first_visit: bool


@dataclass
class Workshop:
    """One session of the year as the test plays it."""

    day: dt.date
    parcours: str
    groups: list[Group]
    result: str                       # won, lost, aborted, or "not_held"
    steps_min: tuple[int, int, int]   # minutes before the mailbox, the bell, the exit
    clues: dict[str, int]             # puzzle → clues sent
    rating: int | None
    learned: list[str]
    consent: bool
    answers: dict[str, Any] = field(default_factory=dict)
    planned: bool = True

    @property
    def players(self) -> int:
        return sum(g.adults + g.children for g in self.groups)


def workshops() -> list[Workshop]:
    """The 24 planned sessions of the year, then the one started without the calendar."""
    out = []
    for i in range(24):
        parcours = "primo" if i % 3 == 0 else "locataire"
        groups = [Group(adults=1 + i % 3, children=i % 2 + (i % 4 == 0), households=1,
                        tenancy=parcours, referral=REFERRALS[i % 5], first_visit=i % 4 != 3)]
        if i % 5 == 2:   # a second household registered on the same session
            groups.append(Group(adults=1, children=1 if i % 2 else 0, households=1, tenancy="locataire",
                                referral=REFERRALS[(i + 2) % 5], first_visit=True))
        result = ("not_held" if i == 23 else "lost" if i in (4, 11, 17) else
                  "aborted" if i in (8, 20) else "won")
        out.append(Workshop(
            day=dt.date(YEAR, i // 2 + 1, 5 if i % 2 == 0 else 19), parcours=parcours, groups=groups,
            result=result, steps_min=(8 + i % 5, 6 + i % 7, 10 + i % 4),
            clues={"mailbox": i % 3, "bell": int(i % 4 == 0), "final": int(i % 6 == 1 and result == "won")},
            rating=None if i in (5, 8, 20, 23) else 2 + (i * 3) % 4,
            learned=[t for k, t in enumerate(THEMES) if (i + k) % 3 == 0] if i not in (5, 8, 20, 23) else [],
            consent=i % 2 == 0 and result != "not_held",
            answers={"useful": 3 + i % 3, "changed_at_home": i % 4 != 0, "theme_used": i % 6,
                     "centre_activity": i % 3 == 0, "remark": REMARK}))
    out.append(Workshop(day=dt.date(YEAR, 6, 26), parcours="locataire",
                        groups=[Group(3, 0, 1, "locataire", "autre", True)], result="aborted",
                        steps_min=(12, 0, 0), clues={}, rating=None, learned=[], consent=False,
                        planned=False))
    return out


#: a session of the year before, planned and played: never in the year's figures
BEFORE = Workshop(day=dt.date(YEAR - 1, 12, 18), parcours="primo",
                  groups=[Group(4, 2, 2, "primo", "ccas", True)], result="won", steps_min=(5, 5, 5),
                  clues={"mailbox": 2}, rating=5, learned=["budget"], consent=False)


def expected(year: list[Workshop]) -> dict[str, Any]:
    """The report's figures for *year*, by plain sums over the sessions as played."""
    held = [w for w in year if w.result != "not_held"]
    held_planned = [w for w in held if w.planned]
    groups = [g for w in held_planned for g in w.groups]
    won_times = [60.0 * sum(w.steps_min) for w in held if w.result == "won"]
    finished = [_time_used(w) for w in held]
    ratings = [w.rating for w in held if w.rating is not None]
    learned = {t: sum(t in w.learned for w in held) for t in THEMES}
    clues: dict[str, int] = {}
    for w in held:
        for puzzle, n in w.clues.items():
            clues[puzzle] = clues.get(puzzle, 0) + n
    called = [w for w in held if w.consent][:-1]   # the last household is never called
    return {
        "planned": sum(w.planned for w in year), "held": len(held), "planned_held": len(held_planned),
        "unplanned": len(held) - len(held_planned),
        "people": sum(w.players for w in held),
        "adults": sum(g.adults for g in groups), "children": sum(g.children for g in groups),
        "households": sum(g.households for g in groups), "groups": len(groups),
        "first_visit_households": sum(g.households for g in groups if g.first_visit),
        "first_visit_people": sum(g.adults + g.children for g in groups if g.first_visit),
        "unregistered_people": sum(w.players for w in held if not w.planned),
        "by_referral": {r: {"groups": sum(g.referral == r for g in groups),
                            "people": sum(g.adults + g.children for g in groups if g.referral == r),
                            "households": sum(g.households for g in groups if g.referral == r)}
                        for r in REFERRALS},
        "by_parcours": {p: {"sessions": sum(w.parcours == p for w in held),
                            "people": sum(w.players for w in held if w.parcours == p),
                            "won": sum(w.parcours == p and w.result == "won" for w in held)}
                        for p in ("primo", "locataire")},
        "results": {r: sum(w.result == r for w in held) for r in ("won", "lost", "aborted")},
        "won_times": (statistics.median(won_times), min(won_times), max(won_times), len(won_times)),
        "finished_times": (statistics.median(finished), min(finished), max(finished), len(finished)),
        "clues": clues,
        "ratings": (len(ratings), round(statistics.fmean(ratings), 2),
                    [ratings.count(n) for n in range(1, 6)]),
        "learned": learned,
        "contacts": sum(w.consent for w in held), "called": len(called),
        "useful": [sum(w.answers["useful"] == n for w in called) for n in range(1, 6)],
        "changed": (sum(w.answers["changed_at_home"] for w in called),
                    sum(not w.answers["changed_at_home"] for w in called)),
        "theme_used": [sum(w.answers["theme_used"] == n for w in called) for n in range(6)],
    }


def _time_used(w: Workshop) -> float:
    if w.result == "won":
        return 60.0 * sum(w.steps_min)
    if w.result == "lost":
        return 3601.0   # the clock jumped a second past the hour: the time up is seen then
    return 60.0 * w.steps_min[0] + (60.0 * w.steps_min[1] if w.planned else 0)


class Year:
    """Plays :func:`workshops` on a controller: *http* its API, *advance* moves its fake
    clocks, *now* reads its wall clock; the rooms are bare MQTT clients on *broker*."""

    def __init__(self, http: Http, *, apartment: str, broker: tuple[str, int],
                 advance: Callable[[float], None], now: Callable[[], float]) -> None:
        self.http, self.advance, self.now = http, advance, now
        topics = Topics(apartment)
        self.hall = RawRoom(broker[0], broker[1], topics, "hall")
        self.salon = RawRoom(broker[0], broker[1], topics, "salon")
        self.hall.birth()
        self.salon.birth()
        self.sessions: list[str] = []
        self.contacts: list[tuple[int, Workshop]] = []

    def close(self) -> None:
        self.hall.close()
        self.salon.close()

    # -- helpers ---------------------------------------------------------------------------
    def _ok(self, reply: Any, status: int = 200) -> Any:
        assert reply.status_code == status, reply.text
        return reply.json()

    def _game(self) -> dict[str, Any]:
        return self.http.get("/api/state").json()["game"]

    def _wait(self, test: Callable[[dict[str, Any]], bool], what: str) -> None:
        deadline = time.monotonic() + 20
        while not test(self._game()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self._game()}"
            time.sleep(0.02)

    def _solved(self, puzzle: str) -> Callable[[dict[str, Any]], bool]:
        return lambda g: any(p["id"] == puzzle and p["status"] == "solved" for p in g["puzzles"])

    def _go_to(self, day: dt.date, hour: int = 14) -> None:
        target = dt.datetime(day.year, day.month, day.day, hour).timestamp()
        assert target >= self.now(), "the year is played in date order"
        self.advance(target - self.now())

    # -- the year --------------------------------------------------------------------------
    def play(self, year: list[Workshop]) -> None:
        for w in sorted(year, key=lambda w: w.day):
            self._go_to(w.day)
            self.call_due({c for c, _ in self.contacts[:-1]})
            self.workshop(w)
        # a month after the last session: the calls left, but for the last household,
        # whose number goes after 3 months uncalled
        self.advance(31 * DAY)
        self.call_due({c for c, _ in self.contacts[:-1]})
        self.advance(91 * DAY)
        self.http.get("/api/followup/calls", params={"all": "true"})

    def call_due(self, callable_ids: set[int]) -> None:
        answers = dict(self.contacts)
        for contact in self._ok(self.http.get("/api/followup/calls"))["contacts"]:
            if contact["id"] in callable_ids:
                self._ok(self.http.post(f"/api/followup/contacts/{contact['id']}/call",
                                        json={"answers": answers[contact["id"]].answers}))

    def workshop(self, w: Workshop) -> None:
        if w.planned:
            plan = self._ok(self.http.post("/api/planning", json={
                "date": w.day.isoformat(), "time": "14:00", "game_master": GAME_MASTER,
                "parcours": w.parcours, "note": NOTE}), 201)
            for g in w.groups:
                self._ok(self.http.post(f"/api/planning/{plan['id']}/groups", json=g.__dict__), 201)
            if w.result == "not_held":
                return
            self._ok(self.http.post(f"/api/planning/{plan['id']}/check"))
            self._ok(self.http.post("/api/game/briefing", json={"override_reason": "essai"}))
            self._ok(self.http.post("/api/game/start", json={}))
        else:
            self._ok(self.http.post("/api/game/start", json={"parcours": w.parcours, "players": w.players}))
        session = self._game()["session"]
        self.sessions.append(session)
        for _ in range(w.clues.get("mailbox", 0)):
            self._ok(self.http.post("/api/clues", json={"puzzle": "mailbox", "text": "Regardez le bail."}))
        self.advance(w.steps_min[0] * MIN)
        self.hall.event("keypad", "code", "0412" if w.parcours == "primo" else "1507")
        self._wait(self._solved("mailbox"), "the mailbox")
        for _ in range(w.clues.get("bell", 0)):
            self._ok(self.http.post("/api/clues", json={"puzzle": "bell", "text": "Sonnez."}))
        if w.result == "aborted":
            self.advance(w.steps_min[1] * MIN if w.planned else 0)
            self._ok(self.http.post("/api/game/stop", json={}))
        elif w.result == "lost":
            self.advance(3601 - w.steps_min[0] * MIN)
            self._wait(lambda g: g["phase"] == "lost", "time up")
        else:
            self.advance(w.steps_min[1] * MIN)
            self.salon.event("bell", "press", True)
            self._wait(self._solved("bell"), "the bell")
            for _ in range(w.clues.get("final", 0)):
                self._ok(self.http.post("/api/clues", json={"puzzle": "final", "text": "La sortie."}))
            self.advance(w.steps_min[2] * MIN)
            self.hall.event("keypad", "code", "9999")
            self._wait(lambda g: g["phase"] == "won", "the exit")
        if w.rating is not None:
            self._ok(self.http.put(f"/api/history/sessions/{session}/evaluation", json={
                "rating": w.rating, "learned": w.learned, "comment": COMMENT}))
        if w.consent:
            contact = self._ok(self.http.post(f"/api/followup/sessions/{session}/contacts", json={
                "phone": f"06 12 34 56 {len(self.contacts):02d}", "consent": True}), 201)
            self.contacts.append((contact["id"], w))
        if self._game()["phase"] in ("won", "lost", "aborted"):
            self._ok(self.http.post("/api/game/debrief", json={}))
            self._ok(self.http.post("/api/game/reset", json={}))
        self._wait(lambda g: g["phase"] == "idle", "the game back to idle")
