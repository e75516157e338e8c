"""The year's calendar and the follow-up calls, over HTTP (TestClient on the real app, the
embedded broker, a fake clock): plan, register groups (6 at most, children included),
start pre-filled, record a consent, the call list a month later, the number erased once
called or after 3 months, export and erase on request, an audit line for each access."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from controller.followup import Followup, purge_every
from tests.controller.conftest import FakeClocks

DAY = 24 * 3600
CLIENT_HEADERS = {"Content-Type": "application/json"}   # for the conftest's client
GROUP = {"adults": 2, "children": 1, "households": 1, "tenancy": "primo", "referral": "ccas",
         "first_visit": True}


def refused(reply, status: int, words: str) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert words in body["detail"], body
    assert body["detail_en"], "English beside the French"


def plan(client: TestClient, **fields) -> dict:
    reply = client.post("/api/planning", json={"date": "2026-03-12", "time": "14:00",
                                               "game_master": "Awa", "parcours": "locataire", **fields})
    assert reply.status_code == 201, reply.text
    return reply.json()


def played_session(client: TestClient) -> str:
    """A planned session started from the calendar, then aborted: a finished session."""
    planned = plan(client)
    assert client.post(f"/api/planning/{planned['id']}/groups", json=GROUP).status_code == 201
    assert client.post(f"/api/planning/{planned['id']}/check").status_code == 200
    assert client.post("/api/game/briefing", json={"override_reason": "essai"}).status_code == 200
    assert client.post("/api/game/start", json={}).status_code == 200
    assert client.post("/api/game/stop", json={}).status_code == 200
    return client.get(f"/api/planning/{planned['id']}").json()["session_id"]


# -- the calendar ------------------------------------------------------------------------------
def test_a_planned_session_lists_in_date_order_with_its_groups_counted(client: TestClient):
    later = plan(client, date="2026-03-26")
    first = plan(client, date="2026-03-12", time="09:30", game_master="Marc", parcours="primo")
    client.post(f"/api/planning/{first['id']}/groups", json=GROUP)
    reply = client.post(f"/api/planning/{first['id']}/groups",
                        json={**GROUP, "adults": 1, "children": 0, "referral": "osica_cal",
                              "tenancy": "locataire", "first_visit": False})
    assert reply.status_code == 201, reply.text
    listed = client.get("/api/planning", params={"from": "2026-03-01", "to": "2026-03-31"}).json()["sessions"]
    assert [s["id"] for s in listed] == [first["id"], later["id"]]
    got = listed[0]
    assert (got["adults"], got["children"], got["households"], got["players"], got["places_left"]) == (3, 1, 2, 4, 2)
    assert [g["referral_label"] for g in got["groups"]] == ["CCAS", "OSICA (commission d'attribution)"]
    assert [g["first_visit"] for g in got["groups"]] == [True, False]
    assert (got["game_master"], got["time"], got["parcours"]) == ("Marc", "09:30", "primo")


def test_a_seventh_player_is_refused_children_included_and_nothing_is_written(client: TestClient):
    planned = plan(client)
    client.post(f"/api/planning/{planned['id']}/groups", json={**GROUP, "adults": 2, "children": 2})
    reply = client.post(f"/api/planning/{planned['id']}/groups", json={**GROUP, "adults": 1, "children": 2})
    refused(reply, 409, "6 joueurs au plus, enfants compris : ce groupe ferait 7 personnes (déjà 4 inscrites)")
    assert client.get(f"/api/planning/{planned['id']}").json()["players"] == 4
    # one group alone above 6 too
    refused(client.post(f"/api/planning/{plan(client)['id']}/groups", json={**GROUP, "adults": 3, "children": 4}),
            409, "ce groupe ferait 7 personnes")


def test_two_groups_registered_at_once_cannot_overfill_a_session(client: TestClient):
    """Two tablets register 4 people each on the same empty session at the same moment:
    the cap is checked inside the write's transaction, so exactly one gets in."""
    planned = plan(client)
    url = f"/api/planning/{planned['id']}/groups"
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: client.post(url, json={**GROUP, "adults": 3, "children": 1}).status_code,
                                   range(8)))
    assert statuses == [201] + [409] * 7
    assert client.get(f"/api/planning/{planned['id']}").json()["players"] == 4


