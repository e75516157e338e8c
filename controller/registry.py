"""What the controller knows of the nodes: online or not, boots, reported prop states.

It also guards the event stream: duplicates (QoS 1 may redeliver) are dropped by
``(boot_id, seq)``, a gap asks for a resync, a stale last will (of an older boot) is ignored.

Offline detection has two sources: the node's retained last will (the broker publishes it
when the connection ends without a goodbye), and the node's silence — no heartbeat and no
event for ``contract.node_silence_limit`` (1.2 × the keepalive its birth announced),
checked by :meth:`Registry.check_silence` from the controller's 0.2 s ticker. A node
declared silent is back online with its next heartbeat or event of the same boot (it is
then put in :attr:`Registry.returned`, and the service asks it for a resync), or with a
new birth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from config.game import Game
from nodes.contract import NodeHeartbeat, NodeStatus, PropEvent, PropState, node_silence_limit


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
    #: announced in its birth: MQTT keepalive and heartbeat interval (None: an older node)
    keepalive: float | None = None
    heartbeat: float | None = None
    #: monotonic time of the last birth, heartbeat or event of its current boot
    heard_at: float | None = None
    #: why it is offline: "will" (the broker said so) or "silent" (no heartbeat in time)
    offline_reason: str | None = None
    #: no heartbeat for two intervals (still online: the silence limit is not reached)
    heartbeat_late: bool = False
    #: from its last heartbeat: it plays its local puzzles alone; events in its outbox
    autonomous: bool | None = None
    outbox: int | None = None


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
        #: nodes declared silent that spoke again without a new birth (the service resyncs them)
        self.returned: set[str] = set()

    def on_status(self, node_id: str, status: NodeStatus) -> str:
        """Apply a birth or a will; return 'birth', 'reboot', 'offline', or 'stale'."""
        node = self.nodes[node_id]
        now = time.time()
        if not status.online:
            if node.boot_id is not None and status.boot_id != node.boot_id:
                return "stale"  # the will of an older boot, arriving after the new birth
            # (after a silence too: the connection is gone; only a new birth brings it back)
            node.online, node.offline_reason = False, "will"
            node.heartbeat_late = False
            self.returned.discard(node_id)
            return "offline"
        kind = "reboot" if node.boot_id is not None and node.boot_id != status.boot_id else "birth"
        if status.boot_id != node.boot_id:
            node.last_seq = 0
            node.booted_at = status.ts or now
            if kind == "reboot":
                node.reboots += 1
            node.autonomous = node.outbox = None   # until this boot's first heartbeat
        node.online, node.boot_id = True, status.boot_id
        node.version, node.simulated, node.last_seen = status.version, status.simulated, now
        node.keepalive, node.heartbeat = status.keepalive, status.heartbeat
        node.heard_at, node.offline_reason, node.heartbeat_late = time.monotonic(), None, False
        self.returned.discard(node_id)   # a birth: the node publishes every state itself
        return kind

    def _heard(self, node: NodeInfo) -> bool:
        """The current boot of *node* spoke (heartbeat, event); True if that brought it back."""
        node.heard_at = time.monotonic()
        node.heartbeat_late = False
        if not node.online and node.offline_reason == "silent":
            node.online, node.offline_reason = True, None
            self.returned.add(node.id)
            return True
        return False

    def on_heartbeat(self, node_id: str, beat: NodeHeartbeat) -> bool:
        """A node's heartbeat; return True if what the console shows changed."""
        node = self.nodes[node_id]
        if beat.boot_id != node.boot_id:
            return False   # a boot whose birth we have not seen: its birth comes first
        before = (node.online, node.heartbeat_late, node.autonomous, node.outbox)
        node.last_seen = time.time()
        self._heard(node)
        node.autonomous, node.outbox = beat.autonomous, beat.outbox
        return (node.online, node.heartbeat_late, node.autonomous, node.outbox) != before

    def check_silence(self, now: float, *, listening_since: float = 0.0) -> tuple[list[str], bool]:
        """Declare offline the nodes silent for longer than their limit.

        *now* is monotonic; silence is counted from *listening_since* at most (the
        controller's own connection: it cannot have heard anyone before). Return the nodes
        declared offline now, and whether any ``heartbeat_late`` changed.
        """
        gone: list[str] = []
        late_changed = False
        for node in self.nodes.values():
            if not node.online or node.keepalive is None or node.heard_at is None:
                continue
            silent = now - max(node.heard_at, listening_since)
            if silent > node_silence_limit(keepalive=node.keepalive, heartbeat=node.heartbeat):
                node.online, node.offline_reason, node.heartbeat_late = False, "silent", False
                self.returned.discard(node.id)
                gone.append(node.id)
                continue
            late = node.heartbeat is not None and silent > 2 * node.heartbeat
            if late != node.heartbeat_late:
                node.heartbeat_late, late_changed = late, True
        return gone, late_changed

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
        if event.boot_id == node.boot_id:
            self._heard(node)
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
                       "booted_at": n.booted_at, "reboots": n.reboots,
                       "offline_reason": n.offline_reason, "keepalive": n.keepalive,
                       "heartbeat_late": n.heartbeat_late, "autonomous": n.autonomous,
                       "outbox": n.outbox}
                      for n in self.nodes.values()],
            "props": [{"node": p.node, "id": p.id, "kind": p.kind, "label": p.label,
                       "reported": p.reported, "ack": p.ack, "last_event": p.last_event}
                      for p in self.props.values()],
        }
