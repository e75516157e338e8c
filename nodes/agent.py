"""The node agent: the program on each room's Raspberry Pi.

It builds the room's props from the game file on gpiozero, reports their events and
states over MQTT, applies the controller's commands, and keeps its doors safe on its own:

* a retained birth with a fresh ``boot_id`` on every connect, a retained last will;
* events carry ``seq`` (+1 per event within a boot) so the controller can drop
  duplicates and see gaps; states are retained and carry the id of the last command
  applied (``ack``);
* commands are applied at most once (id remembered), dropped when expired or for another
  session; nothing received is ever trusted: bad payloads are counted and dropped;
* an emergency input (if configured) opens this node's locks locally before telling
  anyone; it needs neither broker nor controller;
* events wait in an on-disk outbox (``nodes/outbox.py``) until the controller
  acknowledges them: while the broker or the controller is away they are queued, and
  delivered in order, marked ``replayed``, once a *live* controller is back;
* when the controller has been silent for ``apartment.autonomy_after_s`` during a game,
  the node solves its local puzzles itself (``nodes/autonomy.py``) and opens their locks;
  the last game view the controller gave is kept on disk, so a node rebooted while the
  controller is away still knows a game runs;
* a heartbeat (QoS 0) every keepalive / 3 lets the controller see a hung or cut-off node
  offline within 1.2 × keepalive, and tells the console whether the node plays alone and
  how many events wait in its outbox.

Delivery rule: an event is published at once only when the broker is connected and the
controller has shown it is alive on this connection (a status received after our
subscription, not a retained leftover, and heartbeats not overdue). Otherwise it waits.
A lock the node opened on its own (emergency input, local puzzle) is *held* open: the
node refuses to lock it again until the controller has acknowledged the event that says
why it opened — so a controller that comes back and reconciles an old desired state
cannot relock a door before it has heard of the emergency.

The paho network thread only decodes messages and hands them to a worker thread
(``_inbox``); props call back from gpiozero threads. Events, the outbox, holds and
commands share one lock (``_events_lock``), so seq order is wire order and a command can
never slip between an emergency release and its hold.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from gpiozero import Button, Factory

from config.game import Game, Puzzle
from nodes import contract
from nodes.autonomy import GameView, LocalPuzzles, SavedView
from nodes.contract import (
    NODE_PROP,
    Command,
    ContractError,
    ControllerStatus,
    Emergency,
    EventAck,
    Gesture,
    NodeHeartbeat,
    NodeStatus,
    PropEvent,
    PropInfo,
    PropState,
    Resync,
    TechReply,
    TechRequest,
    Topics,
)
from nodes.mqtt import BrokerAddress, NetworkThread, make_client
from nodes.outbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, Outbox
from props.base import Prop
from props.exc import PropError
from props.factory import build_prop
from props.maglock import Maglock

log = logging.getLogger(__name__)

VERSION = "0.1.0"
_APPLIED_IDS_KEPT = 1024
#: heartbeats missed before the node stops trusting the controller to be listening
_HEARTBEATS_MISSED = 3


@dataclass(frozen=True, slots=True)
class _Inbound:
    """A validated message, as the paho thread hands it to the worker."""

    parts: contract.TopicParts
    payload: Any
    retained: bool
    epoch: int            # which connection it came in on (1 = the first)


#: put in the inbox by ``_on_connect``: a new connection is up
_CONNECTED = "connected"
#: commands applied in paho's thread, not handed to the worker (see NodeAgent._command_now)
_COMMANDS_NOW = frozenset({"lock", "unlock"})


@dataclass(slots=True)
class _ControllerLink:
    """What the node knows of the controller (worker thread, under ``_events_lock``)."""

    started_at: float
    seen: bool = False                  # any status ever: else there is nobody to wait for
    boot_id: str | None = None
    heartbeat: float | None = None
    acks_supported: bool = False
    last_heard: float | None = None     # monotonic time of the last *live* status
    resend_due: bool = False            # send every unacknowledged event again
    status_epoch: int = 0               # the connection of the last status seen
    confirmed_epoch: int = 0            # the connection on which everything was last resent


class NodeAgent:
    """Runs one room: props on gpiozero, MQTT to the controller.

    >>> agent = NodeAgent(game=game, node_id="hall", broker=BrokerAddress("127.0.0.1", 1883),
    ...                   pin_factory=MockFactory(), simulate=True, data_dir="/var/lib/escape/hall")
    >>> agent.start()        # builds the props (relays start unlocked) and connects
    >>> agent.stop()         # unlocks, says offline, disconnects

    *data_dir* holds the outbox of events not yet acknowledged (default: a temporary
    directory, removed at :meth:`stop`); *keepalive* is the MQTT keepalive: the broker
    publishes our last will 1.5 times that after we went silent.
    """

    def __init__(self, *, game: Game, node_id: str, broker: BrokerAddress,
                 pin_factory: Factory | None = None, simulate: bool = False,
                 keepalive: int = 5, data_dir: Path | str | None = None,
                 outbox_max_events: int = DEFAULT_MAX_EVENTS,
                 outbox_max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        node = game.node(node_id)
        if node is None:
            known = ", ".join(n.id for n in game.nodes)
            msg = f"node {node_id!r} is not in the game file (known: {known})"
            raise ValueError(msg)
        self.game = game
        self.node = node
        self.topics = Topics(game.apartment.id)
        self.broker = broker
        self.pin_factory = pin_factory
        self.simulate = simulate
        self.keepalive = keepalive
        self.boot_id = contract.new_id()
        self.props: dict[str, Prop] = {}
        self.simulators: dict[str, Any] = {}
        #: the simulated hand (simulate mode): a gesture takes time (a button held 2 s, a
        #: code typed key by key) and must not hold up the commands queued behind it
        self._hand: ThreadPoolExecutor | None = None
        self.metrics: Counter[str] = Counter()
        self.session: str | None = None
        self.controller_online = False
        self.connected = threading.Event()
        self.autonomy_after_s = game.apartment.autonomy_after_s
        self.local = LocalPuzzles(game=game, node_id=node_id)
        self.view = GameView()
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._outbox_limits = (outbox_max_events, outbox_max_bytes)
        self.outbox: Outbox | None = None
        #: the last game view the controller gave, kept on disk for a reboot without it
        self.saved_view: SavedView | None = None
        self._own_tmp_dir: Path | None = None
        self._acks: dict[str, str] = {}
        self._applied: OrderedDict[str, None] = OrderedDict()
        self._seq = 0
        # RLock: a prop may emit an event while it applies a command we hold the lock for.
        self._events_lock = threading.RLock()
        self._inbox: queue.Queue[_Inbound | str | None] = queue.Queue(maxsize=10_000)
        self._ctl = _ControllerLink(started_at=time.monotonic())
        self._controller_clock = contract.ControllerClock()
        self._autonomous = False
        self._holds: dict[str, int] = {}   # maglock -> seq that must be acknowledged first
        self._previous_boots: set[str] = set()
        # -- the connection (paho thread writes, under _conn_lock) --
        self._conn_lock = threading.Lock()
        self._epoch = 0
        self._confirmed = False
        self._worker: threading.Thread | None = None
        self._emergency: Button | None = None
        self._client: mqtt.Client | None = None
        self._net: NetworkThread | None = None
        self._stopped = threading.Event()
        #: called after each message is handled (from the worker thread, or paho's for a
        #: lock command applied at once: _command_now); for tests and tools
        self.on_handled: Callable[[contract.TopicParts, Any], None] | None = None

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> None:
        """Build the props and connect (in the background: works with no broker yet)."""
        self._build_props()
        self._open_outbox()
        self._worker = threading.Thread(target=self._work, name=f"node-{self.node.id}-worker",
                                        daemon=True)
        self._worker.start()
        threading.Thread(target=self._beat, name=f"node-{self.node.id}-heartbeat", daemon=True).start()
        will = NodeStatus(online=False, boot_id=self.boot_id).to_bytes()
        client = make_client(f"{self.game.apartment.id}-{self.node.id}-{self.boot_id}", self.broker,
                             will_topic=self.topics.node_status(self.node.id), will_payload=will)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        client.connect_async(self.broker.host, self.broker.port, keepalive=self.keepalive)
        # NOTE: not loop_start(): a publish is written by the thread that makes it (a
        # keypad's code is on the wire before emit returns: docs/performance.md, fix 11).
        self._net = NetworkThread(client, name=f"node-{self.node.id}-mqtt")
        self._net.start()

    def stop(self) -> None:
        """Open the locks, say offline, disconnect; safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._inbox.put(None)
        client, net = self._client, self._net
        if client is not None and net is not None and client.is_connected():
            info = net.publish(self.topics.node_status(self.node.id),
                               NodeStatus(online=False, boot_id=self.boot_id).to_bytes(),
                               qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError):
                log.warning("offline status of %s not confirmed", self.node.id)
        if net is not None:
            net.stop()   # DISCONNECT (the broker keeps the will to itself), thread ended
        if self._worker is not None:
            self._worker.join(timeout=2)
        if self._hand is not None:
            self._hand.shutdown(wait=False, cancel_futures=True)
        self._close_props()
        with self._events_lock:
            if self.outbox is not None:
                self.outbox.close()
        if self._own_tmp_dir is not None:
            shutil.rmtree(self._own_tmp_dir, ignore_errors=True)

    def __enter__(self) -> NodeAgent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _build_props(self) -> None:
        try:
            for declared in self.node.props:
                config = declared
                if self.simulate:
                    from props.sim import prepare

                    simulator = prepare(declared, self.pin_factory)
                    self.simulators[declared.id] = simulator
                    config = simulator.config
                prop = build_prop(config, pin_factory=self.pin_factory)
                prop.when_event = self._event_callback(config.id)
                prop.when_state_changed = self._state_callback(config.id)
                self.props[config.id] = prop
            if self.node.emergency is not None:
                em = self.node.emergency
                self._emergency = Button(em.pin, pull_up=em.pull_up, bounce_time=0.05,
                                         pin_factory=self.pin_factory)
                self._emergency.when_pressed = self._emergency_pressed
        except Exception:
            # NOTE: a node that fails halfway must not leave a relay it already built driven.
            self._close_props()
            raise

    def _open_outbox(self) -> None:
        """Open the outbox; queue what an earlier run left there as events of this boot."""
        directory = self.data_dir
        if directory is None:
            # NOTE: a temporary outbox survives broker and controller outages, not a restart
            # of the agent; production nodes get a data dir (ESCAPE_DATA_DIR, systemd's
            # StateDirectory).
            directory = self._own_tmp_dir = Path(tempfile.mkdtemp(prefix=f"escape-node-{self.node.id}-"))
            if not self.simulate:
                log.warning("node %s: no data dir; events queued in %s are lost if the agent "
                            "restarts", self.node.id, directory)
        max_events, max_bytes = self._outbox_limits
        box = Outbox(path=directory / f"{self.game.apartment.id}-{self.node.id}.outbox.jsonl",
                     max_events=max_events, max_bytes=max_bytes)
        leftovers = box.take_leftovers()
        saved = SavedView(directory / f"{self.game.apartment.id}-{self.node.id}.game.json")
        # A game the controller said was running, if recent: a node rebooted while the
        # controller is away still plays its local puzzles (the controller's will says nothing
        # of the game). A game lasts at most duration_min; the view is refreshed every minute.
        view = saved.load(max_age_s=self.game.apartment.duration_min * 60)
        with self._events_lock:
            self.saved_view = saved
            if view is not None:
                self.view, self.session = view, view.session
                self.local.new_session(view.session)
                self.metrics["game_view_restored"] += 1
                log.warning("node %s: a game was running when the controller was last heard "
                            "(session %s): local puzzles stay playable", self.node.id, view.session)
            self.outbox = box
            # Events an earlier run could not deliver: same order, re-stamped with this
            # boot's seq (the controller dedups per boot), marked replayed. What the
            # controller acknowledged for the old boot is pruned at its first status.
            for prop_id, event, _older_origin in leftovers:
                # The boot it was last stamped with is the one a controller may have acked.
                self._seq += 1
                self._previous_boots.add(event.boot_id)
                box.append(prop_id, event.model_copy(update={
                    "boot_id": self.boot_id, "seq": self._seq, "replayed": True}),
                    sent=False, origin=(event.boot_id, event.seq))
        if leftovers:
            self.metrics["leftover_events"] += len(leftovers)
            log.warning("node %s: %d events left by an earlier run will be delivered",
                        self.node.id, len(leftovers))
        if box.corrupt_lines:
            self.metrics["outbox_corrupt_lines"] += box.corrupt_lines

    def _close_props(self) -> None:
        for prop in self.props.values():
            try:
                prop.close()
            except Exception:
                log.exception("closing %s failed", prop)
        if self._emergency is not None:
            self._emergency.close()

    # -- emergency --------------------------------------------------------------------
    def release_locks(self) -> None:
        """Open every lock of this node now (local, no network needed)."""
        for prop in self.props.values():
            if prop.kind == "maglock":
                try:
                    prop.apply("unlock", {})
                except Exception:
                    log.exception("emergency unlock of %s failed", prop.name)

    def _emergency_pressed(self) -> None:
        self.release_locks()  # first the doors, then the news
        log.warning("emergency input pressed on node %s: locks released", self.node.id)
        self.metrics["emergency"] += 1
        with self._events_lock:
            seq = self._emit(NODE_PROP, "emergency", True)
            # Held open until the controller has handled this event (and released every
            # lock of the apartment): a relock it sends meanwhile is refused.
            for prop_id, prop in self.props.items():
                if prop.kind == "maglock":
                    self._holds[prop_id] = seq
            # A lock command applied between the first release and the holds is undone here.
            self.release_locks()

    # -- prop callbacks (gpiozero threads) --------------------------------------------
    def _event_callback(self, prop_id: str) -> Callable[[str, Any], None]:
        def on_event(event_type: str, value: Any) -> None:
            self._publish_event(prop_id, event_type, value)
        return on_event

    def _state_callback(self, prop_id: str) -> Callable[[], None]:
        def on_state() -> None:
            self.publish_state(prop_id)
        return on_state

    def _publish_event(self, prop_id: str, event_type: str, value: Any) -> None:
        with self._events_lock:
            if self.local and self._check_autonomy():
                for puzzle in self.local.on_event(prop=prop_id, event=event_type, value=value,
                                                  view=self.view):
                    self._solve_locally(puzzle)
            self._emit(prop_id, event_type, value)

    def _emit(self, prop_id: str, event_type: str, value: Any) -> int:
        """Number, queue and (if the controller listens) publish one event; return its seq."""
        with self._events_lock:
            self._seq += 1
            event = PropEvent(boot_id=self.boot_id, seq=self._seq, type=event_type, value=value,
                              ts=contract.now(), session=self.session)
            box = self.outbox
            # NOTE: published under the lock, and only behind an empty backlog, so seq
            # order is the order on the wire.
            if box is None or (self._deliverable() and not box.has_unsent()):
                # NOTE: on the wire first, then in the file (an acknowledgement cannot come
                # in between: it is handled under this lock too); kept even if paho raised.
                try:
                    self._publish(self.topics.prop_event(self.node.id, prop_id), event.to_bytes())
                finally:
                    if box is not None and self._ctl.acks_supported:
                        box.append(prop_id, event, sent=True)  # until the controller acknowledges it
            else:
                box.append(prop_id, event, sent=False)
                self.metrics["queued_events"] += 1
            self.metrics["events"] += 1
            return self._seq

    def _deliverable(self) -> bool:
        """May an event go on the wire now? (Under ``_events_lock``.)"""
        if not self.connected.is_set():
            return False
        if not self._ctl.seen:
            return True   # no controller has ever spoken: nobody to wait for (tools, benches)
        if not (self._confirmed and self.controller_online):
            return False
        heartbeat, heard = self._ctl.heartbeat, self._ctl.last_heard
        if heartbeat is not None and heard is not None and \
                time.monotonic() - heard > max(_HEARTBEATS_MISSED * heartbeat, heartbeat + 1.0):
            # The controller may be hung or cut off while its will is not out yet: keep
            # events here, and send the unacknowledged ones again once it speaks.
            self._ctl.resend_due = True
            return False
        return True

    def _flush(self) -> None:
        """Publish the backlog in order, marked replayed. (Under ``_events_lock``.)"""
        box = self.outbox
        if box is None or not self._deliverable():
            return
        if self._ctl.resend_due:
            box.mark_all_unsent()
            self._ctl.resend_due = False
        for entry in box.unsent():
            event = entry.event if entry.event.replayed else entry.event.model_copy(
                update={"replayed": True})
            rc = self._publish(self.topics.prop_event(self.node.id, entry.prop), event.to_bytes())
            if rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                break  # paho's queue is full: the rest goes at the next status
            entry.sent = True
            self.metrics["replayed_events"] += 1
        if not self._ctl.acks_supported:
            box.discard(lambda e: e.sent)

    # -- autonomy ---------------------------------------------------------------------
    def _check_autonomy(self) -> bool:
        """Is the node on its own: a game runs and the controller has been silent too long?"""
        heard = self._ctl.last_heard if self._ctl.last_heard is not None else self._ctl.started_at
        autonomous = self.view.running and time.monotonic() - heard > self.autonomy_after_s
        if autonomous and not self._autonomous:
            self.metrics["autonomy"] += 1
            self.local.restart()
            log.warning("node %s: no word from the controller for %.0f s during a game: "
                        "running local puzzles on its own (%s)", self.node.id,
                        time.monotonic() - heard, ", ".join(p.id for p in self.local.puzzles))
        self._autonomous = autonomous
        return autonomous

    @property
    def autonomous(self) -> bool:
        """True while the node runs its local puzzles on its own."""
        with self._events_lock:
            return bool(self.local) and self._check_autonomy()

    def _solve_locally(self, puzzle: Puzzle) -> None:
        """Do what a local puzzle does to this node's props, then say so. (Under the lock.)"""
        opened: list[str] = []
        for action in self.local.prop_actions(puzzle):
            prop_id = action.target.partition(".")[2]
            prop = self.props.get(prop_id)
            if prop is None:
                continue
            if action.do == "lock":
                # NOTE: never lock anything on our own: with the controller away, only the
                # emergency input could open it again.
                self.metrics["local_locks_skipped"] += 1
                log.warning("node %s: %s would lock %s; not done while the controller is away",
                            self.node.id, puzzle.id, prop_id)
                continue
            name = action.action if action.do == "command" else action.do
            try:
                if name == "reset":
                    prop.reset()
                else:
                    prop.apply(name or "", dict(action.params))
            except PropError as exc:
                log.warning("node %s: %s refused %s: %s", self.node.id, prop_id, name, exc)
                continue
            if prop.kind == "maglock":
                opened.append(prop_id)
        seq = self._emit(NODE_PROP, "solved_locally", puzzle.id)
        for prop_id in opened:
            self._holds[prop_id] = seq   # not relocked before the controller knows why
        self.metrics["local_solves"] += 1
        log.warning("node %s solved %s on its own (controller away)", self.node.id, puzzle.id)

    # -- states -----------------------------------------------------------------------
    def publish_state(self, prop_id: str) -> None:
        prop = self.props.get(prop_id)
        if prop is None:
            return
        client = self._client
        if client is None or not client.is_connected():
            return  # every state is published again on connect; no stale queue of them
        try:
            fields = dict(prop.state)
        except Exception:
            log.exception("state of %s failed", prop_id)
            return
        state = PropState(boot_id=self.boot_id, ack=self._acks.get(prop_id), ts=contract.now(),
                          **fields)
        self._publish(self.topics.prop_state(self.node.id, prop_id), state.to_bytes(), retain=True)

    def publish_all_states(self) -> None:
        for prop_id in self.props:
            self.publish_state(prop_id)

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        net = self._net
        if net is None:
            return mqtt.MQTT_ERR_NO_CONN
        return net.publish(topic, payload, qos=contract.QOS, retain=retain).rc

    def _beat(self) -> None:
        """Heartbeat thread: a small QoS 0 sign of life every keepalive / 3 while connected.

        The controller declares the node offline when it has heard nothing from it for
        1.2 × the keepalive announced in the birth (``contract.node_silence_limit``): a node
        frozen or cut off is seen long before the broker's keepalive sweep would.
        """
        interval = contract.node_heartbeat_interval(self.keepalive)
        topic = self.topics.node_heartbeat(self.node.id)
        while not self._stopped.wait(interval):
            net = self._net
            if net is None or not self.connected.is_set():
                continue
            try:
                with self._events_lock:
                    autonomous = bool(self.local) and self._check_autonomy()
                    outbox = len(self.outbox) if self.outbox is not None else None
                beat = NodeHeartbeat(boot_id=self.boot_id, ts=contract.now(),
                                     autonomous=autonomous, outbox=outbox)
                net.publish(topic, beat.to_bytes(), qos=0, retain=False)
                self.metrics["heartbeats"] += 1
            except Exception:
                # NOTE: the heartbeat thread must outlive any error: its silence means "dead".
                log.exception("node %s: heartbeat failed", self.node.id)

    # -- MQTT callbacks (paho thread: decode and hand over only) ------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason_code: Any, _properties: Any) -> None:
        if reason_code.is_failure:
            log.error("node %s: broker refused the connection: %s", self.node.id, reason_code)
            return
        with self._conn_lock:
            self._epoch += 1          # statuses of this connection carry the new epoch
            self._confirmed = False   # until the controller speaks live on it
        client.subscribe([(t, contract.QOS) for t in self.topics.node_subscriptions(self.node.id)])
        birth = NodeStatus(online=True, boot_id=self.boot_id, version=VERSION,
                           props=[PropInfo(id=p.id, kind=p.kind) for p in self.node.props],
                           simulated=self.simulate, ts=contract.now(), keepalive=self.keepalive,
                           heartbeat=contract.node_heartbeat_interval(self.keepalive))
        client.publish(self.topics.node_status(self.node.id), birth.to_bytes(), qos=1, retain=True)
        self.publish_all_states()
        self.connected.set()
        self._inbox.put(_CONNECTED)
        log.info("node %s connected to %s:%s (boot %s)", self.node.id, self.broker.host,
                 self.broker.port, self.boot_id)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason_code: Any, _properties: Any) -> None:
        self.connected.clear()
        with self._conn_lock:
            self._confirmed = False
        if not self._stopped.is_set():
            log.warning("node %s lost the broker (%s); reconnecting", self.node.id, reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            parts = self.topics.parse(message.topic)
            model = {
                "set": Command, "simulate": Gesture, "resync": Resync, "tech": TechRequest,
                "controller_status": ControllerStatus, "status": NodeStatus, "emergency": Emergency,
            }.get(parts.kind)
            if model is None or (parts.node not in (None, self.node.id)):
                raise ContractError(f"unexpected topic {message.topic!r}")
            if not message.payload and parts.kind in ("controller_status", "status", "emergency"):
                return  # a cleared retained message
            payload = contract.decode(message.payload, model)
        except ContractError as exc:
            self.metrics["bad_payloads"] += 1
            log.warning("node %s dropped a message on %s: %s", self.node.id, message.topic, exc)
            return
        if isinstance(payload, NodeStatus):
            return  # our own status, read back
        if isinstance(payload, Emergency):
            if payload.active:
                self.release_locks()   # at once, in this thread, before anything queued
            return
        if isinstance(payload, Command) and self._command_now(parts.prop or "", payload):
            return
        try:
            self._inbox.put_nowait(_Inbound(parts, payload, bool(message.retain), self._epoch))
        except queue.Full:
            self.metrics["inbox_full"] += 1

    def _command_now(self, prop_id: str, command: Command) -> bool:
        """Lock or unlock a maglock here, in paho's thread, instead of in the worker.

        A relay is one pin write (safe, idempotent, fail-safe): handing it to the worker
        thread only added a thread switch, and a wait behind whatever the worker was doing
        (docs/performance.md, fix 9). Only when the worker has nothing queued or in hand,
        so commands keep their order with what came before them (a controller status
        that changes the session first, for instance); the same checks apply (at most
        once, expiry, session, holds) and the state is published as from the worker.
        """
        if command.action not in _COMMANDS_NOW or not isinstance(self.props.get(prop_id), Maglock):
            return False
        if self._inbox.unfinished_tasks or self._stopped.is_set():
            return False   # (paho's thread is the one that adds messages to it: no race)
        try:
            self._apply_command(prop_id, command)
        except Exception:
            self.metrics["handler_errors"] += 1
            log.exception("node %s failed to apply %s to %s", self.node.id, command.action, prop_id)
        self.metrics["commands_now"] += 1
        if self.on_handled is not None:
            self.on_handled(contract.TopicParts("set", self.node.id, prop_id), command)
        return True

    # -- worker thread ----------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._inbox.get()
            try:
                if item is None:
                    return
                self._work_on(item)
            finally:
                self._inbox.task_done()   # _command_now: nothing in hand any more

    def _work_on(self, item: _Inbound | str) -> None:
        if item == _CONNECTED:
            with self._events_lock:
                if not self._ctl.seen:
                    self._flush()   # no controller to wait for: send what waited
            return
        if not isinstance(item, _Inbound):
            return
        parts, payload = item.parts, item.payload
        try:
            if isinstance(payload, ControllerStatus):
                self._on_controller_status(payload, retained=item.retained, epoch=item.epoch)
            else:
                self._handle(parts, payload)
        except Exception:
            # NOTE: nothing a message does may kill the node.
            self.metrics["handler_errors"] += 1
            log.exception("node %s failed to handle %s", self.node.id, parts)
        if self.on_handled is not None:
            self.on_handled(parts, payload)

    def _handle(self, parts: contract.TopicParts, payload: Any) -> None:
        if isinstance(payload, Command):
            self._apply_command(parts.prop or "", payload)
        elif isinstance(payload, ControllerStatus):
            self._on_controller_status(payload, retained=False, epoch=self._epoch)
        elif isinstance(payload, Resync):
            self.metrics["resyncs"] += 1
            self.publish_all_states()
        elif isinstance(payload, Gesture):
            self._simulate(parts.prop or "", payload)
        elif isinstance(payload, TechRequest):
            threading.Thread(target=self._tech, args=(payload,), daemon=True,
                             name=f"node-{self.node.id}-tech").start()

    def _on_controller_status(self, status: ControllerStatus, *, retained: bool, epoch: int) -> None:
        """The controller's birth, heartbeat or will: who listens, what to resend, what to forget."""
        # The first status after we subscribe may be a retained leftover (after a broker
        # restart with persistence, it can say "online" for a controller that is not
        # connected yet): it updates what we know of the game, but proves nobody listens.
        first_on_connection = epoch != self._ctl.status_epoch
        self._ctl.status_epoch = epoch
        live = not (retained and first_on_connection)
        with self._events_lock:
            self._ctl.seen = True
            self.controller_online = status.online
            if not status.online:
                self._ctl.resend_due = True   # what it did not acknowledge went nowhere
                log.warning("node %s: the controller is offline", self.node.id)
                return
            if self._ctl.boot_id not in (None, status.boot_id):
                self._ctl.resend_due = True   # a new controller knows nothing of our events
            self._ctl.boot_id = status.boot_id
            if live:
                self._controller_clock.observe(status.boot_id, uptime=status.uptime,
                                               local=time.monotonic())
            self._ctl.heartbeat = status.heartbeat
            self._ctl.acks_supported = status.acks is not None
            self.session = status.session
            self.local.new_session(status.session)
            self.view = GameView(running=bool(status.running), session=status.session,
                                 parcours=status.parcours, solved=frozenset(status.solved or ()))
            if self.saved_view is not None:
                self.saved_view.save(self.view, controller_boot=status.boot_id)
            if status.acks is not None:
                self._acknowledged(status.acks.get(self.node.id))
            if not live:
                return
            self._ctl.last_heard = time.monotonic()
            if self._autonomous:
                self._autonomous = False
                log.warning("node %s: the controller is back; local puzzles handed back",
                            self.node.id)
            with self._conn_lock:
                current = epoch == self._epoch and self.connected.is_set()
                if current:
                    self._confirmed = True
            if not current:
                return
            if self._ctl.confirmed_epoch != epoch:
                # A new connection: nothing unacknowledged is known to have arrived.
                self._ctl.confirmed_epoch = epoch
                self._ctl.resend_due = True
            if self._ctl.resend_due or (self.outbox is not None and self.outbox.has_unsent()):
                self._flush()

    def _acknowledged(self, ack: EventAck | None) -> None:
        """The controller handled our events up to ``ack.seq``: forget them, lift holds."""
        box = self.outbox
        if ack is None or box is None:
            return
        if ack.boot_id == self.boot_id:
            box.ack(boot_id=ack.boot_id, seq=ack.seq)
            self._holds = {p: seq for p, seq in self._holds.items() if seq > ack.seq}
        elif ack.boot_id in self._previous_boots:
            # Leftovers of an earlier run that its controller had handled after all.
            self._previous_boots.discard(ack.boot_id)
            pruned = box.discard(lambda e: e.origin is not None and not e.sent
                                 and e.origin[0] == ack.boot_id and e.origin[1] <= ack.seq)
            self.metrics["leftover_events_already_handled"] += pruned

    def _apply_command(self, prop_id: str, command: Command) -> None:
        with self._events_lock:
            self._apply_command_locked(prop_id, command)

    def _apply_command_locked(self, prop_id: str, command: Command) -> None:
        prop = self.props.get(prop_id)
        if prop is None:
            self.metrics["unknown_prop"] += 1
            log.warning("node %s: command for unknown prop %r", self.node.id, prop_id)
            return
        if command.id in self._applied:
            self.metrics["duplicate_commands"] += 1
            self.publish_state(prop_id)  # the ack may have been lost: say it again
            return
        age = self._controller_clock.age(controller=command.controller, issued=command.issued,
                                         local=time.monotonic())
        if command.ttl is not None and age is not None and age > command.ttl:
            self.metrics["expired_commands"] += 1
            log.warning("node %s: command %s (%s) is %.0f s old; not applied", self.node.id,
                        command.id, command.action, age)
            return
        if command.session and self.session and command.session != self.session:
            self.metrics["foreign_session"] += 1
            log.warning("node %s: command %s is for session %s, not %s", self.node.id,
                        command.id, command.session, self.session)
            return
        if prop_id in self._holds and command.action != "unlock":
            # Opened here (emergency input, local puzzle) and the controller has not
            # acknowledged why yet: its relock may come from a desired state of before.
            self.metrics["held_commands"] += 1
            log.warning("node %s: %s is held open until the controller acknowledges event %d; "
                        "%s %s refused", self.node.id, prop_id, self._holds[prop_id],
                        command.action, command.id)
            self.publish_state(prop_id)
            return
        self._applied[command.id] = None
        while len(self._applied) > _APPLIED_IDS_KEPT:
            self._applied.popitem(last=False)
        try:
            if command.action == "reset":
                prop.reset()
            else:
                prop.apply(command.action, dict(command.params))
        except PropError as exc:
            self.metrics["rejected_commands"] += 1
            log.warning("node %s: %s refused %s: %s", self.node.id, prop_id, command.action, exc)
        self._acks[prop_id] = command.id
        self.publish_state(prop_id)

    def _simulate(self, prop_id: str, gesture: Gesture) -> None:
        simulator = self.simulators.get(prop_id)
        if simulator is None:
            self.metrics["bad_gestures"] += 1
            log.warning("node %s: no simulated prop %r (simulate mode is %s)", self.node.id,
                        prop_id, self.simulate)
            return
        if self._hand is None:
            self._hand = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"node-{self.node.id}-hand")
        self._hand.submit(self._perform, prop_id, simulator, gesture)

    def _perform(self, prop_id: str, simulator: Any, gesture: Gesture) -> None:
        try:
            simulator.perform(gesture.gesture, gesture.value)
        except PropError as exc:
            self.metrics["bad_gestures"] += 1
            log.warning("node %s: gesture %s on %s refused: %s", self.node.id, gesture.gesture,
                        prop_id, exc)
        except Exception:
            self.metrics["handler_errors"] += 1
            log.exception("node %s: gesture %s on %s failed", self.node.id, gesture.gesture, prop_id)

    def _tech(self, request: TechRequest) -> None:
        ok, result, message = False, None, ""
        prop = self.props.get(request.prop or "")
        try:
            if request.action == "wiring":
                from nodes.wiring import wiring_sheet

                ok, result = True, wiring_sheet(self.node, markdown=True)
            elif prop is None:
                message = f"unknown prop {request.prop!r}"
            elif request.action == "self_test":
                outcome = prop.self_test(timeout=request.timeout)
                ok, result, message = outcome.passed, list(outcome.steps), outcome.message
            elif request.action == "enroll":
                from nodes.tools import wait_next_tag

                uid = wait_next_tag(prop, request.timeout)
                ok, result = uid is not None, uid
                message = "" if ok else "no tag presented in time"
        except Exception as exc:
            log.exception("tech request %s failed", request.action)
            message = str(exc)
        reply = TechReply(id=request.id, ok=ok, result=result, message=message)
        self._publish(self.topics.node_tech_reply(self.node.id), reply.to_bytes())

    def status(self) -> dict[str, Any]:
        """What this node knows, for logs and the technician."""
        with self._events_lock:
            outbox = {"events": len(self.outbox), "bytes": self.outbox.nbytes,
                      "dropped": self.outbox.dropped} if self.outbox is not None else None
            holds = dict(self._holds)
        return {"node": self.node.id, "boot_id": self.boot_id, "connected": self.connected.is_set(),
                "controller_online": self.controller_online, "session": self.session,
                "autonomous": self.autonomous, "outbox": outbox, "holds": holds,
                "metrics": dict(self.metrics),
                "props": {pid: json.loads(json.dumps(p.state, default=str))
                          for pid, p in self.props.items()}}
