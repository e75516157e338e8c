"""Who is asking: the roles, their secrets, the session cookie and the screens' tokens.

Roles
    ``gm``      game master: the console, the rehearsal page, every order.
    ``tech``    technician: everything the game master can, and the technician page.
    ``screen``  an in-room screen: read-only, one room, identified by a token in its URL
                (``/screen/<room>?token=<room>.<mac>``); it may only acknowledge a clue.

The game master and the technician log in with a password on ``/login`` (``POST
/api/login`` with JSON ``{"password": …}``); the controller answers with an HttpOnly,
SameSite=Strict session cookie, signed and dated by itsdangerous (what Starlette's sessions
use) with ``ESCAPE_SESSION_SECRET``, valid 12 hours. A room screen carries its token in the
query string (``?token=``) or the ``X-Screen-Token`` header. The token is
``<room>.<HMAC(secret, "screen:<room>")>``, so it can be printed once, stuck in the
screen's kiosk URL, and revoked for every room by changing ``ESCAPE_SCREEN_TOKEN_SECRET``.

Credentials come from the controller's settings (``controller/core/config.py``), never
from the repository: :meth:`AuthSettings.from_settings`. The demo generates random ones
and prints them. Who may call which route: ``controller/api/access.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal

from itsdangerous import BadData, URLSafeTimedSerializer
from pydantic import SecretStr
from starlette.requests import HTTPConnection

from controller.core.config import REQUIRED_SECRETS, Settings
from protocol.settings import env_name

Role = Literal["gm", "tech", "screen"]

COOKIE = "escape_session"
SESSION_S = 12 * 3600
#: what the cookie's signature is for (another use of the same secret cannot pass for it)
SESSION_SALT = "escape-apartment.session"


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
    _cookies: URLSafeTimedSerializer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cookies = URLSafeTimedSerializer(self.session_secret, salt=SESSION_SALT,
                                         signer_kwargs={"digest_method": hashlib.sha256})
        object.__setattr__(self, "_cookies", cookies)

    @classmethod
    def disabled(cls) -> AuthSettings:
        return cls(enabled=False)

    @classmethod
    def generate(cls) -> AuthSettings:
        """Random credentials, for the demo (printed on its console)."""
        return cls(gm_password=secrets.token_urlsafe(9), tech_password=secrets.token_urlsafe(9),
                   screen_secret=secrets.token_hex(32))

    @classmethod
    def from_settings(cls, settings: Settings, *, demo: bool | None = None) -> AuthSettings:
        """The secrets of *settings*; in demo mode (default: ``settings.DEMO``) random ones
        for those missing, otherwise refuse to start without them."""
        demo = settings.DEMO if demo is None else demo

        def value(secret: SecretStr | None) -> str:
            return secret.get_secret_value() if secret is not None else ""

        made = cls.generate()
        values = {"gm_password": value(settings.GM_PASSWORD),
                  "tech_password": value(settings.TECH_PASSWORD),
                  "screen_secret": value(settings.SCREEN_TOKEN_SECRET)}
        missing = [key for key, text in values.items() if not text]
        if missing and not demo:
            names = ", ".join(env_name(Settings, name) for name in REQUIRED_SECRETS)
            msg = (f"set {names} (or their _FILE variants; `escape-apartment broker credentials` "
                   f"writes them all into controller.env); missing: {', '.join(missing)}")
            raise AuthConfigError(msg)
        for key in missing:
            values[key] = getattr(made, key)
        for key in ("gm_password", "tech_password"):
            if not demo and len(values[key]) < 8:
                msg = f"{key} is shorter than 8 characters"
                raise AuthConfigError(msg)
        return cls(session_secret=value(settings.SESSION_SECRET) or made.session_secret, **values)

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

    def session_cookie(self, principal: Principal) -> str:
        """The signed, dated value of the session cookie of *principal*."""
        return self._cookies.dumps({"r": principal.role})

    def check_cookie(self, value: str) -> Principal | None:
        """Who the cookie *value* speaks for, or None (forged, or older than 12 hours)."""
        # NOTE: the age is checked here, not by itsdangerous's max_age, which also refuses a
        # cookie dated after now: a wall clock stepped back (NTP) would log every game
        # master out in the middle of a game. A date ahead can only be one we signed.
        try:
            data, signed_at = self._cookies.loads(value, return_timestamp=True)
        except (BadData, ValueError):
            return None
        if not isinstance(data, dict) or data.get("r") not in ("gm", "tech"):
            return None
        if time.time() - signed_at.timestamp() > SESSION_S:
            return None
        return Principal(data["r"])


def principal(request: HTTPConnection) -> Principal:
    """The caller of a request or a WebSocket (set by the route's role dependency,
    ``controller/api/access.py``)."""
    return getattr(request.state, "principal", Principal("gm"))
