"""Access control for the HTTP API, the WebSocket and the web pages.

Roles
    ``gm``      game master: the console, the rehearsal page, every order.
    ``tech``    technician: everything the game master can, and the technician page.
    ``screen``  an in-room screen: read-only, one room, identified by a token in its URL
                (``/screen/<room>?token=<room>.<mac>``); it may only acknowledge a clue.

How
    The game master and the technician log in with a password on ``/login``
    (``POST /api/login`` with JSON ``{"password": …}``); the controller answers with an
    HttpOnly, SameSite=Strict session cookie signed with HMAC-SHA256 (stdlib ``hmac``, no
    extra dependency). A room screen carries its token in the query string (``?token=``)
    or the ``X-Screen-Token`` header. The token is ``<room>.<HMAC(secret, "screen:<room>")>``,
    so it can be printed once, stuck in the screen's kiosk URL, and revoked for every room
    by changing ``ESCAPE_SCREEN_TOKEN_SECRET``.

    One pure ASGI middleware checks every request, HTTP and WebSocket alike, so a route
    added later is protected without a line of its own:

    * no or wrong credentials: HTTP 401 (pages redirect to ``/login``), WebSocket close 1008;
    * a WebSocket handshake whose ``Origin`` is not this host: close 1008 (browsers always
      send Origin; a client without one, e.g. a script, still needs credentials);
    * a state-changing request (POST/PUT/PATCH/DELETE) without ``Content-Type:
      application/json``: 415 — a cross-site HTML form cannot send that type without a
      CORS preflight, which this app never grants;
    * the ``screen`` role: 403 on anything but reading the state and ``POST
      /api/clues/{id}/shown``; the ``gm`` role: 403 on the technician's routes;
    * 5 wrong passwords (``POST /api/login``) or 5 wrong screen tokens within a minute from
      one client address: HTTP 429 with ``Retry-After`` (WebSocket: close 1008) until the
      oldest of them is a minute old (:class:`FailureLimiter`).

Credentials come from the environment, never from the repository:
``ESCAPE_GM_PASSWORD``, ``ESCAPE_TECH_PASSWORD``, ``ESCAPE_SCREEN_TOKEN_SECRET`` (or the
same names with ``_FILE`` pointing at a ``chmod 600`` file), optional
``ESCAPE_SESSION_SECRET`` (random per start when unset: sessions then end with a restart).
The demo generates random ones and prints them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from controller.api.errors import ApiError, error_body
from controller.api.models import LoggedIn, LoggedOut, Me
from controller.core.config import (
    GM_PASSWORD,
    REQUIRED_SECRETS,
    SCREEN_TOKEN_SECRET,
    SESSION_SECRET,
    TECH_PASSWORD,
)
from protocol.secrets import read_secret_file

log = logging.getLogger(__name__)

Role = Literal["gm", "tech", "screen"]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "escape_session"
SESSION_S = 12 * 3600
#: paths anyone may reach: the login, the health probe, the assets (no data in them)
PUBLIC = re.compile(r"^/(login|api/login|api/logout|api/health|static/.*|favicon\.ico)$")
#: pages that need a logged-in game master or technician (they redirect to /login)
STAFF_PAGES = re.compile(r"^/(|console|rehearsal|tech|history|debrief)$")
#: what a room screen may do besides reading
SCREEN_POSTS = re.compile(r"^/api/clues/[^/]+/shown$")
SCREEN_READS = re.compile(r"^/(ws|api/me|api/state|screen/[^/]+)$")
TECH_ONLY = re.compile(r"^/(tech|api/tech/.*|api/config/.*)$")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
WS_POLICY_VIOLATION = 1008
#: wrong passwords (or screen tokens) allowed per client address within FAILURE_WINDOW_S
MAX_FAILURES = 5
FAILURE_WINDOW_S = 60.0


class AuthConfigError(RuntimeError):
    """Credentials are missing or unusable outside demo mode."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a role, and the room for a screen."""

    role: Role
    room: str | None = None

    @property
    def who(self) -> str:
        """The name written in the audit log."""
        return {"gm": "game master", "tech": "technician"}.get(self.role, f"screen {self.room}")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """The secrets of one controller process. ``enabled=False`` lets everyone in as ``tech``
    (the default of :func:`controller.main.create_app`, for benches and unit tests only)."""

    gm_password: str = ""
    tech_password: str = ""
    screen_secret: str = ""
    session_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    enabled: bool = True

    @classmethod
    def disabled(cls) -> AuthSettings:
        return cls(enabled=False)

    @classmethod
    def generate(cls) -> AuthSettings:
        """Random credentials, for the demo (printed on its console)."""
        return cls(gm_password=secrets.token_urlsafe(9), tech_password=secrets.token_urlsafe(9),
                   screen_secret=secrets.token_hex(32))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, demo: bool = False) -> AuthSettings:
        """Read ``ESCAPE_GM_PASSWORD`` & co (or ``…_FILE``); in demo mode generate what is
        missing, otherwise refuse to start without them."""
        env = os.environ if environ is None else environ

        def secret(name: str) -> str:
            value = env.get(name, "")
            if not value and env.get(f"{name}_FILE"):
                value = read_secret_file(env[f"{name}_FILE"])
            return value

        made = cls.generate()
        values = {"gm_password": secret(GM_PASSWORD), "tech_password": secret(TECH_PASSWORD),
                  "screen_secret": secret(SCREEN_TOKEN_SECRET)}
        missing = [k for k, v in values.items() if not v]
        if missing and not demo:
            msg = (f"set {', '.join(REQUIRED_SECRETS)} (or their _FILE variants; "
                   "`escape-apartment broker credentials` writes them all into controller.env); "
                   f"missing: {', '.join(missing)}")
            raise AuthConfigError(msg)
        for key in missing:
            values[key] = getattr(made, key)
        for key in ("gm_password", "tech_password"):
            if not demo and len(values[key]) < 8:
                msg = f"{key} is shorter than 8 characters"
                raise AuthConfigError(msg)
        session = secret(SESSION_SECRET) or made.session_secret
        return cls(session_secret=session, **values)

    # -- room screens ---------------------------------------------------------------
    def screen_token(self, room: str) -> str:
        mac = hmac.new(self.screen_secret.encode(), f"screen:{room}".encode(), hashlib.sha256)
        return f"{room}.{mac.hexdigest()[:32]}"

    def check_screen_token(self, token: str) -> Principal | None:
        room, _, _mac = token.partition(".")
        if not room or not self.screen_secret:
            return None
        if hmac.compare_digest(token.encode(), self.screen_token(room).encode()):
            return Principal("screen", room)
        return None

    # -- sessions -------------------------------------------------------------------
    def login(self, password: str) -> Principal | None:
        # NOTE: both compared every time, in constant time, so timing tells nothing.
        tech = hmac.compare_digest(password.encode(), self.tech_password.encode())
        gm = hmac.compare_digest(password.encode(), self.gm_password.encode())
        if tech and self.tech_password:
            return Principal("tech")
        if gm and self.gm_password:
            return Principal("gm")
        return None

    def _mac(self, body: str) -> str:
        return hmac.new(self.session_secret.encode(), body.encode(), hashlib.sha256).hexdigest()

    def session_cookie(self, principal: Principal, *, now: float | None = None) -> str:
        payload = json.dumps({"r": principal.role, "exp": int((now or time.time()) + SESSION_S)})
        body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body)}"

    def check_cookie(self, value: str, *, now: float | None = None) -> Principal | None:
        body, _, mac = value.partition(".")
        if not body or not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if data.get("r") not in ("gm", "tech") or data.get("exp", 0) < (now or time.time()):
            return None
        return Principal(data["r"])


