"""Building a node from the game file: the game, the pin factory, the props, the core.

The agent and the technician's tools build a node's props the same way, here: real
pins on a Pi (gpiozero's default factory), or MockFactory and each prop's simulated
wiring (``props.sim``) in simulation. The agent's core starts from its data dir.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpiozero import Factory

from config.game import Game, Node, NodePart
from nodes.autonomy import SavedView, Stamp
from nodes.core import NodeCore
from nodes.datadir import DataDir
from nodes.gamefile import PartStore, placeholder
from nodes.health import HealthProbe
from nodes.identity import Identity
from nodes.outbox import Outbox
from props.base import Prop
from props.factory import build_prop

if TYPE_CHECKING:
    from nodes.ports import AgentPorts

log = logging.getLogger(__name__)


def load_node_game(args: argparse.Namespace) -> Game:
    """Load the game file named by ``--config`` (or the shipped one) and check ``--id``."""
    from config.loader import SHIPPED_GAME, load_game

    game = load_game(args.config or SHIPPED_GAME)
    if not args.node_id:
        msg = "--id is required (one of: " + ", ".join(n.id for n in game.nodes) + ")"
        raise SystemExit(msg)
    if game.node(args.node_id) is None:
        msg = f"node {args.node_id!r} is not in the game file (known: " + ", ".join(
            n.id for n in game.nodes) + ")"
        raise SystemExit(msg)
    return game


def node_part_at_start(args: argparse.Namespace, data_dir: Path) -> NodePart:
    """The part the agent is given at start (the part the controller gave last, kept in the
    data dir, wins over it: ``NodeAgent.start``): this node's part of ``--config`` (or the
    shipped file); no props, for a node the file does not name (it waits for the
    controller's part); the kept part when the file cannot be used (else raise
    :class:`~config.loader.GameConfigError`)."""
    from config.loader import SHIPPED_GAME, GameConfigError, load_game

    if not args.node_id:
        msg = "--id is required"
        raise SystemExit(msg)
    path = args.config or SHIPPED_GAME
    try:
        game = load_game(path)
    except GameConfigError as exc:
        store = PartStore.find(data_dir, args.node_id)
        kept = store.load() if store is not None else None
        if kept is None:
            raise
        log.error("the game file has errors; node %s starts with the part the controller gave "
                  "last (%s):\n%s", args.node_id, kept.hash, exc)
        return kept.part
    if game.node(args.node_id) is None:
        log.warning("node %s is not in %s (known: %s): it starts with no props and waits for "
                    "its part from the controller", args.node_id, path,
                    ", ".join(n.id for n in game.nodes))
        return placeholder(game, args.node_id)
    return game.part(args.node_id)


def pin_factory_for(simulate: bool) -> Factory | None:
    """MockFactory when simulating, else gpiozero's default (lgpio on a Pi 5 / Bookworm)."""
    if simulate:
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    return None


def build_props(node: Node, *, pin_factory: Factory | None, simulate: bool,
                only: str | None = None) -> tuple[dict[str, Prop], dict[str, Any]]:
    """The props of *node* (or only the prop *only*), and their simulators if *simulate*.

    A node that fails halfway closes what it built: no relay is left driven.
    """
    props: dict[str, Prop] = {}
    simulators: dict[str, Any] = {}
    try:
        for declared in node.props:
            if only is not None and declared.id != only:
                continue
            config = declared
            if simulate:
                from props.sim import prepare

                simulator = prepare(declared, pin_factory)  # type: ignore[arg-type]
                simulators[declared.id] = simulator
                config = simulator.config
            props[declared.id] = build_prop(config, pin_factory=pin_factory)
    except Exception:
        close_props(props.values())
        raise
    return props, simulators


def close_props(props: Iterable[Prop]) -> None:
    """Close each prop (a maglock opens as it closes); errors are logged, never raised."""
    for prop in props:
        try:
            prop.close()  # type: ignore[attr-defined]  # every prop is a gpiozero device
        except Exception:
            log.exception("closing %s failed", prop)


def build_core(part: NodePart, node: Node, *, data: DataDir, ports: AgentPorts, boot_id: str,
               keepalive: int, simulated: bool, outbox_limits: tuple[int, int],
               metrics: Counter[str], game: str | None = None,
               health_root: Path | None = None, now: float | None = None,
               at: Stamp | None = None) -> NodeCore:
    """The core of this boot, on *part* (of hash *game*): count the boot in the data dir,
    read back what an earlier run left there (an uncleared emergency, the game view,
    undelivered events). *health_root*: where the Pi's health is read (``nodes/health.py``;
    None: ``/``, and no sensor read when *simulated*). *now* (monotonic) and *at* (both
    clocks) default to this machine's clocks."""
    boot_n = data.next_boot()
    probe = ports.probe = HealthProbe(root=health_root or Path("/"),
                                      sensors=not simulated or health_root is not None,
                                      data_dir=data.directory)
    probe.system_boots = data.count_system_boot(probe.boot_id())
    log.info("node %s: boot %d (%s), data dir %s, game part %s", node.id, boot_n, boot_id,
             data.directory, game)
    max_events, max_bytes = outbox_limits
    box = Outbox(path=data.path("outbox.jsonl"), max_events=max_events, max_bytes=max_bytes)
    leftovers = box.take_leftovers()
    saved_view = ports.saved_view = SavedView(data.path("game.json"))
    identity = Identity(node=node, boot_id=boot_id, boot_n=boot_n, keepalive=keepalive,
                        simulated=simulated)
    identity.game = game
    core = NodeCore(game=part, node_id=node.id, kinds={p.id: p.kind for p in node.props},
                    ports=ports, outbox=box, identity=identity,
                    now=time.monotonic() if now is None else now,
                    metrics=metrics)
    # A game the controller said was running, if recent: a node rebooted while the
    # controller is away still plays its local puzzles. A game lasts at most duration_min;
    # the view is refreshed every minute.
    view = saved_view.load(max_age_s=part.apartment.duration_min * 60, at=at)
    core.restore(emergency=data.load_emergency(), view=view, leftovers=leftovers)
    if box.corrupt_lines:
        metrics["outbox_corrupt_lines"] += box.corrupt_lines
    return core
