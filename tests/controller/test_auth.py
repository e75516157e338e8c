"""Access control: roles declared on each route, HTTP and WebSocket alike
(controller/api/access.py), and the secrets of controller/api/auth.py."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from controller.api import access
from controller.api.access import GM, SCREEN, TECH
from controller.api.auth import COOKIE, AuthConfigError, AuthSettings
from controller.api.limiter import FailureLimiter
from controller.core.config import Settings
from protocol.settings import variables

SETTINGS = AuthSettings(gm_password="gm-password", tech_password="tech-password",
                        screen_secret="s" * 32)


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    access.install(app, SETTINGS)

    @app.get("/api/state", dependencies=[SCREEN])
    def state() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/api/emergency", dependencies=[GM])
    def emergency() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/api/clues/{clue_id}/shown", dependencies=[SCREEN])
    def shown(clue_id: str) -> dict[str, str]:
        return {"id": clue_id}

    @app.get("/api/tech/wiring/{node}", dependencies=[TECH])
    def wiring(node: str) -> dict[str, str]:
        return {"node": node}

    @app.websocket("/ws", dependencies=[SCREEN])
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    return TestClient(app, base_url="http://testserver")


def login(client: TestClient, password: str) -> int:
    return client.post("/api/login", json={"password": password}).status_code


def test_no_credentials_is_refused_on_http_and_websocket(client: TestClient) -> None:
    assert client.get("/api/state").status_code == 401
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect("/ws") as ws:
        ws.receive_text()
    assert exc.value.code == 1008


def test_wrong_password_sets_no_cookie(client: TestClient) -> None:
    assert login(client, "nope") == 401
    assert COOKIE not in client.cookies
    assert client.get("/api/state").status_code == 401


def test_game_master_session_cookie_is_httponly_and_opens_the_api(client: TestClient) -> None:
    reply = client.post("/api/login", json={"password": "gm-password"})
    assert reply.json() == {"role": "gm"}
    assert "httponly" in reply.headers["set-cookie"].lower()
    assert client.get("/api/state").status_code == 200
    assert client.post("/api/emergency", json={}).status_code == 200
    assert client.get("/api/tech/wiring/hall").status_code == 403
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "hello"


def test_technician_reaches_technician_routes(client: TestClient) -> None:
    assert login(client, "tech-password") == 200
    assert client.get("/api/me").json()["role"] == "tech"
    assert client.get("/api/tech/wiring/hall").status_code == 200


def test_forged_cookie_is_refused(client: TestClient) -> None:
    assert login(client, "gm-password") == 200
    good = client.cookies[COOKIE]
    client.cookies.set(COOKIE, good[:-2] + ("00" if not good.endswith("00") else "11"))
    assert client.get("/api/state").status_code == 401


def test_state_change_without_json_content_type_is_415(client: TestClient) -> None:
    assert login(client, "gm-password") == 200
    assert client.post("/api/emergency").status_code == 415
    assert client.post("/api/emergency", content=b"a=b",
                       headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
    assert client.post("/api/login", data={"password": "gm-password"}).status_code == 415


def test_room_screen_token_reads_and_acknowledges_only(client: TestClient) -> None:
    token = SETTINGS.screen_token("cuisine")
    assert client.get(f"/api/state?token={token}").status_code == 200
    assert client.post(f"/api/emergency?token={token}", json={}).status_code == 403
    assert client.post(f"/api/clues/abc/shown?token={token}", json={}).status_code == 200
    with client.websocket_connect(f"/ws?token={token}") as ws:
        assert ws.receive_text() == "hello"
    assert client.get(f"/api/state?token={token[:-1]}x").status_code == 401


def test_websocket_from_a_foreign_origin_is_closed_1008(client: TestClient) -> None:
    assert login(client, "gm-password") == 200
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect(
            "/ws", headers={"Origin": "http://evil.example"}) as ws:
        ws.receive_text()
    assert exc.value.code == 1008
    with client.websocket_connect("/ws", headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_text() == "hello"


def test_settings_refuse_missing_secrets_outside_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in variables(Settings):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AuthConfigError):
        AuthSettings.from_settings(Settings())
    demo = AuthSettings.from_settings(Settings(), demo=True)
    assert demo.gm_password and demo.tech_password and demo.screen_secret
    env = {"ESCAPE_GM_PASSWORD": "g" * 10, "ESCAPE_TECH_PASSWORD": "t" * 10,
           "ESCAPE_SCREEN_TOKEN_SECRET": "x" * 32}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert AuthSettings.from_settings(Settings()).login("g" * 10).role == "gm"


def test_repeated_wrong_passwords_are_throttled_per_address(client: TestClient) -> None:
    for _ in range(5):
        assert login(client, "nope") == 401
    reply = client.post("/api/login", json={"password": "gm-password"})   # even the right one
    assert reply.status_code == 429
    assert 1 <= int(reply.headers["retry-after"]) <= 60
    assert "trop d'essais" in reply.json()["detail"]
    assert COOKIE not in client.cookies
    other = TestClient(client.app, base_url="http://testserver", client=("10.0.0.2", 40000))
    assert login(other, "gm-password") == 200                              # another address


def test_failure_limiter_forgets_after_its_window() -> None:
    now = [100.0]
    limiter = FailureLimiter(limit=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("1.2.3.4") == 0
        limiter.fail("1.2.3.4")
        now[0] += 10
    assert limiter.retry_after("1.2.3.4") == 30          # the first failure was 30 s ago
    assert limiter.retry_after("5.6.7.8") == 0
    now[0] += 30
    assert limiter.retry_after("1.2.3.4") == 0
    limiter.fail("1.2.3.4")
    limiter.clear("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") == 0


def test_repeated_wrong_screen_tokens_are_throttled(client: TestClient) -> None:
    bad = "cuisine." + "0" * 32
    for _ in range(5):
        assert client.get(f"/api/state?token={bad}").status_code == 401
    reply = client.get(f"/api/state?token={SETTINGS.screen_token('cuisine')}")
    assert reply.status_code == 429 and int(reply.headers["retry-after"]) >= 1
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect(f"/ws?token={bad}") as ws:
        ws.receive_text()
    assert exc.value.code == 1008
    assert login(client, "gm-password") == 200           # a password login is another matter
    other = TestClient(client.app, base_url="http://testserver", client=("10.0.0.3", 40000))
    assert other.get(f"/api/state?token={SETTINGS.screen_token('cuisine')}").status_code == 200
