"""Fault: a wall clock steps an hour either way in the middle of a game — the whole stack.

Real processes over a real Mosquitto: the controller under uvicorn, the hall's node and
the entrée's node (``escape-apartment node --simulate``), each of the three under
libfaketime with its own clock file (its monotonic clock stays real). The test steps one
machine's clock at a time, +1 h then −1 h, and each time drives the game only through
HTTP: the emergency must answer with every lock confirmed open by its node, and the
locks must close again when the game master asks. The timer the game master and the
rooms see must not jump when the controller's own clock steps.

What it measures: POST /api/emergency → every relay confirmed open (the answer's slowest
lock, in ms), at each step.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.conftest import ControllerProcess, NodeProcess, _Process, game_file, wait_for
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mosquitto

FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
HOUR = 3600
LOCKS = (("hall", "mailbox_lock"), ("entree", "door_lock"))


def faked(clock: Path) -> dict[str, str]:
    return {"LD_PRELOAD": str(FAKETIME), "FAKETIME_TIMESTAMP_FILE": str(clock),
            "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def step(clock: Path, offset_s: int) -> None:
    clock.write_text(f"{offset_s:+d}\n")


def emergency_round(controller: ControllerProcess) -> int:
    """The emergency, answered with every lock confirmed open; then the alert ended and
    every lock closed again, confirmed. Returns the slowest lock's confirmation, in ms."""
    answer = controller.post("/api/emergency")
    body = answer.json()
    assert answer.status_code == 200 and body["all_confirmed"], body
    assert {(e["node"], e["prop"]) for e in body["confirmed"]} == set(LOCKS), body
    slowest = max(e["ms"] for e in body["confirmed"])
    assert controller.post("/api/emergency/end").status_code == 200
    for node, prop in LOCKS:
        locked = controller.post(f"/api/props/{node}/{prop}/lock")
        assert locked.status_code == 200 and locked.json()["confirmed"], locked.json()
    return slowest


def remaining(controller: ControllerProcess) -> float:
    state = controller.state()
    assert state is not None
    return float(state["game"]["remaining_s"])


def test_an_hour_step_of_any_clock_changes_nothing_the_game_master_or_the_players_see(
        mosquitto: Mosquitto, tmp_path: Path, processes: list[_Process]) -> None:
    if not FAKETIME.exists():
        pytest.skip(f"libfaketime not installed ({FAKETIME}; Debian package faketime)")
    game = game_file(tmp_path)
    clocks = {name: tmp_path / f"{name}.clock" for name in ("controller", "hall", "entree")}
    for clock in clocks.values():
        step(clock, 0)
    controller = ControllerProcess(game=game, db=tmp_path / "escape.db", broker=mosquitto,
                                   log=tmp_path / "controller.log", env=faked(clocks["controller"]))
    processes.append(controller)
    for node in ("hall", "entree"):
        processes.append(NodeProcess(node_id=node, game=game, broker=mosquitto.address,
                                     data_dir=tmp_path / node, log=tmp_path / f"{node}.log",
                                     env=faked(clocks[node])))

    def online() -> bool:
        state = controller.state()
        return state is not None and all(n["online"] for n in state["nodes"])

    wait_for(online, timeout=20, what="the controller and both rooms up")
    started = controller.post("/api/game/start", {"parcours": "primo", "players": 4})
    assert started.status_code == 200, started.text
    wait_for(lambda: all(p["desired"] and p["desired"]["confirmed"]
                         for p in (controller.state() or {"props": []})["props"] if p["kind"] == "maglock"),
             timeout=10, what="every lock of the game's start confirmed")

    measured: dict[str, int] = {"no step": emergency_round(controller)}
    for machine in ("hall", "entree", "controller"):
        for offset in (HOUR, -HOUR):
            before = remaining(controller)
            stepped_at = time.monotonic()
            step(clocks[machine], offset)
            wait_for(lambda: bool(controller.state()), what="the controller answering after the step")
            if machine != "controller":
                # the node's next heartbeat carries its new clock: the technician is warned
                wait_for(lambda m=machine: next(n for n in (controller.state() or {})["nodes"]
                                                if n["id"] == m)["clock_skewed"],
                         timeout=10, what=f"the {machine}'s clock offset shown")
            measured[f"{machine} {offset // 60:+d} min"] = emergency_round(controller)
            # the game is paused by the emergency: the timer must not have moved by an hour
            assert abs(remaining(controller) - before) <= time.monotonic() - stepped_at + 2, \
                f"the timer jumped when the {machine}'s clock stepped"
            step(clocks[machine], 0)
    # the game goes on after all of it: resumed, the timer runs at its own pace
    assert controller.post("/api/game/resume").status_code == 200
    first, t0 = remaining(controller), time.monotonic()
    step(clocks["controller"], HOUR)
    wait_for(lambda: remaining(controller) < first - 1.5, timeout=10, what="the timer to run")
    ran = first - remaining(controller)
    assert ran <= time.monotonic() - t0 + 1, f"the timer ran {ran:.0f} s in {time.monotonic() - t0:.1f} s"
    step(clocks["controller"], 0)
    print("\n[clock step] emergency → every lock confirmed open (slowest, ms): "
          + ", ".join(f"{k}: {v}" for k, v in measured.items()))
    assert max(measured.values()) < 1000, measured
