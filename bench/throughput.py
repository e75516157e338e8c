"""Controller throughput: 10 rooms × 8 props publishing events into one controller.

Ten rooms, one paho client each (like a node), driven by ``bench._publisher`` (one
process and one thread for all ten by default, ``--publisher-processes`` for more),
publish valid ``PropEvent`` payloads on the contract's event topics, QoS 1, at fixed
total rates (100, 1,000 and 5,000 events/s) and then as fast as they can. The
controller is ``bench._controller`` (the production app under uvicorn) with a game of
10 rooms × 8 buttons and one puzzle per room, running (so every event goes through the
registry and the engine).

For each rate: events/s the controller handled (its ``on_handled`` hook, first to last
event), latency from the event's ``ts`` (set by the publisher just before publishing)
to the moment the service has handled it (p50/p99), events lost, and the CPU of the
controller process (and of the broker and the publishers, for context).

    .venv/bin/python -m bench.throughput [--quick] [--seconds 5] [--broker mosquitto]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    Http,
    Proc,
    broker,
    controller_proc,
    cpu_percent,
    mosquitto_available,
    pin_groups,
    proc_sample,
    python_argv,
    start_all,
    wait_until,
    workdir_for,
    write_game,
)
from bench.results_model import Section

ROOMS = 10
PROPS_PER_ROOM = 8
PINS = [4, 5, 6, 12, 13, 16, 19, 20]
RATES = [100, 1000, 5000, 0]   # 0: as fast as the publishers can
QUICK_RATES = [100, 1000, 5000]


def game_text() -> str:
    lines = ["apartment: {id: bench, name: Débit}", "nodes:"]
    for r in range(1, ROOMS + 1):
        lines += [f"  - id: room_{r:02d}", f"    label: Pièce {r}", "    props:"]
        lines += [f"      - {{id: p{p}, kind: button, pin: {PINS[p - 1]}}}"
                  for p in range(1, PROPS_PER_ROOM + 1)]
    lines.append("puzzles:")
    for r in range(1, ROOMS + 1):
        lines += [f"  - id: puzzle_{r:02d}", f"    label: Énigme {r}", "    theme: budget",
                  f"    room: room_{r:02d}",
                  f"    solve: {{when: event, prop: room_{r:02d}.p1, event: held, min_value: 1000000}}"]
    lines.append("    final: true")
    return "\n".join(lines) + "\n"


def drained(http: Http, sent: int, drain_s: float) -> dict[str, Any]:
    """Let the controller work through what is queued (bounded), then read its counters:
    stop when all *sent* is handled, or nothing moved for 0.3 s, or after *drain_s*."""
    last = -1
    deadline = time.monotonic() + drain_s
    while time.monotonic() < deadline:
        stats = http.get("/bench/events")
        if stats["events"] >= sent or stats["events"] == last:
            break
        last = stats["events"]
        time.sleep(0.3)
    return http.get("/bench/events")


def measure_rate(ctl: Proc, http: Http, publishers: list[Proc], others: list[int], *,
                 rate: int, seconds: float, drain_s: float) -> dict[str, Any]:
    http.post("/bench/reset")
    before = proc_sample(ctl.pid)
    others_before = [proc_sample(pid) for pid in others]
    start = time.monotonic()
    for pub in publishers:
        pub.send(cmd="run", rate=rate / len(publishers), seconds=seconds)
    done = [pub.expect("done", seconds + 30) for pub in publishers]
    sent = sum(d["sent"] for d in done)
    publish_wall = max(d["seconds"] for d in done)
    stats = drained(http, sent, drain_s)
    after = proc_sample(ctl.pid)
    others_after = [proc_sample(pid) for pid in others]
    handled = stats["events"]
    span_s = ((stats["last_ns"] or 0) - (stats["first_ns"] or 0)) / 1e9
    return {
        "rate_asked": rate or "max",
        "sent": sent,
        "offered_per_s": round(sent / publish_wall, 1) if publish_wall else None,
        "handled": handled,
        "unhandled": sent - handled,   # dropped (broker queue, seq gap) or still queued
        "handled_per_s": round(handled / span_s, 1) if span_s > 0 else None,
        "latency_ms": stats["latency_ms"],
        "controller_cpu_percent": cpu_percent(before, after),
        # CPU-seconds per event handled (µs): what to compare across loads and machines
        "controller_cpu_us_per_event": (round((after.cpu_s - before.cpu_s) / handled * 1e6, 1)
                                        if handled else None),
        "controller_rss_mb": round(after.rss_kb / 1024, 1),
        "others_cpu_percent": round(sum(cpu_percent(b, a) for b, a in
                                        zip(others_before, others_after, strict=True)), 1),
        "wall_s": round(time.monotonic() - start, 2),
        "metrics": stats["metrics"],
    }


def measure_backlog(ctl: Proc, http: Http, publishers: list[Proc], *, events: int,
                    max_stop_s: float = 4.0) -> dict[str, Any]:
    """The controller's intake with the load generator out of the way.

    The controller is stopped (SIGSTOP); the publishers publish *events* in all, flat out,
    which Mosquitto acknowledges and queues for it (``max_queued_messages`` 10,000 in the
    shipped config); then the controller is continued (SIGCONT) and works through the
    backlog alone: events handled per second from its first to its last, and its CPU.
    On 2 cores the offered-rate runs measure the 10 publishers as much as the controller;
    this does not. Kept under the controller's keepalive (5 s × 1.5), or the broker would
    drop its session and the queue with it."""
    http.post("/bench/reset")
    per = events // len(publishers)
    os.kill(ctl.pid, signal.SIGSTOP)
    t_stop = time.monotonic()
    try:
        for pub in publishers:
            pub.send(cmd="run", rate=0, seconds=max_stop_s, count=per)
        done = [pub.expect("done", max_stop_s + 10) for pub in publishers]
    finally:
        stopped_s = time.monotonic() - t_stop
        before = proc_sample(ctl.pid)
        os.kill(ctl.pid, signal.SIGCONT)
    sent = sum(d["sent"] for d in done)
    stats = drained(http, sent, 20)
    after = proc_sample(ctl.pid)
    handled = stats["events"]
    span_s = ((stats["last_ns"] or 0) - (stats["first_ns"] or 0)) / 1e9
    return {
        "rate_asked": "backlog", "sent": sent, "stopped_s": round(stopped_s, 2),
        "handled": handled, "unhandled": sent - handled,
        "handled_per_s": round(handled / span_s, 1) if span_s > 0 else None,
        "drain_s": round(span_s, 3),
        "controller_cpu_us_per_event": (round((after.cpu_s - before.cpu_s) / handled * 1e6, 1)
                                        if handled else None),
        "metrics": stats["metrics"],
    }


def pin_cpus(controller: int, others: Sequence[int]) -> dict[str, Any] | None:
    """Give the controller the last CPU to itself and the broker and publishers the others
    (every thread of each process): what the controller sustains on a core of its own,
    which a shared 2-core machine cannot otherwise show. Linux only; None if not possible."""
    return pin_groups({"broker_and_publishers": list(others), "controller": [controller]})


def one_run(kind: str, game: Path, workdir: Path, *, seconds: float, rates: Sequence[int],
            drain_s: float, experiments: Sequence[str] = (), broker_options: Sequence[str] = (),
            pin: bool = False, backlog: bool = True, publisher_processes: int = 1,
            transport: str = "") -> dict[str, Any]:
    """A broker, the controller (*transport*: its MQTT bridge, ``""`` the shipped one) and
    the publishers: each rate of *rates* for *seconds*, then the backlog run."""
    out: dict[str, Any] = {"pinned": None, "rates": [], "backlog": None}
    with broker(kind, workdir, options=broker_options) as b, contextlib.ExitStack() as stack:
        ctl, port = controller_proc(f"tp-controller{'-' + transport if transport else ''}",
                                    game=game, broker=b, workdir=workdir,
                                    extra=[*(f"--experiment={e}" for e in experiments),
                                           *([f"--transport={transport}"] if transport else [])])
        start_all(stack, [ctl])
        http = Http(port, timeout=30)
        stack.callback(http.close)
        props = ",".join(f"p{p}" for p in range(1, PROPS_PER_ROOM + 1))
        groups = [list(range(1, ROOMS + 1))[i::publisher_processes]
                  for i in range(publisher_processes)]
        publishers = [Proc(f"tp-publisher-{i}", python_argv(
            "bench._publisher", "--broker", b.address, "--apartment", "bench", "--props", props,
            *(arg for r in rooms for arg in ("--node", f"room_{r:02d}"))), workdir=workdir)
            for i, rooms in enumerate(groups)]
        start_all(stack, publishers)
        wait_until(lambda: all(n["online"] for n in http.get("/api/state")["nodes"]),
                   timeout=10, what="the controller to see every room online")
        http.post("/api/game/start", {"parcours": "primo", "players": 4})
        others = [p.pid for p in publishers] + ([b.pid] if b.pid else [])
        if pin:
            out["pinned"] = pin_cpus(ctl.pid, others)
        for rate in rates:
            out["rates"].append(measure_rate(ctl, http, publishers, others, rate=rate,
                                             seconds=seconds, drain_s=drain_s))
        if backlog:
            out["backlog"] = measure_backlog(ctl, http, publishers, events=9_000)
    return out


def run(*, quick: bool, workdir: Path, seconds: float | None = None,
        broker_kind: str | None = None, experiments: Sequence[str] = (),
        broker_options: Sequence[str] = (), rates: Sequence[int] = (),
        pin: bool = False, backlog: bool = True, publisher_processes: int = 1,
        transports: Sequence[str] = (), rounds: int = 2) -> Section:
    """*transports*: the controller's MQTT bridges to measure side by side, one whole run
    each in turn, *rounds* times (A, B, A, B …); the first's first run gives the usual
    metrics, each transport also ``throughput.<transport>.*`` (the median of its runs)."""
    seconds = seconds or (1.0 if quick else 10.0)
    kind = broker_kind or ("mosquitto" if mosquitto_available() else "amqtt")
    section = Section()
    section.details.update({"rooms": ROOMS, "props_per_room": PROPS_PER_ROOM, "seconds": seconds,
                            "broker": kind, "publisher_processes": publisher_processes, "qos": 1,
                            "experiments": list(experiments),
                            "broker_options": list(broker_options), "pinned": None,
                            "transports": list(transports)})
    game = write_game(workdir, "throughput", game_text())
    runs: dict[str, list[dict[str, Any]]] = {}
    for _round in range(rounds if transports else 1):
        for transport in transports or [""]:
            runs.setdefault(transport, []).append(one_run(
                kind, game, workdir, seconds=seconds, rates=rates or (QUICK_RATES if quick else RATES),
                drain_s=3 if quick else 30, experiments=experiments, broker_options=broker_options,
                pin=pin, backlog=backlog, publisher_processes=publisher_processes,
                transport=transport))
    first = next(iter(runs.values()))[0]
    rows, backlog_row = first["rates"], first["backlog"]
    section.details["pinned"] = first["pinned"]
    section.details["rates"] = rows
    if transports:
        section.details["runs"] = runs
        for transport, each in runs.items():
            for rate in {r["rate_asked"] for r in each[0]["rates"]}:
                got = [r for run_ in each for r in run_["rates"] if r["rate_asked"] == rate]
                name = f"throughput.{transport}.{rate}"
                section.metric(f"{name}.handled_per_s", _median([r["handled_per_s"] for r in got]),
                               "events/s", better="higher")
                section.metric(f"{name}.p99_ms", _median([r["latency_ms"]["p99"] for r in got]), "ms")
                section.metric(f"{name}.controller_cpu_us_per_event",
                               _median([r["controller_cpu_us_per_event"] for r in got]), "µs/event")
            if backlog:
                section.metric(f"throughput.{transport}.backlog.handled_per_s",
                               _median([r["backlog"]["handled_per_s"] for r in each]),
                               "events/s", better="higher")
    if backlog:
        section.details["backlog"] = backlog_row
        section.metric("throughput.backlog.handled_per_s", backlog_row["handled_per_s"],
                       "events/s", better="higher")
        section.metric("throughput.backlog.controller_cpu_us_per_event",
                       backlog_row["controller_cpu_us_per_event"], "µs/event")
        section.metric("throughput.backlog.unhandled", backlog_row["unhandled"], "events")
    for row in rows:
        name = f"throughput.{row['rate_asked']}"
        section.metric(f"{name}.handled_per_s", row["handled_per_s"], "events/s", better="higher")
        section.metric(f"{name}.p99_ms", row["latency_ms"]["p99"], "ms")
        section.metric(f"{name}.controller_cpu_percent", row["controller_cpu_percent"], "% core")
        section.metric(f"{name}.controller_cpu_us_per_event", row["controller_cpu_us_per_event"],
                       "µs/event")
        section.metric(f"{name}.unhandled", row["unhandled"], "events")
    at_1000 = next((r for r in rows if r["rate_asked"] == 1000), {"latency_ms": {"p99": None}})
    best = max([(r["handled_per_s"] or 0) for r in rows]
               + ([backlog_row["handled_per_s"] or 0] if backlog else []))
    section.metric("throughput.best_handled_per_s", best, "events/s", better="higher")
    section.target("throughput.max", target="≥ 5,000 events/s into the controller",
                   measured=best, limit=5000, at_most=False, unit="events/s")
    section.target("throughput.1000.p99_ms", target="p99 ≤ 10 ms at 1,000 events/s",
                   measured=at_1000["latency_ms"]["p99"], limit=10.0, unit="ms")
    for row in rows:
        if row["unhandled"]:
            section.notes.append(f"{row['rate_asked']} events/s: {row['unhandled']} of {row['sent']} "
                                 "events not handled (dropped by the broker or still queued)")
    return section


def _median(values: Sequence[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    return statistics.median(known) if known else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--broker", choices=("mosquitto", "amqtt"))
    parser.add_argument("--experiment", action="append", default=[],
                        help="run the controller with a proposed fix patched in (bench._controller)")
    parser.add_argument("--broker-option", action="append", default=[],
                        help='an extra Mosquitto config line, e.g. "max_inflight_messages 1000"')
    parser.add_argument("--rates", help="comma-separated events/s to offer (0: flat out); "
                                        "default 100,1000,5000,0 (quick: without 0)")
    parser.add_argument("--pin", action="store_true",
                        help="controller on a CPU of its own, broker and publishers on the others")
    parser.add_argument("--publisher-processes", type=int, default=1, choices=range(1, ROOMS + 1),
                        metavar=f"1..{ROOMS}",
                        help="processes sharing the rooms' clients (default 1: one select "
                             "loop for all, the cheapest load generator)")
    parser.add_argument("--transports", default="",
                        help="the controller's MQTT bridges side by side, one run each in turn, "
                             "e.g. paho,aiomqtt (bench._controller --transport)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="with --transports: how many runs of each, alternating")
    parser.add_argument("--no-backlog", action="store_true",
                        help="skip the backlog run (controller stopped, events queued, drained)")
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")] if args.rates else []
    with workdir_for("bench-tp-") as tmp:
        section = run(quick=args.quick, workdir=Path(tmp), seconds=args.seconds,
                      broker_kind=args.broker, experiments=args.experiment,
                      broker_options=args.broker_option, rates=rates, pin=args.pin,
                      backlog=not args.no_backlog,
                      publisher_processes=args.publisher_processes,
                      transports=[t for t in args.transports.split(",") if t], rounds=args.rounds)
    json.dump(section.as_dict(), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
