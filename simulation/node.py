"""One room's Raspberry Pi in the simulation: the node's real core on simulated props.

:class:`SimNode` is what ``nodes/agent.py`` is on a Pi, without threads: the same
:class:`~nodes.core.NodeCore`, built from the same data dir by the same
:func:`~nodes.build.build_core`, given the broker's messages the way the agent gives them:

* decoded at once (paho's thread in the agent); the apartment's emergency and a
  maglock's ``unlock`` go through the release lane there and then, the confirmation at
  the head of the worker's inbox; a ``lock`` is applied at once when no message waits
  and the worker is not busy;
* everything else — the props' events and state changes, the other messages, the
  connection going up or down — waits in the worker's inbox, handled in order, one item
  at a time, with the heartbeat between two (the worker's tick).

A stalled worker (a slow SD card) handles nothing and ticks no heartbeat until the stall
ends; the release lane goes on meanwhile, as on a Pi. The node's files (outbox, boot
counter, emergency, game view) are real files in its own directory: a restarted node reads
back what the crashed one left.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paho.mqtt.client import MQTT_ERR_SUCCESS

from config.game import Game, Node, NodePart
from nodes.autonomy import GameView, SavedView, Stamp
from nodes.build import build_core
from nodes.core import NodeCore
from nodes.datadir import DataDir
from nodes.gamefile import PART_FILE, PartStore
from nodes.inbound import (
    CONNECTED,
    DISCONNECTED,
    EmergencyBooked,
    Happened,
    Inbound,
    Released,
    StateChanged,
    decode,
)
from nodes.outbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS
from protocol import contract
from protocol.contract import (
    Command,
    ContractError,
    ControllerStatus,
    Emergency,
    NodeGame,
    NodeHealth,
    NodeStatus,
    Resync,
    Topics,
    is_release,
)
from protocol.mqtt import RECONNECT_MAX_S, RECONNECT_MIN_S
from simulation.client import SimClient
from simulation.props import SimProp, build_node

if TYPE_CHECKING:
    from simulation.observer import Observer
    from simulation.sources import Sources
    from simulation.world import World

#: the node's MQTT keepalive (the agent's default)
KEEPALIVE = 5
#: how long the worker takes over one item (s)
WORK_S = 0.0002


class SimPorts:
    """The core's port (``nodes.core.Ports``) on the simulated props and client."""

    def __init__(self, node: SimNode) -> None:
        self.node = node
        self.data: DataDir | None = None
        self.saved_view: SavedView | None = None
        self.part_store: PartStore | None = None

    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                qos: int = contract.QOS) -> bool:
        client = self.node.client
        if client is None or not client.is_connected():
            return False
        return client.publish(topic, payload, qos=qos, retain=retain).rc == MQTT_ERR_SUCCESS

    def apply(self, prop: str, action: str, params: Mapping[str, Any]) -> None:
        target = self.node.props[prop]
        if action == "reset":
            target.reset()
        else:
            target.apply(action, dict(params))

    def state(self, prop: str) -> Mapping[str, Any]:
        return self.node.props[prop].state()

    def engaged(self, prop: str) -> bool:
        return bool(getattr(self.node.props[prop], "engaged", False))

    def save_emergency(self, emergency: Emergency | None) -> None:
        if self.data is not None:
            self.data.save_emergency(emergency)

    def save_view(self, view: GameView, *, controller_boot: str | None) -> None:
        if self.saved_view is not None:
            self.saved_view.save(view, controller_boot=controller_boot, at=self.node.stamp())

    def rebuild(self, part: NodePart) -> str | None:
        # The simulated props are the flat's wiring, built once: a part naming the same
        # props is taken, another refused (the node keeps the one it runs), as a Pi whose
        # new props cannot be built.
        if part.node != self.node.node:
            return "the simulated props are not rebuilt"
        return None

    def save_part(self, raw: bytes) -> None:
        if self.part_store is not None:
            self.part_store.save(raw)

    def health(self) -> NodeHealth | None:
        # The simulated machine's, not the host's: deterministic.
        machine = self.node.machine
        return NodeHealth(system_boots=self.node.machine_boots, uptime_s=round(machine.monotonic(), 1),
                          counters={k: v for k, v in self.node.metrics.items() if v} or None)


