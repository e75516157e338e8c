"""docs/deploy.md is a test: its ``sh`` blocks, run in order, give a working game server.

The blocks are read in order and each command is classified:

- run for real, in one bash (so variables, ``set -a; . file`` and ``&`` behave as in the
  reader's shell), from the repository, as root, with the doc's four variables
  (``ESCAPE_ROOT``, ``GAME_SERVER``, ``MQTT_PORT``, ``HTTP_PORT``) set to a temporary
  directory and free ports, ``sudo`` dropped (we are root): the secrets, the broker
  started as root the way §2b says, the controller and seven simulated rooms of §3;
- checked against the files it relies on, when this machine cannot run it: Docker
  (docker-compose.yml: services, variables, the uid that reads ``passwd``, the env that
  the controller gets), systemd (the units, ``systemd-analyze verify``), the Pi's ``/etc``
  and ``/opt``, ``apt``, a ``mosquitto_sub`` that would watch for ever. A command that is
  neither fails the test: every line of the guide is accounted for.

It ends as the guide does: logged in as the game master over HTTP, every room online.
"""

from __future__ import annotations

import configparser
import getpass
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import yaml

from config.loader import SHIPPED_GAME, load_game
from controller.api.auth import AuthSettings
from controller.cli import build_parser
from controller.core.config import Settings
from tests.deploy.conftest import read_env_file
from tests.support.mosquitto import free_port, require_or_skip_mosquitto

# the whole stack as real processes; its own time bound is below the suite's 120 s
pytestmark = [pytest.mark.mosquitto, pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "deploy.md"
COMPOSE = REPO / "docker-compose.yml"
NODE_UNIT = REPO / "nodes" / "systemd" / "escape-node@.service"
CONTROLLER_UNIT = REPO / "controller" / "systemd" / "escape-controller.service"
UNITS = {unit.name: unit for unit in (NODE_UNIT, CONTROLLER_UNIT)}
#: the Debian packages' own units the guide restarts
DEBIAN_UNITS = {"mosquitto", "chrony"}
#: the doc's own variables, set once in §0; the test gives each its own value
VARIABLES = ("ESCAPE_ROOT", "GAME_SERVER", "MQTT_PORT", "HTTP_PORT")
#: a generous bound: the whole stack comes up in ~20 s on 2 busy cores
ONLINE_WITHIN_S = 120.0


# -- reading the guide ----------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    """One logical command line of a block (continuation lines joined)."""

    block: int
    text: str                 # as written (with its continuations), for the script

    @property
    def joined(self) -> str:
        return re.sub(r"\\\n\s*", " ", self.text).strip()


def sh_blocks(text: str) -> list[str]:
    return [textwrap.dedent(body) for body in
            re.findall(r"^[ \t]*```sh\n(.*?)^[ \t]*```", text, re.MULTILINE | re.DOTALL)]


def logical_lines(blocks: list[str]) -> list[Line]:
    out: list[Line] = []
    for n, block in enumerate(blocks):
        pending = ""
        for raw in block.splitlines():
            if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
                continue
            pending += raw + "\n"
            if not raw.rstrip().endswith("\\"):
                out.append(Line(n, pending.rstrip("\n")))
                pending = ""
        assert not pending, f"block {n} ends in a continuation"
    return out


def words(line: Line) -> list[str]:
    return shlex.split(line.joined, comments=True)


def command_word(tokens: list[str]) -> str:
    """The command a line runs: past ``(``, ``sudo``, ``exec`` and ``VAR=value`` prefixes."""
    for token in tokens:
        if token in ("(", "sudo", "exec") or re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", token):
            continue
        return token
    return "="   # only assignments


# -- the static checks ---------------------------------------------------------------------
@dataclass
class Context:
    """What the static checks compare a command with."""

    values: dict[str, str]
    compose: dict[str, Any]
    game_nodes: list[str]
    checked: list[str] = field(default_factory=list)

    def expand(self, text: str) -> str:
        """``$VAR`` / ``${VAR}`` of the doc's variables, as the shell would."""
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.values.get(m.group(1), m.group(0)), text)

    @property
    def secrets(self) -> Path:
        return Path(self.values["ESCAPE_ROOT"]) / "secrets"


