"""``python -m bench``: run the benchmark suite, print a table, write the results as JSON.

    .venv/bin/python -m bench                  # everything, full length (~10 min)
    .venv/bin/python -m bench --quick          # everything, short (< 60 s on 2 cores; CI)
    .venv/bin/python -m bench --only e2e,push  # some benches
    .venv/bin/python -m bench --compare bench/results/A.json bench/results/B.json

Results go to ``bench/results/<name>-<timestamp>.json`` and ``bench/results/latest.json``
(both ignored by git). See docs/performance.md for what each bench measures, the
targets and the last measured values.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    cpu_times,
    foreign_cpu_percent,
    git_state,
    machine,
    machine_busy_percent,
    own_cpu_s,
    workdir_for,
)
from bench.results_model import Section

RESULTS_DIR = ROOT / "bench" / "results"
SCHEMA = 1


def _e2e(args: argparse.Namespace, workdir: Path) -> Section:
    from bench import e2e

    brokers = args.brokers.split(",") if args.brokers else None
    return e2e.run(quick=args.quick, workdir=workdir, trials=args.trials, brokers=brokers,
                   naive=not args.no_naive, transports=_transports(args))


def _throughput(args: argparse.Namespace, workdir: Path) -> Section:
    from bench import throughput

    # NOTE: pinned (controller on a CPU of its own, broker and the 10 simulated rooms on the
    # others): the publishers stand for ten Pis, which do not share the controller's CPU.
    return throughput.run(quick=args.quick, workdir=workdir, pin=True, transports=_transports(args))


def _transports(args: argparse.Namespace) -> list[str]:
    return [t for t in (args.transports or "").split(",") if t]


def _push(args: argparse.Namespace, workdir: Path) -> Section:
    from bench import push

    return push.run(quick=args.quick, workdir=workdir, trials=args.trials)


def _node_footprint(args: argparse.Namespace, workdir: Path) -> Section:
    from bench import node_footprint

    return node_footprint.run(quick=args.quick, workdir=workdir)


def _recovery(args: argparse.Namespace, workdir: Path) -> Section:
    from bench import recovery

    return recovery.run(quick=args.quick, workdir=workdir)


def _props(args: argparse.Namespace, workdir: Path) -> Section:
    from bench import props_cost

    return props_cost.run(quick=args.quick, workdir=workdir)


def _simulation(args: argparse.Namespace, workdir: Path) -> Section:
    from bench import simulation

    return simulation.run(quick=args.quick, workdir=workdir)


def _patch(args: argparse.Namespace, workdir: Path) -> Section:
    from bench import patch_diff

    return patch_diff.run(quick=args.quick, workdir=workdir)


#: in the order they run: the CPU-sensitive, single-process ones last, on a quiet machine
BENCHES: dict[str, Callable[[argparse.Namespace, Path], Section]] = {
    "e2e": _e2e, "throughput": _throughput, "push": _push, "node_footprint": _node_footprint,
    "recovery": _recovery, "props": _props, "simulation": _simulation,
    "patch": _patch,
}


# -- output -------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{'metric':<48} {'value':>12}  unit")
    for name, bench in report["benches"].items():
        load = bench.get("machine_load", {})
        print(f"-- {name} ({bench.get('duration_s', '?')} s; other programs used "
              f"{load.get('other_programs_cpu_percent')} % of a core meanwhile)")
        if "error" in bench:
            print(f"   ERROR: {bench['error']}")
            continue
        for metric, m in bench["metrics"].items():
            print(f"   {metric:<45} {_fmt(m['value']):>12}  {m['unit']}")
        for note in bench.get("notes", []):
            print(f"   note: {note}")
    targets = [t for b in report["benches"].values() for t in b.get("targets", [])]
    if targets:
        print("\ntargets")
        for t in targets:
            mark = {True: "met ", False: "MISS", None: "n/a "}[t["met"]]
            print(f"   [{mark}] {t['target']}: {_fmt(t['measured'])} {t['unit']} (limit {_fmt(t['limit'])})")


def flat_metrics(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: m for bench in report.get("benches", {}).values()
            for name, m in bench.get("metrics", {}).items()}


def compare(path_a: Path, path_b: Path) -> int:
    a, b = (json.loads(Path(p).read_text(encoding="utf-8")) for p in (path_a, path_b))
    ma, mb = flat_metrics(a), flat_metrics(b)
    print(f"A = {path_a} ({a.get('timestamp')}, {'quick' if a.get('quick') else 'full'})")
    print(f"B = {path_b} ({b.get('timestamp')}, {'quick' if b.get('quick') else 'full'})")
    print(f"\n{'metric':<48} {'A':>10} {'B':>10} {'B/A':>7}")
    for name in [n for n in ma if n in mb]:
        va, vb = ma[name]["value"], mb[name]["value"]
        if not isinstance(va, int | float) or not isinstance(vb, int | float) or not va:
            r, verdict = None, ""
        else:
            r = vb / va
            better = mb[name].get("better", "lower")
            improved = r < 1 if better == "lower" else r > 1
            verdict = "" if better == "info" or abs(r - 1) < 0.05 else ("better" if improved else "WORSE")
        print(f"{name:<48} {_fmt(va):>10} {_fmt(vb):>10} {_fmt(r):>7}  {verdict}")
    only = sorted(set(ma) ^ set(mb))
    if only:
        print(f"\nin one file only: {', '.join(only)}")
    return 0


# -- main ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (< 60 s in all)")
    parser.add_argument("--only", help=f"comma-separated, among: {', '.join(BENCHES)}")
    parser.add_argument("--name", help="results file prefix (default: quick or full)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--trials", type=int, help="override the trial count (e2e, push)")
    parser.add_argument("--brokers", help="e2e brokers, comma-separated (mosquitto, amqtt)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive stack in e2e")
    parser.add_argument("--transports", help="the controller's MQTT bridges side by side in e2e "
                                             "(trials interleaved) and throughput (runs in turn), "
                                             "e.g. paho,aiomqtt")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="print B/A for every metric of two result files, and exit")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    names = list(BENCHES) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown bench(es) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    # NOTE: SIGTERM unwinds like Ctrl+C, so every bench's finally kills its processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.monotonic()
    stamp = datetime.now(UTC)
    load = os.getloadavg()
    if load[0] > 0.5 * (os.cpu_count() or 1):
        print(f"warning: the machine is busy (load {load[0]:.2f} on {os.cpu_count()} CPUs): "
              "latencies will be noisy", flush=True)
    report: dict[str, Any] = {
        "suite": "escape-apartment-bench", "schema": SCHEMA, "name": args.name or (
            "quick" if args.quick else "full"),
        "timestamp": stamp.isoformat(timespec="seconds"), "quick": args.quick,
        "machine": machine(), "git": git_state(),
        "argv": sys.argv[1:] if argv is None else list(argv), "benches": {},
    }
    failed = False
    for name in names:
        print(f"running {name} …", flush=True)
        t0, cpu0, own0, load0 = time.monotonic(), cpu_times(), own_cpu_s(), os.getloadavg()[0]
        try:
            with workdir_for(f"bench-{name}-") as workdir:
                entry: dict[str, Any] = BENCHES[name](args, workdir).as_dict()
        except Exception as exc:
            failed = True
            traceback.print_exc()
            entry = {"error": f"{type(exc).__name__}: {exc}"[:2000], "metrics": {}, "targets": [],
                     "details": {}, "notes": []}
        wall, cpu1 = time.monotonic() - t0, cpu_times()
        entry["duration_s"] = round(wall, 1)
        # NOTE: what else ran on the machine matters: the benches share its cores.
        entry["machine_load"] = {
            "load_1m_before": round(load0, 2),
            "busy_percent_all_cpus": machine_busy_percent(cpu0, cpu1),
            "other_programs_cpu_percent": foreign_cpu_percent(cpu0, cpu1, own_cpu_s() - own0, wall)}
        report["benches"][name] = entry
    report["duration_s"] = round(time.monotonic() - started, 1)

    print_table(report)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{report['name']}-{stamp.strftime('%Y%m%d-%H%M%S')}.json"
    text = json.dumps(report, indent=2, default=str) + "\n"
    path.write_text(text, encoding="utf-8")
    (args.results_dir / "latest.json").write_text(text, encoding="utf-8")
    print(f"\n{report['duration_s']} s; written {path} and latest.json")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
