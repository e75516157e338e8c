"""``escape-apartment broker …``: the password hashes, the files and their permissions."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from unittest import mock

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


# -- every secret of the controller, in controller.env --------------------------------------
def test_controller_env_holds_every_secret_the_controller_reads(tmp_path: Path) -> None:
    """With controller.env alone the controller starts: no missing password, no restart loop."""
    from controller.api.auth import AuthSettings
    from controller.core.config import Settings
    from protocol.settings import variables

    out = tmp_path / "secrets"
    assert run_cli("broker", "credentials", "--out", str(out)) == 0
    env = read_env_file(out / "controller.env")
    # every secret of the controller's settings (their _FILE variants aside)
    secret_vars = {name for name, text in variables(Settings).items()
                   if f"{name}_FILE" in variables(Settings)}
    assert secret_vars <= set(env)
    with mock.patch.dict(os.environ, env, clear=True):
        settings = AuthSettings.from_settings(Settings(), demo=False)   # raises when one is missing
    assert settings.session_secret == env["ESCAPE_SESSION_SECRET"]   # logins survive a restart
    for login in ("ESCAPE_GM_PASSWORD", "ESCAPE_TECH_PASSWORD"):
        assert re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", env[login]), env[login]
    assert env["ESCAPE_GM_PASSWORD"] != env["ESCAPE_TECH_PASSWORD"]
    assert len(env["ESCAPE_SCREEN_TOKEN_SECRET"]) >= 64
    # a node's env file holds none of them but its own MQTT password
    assert set(read_env_file(out / "hall.env")) & secret_vars == {"ESCAPE_MQTT_PASSWORD"}
    # a second run makes new ones
    assert run_cli("broker", "credentials", "--out", str(out), "--force") == 0
    again = read_env_file(out / "controller.env")
    assert all(again[name] != env[name] for name in secret_vars)


# -- broker install: the files a Mosquitto started as root can read ---------------------------
def _reachable_dir(tmp_path: Path) -> Path:
    """A directory the mosquitto user may pass through (pytest's tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="escape-broker-"))
    base.chmod(0o755)
    return base


@pytest.fixture
def root_with_mosquitto_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("giving files to the mosquitto user needs root")
    try:
        return pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("no mosquitto user on this machine")


def test_install_gives_the_broker_files_to_the_user_mosquitto_becomes(
        tmp_path: Path, root_with_mosquitto_user: pwd.struct_passwd) -> None:
    user = root_with_mosquitto_user
    base = _reachable_dir(tmp_path)
    try:
        secrets = base / "secrets"
        assert run_cli("broker", "credentials", "--out", str(secrets)) == 0
        dest = base / "broker"
        assert run_cli("broker", "install", "--secrets", str(secrets), "--dir", str(dest),
                       "--port", "18883") == 0
        for path, wanted in ((dest, 0o700), (dest / "data", 0o700), (dest / "passwd", 0o600),
                             (dest / "acl", 0o600)):
            assert (path.stat().st_uid, mode(path)) == (user.pw_uid, wanted), path
        assert (dest / "passwd").read_text() == (secrets / "passwd").read_text()
        conf = (dest / "mosquitto.conf").read_text().splitlines()
        assert "listener 18883" in conf and "user mosquitto" in conf
        assert f"password_file {dest / 'passwd'}" in conf
        assert f"persistence_location {dest / 'data'}/" in conf
        # the rest is the shipped file, line for line, and the `user` line at the end
        shipped = MOSQUITTO_CONF.read_text().splitlines()
        changed = [(a, b) for a, b in zip(shipped, conf, strict=False) if a != b]
        assert [a.split()[0] for a, _ in changed] == ["password_file", "acl_file", "listener",
                                                      "persistence_location"]
        assert conf[len(shipped):][-1] == "user mosquitto"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_install_refuses_a_directory_the_broker_cannot_reach(
        tmp_path: Path, root_with_mosquitto_user: pwd.struct_passwd,
        capsys: pytest.CaptureFixture[str]) -> None:
    secrets = tmp_path / "secrets"
    assert run_cli("broker", "credentials", "--out", str(secrets)) == 0
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    assert run_cli("broker", "install", "--secrets", str(secrets), "--dir", str(closed / "broker")) == 1
    err = capsys.readouterr().err
    assert "mosquitto cannot reach" in err and str(closed) in err
    assert not (closed / "broker" / "passwd").exists()


def test_install_needs_the_credentials_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("broker", "install", "--secrets", str(tmp_path / "none"), "--dir", str(tmp_path / "b")) == 1
    assert "broker credentials" in capsys.readouterr().err


def test_a_broker_started_as_root_cannot_read_the_secrets_passwd(
        tmp_path: Path, root_with_mosquitto_user: pwd.struct_passwd) -> None:
    """Why `broker install` exists: started as root, Mosquitto becomes mosquitto before it
    opens the password file, and the secrets directory is 0700 root."""
    executable = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(executable).exists():
        pytest.skip("mosquitto is not installed")
    base = _reachable_dir(tmp_path)
    try:
        secrets = base / "secrets"
        assert run_cli("broker", "credentials", "--out", str(secrets)) == 0
        conf = base / "mosquitto.conf"
        conf.write_text(f"listener 0 127.0.0.1\nallow_anonymous false\npassword_file {secrets / 'passwd'}\n"
                        "log_dest stdout\n")
        done = subprocess.run([executable, "-c", str(conf)], capture_output=True, text=True,
                              timeout=20, check=False)
        assert done.returncode != 0
        assert "Unable to open pwfile" in done.stdout + done.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)
