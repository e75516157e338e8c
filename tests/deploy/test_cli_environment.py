"""``controller --help`` and ``node --help`` list every environment variable they read.

Measured, not copied: each program's variables are its settings object's (a field each,
and ``NAME_FILE`` for a secret: ``protocol/settings.py``), plus what its code asks of the
environment itself, recorded while the settings are read and the systemd hooks run; and any
``ESCAPE_…`` name written in either program's source must be listed too, so a variable
added later without a line of help fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
#: a variable's whole name in the source (a prefix such as "ESCAPE_MQTT_" ends with "_")
NAME = re.compile(r"""["'](ESCAPE_[A-Z0-9_]*[A-Z0-9])["']""")


def help_text(*argv: str) -> str:
    """The help, as the real command prints it."""
    done = subprocess.run([sys.executable, "-m", "controller.cli", *argv, "--help"],
                          capture_output=True, text=True, timeout=60, check=True, cwd=REPO)
    return done.stdout


def listed(text: str) -> set[str]:
    """The variables the help's environment section names, each at the start of a line."""
    section = text.split("environment variables", 1)[1]
    return set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s", section, re.MULTILINE))


def names_in_source(*packages: str) -> set[str]:
    found: set[str] = set()
    for package in packages:
        for path in (REPO / package).rglob("*.py"):
            found |= set(NAME.findall(path.read_text(encoding="utf-8")))
    return found


OURS = tuple(str(REPO / package) for package in ("controller", "nodes", "props", "config", "protocol"))


class Recording(dict[str, str]):
    """An environment that remembers every name our code asks of it (not the names that
    argparse, gettext or getpass ask: those are theirs)."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def _note(self, key: object) -> None:
        caller = sys._getframe(2).f_code.co_filename
        if caller.startswith(OURS):
            self.asked.add(str(key))

    def get(self, key: str, default: Any = None) -> Any:
        self._note(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self._note(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._note(key)
        return super().__contains__(key)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recording:
    env = Recording(dict(os.environ))
    monkeypatch.setattr(os, "environ", env)
    return env


def test_controller_help_lists_every_variable_the_controller_reads(recorded: Recording) -> None:
    from controller.api.auth import AuthSettings
    from controller.core.config import ENV_PREFIX, Settings
    from protocol.settings import variables

    shown = listed(help_text("controller"))
    AuthSettings.from_settings(Settings(), demo=True)
    read = {name for name in recorded.asked if name.startswith(ENV_PREFIX)}
    read |= set(variables(Settings)) | names_in_source("controller")
    missing = sorted(read - shown)
    assert missing == [], f"controller --help does not say what these are: {missing}"
    assert {"ESCAPE_GM_PASSWORD", "ESCAPE_TECH_PASSWORD", "ESCAPE_SCREEN_TOKEN_SECRET",
            "ESCAPE_SESSION_SECRET", "ESCAPE_MQTT_PASSWORD", "ESCAPE_DEMO",
            "ESCAPE_GM_PASSWORD_FILE", "ESCAPE_MQTT_PASSWORD_FILE"} <= shown


def test_node_help_lists_every_variable_a_node_reads(recorded: Recording, tmp_path: Path) -> None:
    from controller.cli import build_parser
    from nodes.cli import apply_settings
    from nodes.datadir import default_data_dir
    from nodes.sdnotify import notify, watchdog_interval
    from nodes.settings import NodeSettings
    from protocol.settings import variables

    shown = listed(help_text("node"))
    apply_settings(build_parser().parse_args(["node"]))   # the settings, from the environment
    default_data_dir("hall")
    notify("READY=1")
    watchdog_interval()
    read = {name for name in recorded.asked if name.isupper()} | names_in_source("nodes")
    read |= set(variables(NodeSettings))
    missing = sorted(read - shown)
    assert missing == [], f"node --help does not say what these are: {missing}"
    assert {"ESCAPE_BROKER", "ESCAPE_MQTT_USERNAME", "ESCAPE_MQTT_PASSWORD", "ESCAPE_DATA_DIR",
            "ESCAPE_NODE_ID", "ESCAPE_MQTT_PASSWORD_FILE", "GPIOZERO_PIN_FACTORY"} <= shown


def test_the_deploy_guide_lists_every_variable_of_both_programs() -> None:
    from controller.core.config import Settings
    from nodes.cli import PLATFORM_ENV
    from nodes.settings import NodeSettings
    from protocol.settings import variables

    guide = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = guide.split("## 7. Settings: every variable", 1)[1]
    names = set(variables(Settings)) | set(variables(NodeSettings)) | set(PLATFORM_ENV)
    missing = sorted(name for name in names if f"`{name}`" not in section)
    assert missing == [], f"docs/deploy.md §7 does not list: {missing}"
