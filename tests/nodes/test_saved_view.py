"""The game view a node keeps on disk for a restart while the controller is away
(nodes/autonomy.py ``SavedView``): written atomically and rarely, trusted for a bounded
time — measured on the monotonic clock within one boot of the machine, so a step of the
wall clock never makes a running game's view untrusted."""

from __future__ import annotations

import json
from pathlib import Path

from nodes.autonomy import VIEW_REFRESH_S, WALL_CLOCK_SLACK_S, GameView, SavedView, Stamp

RUNNING = GameView(running=True, session="s1", parcours="primo", solved=frozenset({"b", "a"}))
HOUR = 3600.0


def at(wall: float, mono: float, os_boot: str | None = "boot-a") -> Stamp:
    return Stamp(wall=wall, mono=mono, os_boot=os_boot)


def test_round_trip_of_a_running_game(tmp_path: Path) -> None:
    saved = SavedView(tmp_path / "hall.game.json")
    assert saved.save(RUNNING, controller_boot="c1", at=at(1000.0, 50.0))
    assert SavedView(saved.path).load(max_age_s=HOUR, at=at(1010.0, 60.0)) == RUNNING
    data = json.loads(saved.path.read_text())
    assert data["solved"] == ["a", "b"] and data["controller_boot"] == "c1"
    assert (data["heard_at"], data["heard_mono"], data["os_boot"]) == (1000.0, 50.0, "boot-a")
    assert [p.name for p in tmp_path.iterdir()] == ["hall.game.json"], "no temporary file left"


def test_written_only_when_the_view_changes_or_is_due_a_refresh(tmp_path: Path, monkeypatch) -> None:
    saved = SavedView(tmp_path / "v.json")
    clock = [100.0]
    monkeypatch.setattr("nodes.autonomy.time.monotonic", lambda: clock[0])
    assert saved.save(RUNNING, controller_boot="c1")
    assert not saved.save(RUNNING, controller_boot="c1"), "a heartbeat saying the same: no write"
    clock[0] += VIEW_REFRESH_S
    assert saved.save(RUNNING, controller_boot="c1"), "a running game refreshes its age each minute"
    idle = GameView()
    assert saved.save(idle, controller_boot="c1")
    clock[0] += 10 * VIEW_REFRESH_S
    assert not saved.save(idle, controller_boot="c1"), "no game: nothing to refresh"


def test_within_one_boot_of_the_machine_a_wall_clock_step_changes_nothing(tmp_path: Path) -> None:
    saved = SavedView(tmp_path / "v.json")
    saved.save(RUNNING, controller_boot="c1", at=at(wall=10_000.0, mono=500.0))
    # the agent restarts 30 s later (monotonic), the wall clock stepped one hour either way
    for wall in (10_000.0 + HOUR + 30, 10_000.0 - HOUR + 30, 0.0):
        assert saved.load(max_age_s=HOUR / 2, at=at(wall=wall, mono=530.0)) == RUNNING, wall
    # and too old is too old, whatever the wall clock says
    assert saved.load(max_age_s=HOUR / 2, at=at(wall=10_030.0, mono=500.0 + HOUR)) is None


def test_across_a_reboot_the_wall_clock_is_trusted_within_its_slack(tmp_path: Path) -> None:
    saved = SavedView(tmp_path / "v.json")
    saved.save(RUNNING, controller_boot="c1", at=at(wall=10_000.0, mono=500.0, os_boot="before"))
    after = "after"   # another boot of the machine: its monotonic clock started again
    assert saved.load(max_age_s=HOUR, at=at(10_060.0, 5.0, after)) == RUNNING
    # a time server stepped the clock by an hour either way meanwhile: still trusted (warned)
    assert saved.load(max_age_s=HOUR, at=at(10_060.0 + HOUR, 5.0, after)) == RUNNING
    assert saved.load(max_age_s=HOUR, at=at(10_060.0 - HOUR, 5.0, after)) == RUNNING
    # beyond the slack: a view from another day
    far = 10_000.0 + HOUR + WALL_CLOCK_SLACK_S + 1
    assert saved.load(max_age_s=HOUR, at=at(far, 5.0, after)) is None
    assert saved.load(max_age_s=HOUR, at=at(10_000.0 - WALL_CLOCK_SLACK_S - 1, 5.0, after)) is None
    # a machine that cannot name its boot compares wall clocks too
    assert saved.load(max_age_s=HOUR, at=at(10_060.0 - HOUR, 5.0, None)) == RUNNING


def test_not_trusted_when_no_game_runs_or_unreadable(tmp_path: Path) -> None:
    saved = SavedView(tmp_path / "v.json")
    assert saved.load(max_age_s=HOUR) is None, "no file"
    saved.save(GameView(running=False, session="s1"), controller_boot="c1", at=at(1000.0, 50.0))
    assert saved.load(max_age_s=HOUR, at=at(1001.0, 51.0)) is None
    saved.path.write_text("{not json")
    assert saved.load(max_age_s=HOUR) is None
    saved.path.write_text('{"running": true}')
    assert saved.load(max_age_s=HOUR) is None, "no time stamp: cannot tell"