class FailureLimiter:
    """Counts failed attempts per client address: more than *limit* within *window_s*
    seconds and that address is refused (``retry_after`` > 0) until the oldest failure is
    *window_s* old. Other addresses are not affected. Memory stays bounded."""

    MAX_KEYS = 10_000

    def __init__(self, limit: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = self.clock() - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def retry_after(self, key: str) -> int:
        """Seconds before *key* may try again (0: it may now)."""
        failures = self._recent(key)
        if failures is None or len(failures) < self.limit:
            return 0
        return max(1, int(failures[0] + self.window_s - self.clock() + 0.999))

    def fail(self, key: str) -> None:
        if len(self._failures) >= self.MAX_KEYS:
            for old in list(self._failures):
                self._recent(old)
            if len(self._failures) >= self.MAX_KEYS:   # still full: forget the oldest address
                self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(key, deque(maxlen=self.limit)).append(self.clock())

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


def client_address(scope: Scope) -> str:
    """The peer's address (behind a reverse proxy: run uvicorn with ``--proxy-headers``)."""
    client = scope.get("client")
    return str(client[0]) if client else "?"


def throttled_message(seconds: int) -> tuple[str, str]:
    return (f"trop d'essais incorrects : réessayez dans {seconds} s",
            f"too many wrong attempts: try again in {seconds} s")


#: why a request is refused (French, English); the body is controller/api/errors.py's
NEEDS_JSON = ("une requête qui change quelque chose doit être envoyée en JSON "
              "(Content-Type: application/json)",
              "state-changing requests need Content-Type: application/json")
FOREIGN_ORIGIN = ("connexion WebSocket refusée : elle vient d'un autre site",
                  "WebSocket from a foreign origin")
LOGIN_REQUIRED = ("connexion requise : connectez-vous sur /login", "login required: log in on /login")
SCREEN_ACK_ONLY = ("un écran de salle peut seulement confirmer l'affichage d'un indice",
                   "a room screen may only acknowledge a clue")
SCREEN_READ_ONLY = ("un écran de salle peut seulement lire", "a room screen may only read")
OTHER_ROOM = ("ce jeton est celui d'une autre salle", "this token is for another room")
TECH_ONLY_TEXT = ("réservé au technicien", "technician only")


# -- the middleware ---------------------------------------------------------------------
def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def identify(settings: AuthSettings, scope: Scope, *,
             tokens: FailureLimiter | None = None) -> Principal | None:
    """The principal a request or handshake speaks for, or None (a wrong screen token is
    counted in *tokens*)."""
    if not settings.enabled:
        return Principal("tech")
    headers = _headers(scope)
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:   # a malformed Cookie header only means "no credentials"
        cookie = SimpleCookie()
    if COOKIE in cookie and (who := settings.check_cookie(cookie[COOKIE].value)):
        return who
    token = headers.get("x-screen-token") or _query(scope).get("token", "")
    if not token:
        return None
    who = settings.check_screen_token(token)
    if who is None and tokens is not None:
        tokens.fail(client_address(scope))
    return who


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[0] for k, v in parse_qs(raw).items()}


