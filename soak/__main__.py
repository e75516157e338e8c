"""``python -m soak``: a year of sessions over real processes, with faults; a report.

    .venv/bin/python -m soak                 # 24 sessions, faults all along (~35 min)
    .venv/bin/python -m soak --quick         # 3 sessions, one fault of each kind (2–4 min; CI)
    .venv/bin/python -m soak --seed 7 --sessions 6

Needs Mosquitto and libfaketime; the full disk needs root (a tmpfs). Results go to
``soak/results/<name>-<timestamp>.json`` and ``.md``, and ``latest.json``/``latest.md``
(ignored by git). Exit code 1 when an invariant failed. See docs/reliability.md,
"A year of sessions".
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from soak import report as reporting
from soak.faults import KINDS
from soak.run import Options, Soak


def parse(argv: list[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=None, help="sessions to play (default 24; quick 3)")
    parser.add_argument("--quick", action="store_true", help="3 sessions, one fault of each kind (CI)")
    parser.add_argument("--seed", type=int, default=1, help="draws the groups and the faults")
    parser.add_argument("--duration-min", type=int, default=5,
                        help="the game's duration_min (the schema's minimum is 5)")
    parser.add_argument("--faults", default=",".join(KINDS),
                        help=f"comma-separated fault kinds, or 'none' (default: {','.join(KINDS)})")
    parser.add_argument("--max-faults", type=int, default=None, help="stop injecting after this many")
    parser.add_argument("--disk-full-s", type=float, default=None, help="how long the disk stays full")
    parser.add_argument("--no-calendar", action="store_true",
                        help="leave the clocks at today's date (default: each session on its date)")
    parser.add_argument("--no-sleep-fix", action="store_true",
                        help="run without the libfaketime clock_nanosleep work-around (see soak/sleepfix)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep everything there")
    parser.add_argument("--name", default=None, help="results file prefix (default: quick or year)")
    parser.add_argument("--results-dir", type=Path, default=reporting.RESULTS_DIR)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    options = Options.quick_run(args.seed) if args.quick else Options(seed=args.seed)
    if args.sessions is not None:
        options.sessions = args.sessions
    options.duration_min = args.duration_min
    kinds = tuple(k for k in args.faults.split(",") if k and k != "none")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown fault kind(s) {unknown}; known: {', '.join(KINDS)}")
    options.faults = bool(kinds)
    options.fault_kinds = kinds
    if options.fault_plan is not None:
        options.fault_plan = [k for k in options.fault_plan if k in kinds]
    if args.max_faults is not None:
        options.fault_limit = args.max_faults
        if options.fault_plan is not None:
            options.fault_plan = options.fault_plan[:args.max_faults]
    if args.disk_full_s is not None:
        options.disk_full_s = args.disk_full_s
    options.calendar = not args.no_calendar
    options.sleep_fix = not args.no_sleep_fix
    options.verbose = not args.quiet
    if args.workdir is not None:
        options.workdir = args.workdir
        options.keep = True
        args.workdir.mkdir(parents=True, exist_ok=True)
    return options, args


def main(argv: list[str] | None = None) -> int:
    options, args = parse(argv)
    # NOTE: SIGTERM unwinds like Ctrl+C, so the processes are stopped and the tmpfs unmounted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    data = Soak(options).run()
    report = reporting.envelope(data, name=args.name or ("quick" if options.quick else "year"))
    json_path, md_path = reporting.write(report, args.results_dir)
    print(reporting.summary(report))
    print(f"\nreport: {md_path}\n        {json_path}")
    return 1 if reporting.failed_total(report) else 0


if __name__ == "__main__":
    sys.exit(main())
