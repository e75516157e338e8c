"""A scenario: what the players, the game master and the faults do, and when.

A scenario is a list of :class:`Step` drawn from the seed by :func:`plan`; each step is an
*intent* the actors resolve against the apartment when its time comes ("type the next
code of the 2nd puzzle open", "move the session on", "partition the 4th node for 3 s").
So a step stays meaningful when the shrinker removes the steps around it, and a scenario
is plain data: written to a file, read back, replayed (``python -m simulation --replay``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the intents, by actor, with their weight in a drawn scenario
PLAYER = {"solve": 30, "wrong": 6, "partial": 3, "fiddle": 6, "emergency": 1}
GM = {"next": 12, "override": 3, "tidy": 8, "pause": 2, "resume": 2, "add_time": 2, "clue": 3,
      "force": 3, "reset_puzzle": 1, "unlock": 2, "lock": 2, "emergency": 2, "end_emergency": 2,
      "abort": 2, "reset": 1}
FAULT = {"partition": 4, "cut": 3, "crash_node": 4, "crash_controller": 3, "broker": 2,
         "clock": 3, "disk": 2, "stall": 2, "late": 2, "lossy": 1}
#: how often each actor acts (per step drawn)
ACTORS = {"player": 45, "gm": 33, "fault": 22}


@dataclass(frozen=True, slots=True)
class Step:
    """At virtual time *at*, *who* (player, gm, fault) does *what* with *args* (small ints
    the actors map onto the apartment: the k-th puzzle open, the k-th node…)."""

    at: float
    who: str
    what: str
    args: tuple[int, ...] = ()

    def to_json(self) -> list[Any]:
        return [round(self.at, 6), self.who, self.what, list(self.args)]

    @classmethod
    def from_json(cls, data: list[Any]) -> Step:
        at, who, what, args = data
        return cls(float(at), str(who), str(what), tuple(int(a) for a in args))


@dataclass(frozen=True, slots=True)
class World:
    """What a seed chooses once for the whole run: the broker's persistence, the nodes
    that connect with a legacy client id (one naming their boot)."""

    persistence: bool = True
    legacy_nodes: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"persistence": self.persistence, "legacy_nodes": list(self.legacy_nodes)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> World:
        return cls(bool(data["persistence"]), tuple(int(n) for n in data["legacy_nodes"]))


@dataclass(frozen=True, slots=True)
class Scenario:
    seed: int
    world: World
    steps: tuple[Step, ...]

    def with_steps(self, steps: list[Step] | tuple[Step, ...]) -> Scenario:
        return Scenario(self.seed, self.world, tuple(steps))

    @property
    def duration(self) -> float:
        return self.steps[-1].at if self.steps else 0.0

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"seed": self.seed, "world": self.world.to_json(),
                                    "steps": [s.to_json() for s in self.steps]}, indent=1) + "\n",
                        encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Scenario:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(int(data["seed"]), World.from_json(data["world"]),
                   tuple(Step.from_json(s) for s in data["steps"]))


def _draw(rnd: random.Random, weights: dict[str, int]) -> str:
    return rnd.choices(list(weights), weights=list(weights.values()))[0]


def _args(rnd: random.Random, who: str, what: str) -> tuple[int, ...]:  # noqa: PLR0911
    """The step's numbers: indices (taken modulo what exists when it runs), durations in
    tenths of a second, a sign."""
    pick = rnd.randrange(1000)
    if who == "fault":
        if what in ("partition", "stall", "late", "lossy", "disk"):
            return pick, rnd.choice((5, 10, 30, 60, 120, 400))     # tenths of a second
        if what == "crash_node":
            return pick, rnd.choice((1, 5, 20, 80)), rnd.randrange(3)   # down for; kind
        if what == "crash_controller":
            return rnd.choice((1, 10, 40)), rnd.randrange(3)
        if what == "broker":
            return rnd.choice((2, 10, 60)), rnd.randrange(2)
        if what == "clock":
            return pick, rnd.choice((-1, 1))
        return (pick,)
    if what == "add_time":
        return (rnd.choice((-120, 60, 300)),)
    if what == "next":
        return (rnd.randrange(2),)     # the parcours of a new session
    return pick, rnd.randrange(3)


def plan(seed: int, steps: int = 30) -> Scenario:
    """The scenario of *seed*: *steps* steps, 0.05–1.5 s apart, the session moved on first."""
    rnd = random.Random(f"plan-{seed}")
    world = World(persistence=rnd.random() < 0.7,
                  legacy_nodes=tuple(n for n in range(7) if rnd.random() < 0.15))
    at = 0.5
    out: list[Step] = []
    opening = [("gm", "next"), ("gm", "tidy"), ("gm", "next"), ("gm", "next")]
    for i in range(steps):
        if i < len(opening) and rnd.random() < 0.8:
            who, what = opening[i]
        else:
            who = _draw(rnd, ACTORS)
            what = _draw(rnd, {"player": PLAYER, "gm": GM, "fault": FAULT}[who])
        out.append(Step(round(at, 3), who, what, _args(rnd, who, what)))
        at += rnd.uniform(0.05, 1.5)
    return Scenario(seed, world, tuple(out))
