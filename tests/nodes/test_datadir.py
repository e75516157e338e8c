"""What a node keeps across its restarts (nodes/datadir.py), where, and what its --help says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nodes.datadir import SYSTEM_STATE_DIR, DataDir, default_data_dir
from protocol.contract import Emergency

NODES = Path(__file__).resolve().parents[2] / "nodes"


def test_the_default_data_dir_is_persistent_and_follows_xdg(tmp_path: Path) -> None:
    if SYSTEM_STATE_DIR.exists():
        pytest.skip(f"{SYSTEM_STATE_DIR} exists here: it would be the default")
    home = tmp_path / "home"
    assert default_data_dir("hall", {"HOME": str(home)}) == home / ".local/state/escape-apartment/hall"
    assert default_data_dir("hall", {"HOME": str(home), "XDG_STATE_HOME": str(tmp_path / "st")}) == \
        tmp_path / "st/escape-apartment/hall"
    # a relative XDG_STATE_HOME is ignored, as the XDG spec says
    assert default_data_dir("hall", {"HOME": str(home), "XDG_STATE_HOME": "rel"}) == \
        home / ".local/state/escape-apartment/hall"


def test_the_boot_counter_counts_and_survives_a_damaged_file(tmp_path: Path, caplog) -> None:
    data = DataDir(tmp_path / "d", apartment="temoin", node="hall")
    assert [data.next_boot() for _ in range(3)] == [1, 2, 3]
    assert data.path("boot_n").read_text() == "3\n"
    assert [p.name for p in data.directory.iterdir()] == ["temoin-hall.boot_n"], "no temporary file"
    data.path("boot_n").write_text("garbage")
    assert data.next_boot() == 1
    assert "unreadable" in caplog.text


def test_an_emergency_is_remembered_until_cleared_and_a_damaged_record_counts_as_one(tmp_path: Path) -> None:
    data = DataDir(tmp_path, apartment="temoin", node="hall")
    assert data.load_emergency() is None
    active = Emergency(active=True, id="e1", who="game master")
    data.save_emergency(active)
    assert DataDir(tmp_path, apartment="temoin", node="hall").load_emergency() == active
    data.save_emergency(Emergency(active=False, id="e1"))
    assert data.load_emergency() is None and not data.path("emergency.json").exists()
    data.path("emergency.json").write_text("{half")
    assert data.load_emergency() is not None, "unreadable: the safe side is an emergency"


def environment_variables_read() -> set[str]:
    """Every environment variable a node reads: its settings' (nodes/settings.py), and what
    its modules (and the protocol's) read themselves: ``os.environ.get("X")``,
    ``env.get("X")``, ``os.environ["X"]``, ``os.getenv("X")``."""
    from nodes.settings import NodeSettings
    from protocol.settings import variables

    names: set[str] = set(variables(NodeSettings))
    for path in [*NODES.glob("*.py"), *(NODES.parent / "protocol").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'(?:environ|env)(?:\.get\(|\[)\s*"([A-Z][A-Z0-9_]+)"', text))
        names |= set(re.findall(r'getenv\(\s*"([A-Z][A-Z0-9_]+)"', text))
    return names


def test_node_help_lists_every_environment_variable_it_reads() -> None:
    names = environment_variables_read()
    assert {"ESCAPE_DATA_DIR", "ESCAPE_MQTT_PASSWORD_FILE", "NOTIFY_SOCKET", "XDG_STATE_HOME"} <= names
    script = Path(sys.executable).with_name("escape-apartment")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "controller.cli"]
    env = {**os.environ, "COLUMNS": "300"}   # argparse would break lines at hyphens
    shown = subprocess.run([*command, "node", "--help"], capture_output=True, text=True, check=True,
                           timeout=30, env=env).stdout
    missing = sorted(n for n in names if not re.search(rf"\b{n}\b", shown))
    assert missing == [], f"read but not in `node --help`: {missing}"
    assert "~/.local/state/escape-apartment" in shown and "never a temporary folder" in shown