def same_origin(scope: Scope) -> bool:
    headers = _headers(scope)
    origin = headers.get("origin")
    if origin is None:
        return True   # not a browser: cannot be a cross-site page; credentials still needed
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


def decide(settings: AuthSettings, scope: Scope,  # noqa: PLR0911 - one return per rule reads as the policy table
           tokens: FailureLimiter | None = None) -> tuple[int, tuple[str, str]] | Principal:
    """Either the principal allowed to go on, or (status, (French, English)) to refuse with."""
    path: str = scope["path"]
    method: str = scope.get("method", "GET").upper()
    json_body = _headers(scope).get("content-type", "").split(";")[0].strip() == "application/json"
    if scope["type"] == "http" and method in UNSAFE and not json_body:
        return 415, NEEDS_JSON
    if scope["type"] == "websocket" and not same_origin(scope):
        return 403, FOREIGN_ORIGIN
    if scope["type"] == "http" and PUBLIC.match(path):
        return Principal("tech") if not settings.enabled else Principal("screen", None)
    if tokens is not None and (wait := tokens.retry_after(client_address(scope))):
        headers = _headers(scope)
        if "x-screen-token" in headers or "token" in _query(scope):
            return 429, throttled_message(wait)
    who = identify(settings, scope, tokens=tokens)
    if who is None:
        return 401, LOGIN_REQUIRED
    if who.role == "screen":
        if method in UNSAFE and not SCREEN_POSTS.match(path):
            return 403, SCREEN_ACK_ONLY
        if method not in UNSAFE and not SCREEN_READS.match(path):
            return 403, SCREEN_READ_ONLY
        screen_page = re.match(r"^/screen/([^/]+)$", path)
        if screen_page and screen_page.group(1) != who.room:
            return 403, OTHER_ROOM
    elif who.role == "gm" and TECH_ONLY.match(path):
        return 403, TECH_ONLY_TEXT
    return who


