"""Virtual time: one seeded scheduler, and the clocks of each simulated machine.

Everything in a simulation happens inside :meth:`Scheduler.run_until` (or its siblings):
an action is a plain callable scheduled at a virtual time; actions due at the same time
run in the order they were scheduled (a sequence number breaks ties), so a run depends on
nothing but the seed. ``scheduler.random`` is the only source of randomness; no thread,
socket, sleep or wall clock is involved.

Each machine (a node, the controller, the broker) reads time through its own
:class:`Machine`: a monotonic clock (virtual time since its last boot) and a wall clock
(virtual time plus an offset the simulation can step, for the clock-step fault).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from typing import Any

#: the wall clock of a machine with no offset at virtual time 0 (2026-01-01T00:00:00Z)
EPOCH = 1_767_225_600.0
#: a machine's monotonic clock right after boot (a real one counts from the boot, not 0)
UPTIME_AT_BOOT = 10.0


class Timer:
    """A scheduled action; :meth:`cancel` keeps it from running."""

    __slots__ = ("action", "args", "cancelled", "when")

    def __init__(self, when: float, action: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.action = action
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """A heap of (time, sequence, action) on virtual time, with one seeded random source.

    *trace* keeps a line per notable event (packets delivered, faults, clock steps): two
    runs with the same seed and the same inputs give the same trace, byte for byte.
    """

    def __init__(self, seed: int, *, trace: bool = True) -> None:
        self.seed = seed
        self.random = random.Random(seed)
        self.now = 0.0
        self.steps = 0
        self.trace: list[str] | None = [] if trace else None
        self._heap: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()

    # -- scheduling ---------------------------------------------------------------------
    def call_at(self, when: float, action: Callable[..., Any], *args: Any) -> Timer:
        """Run ``action(*args)`` at virtual time *when* (never in the past)."""
        if math.isnan(when):
            msg = "cannot schedule at NaN"
            raise ValueError(msg)
        timer = Timer(max(when, self.now), action, args)
        heapq.heappush(self._heap, (timer.when, next(self._sequence), timer))
        return timer

    def call_later(self, delay: float, action: Callable[..., Any], *args: Any) -> Timer:
        return self.call_at(self.now + delay, action, *args)

    def call_soon(self, action: Callable[..., Any], *args: Any) -> Timer:
        return self.call_at(self.now, action, *args)

    # -- running ------------------------------------------------------------------------
    def next_time(self) -> float | None:
        """When the next pending action is due (None when there is none)."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def step(self) -> bool:
        """Run the next pending action; False when there is none."""
        heap = self._heap
        while heap:
            when, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            self.now = when
            self.steps += 1
            timer.action(*timer.args)
            return True
        return False

    def run_until(self, when: float) -> None:
        """Run every action due up to *when* included, then set the time to *when*."""
        heap = self._heap
        while heap and heap[0][0] <= when:
            _, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            self.now = timer.when
            self.steps += 1
            timer.action(*timer.args)
        self.now = max(self.now, when)

    def run_for(self, duration: float) -> None:
        self.run_until(self.now + duration)

    def run_until_idle(self, *, max_steps: int = 10_000_000) -> None:
        """Run until nothing is pending (periodic timers never let that happen: bound it)."""
        for _ in range(max_steps):
            if not self.step():
                return
        msg = f"still busy after {max_steps} steps (a periodic timer? use run_until)"
        raise RuntimeError(msg)

    def run_until_true(self, condition: Callable[[], bool], *, timeout: float) -> bool:
        """Run until *condition()* holds (checked after each action) or *timeout* virtual
        seconds passed; return whether it holds."""
        deadline = self.now + timeout
        while not condition():
            due = self.next_time()
            if due is None or due > deadline:
                self.now = max(self.now, deadline)
                return condition()
            self.step()
        return True

    # -- trace --------------------------------------------------------------------------
    def log(self, actor: str, text: str) -> None:
        if self.trace is not None:
            self.trace.append(f"{self.now:12.6f} {actor} {text}")

    def trace_text(self) -> str:
        return "".join(line + "\n" for line in self.trace or ())


class Machine:
    """One computer's view of time: its monotonic and wall clocks, both virtual.

    ``monotonic()`` counts from the machine's last boot (:meth:`reboot`), never jumps;
    ``time()`` is the wall clock, which :meth:`step_wall` moves by any amount, as NTP or a
    wrong RTC would.
    """

    def __init__(self, scheduler: Scheduler, name: str, *, wall_offset: float = 0.0) -> None:
        self.scheduler = scheduler
        self.name = name
        self.wall_offset = wall_offset
        self._booted_at = scheduler.now

    def monotonic(self) -> float:
        return self.scheduler.now - self._booted_at + UPTIME_AT_BOOT

    def time(self) -> float:
        return EPOCH + self.scheduler.now + self.wall_offset

    def step_wall(self, seconds: float) -> None:
        """The wall clock jumps by *seconds* (negative: back in time)."""
        self.wall_offset += seconds
        self.scheduler.log(self.name, f"wall clock stepped by {seconds:+.3f} s")

    def reboot(self) -> None:
        """The monotonic clock restarts from the boot (the wall clock keeps its offset)."""
        self._booted_at = self.scheduler.now
        self.scheduler.log(self.name, "rebooted")

    def __repr__(self) -> str:
        return f"<Machine {self.name}>"
