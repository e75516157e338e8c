"""Recovery: a broker restart, and a node that dies.

Mosquitto (``set_tcp_nodelay true``, persistence on, as in production), the controller
(``bench._controller``) and four node agents, each the shipped program
(``python -m controller.cli node --simulate``) with a maglock and a button; a game is
running, so every lock is desired ``lock``.

* **broker restart** — Mosquitto is stopped cleanly and started again on the same port.
  Every other restart, one lock is ordered open through the HTTP API *while the broker is
  down*, so the controller has something to reconcile. Measured from the moment the
  broker went down (and from the moment it answered again) until every node has
  published a fresh birth (a ``NodeStatus`` whose ``ts`` is after the restart, not the
  retained one replayed by the broker) and a fresh state of every lock that matches what
  the controller desires — as the controller saw them (its ``on_handled`` hook).
* **node killed** — SIGKILL of a node process: time until the controller handles the
  node's last will (the kernel closes the socket, the broker publishes the will at once).
* **node hung** (``--hung``, on by default in full mode) — SIGSTOP of a node process: the
  socket stays open, as with a Pi that froze or lost its cable. The controller judges it
  silent after 1.2 × its keepalive (5 s) without a heartbeat (``controller/registry.py``);
  the broker would publish its will only after 1.5 × keepalive plus up to 5 s.

    .venv/bin/python -m bench.recovery [--quick] [--restarts 5] [--hung]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BenchError,
    Broker,
    Http,
    Proc,
    controller_proc,
    mosquitto,
    mosquitto_available,
    python_argv,
    start_all,
    stop_all,
    summarize_ns,
    wait_until,
    workdir_for,
    write_game,
)
from bench.results_model import Section

NODES = 4
APARTMENT = "bench"


def game_text() -> str:
    lines = [f"apartment: {{id: {APARTMENT}, name: Reprise}}", "nodes:"]
    for n in range(1, NODES + 1):
        lines += [f"  - id: node_{n}", f"    label: Nœud {n}", "    props:",
                  "      - {id: door, kind: maglock, relay: 17, door: 27, relock_after_restart: true}",
                  "      - {id: bell, kind: button, pin: 22}"]
    lines += ["puzzles:"]
    for n in range(1, NODES + 1):
        lines += [f"  - id: bell_{n}", f"    label: Sonnette {n}", "    theme: rights",
                  f"    room: node_{n}", f"    solve: {{when: event, prop: node_{n}.bell, event: pressed}}",
                  f"    actions: [{{do: unlock, target: node_{n}.door}}]"]
    lines.append("    final: true")
    return "\n".join(lines) + "\n"


def _desired(http: Http) -> dict[tuple[str, str], bool]:
    """(node, prop) → engaged wanted, for every lock the controller has a desire for."""
    out = {}
    for prop in http.get("/api/state")["props"]:
        want = prop.get("desired")
        if want and want.get("action") in ("lock", "unlock"):
            out[(prop["node"], prop["id"])] = want["action"] == "lock"
    return out


def _reconciled_at(http: Http, *, since_ns: int, since_wall: float,
                   desired: dict[tuple[str, str], bool]) -> dict[str, Any] | None:
    """When the controller had, after the restart, a fresh birth of every node and a fresh
    matching state of every desired lock; None if not yet."""
    records = http.get(f"/bench/records?since={since_ns}")
    births: dict[str, int] = {}
    for r in records["statuses"]:
        if r["online"] and (r["ts"] or 0) > since_wall and r["node"] not in births:
            births[r["node"]] = r["t"]
    states: dict[tuple[str, str], int] = {}
    for r in records["states"]:
        key = (r["node"], r["prop"])
        if key in desired and (r["ts"] or 0) > since_wall:
            if r["fields"].get("engaged") is desired[key]:
                states.setdefault(key, r["t"])
            else:
                states.pop(key, None)  # a fresh state that is not (yet) what we want
    if len(births) < NODES or len(states) < len(desired):
        return None
    ups = [r["t"] for r in records["connections"] if r["up"]]
    return {"all_births": max(births.values()), "all_states": max(states.values()),
            "controller_up": ups[0] if ups else None}


def restart_once(b: Broker, http: Http, *, flip: tuple[str, str] | None, timeout: float) -> dict[str, Any]:
    mosq = b.handle
    t_down, wall_down = time.monotonic_ns(), time.time()
    mosq.stop()
    if flip is not None:
        node, prop = flip
        current = _desired(http).get(flip)
        http.post(f"/api/props/{node}/{prop}/{'unlock' if current else 'lock'}")
    mosq.start()
    t_up = time.monotonic_ns()
    desired = _desired(http)
    deadline = time.monotonic() + timeout
    while True:
        done = _reconciled_at(http, since_ns=t_down, since_wall=wall_down, desired=desired)
        if done is not None:
            break
        if time.monotonic() > deadline:
            msg = f"not reconciled {timeout} s after the broker restart"
            raise BenchError(msg)
        time.sleep(0.02)
    t_done = max(done["all_births"], done["all_states"])
    return {
        "flipped": f"{flip[0]}.{flip[1]}" if flip else None,
        "broker_restart_ms": round((t_up - t_down) / 1e6, 1),
        "down_to_reconciled_ms": round((t_done - t_down) / 1e6, 1),
        "up_to_reconciled_ms": round((t_done - t_up) / 1e6, 1),
        "down_to_all_births_ms": round((done["all_births"] - t_down) / 1e6, 1),
        "down_to_controller_up_ms": round((done["controller_up"] - t_down) / 1e6, 1)
        if done["controller_up"] else None,
    }


def offline_detection(node: Proc, node_id: str, http: Http, sig: signal.Signals,
                      timeout: float) -> float:
    """ms from *sig* sent to the node until the controller has it offline: its last will
    handled (the probe's record, exact), or its silence judged by the controller's own
    heartbeat watch (a frozen node's will comes only when Mosquitto notices, later),
    seen in ``/api/state`` (polled every 10 ms: up to ~10 ms late)."""
    t0 = time.monotonic_ns()
    node.signal(sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in http.get(f"/bench/records?since={t0}")["statuses"]:
            if r["node"] == node_id and not r["online"]:
                return round((r["t"] - t0) / 1e6, 1)
        seen = time.monotonic_ns()
        if not next(n for n in http.get("/api/state")["nodes"] if n["id"] == node_id)["online"]:
            return round((seen - t0) / 1e6, 1)
        time.sleep(0.01)
    msg = f"the controller did not see {node_id} go offline within {timeout} s"
    raise BenchError(msg)


def run(*, quick: bool, workdir: Path, restarts: int | None = None,
        hung: bool | None = None) -> Section:
    restarts = restarts or (1 if quick else 6)
    hung = (not quick) if hung is None else hung
    section = Section()
    if not mosquitto_available():
        section.notes.append("skipped: the broker restart is measured on Mosquitto, not installed")
        return section
    game = write_game(workdir, "recovery", game_text())
    section.details.update({"nodes": NODES, "restarts": restarts, "keepalive_s": 5,
                            "broker": "mosquitto (persistence on)"})
    rows: list[dict[str, Any]] = []
    with mosquitto(workdir, persistence=True, name="mosquitto-recovery") as b, \
            contextlib.ExitStack() as stack:
        ctl, port = controller_proc("rec-controller", game=game, broker=b, workdir=workdir)
        start_all(stack, [ctl])
        http = Http(port)
        stack.callback(http.close)
        nodes = {f"node_{n}": Proc(f"rec-node_{n}", python_argv(
            "controller.cli", "node", "--simulate", "--config", str(game), "--id", f"node_{n}",
            "--broker", b.address, "--data-dir", str(workdir / "nodes")), workdir=workdir,
            stops_on_eof=False) for n in range(1, NODES + 1)}
        stack.callback(stop_all, list(nodes.values()))
        wait_until(lambda: all(n["online"] for n in http.get("/api/state")["nodes"]),
                   timeout=20, what="every node online")
        http.post("/api/game/start", {"parcours": "primo", "players": 4})
        wait_until(lambda: all(p["desired"]["confirmed"] for p in http.get("/api/state")["props"]
                               if p.get("desired")), timeout=10, what="every lock engaged")
        for i in range(restarts):
            flip = ("node_1", "door") if i % 2 else None
            rows.append(restart_once(b, http, flip=flip, timeout=15))
        section.details["restarts_detail"] = rows
        killed = offline_detection(nodes["node_4"], "node_4", http, signal.SIGKILL, timeout=10)
        section.details["sigkill_to_offline_ms"] = killed
        if hung:
            frozen = offline_detection(nodes["node_3"], "node_3", http, signal.SIGSTOP, timeout=20)
            section.details["sigstop_to_offline_ms"] = frozen
            nodes["node_3"].signal(signal.SIGKILL)
    down = summarize_ns([int(r["down_to_reconciled_ms"] * 1e6) for r in rows])
    up = summarize_ns([int(r["up_to_reconciled_ms"] * 1e6) for r in rows])
    section.details["down_to_reconciled"] = down
    section.details["up_to_reconciled"] = up
    section.metric("recovery.restart_to_reconciled_max_ms", down.get("max_ms"), "ms")
    section.metric("recovery.restart_to_reconciled_p50_ms", down.get("p50_ms"), "ms")
    section.metric("recovery.broker_up_to_reconciled_max_ms", up.get("max_ms"), "ms")
    section.metric("recovery.sigkill_to_offline_ms", killed, "ms")
    if hung:
        section.metric("recovery.sigstop_to_offline_ms", section.details["sigstop_to_offline_ms"], "ms")
    section.target("recovery.restart_to_reconciled_max_ms",
                   target="every node reconciled ≤ 2 s after a broker restart (from broker down)",
                   measured=down.get("max_ms"), limit=2000.0, unit="ms")
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--restarts", type=int)
    parser.add_argument("--hung", action="store_true", help="also a SIGSTOPped node (≈ 7.5 s)")
    args = parser.parse_args(argv)
    with workdir_for("bench-rec-") as tmp:
        section = run(quick=args.quick, workdir=tmp, restarts=args.restarts, hung=args.hung or None)
    json.dump(section.as_dict(), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
