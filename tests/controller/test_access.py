"""Who may call what, over the real app (rehearsal routes too): every route declares its
role, the declarations are the access policy the pages rely on, each refusal happens over
HTTP before anything runs, the session cookie is signed, dated and kept when the clock steps
back, and a body too large is refused before it is read."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer

from config.game import Game
from controller.api import access
from controller.api.access import GM, PUBLIC
from controller.api.auth import COOKIE, SESSION_S, AuthSettings, Principal
from controller.main import MAX_BODY_BYTES, create_app
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle

AUTH = AuthSettings(gm_password="gm-password", tech_password="tech-password",
                    screen_secret="access-screen-secret", session_secret="access-session-secret")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

# The policy as the pages rely on it, written once more here on purpose, by path (what a
# page, a script or a screen calls), independent of how the routes declare it.
ANYONE = re.compile(r"^/(login|api/login|api/logout|api/health|favicon\.ico)$")
TECHNICIAN = re.compile(r"^/(tech|api/tech/.*|api/config/.*)$")
SCREEN_READS = re.compile(r"^/(ws|api/me|api/state|screen/[^/]+|api/media/files/[^/]+|api/speech/clues/[^/]+|api/speech/messages)$")
#: the media library: the game master reads it, the technician changes it
MEDIA_CHANGES = re.compile(r"^/api/media(/(?!play$|stop$|intro$|volume$|mute$|playing$)[^/]+)?$")
#: a screen acknowledges a clue, and says what it plays (its own room's only)
SCREEN_WRITES = re.compile(r"^/api/(clues/[^/]+/shown|media/playing)$")
PAGES = re.compile(r"^/(|console|rehearsal|tech|history|debrief|planning|followup|sheet/[^/]+|report|report/[^/]+\.pdf)$")


def policy(method: str, path: str) -> str | None:
    if ANYONE.match(path):
        return None
    if TECHNICIAN.match(path) or (method in UNSAFE and MEDIA_CHANGES.match(path)):
        return "tech"
    if SCREEN_WRITES.match(path) if method in UNSAFE else SCREEN_READS.match(path):
        return "screen"
    return "gm"


@pytest.fixture
def app(embedded_broker: BrokerHandle, tmp_path: Path, game: Game) -> Iterator[FastAPI]:
    application = create_app(game=game, auth=AUTH, demo=True, db_path=tmp_path / "escape.db",
                             broker=BrokerAddress(embedded_broker.host, embedded_broker.port))
    with TestClient(application):
        yield application


def client(app: FastAPI, password: str | None = None) -> TestClient:
    made = TestClient(app, follow_redirects=False, headers={"Content-Type": "application/json"})
    if password is not None:
        assert made.post("/api/login", json={"password": password}).status_code == 200
    return made


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "hall", path)


def test_every_route_declares_the_role_the_policy_gives_it(app: FastAPI) -> None:
    declared = access.route_roles(app)
    assert len(declared) >= 40, sorted(declared)
    wrong = {f"{method} {path}": role for (method, path), role in declared.items()
             if role != policy(method if method != "WS" else "GET", concrete(path))}
    assert wrong == {}, "declared roles that differ from the policy"
    assert {"/docs", "/openapi.json", "/api/sim/{node}/{prop}"} <= {path for _m, path in declared}


def test_each_refusal_over_http_matches_the_declared_role(app: FastAPI) -> None:
    """Anonymous, a room screen and the game master, on every HTTP route: refused exactly
    where the role is above theirs (nothing runs: these are refusals only)."""
    anonymous, gm = client(app), client(app, "gm-password")
    token = AUTH.screen_token("hall")
    checked = 0
    for (method, path), role in access.route_roles(app).items():
        if method in ("WS", "HEAD") or role is None:
            continue
        url = concrete(path)
        reply = anonymous.request(method, url, json={} if method in UNSAFE else None)
        if method == "GET" and PAGES.match(url):
            assert (reply.status_code, reply.headers["location"]) == (303, f"/login?next={url}"), url
        else:
            assert reply.status_code == 401, f"{method} {url}"
            assert reply.json()["detail"] == "connexion requise : connectez-vous sur /login"
        if role != "screen":
            reply = anonymous.request(method, url, json={} if method in UNSAFE else None,
                                      headers={"X-Screen-Token": token})
            assert reply.status_code == 403, f"{method} {url}"
            assert reply.json()["detail"].startswith("un écran de salle peut seulement")
        if role == "tech":
            reply = gm.request(method, url, json={} if method in UNSAFE else None)
            assert (reply.status_code, reply.json()["detail"]) == (403, "réservé au technicien"), url
        checked += 1
    assert checked >= 35


def test_a_room_screen_opens_its_own_page_only(app: FastAPI) -> None:
    screen = client(app)
    token = AUTH.screen_token("hall")
    assert screen.get(f"/screen/hall?token={token}").status_code == 200
    reply = screen.get(f"/screen/salon?token={token}")
    assert (reply.status_code, reply.json()["detail"]) == (403, "ce jeton est celui d'une autre salle")
    assert client(app, "gm-password").get("/screen/salon").status_code in (200, 404)   # staff: any


def test_an_app_with_a_route_that_declares_no_role_is_refused() -> None:
    bare = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    access.install(bare, AUTH)

    @bare.get("/api/declared", dependencies=[GM])
    def declared() -> dict[str, bool]:
        return {"ok": True}

    @bare.get("/api/public", dependencies=[PUBLIC])
    def public() -> dict[str, bool]:
        return {"ok": True}

    access.check_routes(bare)

    @bare.post("/api/forgotten")
    def forgotten() -> dict[str, bool]:
        return {"ok": True}

    with pytest.raises(RuntimeError, match="/api/forgotten"):
        access.check_routes(bare)


# -- the session cookie -------------------------------------------------------------------------
def test_the_session_cookie_is_httponly_strict_and_lasts_12_hours(app: FastAPI) -> None:
    reply = client(app).post("/api/login", json={"password": "tech-password"})
    attributes = {part.strip().split("=")[0].lower(): part.strip().partition("=")[2]
                  for part in reply.headers["set-cookie"].split(";")}
    assert "httponly" in attributes and attributes["samesite"].lower() == "strict"
    assert attributes["max-age"] == str(SESSION_S) == "43200" and attributes["path"] == "/"


def cookie_signed_at(when: float, monkeypatch: pytest.MonkeyPatch, role: str = "gm") -> str:
    with monkeypatch.context() as clock:
        clock.setattr(time, "time", lambda: when)
        return AUTH.session_cookie(Principal(role))  # type: ignore[arg-type]


def test_a_cookie_older_than_12_hours_is_refused(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    fresh = client(app)
    fresh.cookies.set(COOKIE, cookie_signed_at(now - SESSION_S + 60, monkeypatch))
    assert fresh.get("/api/me").json()["role"] == "gm"
    old = client(app)
    old.cookies.set(COOKIE, cookie_signed_at(now - SESSION_S - 60, monkeypatch))
    assert old.get("/api/me").status_code == 401


def test_a_wall_clock_stepped_back_keeps_the_game_master_logged_in(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signed at 15:00, the clock then stepped back to 14:00 (NTP): still logged in."""
    stepped = client(app)
    stepped.cookies.set(COOKIE, cookie_signed_at(time.time() + 3600, monkeypatch))
    assert stepped.get("/api/me").json()["role"] == "gm"


