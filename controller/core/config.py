"""The controller's settings: one validated object, from the environment (ESCAPE_…)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.loader import SHIPPED_GAME


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCAPE_", extra="ignore")

    CONFIG: Path = Field(default=SHIPPED_GAME, description="game file")
    MQTT_HOST: str = "127.0.0.1"
    MQTT_PORT: int = Field(default=1883, gt=0, lt=65536)
    MQTT_USERNAME: str | None = None
    MQTT_PASSWORD: str | None = None
    MQTT_PASSWORD_FILE: Path | None = None
    #: MQTT keepalive of the controller's connection (seconds): the broker publishes the
    #: controller's last will 1.5 × this after it went silent, and nodes then queue events
    MQTT_KEEPALIVE: int = Field(default=5, ge=2, le=60)
    HTTP_HOST: str = "127.0.0.1"
    HTTP_PORT: int = Field(default=8000, gt=0, lt=65536)
    DATA_DIR: Path = Path("data")
    #: demo / rehearsal mode: mounts the simulation routes
    DEMO: bool = False