@pytest.mark.parametrize(("body", "words"), [
    ({**GROUP, "adults": 0, "children": 2}, "au moins un adulte"),
    ({**GROUP, "referral": "mairie"}, "referral"),
    ({**GROUP, "tenancy": "proprietaire"}, "tenancy"),
    ({**GROUP, "adults": "2"}, "adults : doit être un nombre entier"),
    ({**GROUP, "households": 4}, "plus de foyers que de personnes"),
])
def test_a_wrong_group_gets_a_french_error_and_changes_nothing(client: TestClient, body: dict, words: str):
    planned = plan(client)
    refused(client.post(f"/api/planning/{planned['id']}/groups", json=body), 422, words)
    assert client.get(f"/api/planning/{planned['id']}").json()["groups"] == []


def test_a_wrong_plan_is_refused_in_french(client: TestClient):
    refused(client.post("/api/planning", json={"date": "2026-02-30", "time": "14:00", "game_master": "Awa",
                                               "parcours": "primo"}), 422, "date : doit être une date")
    refused(client.post("/api/planning", json={"date": "2026-03-12", "time": "25:00", "game_master": "Awa",
                                               "parcours": "primo"}), 422, "time : forme incorrecte")
    refused(client.post("/api/planning", json={"date": "2026-03-12", "time": "14:00", "game_master": "  ",
                                               "parcours": "primo"}), 422, "game_master : au moins 1")
    refused(client.get("/api/planning/999"), 404, "séance prévue inconnue : n° 999")
    assert client.get("/api/planning").json()["sessions"] == []


def test_the_game_starts_pre_filled_from_the_plan_and_the_plan_is_then_fixed(client: TestClient):
    planned = plan(client, parcours="locataire")
    refused(client.post(f"/api/planning/{planned['id']}/check"), 409, "aucun groupe inscrit")
    client.post(f"/api/planning/{planned['id']}/groups", json={**GROUP, "adults": 3, "children": 2})
    reply = client.post(f"/api/planning/{planned['id']}/check")
    assert reply.status_code == 200 and reply.json()["phase"] == "check"
    game = client.get("/api/state").json()["game"]
    assert (game["parcours"], game["players"], game["children"]) == ("locataire", 5, True)
    linked = client.get(f"/api/planning/{planned['id']}").json()
    assert linked["session_id"] == game["session"]
    refused(client.post(f"/api/planning/{planned['id']}/groups", json=GROUP), 409, "a déjà été jouée")
    refused(client.delete(f"/api/planning/{planned['id']}"), 409, "a déjà été jouée")
    refused(client.post(f"/api/planning/{planned['id']}/check"), 409, "a déjà été lancée")


def test_a_plan_cannot_be_prepared_during_a_game_and_stays_unplayed(client: TestClient):
    assert client.post("/api/game/start", json={"parcours": "primo", "players": 2}).status_code == 200
    planned = plan(client)
    client.post(f"/api/planning/{planned['id']}/groups", json=GROUP)
    refused(client.post(f"/api/planning/{planned['id']}/check"), 409, "la partie est")
    assert client.get(f"/api/planning/{planned['id']}").json()["session_id"] is None
    game = client.get("/api/state").json()["game"]
    assert (game["phase"], game["players"]) == ("running", 2), "the game in play is untouched"


def test_today_lists_the_days_sessions_only(client: TestClient, clocks: FakeClocks):
    today = dt.datetime.fromtimestamp(clocks.now).date()
    mine = plan(client, date=today.isoformat())
    plan(client, date=(today + dt.timedelta(days=1)).isoformat())
    assert [s["id"] for s in client.get("/api/planning?today=true").json()["sessions"]] == [mine["id"]]


def test_change_and_cancel_a_session_not_played(client: TestClient):
    planned = plan(client)
    changed = client.patch(f"/api/planning/{planned['id']}", json={"time": "10:00", "game_master": "Léa"}).json()
    assert (changed["time"], changed["game_master"], changed["date"]) == ("10:00", "Léa", "2026-03-12")
    with_group = client.post(f"/api/planning/{planned['id']}/groups", json=GROUP).json()
    gone = client.delete(f"/api/planning/{planned['id']}/groups/{with_group['groups'][0]['id']}").json()
    assert gone["groups"] == []
    assert client.delete(f"/api/planning/{planned['id']}").json() == {"ok": True}
    refused(client.get(f"/api/planning/{planned['id']}"), 404, "inconnue")


