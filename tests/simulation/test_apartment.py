"""The whole apartment under the deterministic simulator: seeds keep every invariant,
a failure is shrunk and replayed with one command, and defects the safety work fixed,
put back one at a time, are found within the CI budget (docs/simulation.md)."""

from __future__ import annotations

import inspect
import multiprocessing
import os
import shlex
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from simulation import invariants
from simulation.__main__ import main
from simulation.explore import Found, explore, replay_command, scenario_of, shrink
from simulation.runner import run
from tests.simulation.defects import DEFECTS, Defect

#: the CI budget: this many seeds of STEPS steps (``SIM_SEEDS`` for more)
SEEDS = int(os.environ.get("SIM_SEEDS", "1000"))
STEPS = 12
#: the defects are looked for in the first seeds of the same plan, this many at most
DEFECT_SEEDS = 200
WORKERS = max(1, min(2, os.cpu_count() or 1))


def _explore_slice(first: int, count: int) -> tuple[int, int, float, int | None, str]:
    """Seeds *first*… in a worker: (seeds, scheduler steps, CPU seconds, failing seed, why)."""
    cpu = time.process_time()
    summary = explore(first, count, steps=STEPS)
    found = summary.found
    return (summary.seeds, summary.steps, time.process_time() - cpu,
            found.seed if found else None, "\n".join(found.result.violations[:3]) if found else "")


def test_every_invariant_is_a_named_function_with_a_docstring() -> None:
    names = [name for name, fn in inspect.getmembers(invariants, inspect.isfunction)
             if fn.__module__ == invariants.__name__ and not name.startswith("_")]
    expected = {
        "locks_released_after_an_emergency_or_an_end", "exit_door_never_relocked_without_the_game_master",
        "emergency_input_releases_at_once", "each_solve_counted_once",
        "budget_is_start_plus_solves_minus_clues", "view_converges_to_the_truth",
        "console_confirms_only_what_relays_did", "console_state_is_valid_json",
        "nothing_recorded_is_lost", "nothing_recorded_is_lost_after_a_crash",
        "check_passes_only_in_start_state", "nothing_crashes",
    }
    assert expected <= set(names)
    for name in names:
        doc = inspect.getdoc(getattr(invariants, name))
        assert doc and len(doc) > 40, f"{name} says what it checks"


def test_the_same_seed_gives_the_same_run() -> None:
    first = run(scenario_of(11, 20), packets=True)
    again = run(scenario_of(11, 20), packets=True)
    assert first.done == again.done and first.packets == again.packets
    assert first.steps == again.steps > 500


@pytest.mark.timeout(900)   # a shared machine may be slow; the budget is checked in CPU time
def test_thousands_of_seeds_keep_every_invariant() -> None:
    """The CI run: SEEDS seeds on WORKERS processes; under a minute on two free cores (the
    CPU time they take, halved: a machine shared with other work only stretches the wall
    clock)."""
    started = time.perf_counter()
    share = -(-SEEDS // WORKERS)
    # spawned, not forked: the test process may hold threads of earlier tests
    with ProcessPoolExecutor(max_workers=WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_explore_slice, range(0, SEEDS, share), [share] * WORKERS))
    wall = time.perf_counter() - started
    failures = [f"seed {seed}: {words}\nreplay: {replay_command(seed, STEPS)}"
                for _n, _s, _w, seed, words in parts if seed is not None]
    assert not failures, "\n\n".join(failures)
    seeds = sum(p[0] for p in parts)
    assert seeds == WORKERS * share
    cpu = sum(p[2] for p in parts)
    print(f"\n{seeds} seeds of {STEPS} steps, {sum(p[1] for p in parts)} scheduler steps in "
          f"{wall:.1f} s on {WORKERS} processes ({seeds / wall:.1f} seeds/s); {cpu:.1f} CPU s: "
          f"{seeds / cpu:.1f} seeds per CPU second")
    assert cpu / 2 < 60, f"{seeds} seeds took {cpu:.0f} CPU s: over a minute on two cores"


CAUGHT = [d for d in DEFECTS if d.seed is not None]


def test_at_least_five_defects_are_caught_within_the_ci_budget() -> None:
    assert len(CAUGHT) >= 5, [d.name for d in CAUGHT]


@pytest.mark.parametrize("defect", CAUGHT, ids=lambda d: d.name)
def test_the_ci_seeds_catch_each_defect_the_safety_work_fixed(defect: Defect,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """*defect.seed* is the first seed of the CI plan (seeds 0, 1, 2… of STEPS steps) that
    breaks an invariant with the defect put back (found by :func:`explore` from seed 0):
    within the CI budget, it holds on the product as it is and breaks with the defect."""
    assert defect.seed is not None and defect.seed < SEEDS, f"{defect.name}: beyond the CI budget"
    assert run(scenario_of(defect.seed, STEPS)).ok
    defect.apply(monkeypatch)
    result = run(scenario_of(defect.seed, STEPS))
    assert result.first() == defect.invariant, result.violations
    print(f"\n{defect.name}: seed {defect.seed}, {result.steps} scheduler steps, "
          f"{result.virtual_s:.1f} virtual s")


def test_explore_finds_a_defect_from_seed_0(monkeypatch: pytest.MonkeyPatch) -> None:
    defect = next(d for d in DEFECTS if d.name == "console_confirms_at_send")
    defect.apply(monkeypatch)
    summary = explore(0, DEFECT_SEEDS, steps=STEPS)
    assert summary.found is not None and summary.found.seed == defect.seed
    assert summary.seeds == summary.found.seed + 1


def test_a_failure_is_shrunk_to_a_readable_trace_and_replayed_by_one_command(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    defect = next(d for d in DEFECTS if d.name == "relock_after_emergency_end")
    defect.apply(monkeypatch)
    summary = explore(0, DEFECT_SEEDS, steps=STEPS)
    assert summary.found is not None
    found: Found = shrink(summary.found)
    assert found.shrunk is not None and found.kept is not None
    assert found.shrunk.first() == defect.invariant
    assert len(found.kept) < len(found.result.scenario.steps)
    report = found.report()
    assert f"seed {found.seed}" in report and "end_emergency" in report
    assert found.command() in report

    # the command replays the shrunk scenario: the same steps, the same failure
    argv = shlex.split(found.command())
    assert argv[:3] == ["python", "-m", "simulation"]
    assert main(argv[3:]) == 1
    out = capsys.readouterr().out
    assert defect.invariant in out
    assert [line.strip() for line in found.shrunk.done] == [
        line.strip() for line in out.splitlines() if line.strip() in
        {d.strip() for d in found.shrunk.done}]


def test_the_command_line_runs_seeds_and_says_when_all_held(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "3", "--seed", "40", "--steps", "8"]) == 0
    out = capsys.readouterr().out
    assert "3 seeds (40…42)" in out and "seeds/s" in out and "every invariant held" in out