def load_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def _compose_services(tokens: list[str]) -> list[str]:
    """The services a ``docker compose <verb> [options] [service…]`` line names."""
    verb_at = tokens.index("compose") + 1
    args = tokens[verb_at + 1:]
    names, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-s", "--signal", "-t", "--timeout"):
            skip = True
        elif not arg.startswith("-"):
            names.append(arg)
    if tokens[verb_at] == "exec":
        names = names[:1]   # exec <service> <command…>
    return names


def check_docker(ctx: Context, tokens: list[str]) -> None:
    assert tokens[:2] == ["docker", "compose"], tokens
    verb = tokens[2]
    assert verb in {"up", "ps", "logs", "restart", "kill", "exec", "stop", "start", "down"}, verb
    for service in _compose_services(tokens):
        assert service in ctx.compose["services"], f"no service {service!r} in docker-compose.yml"
    if verb == "up":
        check_compose_controller_env(ctx)


def check_compose_controller_env(ctx: Context) -> None:
    """The environment compose gives the controller is one it starts with: not the
    restart loop of a controller missing its passwords."""
    controller = ctx.compose["services"]["controller"]
    env: dict[str, str] = {}
    for env_file in controller["env_file"]:
        name = re.sub(r"^\$\{ESCAPE_SECRETS_DIR:\?[^}]*\}/", "", env_file)
        env.update(read_env_file(ctx.secrets / name))
    # compose's ${NAME:-default}, with NAME unset: the default
    env.update({k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v))
                for k, v in controller.get("environment", {}).items()})
    with mock.patch.dict(os.environ, env, clear=True):   # the settings parse, secrets too
        AuthSettings.from_settings(Settings(), demo=False)   # raises when a secret is missing
    assert env["ESCAPE_MQTT_USERNAME"] == "controller" and env["ESCAPE_MQTT_PASSWORD"]


def check_dotenv(ctx: Context, line: Line) -> None:
    """``echo "VAR=…" > .env``: compose's required variables, pointing at what §1 wrote."""
    content = ctx.expand(line.joined.split(">", 1)[0].removeprefix("echo").strip().strip('"'))
    name, _, value = content.partition("=")
    text = COMPOSE.read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required == {name}, f".env sets {name}, compose requires {required}"
    for wanted in set(re.findall(r"\$\{" + name + r":\?[^}]*\}/([\w.]+)", text)):
        assert (Path(value) / wanted).is_file(), f"compose mounts {wanted}: not in {value}"


def check_chown(ctx: Context, tokens: list[str]) -> None:
    """``chown 1883:1883 …/passwd``: the uid the broker container runs as reads it."""
    owner, target = tokens[-2], Path(ctx.expand(tokens[-1]))
    assert owner == ctx.compose["services"]["mosquitto"]["user"]
    assert target == ctx.secrets / "passwd" and target.is_file()
    mounted = [v for v in ctx.compose["services"]["mosquitto"]["volumes"] if v.endswith(":ro")
               and "/passwd:" in v]
    assert mounted, "compose does not mount the passwd that is chowned"


def check_systemctl(ctx: Context, tokens: list[str]) -> None:
    args = [t for t in tokens if not t.startswith("-") and t not in ("sudo", "systemctl", "journalctl")]
    verb, units = (args[0], args[1:]) if tokens[0] in ("systemctl", "sudo") else ("journal", args)
    assert verb in {"daemon-reload", "enable", "start", "stop", "restart", "status", "journal"}, verb
    for unit in units:
        if unit in DEBIAN_UNITS:
            continue   # the Debian package's unit (§2b, §4b)
        if f"{unit}.service" in UNITS:
            continue   # a unit of ours, without instance (§2c)
        template, _, instance = unit.partition("@")
        assert f"{template}@.service" == NODE_UNIT.name, unit
        assert instance in ctx.game_nodes, f"{instance!r} is not a node of the game"


