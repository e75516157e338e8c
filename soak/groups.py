"""The year's groups: who comes, when, and how they play — drawn from the seed.

Two sessions a month for a year, the parcours alternating. A group is 2–6 people,
sometimes with children; it wins, runs out of time or is stopped by the game master, and
on the way it may type wrong codes, need clues, open the doors it unlocked, be paused,
be given more time, or live through an emergency.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from soak.game import PARCOURS, GameFacts

OUTCOMES = ("win", "time_up", "abort")
THEMES = ("budget", "rights", "upkeep", "diy", "waste")
COMMENTS = ("On a adoré la cuisine !", "Un peu difficile au début, puis très bien.",
            "Les enfants ont trouvé les poubelles.", "Merci, on a appris plein de choses sur le bail.",
            "Trop court !", "Le coffre du séjour nous a bloqués longtemps.", "")


@dataclass
class Plan:
    n: int                      # 1-based
    date: dt.datetime           # local date and time of the session
    parcours: str
    players: int
    children: bool
    outcome: str
    play: list[str]             # puzzles the group solves, in order
    clues: dict[str, list[dict[str, Any]]]   # per puzzle, the clue orders sent before it
    wrong_code: set[str]        # keypad puzzles where a wrong code comes first
    open_doors: bool            # they open every door they unlock
    pause_s: float              # a pause of that long after the first puzzle (0: none)
    add_time_s: int             # the game master adds that much (0: none)
    leave_s: float              # time_up: seconds left once the game master trims the timer
    emergency: bool             # the game master presses the emergency mid-game
    emergency_hold_s: float     # … and ends the alert that long after every lock is open
    forget_reset: bool          # the game master asks for the briefing before the room is ready
    rating: int
    learned: list[str]
    comment: str
    extra: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {"n": self.n, "date": self.date.strftime("%Y-%m-%d %H:%M"), "parcours": self.parcours,
                "players": self.players, "children": self.children, "outcome": self.outcome,
                "puzzles_planned": len(self.play), "clues_planned": sum(len(v) for v in self.clues.values()),
                "wrong_codes": sorted(self.wrong_code), "open_doors": self.open_doors,
                "pause_s": self.pause_s, "add_time_s": self.add_time_s, "emergency": self.emergency,
                "forget_reset": self.forget_reset}


def play_order(facts: GameFacts, parcours: str) -> list[str]:
    """Every puzzle of the parcours, each after what it requires (file order otherwise)."""
    order: list[str] = []
    todo = [p for p in facts.puzzles.values() if parcours in p.parcours]
    while todo:
        ready = next(p for p in todo if all(r in order for r in p.requires))
        order.append(ready.id)
        todo.remove(ready)
    return order


def outcomes(n: int, rng: random.Random) -> list[str]:
    """About 60 % won, 25 % time up, 15 % stopped; every kind once from 3 sessions on."""
    if n == 1:
        return ["win"]
    counts = {"time_up": max(1, round(n * 0.25)), "abort": max(1, round(n * 0.15))}
    out = ["time_up"] * counts["time_up"] + ["abort"] * counts["abort"]
    out += ["win"] * (n - len(out))
    rng.shuffle(out)
    return out[:n]


def year(facts: GameFacts, n: int, rng: random.Random, *, start: dt.date, quick: bool) -> list[Plan]:
    plans = []
    kinds = outcomes(n, rng)
    keypads = {pid for pid, p in facts.puzzles.items()
               if any(g[2] == "type" for g in next(iter(p.gestures.values())))}
    for i in range(n):
        month, half = divmod(i, 2)
        day = start.replace(day=1)
        for _ in range(month):
            day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        when = dt.datetime.combine(day.replace(day=3 + 14 * half + rng.randint(0, 9)),
                                   dt.time(rng.choice((10, 14, 16)), rng.choice((0, 15, 30))))
        parcours = PARCOURS[i % 2]
        order = play_order(facts, parcours)
        outcome = kinds[i]
        if outcome == "win":
            play = order
        elif outcome == "time_up":
            play = order[:rng.randint(2, 6)]
        else:
            play = order[:rng.randint(1, 5)]
        clues: dict[str, list[dict[str, Any]]] = {}
        for puzzle in play[1:]:
            if rng.random() < 0.25:
                costs = facts.puzzles[puzzle].clue_costs
                index = rng.randrange(len(costs)) if costs else None
                order_ = ({"puzzle": puzzle, "index": index} if index is not None
                          else {"puzzle": puzzle, "text": "Regardez bien autour de vous."})
                if rng.random() < 0.3:
                    order_["cost"] = rng.choice((5, 20))   # the game master charges this one
                clues[puzzle] = [order_]
        learned = sorted(rng.sample(THEMES, rng.randint(0, 3)), key=THEMES.index)
        plans.append(Plan(
            n=i + 1, date=when, parcours=parcours, players=rng.randint(2, 6),
            children=rng.random() < 0.3, outcome=outcome, play=play, clues=clues,
            wrong_code={p for p in play if p in keypads and rng.random() < 0.3},
            open_doors=rng.random() < 0.4,
            pause_s=rng.choice((0, 0, 0, 3.0)) if not quick else 0,
            add_time_s=rng.choice((0, 0, 0, 30, 60)),
            leave_s=(25.0 if quick else rng.uniform(45, 75)),
            emergency=(rng.random() < 0.15) if not quick else (outcome == "abort"),
            emergency_hold_s=rng.uniform(5, 25) if not quick else 1.0,
            forget_reset=i > 0 and rng.random() < 0.4,
            rating=rng.randint(1, 5), learned=learned, comment=rng.choice(COMMENTS)))
    return plans