# -- the follow-up calls ----------------------------------------------------------------------
def test_no_number_without_consent_and_a_wrong_number_is_refused(client: TestClient):
    session = played_session(client)
    url = f"/api/followup/sessions/{session}/contacts"
    refused(client.post(url, json={"phone": "0612345678", "consent": False}), 422, "sans accord")
    refused(client.post(url, json={"phone": "12345", "consent": True}), 422, "numéro de téléphone incorrect")
    assert client.get("/api/followup/calls?all=true").json()["contacts"] == []
    refused(client.post("/api/followup/sessions/nope/contacts", json={"phone": "0612345678", "consent": True}),
            404, "session inconnue")


def test_a_consent_is_due_a_month_later_and_the_number_goes_once_called(client: TestClient, clocks: FakeClocks):
    session = played_session(client)
    contact = client.post(f"/api/followup/sessions/{session}/contacts",
                          json={"phone": "+33 6 12 34 56 78", "consent": True}).json()
    assert contact["phone"] == "0612345678"
    assert client.get("/api/followup/calls").json()["contacts"] == [], "not due before a month"
    clocks.advance(31 * DAY)
    due = client.get("/api/followup/calls").json()["contacts"]
    assert [(c["id"], c["phone"]) for c in due] == [(contact["id"], "0612345678")]

    refused(client.post(f"/api/followup/contacts/{contact['id']}/call", json={"answers": {"useful": 7}}),
            422, "une note de 1 à 5")
    refused(client.post(f"/api/followup/contacts/{contact['id']}/call", json={"answers": {"age": 40}}),
            422, "question inconnue")
    called = client.post(f"/api/followup/contacts/{contact['id']}/call",
                         json={"answers": {"useful": 4, "changed_at_home": True, "theme_used": 1,
                                           "remark": "merci"}}).json()
    assert called["phone"] is None and called["erased_why"] == "called"
    assert called["answers"] == {"useful": 4, "changed_at_home": True, "theme_used": 1, "remark": "merci"}
    assert client.get("/api/followup/calls").json()["contacts"] == []
    refused(client.post(f"/api/followup/contacts/{contact['id']}/call", json={"answers": {}}), 409, "déjà")

    export = client.get(f"/api/followup/contacts/{contact['id']}").json()
    actions = [a["action"] for a in export["audit"]]
    assert actions == ["followup_consent", "followup_call", "followup_export"]
    assert "0612345678" not in str(export["audit"]), "the audit never holds the number"


def test_a_number_is_erased_after_3_months_even_if_never_called(client: TestClient, clocks: FakeClocks):
    session = played_session(client)
    contact = client.post(f"/api/followup/sessions/{session}/contacts",
                          json={"phone": "06 12 34 56 78", "consent": True}).json()
    clocks.advance(89 * DAY)
    assert client.get(f"/api/followup/contacts/{contact['id']}").json()["contact"]["phone"] == "0612345678"
    clocks.advance(2 * DAY)
    kept = client.get(f"/api/followup/contacts/{contact['id']}").json()
    assert kept["contact"]["phone"] is None and kept["contact"]["erased_why"] == "retention"
    assert "followup_erase" in [a["action"] for a in kept["audit"]]
    refused(client.post(f"/api/followup/contacts/{contact['id']}/call", json={"answers": {"useful": 3}}),
            409, "déjà effacé")


def test_the_hourly_round_erases_a_number_3_months_old_without_anyone_reading(client: TestClient,
                                                                               clocks: FakeClocks):
    session = played_session(client)
    contact = client.post(f"/api/followup/sessions/{session}/contacts",
                          json={"phone": "0612345678", "consent": True}).json()
    store = client.app.state.service.store
    clocks.advance(91 * DAY)
    assert store.read("SELECT phone FROM followup_contacts WHERE id = ?", (contact["id"],)) == [
        {"phone": "0612345678"}], "nobody read it yet"

    def erased() -> bool:
        return store.read("SELECT phone FROM followup_contacts WHERE id = ?", (contact["id"],)) == [
            {"phone": None}]

    async def one_round() -> None:
        # the loop never ends on its own: its first round (in a worker thread), then cut
        loop = asyncio.create_task(purge_every(Followup(store, wall=clocks.wall)))
        try:
            for _ in range(200):   # 10 s at most, a loaded machine
                if erased():
                    break
                await asyncio.sleep(0.05)
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        assert not loop.done() or loop.cancelled(), "the hourly loop ended on its own"

    asyncio.run(one_round())
    assert store.read("SELECT phone, erased_why FROM followup_contacts WHERE id = ?", (contact["id"],)) == [
        {"phone": None, "erased_why": "retention"}]


