"""docker-compose.yml, the Dockerfile and docs/deploy.md, checked without Docker.

Docker cannot run where the tests run, so these read the files and hold them to what the
rest of the repository says: the mounted broker files are the ones the Mosquitto tests use,
the paths inside the containers match the broker config, the CMD is a real sub-command, the
secrets come from `broker credentials` and nowhere else.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.broker import (
    CONTROLLER_USER,
    HEALTHCHECK_USER,
    MOSQUITTO_ACL,
    MOSQUITTO_CONF,
    PASSWD_FILE,
)
from controller.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
SECRETS_VAR = "ESCAPE_SECRETS_DIR"
#: how compose.yml names the generated secrets directory: fails fast when unset
SECRETS = "${ESCAPE_SECRETS_DIR:?not set - see docs/deploy.md}"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def conf_directives(path: Path = MOSQUITTO_CONF) -> dict[str, list[str]]:
    """Mosquitto config directives (comments skipped): name → the values, in order."""
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        words = line.split(maxsplit=1)
        if words and not words[0].startswith("#"):
            out.setdefault(words[0], []).append(words[1] if len(words) > 1 else "")
    return out


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path → host source, for the short-syntax bind mounts of *service*."""
    mounts = {}
    for volume in service.get("volumes", []):
        # SOURCE:TARGET[:MODE], where SOURCE may hold "${VAR:?message}" and so a colon
        parts = volume.rsplit(":", 2)
        if len(parts) == 3 and parts[2] in {"ro", "rw", "z", "Z"}:
            source, target = parts[0], parts[1]
        else:
            source, target = volume.rsplit(":", 1)
        mounts[target] = source
    return mounts


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


# -- docker-compose.yml ---------------------------------------------------------------------
def test_compose_declares_both_services_and_their_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"mosquitto", "controller"}
    assert set(compose["volumes"]) == {"mosquitto-data", "controller-data"}
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert services["controller"]["build"] == "."
    assert services["controller"]["restart"] == "unless-stopped"
    assert services["mosquitto"]["restart"] == "unless-stopped"


def test_controller_waits_for_a_healthy_broker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["controller"]["depends_on"] == {"mosquitto": {"condition": "service_healthy"}}
    health = services["mosquitto"]["healthcheck"]
    assert health["test"][0] == "CMD-SHELL"
    assert health["test"][1].startswith("mosquitto_sub ")
    assert {"interval", "timeout", "retries"} <= set(health)
    # the controller's own health check is the Dockerfile's HEALTHCHECK
    assert any(i == "HEALTHCHECK" for i, _ in dockerfile_instructions())


def test_broker_mounts_are_the_files_the_mosquitto_tests_run(compose: dict[str, Any]) -> None:
    mosquitto = compose["services"]["mosquitto"]
    mounts = bind_mounts(mosquitto)
    conf_target = mosquitto["command"][-1]
    assert mosquitto["command"][-2] == "-c"
    # the shipped files, mounted read-only, are the very paths tests/support/mosquitto.py
    # renders its production config from
    assert (REPO / mounts[conf_target]).resolve() == MOSQUITTO_CONF
    directives = conf_directives()
    assert (REPO / mounts[directives["acl_file"][0]]).resolve() == MOSQUITTO_ACL
    for volume in mosquitto["volumes"]:
        if volume.startswith("./"):
            assert volume.endswith(":ro"), volume
            assert (REPO / volume.split(":")[0]).is_file(), volume


def test_broker_config_paths_exist_in_the_container(compose: dict[str, Any]) -> None:
    """Every path mosquitto.conf names is mounted at that very place."""
    mosquitto = compose["services"]["mosquitto"]
    mounts = bind_mounts(mosquitto)
    directives = conf_directives()
    assert directives["password_file"] == ["/mosquitto/config/passwd"]
    assert mounts["/mosquitto/config/passwd"] == f"{SECRETS}/{PASSWD_FILE}"
    assert directives["acl_file"][0] in mounts
    # persistence goes to the named volume, so retained messages survive a re-creation
    assert directives["persistence"] == ["true"]
    assert mounts[directives["persistence_location"][0].rstrip("/")] == "mosquitto-data"


def test_broker_config_is_the_production_one() -> None:
    directives = conf_directives()
    assert directives["per_listener_settings"] == ["false"]
    assert directives["allow_anonymous"] == ["false"]
    assert directives["set_tcp_nodelay"] == ["true"]
    assert directives["listener"] == ["1883"]
    assert 10 <= int(directives["max_keepalive"][0]) <= 120
    text = MOSQUITTO_CONF.read_text(encoding="utf-8")
    # the optional TLS listener is there, documented, and off
    for commented in ("#listener 8883", "#cafile ", "#certfile ", "#keyfile "):
        assert commented in text


def test_broker_runs_as_its_own_user_not_root(compose: dict[str, Any]) -> None:
    assert compose["services"]["mosquitto"]["user"] == "1883:1883"


