"""What the controller knows of the nodes: which boot is current, online or not, reported
prop states, clock offsets.

**Node identity**: births, wills, heartbeats and events of old and new boots may arrive
in any order (a retained will read by a controller that just started, an old boot's event
delivered after the new boot's birth); the rules that make the registry converge on the
truth whatever the order are written once, in docs/mqtt.md ("Node identity"), and
implemented here: :meth:`Registry._takes_over` (which boot is current), ``on_status``
(a will names its boot), ``on_heartbeat`` (a heartbeat proves its boot runs),
``on_event`` (events never change identity; dedup per boot).

Offline detection has two sources: the node's retained last will (the broker publishes it
when the connection ends without a goodbye), and the node's silence — no heartbeat and no
event for ``contract.node_silence_limit`` (1.2 × the keepalive its birth announced),
checked by :meth:`Registry.check_silence` from the controller's 0.2 s ticker. A node
offline (will or silence) is back online with the next live word of its current boot —
it is then put in :attr:`Registry.returned` and the service asks it for a resync — or
with a new boot.

Each node's clock offset (its heartbeat's ``ts`` against the controller's wall clock at
receipt, median of the last few) is shown to the technician; nothing is decided by it.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from config.game import Game
from protocol.contract import (
    GameRefusal,
    NodeHeartbeat,
    NodeStatus,
    PropEvent,
    PropState,
    node_silence_limit,
)

#: boots of one node (besides the current one) whose last seq is remembered, so their late
#: events are still deduplicated; and boots that were current once (a flip back is no reboot)
RECENT_BOOTS = 8
#: the current boot is silent (another may take its place) after this many heartbeat intervals
ALIVE_HEARTBEATS = 2
#: the technician page warns when a node's clock is off the controller's by more than this (s)
CLOCK_WARN_S = 2.0
#: heartbeats whose clock offsets are kept (the median is shown: one late heartbeat moves nothing)
CLOCK_SAMPLES = 5


class EventVerdict(StrEnum):
    NEW = "new"
    DUPLICATE = "duplicate"
    GAP = "gap"          # new, but some events before it were lost: resync
    OTHER_BOOT = "other_boot"   # new, of a boot that is not the current one: a replayed fact


class Boot(StrEnum):
    """What a birth, will or heartbeat did to what the controller knows of a node."""

    SAME = "same"        # the current boot, nothing the console shows changed
    UPDATED = "updated"  # the current boot; what the console shows changed
    BIRTH = "birth"      # the current boot's birth, or the first boot heard of
    REBOOT = "reboot"    # another boot took over (its birth, heartbeat or will): the node
    #                      restarted, its relays were released
    RETURN = "return"    # the current boot, or one current before, back after its will or silence
    OFFLINE = "offline"  # the will of the current boot (or of the first one heard of)
    STALE = "stale"      # another boot's message that takes nothing over: ignored


@dataclass(slots=True)
class NodeInfo:
    id: str
    label: str
    label_en: str | None = None   # the room's name in English, when the game file gives one
    online: bool = False
    boot_id: str | None = None
    #: the boot counter of the current boot (None: unknown, or an older node without one)
    boot_n: int | None = None
    version: str | None = None
    simulated: bool | None = None
    #: the controller's wall clock when it last heard the node live (birth, heartbeat, state, event)
    last_seen: float | None = None
    #: the controller's wall clock when the current boot was born (live birth) or adopted
    booted_at: float | None = None
    #: the current boot's birth time on the node's own clock (a retained birth: when we
    #: were not listening); shown through the clock offset, never compared with ours
    birth_ts: float | None = None
    last_seq: int = 0
    reboots: int = 0
    #: announced in its birth: MQTT keepalive and heartbeat interval (None: an older node)
    keepalive: float | None = None
    heartbeat: float | None = None
    #: monotonic time of the last birth, heartbeat or event of its current boot
    heard_at: float | None = None
    #: monotonic time of the last message of its current boot heard live (not a retained
    #: leftover read at subscription)
    spoke_at: float | None = None
    #: why it is offline: "will" (the broker said so) or "silent" (no heartbeat in time)
    offline_reason: str | None = None
    #: no heartbeat for two intervals (still online: the silence limit is not reached)
    heartbeat_late: bool = False
    #: from its last heartbeat: it plays its local puzzles alone; events in its outbox
    autonomous: bool | None = None
    outbox: int | None = None
    #: the last seq handled of other recent boots (their late events are deduplicated)
    other_seqs: dict[str, int] = field(default_factory=dict)
    #: boots that were current and were replaced (oldest first) and their counters: one of
    #: them taking over again is no reboot; their late states are ignored
    former: dict[str, int | None] = field(default_factory=dict)
    #: the boot a previous controller knew as current (from the store), until one is adopted
    remembered: tuple[str, int | None] | None = None
    #: the node's clock minus the controller's, per heartbeat of the current boot (s)
    clock_samples: deque[float] = field(default_factory=lambda: deque(maxlen=CLOCK_SAMPLES))
    #: the game part it runs (hash), the last it refused, one it keeps for the end of a
    #: game: from its birth (and heartbeat); controller/distribution.py compares them
    game: str | None = None
    game_refused: GameRefusal | None = None
    game_pending: str | None = None
    #: the Pi's last health report (a heartbeat's ``health``; kept across the agent's
    #: restarts: it is the Pi's) and the controller's wall clock when it came
    health: dict[str, Any] | None = None
    health_at: float | None = None

    @property
    def known(self) -> tuple[str, int | None] | None:
        """The current boot and its counter, else the one remembered from the store."""
        return (self.boot_id, self.boot_n) if self.boot_id is not None else self.remembered

    @property
    def clock_offset(self) -> float | None:
        """The node's clock minus the controller's (s): median of the last heartbeats (one
        of them, not a mean of two: a step shows once most samples have it)."""
        return statistics.median_low(self.clock_samples) if self.clock_samples else None


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


def _remember(table: dict[str, int], boot_id: str, seq: int) -> None:
    """Keep *boot_id*'s last seq in *table*, the most recent boots only."""
    table.pop(boot_id, None)
    table[boot_id] = seq
    while len(table) > RECENT_BOOTS:
        del table[next(iter(table))]


