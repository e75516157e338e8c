"""A node's settings object (nodes/settings.py): every variable read from the environment,
the MQTT password also from ``ESCAPE_MQTT_PASSWORD_FILE`` (0600 only), the flags of
``escape-apartment node`` (and of its tools) on top."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.loader import SHIPPED_GAME
from controller.cli import build_parser, main
from nodes.cli import apply_settings
from nodes.settings import NodeSettings
from protocol.settings import SecretFileError, settings_error, variables


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """None of the node's variables set, whatever the machine running the tests has."""
    for name in variables(NodeSettings):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def node_args(*argv: str) -> NodeSettings:
    """The settings ``escape-apartment node ARGV`` runs with."""
    return apply_settings(build_parser().parse_args(["node", *argv]))


def test_every_variable_is_read_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    env = {"ESCAPE_NODE_ID": "hall", "ESCAPE_CONFIG": "/etc/escape-apartment/apartment.yaml",
           "ESCAPE_BROKER": "10.0.0.2:1884", "ESCAPE_MQTT_USERNAME": "hall",
           "ESCAPE_MQTT_PASSWORD": "hall-secret", "ESCAPE_MQTT_KEEPALIVE": "3",
           "ESCAPE_DATA_DIR": "/var/lib/escape-apartment/hall", "GPIOZERO_PIN_FACTORY": "mock",
           "ESCAPE_HEALTH_ROOT": "/tmp/fake-pi"}
    assert set(env) == {name for name in variables(NodeSettings) if not name.endswith("_FILE")}
    for name, value in env.items():
        clean_env.setenv(name, value)
    settings = node_args()
    assert (settings.NODE_ID, settings.CONFIG, settings.MQTT_KEEPALIVE, settings.DATA_DIR,
            settings.simulate, settings.HEALTH_ROOT) == (
        "hall", Path("/etc/escape-apartment/apartment.yaml"), 3,
        Path("/var/lib/escape-apartment/hall"), True, Path("/tmp/fake-pi"))
    broker = settings.broker()
    assert (broker.host, broker.port, broker.username, broker.password) == (
        "10.0.0.2", 1884, "hall", "hall-secret")
    assert "hall-secret" not in repr(settings)


def test_without_any_variable_the_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = node_args()
    assert (settings.NODE_ID, settings.CONFIG, settings.BROKER, settings.MQTT_KEEPALIVE,
            settings.DATA_DIR, settings.simulate) == (None, None, "127.0.0.1:1883", 5, None, False)
    assert settings.broker().password is None
    clean_env.setenv("ESCAPE_NODE_ID", "")             # empty: as if unset
    clean_env.setenv("GPIOZERO_PIN_FACTORY", "lgpio")
    assert (node_args().NODE_ID, node_args().simulate) == (None, False)


def test_the_password_is_read_from_its_file_when_only_its_owner_may_read_it(
        clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "hall.password"
    path.write_text("from-the-file\n", encoding="utf-8")
    path.chmod(0o600)
    clean_env.setenv("ESCAPE_MQTT_PASSWORD_FILE", str(path))
    assert node_args().broker().password == "from-the-file"
    clean_env.setenv("ESCAPE_MQTT_PASSWORD", "from-the-variable")   # the variable wins
    assert node_args().broker().password == "from-the-variable"
    clean_env.delenv("ESCAPE_MQTT_PASSWORD")
    path.chmod(0o644)
    with pytest.raises(SecretFileError, match=r"ESCAPE_MQTT_PASSWORD_FILE: .* chmod 600"):
        node_args()


def test_the_flags_win_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in {"ESCAPE_NODE_ID": "salon", "ESCAPE_CONFIG": "/env.yaml",
                        "ESCAPE_BROKER": "env-broker", "ESCAPE_MQTT_KEEPALIVE": "9",
                        "ESCAPE_DATA_DIR": "/env-data"}.items():
        clean_env.setenv(name, value)
    args = build_parser().parse_args(["node", "--id", "hall", "--config", "/flag.yaml",
                                      "--broker", "flag-broker:1999", "--keepalive", "3",
                                      "--data-dir", "/flag-data", "--simulate"])
    settings = apply_settings(args)
    assert (args.node_id, args.config, args.broker, args.keepalive, args.data_dir, args.simulate) == (
        "hall", Path("/flag.yaml"), "flag-broker:1999", 3, Path("/flag-data"), True)
    assert settings.broker().host == "flag-broker"
    left_out = node_args("--id", "hall")               # the others from the environment
    assert (left_out.CONFIG, left_out.BROKER, left_out.MQTT_KEEPALIVE, left_out.simulate) == (
        Path("/env.yaml"), "env-broker", 9, False)


@pytest.mark.parametrize("keepalive", ["1", "61", "soon"])
def test_the_keepalive_bounds_hold_for_the_flag_and_the_variable(
        clean_env: pytest.MonkeyPatch, keepalive: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["node", "--keepalive", keepalive])
    clean_env.setenv("ESCAPE_MQTT_KEEPALIVE", keepalive)
    with pytest.raises(ValidationError) as wrong:
        node_args()
    assert settings_error(NodeSettings, wrong.value).startswith("ESCAPE_MQTT_KEEPALIVE: ")


def test_a_wrong_broker_address_is_named_and_the_node_does_not_start(
        clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    clean_env.setenv("ESCAPE_BROKER", "host:notaport")
    assert main(["node", "--id", "hall", "--simulate"]) == 2
    assert "ESCAPE_BROKER: value error, invalid broker address" in caplog.text


def test_the_tools_read_the_same_settings(clean_env: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("ESCAPE_NODE_ID", "hall")
    clean_env.setenv("ESCAPE_CONFIG", str(SHIPPED_GAME))
    assert main(["node", "wiring"]) == 0
    assert capsys.readouterr().out.startswith("Wiring of node hall")