def test_secrets_come_only_from_the_generated_directory(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    uses = re.findall(r"\$\{" + SECRETS_VAR + r"([^}]*)\}", text)
    assert uses, "compose does not use the generated credentials"
    # fail fast when unset: `${VAR:?message}`, never a silent default
    assert all(use.startswith(":?") for use in uses), uses
    services = compose["services"]
    # the names `broker credentials` writes
    assert services["controller"]["env_file"] == [f"{SECRETS}/{CONTROLLER_USER}.env"]
    assert services["mosquitto"]["env_file"] == [f"{SECRETS}/{HEALTHCHECK_USER}.env"]
    for service in services.values():
        for key in service.get("environment", {}):
            assert "PASSWORD" not in key.upper() and "SECRET" not in key.upper(), key


def test_controller_service_keeps_its_data_in_a_volume(compose: dict[str, Any]) -> None:
    controller = compose["services"]["controller"]
    assert "controller-data:/data" in controller["volumes"]
    assert controller["environment"]["ESCAPE_DATA_DIR"] == "/data"
    assert "8000:8000" in controller["ports"]


# -- Dockerfile -----------------------------------------------------------------------------
def test_dockerfile_is_python_311_slim_and_runs_as_a_user() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for i, args in instructions if i == "USER"]
    assert users, "no USER: the controller would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    # and the CMD comes after that USER
    last_user = max(n for n, (i, _) in enumerate(instructions) if i == "USER")
    assert max(n for n, (i, _) in enumerate(instructions) if i == "CMD") > last_user


def test_dockerfile_has_no_secrets() -> None:
    for instruction, args in dockerfile_instructions():
        if instruction in {"ENV", "ARG", "LABEL"}:
            assert not re.search(r"PASSWORD|SECRET|TOKEN|KEY", args, re.IGNORECASE), args
        if instruction in {"COPY", "ADD"}:
            assert not re.search(r"\.env\b|secrets|passwd", args), args
            assert args.split()[0] != ".", "COPY . would copy whatever the context holds"


def test_dockerfile_copies_only_existing_paths() -> None:
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY":
            *sources, _dest = args.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"


def test_dockerfile_copies_every_python_package_pyproject_ships() -> None:
    """The image is built from what it copies: every package pyproject finds is copied."""
    tops = {pattern.rstrip("*") for pattern in tomllib.loads((REPO / "pyproject.toml").read_text(
        encoding="utf-8"))["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {args.split()[0] for i, args in dockerfile_instructions()
              if i == "COPY" and (REPO / args.split()[0]).is_dir()}
    assert tops <= copied, f"COPY these into the image: {sorted(tops - copied)}"


def _exec_form(args: str) -> list[str]:
    argv = json.loads(args)
    assert isinstance(argv, list)
    return argv


def test_dockerfile_cmd_is_a_real_controller_subcommand(compose: dict[str, Any]) -> None:
    cmd = _exec_form(next(args for i, args in dockerfile_instructions() if i == "CMD"))
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"]
    assert cmd[0] in scripts
    args = build_parser().parse_args(cmd[1:])
    assert args.command == "controller"
    # --config names a file the image holds: COPY config ./config under WORKDIR /app
    assert args.config == "/app/config/apartment.yaml"
    assert (REPO / "config" / "apartment.yaml").is_file()
    # --broker is the compose service, on the port the broker config listens on
    host, port = args.broker.split(":")
    assert host in compose["services"]
    assert port == conf_directives()["listener"][0].split()[0]
    # the HTTP port is the one published and the one the health check asks
    assert f"{args.port}:{args.port}" in compose["services"]["controller"]["ports"]
    assert args.host == "0.0.0.0"


def test_dockerfile_healthcheck_asks_the_api_health_route() -> None:
    health = next(args for i, args in dockerfile_instructions() if i == "HEALTHCHECK")
    cmd = _exec_form(health.split(" CMD ", 1)[1])
    assert cmd[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8000/api/health" in cmd[2]
    compile(cmd[2], "<healthcheck>", "exec")  # valid Python
    from controller.api.routes.game import router

    assert "/api/health" in {route.path for route in router.routes}  # type: ignore[attr-defined]


# -- docs/deploy.md -------------------------------------------------------------------------
def test_every_command_in_the_deploy_guide_parses() -> None:
    """The guide's ``escape-apartment …`` lines are real commands (no rotted options)."""
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    commands = [line.strip() for block in blocks for line in block.splitlines()
                if "escape-apartment " in line and not line.strip().startswith("#")
                and re.search(r"(^|/)escape-apartment\s", line.strip())]
    parsed = 0
    for command in commands:
        argv = shlex.split(command)
        start = next(n for n, word in enumerate(argv) if word.endswith("escape-apartment"))
        build_parser().parse_args(argv[start + 1:])
        parsed += 1
    assert parsed >= 3
