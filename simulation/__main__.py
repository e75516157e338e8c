"""``python -m simulation``: run seeds of the deterministic simulator (docs/simulation.md).

    python -m simulation --seeds 1000            # seeds 0…999, 30 steps each
    python -m simulation --seeds 200000 --seed 5000 --steps 60   # the long mode
    python -m simulation --seed 17 --only '2,5,9'               # replay a shrunk failure

Exit status 0 when every seed kept every invariant, 1 with the first failure's seed, its
shrunk trace and the command that replays it.
"""

from __future__ import annotations

import argparse
import sys

from simulation.explore import Found, Summary, explore, scenario_of, shrink
from simulation.runner import run


def _indices(text: str) -> list[int]:
    return [int(i) for i in text.split(",") if i.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulation", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=None,
                        help="how many seeds to run (default 1, or 100 without --seed)")
    parser.add_argument("--seed", type=int, default=None, help="the first seed (default 0)")
    parser.add_argument("--steps", type=int, default=30,
                        help="steps of players, game master and faults per seed")
    parser.add_argument("--only", type=_indices, default=None, metavar="I,J,…",
                        help="replay only these steps of the seed's plan (a shrunk failure)")
    parser.add_argument("--no-shrink", action="store_true", help="report a failure as it was found")
    parser.add_argument("--packets", action="store_true", help="with one seed: print every packet delivered")
    args = parser.parse_args(argv)
    first = args.seed if args.seed is not None else 0
    count = args.seeds if args.seeds is not None else (1 if args.seed is not None else 100)

    if count == 1 or args.only is not None:
        return _one(first, args.steps, args.only, packets=args.packets)

    def progress(summary: Summary) -> None:
        if summary.seeds % 100 == 0:
            print(f"{summary.seeds} seeds, {summary.steps} steps, {summary.per_second:.1f} seeds/s",
                  file=sys.stderr, flush=True)

    summary = explore(first, count, steps=args.steps, progress=progress)
    print(f"{summary.seeds} seeds ({first}…{first + summary.seeds - 1}), {summary.steps} scheduler steps, "
          f"{summary.virtual_s / 3600:.1f} virtual hours in {summary.wall_s:.1f} s "
          f"({summary.per_second:.1f} seeds/s)")
    if summary.found is None:
        print("every invariant held")
        return 0
    found = summary.found if args.no_shrink else shrink(summary.found)
    print(found.report())
    return 1


def _one(seed: int, steps: int, only: list[int] | None, *, packets: bool) -> int:
    result = run(scenario_of(seed, steps, only), packets=packets)
    print("\n".join(result.done))
    if packets:
        print(result.packets)
    print(f"seed {seed}: {result.steps} scheduler steps, {result.virtual_s:.1f} virtual s, "
          f"{result.wall_s:.2f} s")
    if result.ok:
        print("every invariant held")
        return 0
    print("\n".join(result.violations[:5]))
    if only is None:
        print(Found(seed, steps, result).report().split("\n\n", 1)[0])
    return 1


if __name__ == "__main__":
    sys.exit(main())
