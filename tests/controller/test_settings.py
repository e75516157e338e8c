"""The controller's settings object (controller/core/config.py): every variable read from the
environment, each secret also from ``NAME_FILE`` (0600 only), the flags on top."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from controller.api.auth import AuthSettings
from controller.core.config import Settings, new_secrets
from protocol.settings import SecretFileError, settings_error, variables

SECRETS = ("ESCAPE_GM_PASSWORD", "ESCAPE_TECH_PASSWORD", "ESCAPE_SCREEN_TOKEN_SECRET",
           "ESCAPE_SESSION_SECRET", "ESCAPE_MQTT_PASSWORD")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """None of the controller's variables set, whatever the machine running the tests has."""
    for name in variables(Settings):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def secret_file(tmp_path: Path, name: str, text: str, mode: int) -> Path:
    path = tmp_path / name
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


def test_every_variable_is_read_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    env = {"ESCAPE_CONFIG": "/srv/game.yaml", "ESCAPE_MQTT_HOST": "broker.lan", "ESCAPE_MQTT_PORT": "1884",
           "ESCAPE_MQTT_USERNAME": "controller", "ESCAPE_MQTT_PASSWORD": "mqtt-secret",
           "ESCAPE_MQTT_KEEPALIVE": "7", "ESCAPE_HTTP_HOST": "0.0.0.0", "ESCAPE_HTTP_PORT": "8080",
           "ESCAPE_DATA_DIR": "/var/lib/escape", "ESCAPE_DEMO": "1", "ESCAPE_GM_PASSWORD": "gm-secret",
           "ESCAPE_TECH_PASSWORD": "tech-secret", "ESCAPE_SCREEN_TOKEN_SECRET": "screen-secret",
           "ESCAPE_SESSION_SECRET": "session-secret", "ESCAPE_MQTT_TRANSPORT": "aiomqtt",
           "ESCAPE_BACKUP_DIR": "/media/usb/escape", "ESCAPE_BACKUP_AT": "02:30"}
    assert set(env) == {name for name in variables(Settings) if not name.endswith("_FILE")}
    for name, value in env.items():
        clean_env.setenv(name, value)
    settings = Settings()
    assert settings.model_dump(include={"CONFIG", "MQTT_KEEPALIVE", "HTTP_HOST", "HTTP_PORT",
                                        "DATA_DIR", "DEMO", "MQTT_TRANSPORT", "BACKUP_DIR",
                                        "BACKUP_AT"}) == {
        "CONFIG": Path("/srv/game.yaml"), "MQTT_KEEPALIVE": 7, "HTTP_HOST": "0.0.0.0",
        "HTTP_PORT": 8080, "DATA_DIR": Path("/var/lib/escape"), "DEMO": True,
        "MQTT_TRANSPORT": "aiomqtt", "BACKUP_DIR": Path("/media/usb/escape"),
        "BACKUP_AT": dt.time(2, 30)}
    broker = settings.broker()
    assert (broker.host, broker.port, broker.username, broker.password) == (
        "broker.lan", 1884, "controller", "mqtt-secret")
    auth = AuthSettings.from_settings(settings)
    assert auth.login("gm-secret").role == "gm" and auth.login("tech-secret").role == "tech"
    assert auth.session_secret == "session-secret"
    assert "secret" not in repr(settings) + str(settings), "a secret is never printed"


@pytest.mark.parametrize("name", SECRETS)
def test_each_secret_is_read_from_its_file_when_only_its_owner_may_read_it(
        clean_env: pytest.MonkeyPatch, tmp_path: Path, name: str) -> None:
    field = name.removeprefix("ESCAPE_")
    path = secret_file(tmp_path, "secret", "from-the-file", 0o600)
    clean_env.setenv(f"{name}_FILE", str(path))
    assert getattr(Settings(), field).get_secret_value() == "from-the-file"
    clean_env.setenv(name, "from-the-variable")        # the variable itself wins
    assert getattr(Settings(), field).get_secret_value() == "from-the-variable"
    clean_env.setenv(name, "")                          # empty: as if unset
    assert getattr(Settings(), field).get_secret_value() == "from-the-file"
    path.chmod(0o644)
    with pytest.raises(SecretFileError, match=rf"{name}_FILE: .* chmod 600") as refused:
        Settings()
    assert "from-the-file" not in str(refused.value)
    clean_env.setenv(f"{name}_FILE", str(tmp_path / "missing"))
    with pytest.raises(SecretFileError, match=rf"{name}_FILE"):
        Settings()


def test_a_file_variable_is_only_read_for_a_secret(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("ESCAPE_HTTP_PORT_FILE", str(secret_file(tmp_path, "port", "9999", 0o600)))
    assert Settings().HTTP_PORT == 8000


def test_the_flags_win_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in {"ESCAPE_CONFIG": "/env.yaml", "ESCAPE_MQTT_HOST": "env-broker",
                        "ESCAPE_MQTT_PORT": "1885", "ESCAPE_HTTP_HOST": "10.0.0.1",
                        "ESCAPE_HTTP_PORT": "8001"}.items():
        clean_env.setenv(name, value)
    flags = Settings.from_cli(config="/flag.yaml", broker="flag-broker:1999", host="0.0.0.0", port=9000)
    assert flags.model_dump(include={"CONFIG", "MQTT_HOST", "MQTT_PORT", "HTTP_HOST", "HTTP_PORT"}) == {
        "CONFIG": Path("/flag.yaml"), "MQTT_HOST": "flag-broker", "MQTT_PORT": 1999,
        "HTTP_HOST": "0.0.0.0", "HTTP_PORT": 9000}
    unset = Settings.from_cli(broker="flag-broker")          # no port in --broker: 1883
    assert unset.model_dump(include={"CONFIG", "MQTT_PORT", "HTTP_PORT"}) == {
        "CONFIG": Path("/env.yaml"), "MQTT_PORT": 1883, "HTTP_PORT": 8001}
    assert Settings.from_cli() == Settings()
    with pytest.raises(ValueError, match="invalid broker address"):
        Settings.from_cli(broker="host:notaport")


def test_a_wrong_value_is_named_by_its_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ESCAPE_HTTP_PORT", "huit mille")
    clean_env.setenv("ESCAPE_MQTT_KEEPALIVE", "61")
    with pytest.raises(ValidationError) as wrong:
        Settings()
    text = settings_error(Settings, wrong.value)
    assert "ESCAPE_HTTP_PORT: " in text and "'huit mille'" in text
    assert "ESCAPE_MQTT_KEEPALIVE: input should be less than or equal to 60" in text


def test_broker_credentials_makes_every_secret_of_the_settings_but_the_mqtt_password() -> None:
    made = new_secrets()
    assert set(made) == set(SECRETS) - {"ESCAPE_MQTT_PASSWORD"}
    assert len(set(made.values())) == len(made)
