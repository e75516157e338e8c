"""Run one scenario on a fresh apartment and say what broke.

:func:`run` builds the apartment of the seed (its SQLite file and the nodes' data dirs in
a temporary directory), does the scenario's steps at their times — the scheduler run
step by step in between, the observer after each — then ends every fault, lets the
apartment settle (:data:`SETTLE_S`) and checks once more. An exception anywhere in the
product's code is a finding too (``nothing_crashes``), and so is one it only logged.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from config.game import Game
from simulation.actors import Actors
from simulation.apartment import Apartment
from simulation.faults import Faults
from simulation.observer import Observer
from simulation.scenario import Scenario

#: after the last step: every fault ended, this long for the bounds to run out (s)
SETTLE_S = 8.0
#: the product's loggers, quiet during a run (thousands of warnings under faults)
LOGGERS = ("controller", "nodes", "props", "protocol", "config")


@dataclass(slots=True)
class Result:
    scenario: Scenario
    violations: list[str]
    done: list[str] = field(default_factory=list)
    steps: int = 0
    virtual_s: float = 0.0
    wall_s: float = 0.0
    packets: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations

    def first(self) -> str:
        """The first finding's invariant (what a shrunk scenario must still break)."""
        return self.violations[0].split(":")[0].split()[-1] if self.violations else ""


class _Logged(logging.Handler):
    """Every traceback the product logs (an exception it caught and went on after)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.found.append(f"{record.name}: {record.getMessage()}: "
                              + "".join(traceback.format_exception(*record.exc_info)[-3:]).strip())


@contextlib.contextmanager
def _quiet() -> Iterator[_Logged]:
    handler = _Logged()
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(logging.ERROR)
        logger.propagate = False
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _scratch() -> str | None:
    """Memory-backed scratch space when the machine has one: the files are as real, and an
    fsync costs nothing (a simulated crash does not lose the page cache anyway)."""
    shm = Path("/dev/shm")  # noqa: S108  (a fresh private directory is made inside)
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@functools.cache
def shipped_game() -> Game:
    from config.loader import SHIPPED_GAME, load_game

    return load_game(SHIPPED_GAME)


def run(scenario: Scenario, game: Game | None = None, *, packets: bool = False,
        stop_at_first: bool = True) -> Result:
    """Run *scenario* (on the shipped game unless told); *packets*: keep the packet trace."""
    game = game or shipped_game()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="escape-sim-", dir=_scratch()) as tmp, _quiet() as logged, \
            Apartment.open(scenario.seed, game, Path(tmp), trace=packets,
                           legacy_nodes=[list(game.nodes)[n % len(game.nodes)].id
                                         for n in scenario.world.legacy_nodes],
                           persistence=scenario.world.persistence) as flat:
        observer = Observer(flat)
        flat.controller.observer = observer
        for node in flat.nodes.values():
            node.observer = observer
        actors, faults = Actors(flat, observer), Faults(flat, observer)
        result = Result(scenario, observer.violations)
        scheduler = flat.scheduler

        def advance(until: float) -> None:
            while True:
                due = scheduler.next_time()
                if due is None or due > until:
                    break
                scheduler.step()
                observer.step()
                if logged.found:
                    observer.fail("nothing_crashes", logged.found.pop(0))
                if stop_at_first and observer.violations:
                    return
            scheduler.run_until(until)

        try:
            for step in scenario.steps:
                advance(step.at)
                if stop_at_first and observer.violations:
                    break
                words = faults.do(step.what, step.args) if step.who == "fault" else actors.do(step)
                result.done.append(f"{step.at:9.3f}  {step.who:6} {step.what:16} {words}")
                observer.step()
                observer.checkpoint()
            if not (stop_at_first and observer.violations):
                faults.heal_all()
                result.done.append(f"{scheduler.now:9.3f}  every fault ended; settling {SETTLE_S:g} s")
                advance(scheduler.now + SETTLE_S)
                observer.checkpoint()
        except Exception as exc:   # the product raised: a finding, with where
            frames = traceback.format_exception(exc)
            observer.fail("nothing_crashes", "".join(frames[-4:]).strip())
        result.steps = scheduler.steps
        result.virtual_s = scheduler.now
        if packets:
            result.packets = scheduler.trace_text()
    result.wall_s = time.perf_counter() - started
    return result
