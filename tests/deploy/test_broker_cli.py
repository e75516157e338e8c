"""``escape-apartment broker …``: the password hashes, the files and their permissions."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from config.broker import (
    MOSQUITTO_ACL,
    MOSQUITTO_CONF,
    Credentials,
    CredentialsError,
    hash_password,
    verify_password,
    write_credentials,
)
from config.loader import SHIPPED_GAME, load_game
from tests.deploy.conftest import read_env_file, run_cli
from tests.support.mosquitto import mosquitto_required


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the $7$ hash ---------------------------------------------------------------------------
def test_hash_has_mosquitto_2_layout() -> None:
    encoded = hash_password("s3cret", salt=bytes(range(12)))
    empty, kind, iterations, salt, key = encoded.split("$")
    assert (empty, kind, iterations) == ("", "7", "101")
    assert salt == "AAECAwQFBgcICQoL"  # base64 of the 12 salt bytes, no padding needed
    assert len(key) == 88 and key.endswith("==")  # 64 bytes of PBKDF2-SHA512
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret ", encoded)


def test_hashes_are_salted() -> None:
    assert hash_password("same") != hash_password("same")


def test_our_verifier_accepts_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    """Same algorithm both ways: we check mosquitto_passwd's own output."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        if mosquitto_required():
            pytest.fail("mosquitto_passwd is not installed")
        pytest.skip("mosquitto_passwd is not installed")
    passwd = tmp_path / "passwd"
    subprocess.run([tool, "-c", "-b", str(passwd), "hall", "pa$$ wörd"], check=True,
                   capture_output=True, timeout=10)
    line = passwd.read_text(encoding="utf-8").strip()
    assert line.startswith("hall:$7$101$")
    assert verify_password("pa$$ wörd", line)
    assert not verify_password("pa$$ word", line)


def test_verify_rejects_other_formats() -> None:
    with pytest.raises(ValueError, match=r"\$7\$"):
        verify_password("x", "$6$101$abc$def")


# -- credential sets ------------------------------------------------------------------------
def test_credentials_cover_every_node_the_controller_and_the_healthcheck() -> None:
    game = load_game(SHIPPED_GAME)
    creds = Credentials.generate(apartment_id=game.apartment.id,
                                 nodes=[n.id for n in game.nodes])
    assert creds.users == (*[n.id for n in game.nodes], "controller", "healthcheck")
    assert len(set(creds.passwords.values())) == len(creds.users)
    assert all(len(pw) >= 32 for pw in creds.passwords.values())
    assert "passwords" not in repr(creds)  # nor any password
    assert not any(pw in repr(creds) for pw in creds.passwords.values())


@pytest.mark.parametrize("name", ["controller", "healthcheck"])
def test_a_node_cannot_take_a_reserved_username(name: str) -> None:
    with pytest.raises(CredentialsError, match="reserved"):
        Credentials.generate(apartment_id="temoin", nodes=["hall", name])


def test_node_ids_must_be_valid_topic_levels() -> None:
    with pytest.raises(ValueError, match="node id"):
        Credentials.generate(apartment_id="temoin", nodes=["hall/#"])


# -- the command ----------------------------------------------------------------------------
def test_credentials_command_writes_private_files(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    assert run_cli("broker", "credentials", "--config", str(SHIPPED_GAME), "--out", str(out),
                   "--broker", "192.168.1.10:1883") == 0
    names = {p.name for p in out.iterdir()}
    nodes = {f"{n.id}.env" for n in load_game(SHIPPED_GAME).nodes}
    assert names == {"passwd", "controller.env", "healthcheck.env", *nodes}
    assert len(nodes) == 7
    assert mode(out) == 0o700
    assert all(mode(p) == 0o600 for p in out.iterdir())

    hall = read_env_file(out / "hall.env")
    assert hall["ESCAPE_MQTT_USERNAME"] == "hall"
    assert hall["ESCAPE_BROKER"] == "192.168.1.10:1883"
    controller = read_env_file(out / "controller.env")
    assert controller["ESCAPE_MQTT_USERNAME"] == "controller"
    assert "ESCAPE_BROKER" not in controller  # compose passes --broker mosquitto:1883

    lines = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    assert set(lines) == {"controller", "healthcheck", *(n.id for n in load_game(SHIPPED_GAME).nodes)}
    for user, encoded in lines.items():
        password = read_env_file(out / f"{user}.env")["ESCAPE_MQTT_PASSWORD"]
        assert verify_password(password, encoded)
        assert password not in (out / "passwd").read_text()


def test_credentials_command_refuses_to_overwrite_without_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "secrets"
    assert run_cli("broker", "credentials", "--out", str(out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert run_cli("broker", "credentials", "--out", str(out)) == 1
    assert "--force" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    assert run_cli("broker", "credentials", "--out", str(out), "--force") == 0
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after.keys() == before.keys()
    assert after["hall.env"] != before["hall.env"]
    assert all(mode(out / name) == 0o600 for name in after)


def test_refuses_when_any_single_file_exists(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    out.mkdir(mode=0o700)
    (out / "hall.env").write_text("keep me")
    creds = Credentials.generate(apartment_id="temoin", nodes=["hall", "entree"])
    with pytest.raises(CredentialsError, match=r"hall\.env"):
        write_credentials(creds, out=out)
    assert sorted(p.name for p in out.iterdir()) == ["hall.env"]  # nothing half-written


def test_refuses_a_directory_open_to_others(tmp_path: Path) -> None:
    out = tmp_path / "shared"
    out.mkdir()
    out.chmod(0o755)
    creds = Credentials.generate(apartment_id="temoin", nodes=["hall"])
    with pytest.raises(CredentialsError, match="chmod 700"):
        write_credentials(creds, out=out)


def test_bad_broker_address_fails_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    assert run_cli("broker", "credentials", "--out", str(out), "--broker", "host:notaport") == 2
    assert not out.exists()


def test_conf_command_prints_the_shipped_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("broker", "conf") == 0
    printed = [Path(line) for line in capsys.readouterr().out.split()]
    assert printed == [MOSQUITTO_CONF, MOSQUITTO_ACL]
    assert all(path.is_file() for path in printed)
