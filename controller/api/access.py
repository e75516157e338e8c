"""Who may call which route: role checks as FastAPI dependencies, declared on each route.

Who may call a route is declared on the route (or its router): ``dependencies=[GM]``.
:data:`PUBLIC` anyone, :data:`SCREEN` a room screen or staff, :data:`GM` the game master
or the technician, :data:`TECH` the technician only, :data:`GM_ONLY` the game master and
not the technician (the follow-up's phone numbers: GDPR limits them to the role that makes
the calls); :data:`GM_PAGE`, :data:`GM_ONLY_PAGE` and :data:`TECH_PAGE` likewise for the
pages, which send a visitor who is not logged in to ``/login``;
:data:`OWN_ROOM` a room's screen page. :func:`check_routes` refuses to build an app with a
route that declares none, so a route added later cannot be left open by forgetting.

* no or wrong credentials: HTTP 401 (pages redirect to ``/login``), WebSocket close 1008;
* the ``screen`` role on a staff route: 403 (it may read and acknowledge a clue only); on
  another room's screen page: 403; the ``gm`` role on a technician's route: 403; the
  ``tech`` role on a game-master-only route: 403;
* 5 wrong passwords (``POST /api/login``) or 5 wrong screen tokens within a minute from
  one client address: HTTP 429 with ``Retry-After`` (WebSocket: close 1008) until the
  oldest of them is a minute old (:class:`~controller.api.limiter.FailureLimiter`).

Two rules hold for every request, whatever its route, in one small ASGI middleware
(:class:`CrossSiteGuard`) that runs before any route is looked up: a WebSocket handshake
whose ``Origin`` is not this host is closed (1008; a client without Origin, e.g. a script,
still needs credentials), and a state-changing request (POST/PUT/PATCH/DELETE) without
``Content-Type: application/json`` (or ``application/octet-stream``, a file) gets 415 — a
cross-site HTML form cannot send those types without a CORS preflight, which this app
never grants.

Every refusal is French first (``controller/api/errors.py``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute, APIWebSocketRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, Mount

from controller.api.auth import COOKIE, SESSION_S, AuthSettings, Principal, Role
from controller.api.errors import ApiError, error_body
from controller.api.limiter import FailureLimiter, client_address
from controller.api.models import LoggedIn, LoggedOut, Me

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
#: the bodies a state-changing request may have: none of them can be sent by a cross-site
#: HTML form (it sends only form, multipart and text/plain) or by a script of another site
#: without a CORS preflight, never granted; octet-stream is a file upload (the media library)
BODY_TYPES = frozenset({"application/json", "application/octet-stream"})
WS_POLICY_VIOLATION = 1008
#: how far each role reaches: the technician can do everything the game master can
RANK: dict[Role, int] = {"screen": 0, "gm": 1, "tech": 2}


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
SCREEN_ACK_ONLY = ("un écran de salle peut seulement confirmer l'affichage d'un indice et dire ce qu'il joue",
                   "a room screen may only acknowledge a clue and say what it plays")
SCREEN_READ_ONLY = ("un écran de salle peut seulement lire", "a room screen may only read")
OTHER_ROOM = ("ce jeton est celui d'une autre salle", "this token is for another room")
TECH_ONLY_TEXT = ("réservé au technicien", "technician only")
GM_ONLY_TEXT = ("réservé au maître du jeu : le suivi téléphonique (numéros et réponses des foyers) "
                "n'est ouvert qu'au rôle maître du jeu (RGPD), pas au technicien",
                "game master only: the phone follow-up (households' numbers and answers) is open "
                "to the game master's role only (GDPR), not to the technician")


# -- who is asking ------------------------------------------------------------------------
class LoginRedirect(Exception):
    """A page asked by someone not logged in: answered by a redirect to ``/login``."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _refusal(conn: HTTPConnection, status: int, texts: tuple[str, str], *,
             retry_after: int = 0) -> Exception:
    """What to raise to refuse *conn*: a WebSocket is closed 1008 with the French reason."""
    fr, en = texts
    if conn.scope["type"] == "websocket":
        log.warning("WebSocket refused (%s): %s", en, conn.url.path)
        # a close reason is at most 123 bytes of UTF-8: each of ours fits
        return WebSocketException(WS_POLICY_VIOLATION, reason=fr)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return ApiError(status, fr, en=en, headers=headers)


