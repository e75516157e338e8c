"""Fault: a game file with errors.

What the technician sees: a controller started on it refuses to start and prints every
error with its file and line; a running controller told to reload it (``SIGHUP``, or the
technician's ``POST /api/config/reload``, tested in tests/controller/test_reload.py) keeps
its game — the players' game goes on untouched — and logs why.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.conftest import GAME, ROOT, ControllerProcess, console_command, game_file, wait_for

BAD = GAME.format(autonomy=30.0).replace("code_length: 4", "code_length: four", 1)


def test_a_controller_started_on_a_bad_game_file_refuses_to_start_and_says_where(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD, encoding="utf-8")
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCAPE_")}
    run = subprocess.run([*console_command(), "controller", "--config", str(bad), "--port", "9"],
                         check=False, capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert run.returncode == 2, run.stdout + run.stderr
    out = run.stdout + run.stderr
    line, column = next((i, text.index("code_length") + 1)
                        for i, text in enumerate(BAD.splitlines(), 1) if "code_length: four" in text)
    assert f"{bad}:{line}:{column}: error: nodes[0].props[0].code_length" in out, out
    assert "controller not started" in out
    print(f"\n[bad config] refused in {time.monotonic() - started:.1f} s with exit code 2")


@pytest.mark.mosquitto
def test_a_running_controller_keeps_its_game_on_a_bad_reload(mosquitto, tmp_path, processes) -> None:
    path = game_file(tmp_path)
    controller = ControllerProcess(game=path, db=tmp_path / "escape.db", broker=mosquitto,
                                   log=tmp_path / "controller.log")
    processes.append(controller)
    wait_for(lambda: controller.state() is not None, timeout=20, what="the controller to serve")
    reply = controller.post("/api/game/start", {"parcours": "primo", "players": 2})
    assert reply.status_code == 200, reply.text
    session = reply.json()["session"]

    def log_has(text: str) -> bool:
        return text in controller.log.read_text(encoding="utf-8", errors="replace")

    # -- a broken file, then SIGHUP: refused, the game goes on --------------------------------
    path.write_text(BAD, encoding="utf-8")
    controller.signal(signal.SIGHUP)
    wait_for(lambda: log_has("SIGHUP: reload refused"), what="the refusal in the log")
    assert log_has(f"{path}:") and log_has("code_length")
    state = controller.state()
    assert controller.process.poll() is None, "still running"
    assert state["game"]["phase"] == "running" and state["game"]["session"] == session
    assert [n["label"] for n in state["nodes"]] == ["Hall", "Entrée"]

    # -- a valid change while the game runs: kept for the end of the session ----------------
    path.write_text(GAME.format(autonomy=30.0).replace("label: Hall\n", "label: Hall d'entrée\n", 1),
                    encoding="utf-8")
    controller.signal(signal.SIGHUP)
    wait_for(lambda: log_has("SIGHUP: game file pending"), what="the new file kept for later")
    state = controller.state()
    assert state["game"]["session"] == session and state["game_file"]["pending"] is not None
    assert [n["label"] for n in state["nodes"]] == ["Hall", "Entrée"], "not under the players"

    # -- after the session: taken by itself ----------------------------------------------------
    assert controller.post("/api/game/stop").status_code == 200
    assert controller.post("/api/game/reset").status_code == 200
    wait_for(lambda: log_has("attendait la fin de la session"), what="the file taken after the session")
    labels = [n["label"] for n in controller.state()["nodes"]]
    assert labels == ["Hall d'entrée", "Entrée"]
