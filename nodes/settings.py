"""A node's settings: one validated object per process (:class:`NodeSettings`).

Everything ``escape-apartment node`` (and its tools) reads from its environment is a field
here; the systemd unit sets them from ``/etc/escape-apartment/<node>.env``, which
``escape-apartment broker credentials`` writes. The command's flags win over the
environment (:meth:`NodeSettings.from_cli`); ``node --help`` lists the variables. The MQTT
password is a ``SecretStr`` and may be given as ``ESCAPE_MQTT_PASSWORD_FILE``
(:mod:`protocol.settings`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from protocol.mqtt import BrokerAddress
from protocol.settings import ProcessSettings

ENV_PREFIX = "ESCAPE_"
#: gpiozero's own variable: "mock" is its MockFactory, which is what --simulate means
MOCK_PINS = "mock"


class NodeSettings(ProcessSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    NODE_ID: str | None = Field(default=None, description="the node id, as in the game file (--id wins)")
    CONFIG: Path | None = Field(
        default=None, description="the game file (--config wins; default: the shipped "
                                  "config/apartment.yaml)")
    BROKER: str = Field(default="127.0.0.1:1883",
                        description="the broker's host[:port] (--broker wins)")
    MQTT_USERNAME: str | None = Field(default=None, description="this node's MQTT user: its node id")
    MQTT_PASSWORD: SecretStr | None = Field(default=None, description="its MQTT password")
    MQTT_KEEPALIVE: int = Field(
        default=5, ge=2, le=60,
        description="the MQTT keepalive in seconds, 2 to 60: the broker declares the node offline "
                    "(last will) 1.5 times this after it went silent (--keepalive wins)")
    DATA_DIR: Path | None = Field(
        default=None, description="where the outbox of undelivered events, the boot counter, "
                                  "the last game view and an active emergency are kept "
                                  "(--data-dir wins; default: see --data-dir)")
    HEALTH_ROOT: Path | None = Field(
        default=None, description="where the Pi's sensors are read (/sys, /proc under it): / by "
                                  "default; a folder of fake sensor files for tests. A --simulate "
                                  "node reads no temperature nor power without it")
    PIN_FACTORY: str | None = Field(
        default=None, validation_alias="GPIOZERO_PIN_FACTORY",
        description="mock: simulated pins, as --simulate (gpiozero reads it too)")

    @field_validator("BROKER")
    @classmethod
    def _broker_address(cls, value: str) -> str:
        BrokerAddress.parse(value)   # the same parser as the connection: a typo fails here
        return value

    @classmethod
    def from_cli(cls, *, node_id: str | None = None, config: str | Path | None = None,
                 broker: str | None = None, keepalive: int | None = None,
                 data_dir: str | Path | None = None, simulate: bool | None = None) -> NodeSettings:
        """The settings with ``node``'s flags on top of the environment."""
        return cls.with_flags(NODE_ID=node_id, CONFIG=config, BROKER=broker,
                              MQTT_KEEPALIVE=keepalive, DATA_DIR=data_dir,
                              GPIOZERO_PIN_FACTORY=MOCK_PINS if simulate else None)

    @property
    def simulate(self) -> bool:
        """Simulated pins (gpiozero's MockFactory) instead of the Pi's GPIO."""
        return (self.PIN_FACTORY or "").lower() == MOCK_PINS

    def broker(self) -> BrokerAddress:
        """Where the broker is and how this node logs in."""
        password = self.MQTT_PASSWORD.get_secret_value() if self.MQTT_PASSWORD else None
        return BrokerAddress.parse(self.BROKER, username=self.MQTT_USERNAME, password=password)