class SimNode:
    """A room: its props (they outlive the node's process) and, while it runs, its core.

    *legacy_id*: the node connects with a client id naming its boot, as nodes did before
    it was made stable, so the broker never takes an old connection over (a boot cut off
    by a power cut keeps its half-open connection until the keepalive, and its will lands
    after the new boot's birth).
    """

    def __init__(self, world: World, sources: Sources, game: Game, node: Node, directory: Path,
                 *, legacy_id: bool = False) -> None:
        self.world, self.sources, self.game, self.node = world, sources, game, node
        self.id = node.id
        self.scheduler = world.scheduler
        self.machine = world.machine(node.id)
        self.directory = directory
        self.legacy_id = legacy_id
        self.topics = Topics(game.apartment.id)
        self.props: dict[str, SimProp] = build_node(node, self.scheduler)
        self.core: NodeCore | None = None
        self.client: SimClient | None = None
        self.metrics: Counter[str] = Counter()
        self.starts = 0          # processes started
        self.machine_boots = 1   # the machine's own boots (the monotonic clock's epochs)
        self.stalled_until = 0.0
        self._life = 0           # which process a timer belongs to
        self._urgent: deque[Any] = deque()
        self._inbox: deque[Any] = deque()
        self._messages = 0       # broker messages waiting in the inbox
        self._work_timer = False
        self._next_tick = 0.0
        self._received = 0
        #: the gesture acting on the props now (the observer's number), and who to tell
        #: which event each gesture made
        self.cause: int | None = None
        self.observer: Observer | None = None
        self._causes: deque[int | None] = deque()

    # -- observation ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.core is not None

    def stamp(self) -> Stamp:
        return Stamp(wall=self.machine.time(), mono=self.machine.monotonic(),
                     os_boot=f"{self.id}-{self.machine_boots}")

    def maglocks(self) -> list[str]:
        return [pid for pid, p in self.props.items() if p.kind == "maglock"]

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        """A new process: the core from the data dir, the props' drivers, the connection."""
        if self.core is not None:
            return
        self.sources.enter(self.machine)
        self.starts += 1
        self._life += 1
        life = self._life
        ports = SimPorts(self)
        boot_id = contract.new_id()
        data = ports.data = DataDir(self.directory, apartment=self.game.apartment.id, node=self.id)
        ports.part_store = PartStore(data.path(PART_FILE), apartment=self.game.apartment.id,
                                     node_id=self.id)
        part = self.game.part(self.id)
        core = build_core(part, self.node, data=data, ports=ports,  # type: ignore[arg-type]
                          boot_id=boot_id, keepalive=KEEPALIVE, simulated=True,
                          outbox_limits=(DEFAULT_MAX_EVENTS, DEFAULT_MAX_BYTES),
                          metrics=self.metrics, game=part.content_hash(),
                          now=self.machine.monotonic(), at=self.stamp())
        self.core = core
        self.stalled_until = 0.0
        self._urgent.clear()
        self._inbox.clear()
        self._causes.clear()
        if self.observer is not None:   # events left by the last run, stamped again
            for entry in core.outbox:
                if entry.origin is not None:
                    cause = self.observer.event_causes.get((self.id, *entry.origin))
                    self.observer.emitted(self.id, core.boot_id, entry.event.seq, cause)
        self._messages, self._received, self._work_timer = 0, 0, False
        for prop in self.props.values():
            prop.boot(self._on_event, self._on_state)
        client_id = f"{self.game.apartment.id}-{self.id}"
        if self.legacy_id:
            client_id += f"-{boot_id}"
        client = SimClient(self.world.network, self.machine, client_id)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(10_000)
        client.will_set(self.topics.node_status(self.id), core.identity.will(), qos=1, retain=True)
        client.on_connect = lambda *a: self._enter(life) and self._on_connect(*a)
        client.on_disconnect = lambda *_a: self._enter(life) and self._put(DISCONNECTED)
        client.on_message = lambda _c, _u, m: self._enter(life) and self._on_message(m)
        self.client = client
        client.connect(keepalive=KEEPALIVE)
        self._next_tick = self.machine.monotonic()
        self.scheduler.call_soon(self._tick, life)

    def crash(self, *, power_cut: bool = False) -> None:
        """The process dies (the OS closes its socket: the broker publishes the will at
        once) or, with *power_cut*, the machine loses power: its connection stays half open
        until the broker's keepalive gives up on it, and the machine reboots."""
        if self.core is None:
            return
        self._life += 1
        if self.client is not None:
            if power_cut:
                self.client.pause()   # never resumed: nothing sent, nothing read
            else:
                self.client.crash()
        self.client = None
        if self.core is not None:
            self.core.outbox.close()
        self.core = None
        for prop in self.props.values():
            prop.power_off()
        if power_cut:
            self.machine.reboot()
            self.machine_boots += 1
        self.scheduler.log(self.id, "node power cut" if power_cut else "node process crashed")

    def stall(self, seconds: float) -> None:
        """The worker hangs (an SD card write): nothing handled, no heartbeat, for *seconds*."""
        if self.core is None:
            return
        self.stalled_until = max(self.stalled_until, self.scheduler.now + seconds)
        self.scheduler.call_at(self.stalled_until, self._unstall, self._life)

    def _unstall(self, life: int) -> None:
        if self._enter(life) and self.scheduler.now >= self.stalled_until:
            self._wake()
            self._tick(life)

    def _enter(self, life: int) -> bool:
        """A callback or timer of the running process (else: of a dead one, ignored)."""
        if life != self._life or self.core is None:
            return False
        self.sources.enter(self.machine)
        return True

    # -- the worker -------------------------------------------------------------------
    def _stalled(self) -> bool:
        return self.scheduler.now < self.stalled_until

    def _put(self, item: Any, *, urgent: bool = False) -> bool:
        (self._urgent if urgent else self._inbox).append(item)
        if isinstance(item, Inbound):
            self._messages += 1
        self._wake()
        return True

    def _wake(self) -> None:
        if not self._work_timer and not self._stalled() and (self._urgent or self._inbox):
            self._work_timer = True
            self.scheduler.call_later(WORK_S, self._work, self._life)

    def _work(self, life: int) -> None:
        if life != self._life:
            return
        self._work_timer = False
        if not self._enter(life) or self._stalled():
            return
        item = self._urgent.popleft() if self._urgent else self._inbox.popleft()
        if isinstance(item, Inbound):
            self._messages -= 1
        self._handle(item)
        self._wake()

    def _tick(self, life: int) -> None:
        if not self._enter(life) or self._stalled():
            return
        core = self.core
        assert core is not None
        now = self.machine.monotonic()
        if now >= self._next_tick:
            self._next_tick = core.tick(now)
        self.scheduler.call_later(max(self._next_tick - now, 0.001), self._tick, life)

    def _handle(self, item: Any) -> None:
        core = self.core
        assert core is not None
        now = self.machine.monotonic()
        match item:
            case Happened(prop, event_type, value):
                cause = self._causes.popleft() if self._causes else None
                seq = core.seq
                core.prop_event(prop, event_type, value, now=now)
                if self.observer is not None:
                    for emitted in range(seq + 1, core.seq + 1):
                        self.observer.emitted(self.id, core.boot_id, emitted, cause)
            case StateChanged(prop):
                core.publish_state(prop)
            case Released(prop):
                core.released(prop)
            case EmergencyBooked(emergency, changed):
                core.emergency_booked(emergency, changed=changed)
            case Inbound():
                self._handle_message(core, item, now)
            case "connected":
                core.connected()
            case "disconnected":
                core.disconnected()
            case "emergency_pressed":
                core.emergency_pressed(now=now)

    def _handle_message(self, core: NodeCore, message: Inbound, now: float) -> None:
        payload, prop = message.payload, message.parts.prop or ""
        if isinstance(payload, Command):
            core.command(prop, payload, receipt=message.receipt, now=now)
        elif isinstance(payload, ControllerStatus):
            core.controller_status(payload, retained=message.retained, now=now)
        elif isinstance(payload, NodeStatus):
            core.own_status(payload, message.raw, now=now)
        elif isinstance(payload, Resync):
            core.resync()
        elif isinstance(payload, NodeGame):
            core.game_offered(payload, message.raw)

    # -- the props' callbacks ---------------------------------------------------------
    def _on_event(self, prop: str, event_type: str, value: Any) -> None:
        cause = self.cause
        if cause is None and self.observer is not None:   # a button held long enough, a tag read again
            cause = self.observer.cause(f"{self.id}.{prop} {event_type}")
        self._causes.append(cause)
        self._put(Happened(prop, event_type, value))

    def _on_state(self, prop: str) -> None:
        if self.observer is not None:
            self.observer.moved[(self.id, prop)] = self.scheduler.now
        core = self.core
        if core is not None and not core.lane.undo_if_held(prop):
            self._put(StateChanged(prop))

    def press_emergency(self) -> None:
        """The room's emergency button: every maglock released at once, then the news."""
        core = self.core
        if core is None:
            return
        self.sources.enter(self.machine)
        core.lane.emergency_input()
        self._put("emergency_pressed", urgent=True)

    # -- the broker's messages (paho's thread in the agent) ---------------------------
    def _on_connect(self, client: SimClient, _userdata: Any, _flags: Any, reason_code: Any,
                    _properties: Any) -> None:
        if reason_code.is_failure:
            return
        client.subscribe([(t, contract.QOS) for t in self.topics.node_subscriptions(self.id)])
        self._put(CONNECTED)

    def _on_message(self, message: Any) -> None:
        core = self.core
        assert core is not None
        self._received += 1
        receipt = self._received
        try:
            payload, parts = decode(self.topics, self.id, message)
        except ContractError:
            self.metrics["bad_payloads"] += 1
            return
        if payload is None:
            return
        if isinstance(payload, Emergency):
            if self.observer is not None and payload.active:
                self.observer.releasing(self.id, self.maglocks(), emergency=payload.id)
            changed = core.lane.emergency(payload, receipt=receipt)
            if payload.active or changed:
                self._put(EmergencyBooked(payload, changed), urgent=True)
            return
        if isinstance(payload, Command) and parts.prop in core.maglocks:
            if is_release(payload.action):
                if self.observer is not None:
                    self.observer.releasing(self.id, [parts.prop], command=payload)
                core.lane.release(parts.prop, payload, receipt=receipt)
                self._put(Released(parts.prop), urgent=True)
                return
            if payload.action == "lock" and self._messages == 0 and not self._stalled():
                core.command(parts.prop, payload, receipt=receipt, now=self.machine.monotonic())
                return
        self._put(Inbound(parts, payload, message.payload, bool(message.retain), receipt))
