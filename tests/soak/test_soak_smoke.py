"""The soak itself, as small as it gets: one session over the real processes, one fault.

``python -m soak --quick`` runs in CI after the suite (.ci/run); this one proves, inside
the suite, that the tool still drives the apartment end to end and that its checks run:
the production broker, the controller and seven simulated rooms as processes under
libfaketime, a group that wins, a ``kill -9`` of the controller while it plays, and every
invariant checked from outside with none failing.
"""

from __future__ import annotations

import pytest

from soak.procs import faketime_library
from soak.run import Options, Soak
from tests.support.mosquitto import require_or_skip_mosquitto

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow, pytest.mark.timeout(300)]

#: what one won session with one crash of the controller must have checked at least once
CHECKS = ("every_maglock_released", "no_relock_without_game_master", "each_solve_counted_once",
          "budget_is_start_plus_amounts_minus_clues", "check_passes_only_in_start_state",
          "view_converges_after_fault", "completed_sessions_kept", "session_events_recorded",
          "history_complete", "timer_runs_at_real_pace", "mqtt_payloads_are_valid_json")


def test_one_session_with_the_controller_killed_keeps_every_invariant() -> None:
    require_or_skip_mosquitto()
    if faketime_library() is None:
        pytest.skip("libfaketime is not installed (Debian package faketime)")
    options = Options(sessions=1, seed=3, fault_plan=["controller_kill"], fault_gap_s=(1.0, 2.0),
                      verbose=False)   # in a temporary directory the broker's user can reach
    data = Soak(options).run()
    failures = [f"{f['check']}: {f['detail']}" for f in data["checks"]["failures"]]
    assert failures == [], failures
    assert data["played"] == {"sessions": 1, "won": 1, "time_up": 0, "aborted": 0, "unfinished": 0}
    (fault,) = data["faults"]["records"]
    assert fault["kind"] == "controller_kill" and fault["converged"], fault
    assert fault["recovery_s"] is not None and fault["recovery_s"] < 30
    session = data["sessions"][0]
    assert session["final_budget"] == session["expected_budget"] and session["solved"] == 12
    assert session["events"] > 20 and session["events_lost"] == []
    ran = data["checks"]["runs"]
    assert {name: ran.get(name, 0) for name in CHECKS if not ran.get(name)} == {}
    assert data["process_exits"] == [] and data["log_alarms"] == []
