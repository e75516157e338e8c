"""The controller's settings: one validated object per process (:class:`Settings`).

Everything the controller reads from its environment is a field here: the game file, the
broker and its credentials, the HTTP address, the data directory, the rehearsal mode and
the access control's secrets. ``escape-apartment controller`` builds it once, with its
flags on top (``--config``, ``--broker``, ``--host``, ``--port``), and hands it to the app;
``controller --help`` lists its variables (:func:`environment_help`). Each secret is a
``SecretStr`` (never printed) and may be given as ``NAME_FILE``, a file holding it
(:mod:`protocol.settings`).

The controller's secrets other than its MQTT password are made here too
(:func:`new_secrets`): ``escape-apartment broker credentials`` (``config/broker.py``)
writes them into ``controller.env`` without naming them itself, so their names live in
this model only.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from config.broker import new_login_password
from config.loader import SHIPPED_GAME
from controller.mqtt_transports import TRANSPORTS
from protocol.mqtt import BrokerAddress
from protocol.settings import ProcessSettings, env_name, is_secret, variables
from protocol.settings import environment_help as help_section

ENV_PREFIX = "ESCAPE_"


class Settings(ProcessSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    CONFIG: Path = Field(default=SHIPPED_GAME,
                         description="the game file (default: the shipped config/apartment.yaml; "
                                     "--config wins)")
    MQTT_HOST: str = Field(default="127.0.0.1", description="the broker's host (--broker wins)")
    MQTT_PORT: int = Field(default=1883, gt=0, lt=65536, description="the broker's port (--broker wins)")
    MQTT_USERNAME: str | None = Field(default=None, description="the controller's MQTT user")
    MQTT_PASSWORD: SecretStr | None = Field(default=None, description="its MQTT password")
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
    BACKUP_DIR: Path | None = Field(
        default=None, description="where the session store's backups go (a USB stick's folder: it "
                                  "must exist); default: backups/ beside the store, created")
    BACKUP_AT: dt.time = Field(
        default=dt.time(3, 0), description="the nightly backup's local time, HH:MM (default 03:00; "
                                           "a controller off at that hour takes it when it starts)")
    #: demo / rehearsal mode: mounts the simulation routes
    DEMO: bool = Field(default=False,
                       description="1: rehearsal mode, the /rehearsal page drives nodes "
                                   "started with --simulate")
    GM_PASSWORD: SecretStr | None = Field(
        default=None, description="the game master's password, 8 characters or more (required)")
    TECH_PASSWORD: SecretStr | None = Field(
        default=None, description="the technician's password, 8 characters or more (required)")
    SCREEN_TOKEN_SECRET: SecretStr | None = Field(
        default=None, description="signs the room screens' URLs; changing it revokes them all "
                                  "(required)")
    SESSION_SECRET: SecretStr | None = Field(
        default=None, description="signs the login cookies (unset: a random one per start, so "
                                  "every login ends with a restart)")

    @classmethod
    def from_cli(cls, *, config: str | Path | None = None, broker: str | None = None,
                 host: str | None = None, port: int | None = None) -> Settings:
        """The settings with ``controller``'s flags on top of the environment."""
        address = BrokerAddress.parse(broker) if broker else None
        return cls.with_flags(CONFIG=config, MQTT_HOST=address and address.host,
                                MQTT_PORT=address and address.port, HTTP_HOST=host, HTTP_PORT=port)

    @field_validator("MQTT_TRANSPORT")
    @classmethod
    def _known_transport(cls, value: str) -> str:
        if value not in TRANSPORTS:
            msg = f"unknown MQTT transport {value!r}: one of {', '.join(TRANSPORTS)}"
            raise ValueError(msg)
        return value

    def broker(self) -> BrokerAddress:
        """Where the broker is and how the controller logs in."""
        password = self.MQTT_PASSWORD.get_secret_value() if self.MQTT_PASSWORD else None
        return BrokerAddress(self.MQTT_HOST, self.MQTT_PORT, self.MQTT_USERNAME, password)


#: the secrets the controller refuses to start without (outside demo mode)
REQUIRED_SECRETS = ("GM_PASSWORD", "TECH_PASSWORD", "SCREEN_TOKEN_SECRET")
#: how a fresh value of each secret is made (the MQTT password is the broker's to make)
NEW_SECRET: dict[str, Callable[[], str]] = {
    "GM_PASSWORD": new_login_password,
    "TECH_PASSWORD": new_login_password,
    "SCREEN_TOKEN_SECRET": lambda: secrets.token_hex(32),
    "SESSION_SECRET": lambda: secrets.token_hex(32),
}


def new_secrets() -> dict[str, str]:
    """A fresh value of every secret of the controller but its MQTT password, by variable
    (what ``broker credentials`` writes into ``controller.env``)."""
    wanted = {name for name, field in Settings.model_fields.items() if is_secret(field)}
    assert wanted - set(NEW_SECRET) == {"MQTT_PASSWORD"}, "a controller secret is not generated"
    return {env_name(Settings, name): make() for name, make in NEW_SECRET.items()}


def environment_help() -> str:
    """What ``escape-apartment controller --help`` says about the environment."""
    return help_section("environment variables (an env file such as controller.env sets them):",
                        variables(Settings))