class Registry:
    def __init__(self, game: Game, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.clock, self.wall = clock, wall
        self.nodes: dict[str, NodeInfo] = {
            n.id: NodeInfo(n.id, n.label.fr, n.label.en) for n in game.nodes
        }
        self.props: dict[tuple[str, str], PropInfo] = {
            (n.id, p.id): PropInfo(n.id, p.id, p.kind, p.label or p.id)
            for n in game.nodes for p in n.props
        }
        #: nodes to ask for a resync: back after their will or silence without a birth, or a
        #: boot adopted from its heartbeat (its birth was missed)
        self.returned: set[str] = set()

    def for_game(self, game: Game) -> Registry:
        """A registry of *game* (a reloaded file) that keeps what this one knows of the
        nodes and props still there (online, boots, reported states), with their new labels."""
        registry = Registry(game, clock=self.clock, wall=self.wall)
        for node_id, info in self.nodes.items():
            if node_id in registry.nodes:
                info.label = registry.nodes[node_id].label
                info.label_en = registry.nodes[node_id].label_en
                registry.nodes[node_id] = info
        for key, prop in self.props.items():
            fresh = registry.props.get(key)
            if fresh is not None and fresh.kind == prop.kind:
                prop.label = fresh.label
                registry.props[key] = prop
        registry.returned = self.returned & set(registry.nodes)
        return registry

    # -- identity -----------------------------------------------------------------------
    def known_boots(self) -> dict[str, tuple[str, int | None]]:
        """Each node's current boot (what the next controller starts from)."""
        return {n.id: known for n in self.nodes.values() if (known := n.known) is not None}

    def remember(self, node_id: str, boot_id: str, boot_n: int | None) -> None:
        """The boot a previous controller knew as current: another one adopted here is a
        reboot — even one that happened while no controller ran — and that one is not."""
        node = self.nodes.get(node_id)
        if node is not None and node.boot_id is None:
            node.remembered = (boot_id, boot_n)

    def handled(self) -> dict[str, dict[str, int]]:
        """Per node, the last seq handled of its current boot and of the recent others (what
        the next controller must not apply again when the node replays them)."""
        out: dict[str, dict[str, int]] = {}
        for node in self.nodes.values():
            seqs = dict(node.other_seqs)
            if node.boot_id is not None:
                seqs[node.boot_id] = node.last_seq
            if seqs:
                out[node.id] = seqs
        return out

    def remember_handled(self, node_id: str, seqs: dict[str, int]) -> None:
        """What a previous controller had handled (:meth:`handled`): those events are
        duplicates here too."""
        node = self.nodes.get(node_id)
        if node is None or node.boot_id is not None:
            return
        for boot_id, seq in seqs.items():
            _remember(node.other_seqs, boot_id, max(seq, node.other_seqs.get(boot_id, 0)))

    def _silent(self, node: NodeInfo, now: float) -> bool:
        """The current boot is offline, or has said nothing for two heartbeat intervals."""
        if not node.online:
            return True
        if node.heartbeat is None or node.heard_at is None:
            return False   # an older node without heartbeats: its will says when it is gone
        return now - node.heard_at > ALIVE_HEARTBEATS * node.heartbeat

    def _takes_over(self, node: NodeInfo, boot_n: int | None, *, live: bool, birth: bool,
                    now: float) -> bool:
        """Does a boot that is not the current one become it? (Births and heartbeats.)"""
        known = node.known
        if known is None:
            return True
        counted = boot_n is not None and known[1] is not None and boot_n != known[1]
        if counted and boot_n > known[1]:  # type: ignore[operator]
            return True
        if counted:   # an older counter (its disk was replaced?): a live one, if ours is gone
            return live and self._silent(node, now)
        if live and birth:
            return True   # no counter to compare: the node has just connected with it
        return self._silent(node, now)   # no order known: only in place of a boot that is gone

    def _adopt(self, node: NodeInfo, boot_id: str, boot_n: int | None) -> Boot:
        """Make *boot_id* the current boot; return REBOOT (counted in ``reboots``), BIRTH
        (no boot known before) or RETURN (one current before: no reboot again)."""
        previous = node.known
        if previous is None:
            kind = Boot.BIRTH
        elif boot_id == previous[0] or boot_id in node.former:
            kind = Boot.RETURN
        else:
            kind = Boot.REBOOT
            node.reboots += 1
        if node.boot_id is not None:
            _remember(node.other_seqs, node.boot_id, node.last_seq)
        if previous is not None and previous[0] != boot_id:
            node.former.pop(previous[0], None)
            node.former[previous[0]] = previous[1]
            while len(node.former) > RECENT_BOOTS:
                del node.former[next(iter(node.former))]
        node.former.pop(boot_id, None)
        node.remembered = None
        node.boot_id, node.boot_n = boot_id, boot_n
        node.last_seq = node.other_seqs.pop(boot_id, 0)
        node.booted_at = node.birth_ts = node.spoke_at = None
        node.autonomous = node.outbox = None   # until this boot's first heartbeat
        node.clock_samples.clear()              # a rebooted Pi may have another clock
        node.game = node.game_refused = node.game_pending = None   # until this boot says
        return kind

    def _live(self, node: NodeInfo, now: float) -> bool:
        """The current boot spoke live; True if that brought it back online."""
        node.heard_at = node.spoke_at = now
        node.last_seen = self.wall()
        node.heartbeat_late = False
        if node.booted_at is None and node.birth_ts is None:
            node.booted_at = node.last_seen   # adopted without its birth: about now
        if not node.online:
            node.online, node.offline_reason = True, None
            return True
        return False

    def on_status(self, node_id: str, status: NodeStatus, *, live: bool = True) -> Boot:
        """Apply a birth or a will (*live*: not a retained leftover read at subscription)."""
        node = self.nodes[node_id]
        now = self.clock()
        if not status.online:
            known = node.known
            if known is not None and status.boot_id != known[0] and not (
                    status.boot_n is not None and known[1] is not None and status.boot_n > known[1]):
                return Boot.STALE  # the will of an older boot, arriving after the new birth
            kind = Boot.OFFLINE
            if status.boot_id != node.boot_id:
                # The first boot heard of, or a newer one whose birth we missed: it is gone.
                # A newer one replaced the boot we knew, whose relays were released: that is
                # a reboot, whichever of its will and its birth comes first.
                if self._adopt(node, status.boot_id, status.boot_n) == Boot.REBOOT:
                    kind = Boot.REBOOT
            elif status.boot_n is not None:
                node.boot_n = status.boot_n
            node.online, node.offline_reason = False, "will"
            node.heartbeat_late = False
            self.returned.discard(node_id)
            return kind
        kind = Boot.BIRTH
        if status.boot_id != node.boot_id:
            if not self._takes_over(node, status.boot_n, live=live, birth=True, now=now):
                return Boot.STALE
            kind = self._adopt(node, status.boot_id, status.boot_n)
            if kind == Boot.RETURN:
                kind = Boot.BIRTH   # with its birth: every state comes with it
        elif status.boot_n is not None:
            node.boot_n = status.boot_n
        node.version, node.simulated = status.version, status.simulated
        node.keepalive, node.heartbeat = status.keepalive, status.heartbeat
        node.game, node.game_refused, node.game_pending = (status.game, status.game_refused,
                                                           status.game_pending)
        node.online, node.offline_reason, node.heartbeat_late = True, None, False
        node.heard_at = now
        born_unseen = node.booted_at is None and node.birth_ts is None
        if live:
            node.spoke_at, node.last_seen = now, self.wall()
            if born_unseen:
                node.booted_at = node.last_seen
        elif born_unseen:
            node.birth_ts = status.ts   # born while we were not listening: its own clock
        self.returned.discard(node_id)   # a birth: the node publishes every state itself
        return kind

    def on_heartbeat(self, node_id: str, beat: NodeHeartbeat) -> Boot:
        """A node's heartbeat: proof that its boot runs now."""
        node = self.nodes[node_id]
        now = self.clock()
        kind = Boot.SAME
        if beat.boot_id != node.boot_id:
            if not self._takes_over(node, beat.boot_n, live=True, birth=False, now=now):
                return Boot.STALE
            kind = self._adopt(node, beat.boot_id, beat.boot_n)
            self.returned.add(node_id)   # its birth was missed: ask for it and every state
        elif beat.boot_n is not None and node.boot_n is None:
            node.boot_n = beat.boot_n
        before = (node.online, node.heartbeat_late, node.autonomous, node.outbox, self._skewed(node),
                  node.game, node.health)
        if self._live(node, now) and kind == Boot.SAME:
            kind = Boot.RETURN
            self.returned.add(node_id)
        node.autonomous, node.outbox = beat.autonomous, beat.outbox
        if beat.game is not None:
            node.game = beat.game
        if beat.health is not None:
            node.health, node.health_at = beat.health.model_dump(), self.wall()
        if beat.ts is not None:
            node.clock_samples.append(beat.ts - self.wall())
        after = (node.online, node.heartbeat_late, node.autonomous, node.outbox, self._skewed(node),
                 node.game, node.health)
        if kind == Boot.SAME and after != before:
            kind = Boot.UPDATED
        return kind

    @staticmethod
    def _skewed(node: NodeInfo) -> bool:
        offset = node.clock_offset
        return offset is not None and abs(offset) > CLOCK_WARN_S

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

    # -- states and events --------------------------------------------------------------
    def on_state(self, node_id: str, prop_id: str, state: PropState, *,
                 live: bool = True) -> PropInfo | bool | None:
        """Apply a reported state; None for an unknown prop, False for the state of a boot
        the current one replaced (delivered late: what it reported is no longer true)."""
        prop = self.props.get((node_id, prop_id))
        if prop is None:
            return None
        if state.boot_id is not None and state.boot_id in self.nodes[node_id].former:
            return False
        prop.reported, prop.ack, prop.updated = state.fields, state.ack, self.wall()
        if live:   # a retained state read at subscription says nothing of now
            self.nodes[node_id].last_seen = prop.updated
        return prop

    def on_event(self, node_id: str, event: PropEvent) -> EventVerdict:
        """Deduplicate *event*; it never changes which boot is current."""
        node = self.nodes[node_id]
        if event.boot_id != node.boot_id:
            # A late event of an older boot (or of a newer one not heard live yet): a fact
            # to apply once, not a sign of which boot runs.
            if event.seq <= node.other_seqs.get(event.boot_id, 0):
                return EventVerdict.DUPLICATE
            _remember(node.other_seqs, event.boot_id, event.seq)
            return EventVerdict.OTHER_BOOT
        if self._live(node, self.clock()):
            self.returned.add(node_id)
        if event.seq <= node.last_seq:
            return EventVerdict.DUPLICATE
        gap = event.seq > node.last_seq + 1
        node.last_seq = event.seq
        return EventVerdict.GAP if gap else EventVerdict.NEW

    # -- views --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "nodes": [self._node_view(n) for n in self.nodes.values()],
            "props": [{"node": p.node, "id": p.id, "kind": p.kind, "label": p.label,
                       "reported": p.reported, "ack": p.ack, "last_event": p.last_event}
                      for p in self.props.values()],
        }

    def _node_view(self, n: NodeInfo) -> dict[str, Any]:
        offset = n.clock_offset
        booted_at = n.booted_at
        if booted_at is None and n.birth_ts is not None and offset is not None:
            booted_at = n.birth_ts - offset   # its own clock, brought to ours
        return {"id": n.id, "label": n.label, "label_en": n.label_en, "online": n.online,
                "boot_id": n.boot_id,
                "boot_n": n.boot_n, "version": n.version, "simulated": n.simulated,
                "last_seen": n.last_seen, "booted_at": booted_at, "reboots": n.reboots,
                "offline_reason": n.offline_reason, "keepalive": n.keepalive,
                "heartbeat_late": n.heartbeat_late, "autonomous": n.autonomous,
                "outbox": n.outbox,
                "clock_offset": None if offset is None else round(offset, 3),
                "clock_skewed": self._skewed(n), "health": n.health, "health_at": n.health_at}
