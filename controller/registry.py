"""What the controller knows of the nodes: online or not, boots, reported prop states.

It also guards the event stream: duplicates (QoS 1 may redeliver) are dropped by
``(boot_id, seq)``, a gap asks for a resync, a stale last will (of an older boot) is ignored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from config.game import Game
from nodes.contract import NodeStatus, PropEvent, PropState


class EventVerdict(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    GAP = "gap"          # new, but some events before it were lost: resync


@dataclass(slots=True)
class NodeInfo:
    id: str
    label: str
    online: bool = False
    boot_id: str | None = None
    version: str | None = None
    simulated: bool | None = None
    last_seen: float | None = None
    booted_at: float | None = None
    last_seq: int = 0
    reboots: int = 0


@dataclass(slots=True)
class PropInfo:
    node: str
    id: str
    kind: str
    label: str
    reported: dict[str, Any] = field(default_factory=dict)
    ack: str | None = None
    updated: float | None = None
    last_event: dict[str, Any] | None = None


class Registry:
    def __init__(self, game: Game) -> None:
        self.nodes: dict[str, NodeInfo] = {
            n.id: NodeInfo(n.id, n.label.fr) for n in game.nodes
        }
        self.props: dict[tuple[str, str], PropInfo] = {
            (n.id, p.id): PropInfo(n.id, p.id, p.kind, p.label or p.id)
            for n in game.nodes for p in n.props
        }

    def on_status(self, node_id: str, status: NodeStatus) -> str:
        """Apply a birth or a will; return 'birth', 'reboot', 'offline', or 'stale'."""
        node = self.nodes[node_id]
        now = time.time()
        if not status.online:
            if node.boot_id is not None and status.boot_id != node.boot_id:
                return "stale"  # the will of an older boot, arriving after the new birth
            node.online = False
            return "offline"
        kind = "reboot" if node.boot_id is not None and node.boot_id != status.boot_id else "birth"
        if status.boot_id != node.boot_id:
            node.last_seq = 0
            node.booted_at = status.ts or now
            if kind == "reboot":
                node.reboots += 1
        node.online, node.boot_id = True, status.boot_id
        node.version, node.simulated, node.last_seen = status.version, status.simulated, now
        return kind

    def on_state(self, node_id: str, prop_id: str, state: PropState) -> PropInfo | None:
        prop = self.props.get((node_id, prop_id))
        if prop is None:
            return None
        prop.reported, prop.ack, prop.updated = state.fields, state.ack, time.time()
        self.nodes[node_id].last_seen = time.time()
        return prop

    def on_event(self, node_id: str, event: PropEvent) -> EventVerdict:
        node = self.nodes[node_id]
        node.last_seen = time.time()
        if event.boot_id != node.boot_id:
            # An event of a boot we have not seen the birth of (yet): take it as new.
            node.boot_id, node.last_seq = event.boot_id, event.seq
            return EventVerdict.NEW
        if event.seq <= node.last_seq:
            return EventVerdict.DUPLICATE
        gap = event.seq > node.last_seq + 1
        node.last_seq = event.seq
        return EventVerdict.GAP if gap else EventVerdict.NEW

    def snapshot(self) -> dict[str, Any]:
        return {
            "nodes": [{"id": n.id, "label": n.label, "online": n.online, "boot_id": n.boot_id,
                       "version": n.version, "simulated": n.simulated, "last_seen": n.last_seen,
                       "booted_at": n.booted_at, "reboots": n.reboots}
                      for n in self.nodes.values()],
            "props": [{"node": p.node, "id": p.id, "kind": p.kind, "label": p.label,
                       "reported": p.reported, "ack": p.ack, "last_event": p.last_event}
                      for p in self.props.values()],
        }
