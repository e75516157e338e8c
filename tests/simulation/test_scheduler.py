"""The scheduler runs actions in time order, ties in scheduling order, and nothing else
decides: the same seed gives the same run. Machines read their own clocks from it."""

from __future__ import annotations

import math

import pytest

from simulation.scheduler import EPOCH, UPTIME_AT_BOOT, Machine, Scheduler


def test_actions_run_in_time_order_and_ties_in_scheduling_order() -> None:
    s = Scheduler(0)
    ran: list[tuple[float, str]] = []
    for when, name in ((2.0, "c"), (1.0, "a"), (2.0, "d"), (1.0, "b"), (0.5, "first")):
        s.call_at(when, lambda n=name: ran.append((s.now, n)))
    s.run_until_idle()
    assert ran == [(0.5, "first"), (1.0, "a"), (1.0, "b"), (2.0, "c"), (2.0, "d")]


def test_a_cancelled_action_does_not_run_and_the_past_is_now() -> None:
    s = Scheduler(0)
    ran: list[str] = []
    s.run_until(5.0)
    timer = s.call_later(1.0, ran.append, "cancelled")
    s.call_at(1.0, ran.append, "late")  # in the past: runs at once, not back in time
    timer.cancel()
    s.run_until(10.0)
    assert ran == ["late"]
    assert s.now == 10.0
    with pytest.raises(ValueError, match="NaN"):
        s.call_at(math.nan, ran.append, "x")


def test_run_until_stops_at_the_time_and_runs_what_is_due_exactly_then() -> None:
    s = Scheduler(0)
    ran: list[float] = []
    for t in (1.0, 2.0, 3.0):
        s.call_at(t, lambda: ran.append(s.now))
    s.run_until(2.0)
    assert ran == [1.0, 2.0]
    assert s.now == 2.0


def test_run_until_true_is_bounded_by_its_timeout() -> None:
    s = Scheduler(0)
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(s.now)
        s.call_later(1.0, tick)

    s.call_soon(tick)
    assert s.run_until_true(lambda: len(ticks) >= 3, timeout=100)
    assert s.now == 2.0
    assert not s.run_until_true(lambda: False, timeout=10)
    assert s.now == 12.0
    with pytest.raises(RuntimeError, match="still busy"):
        s.run_until_idle(max_steps=50)


def test_the_seed_alone_decides_the_random_draws() -> None:
    def draws(seed: int) -> list[float]:
        s = Scheduler(seed)
        return [s.random.random() for _ in range(5)]

    assert draws(42) == draws(42)
    assert draws(42) != draws(43)


def test_each_machine_has_its_own_monotonic_and_wall_clock() -> None:
    s = Scheduler(0)
    a, b = Machine(s, "a"), Machine(s, "b", wall_offset=-3600.0)
    s.run_until(100.0)
    assert a.monotonic() == UPTIME_AT_BOOT + 100.0
    assert a.time() == EPOCH + 100.0
    assert b.time() == EPOCH + 100.0 - 3600.0
    a.step_wall(-30.0)                       # the clock-step fault: the wall clock jumps…
    assert a.time() == EPOCH + 70.0
    assert a.monotonic() == UPTIME_AT_BOOT + 100.0   # …the monotonic one never does
    a.reboot()
    s.run_until(105.0)
    assert a.monotonic() == UPTIME_AT_BOOT + 5.0
    assert a.time() == EPOCH + 75.0          # a reboot keeps the wall clock's error
    assert s.trace is not None
    assert any("wall clock stepped by -30.000 s" in line for line in s.trace)
