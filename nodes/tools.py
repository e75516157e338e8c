"""The technician's commands on a node: ``node wiring``, ``node test``, ``node enroll``.

They build the node's props exactly as the agent does (``nodes/build.py``: real pins on a
Pi, MockFactory with ``--simulate``) but without MQTT, so they work with no broker and no
controller.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodes.build import build_props, close_props, load_node_game, pin_factory_for
from nodes.tech import wait_next_tag
from props.kinds import RFID_KINDS


def register(sub: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]) -> None:
    wiring = sub.add_parser("wiring", help="print the wiring sheet of a node")
    common(wiring)
    wiring.add_argument("--markdown", action="store_true", help="Markdown instead of a terminal table")
    wiring.add_argument("-o", "--output", type=Path, help="also write the Markdown sheet to this file")
    wiring.set_defaults(func=cmd_wiring)

    test = sub.add_parser("test", help="run the self-test of each prop (or one) and print pass/fail")
    common(test)
    test.add_argument("--prop", help="only this prop")
    test.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a hand (default 10)")
    test.set_defaults(func=cmd_test)

    enroll = sub.add_parser("enroll", help="print the UID of the next RFID tag presented")
    common(enroll)
    enroll.add_argument("--prop", required=True, help="the RFID reader")
    enroll.add_argument("--timeout", type=float, default=30.0)
    enroll.add_argument("--simulate-tag", default=None,
                        help="with --simulate: present this UID on the simulated reader")
    enroll.add_argument("--bin", default=None, help="with a sorting station and --simulate-tag: the bin")
    enroll.set_defaults(func=cmd_enroll)


def cmd_wiring(args: argparse.Namespace) -> int:
    from nodes.wiring import wiring_sheet

    node = load_node_game(args).node(args.node_id)
    print(wiring_sheet(node, markdown=args.markdown))
    if args.output:
        args.output.write_text(wiring_sheet(node, markdown=True), encoding="utf-8")
    return 0


def _build(args: argparse.Namespace, only: str | None) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    node = load_node_game(args).node(args.node_id)
    if only is not None and all(p.id != only for p in node.props):
        msg = f"no prop {only!r} on node {node.id} (props: {', '.join(p.id for p in node.props)})"
        raise SystemExit(msg)
    props, sims = build_props(node, pin_factory=pin_factory_for(args.simulate),
                              simulate=args.simulate, only=only)
    return node, props, sims


def cmd_test(args: argparse.Namespace) -> int:
    _node, props, sims = _build(args, args.prop)
    failures = 0
    try:
        for prop_id, prop in props.items():
            hand = _simulated_hand(prop, sims.get(prop_id))
            result = prop.self_test(timeout=args.timeout)
            if hand is not None:
                hand.join(timeout=args.timeout)
            mark = "PASS" if result.passed else "FAIL"
            failures += not result.passed
            steps = "; ".join(result.steps)
            print(f"{mark}  {prop_id:<20} {prop.kind:<12} {steps}"
                  + (f" — {result.message}" if result.message else ""))
    finally:
        close_props(props.values())
    print(f"\n{len(props) - failures} passed, {failures} failed")
    return 1 if failures else 0


def _simulated_hand(prop: Any, sim: Any) -> threading.Thread | None:
    """With --simulate, a simulated technician presses/presents while the self-test waits."""
    if sim is None:
        return None
    gesture = {"keypad": ("press", "5"), "button": ("press", None), "reed_switch": ("open", None),
               "pressure_mat": ("step", None), "mfrc522": ("present", "04a1b2c3"),
               "rdm6300": ("present", "0a00112233")}.get(prop.kind)
    if gesture is None or gesture[0] not in sim.gestures:
        return None

    def act() -> None:
        threading.Event().wait(0.3)
        sim.perform(*gesture)

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def cmd_enroll(args: argparse.Namespace) -> int:
    _node, props, sims = _build(args, args.prop)
    prop = props[args.prop]
    try:
        if prop.kind not in RFID_KINDS:
            print(f"{args.prop} is a {prop.kind}, not an RFID reader")
            return 2
        if args.simulate and args.simulate_tag:
            sim = sims[args.prop]
            value: Any = args.simulate_tag
            if prop.kind == "sorting":
                first_bin = next(iter(sim.config.bins))
                value = {"bin": args.bin or first_bin, "uid": args.simulate_tag}
            threading.Timer(0.3, sim.perform, ("present", value)).start()
        print(f"Présentez le badge sur {args.prop} … ({args.timeout:.0f} s)", flush=True)
        uid = wait_next_tag(prop, args.timeout)
        if uid is None:
            print("aucun badge présenté à temps")
            return 1
        print(uid)
        print(f"\nÀ coller dans la configuration de {args.prop} :\n  tags:\n    \"{uid}\": nom_du_badge")
        return 0
    finally:
        close_props(props.values())
