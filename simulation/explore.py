"""Many seeds, and a failure made small: what ``python -m simulation`` does.

:func:`explore` runs the scenarios of consecutive seeds and stops at the first that breaks
an invariant; :func:`shrink` then removes every step it can (delta debugging: halves,
quarters… then one by one) while the run still breaks the *same* invariant. A shrunk
scenario is a subset of the seed's own steps, so it is named by the seed, the length of
the plan and the indices kept, and one command replays it (:func:`replay_command`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from simulation.runner import Result, run
from simulation.scenario import Scenario, plan

#: how many runs a shrink may cost at most
SHRINK_RUNS = 400


@dataclass(slots=True)
class Found:
    """The first seed that broke an invariant, its run and its shrunk form."""

    seed: int
    steps: int
    result: Result
    kept: tuple[int, ...] | None = None
    shrunk: Result | None = None
    shrink_runs: int = 0

    def command(self) -> str:
        return replay_command(self.seed, self.steps, self.kept)

    def report(self) -> str:
        """The seed, the shrunk trace (the steps kept, what broke) and the replay command."""
        final = self.shrunk or self.result
        lines = [f"seed {self.seed} broke {final.first()} "
                 f"({len(self.result.scenario.steps)} steps planned; "
                 f"{len(final.scenario.steps)} kept after {self.shrink_runs} shrinking runs, "
                 f"{final.steps} scheduler steps, {final.virtual_s:.1f} virtual s)",
                 "", "what was done (virtual s, who, what, on what):"]
        lines += [f"  {line}" for line in final.done]
        lines += ["", "what broke:"]
        lines += [f"  {v}" for v in final.violations[:5]]
        lines += ["", "replay it:", f"  {self.command()}"]
        return "\n".join(lines)


@dataclass(slots=True)
class Summary:
    seeds: int = 0
    steps: int = 0
    virtual_s: float = 0.0
    wall_s: float = 0.0
    found: Found | None = None
    results: list[Result] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.seeds / self.wall_s if self.wall_s else 0.0


def replay_command(seed: int, steps: int, kept: Iterable[int] | None = None) -> str:
    only = "" if kept is None else f" --only '{','.join(str(i) for i in kept)}'"
    return f"python -m simulation --seed {seed} --steps {steps}{only}"


def scenario_of(seed: int, steps: int, only: Iterable[int] | None = None) -> Scenario:
    """The plan of *seed*, or the part of it *only* keeps (indices into the plan)."""
    full = plan(seed, steps)
    if only is None:
        return full
    return full.with_steps([full.steps[i] for i in sorted(set(only))])


def explore(first: int, count: int, *, steps: int, keep_results: bool = False,
            progress: Callable[[Summary], None] | None = None) -> Summary:
    """Run seeds *first* … *first + count − 1*; stop at the first that breaks an invariant
    (not shrunk: :func:`shrink`)."""
    summary = Summary()
    started = time.perf_counter()
    for seed in range(first, first + count):
        result = run(plan(seed, steps))
        summary.seeds += 1
        summary.steps += result.steps
        summary.virtual_s += result.virtual_s
        if keep_results:
            summary.results.append(result)
        summary.wall_s = time.perf_counter() - started
        if not result.ok:
            summary.found = Found(seed, steps, result)
            break
        if progress is not None:
            progress(summary)
    return summary


def shrink(found: Found, *, budget: int = SHRINK_RUNS) -> Found:
    """Remove every step of *found*'s scenario that the failure does not need (same
    invariant broken). Steps after the failure are dropped first: they never ran."""
    target = found.result.first()
    full = plan(found.seed, found.steps)
    ran_until = found.result.virtual_s
    kept = [i for i, step in enumerate(full.steps) if step.at <= ran_until]
    best = found.result
    runs = 0

    def fails(indices: list[int]) -> Result | None:
        nonlocal runs
        runs += 1
        result = run(full.with_steps([full.steps[i] for i in indices]))
        return result if result.first() == target else None

    chunks = 2
    while len(kept) > 1 and runs < budget:
        size = -(-len(kept) // chunks)
        for start in range(0, len(kept), size):
            candidate = kept[:start] + kept[start + size:]
            result = fails(candidate)
            if result is not None:
                kept, best = candidate, result
                chunks = max(chunks - 1, 2)
                break
            if runs >= budget:
                break
        else:
            if size == 1:
                break
            chunks = min(len(kept), chunks * 2)
    if len(kept) == 1 or not kept:
        result = fails([]) if runs < budget else None
        if result is not None:
            kept, best = [], result
    found.kept, found.shrunk, found.shrink_runs = tuple(kept), best, runs
    return found