def check_unit_copy(ctx: Context, tokens: list[str]) -> None:
    source = Path(tokens[-2])
    unit = UNITS[source.name]
    assert source.relative_to("/opt/escape-apartment/src") == unit.relative_to(REPO)
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        load_unit(unit)   # at least it parses
        return
    name = unit.name.replace("@.", "@hall.")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(unit, Path(tmp) / unit.name)
        done = subprocess.run([analyze, "verify", "--man=no", str(Path(tmp) / name)],
                              capture_output=True, text=True, timeout=60, check=False)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()
                and "/opt/escape-apartment/.venv/bin/escape-apartment is not executable" not in line]
    assert problems == [], problems


def check_pi_install(ctx: Context, tokens: list[str]) -> None:
    """``install … /etc/escape-apartment/…``: the paths the controller's unit reads (§2c)."""
    service = load_unit(CONTROLLER_UNIT)["Service"]
    target = tokens[-1]
    exec_start = shlex.split(service["ExecStart"])
    if "-d" in tokens:
        assert target == str(Path(service["EnvironmentFile"]).parent)
    elif target.endswith(".yaml"):
        assert target == exec_start[exec_start.index("--config") + 1]
        assert Path(tokens[-2]).relative_to("/opt/escape-apartment/src") == SHIPPED_GAME.relative_to(REPO)
    else:
        assert target == service["EnvironmentFile"]
        source = Path(ctx.expand(tokens[-2]))
        assert source == ctx.secrets / "controller.env" and source.is_file()
        assert read_env_file(source)["ESCAPE_MQTT_USERNAME"] == "controller"
        assert tokens[tokens.index("-m") + 1] == "0600"


def check_node_install(ctx: Context, tokens: list[str]) -> None:
    """``python3 /opt/…/nodes/install.py --id hall --env hall.env`` on a Pi (§4): the
    installer's paths are the node unit's, the env file is the one §1 wrote for that node."""
    from nodes import install

    script = next(t for t in tokens if t.endswith("/install.py"))
    assert Path(script).relative_to("/opt/escape-apartment/src") == Path("nodes/install.py")
    args = install.build_parser().parse_args(tokens[tokens.index(script) + 1:])
    assert args.node in ctx.game_nodes and not args.undo and args.root is None
    env = read_env_file(ctx.secrets / args.env.name)
    assert env["ESCAPE_MQTT_USERNAME"] == args.node and env["ESCAPE_BROKER"]
    service = load_unit(NODE_UNIT)["Service"]
    assert shlex.split(service["ExecStart"])[0] == f"/{install.VENV}/bin/escape-apartment"
    assert service["EnvironmentFile"] == f"/{install.ETC}/%i.env"
    assert service["User"] == install.USER
    assert set(service["SupplementaryGroups"].split()) == set(install.GROUPS)
    assert "${ESCAPE_BROKER}" in service["ExecStart"]


def check_chrony(ctx: Context, tokens: list[str]) -> None:
    """``install …/chrony.conf /etc/chrony/conf.d/…`` (§4b): a file chronyd parses."""
    source, target = REPO / tokens[-2], tokens[-1]
    assert source.is_file() and target.startswith("/etc/chrony/conf.d/") and target.endswith(".conf")
    chronyd = shutil.which("chronyd") or "/usr/sbin/chronyd"
    assert Path(chronyd).exists(), "chronyd is needed (apt install chrony)"
    done = subprocess.run([chronyd, "-p", "-f", str(source)], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr


def check_pi_setup(ctx: Context, tokens: list[str]) -> None:
    """useradd, git clone, venv, pip: what the node unit expects on the Pi."""
    service = load_unit(NODE_UNIT)["Service"]
    venv_bin = Path(shlex.split(service["ExecStart"])[0]).parent
    word = command_word(tokens)
    if word == "useradd":
        assert tokens[-1] == service["User"] == load_unit(CONTROLLER_UNIT)["Service"]["User"]
        assert "--groups" not in tokens, "the controller's user needs no device (a node's: §4's installer)"
    elif word == "git":
        assert tokens[-1] == str(venv_bin.parent.parent / "src")
    elif word == "python3":
        assert tokens[-1] == str(venv_bin.parent)
    elif word.endswith("/pip"):
        assert Path(word).parent == venv_bin
        extra = re.fullmatch(r".*\[(\w+)\]", tokens[-1])
        assert extra, tokens
        extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
            "optional-dependencies"]
        assert extra.group(1) in extras
    else:
        pytest.fail(f"no check for {tokens}")