def test_a_household_is_erased_on_request_and_every_access_is_audited(client: TestClient, clocks: FakeClocks):
    session = played_session(client)
    contact = client.post(f"/api/followup/sessions/{session}/contacts",
                          json={"phone": "0712345678", "consent": True}).json()
    clocks.advance(31 * DAY)
    client.post(f"/api/followup/contacts/{contact['id']}/call", json={"answers": {"useful": 5}})
    assert client.delete(f"/api/followup/contacts/{contact['id']}").status_code == 200
    export = client.get(f"/api/followup/contacts/{contact['id']}").json()
    assert export["contact"]["phone"] is None and export["contact"]["answers"] == {}
    assert export["contact"]["erased_why"] == "request"
    audit = client.get(f"/api/history/sessions/{session}").json()["audit"]
    followup = [a["action"] for a in audit if a["action"].startswith("followup")]
    assert followup == ["followup_consent", "followup_call", "followup_erase", "followup_export"]
    lists = [a for a in client.get(f"/api/history/sessions/{session}").json()["audit"]
             if a["action"] == "followup_list"]
    assert lists == [], "the call list's audit line names no session"


def test_the_questionnaire_is_data_with_its_purpose_in_words(client: TestClient):
    q = client.get("/api/followup/questionnaire").json()
    assert "effacé après l'appel" in q["purpose"] and "3 mois" in q["purpose"]
    kinds = {x["id"]: x["kind"] for x in q["questions"]}
    assert kinds["useful"] == "scale" and kinds["theme_used"] == "choice"


def test_the_day_s_sessions_come_with_the_limit_and_the_controller_s_date(client: TestClient, clocks: FakeClocks):
    today = dt.datetime.fromtimestamp(clocks.wall()).date()
    mine = plan(client, date=today.isoformat(), time="10:00")
    plan(client, date=(today + dt.timedelta(days=1)).isoformat())
    listed = client.get("/api/planning?today=true").json()
    assert [s["id"] for s in listed["sessions"]] == [mine["id"]]
    assert (listed["max_players"], listed["today"]) == (6, today.isoformat())
    clocks.now += DAY   # the controller's clock moves on: tomorrow's list
    assert [s["id"] for s in client.get("/api/planning?today=true").json()["sessions"]] != [mine["id"]]


def test_the_plan_corrected_on_the_day_still_holds_six_at_most_children_included(client: TestClient):
    planned = plan(client, parcours="primo")
    client.post(f"/api/planning/{planned['id']}/groups", json={**GROUP, "adults": 3, "children": 2})
    # seven on the day (a cousin came): refused in the same words, nothing opened, nothing linked
    refused(client.post(f"/api/planning/{planned['id']}/check", json={"players": 7}), 409,
            "6 joueurs au plus, enfants compris")
    refused(client.post("/api/game/start", json={"players": 7}), 409, "6 joueurs au plus, enfants compris")
    assert client.get("/api/state").json()["game"]["phase"] == "idle"
    assert client.get(f"/api/planning/{planned['id']}").json()["session_id"] is None
    refused(client.post(f"/api/planning/{planned['id']}/check", json={"players": 13}), 422, "players")
    # one family did not come: 3 play, the plan is linked all the same
    reply = client.post(f"/api/planning/{planned['id']}/check", json={"players": 3, "children": False})
    assert reply.status_code == 200, reply.text
    game = client.get("/api/state").json()["game"]
    assert (game["parcours"], game["players"], game["children"]) == ("primo", 3, False)
    assert client.get(f"/api/planning/{planned['id']}").json()["session_id"] == game["session"]


def test_a_planned_session_started_without_the_check_is_linked_and_the_override_recorded(client: TestClient):
    planned = plan(client, parcours="locataire")
    client.post(f"/api/planning/{planned['id']}/groups", json=GROUP)
    reply = client.post(f"/api/planning/{planned['id']}/start", json={"who": "maître du jeu"})
    assert reply.status_code == 200, reply.text
    game = client.get("/api/state").json()["game"]
    assert (game["phase"], game["parcours"], game["players"], game["children"]) == ("running", "locataire", 3, True)
    assert client.get(f"/api/planning/{planned['id']}").json()["session_id"] == game["session"]
    assert ("check_override", "démarrage direct, sans vérification préalable") in [
        (a["action"], a["detail"]) for a in game["audit"]]
    refused(client.post(f"/api/planning/{planned['id']}/start", json={}), 409, "a déjà été lancée")
