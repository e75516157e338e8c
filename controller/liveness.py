"""Which nodes are alive, which boot of each is current, and which events are new.

The rules of identity live in :class:`controller.registry.Registry`; this part feeds it
the nodes' births, wills, heartbeats, states and events, keeps each node's current boot
in the store (a reboot while no controller ran is still seen as one), declares a silent
node offline (like a last will), asks a node back without a birth to resync, and tells
the outputs when a node rebooted or came back.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable

from controller.context import Context
from controller.journal import Journal
from controller.mqtt import Incoming, MqttBridge
from controller.outputs import REACHED, Outputs
from controller.registry import Boot, EventVerdict
from controller.store import Store, StoreError
from protocol import contract
from protocol.contract import NodeStatus, PropEvent, PropState, Resync

log = logging.getLogger(__name__)

#: store meta key of each node's current boot (a reboot while no controller ran is seen)
BOOTS_META = "node_boots"
#: store meta key of the events handled, per node and boot (a restarted controller does
#: not apply again what the nodes replay because it was not acknowledged yet)
SEQS_META = "node_seqs"


def opened(reported: dict[str, object] | None) -> bool | None:
    """Whether a maglock's reported state shows it open (its relay let go); None: it says
    nothing of that."""
    key, value = REACHED["unlock"]
    if not reported or key not in reported:
        return None
    return reported[key] == value


class Liveness:
    """Births, wills, heartbeats and silences of the nodes; states and events admitted."""

    def __init__(self, ctx: Context, bridge: MqttBridge, journal: Journal, outputs: Outputs, *,
                 changed: Callable[[], None]) -> None:
        self.ctx = ctx
        self.bridge = bridge
        self.journal = journal
        self.outputs = outputs
        self.changed = changed
        #: prop events admitted (new ones, of known props), since start
        self.events_seen = 0
        #: each node's boot as last written to the store (see _save_boots)
        self._saved_boots: dict[str, tuple[str, int | None]] = {}

    # -- boots, in the store ------------------------------------------------------------
    def load_boots(self, store: Store) -> None:
        """Each node's boot as the last controller knew it."""
        registry = self.ctx.registry
        try:
            boots = json.loads(store.get_meta(BOOTS_META) or "{}")
            for node, (boot_id, boot_n) in boots.items():
                if isinstance(boot_id, str) and (boot_n is None or isinstance(boot_n, int)):
                    registry.remember(node, boot_id, boot_n)
            for node, seqs in json.loads(store.get_meta(SEQS_META) or "{}").items():
                registry.remember_handled(node, {str(b): int(s) for b, s in seqs.items()})
        except (sqlite3.Error, StoreError, ValueError, TypeError, AttributeError):
            log.exception("reading the nodes' last boots failed: every node starts unknown")
        self._saved_boots = registry.known_boots()

    def _save_boots(self) -> None:
        boots = self.ctx.registry.known_boots()
        if boots == self._saved_boots:
            return
        self._saved_boots = boots
        self.journal.meta(BOOTS_META, json.dumps(boots))

    # -- what the nodes say -------------------------------------------------------------
    def on_heartbeat(self, item: Incoming) -> bool:
        """A node's heartbeat; True when the console's view of it changed."""
        node = item.parts.node or ""
        if node not in self.ctx.registry.nodes:
            self.bridge.metrics["unknown_node"] += 1
            return False
        self.bridge.metrics["heartbeats"] += 1
        kind = self.ctx.registry.on_heartbeat(node, item.payload)
        if kind == Boot.STALE:
            self.bridge.metrics["stale_heartbeats"] += 1
            return False
        self._on_boot(node, kind, item.payload.boot_id, how="heartbeat")
        if self.ctx.registry.returned:
            self.watch()
        return kind != Boot.SAME

    def on_status(self, node: str, status: NodeStatus, *, live: bool = True) -> None:
        """A birth or a will."""
        kind = self.ctx.registry.on_status(node, status, live=live)
        if kind == Boot.STALE:
            self.bridge.metrics["stale_statuses"] += 1
        self._on_boot(node, kind, status.boot_id, how="birth" if status.online else "will")

    def on_state(self, node: str, prop: str, state: PropState, *, live: bool = True) -> None:
        """A prop's reported state: kept, and what it confirms of the desired state."""
        before = self.ctx.registry.props.get((node, prop))
        was_open = opened(before.reported) if before is not None else None
        info = self.ctx.registry.on_state(node, prop, state, live=live)
        if info is None:
            self.bridge.metrics["unknown_prop"] += 1
        elif info is False:
            self.bridge.metrics["stale_states"] += 1
        else:
            self.outputs.reported((node, prop), live=live)
            if (live and was_open is False and (node, prop) in self.ctx.maglocks
                    and opened(info.reported)):
                # its node says the lock let go (said live: a retained state is of the past)
                self.ctx.engine.lock_opened(node)

    def admit(self, node: str, prop: str, event: PropEvent) -> bool:
        """False for an event of an unknown prop or one already handled (registry: by boot
        and seq); a gap asks the node to resync."""
        registry = self.ctx.registry
        if (node, prop) not in registry.props and not (
                prop == contract.NODE_PROP and event.type in contract.NODE_EVENTS):
            # Before the registry: an event of an unknown prop must not move a seq.
            self.bridge.metrics["unknown_prop"] += 1
            return False
        verdict = registry.on_event(node, event)
        if verdict == EventVerdict.DUPLICATE:
            self.bridge.metrics["duplicate_events"] += 1
            return False
        # Written with the event's own rows (or the session it changes), not before: a
        # restarted controller skips what was handled, and only that.
        self.journal.backlog.meta(SEQS_META, json.dumps(registry.handled()))
        if verdict == EventVerdict.GAP:
            self.bridge.metrics["seq_gaps"] += 1
            self.bridge.publish(self.bridge.topics.node_resync(node), Resync(reason="seq gap").to_bytes())
        elif verdict == EventVerdict.OTHER_BOOT:
            self.bridge.metrics["other_boot_events"] += 1
        self.events_seen += 1
        return True

    def _on_boot(self, node: str, kind: Boot, boot_id: str, *, how: str) -> None:
        """What a birth, will or heartbeat changed in *node*'s identity."""
        if kind in (Boot.SAME, Boot.UPDATED):
            return
        self._save_boots()
        log.log(logging.WARNING if kind in (Boot.REBOOT, Boot.STALE, Boot.RETURN) else logging.INFO,
                "node %s: %s (%s of boot %s; current boot %s)", node, kind, how, boot_id,
                self.ctx.registry.nodes[node].boot_id)
        if kind == Boot.REBOOT:
            self.outputs.node_rebooted(node)
        if kind in (Boot.BIRTH, Boot.REBOOT, Boot.RETURN):
            self.outputs.node_back(node)

    # -- silences -----------------------------------------------------------------------
    def watch(self) -> None:
        """Declare silent nodes offline (like a last will); resync the ones back without a
        birth (what they reported meanwhile may not have reached us)."""
        registry = self.ctx.registry
        if self.bridge.connected and self.bridge.queue.empty():
            # NOTE: with messages still queued we are late, not the nodes: no verdict then.
            gone, late = registry.check_silence(self.ctx.clock(),
                                                listening_since=self.bridge.connected_at)
            for node in gone:
                self.bridge.metrics["silent_nodes"] += 1
                log.warning("node %s: nothing heard for %.1f s: offline", node,
                            self.ctx.clock() - (registry.nodes[node].heard_at or 0.0))
            if gone or late:
                self.changed()
        while registry.returned:
            node = registry.returned.pop()
            self.bridge.metrics["silent_returns"] += 1
            log.warning("node %s: back without a birth (boot %s): resync", node,
                        registry.nodes[node].boot_id)
            self.bridge.publish(self.bridge.topics.node_resync(node),
                                Resync(reason="back without a birth").to_bytes())
            self.outputs.node_back(node, confirm=False)
            self.changed()