@pytest.mark.parametrize("forged", [
    URLSafeTimedSerializer("another-secret", salt="escape-apartment.session").dumps({"r": "tech"}),
    URLSafeTimedSerializer("access-session-secret", salt="another-use").dumps({"r": "tech"}),
    URLSafeTimedSerializer("access-session-secret", salt="escape-apartment.session").dumps({"r": "tech"}),
    "not-a-cookie",
])
def test_a_cookie_not_signed_by_this_controller_for_sessions_is_refused(app: FastAPI, forged: str) -> None:
    """Another secret, another use of the secret, or the default digest (SHA-1): refused."""
    forger = client(app)
    forger.cookies.set(COOKIE, forged)
    assert forger.get("/api/me").status_code == 401


# -- what happens before a route is chosen --------------------------------------------------------
def test_a_body_too_large_is_refused_before_it_is_read(app: FastAPI) -> None:
    anonymous, gm = client(app), client(app, "gm-password")
    big = b'{"parcours": "primo", "players": 3, "who": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert anonymous.post("/api/game/start", content=big).status_code == 413

    def chunks() -> Iterator[bytes]:   # no Content-Length: counted as it comes
        yield big[:1000]
        yield big[1000:]

    assert gm.post("/api/game/start", content=chunks()).status_code == 413
    assert gm.get("/api/state").json()["game"]["phase"] == "idle", "nothing started"


def test_the_api_description_is_for_staff(app: FastAPI) -> None:
    assert client(app).get("/openapi.json").status_code == 401
    token = AUTH.screen_token("hall")
    assert client(app).get(f"/docs?token={token}").status_code == 403
    gm = client(app, "gm-password")
    schema: dict[str, Any] = gm.get("/openapi.json").json()
    assert "/api/game/start" in schema["paths"]
    assert gm.get("/docs").status_code == 200 and gm.get("/redoc").status_code == 200


# -- the follow-up's numbers: the game master's role only (GDPR) ----------------------------------
#: the phone follow-up, page and API: the game master, and not the technician
GM_ONLY = re.compile(r"^/(followup|api/followup(/.*)?)$")


def test_the_follow_up_is_the_game_masters_only_the_technician_is_refused_in_french(app: FastAPI) -> None:
    only = access.only_routes(app)
    assert {path for _method, path in only} == {
        path for (_m, path) in access.route_roles(app) if GM_ONLY.match(concrete(path))}
    assert len(only) >= 7, sorted(only)
    tech, gm = client(app, "tech-password"), client(app, "gm-password")
    for method, path in sorted(only):
        url = re.sub(r"\{[^}]+\}", "1", path)
        reply = tech.request(method, url, json={} if method in UNSAFE else None)
        assert reply.status_code == 403, f"{method} {url}"
        assert reply.json()["detail"].startswith("réservé au maître du jeu : le suivi téléphonique"), url
        assert "GDPR" in reply.json()["detail_en"]
        # the game master gets past the role: an answer of the route itself
        assert gm.request(method, url, json={} if method in UNSAFE else None).status_code != 403, url
    # the page: the technician too is refused, after being asked to log in when nobody is
    assert client(app).get("/followup").status_code == 303
    assert tech.get("/followup").status_code == 403 and gm.get("/followup").status_code == 200
    # the rest of the game master's rights stay the technician's
    assert tech.get("/planning").status_code == 200 and tech.get("/api/planning").status_code == 200