def check_pi_tool(ctx: Context, tokens: list[str]) -> None:
    """``/opt/…/escape-apartment node wiring|test …`` on the Pi: a real sub-command."""
    args = build_parser().parse_args(tokens[1:])
    assert args.command == "node" and args.node_id in ctx.game_nodes
    exec_start = shlex.split(load_unit(NODE_UNIT)["Service"]["ExecStart"])
    assert args.config == exec_start[exec_start.index("--config") + 1]


def check_apt(ctx: Context, tokens: list[str]) -> None:
    packages = [t for t in tokens[3:] if not t.startswith("-")]
    assert set(packages) <= {"mosquitto", "mosquitto-clients", "python3-venv", "git", "chrony"}, packages


def check_dropin(ctx: Context, line: Line) -> None:
    """The Debian broker service pointed at the config ``broker install`` wrote."""
    if "mkdir" in line.joined:
        assert ctx.expand(words(line)[-1]) == "/etc/systemd/system/mosquitto.service.d"
        return
    printf = line.joined.split("|", 1)[0]
    done = subprocess.run(["bash", "-c", printf], capture_output=True, text=True, timeout=10,
                          check=True, env={**os.environ, **ctx.values})
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(done.stdout)
    exec_start = shlex.split(unit["Service"]["ExecStart"].strip().splitlines()[-1])
    conf = Path(exec_start[-1])
    assert exec_start[:2] == [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c"]
    assert conf == Path(ctx.values["ESCAPE_ROOT"]) / "broker" / "mosquitto.conf"
    assert conf.is_file(), "the drop-in names a config that broker install did not write"
    assert words(line)[-1].startswith("/etc/systemd/system/mosquitto.service.d/")


def check_watch(ctx: Context, tokens: list[str]) -> None:
    """``mosquitto_sub`` runs until Ctrl-C: its login is the controller's."""
    env = read_env_file(ctx.secrets / "controller.env")
    assert tokens[tokens.index("-u") + 1] == "$ESCAPE_MQTT_USERNAME" and env["ESCAPE_MQTT_USERNAME"]
    assert tokens[tokens.index("-P") + 1] == "$ESCAPE_MQTT_PASSWORD" and env["ESCAPE_MQTT_PASSWORD"]
    assert tokens[tokens.index("-p") + 1] == "$MQTT_PORT"


StaticCheck = Callable[[Context, Line], None]


def classify(line: Line) -> StaticCheck | None:
    """None: run it here. Else: the check of a command this machine does not run."""
    tokens = words(line)
    word = command_word(tokens)
    text = line.joined

    def on_tokens(check: Callable[[Context, list[str]], None]) -> StaticCheck:
        return lambda ctx, _line: check(ctx, tokens)

    if word == "docker":
        return on_tokens(check_docker)
    if word == "echo" and re.search(r">\s*\.env$", text):
        return check_dotenv
    if word == "chown":
        return on_tokens(check_chown)
    if word in ("systemctl", "journalctl"):
        return on_tokens(check_systemctl)
    if word in ("apt", "apt-get"):
        return on_tokens(check_apt)
    if "/etc/systemd/system/mosquitto.service.d" in text:
        return check_dropin
    if word == "cp" and text.endswith("/etc/systemd/system/"):
        return on_tokens(check_unit_copy)
    if word == "install" and "/etc/escape-apartment" in text:
        return on_tokens(check_pi_install)
    if word == "install" and "/etc/chrony/" in text:
        return on_tokens(check_chrony)
    if "nodes/install.py" in text:
        return on_tokens(check_node_install)
    if word in ("useradd", "git", "python3") or word.endswith("/pip"):
        return on_tokens(check_pi_setup)
    if word.startswith("/opt/"):
        return on_tokens(check_pi_tool)
    if word == "mosquitto_sub":
        return on_tokens(check_watch)
    if re.search(r"(^|\s)/(etc|opt|usr)/", text):
        return lambda _ctx, _line: pytest.fail(f"a system path, and no check for it: {text}")
    return None


#: what may run here: anything else is neither run nor checked, and fails the test
RUNNABLE = {"=", "install", "escape-apartment", "$(command", "mkdir", "mosquitto", "grep", "set",
            "for", "done", ")", "."}


def runnable_word(tokens: list[str]) -> str:
    word = command_word(tokens)
    return "$(command" if word.startswith("$(command") else word


# -- the run --------------------------------------------------------------------------------
def build_script(lines: list[Line], values: dict[str, str]) -> tuple[str, list[tuple[Line, StaticCheck]]]:
    """The bash script of the runnable lines (static ones become no-ops), and the checks."""
    assigned = {name: 0 for name in VARIABLES}
    script = ["set -euo pipefail"]
    checks: list[tuple[Line, StaticCheck]] = []
    for line in lines:
        check = classify(line)
        if check is not None:
            checks.append((line, check))
            script.append(f": checked, not run: {shlex.quote(line.joined)}")
            continue
        tokens = words(line)
        assert runnable_word(tokens) in RUNNABLE, f"neither run nor checked: {line.joined}"
        assignment = re.fullmatch(r"(\w+)=\S+", tokens[0]) if len(tokens) == 1 else None
        if assignment and assignment.group(1) in VARIABLES:
            name = assignment.group(1)
            assigned[name] += 1
            script.append(f"{name}={shlex.quote(values[name])}")
            continue
        # we are root: sudo has nothing to do (and would reset PATH)
        script.append(re.sub(r"(^|[\s(])sudo\s+", r"\1", line.text))
    assert all(n == 1 for n in assigned.values()), f"§0 sets each variable once: {assigned}"
    return "\n".join(script) + "\n", checks


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    values: dict[str, str]
    log: Path
    started: float    # monotonic time the guide's commands were started

    @property
    def root(self) -> Path:
        return Path(self.values["ESCAPE_ROOT"])

    def logs(self) -> str:
        out = [f"--- script\n{self.log.read_text(errors='replace')[-3000:]}"]
        for path in sorted((self.root / "logs").glob("*.log")) if (self.root / "logs").is_dir() else []:
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(out)


def _members(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                continue
    return pids


def _stop(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while _members(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.fixture(scope="module")
def doc_lines() -> list[Line]:
    return logical_lines(sh_blocks(DOC.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def stack(doc_lines: list[Line]) -> Iterator[Stack]:
    require_or_skip_mosquitto()
    if os.geteuid() != 0:
        pytest.skip("the guide's sudo steps (a broker started as root) need root")
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.fail("no mosquitto user: install the mosquitto package (it creates it)")
    # like /srv: a directory the mosquitto user may pass through
    base = Path(tempfile.mkdtemp(prefix="escape-deploy-"))
    base.chmod(0o755)
    values = {"ESCAPE_ROOT": str(base / "srv-escape"), "GAME_SERVER": "127.0.0.1",
              "MQTT_PORT": str(free_port()), "HTTP_PORT": str(free_port())}
    script, _ = build_script(doc_lines, values)
    (base / "deploy.sh").write_text(script, encoding="utf-8")
    log = base / "deploy.log"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ESCAPE_")},
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "USER": getpass.getuser()}
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(["bash", str(base / "deploy.sh")], cwd=REPO, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    stack = Stack(process, values, log, started)
    try:
        yield stack
    finally:
        _stop(process.pid)
        shutil.rmtree(base, ignore_errors=True)


# -- the tests ------------------------------------------------------------------------------
def test_every_line_of_the_guide_is_run_or_checked(doc_lines: list[Line]) -> None:
    script, checks = build_script(doc_lines, {name: "x" for name in VARIABLES})
    run = [line for line in script.splitlines()[1:] if not line.startswith(": checked")]
    # §1 (secrets), §2b (broker), §3 (controller and rooms) run; the rest is checked
    assert any("broker credentials" in line for line in run)
    assert any("broker install" in line for line in run)
    assert any("mosquitto -c" in line for line in run)
    assert any("escape-apartment controller" in line for line in run)
    assert any("escape-apartment node" in line for line in run)
    kinds = {command_word(words(line)) for line, _ in checks}
    assert {"docker", "systemctl", "chown", "install", "useradd", "mosquitto_sub", "python3"} <= kinds


def test_following_the_guide_gives_a_logged_in_game_master_and_every_room_online(
        stack: Stack, doc_lines: list[Line]) -> None:
    try:
        code = stack.process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the guide's commands did not return within 90 s\n{stack.logs()}")
    assert code == 0, f"a command of the guide failed (exit {code})\n{stack.logs()}"
    secrets = stack.root / "secrets"
    controller_env = read_env_file(secrets / "controller.env")

    game = load_game(SHIPPED_GAME)
    url = f"http://127.0.0.1:{stack.values['HTTP_PORT']}"
    deadline = time.monotonic() + ONLINE_WITHIN_S
    online: list[str] = []
    with httpx.Client(base_url=url, timeout=5) as client:
        while True:
            try:
                reply = client.post("/api/login", json={"password": controller_env["ESCAPE_GM_PASSWORD"]})
            except httpx.TransportError:
                reply = None
            if reply is not None and reply.status_code == 200:
                break
            assert time.monotonic() < deadline, f"no console on {url}\n{stack.logs()}"
            time.sleep(0.2)
        assert reply.json() == {"role": "gm"}
        while True:
            state = client.get("/api/state").json()
            online = sorted(n["id"] for n in state["nodes"] if n["online"])
            if online == sorted(n.id for n in game.nodes):
                break
            assert time.monotonic() < deadline, f"online: {online}\n{stack.logs()}"
            time.sleep(0.2)
        elapsed = time.monotonic() - stack.started
        # in rehearsal mode, as §3 says; and the technician's login works too
        assert client.get("/api/layout").json()["demo"] is True
        with httpx.Client(base_url=url, timeout=5) as tech:
            login = tech.post("/api/login", json={"password": controller_env["ESCAPE_TECH_PASSWORD"]})
            assert login.json() == {"role": "tech"}
    assert len(online) == 7
    # the broker was started as root (§2b): it runs as mosquitto, and so read the passwd
    # that broker install gave that user (the nodes' logins above went through it)
    broker_uids = [int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])
                   for pid in _members(stack.process.pid)
                   if Path(f"/proc/{pid}/comm").read_text().strip() == "mosquitto"]
    assert broker_uids == [pwd.getpwnam("mosquitto").pw_uid], stack.logs()
    print(f"\ndeploy guide: every room online {elapsed:.1f} s after its commands were started")


def test_what_cannot_run_here_matches_the_files_it_relies_on(stack: Stack, doc_lines: list[Line]) -> None:
    """Docker, systemd, the Pi: each command checked against compose, the units, the env
    files that the guide's own earlier commands wrote (hence after the run)."""
    try:
        stack.process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("the guide's commands did not return within 90 s")
    _, checks = build_script(doc_lines, stack.values)
    ctx = Context(values=stack.values, compose=yaml.safe_load(COMPOSE.read_text(encoding="utf-8")),
                  game_nodes=[n.id for n in load_game(SHIPPED_GAME).nodes])
    for line, check in checks:
        try:
            check(ctx, line)
        except AssertionError as exc:
            raise AssertionError(f"docs/deploy.md: {line.joined}\n{exc}") from exc


def test_rehearsal_mode_under_compose_is_one_variable() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert compose["services"]["controller"]["environment"]["ESCAPE_DEMO"] == "${ESCAPE_DEMO:-0}"
    assert "`ESCAPE_DEMO=1 docker compose up -d controller`" in DOC.read_text(encoding="utf-8")
