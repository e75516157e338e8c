"""The live pages' JSON Patch, side by side: ``controller.delta.diff`` (hand-written) and
the maintained ``jsonpatch.make_patch``, on real views of the shipped game.

The views are built by the shipped game's :class:`~controller.service.GameService`
(nodes online and confirming their orders, a game started, fake clocks), then made plain
as the hub makes them (what a page decodes). Three changes a page sees during a game: 1
s of game clock, a puzzle solved, a clue sent; each for the staff snapshot and for a
room screen. For each: CPU per diff (``time.process_time_ns``, µs p50/p99, the two ways
interleaved) and the patch's size in bytes (as the hub sends it), and whether the patch,
applied, gives the new view exactly.

    .venv/bin/python -m bench.patch_diff [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, percentile, ratio
from bench.results_model import Section

Differ = Callable[[Any, Any], list[dict[str, Any]]]


def _differs() -> dict[str, Differ]:
    """The two ways; the library's only where it is installed (``pip install jsonpatch``:
    it is not a dependency of the project, only of this comparison)."""
    from controller import delta

    out: dict[str, Differ] = {"delta": delta.diff}
    try:
        import jsonpatch
    except ImportError:
        return out
    out["jsonpatch"] = lambda a, b: list(jsonpatch.make_patch(a, b))
    return out


def _plain(view: dict[str, Any]) -> Any:
    from controller import jsonsafe

    return json.loads(jsonsafe.dumps(view, what="bench"))


class _Clocks:
    def __init__(self) -> None:
        self.mono, self.now = 1000.0, 1_760_000_000.0

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.now


def _confirm_orders(svc: Any) -> None:
    """Every node reports it did what it was ordered, as the nodes of a game do (an order
    left unconfirmed has a waiting time that changes every second)."""
    from controller.mqtt import Incoming
    from protocol.contract import PropState, TopicParts

    for prop in svc.views.snapshot()["props"]:
        want = prop["desired"]
        if want and not want["confirmed"]:
            state = PropState(boot_id=f"boot-{prop['node']}", ack=want["command_id"],
                              engaged=want["action"] == "lock", door="closed",
                              on=want["action"] == "on")
            svc.handle(Incoming(TopicParts("state", prop["node"], prop["id"]), state,
                                retained=False))


def scenarios(workdir: Path) -> dict[str, tuple[Any, Any]]:
    """``{name: (old view, new view)}`` from the shipped game, played through the service."""
    from config.loader import load_game
    from controller.mqtt import MqttBridge
    from controller.service import GameService
    from controller.store import Store
    from protocol.contract import NodeStatus, Topics
    from protocol.mqtt import BrokerAddress

    game = load_game(ROOT / "config" / "apartment.yaml")
    clocks = _Clocks()
    store = Store(workdir / "escape.db")
    bridge = MqttBridge(topics=Topics(game.apartment.id), broker=BrokerAddress("127.0.0.1", 9),
                        boot_id="bench")
    svc = GameService(game=game, bridge=bridge, store=store, clock=clocks.monotonic, wall=clocks.wall)
    # no broker: commands go nowhere, and the link counts as up so reports confirm orders
    bridge.send_command = lambda *_a, **_kw: None   # type: ignore[method-assign]
    bridge.connected, bridge.connected_at = True, clocks.monotonic()
    try:
        for node in game.nodes:
            svc.registry.on_status(node.id, NodeStatus(online=True, boot_id=f"boot-{node.id}"))
        svc.orders.start_game(parcours="primo", players=4)
        clocks.mono += 95
        clocks.now += 95
        _confirm_orders(svc)
        room = game.puzzles[0].room

        def views() -> tuple[Any, Any]:
            return _plain(svc.views.snapshot()), _plain(svc.views.screen_view(room))

        out: dict[str, tuple[Any, Any]] = {}
        staff0, screen0 = views()
        clocks.mono += 1
        clocks.now += 1
        staff1, screen1 = views()
        svc.orders.force_solve(game.puzzles[0].id)
        _confirm_orders(svc)
        staff2, screen2 = views()
        svc.orders.send_clue(text="Regardez sous le paillasson.", room=room)
        staff3, screen3 = views()
        for audience, seq in (("staff", (staff0, staff1, staff2, staff3)),
                              ("screen", (screen0, screen1, screen2, screen3))):
            out[f"{audience}.clock_1s"] = (seq[0], seq[1])
            out[f"{audience}.puzzle_solved"] = (seq[1], seq[2])
            out[f"{audience}.clue_sent"] = (seq[2], seq[3])
        return out
    finally:
        store.close()


def _patch_bytes(ops: list[dict[str, Any]]) -> int:
    from controller import jsonsafe

    return len(jsonsafe.dumps({"type": "patch", "v": 8, "ops": ops}, what="bench").encode())


def _applies(old: Any, new: Any, ops: list[dict[str, Any]]) -> bool:
    """The patch, applied as the pages apply it, gives *new* exactly (types included)."""
    from tests.support.livefeed import apply

    try:
        got = apply(old, ops)
    except (KeyError, IndexError, ValueError, TypeError):
        return False
    return json.dumps(got, sort_keys=True) == json.dumps(new, sort_keys=True)


def measure(old: Any, new: Any, differs: dict[str, Differ], rounds: int) -> dict[str, Any]:
    samples: dict[str, list[int]] = {name: [] for name in differs}
    for _ in range(rounds):
        for name, fn in differs.items():   # interleaved: the same machine noise for both
            t0 = time.process_time_ns()
            fn(old, new)
            samples[name].append(time.process_time_ns() - t0)
    out: dict[str, Any] = {"view_bytes": len(json.dumps(new).encode())}
    for name, fn in differs.items():
        xs = sorted(samples[name])
        ops = fn(old, new)
        out[name] = {"p50_us": round(percentile(xs, 50) / 1000, 1),
                     "p99_us": round(percentile(xs, 99) / 1000, 1),
                     "ops": len(ops), "op_kinds": sorted({o["op"] for o in ops}),
                     "patch_bytes": _patch_bytes(ops), "applies_exactly": _applies(old, new, ops)}
    return out


def run(*, quick: bool, workdir: Path, rounds: int | None = None) -> Section:
    rounds = rounds or (200 if quick else 2000)
    section = Section()
    section.details["rounds"] = rounds
    section.details["game"] = "config/apartment.yaml"
    differs = _differs()
    if "jsonpatch" not in differs:
        section.notes.append("jsonpatch is not installed (pip install jsonpatch): "
                             "controller.delta measured alone")
    for name, (old, new) in scenarios(workdir).items():
        result = measure(old, new, differs, rounds)
        section.details[name] = result
        for who in differs:
            section.metric(f"diff.{name}.{who}.p50_us", result[who]["p50_us"], "µs")
            section.metric(f"diff.{name}.{who}.p99_us", result[who]["p99_us"], "µs")
            section.metric(f"diff.{name}.{who}.bytes", result[who]["patch_bytes"], "B")
        if "jsonpatch" in differs:
            section.metric(f"diff.{name}.jsonpatch_over_delta.p50",
                           ratio(result["jsonpatch"]["p50_us"], result["delta"]["p50_us"]), "×",
                           better="info")
        for who in differs:
            if not result[who]["applies_exactly"]:
                section.notes.append(f"{name}: the {who} patch, applied, does not give the new view")
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-patch-") as tmp:
        section = run(quick=args.quick, workdir=Path(tmp), rounds=args.rounds)
    json.dump(section.as_dict(), sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
