"""The game view a node keeps on disk for a reboot while the controller is away
(nodes/autonomy.py ``SavedView``): written atomically and rarely, trusted for a bounded time."""

from __future__ import annotations

import json
from pathlib import Path

from nodes.autonomy import VIEW_REFRESH_S, GameView, SavedView

RUNNING = GameView(running=True, session="s1", parcours="primo", solved=frozenset({"b", "a"}))
HOUR = 3600.0


def test_round_trip_of_a_running_game(tmp_path: Path) -> None:
    saved = SavedView(tmp_path / "hall.game.json")
    assert saved.save(RUNNING, controller_boot="c1", wall=1000.0)
    assert SavedView(saved.path).load(max_age_s=HOUR, wall=1010.0) == RUNNING
    data = json.loads(saved.path.read_text())
    assert data["solved"] == ["a", "b"] and data["controller_boot"] == "c1"
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


def test_not_trusted_when_no_game_runs_too_old_from_the_future_or_unreadable(tmp_path: Path) -> None:
    saved = SavedView(tmp_path / "v.json")
    assert saved.load(max_age_s=HOUR) is None, "no file"
    saved.save(GameView(running=False, session="s1"), controller_boot="c1", wall=1000.0)
    assert saved.load(max_age_s=HOUR, wall=1001.0) is None
    saved.save(RUNNING, controller_boot="c1", wall=1000.0)
    assert saved.load(max_age_s=HOUR, wall=1000.0 + HOUR + 1) is None, "older than a game"
    assert saved.load(max_age_s=HOUR, wall=900.0) is None, "a clock behind the file: cannot tell"
    saved.path.write_text("{not json")
    assert saved.load(max_age_s=HOUR) is None
