"""CPU cost of one Keypad: idle (nobody touches it) and during a burst of key presses.

Runs on gpiozero's MockFactory with the simulated matrix of :mod:`props.sim`, so the
burst figure includes the simulation's own work (a real Pi does less: no Python pins).
Idle must be ~0: the scanner sleeps on a gpiozero edge, it does not poll.

    .venv/bin/python bench/keypad_idle.py --seconds 10 --presses 100

Prints a table and writes bench/results/keypad_idle.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpiozero.pins.mock import MockFactory

from props.factory import build_prop
from props.models import KeypadConfig
from props.sim import KeypadSimulator, prepare

RESULTS = Path(__file__).resolve().parent / "results" / "keypad_idle.json"


def measure(action, label: str) -> dict[str, float | str]:
    """Run *action*; return wall time, CPU time and context switches it cost."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu, wall = time.process_time(), time.perf_counter()
    extra = action()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    row: dict[str, float | str] = {
        "phase": label,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 4),
        "cpu_percent": round(100 * cpu / wall, 3) if wall else 0.0,
        "voluntary_switches": after.ru_nvcsw - usage.ru_nvcsw,
    }
    row.update(extra or {})
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="idle time measured")
    parser.add_argument("--presses", type=int, default=100, help="keys pressed in the burst")
    parser.add_argument("--debounce", type=float, default=0.02, help="keypad debounce (s)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    factory = MockFactory()
    config = KeypadConfig(id="bench", rows=[5, 6, 13, 19], cols=[12, 16, 20],
                          debounce=args.debounce, entry_timeout=3600)
    sim = prepare(config, factory)
    assert isinstance(sim, KeypadSimulator)
    keypad = build_prop(sim.config, pin_factory=factory)
    keys: list[str] = []
    keypad.when_event = lambda kind, value: keys.append(value) if kind == "key" else None
    try:
        sim.press("1")  # warm up: first scan, imports, thread start
        baseline = measure(lambda: threading.Event().wait(min(args.seconds, 2.0)),
                           "baseline (no keypad activity, 2 s max)")
        idle = measure(lambda: threading.Event().wait(args.seconds),
                       f"idle {args.seconds:g} s")
        typed = "1234567890*#" * (args.presses // 12 + 1)

        def burst() -> dict[str, float]:
            before = len(keys)
            for key in typed[:args.presses]:
                sim.press(key)
            return {"keys_read": len(keys) - before}

        burst_row = measure(burst, f"burst of {args.presses} presses")
    finally:
        keypad.close()
    presses = max(1, args.presses)
    burst_row["cpu_ms_per_key"] = round(1000 * float(burst_row["cpu_s"]) / presses, 3)
    burst_row["wall_ms_per_key"] = round(1000 * float(burst_row["wall_s"]) / presses, 2)
    rows = [baseline, idle, burst_row]

    print(f"{'phase':<40} {'wall s':>8} {'CPU s':>8} {'CPU %':>8} {'switches':>9}")
    for row in rows:
        print(f"{row['phase']:<40} {row['wall_s']:>8} {row['cpu_s']:>8} "
              f"{row['cpu_percent']:>8} {row['voluntary_switches']:>9}")
    print(f"burst: {burst_row['cpu_ms_per_key']} ms CPU and {burst_row['wall_ms_per_key']} ms "
          f"wall per key; {burst_row['keys_read']} of {args.presses} keys read")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "bench": "keypad_idle",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "debounce_s": args.debounce,
        "rows": rows,
    }, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.output}")
    return 0 if burst_row["keys_read"] == args.presses else 1


if __name__ == "__main__":
    raise SystemExit(main())