def authenticate(conn: HTTPConnection) -> Principal:
    """The principal a request or handshake speaks for; refused (401, 429) when none.

    The session cookie first, then a screen token (``X-Screen-Token`` or ``?token=``); a
    wrong token counts against the client's address."""
    settings: AuthSettings = conn.app.state.auth
    if not settings.enabled:
        return Principal("tech")
    tokens: FailureLimiter = conn.app.state.token_limiter
    address = client_address(conn.scope)
    token = conn.headers.get("x-screen-token") or conn.query_params.get("token", "")
    if token and (wait := tokens.retry_after(address)):
        raise _refusal(conn, 429, throttled_message(wait), retry_after=wait)
    cookie = conn.cookies.get(COOKIE)
    if cookie and (who := settings.check_cookie(cookie)):
        return who
    if token:
        if who := settings.check_screen_token(token):
            return who
        tokens.fail(address)
    raise _refusal(conn, 401, LOGIN_REQUIRED)


def require_role(role: Role, *, page: bool = False,
                 only: bool = False) -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """The dependency that lets *role* and the roles above it in (:data:`RANK`); *page*:
    someone not logged in is sent to ``/login`` instead of getting a 401; *only*: *role*
    itself and not the roles above it (with access control off, everyone is let in)."""

    async def allowed(conn: HTTPConnection) -> Principal:
        try:
            who = authenticate(conn)
        except ApiError as exc:
            if exc.status_code == 401 and page:
                raise LoginRedirect(conn.url.path) from None
            raise
        if RANK[who.role] < RANK[role]:
            if who.role == "screen":
                unsafe = conn.scope.get("method", "GET").upper() in UNSAFE
                raise _refusal(conn, 403, SCREEN_ACK_ONLY if unsafe else SCREEN_READ_ONLY)
            raise _refusal(conn, 403, TECH_ONLY_TEXT)
        if only and who.role != role and conn.app.state.auth.enabled:
            raise _refusal(conn, 403, GM_ONLY_TEXT)
        conn.state.principal = who
        return who

    allowed.__name__ = f"{role}{'_only' if only else ''}_{'page' if page else 'role'}"
    allowed.role = role   # type: ignore[attr-defined]  # read by check_routes
    allowed.only = only   # type: ignore[attr-defined]  # read by only_routes
    return allowed


async def public() -> None:
    """Anyone may call the route (declared, so that :func:`check_routes` knows it is meant)."""


async def own_room(room: str, who: Annotated[Principal, Depends(require_role("screen"))]) -> Principal:
    """A room screen may only open its own room's page (staff may open any)."""
    if who.role == "screen" and who.room != room:
        raise ApiError(403, OTHER_ROOM[0], en=OTHER_ROOM[1])
    return who


#: who may call a route: one of these in the ``dependencies`` of each route or its router
PUBLIC = Depends(public)
SCREEN = Depends(require_role("screen"))          # a room screen, the game master, the technician
GM = Depends(require_role("gm"))                  # the game master or the technician
TECH = Depends(require_role("tech"))              # the technician only
GM_PAGE = Depends(require_role("gm", page=True))
GM_ONLY = Depends(require_role("gm", only=True))  # the game master, not the technician
GM_ONLY_PAGE = Depends(require_role("gm", page=True, only=True))
TECH_PAGE = Depends(require_role("tech", page=True))
OWN_ROOM = Depends(own_room)


# -- every request, whatever its route ----------------------------------------------------
def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def same_origin(scope: Scope) -> bool:
    headers = _headers(scope)
    origin = headers.get("origin")
    if origin is None:
        return True   # not a browser: cannot be a cross-site page; credentials still needed
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


