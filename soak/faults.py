"""Faults from outside, one at a time, in a thread of their own while the groups play.

Each fault is injected, lasts a while, is healed, and then timed until the controller's
view matches the nodes' truth again (:func:`soak.invariants.view_differences`): that is
its *recovery time*. After a crash of the controller or the broker, what was completed
or solved before it is checked again.

=============== ========================================== ====================================
kind            injected                                   healed
=============== ========================================== ====================================
node_kill       ``kill -9`` of one room's node              restarted (same data dir)
controller_kill ``kill -9`` of the controller               restarted on the same database
broker_kill     ``kill -9`` of Mosquitto (persistence on)   restarted on the same data
clock_step      one machine's wall clock ±1 h (libfaketime) stepped back
disk_full       the controller's tmpfs filled               the filler file deleted
=============== ========================================== ====================================
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from soak import invariants as inv
from soak.console import Poller
from soak.game import GameFacts
from soak.procs import Stack
from soak.wire import Wire

KINDS = ("node_kill", "controller_kill", "broker_kill", "clock_step", "disk_full")
#: relative frequencies over a long run
WEIGHTS = {"node_kill": 5, "controller_kill": 3, "broker_kill": 3, "clock_step": 4, "disk_full": 2}


@dataclass
class FaultRecord:
    n: int
    kind: str
    target: str
    session: int | None
    phase: str | None
    injected_at: float
    down_s: float
    healed_at: float | None = None
    recovered_at: float | None = None
    recovery_s: float | None = None
    converged: bool | None = None
    detail: str = ""
    error: str | None = None
    #: checks to run once the view has converged (what a crash must not have lost)
    after: Callable[[], None] | None = None

    def public(self, t0: float) -> dict[str, Any]:
        out = asdict(self)
        out.pop("after", None)
        for key in ("injected_at", "healed_at", "recovered_at"):
            if out[key] is not None:
                out[key] = round(out[key] - t0, 2)
        if out["recovery_s"] is not None:
            out["recovery_s"] = round(out["recovery_s"], 3)
        return out


class World(Protocol):
    """What the faults need of the soak (:class:`soak.run.Soak`)."""

    stack: Stack
    facts: GameFacts
    wire: Wire
    poller: Poller
    ledger: inv.Ledger
    playing: threading.Event
    emergencies: inv.Emergencies

    def log(self, text: str) -> None: ...
    def alive(self, name: str) -> bool: ...
    def until(self, predicate: Callable[[], object], timeout: float, step: float = 0.1) -> bool: ...
    def time_touched(self) -> None: ...
    def before_crash(self) -> dict[str, Any]: ...
    def after_crash(self, before: dict[str, Any], *, what: str) -> None: ...


class Faults:
    """Draws faults from *rng* and injects them into *soak*'s stack until stopped.

    *plan*: the kinds in the order to inject them (the quick run); None: drawn by weight.
    *gap_s*: seconds of calm between the recovery of one fault and the next, drawn in it.
    """

    def __init__(self, soak: World, rng: random.Random, *, gap_s: tuple[float, float],
                 disk_full_s: float, plan: list[str] | None = None,
                 kinds: tuple[str, ...] = KINDS, limit: int | None = None,
                 first_after_s: float = 5.0) -> None:
        self.soak = soak
        self.rng = rng
        self.gap_s = gap_s
        self.disk_full_s = disk_full_s
        self.plan = list(plan) if plan is not None else None
        self.kinds = tuple(k for k in kinds if k != "disk_full" or soak.stack.tmpfs is not None)
        self.limit = limit
        self.first_after_s = first_after_s
        self.records: list[FaultRecord] = []
        self.active: FaultRecord | None = None
        self.paused = threading.Event()   # set: no new fault starts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-faults", daemon=True)
        self.errors: list[str] = []

    # -- life ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.disk_full_s + 120)

    @property
    def done(self) -> bool:
        if self.plan is not None:
            return not self.plan
        return self.limit is not None and len(self.records) >= self.limit

    def _run(self) -> None:
        if self._stop.wait(self.first_after_s):
            return
        while not self._stop.is_set() and not self.done:
            if self.paused.is_set():
                self._stop.wait(0.2)
                continue
            kind = self._next()
            if kind is None:
                self._stop.wait(0.2)
                continue
            try:
                self.inject(kind)
            except Exception:
                self.errors.append(traceback.format_exc())
            self.active = None
            if self._stop.wait(self.rng.uniform(*self.gap_s)):
                return

    def _next(self) -> str | None:
        """The next kind to inject (None: not now): the plan's next, or one drawn.

        Where it hurts: a broker that dies soon after an emergency's end comes back on a
        save made while it lasted. A planned broker kill waits for an emergency's end when
        the year still holds one; a drawn one is likelier then.
        """
        ended = self.soak.emergencies.ended_at
        after_emergency = ended is not None and time.monotonic() - ended < 50
        if self.plan is None:
            if after_emergency and "broker_kill" in self.kinds and self.rng.random() < 0.7:
                return "broker_kill"
            kinds = list(self.kinds)
            return self.rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]
        if after_emergency and "broker_kill" in self.plan:
            self.plan.remove("broker_kill")
            return "broker_kill"
        ready = [k for k in self.plan if k != "broker_kill" or not self.soak.emergencies.to_come]
        if not ready:
            return None
        self.plan.remove(ready[0])
        return ready[0]

    # -- one fault ----------------------------------------------------------------------
    def inject(self, kind: str) -> FaultRecord:
        soak = self.soak
        snap = soak.poller.latest
        game = snap.state.get("game", {}) if snap else {}
        injector: Callable[[FaultRecord], None] = getattr(self, f"_{kind}")
        record = FaultRecord(n=len(self.records) + 1, kind=kind, target="", session=soak.ledger.session,
                             phase=game.get("phase"), injected_at=0.0, down_s=0.0)
        self.records.append(record)
        self.active = record
        injector(record)
        soak.log(f"fault #{record.n} {kind} {record.target} healed; waiting for the view to converge")
        self.await_recovery(record)
        if record.after is not None:
            record.after()
        soak.log(f"fault #{record.n} {kind} {record.target}: recovered in "
                 f"{record.recovery_s if record.recovery_s is not None else '—'} s")
        return record

    def await_recovery(self, record: FaultRecord) -> None:
        soak = self.soak
        healed = record.healed_at or time.monotonic()
        deadline = healed + inv.CONVERGE_BOUND_S
        diffs: list[str] = ["no fresh /api/state"]
        while time.monotonic() < healed + 3 * inv.CONVERGE_BOUND_S:
            asked = time.monotonic()
            snap = soak.poller.poll_once(health=False)
            if snap is not None and snap.sent >= healed:
                diffs = inv.view_differences(soak.facts, soak.wire, snap.state, soak.alive)
                if not diffs:
                    record.recovered_at = asked
                    record.recovery_s = asked - healed
                    break
            time.sleep(0.1)
        record.converged = record.recovered_at is not None and record.recovered_at <= deadline
        soak.ledger.check("view_converges_after_fault", bool(record.converged), lambda: (
            f"fault #{record.n} {record.kind} {record.target}: not converged "
            f"{inv.CONVERGE_BOUND_S} s after it healed: {'; '.join(diffs[:8])}"))

    def _down(self, record: FaultRecord, low: float, high: float) -> None:
        record.down_s = round(self.rng.uniform(low, high), 2)
        time.sleep(record.down_s)

    # -- the kinds ---------------------------------------------------------------------
    def _node_kill(self, record: FaultRecord) -> None:
        node = self.rng.choice(self.soak.facts.nodes)
        record.target = node
        proc = self.soak.stack.procs[node]
        record.injected_at = time.monotonic()
        proc.kill()
        self._down(record, 0.5, 6.0)
        proc.start()
        record.healed_at = time.monotonic()

    def _crash_and_check(self, record: FaultRecord, name: str, restart: Callable[[], None]) -> None:
        soak = self.soak
        before = soak.before_crash()
        record.target = name
        soak.time_touched()
        record.injected_at = time.monotonic()
        soak.stack.procs[name].kill()
        self._down(record, 0.5, 5.0)
        restart()
        record.healed_at = time.monotonic()
        record.after = lambda: soak.after_crash(before, what=f"{name} kill -9 (fault #{record.n})")

    def _controller_kill(self, record: FaultRecord) -> None:
        self._crash_and_check(record, "controller", self.soak.stack.procs["controller"].start)

    def _broker_kill(self, record: FaultRecord) -> None:
        # after an emergency, once a group plays again (its locks locked again): what an
        # ended alert handed back by the broker's old save would release
        ended = self.soak.emergencies.ended_at
        if ended is not None and time.monotonic() - ended < 50:
            self.soak.until(self.soak.playing.is_set, timeout=max(0.0, ended + 50 - time.monotonic()))
        self._crash_and_check(record, "broker", self.soak.stack.start_broker)

    def _clock_step(self, record: FaultRecord) -> None:
        soak = self.soak
        machine = self.rng.choice(["broker", "controller", *soak.facts.nodes])
        step = self.rng.choice((3600, -3600))
        record.target = f"{machine} {step // 3600:+d} h"
        clock = soak.stack.clocks[machine]
        record.injected_at = time.monotonic()
        clock.set(fault=step)
        self._down(record, 8.0, 25.0)
        clock.set(fault=0)
        record.healed_at = time.monotonic()

    def _disk_full(self, record: FaultRecord) -> None:
        soak = self.soak
        tmpfs = soak.stack.tmpfs
        assert tmpfs is not None
        record.target = "controller tmpfs"
        # a full disk only shows while something is written: wait for a game being played
        soak.until(soak.playing.is_set, timeout=120, step=0.2)
        record.injected_at = time.monotonic()
        written = tmpfs.fill()
        record.down_s = self.disk_full_s
        degraded_at = None
        end = time.monotonic() + self.disk_full_s
        while time.monotonic() < end:
            health = soak.poller.health
            if degraded_at is None and health and health[0] > record.injected_at and health[1] == 503:
                degraded_at = health[0]
            time.sleep(0.2)
        tmpfs.free()
        record.healed_at = time.monotonic()
        record.detail = (f"filled with {written // 1024} KiB; /api/health "
                         + (f"503 after {degraded_at - record.injected_at:.1f} s" if degraded_at
                            else "stayed 200 (nothing written meanwhile, or not seen)"))

    def summary(self) -> dict[str, Any]:
        by_kind: dict[str, list[float]] = {}
        for r in self.records:
            by_kind.setdefault(r.kind, [])
            if r.recovery_s is not None:
                by_kind[r.kind].append(r.recovery_s)
        out = {}
        for kind in KINDS:
            records = [r for r in self.records if r.kind == kind]
            times = sorted(by_kind.get(kind, []))
            out[kind] = {"injected": len(records),
                         "recovered": len(times),
                         "recovery_s": _stats(times)}
        return out


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    values = sorted(values)
    mid = len(values) // 2
    median = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
    return {"min": round(values[0], 2), "median": round(median, 2), "max": round(values[-1], 2)}
