"""Dashboard push: an event published at the broker → the snapshot it causes, on 20 WebSockets.

The controller (``bench._controller``: the production app under uvicorn) runs the
shipped game (``config/apartment.yaml``), with a game started (the 1 s timer pushes and
the session store run as they do during a real game). ``bench._wsclients`` opens 20
WebSocket clients on ``/ws`` (what the game master's console, the technician page and the
room screens hold open) and publishes events from a node of the game; for each event it
times the publish and each client's arrival of the snapshot that carries it.

    .venv/bin/python -m bench.push [--quick] [--trials 200] [--clients 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    HOST,
    BenchError,
    Http,
    Proc,
    broker,
    controller_proc,
    mosquitto_available,
    python_argv,
    start_all,
    summarize_ns,
    wait_until,
    workdir_for,
)
from bench.results_model import Section


def measure(*, workdir: Path, kind: str, clients: int, trials: int, deflate: bool,
            section: Section, experiments: Sequence[str] = ()) -> dict[str, Any]:
    """One controller, *clients* WebSockets, *trials* events; per-message deflate or not."""
    from config.loader import SHIPPED_GAME, load_game

    game = load_game(SHIPPED_GAME)
    node = game.nodes[0]
    prop = node.props[0]
    label = ("deflate" if deflate else "no-deflate") + "".join(f"-{e}" for e in experiments)
    details: dict[str, Any] = {"event_on": f"{node.id}.{prop.id}", "ws_per_message_deflate": deflate,
                               "experiments": list(experiments)}
    with broker(kind, workdir) as b, contextlib.ExitStack() as stack:
        ctl, port = controller_proc(f"push-controller-{label}", game=Path(SHIPPED_GAME), broker=b,
                                    workdir=workdir, extra=[f"--ws-deflate={'on' if deflate else 'off'}"]
                                    + [f"--experiment={e}" for e in experiments])
        start_all(stack, [ctl])
        http = Http(port)
        stack.callback(http.close)
        wait_until(lambda: http.get("/api/health") is not None, timeout=10, what="the controller")
        try:
            http.post("/api/game/start", {"parcours": "primo", "players": 4})
            details["game_running"] = True
        except BenchError as exc:
            details["game_running"] = False
            section.notes.append(f"game not started ({exc}); measured with the game idle")
        ws = Proc(f"push-wsclients-{label}", python_argv(
            "bench._wsclients", "--url", f"ws://{HOST}:{port}/ws", "--clients", str(clients),
            "--broker", b.address, "--apartment", game.apartment.id, "--node", node.id,
            "--prop", prop.id, "--trials", str(trials)), workdir=workdir)
        start_all(stack, [ws], timeout=30)
        result = ws.expect("result", timeout=trials * 4 + 30)
        snapshot: dict[str, Any] = http.get("/api/state")
        details["controller_push_timings"] = http.get("/bench/pushes")
    details["latency"] = summarize_ns(result["samples_ns"])
    details["missed"] = result["missed"]
    details["snapshot_bytes"] = len(json.dumps({"type": "snapshot", "data": snapshot}, default=str))
    return details


def run(*, quick: bool, workdir: Path, trials: int | None = None, clients: int = 20,
        broker_kind: str | None = None, variants: bool | None = None,
        experiments: Sequence[str] = ()) -> Section:
    trials = trials or (30 if quick else 300)
    variants = (not quick) if variants is None else variants
    kind = broker_kind or ("mosquitto" if mosquitto_available() else "amqtt")
    section = Section()
    section.details.update({"clients": clients, "trials": trials, "broker": kind,
                            "game": "config/apartment.yaml"})
    # As shipped: permessage-deflate off (controller.main.WS_PER_MESSAGE_DEFLATE); uvicorn's
    # default would negotiate it with every client that offers it (browsers always do; so
    # does the websockets client used here). The variant is the other one, for comparison.
    from controller.main import WS_PER_MESSAGE_DEFLATE

    shipped = measure(workdir=workdir, kind=kind, clients=clients, trials=trials,
                      deflate=WS_PER_MESSAGE_DEFLATE, section=section, experiments=experiments)
    section.details["shipped"] = shipped
    summary = shipped["latency"]
    result = {"missed": shipped["missed"]}
    if variants:
        other = measure(workdir=workdir, kind=kind, clients=clients, trials=trials,
                        deflate=not WS_PER_MESSAGE_DEFLATE, section=section, experiments=experiments)
        name = "deflate_on" if not WS_PER_MESSAGE_DEFLATE else "deflate_off"
        section.details[f"variant_{name}"] = other
        section.metric(f"push.{name}.p50_ms", other["latency"].get("p50_ms"), "ms")
        section.metric(f"push.{name}.p99_ms", other["latency"].get("p99_ms"), "ms")
    section.metric("push.p50_ms", summary.get("p50_ms"), "ms")
    section.metric("push.p99_ms", summary.get("p99_ms"), "ms")
    section.metric("push.max_ms", summary.get("max_ms"), "ms")
    section.metric("push.missed", result["missed"], "frames")
    section.target("push.p99_ms", target=f"dashboard push p99 ≤ 10 ms with {clients} clients",
                   measured=summary.get("p99_ms"), limit=10.0, unit="ms")
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--broker", choices=("mosquitto", "amqtt"))
    parser.add_argument("--no-variants", action="store_true",
                        help="only the shipped configuration (not the other deflate setting)")
    parser.add_argument("--experiment", action="append", default=[],
                        help="run the controller with a change patched in (bench._controller)")
    args = parser.parse_args(argv)
    with workdir_for("bench-push-") as tmp:
        section = run(quick=args.quick, workdir=tmp, trials=args.trials, clients=args.clients,
                      broker_kind=args.broker, variants=False if args.no_variants else None,
                      experiments=args.experiment)
    json.dump(section.as_dict(), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