class AuthMiddleware:
    """Pure ASGI middleware: HTTP and WebSocket go through the same :func:`decide`."""

    def __init__(self, app: ASGIApp, *, settings: AuthSettings) -> None:
        self.app = app
        self.settings = settings
        #: wrong screen tokens per client address (a token is an HMAC: this only cuts noise)
        self.tokens = FailureLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        verdict = decide(self.settings, scope, self.tokens)
        if isinstance(verdict, Principal):
            scope.setdefault("state", {})["principal"] = verdict
            await self.app(scope, receive, send)
            return
        status, (reason, reason_en) = verdict
        if scope["type"] == "websocket":
            log.warning("WebSocket refused (%s): %s", reason_en, scope["path"])
            await receive()   # websocket.connect
            # a close reason is at most 123 bytes of UTF-8: each of ours fits
            await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION, "reason": reason})
            return
        if status == 401 and scope.get("method") == "GET" and STAFF_PAGES.match(scope["path"]):
            target = quote(scope["path"] or "/")
            await _respond(send, 303, b"", [(b"location", f"/login?next={target}".encode())])
            return
        body = json.dumps(error_body(reason, reason_en)).encode()
        headers = [(b"content-type", b"application/json")]
        if status == 429:
            wait = self.tokens.retry_after(client_address(scope))
            headers.append((b"retry-after", str(max(wait, 1)).encode()))
        await _respond(send, status, body, headers)


async def _respond(send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# -- login routes -----------------------------------------------------------------------
router = APIRouter(prefix="/api", tags=["auth"])


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=200)


def _settings(request: Request) -> AuthSettings:
    return request.app.state.auth


def _login_limiter(request: Request) -> FailureLimiter:
    limiter = getattr(request.app.state, "login_limiter", None)
    if limiter is None:
        limiter = request.app.state.login_limiter = FailureLimiter()
    return limiter


@router.post("/login", response_model=LoggedIn)
def login(body: LoginIn, request: Request, response: Response) -> dict[str, Any]:
    """Log in; after 5 wrong passwords within a minute from one address, that address gets
    429 (with ``Retry-After``) even with the right one, until the minute has passed."""
    settings = _settings(request)
    limiter, address = _login_limiter(request), client_address(request.scope)
    if wait := limiter.retry_after(address):
        log.warning("login from %s refused: too many wrong passwords", address)
        fr, en = throttled_message(wait)
        raise ApiError(429, fr, en=en, headers={"Retry-After": str(wait)})
    who = settings.login(body.password) if settings.enabled else Principal("tech")
    if who is None:
        limiter.fail(address)
        log.warning("failed login from %s", address)
        raise ApiError(401, "mot de passe incorrect", en="wrong password")
    limiter.clear(address)
    response.set_cookie(COOKIE, settings.session_cookie(who), max_age=SESSION_S, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return {"role": who.role}


@router.post("/logout", response_model=LoggedOut)
def logout(response: Response) -> dict[str, bool]:
    response.delete_cookie(COOKIE, path="/")
    return {"ok": True}


@router.get("/me", response_model=Me)
def me(request: Request) -> dict[str, Any]:
    who: Principal = request.state.principal
    return {"role": who.role, "room": who.room}


def principal(request: HTTPConnection) -> Principal:
    """The caller (set by :class:`AuthMiddleware`) of a request or a WebSocket."""
    return getattr(request.state, "principal", Principal("gm"))
