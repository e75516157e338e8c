"""The controller's settings: one validated object, from the environment (ESCAPE_…).

Every environment variable the controller reads is here, with what it is for:
:class:`Settings` (read by pydantic-settings) and :data:`SECRET_VARS` (the access control's
secrets, read by ``controller/api/auth.py``). ``escape-apartment controller --help`` lists
them from here; ``escape-apartment broker credentials`` writes every secret into
``controller.env``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.loader import SHIPPED_GAME
from controller.mqtt_transports import TRANSPORTS

ENV_PREFIX = "ESCAPE_"

GM_PASSWORD = "ESCAPE_GM_PASSWORD"  # noqa: S105 - names of variables, not passwords
TECH_PASSWORD = "ESCAPE_TECH_PASSWORD"  # noqa: S105
SCREEN_TOKEN_SECRET = "ESCAPE_SCREEN_TOKEN_SECRET"  # noqa: S105
SESSION_SECRET = "ESCAPE_SESSION_SECRET"  # noqa: S105
#: the access control's secrets (each may also be given as NAME_FILE: a file holding it)
SECRET_VARS: dict[str, str] = {
    GM_PASSWORD: "the game master's password, 8 characters or more (required)",
    TECH_PASSWORD: "the technician's password, 8 characters or more (required)",
    SCREEN_TOKEN_SECRET: "signs the room screens' URLs; changing it revokes them all (required)",
    SESSION_SECRET: "signs the login cookies (unset: a random one per start, so every "
                    "login ends with a restart)",
}
#: the secrets the controller refuses to start without (outside demo mode)
REQUIRED_SECRETS = (GM_PASSWORD, TECH_PASSWORD, SCREEN_TOKEN_SECRET)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    CONFIG: Path = Field(default=SHIPPED_GAME,
                         description="the game file (default: the shipped config/apartment.yaml; "
                                     "--config wins)")
    MQTT_HOST: str = Field(default="127.0.0.1", description="the broker's host (--broker wins)")
    MQTT_PORT: int = Field(default=1883, gt=0, lt=65536, description="the broker's port")
    MQTT_USERNAME: str | None = Field(default=None, description="the controller's MQTT user")
    MQTT_PASSWORD: str | None = Field(default=None, description="its MQTT password")
    MQTT_PASSWORD_FILE: Path | None = Field(
        default=None, description="a file holding the MQTT password, instead of ESCAPE_MQTT_PASSWORD")
    #: MQTT keepalive of the controller's connection (seconds): the broker publishes the
    #: controller's last will 1.5 × this after it went silent, and nodes then queue events
    MQTT_KEEPALIVE: int = Field(
        default=5, ge=2, le=60,
        description="MQTT keepalive in seconds, 2 to 60: the nodes learn the controller is "
                    "gone 1.5 times this after it went silent")
    #: which of the two transports of controller/mqtt_transports.py the controller uses
    MQTT_TRANSPORT: str = Field(
        default=TRANSPORTS[0],
        description=f"the controller's MQTT transport, {' or '.join(TRANSPORTS)}: paho driven on "
                    "the event loop by hand (a command is on the wire before the game is "
                    "saved) or the aiomqtt library (docs/performance.md)")
    HTTP_HOST: str = Field(default="127.0.0.1", description="the HTTP bind address (--host wins)")
    HTTP_PORT: int = Field(default=8000, gt=0, lt=65536, description="the HTTP port (--port wins)")
    DATA_DIR: Path = Field(default=Path("data"),
                           description="where the sessions' SQLite database is kept (default: "
                                       "./data, in the working directory)")
    #: demo / rehearsal mode: mounts the simulation routes
    DEMO: bool = Field(default=False,
                       description="1: rehearsal mode, the /rehearsal page drives nodes "
                                   "started with --simulate")

    @field_validator("MQTT_TRANSPORT")
    @classmethod
    def _known_transport(cls, value: str) -> str:
        if value not in TRANSPORTS:
            msg = f"unknown MQTT transport {value!r}: one of {', '.join(TRANSPORTS)}"
            raise ValueError(msg)
        return value


def environment_help() -> str:
    """What ``escape-apartment controller --help`` says about the environment."""
    lines = ["environment variables (an env file such as controller.env sets them):"]
    for name, field in Settings.model_fields.items():
        default = field.default
        text = str(field.description)
        if default is not None and not isinstance(default, Path):   # paths say it in words
            text += f" (default: {int(default) if isinstance(default, bool) else default})"
        lines += _entry(f"{ENV_PREFIX}{name}", text)
    for name, text in SECRET_VARS.items():
        lines += _entry(name, text)
    lines.append("  each secret and ESCAPE_MQTT_PASSWORD may instead be read from a file: "
                 "NAME_FILE=/path (mode 0600)")
    return "\n".join(lines)


def _entry(name: str, text: str) -> list[str]:
    return textwrap.wrap(text, width=100, initial_indent=f"  {name:<27} ",
                         subsequent_indent=" " * 30)
