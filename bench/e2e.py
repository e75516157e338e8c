"""End-to-end latency: a key pressed on node A's keypad → node B's maglock relay released.

Everything is a separate process, over a real broker (Mosquitto with
``set_tcp_nodelay true``, then the embedded amqtt one):

    controller (bench._controller: create_app under uvicorn)
    node_a     (bench._node: NodeAgent + simulated 3×4 keypad, code_length 4)
    node_b     (bench._node: NodeAgent + maglock on GPIO17, its relay pin timed)

A trial starts the game (``POST /api/game/start``: the engine locks node B), types the
code on node A's simulated keypad matrix, and measures from the moment the **last key
pulls its column pin low** (timed in node A's process) to the moment **node B's relay
pin drops** (timed in node B's process). Both are ``time.monotonic_ns()``, one clock
for the whole machine on Linux. The keypad's debounce is 0 in this game, so the figure
is the system's own latency; a real keypad adds its debounce (20 ms by default) on
purpose. Each trial is also split at the keypad's ``code`` event (node A) and at the
moment the controller has handled it (controller process).

In the same run, with the same broker:

* **transport floor** — bare paho clients (``bench._transport``) over the same four hops
  (A → broker → echo → broker → B), this project's client settings (TCP_NODELAY), QoS 1;
* **naive stack** — paho defaults (Nagle on), QoS 2, Mosquitto *without*
  ``set_tcp_nodelay``, same four hops.

    .venv/bin/python -m bench.e2e [--quick] [--trials N] [--brokers mosquitto,amqtt]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    BenchError,
    Broker,
    Http,
    Proc,
    broker,
    controller_proc,
    mosquitto,
    mosquitto_available,
    pin_groups,
    python_argv,
    ratio,
    start_all,
    summarize_ns,
    wait_until,
    workdir_for,
    write_game,
)
from bench.results_model import Section

CODE = "0412"
RELAY = 17
GAME = f"""\
apartment: {{id: bench, name: Banc d'essai}}
nodes:
  - id: node_a
    label: Nœud A
    props:
      - {{id: keypad, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20], code_length: 4,
          debounce: 0}}
  - id: node_b
    label: Nœud B
    props:
      - {{id: door, kind: maglock, relay: {RELAY}, door: 27}}
puzzles:
  - id: door_code
    label: Code de la porte
    theme: rights
    room: node_a
    solve: {{when: event, prop: node_a.keypad, event: code, equals: "{CODE}"}}
    actions: [{{do: unlock, target: node_b.door}}]
    final: true
"""
WARMUP = 3


def default_brokers() -> list[str]:
    return ["mosquitto", "amqtt"] if mosquitto_available() else ["amqtt"]


def _wait_pin(node: Proc, *, state: bool, timeout: float) -> int:
    """Time (ns) of node's next reported change of the relay pin to *state*."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            msg = f"{node.name}: relay did not go {'high' if state else 'low'} within {timeout} s"
            raise BenchError(msg)
        event = node.expect("pin", remaining)
        if event["pin"] == RELAY and event["state"] is state:
            return int(event["t"])


def _keypad_ack(http: Http) -> str | None:
    """Id of the last command node A applied to its keypad, as the controller knows it."""
    keypad = next(p for p in http.get("/api/state")["props"] if p["id"] == "keypad")
    return keypad.get("ack")


class Trial:
    """One key press → relay trial on a running apartment (see the module docstring)."""

    def __init__(self, http: Http, node_a: Proc, node_b: Proc) -> None:
        self.http, self.node_a, self.node_b = http, node_a, node_b
        self.resets_keypad, self.checked_reset = True, False

    def run(self, i: int) -> dict[str, int]:
        http, node_a, node_b = self.http, self.node_a, self.node_b
        node_b.drain("pin")
        ack = _keypad_ack(http)
        http.post("/api/game/start", {"parcours": "primo", "players": 2})
        if self.resets_keypad:
            # NOTE: a game start resets node A's keypad (pre-game check); a key typed
            # before the reset lands would be wiped by it. Wait for its acknowledgement.
            try:
                wait_until(lambda: _keypad_ack(http) != ack, timeout=5,
                           what="node A to acknowledge the keypad's reset", interval=0.002)
            except BenchError:
                if self.checked_reset:
                    raise
                self.resets_keypad = False  # this controller does not reset keypads at start
            self.checked_reset = True
        try:
            _wait_pin(node_b, state=True, timeout=5)
        except BenchError as exc:
            state = http.get("/api/state")
            door = next((p for p in state["props"] if p["id"] == "door"), None)
            msg = (f"trial {i}: the game start did not lock node B: {exc}; controller: "
                   f"phase {state['game'].get('phase')}, door {door}")
            raise BenchError(msg) from exc
        typed = node_a.request("typed", 10, cmd="type", prop="keypad", keys=CODE)
        try:
            t_relay = _wait_pin(node_b, state=False, timeout=5)
        except BenchError as exc:
            with contextlib.suppress(BenchError):
                node_a.request("released", 10, cmd="release", prop="keypad")
            state = http.get("/api/state")
            keypad = next((p for p in state["props"] if p["id"] == "keypad"), None)
            status = node_a.request("status", 5, cmd="status")
            msg = (f"trial {i}: the code did not open node B: {exc}; typed {typed}; controller: "
                   f"phase {state['game'].get('phase')}, keypad {keypad}; node A: {status}")
            raise BenchError(msg) from exc
        # NOTE: the finger leaves the last key only now, as a player's does (≈ 100 ms on a
        # key): the simulated hand's let-go must not share the CPU with what is timed.
        released = node_a.request("released", 10, cmd="release", prop="keypad")
        if not typed["ok"] or typed["t_pin"] is None or not released["ok"]:
            msg = f"trial {i}: the simulated hand was not read by the keypad: {typed}"
            raise BenchError(msg)
        return {"t_pin": typed["t_pin"], "t_code": typed["t_code"] or 0,
                "t_code_wire": typed.get("t_code_wire") or 0, "t_relay": t_relay}


def system_latency(b: Broker, game: Path, trials: int, workdir: Path,
                   experiments: Sequence[str] = (), pin: bool = False,
                   transport: str | None = None) -> dict[str, Any]:
    """Key on node A → relay on node B, *trials* times, over broker *b* (both nodes on the
    network loop *transport*: ``bench._node.TRANSPORTS``; None: the node's own)."""
    return summarize_system(run_system(b, game, trials, workdir, experiments, pin, transport))


def run_system(b: Broker, game: Path, trials: int, workdir: Path,
               experiments: Sequence[str] = (), pin: bool = False,
               transport: str | None = None) -> dict[str, Any]:
    """The raw samples (ns) of :func:`system_latency`."""
    node_extra = ["--transport", transport] if transport else []
    with contextlib.ExitStack() as stack:
        ctl, port = controller_proc(f"e2e-controller-{b.kind}", game=game, broker=b, workdir=workdir,
                                    extra=[f"--experiment={e}" for e in experiments])
        node_a = Proc(f"e2e-node_a-{b.kind}", python_argv(
            "bench._node", "--game", str(game), "--node", "node_a", "--broker", b.address,
            *node_extra), workdir=workdir)
        node_b = Proc(f"e2e-node_b-{b.kind}", python_argv(
            "bench._node", "--game", str(game), "--node", "node_b", "--broker", b.address,
            "--watch", str(RELAY), *node_extra), workdir=workdir)
        ready = start_all(stack, [ctl, node_a, node_b])
        pinned = pin_groups({"nodes": [node_a.pid, node_b.pid],
                             "controller_and_broker": [ctl.pid, *([b.pid] if b.pid else [])]}
                            ) if pin else None
        http = Http(port)
        stack.callback(http.close)
        wait_until(lambda: all(n["online"] for n in http.get("/api/state")["nodes"]),
                   timeout=10, what="the controller to see both nodes online")
        t_begin = time.monotonic_ns()
        rows: list[dict[str, int]] = []
        errors: list[str] = []
        trial = Trial(http, node_a, node_b)
        for i in range(WARMUP + trials):
            try:
                row = trial.run(i)
            except BenchError as exc:
                errors.append(str(exc)[:1500])
                if len(errors) > max(3, trials // 20):
                    msg = f"{len(errors)} failed trials; the last: {errors[-1]}"
                    raise BenchError(msg) from exc
                with contextlib.suppress(BenchError):
                    http.post("/api/game/stop")  # so that the next start begins afresh
                continue
            if i >= WARMUP:
                rows.append(row)
        records = http.get(f"/bench/records?since={t_begin}&events=true")
        codes = sorted(t for t, node, prop, kind, _seq in records["events"]
                       if (node, prop, kind) == ("node_a", "keypad", "code"))
        unlocks = sorted(t for t, node, prop, action in records["commands"]
                         if (node, prop, action) == ("node_b", "door", "unlock"))
        reads = sorted(int(t) for t in records.get("code_reads", []))
        received = sorted(int(m["t"]) for m in node_b.drain("rx") if m["topic"].endswith("/door/set"))
        node_a_status = node_a.request("status", 5, cmd="status")
        node_b_status = node_b.request("status", 5, cmd="status")
    total = [r["t_relay"] - r["t_pin"] for r in rows]
    keypad = [r["t_code"] - r["t_pin"] for r in rows if r["t_code"]]
    parts: dict[str, list[int]] = {name: [] for name in PARTS}
    for r in rows:
        if not r["t_code"]:
            continue
        sent = next((t for t in unlocks if r["t_code"] <= t <= r["t_relay"]), None)
        read = next((t for t in reads if r["t_code"] <= t <= r["t_relay"]), None)
        if r["t_code_wire"]:
            parts["code_event_to_node_a_socket_write"].append(r["t_code_wire"] - r["t_code"])
            if read is not None:
                parts["node_a_socket_write_to_controller_read"].append(read - r["t_code_wire"])
        if read is not None and sent is not None:
            parts["controller_read_to_unlock_command_sent"].append(sent - read)
        if sent is not None:
            parts["code_event_to_unlock_command_sent"].append(sent - r["t_code"])
            parts["unlock_command_sent_to_node_b_relay"].append(r["t_relay"] - sent)
            rx = next((t for t in received if sent <= t <= r["t_relay"]), None)
            if rx is not None:
                parts["unlock_command_sent_to_node_b_received"].append(rx - sent)
                parts["node_b_received_to_relay"].append(r["t_relay"] - rx)
        handled = next((t for t in codes if t >= r["t_code"]), None)
        if handled is not None:
            parts["code_event_to_controller_done_handling"].append(handled - r["t_code"])
    parts["node_a_pin_to_code_event"] = keypad
    return {
        "trials": len(rows), "failed_trials": len(errors), "errors": errors[:3],
        "controller_loop": ready[0].get("loop"), "pinned": pinned, "pin_to_relay": total,
        "parts": parts,
        "node_metrics": {"node_a": node_a_status.get("metrics"),
                         "node_b": node_b_status.get("metrics")},
    }


#: the cuts of a trial, in the order of the path
PARTS = ("node_a_pin_to_code_event", "code_event_to_unlock_command_sent",
         "code_event_to_node_a_socket_write", "node_a_socket_write_to_controller_read",
         "controller_read_to_unlock_command_sent", "unlock_command_sent_to_node_b_relay",
         "unlock_command_sent_to_node_b_received", "node_b_received_to_relay",
         "code_event_to_controller_done_handling")


def merge_runs(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The raw samples of several :func:`run_system` runs, as one."""
    merged = dict(runs[0])
    merged["trials"] = sum(r["trials"] for r in runs)
    merged["failed_trials"] = sum(r["failed_trials"] for r in runs)
    merged["errors"] = [e for r in runs for e in r["errors"]][:3]
    merged["pin_to_relay"] = [x for r in runs for x in r["pin_to_relay"]]
    merged["parts"] = {name: [x for r in runs for x in r["parts"][name]] for name in PARTS}
    merged["node_metrics"] = [r["node_metrics"] for r in runs]
    return merged


def summarize_system(raw: dict[str, Any]) -> dict[str, Any]:
    return {**raw, "pin_to_relay": summarize_ns(raw["pin_to_relay"]),
            "parts": {name: summarize_ns(raw["parts"][name]) for name in PARTS}}


def transport_latency(b: Broker, trials: int, workdir: Path, *, client: str, qos: int,
                      label: str, pin: bool = False) -> dict[str, Any]:
    """Bare paho source → echo → sink over broker *b*."""
    topic = f"bench/{label}"
    common = ["--broker", b.address, "--qos", str(qos), "--client", client, "--topic", topic]
    with contextlib.ExitStack() as stack:
        procs = [Proc(f"{label}-{role}-{b.kind}", python_argv("bench._transport", "--role", role,
                                                               *common), workdir=workdir)
                 for role in ("echo", "sink", "source")]
        start_all(stack, procs)
        echo, sink, source = procs
        if pin:   # as the system's: the two ends where the nodes are, the echo with the broker
            pin_groups({"ends": [source.pid, sink.pid],
                        "echo_and_broker": [echo.pid, *([b.pid] if b.pid else [])]})
        samples: list[int] = []
        lost = 0
        for i in range(WARMUP + trials):
            sent = source.request("sent", 5, cmd="send", id=i)
            try:
                got = sink.expect("recv", 5)
            except BenchError:
                lost += 1
                continue
            if got["id"] != i:
                lost += 1
                continue
            if i >= WARMUP:
                samples.append(int(got["t"]) - int(sent["t"]))
    return {"trials": len(samples), "lost": lost, "client": client, "qos": qos,
            "broker": b.kind, "latency": summarize_ns(samples)}


def run(*, quick: bool, workdir: Path, trials: int | None = None,
        brokers: Sequence[str] | None = None, naive: bool = True,
        experiments: Sequence[str] = (), pin: bool = False,
        node_transports: Sequence[str] = (), rounds: int | None = None) -> Section:
    """*node_transports*: measure the system with each of these network loops on the nodes,
    interleaved A, B, A, B… (*rounds* each, the trials shared out), in the same run and on
    the same broker, so the machine's noise falls on both alike; the first one fills the
    usual metrics."""
    n = trials or (15 if quick else 1000)
    n_naive = max(5, n // 2) if trials else (10 if quick else 1000)
    section = Section()
    section.details.update({"trials": n, "warmup_trials": WARMUP, "code": CODE,
                            "keypad_debounce_s": 0, "experiments": list(experiments),
                            "pinned": pin, "node_transports": list(node_transports)})
    game = write_game(workdir, "e2e", GAME)
    kinds = list(brokers or default_brokers())
    for kind in kinds:
        with broker(kind, workdir) as b:
            by_transport = _interleaved(b, game, n, workdir, experiments, pin, node_transports,
                                        rounds or (2 if quick else 4))
            system = next(iter(by_transport.values()))
            floor = transport_latency(b, n, workdir, client="tuned", qos=1, label="floor", pin=pin)
        section.details[kind] = {"system": system, "floor": floor}
        if len(by_transport) > 1:
            section.details[kind]["node_transports"] = by_transport
            _transport_metrics(section, kind, by_transport)
        sp99, fp99 = system["pin_to_relay"].get("p99_ms"), floor["latency"].get("p99_ms")
        section.metric(f"e2e.{kind}.p50_ms", system["pin_to_relay"].get("p50_ms"), "ms")
        section.metric(f"e2e.{kind}.p99_ms", sp99, "ms")
        section.metric(f"e2e.{kind}.max_ms", system["pin_to_relay"].get("max_ms"), "ms")
        parts = system["parts"]
        for part, label in (("node_a_pin_to_code_event", "keypad_scan"),
                            ("code_event_to_unlock_command_sent", "to_controller_command"),
                            ("unlock_command_sent_to_node_b_relay", "command_to_relay")):
            section.metric(f"e2e.{kind}.{label}_p50_ms", parts[part].get("p50_ms"), "ms")
        section.metric(f"e2e.{kind}.floor_p50_ms", floor["latency"].get("p50_ms"), "ms")
        section.metric(f"e2e.{kind}.floor_p99_ms", fp99, "ms")
        section.metric(f"e2e.{kind}.p99_over_floor_p99", ratio(sp99, fp99), "×")
        section.target(f"e2e.{kind}.p99_over_floor_p99",
                       target=f"end-to-end p99 ≤ 2× transport floor p99 ({kind})",
                       measured=ratio(sp99, fp99), limit=2.0, unit="×")
    if naive and "mosquitto" in kinds:
        with mosquitto(workdir, nodelay=False, name="mosquitto-naive") as nb:
            slow = transport_latency(nb, n_naive, workdir, client="naive", qos=2, label="naive")
        section.details["naive"] = slow
        np99 = slow["latency"].get("p99_ms")
        sp99 = section.details["mosquitto"]["system"]["pin_to_relay"].get("p99_ms")
        section.metric("e2e.naive.p50_ms", slow["latency"].get("p50_ms"), "ms")
        section.metric("e2e.naive.p99_ms", np99, "ms")
        section.metric("e2e.naive_p99_over_e2e_p99", ratio(np99, sp99), "×", better="higher")
        section.target("e2e.naive_p99_over_e2e_p99",
                       target="naive stack p99 ≥ 30× end-to-end p99 (Mosquitto)",
                       measured=ratio(np99, sp99), limit=30.0, at_most=False, unit="×")
    elif naive:
        section.notes.append("naive stack skipped: it is defined on Mosquitto, not installed here")
    return section


def _interleaved(b: Broker, game: Path, n: int, workdir: Path, experiments: Sequence[str],
                 pin: bool, transports: Sequence[str], rounds: int) -> dict[str, dict[str, Any]]:
    """The system latency per node transport, its runs interleaved; one run of the default
    when *transports* is empty."""
    if not transports:
        return {"default": system_latency(b, game, n, workdir, experiments, pin=pin)}
    per_run = max(5, n // rounds)
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in transports}
    for _round in range(rounds):
        for transport in transports:
            runs[transport].append(run_system(b, game, per_run, workdir, experiments, pin, transport))
    return {t: summarize_system(merge_runs(r)) for t, r in runs.items()}


def _transport_metrics(section: Section, kind: str, by_transport: dict[str, dict[str, Any]]) -> None:
    first = next(iter(by_transport))
    for transport, system in by_transport.items():
        total, parts = system["pin_to_relay"], system["parts"]
        for stat in ("p50_ms", "p99_ms"):
            section.metric(f"e2e.{kind}.node_{transport}.{stat}", total.get(stat), "ms")
        section.metric(f"e2e.{kind}.node_{transport}.code_to_socket_p50_ms",
                       parts["code_event_to_node_a_socket_write"].get("p50_ms"), "ms")
        if transport != first:
            section.metric(f"e2e.{kind}.node_{transport}_over_{first}.p99",
                           ratio(total.get("p99_ms"), by_transport[first]["pin_to_relay"].get("p99_ms")),
                           "×", better="info")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--brokers", default=None)
    parser.add_argument("--no-naive", action="store_true")
    parser.add_argument("--experiment", action="append", default=[],
                        help="run the controller with a proposed fix patched in (bench._controller)")
    parser.add_argument("--node-transports", default="",
                        help="comma-separated network loops for the nodes (paho, thread), measured "
                             "interleaved A/B/A/B in this run; the first fills the usual metrics")
    parser.add_argument("--rounds", type=int, help="with --node-transports: runs of each (default "
                                                   "2 quick, 4 full)")
    parser.add_argument("--pin", action="store_true",
                        help="the two nodes on one CPU, the controller and the broker on the "
                             "other (the floor's clients likewise): node A's work after the "
                             "code no longer competes with the broker, as on separate Pis")
    args = parser.parse_args(argv)
    with workdir_for("bench-e2e-") as tmp:
        section = run(quick=args.quick, workdir=Path(tmp), trials=args.trials,
                      brokers=args.brokers.split(",") if args.brokers else None,
                      naive=not args.no_naive, experiments=args.experiment, pin=args.pin,
                      node_transports=[t for t in args.node_transports.split(",") if t],
                      rounds=args.rounds)
    json.dump(section.as_dict(), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