class CrossSiteGuard:
    """Pure ASGI middleware: what a page of another site could make a logged-in browser
    send is refused before any route runs — a WebSocket from a foreign ``Origin`` (close
    1008) and a state-changing request that is not JSON (415)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not same_origin(scope):
            log.warning("WebSocket refused (%s): %s", FOREIGN_ORIGIN[1], scope["path"])
            await receive()   # websocket.connect
            await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION,
                        "reason": FOREIGN_ORIGIN[0]})
            return
        if scope["type"] == "http" and scope.get("method", "GET").upper() in UNSAFE:
            content_type = _headers(scope).get("content-type", "").split(";")[0].strip()
            if content_type not in BODY_TYPES:
                body = json.dumps(error_body(*NEEDS_JSON)).encode()
                await send({"type": "http.response.start", "status": 415,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


async def _login_redirect(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRedirect)
    return RedirectResponse(f"/login?next={quote(exc.path or '/')}", status_code=303)


def install(app: FastAPI, settings: AuthSettings) -> None:
    """Access control on *app*: its secrets, its rate limits, the cross-site guard, the
    redirect to ``/login`` and the login routes. Routes declare their role themselves
    (FastAPI reads a request's body before: bound it with the app's ``max_body_size``)."""
    app.state.auth = settings
    app.state.login_limiter = FailureLimiter()
    #: wrong screen tokens per client address (a token is an HMAC: this only cuts noise)
    app.state.token_limiter = FailureLimiter()
    app.add_middleware(CrossSiteGuard)
    app.add_exception_handler(LoginRedirect, _login_redirect)
    app.include_router(router)


def check_routes(app: FastAPI) -> None:
    """Refuse an app with a route that declares no access (:data:`PUBLIC` … :data:`TECH`):
    forgetting would leave it open to anyone. Mounted static files are public."""
    open_routes = []
    for route in _routes(app.routes):
        if isinstance(route, APIRoute | APIWebSocketRoute):
            if not any(_declares_access(dep.call) for dep in _dependencies(route.dependant)):
                open_routes.append(route.path)
        elif not isinstance(route, Mount):
            open_routes.append(getattr(route, "path", repr(route)))
    if open_routes:
        msg = f"routes without a declared access (PUBLIC, SCREEN, GM, TECH): {open_routes}"
        raise RuntimeError(msg)


def route_roles(app: FastAPI) -> dict[tuple[str, str], Role | None]:
    """(method, path) → the least role each route of *app* lets in (None: anyone), as its
    dependencies declare; a WebSocket's method is ``WS``."""
    roles: dict[tuple[str, str], Role | None] = {}
    for route in _routes(app.routes):
        if not isinstance(route, APIRoute | APIWebSocketRoute):
            continue
        declared = [dep.call.role for dep in _dependencies(route.dependant) if hasattr(dep.call, "role")]
        role = max(declared, key=RANK.__getitem__) if declared else None
        for method in getattr(route, "methods", None) or {"WS"}:
            roles[method, route.path] = role
    return roles


def only_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of the routes of *app* that let in their role only (:data:`GM_ONLY`),
    not the roles above it."""
    found: set[tuple[str, str]] = set()
    for route in _routes(app.routes):
        if isinstance(route, APIRoute | APIWebSocketRoute) and any(
                getattr(dep.call, "only", False) for dep in _dependencies(route.dependant)):
            found |= {(method, route.path) for method in getattr(route, "methods", None) or {"WS"}}
    return found


def _routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, those of included routers too (recent FastAPI includes a router as one
    entry, its ``original_router``; older ones copy its routes in)."""
    for route in routes:
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from _routes(router.routes)
        else:
            yield route


def _dependencies(dependant: Any) -> list[Any]:
    found = list(dependant.dependencies)
    for sub in dependant.dependencies:
        found += _dependencies(sub)
    return found


def _declares_access(call: Any) -> bool:
    return call is public or hasattr(call, "role")


# -- login routes -----------------------------------------------------------------------
router = APIRouter(prefix="/api", tags=["auth"])


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=200)


@router.post("/login", dependencies=[PUBLIC], response_model=LoggedIn)
def login(body: LoginIn, request: Request, response: Response) -> dict[str, Any]:
    """Log in; after 5 wrong passwords within a minute from one address, that address gets
    429 (with ``Retry-After``) even with the right one, until the minute has passed."""
    settings: AuthSettings = request.app.state.auth
    limiter: FailureLimiter = request.app.state.login_limiter
    address = client_address(request.scope)
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


@router.post("/logout", dependencies=[PUBLIC], response_model=LoggedOut)
def logout(response: Response) -> dict[str, bool]:
    response.delete_cookie(COOKIE, path="/")
    return {"ok": True}


@router.get("/me", response_model=Me)
def me(who: Annotated[Principal, SCREEN]) -> dict[str, Any]:
    return {"role": who.role, "room": who.room}
