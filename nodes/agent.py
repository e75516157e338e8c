"""The node agent: the program on each room's Raspberry Pi — a thin shell around the core.

Every rule of a node is in :class:`nodes.core.NodeCore` (synchronous, no threads); the
shell gives it the world: the props on gpiozero (``nodes/build.py``), the data dir, the
MQTT client on paho's own loop (``nodes/transport.py``) and one worker thread that owns the
core (``nodes/worker.py``). The callbacks only hand over, in order, to the worker — except
the release lane: an ``unlock`` of a maglock, the apartment's emergency and the emergency
input release the relays **first**, in the thread they arrive in, with no lock taken, then
the core does the books under its lock. Threads, the lock and why: docs/architecture.md,
"Inside a node".
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from gpiozero import Button, Factory

from config.game import Game, Node, NodePart
from nodes import gamefile
from nodes.build import build_core, build_props, close_props
from nodes.core import NodeCore
from nodes.datadir import DataDir
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
from nodes.outbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, Outbox
from nodes.ports import AgentPorts
from nodes.transport import PahoLoop, Transport
from nodes.worker import Worker
from props.base import Prop
from protocol import contract
from protocol.contract import (
    Command,
    ContractError,
    ControllerStatus,
    Emergency,
    Gesture,
    NodeGame,
    NodeStatus,
    Resync,
    TechRequest,
    Topics,
    is_release,
)
from protocol.mqtt import BrokerAddress, make_client

log = logging.getLogger(__name__)

#: messages from the broker waiting for the worker, at most (more are dropped, counted)
INBOX_MAX = 10_000
#: how often a full inbox is logged (every message dropped is counted)
_INBOX_FULL_LOG_EVERY = 1000
#: a maglock's commands applied in paho's thread when no message waits ahead of them
_AT_ONCE = frozenset({"lock", "unlock"})


class NodeAgent:
    """Runs one room: props on gpiozero, MQTT to the controller.

    >>> agent = NodeAgent(game=game, node_id="hall", broker=BrokerAddress("127.0.0.1", 1883),
    ...                   pin_factory=MockFactory(), simulate=True, data_dir="/var/lib/escape/hall")
    >>> agent.start()        # builds the props (relays start unlocked) and connects
    >>> agent.stop()         # unlocks, says offline, disconnects

    *game* is the game file, or this node's part of it; the part the controller gave last,
    kept in the data dir, wins over it at start (``nodes/gamefile.py``). *data_dir* holds
    what the node keeps across its restarts (``nodes/datadir.py``: the outbox, the game
    view, the boot counter, an uncleared emergency, the game part); default: a temporary
    directory removed at :meth:`stop` (the CLI always gives one outside simulation);
    *keepalive* is the MQTT keepalive: the broker publishes our last will 1.5 times that
    after we went silent; *transport* builds the network loop on the paho client (paho's
    own by default; the bench measures another: docs/performance.md, "Node transport");
    *health_root* is where the Pi's health is read (``nodes/health.py``: ``/`` by default, a
    folder of fake sensor files in tests; a simulated node reads no sensor without one).
    """

    def __init__(self, *, game: Game | NodePart, node_id: str, broker: BrokerAddress,
                 pin_factory: Factory | None = None, simulate: bool = False,
                 keepalive: int = 5, data_dir: Path | str | None = None,
                 outbox_max_events: int = DEFAULT_MAX_EVENTS,
                 outbox_max_bytes: int = DEFAULT_MAX_BYTES,
                 transport: Callable[..., Transport] = PahoLoop,
                 health_root: Path | str | None = None) -> None:
        if isinstance(game, Game):
            if game.node(node_id) is None:
                known = ", ".join(n.id for n in game.nodes)
                msg = f"node {node_id!r} is not in the game file (known: {known})"
                raise ValueError(msg)
            game = game.part(node_id)
        elif game.node.id != node_id:
            msg = f"the game part given is node {game.node.id!r}'s, not {node_id!r}'s"
            raise ValueError(msg)
        #: the part of the game this node runs (replaced by the controller's, between games)
        self.part: NodePart = game
        self.node: Node = game.node
        self.broker = broker
        self.topics = Topics(game.apartment.id)
        self.pin_factory, self.simulate, self.keepalive = pin_factory, simulate, keepalive
        self._transport_factory = transport
        self.boot_id = contract.new_id()
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.health_root = Path(health_root) if health_root is not None else None
        self.props: dict[str, Prop] = {}
        self.simulators: dict[str, Any] = {}
        self.metrics: Counter[str] = Counter()
        self.connected = threading.Event()
        #: the core, built at :meth:`start` (its data comes from the data dir)
        self.core: NodeCore | None = None
        #: called after each message from the broker is handled (from the worker thread, or
        #: paho's for a maglock's command applied at once); for tests and tools
        self.on_handled: Callable[[contract.TopicParts, Any], None] | None = None
        self._outbox_limits = (outbox_max_events, outbox_max_bytes)
        self._lock = threading.RLock()   # the core's: a prop may call back while applying
        self._ports = AgentPorts(self.node, self.topics, self.props, self.simulators, self.metrics)
        self._ports.rebuilder = self._rebuild
        self._worker = Worker(name=f"node-{node_id}-worker", handle=self._work_on,
                              tick=self._tick, max_messages=INBOX_MAX)
        self._received = 0
        self._own_tmp_dir: Path | None = None
        self._emergency_input: Button | None = None
        self._stopped = threading.Event()

    # -- what the node knows (the core's) ---------------------------------------------
    def _core(self) -> NodeCore:
        if self.core is None:
            msg = "the agent is not started"
            raise RuntimeError(msg)
        return self.core

    @property
    def boot_n(self) -> int:
        """The boot counter, from the data dir at start (1 until then)."""
        return self.core.identity.boot_n if self.core is not None else 1

    @property
    def outbox(self) -> Outbox:
        return self._core().outbox

    @property
    def emergency(self) -> Emergency | None:
        """The apartment's emergency while active (cleared only by an explicit clear)."""
        return self._core().gate.emergency

    @property
    def controller_online(self) -> bool:
        return self._core().link.online

    @property
    def autonomous(self) -> bool:
        """True while the node runs its local puzzles on its own."""
        with self._lock:
            return self._core().autonomous(time.monotonic())

    @property
    def client(self) -> mqtt.Client | None:
        """The paho client, once started: for tools and benches that watch the wire."""
        return self._ports.client

    @property
    def client_id(self) -> str:
        """The node's MQTT client id: the same at every boot (``nodes/identity.py``)."""
        return f"{self.topics.apartment_id}-{self.node.id}"

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until the worker has handled everything handed to it before this call (the
        props' events and state changes, the messages received); False after *timeout*."""
        return self._worker.wait_idle(timeout)

    def status(self) -> dict[str, Any]:
        """What this node knows, for logs and the technician."""
        with self._lock:
            known = self._core().status(now=time.monotonic())
            props = {pid: json.loads(json.dumps(p.state, default=str))
                     for pid, p in self.props.items()}
        return {"node": self.node.id, "boot_id": self.boot_id, "boot_n": self.boot_n,
                "connected": self.connected.is_set(), **known, "props": props}

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> None:
        """Build the props and connect (in the background: works with no broker yet)."""
        data = self._open_data_dir()
        digest = self._build_start_part(data)
        try:
            self.core = build_core(self.part, self.node, data=data, ports=self._ports,
                                   boot_id=self.boot_id, keepalive=self.keepalive,
                                   simulated=self.simulate, outbox_limits=self._outbox_limits,
                                   metrics=self.metrics, game=digest,
                                   health_root=self.health_root)
        except Exception:
            self._close_props()   # a node that fails halfway leaves no relay driven
            raise
        if self._emergency_input is not None:   # its handler needs the core
            self._emergency_input.when_pressed = self._emergency_pressed
        self._worker.start()
        # NOTE: the same client id at every boot: the broker closes an old connection of
        # this node (a half-open socket of a boot that just died) and delivers its will
        # *before* it accepts ours, so the old will cannot land after our birth.
        client = make_client(self.client_id, self.broker,
                             will_topic=self.topics.node_status(self.node.id),
                             will_payload=self._core().identity.will())
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.connect_async(self.broker.host, self.broker.port, keepalive=self.keepalive)
        transport = self._transport_factory(client, name=f"node-{self.node.id}-mqtt")
        self._ports.client, self._ports.transport = client, transport
        transport.start()

    def stop(self) -> None:
        """Open the locks, say offline, disconnect; safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._worker.stop()   # first: nothing may answer our own offline status with a birth
        client, transport = self._ports.client, self._ports.transport
        if client is not None and transport is not None and self.core is not None \
                and client.is_connected():
            info = transport.publish(self.topics.node_status(self.node.id),
                                     self.core.identity.will(), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError):
                log.warning("offline status of %s not confirmed", self.node.id)
        if transport is not None:
            transport.stop()   # DISCONNECT (the broker keeps the will to itself)
        self._ports.close()
        self._close_props()
        with self._lock:
            if self.core is not None:
                self.core.outbox.close()
        if self._own_tmp_dir is not None:
            shutil.rmtree(self._own_tmp_dir, ignore_errors=True)

    def __enter__(self) -> NodeAgent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _open_data_dir(self) -> DataDir:
        directory = self.data_dir
        if directory is None:
            # NOTE: a temporary data dir survives broker and controller outages, not a
            # restart of the agent: for the demo and tests. The CLI always gives one
            # (nodes/datadir.py: default_data_dir).
            directory = self._own_tmp_dir = Path(tempfile.mkdtemp(prefix=f"escape-node-{self.node.id}-"))
            if not self.simulate:
                log.warning("node %s: no data dir; events queued in %s are lost if the agent "
                            "restarts", self.node.id, directory)
        data = self._ports.data = DataDir(directory, apartment=self.topics.apartment_id,
                                          node=self.node.id)
        return data

    # -- the props, and the game part they are built from --------------------------------
    def _build_start_part(self, data: DataDir) -> str:
        """Build the props of the part the controller gave last (kept in the data dir) or,
        when there is none or it cannot be built here, of the part given; its hash."""
        store = self._ports.part_store = gamefile.PartStore(
            data.path(gamefile.PART_FILE), apartment=self.topics.apartment_id, node_id=self.node.id)
        given = self.part.content_hash()
        kept = store.load()
        if kept is not None and kept.hash != given:
            try:
                self._build_props(kept.part.node)
            except Exception:
                log.exception("node %s: the kept game part %s cannot be built here; the given "
                              "one is used", self.node.id, kept.hash)
            else:
                log.warning("node %s: starts with game part %s, the last one the controller "
                            "gave (not the file's, %s)", self.node.id, kept.hash, given)
                self._use(kept.part)
                return kept.hash
        self._build_props(self.node)
        return given

    def _use(self, part: NodePart) -> None:
        self.part, self.node = part, part.node
        self._ports.node = part.node

    def _build_props(self, node: Node) -> None:
        """Build *node*'s props and emergency input, wired to this agent; on a failure close
        what was built (no relay left driven) and raise."""
        props, simulators = build_props(node, pin_factory=self.pin_factory, simulate=self.simulate)
        self.props.update(props)
        self.simulators.update(simulators)
        try:
            for prop_id, prop in self.props.items():
                prop.when_event = self._event_callback(prop_id)
                prop.when_state_changed = self._state_callback(prop_id)
            if node.emergency is not None:
                em = node.emergency
                self._emergency_input = Button(em.pin, pull_up=em.pull_up, bounce_time=0.05,
                                               pin_factory=self.pin_factory)
                if self.core is not None:
                    self._emergency_input.when_pressed = self._emergency_pressed
        except Exception:
            self._close_props()
            raise

    def _rebuild(self, part: NodePart) -> str | None:
        """The port's ``rebuild`` (``NodeCore`` asks, on the worker, under the core's lock):
        the old props closed first — every maglock released, no relay driven — then the
        new ones built (a maglock starts released); if they cannot be, the old ones again.
        None when done, else why not."""
        old = self.node
        self._close_props(rewire=True)
        try:
            self._build_props(part.node)
        except Exception as exc:
            log.exception("node %s: the props of the new game part cannot be built: the old "
                          "ones are built again", self.node.id)
            try:
                self._build_props(old)
            except Exception:
                log.exception("node %s: the old props cannot be built again either: the node "
                              "drives nothing until it is restarted", self.node.id)
            return f"props not built: {type(exc).__name__}: {exc}"
        self._use(part)
        return None

    def _close_props(self, *, rewire: bool = False) -> None:
        """Close every prop (a maglock releases as it closes) and the emergency input; to
        *rewire* them: forget them, and a simulated node's mock pins, so the next props may
        wire those pins anew."""
        if rewire:   # what the old props say as they close is news of nothing
            for prop in self.props.values():
                prop.when_event = prop.when_state_changed = None
        close_props(self.props.values())
        if self._emergency_input is not None:
            self._emergency_input.close()
        if not rewire:
            return
        self._emergency_input = None
        for simulator in self.simulators.values():
            try:
                simulator.close()
            except Exception:
                log.exception("closing the simulator of %s failed", simulator)
        self.props.clear()
        self.simulators.clear()
        reset = getattr(self.pin_factory, "reset", None)
        if self.simulate and callable(reset):
            reset()   # MockFactory: its pins and reservations

    # -- the release lane: at once, relays first, never behind the worker --------------
    def _emergency_pressed(self) -> None:
        core = self._core()
        core.lane.emergency_input()   # the doors first, held open: no lock taken
        with self._lock:              # then the news (only this button's thread waits)
            core.emergency_pressed(now=time.monotonic())

    def _on_emergency(self, emergency: Emergency, receipt: int) -> None:
        core = self._core()
        changed = core.lane.emergency(emergency, receipt=receipt)
        if changed or (emergency.active and core.gate.emergency is not None):
            self._worker.put_urgent(EmergencyBooked(emergency, changed))

    def _command_at_once(self, prop_id: str, command: Command, receipt: int) -> bool:
        """A maglock's release always; a lock when no message waits ahead of it and the
        core is free this instant (never waiting for it: what follows may be an emergency);
        False: for the worker."""
        core = self.core
        if core is None or prop_id not in core.maglocks or self._stopped.is_set():
            return False
        if is_release(command.action):
            core.lane.release(prop_id, command, receipt=receipt)
            self._worker.put_urgent(Released(prop_id))
        elif command.action in _AT_ONCE and self._worker.no_message_waiting() \
                and self._lock.acquire(blocking=False):
            try:
                core.command(prop_id, command, receipt=receipt, now=time.monotonic())
            finally:
                self._lock.release()
        else:
            return False
        self.metrics["commands_now"] += 1
        if self.on_handled is not None:
            self.on_handled(contract.TopicParts("set", self.node.id, prop_id), command)
        return True

    # -- prop callbacks (gpiozero threads): hand over ------------------------------------
    def _event_callback(self, prop_id: str) -> Callable[[str, Any], None]:
        def on_event(event_type: str, value: Any) -> None:
            self._worker.put(Happened(prop_id, event_type, value))
        return on_event

    def _state_callback(self, prop_id: str) -> Callable[[], None]:
        def on_state() -> None:
            core = self.core
            # Whatever engaged a held maglock (a lock applied in the instant before an
            # emergency, a pulse's relock, a self-test's click): released again at once.
            if core is None or not core.lane.undo_if_held(prop_id):
                self._worker.put(StateChanged(prop_id))
        return on_state

    # -- MQTT callbacks (paho's thread): decode, then hand over -----------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason_code: Any, _properties: Any) -> None:
        if reason_code.is_failure:
            log.error("node %s: broker refused the connection: %s", self.node.id, reason_code)
            return
        # NOTE: subscribe first, then the birth (the worker's): the broker sends what its
        # retained messages were (the emergency, our old status) before it handles our
        # birth, so anything on our status topic after our birth's echo came later than it.
        client.subscribe([(t, contract.QOS) for t in self.topics.node_subscriptions(self.node.id)])
        self._worker.put(CONNECTED)
        log.info("node %s connected to %s:%s (boot %s)", self.node.id, self.broker.host,
                 self.broker.port, self.boot_id)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason_code: Any, _properties: Any) -> None:
        self.connected.clear()
        self._worker.put(DISCONNECTED)
        if not self._stopped.is_set():
            log.warning("node %s lost the broker (%s); reconnecting", self.node.id, reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._received += 1
        receipt = self._received
        try:
            payload, parts = decode(self.topics, self.node.id, message)
        except ContractError as exc:
            self.metrics["bad_payloads"] += 1
            log.warning("node %s dropped a message on %s: %s", self.node.id, message.topic, exc)
            return
        if payload is None:
            if parts.kind == "emergency" and self.core is not None and self.core.gate.emergency:
                log.warning("node %s: the retained emergency was deleted; still held until "
                            "an explicit clear", self.node.id)
            return
        try:
            if isinstance(payload, Emergency):
                self._on_emergency(payload, receipt)   # at once, before anything queued
                return
            if isinstance(payload, Command) and self._command_at_once(parts.prop or "", payload, receipt):
                return
        except Exception:
            # NOTE: nothing a message does may kill the node.
            self.metrics["handler_errors"] += 1
            log.exception("node %s failed to handle %s", self.node.id, message.topic)
            return
        item = Inbound(parts, payload, message.payload, bool(message.retain), receipt)
        if not self._worker.put_message(item):
            # NOTE: never a release nor the emergency (both are applied above, never queued).
            self.metrics["inbox_full"] += 1
            if self.metrics["inbox_full"] % _INBOX_FULL_LOG_EVERY == 1:
                log.warning("node %s: inbox full (worker busy): %s dropped (%d so far)",
                            self.node.id, message.topic, self.metrics["inbox_full"])

    # -- the worker: owns the core ---------------------------------------------------
    def _tick(self, now: float) -> float:
        with self._lock:
            return self._core().tick(now)

    def _work_on(self, item: Any) -> None:
        core = self._core()
        try:
            with self._lock:
                match item:
                    case Happened(prop, event_type, value):
                        core.prop_event(prop, event_type, value, now=time.monotonic())
                    case StateChanged(prop):
                        core.publish_state(prop)
                    case Released(prop):
                        core.released(prop)
                    case EmergencyBooked(emergency, changed):
                        core.emergency_booked(emergency, changed=changed)
                    case Inbound():
                        self._handle(core, item)
                    case "connected":
                        core.connected()
                        self.connected.set()
                    case "disconnected":
                        core.disconnected()
        except Exception:
            # NOTE: nothing a message or an event does may kill the node.
            self.metrics["handler_errors"] += 1
            log.exception("node %s failed to handle %s", self.node.id, item)
        if isinstance(item, Inbound) and self.on_handled is not None:
            self.on_handled(item.parts, item.payload)

    def _handle(self, core: NodeCore, message: Inbound) -> None:
        payload, prop_id, now = message.payload, message.parts.prop or "", time.monotonic()
        if isinstance(payload, Command):
            core.command(prop_id, payload, receipt=message.receipt, now=now)
        elif isinstance(payload, ControllerStatus):
            core.controller_status(payload, retained=message.retained, now=now)
        elif isinstance(payload, NodeStatus):
            core.own_status(payload, message.raw, now=now)
        elif isinstance(payload, Resync):
            core.resync()
        elif isinstance(payload, Gesture):
            self._ports.perform(prop_id, payload)
        elif isinstance(payload, TechRequest):
            self._ports.tech(payload, why_held=core.gate.why_held)
        elif isinstance(payload, NodeGame):
            core.game_offered(payload, message.raw)
