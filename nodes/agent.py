"""The node agent: the program on each room's Raspberry Pi.

It builds the room's props from the game file on gpiozero, reports their events and
states over MQTT, applies the controller's commands, and keeps its doors safe on its own:

* one MQTT client id per node, ``<apartment>-<node>``, so the broker drops an old
  connection (and delivers its will) before it accepts the new one; a retained birth on
  every connect with a fresh ``boot_id`` and the boot counter ``boot_n`` kept in the data
  dir, a retained last will naming both. The node reads its own status topic back: a
  will or another boot's birth landing after its birth makes it publish its birth again,
  so the retained truth is always the live boot;
* events carry ``seq`` (+1 per event within a boot) so the controller can drop
  duplicates and see gaps; states are retained and carry the id of the last command
  applied (``ack``);
* **releasing is unconditional**: an ``unlock`` is applied at once, in the network thread,
  whatever its age, session, id or any hold, and never waits behind the worker. Every
  other command passes the command gate (:meth:`NodeAgent._gate`: at most once, age on
  the controller's clock, session, holds); nothing received is ever trusted: bad payloads
  are counted and dropped;
* the apartment's emergency (retained ``Emergency`` on its own topic) releases every lock
  at once in the network thread, before anything queued, again on every reconnection,
  and holds them open — every lock refused — until an explicit clear; the node keeps it in
  its data dir across its own restarts;
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

The paho network thread decodes messages and hands them to a worker thread (``_inbox``),
except releases, emergencies and, when the worker is idle, locks, applied at once; props
call back from gpiozero threads. Events, the outbox, holds and
commands share one lock (``_events_lock``), so seq order is wire order and a command can
never slip between an emergency release and its hold.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import shutil
import tempfile
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from gpiozero import Button, Factory

from config.game import Game, Puzzle
from nodes.autonomy import GameView, LocalPuzzles, SavedView
from nodes.datadir import DataDir
from nodes.network import NetworkThread
from nodes.outbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, Outbox
from props.base import Prop
from props.exc import PropError
from props.factory import build_prop
from props.maglock import Maglock
from protocol import contract
from protocol.contract import (
    COMMAND_TTL_S,
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
    is_release,
)
from protocol.mqtt import BrokerAddress, make_client

log = logging.getLogger(__name__)

VERSION = "0.1.0"
_APPLIED_IDS_KEPT = 1024
_CLEARED_IDS_KEPT = 64
#: heartbeats missed before the node stops trusting the controller to be listening
_HEARTBEATS_MISSED = 3


@dataclass(frozen=True, slots=True)
class _Inbound:
    """A validated message, as the paho thread hands it to the worker."""

    parts: contract.TopicParts
    payload: Any
    retained: bool
    epoch: int            # which connection it came in on (1 = the first)
    receipt: int          # its rank among every message received (the broker's order)


#: put in the inbox when our birth comes back to us on a new connection: every retained
#: message of our subscriptions (the controller's status, if any) came before it
_SUBSCRIBED = "subscribed"
#: commands applied in paho's thread when the worker is idle (see NodeAgent._command_now)
_COMMANDS_NOW = frozenset({"lock", "unlock"})
#: how often a full inbox is logged (every message dropped is counted)
_INBOX_FULL_LOG_EVERY = 1000


@dataclass(slots=True)
class _Birth:
    """Our birth on this connection (paho's and the heartbeat thread, under ``_conn_lock``)."""

    payload: bytes | None = None        # as published last
    echoed: bool = False                # the broker sent it back to us: what follows is later
    corrected_at: float = -float("inf")  # monotonic time of the last republish for a will
    due: bool = False                   # to publish again at the next heartbeat


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

    *data_dir* holds what the node keeps across its restarts (``nodes/datadir.py``: the
    outbox, the game view, the boot counter, an uncleared emergency); default: a temporary
    directory removed at :meth:`stop` (the CLI always gives one outside simulation);
    *keepalive* is the MQTT keepalive: the broker publishes our last will 1.5 times that
    after we went silent.
    """

    def __init__(self, *, game: Game, node_id: str, broker: BrokerAddress,  # noqa: PLR0915 - its state, in one place
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
        #: the boot counter, from the data dir at start (1 until then)
        self.boot_n = 1
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
        self._data: DataDir | None = None
        self._own_tmp_dir: Path | None = None
        # ids of commands applied, and per prop the last one: written by paho's thread
        # (releases) and the worker, under their own lock (never _events_lock: a release
        # must not wait for whatever holds that one)
        self._applied_lock = threading.Lock()
        self._acks: dict[str, str] = {}
        self._applied: OrderedDict[str, None] = OrderedDict()
        #: the apartment's emergency while active (set first, cleared only by an explicit clear)
        self.emergency: Emergency | None = None
        # ids of emergencies seen cleared: a broker back on an old save (kill -9, power cut)
        # hands an ended one back as active; only a new id is a new emergency
        self._cleared: deque[str] = deque(maxlen=_CLEARED_IDS_KEPT)
        # per maglock, the receipt rank of the last release applied: an older lock still
        # queued for the worker must not undo it (_received: the last rank given)
        self._released_at: dict[str, int] = {}
        self._seq = 0
        # RLock: a prop may emit an event while it applies a command we hold the lock for.
        self._events_lock = threading.RLock()
        self._inbox: queue.Queue[_Inbound | str | None] = queue.Queue(maxsize=10_000)
        self._ctl = _ControllerLink(started_at=time.monotonic())
        self._controller_clock = contract.ControllerClock()
        self._autonomous, self._received = False, 0
        self._holds: dict[str, int] = {}   # maglock -> seq that must be acknowledged first
        self._previous_boots: set[str] = set()
        # -- the connection (paho thread writes, under _conn_lock) --
        self._conn_lock = threading.Lock()
        self._epoch, self._confirmed = 0, False
        self._worker: threading.Thread | None = None
        self._birth = _Birth()
        self._emergency_input: Button | None = None
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
        self._open_data_dir()
        self._worker = threading.Thread(target=self._work, name=f"node-{self.node.id}-worker",
                                        daemon=True)
        self._worker.start()
        threading.Thread(target=self._beat, name=f"node-{self.node.id}-heartbeat", daemon=True).start()
        will = NodeStatus(online=False, boot_id=self.boot_id, boot_n=self.boot_n).to_bytes()
        # NOTE: the same client id at every boot: the broker closes an old connection of
        # this node (a half-open socket of a boot that just died) and delivers its will
        # *before* it accepts ours, so the old will cannot land after our birth.
        client = make_client(self.client_id, self.broker,
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
        with contextlib.suppress(queue.Full):   # full: the worker sees _stopped anyway
            self._inbox.put_nowait(None)
        client, net = self._client, self._net
        if client is not None and net is not None and client.is_connected():
            info = net.publish(self.topics.node_status(self.node.id),
                               NodeStatus(online=False, boot_id=self.boot_id,
                                          boot_n=self.boot_n).to_bytes(),
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

    @property
    def client_id(self) -> str:
        """The node's MQTT client id: the same at every boot."""
        return f"{self.game.apartment.id}-{self.node.id}"

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
                self._emergency_input = Button(em.pin, pull_up=em.pull_up, bounce_time=0.05,
                                               pin_factory=self.pin_factory)
                self._emergency_input.when_pressed = self._emergency_pressed
        except Exception:
            # NOTE: a node that fails halfway must not leave a relay it already built driven.
            self._close_props()
            raise

    def _open_data_dir(self) -> None:
        """Count this boot, read back an uncleared emergency, open the outbox (queueing
        what an earlier run left there as events of this boot) and the saved game view."""
        directory = self.data_dir
        if directory is None:
            # NOTE: a temporary data dir survives broker and controller outages, not a
            # restart of the agent: for the demo and tests. The CLI always gives one
            # (nodes/datadir.py: default_data_dir).
            directory = self._own_tmp_dir = Path(tempfile.mkdtemp(prefix=f"escape-node-{self.node.id}-"))
            if not self.simulate:
                log.warning("node %s: no data dir; events queued in %s are lost if the agent "
                            "restarts", self.node.id, directory)
        data = self._data = DataDir(directory, apartment=self.game.apartment.id, node=self.node.id)
        self.boot_n = data.next_boot()
        self.emergency = data.load_emergency()
        if self.emergency is not None:
            self.metrics["emergency_restored"] += 1
            log.warning("node %s: the emergency %s (%s) was active when this node stopped and "
                        "nobody has cleared it since: every lock refused until the game master "
                        "clears it", self.node.id, self.emergency.id, self.emergency.who)
        log.info("node %s: boot %d (%s), data dir %s", self.node.id, self.boot_n, self.boot_id,
                 directory)
        max_events, max_bytes = self._outbox_limits
        box = Outbox(path=data.path("outbox.jsonl"), max_events=max_events, max_bytes=max_bytes)
        leftovers = box.take_leftovers()
        saved = SavedView(data.path("game.json"))
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
        if self._emergency_input is not None:
            self._emergency_input.close()

    # -- emergency --------------------------------------------------------------------
    def release_locks(self) -> None:
        """Open every lock of this node now (local, no network needed)."""
        for prop in self.props.values():
            if prop.kind == "maglock":
                try:
                    prop.apply(contract.RELEASE, {})
                except Exception:
                    log.exception("emergency unlock of %s failed", prop.name)

    def _on_emergency(self, emergency: Emergency, receipt: int) -> None:
        """The apartment's emergency (paho's thread): release first, then the books.

        Active: the hold is set *before* the relays move, so a lock applied by another
        thread meanwhile is undone (its state callback sees the hold, see
        :meth:`_held_open`); every maglock is released at once; what waits for the worker
        from before is superseded. The same message on every reconnection (retained)
        releases again. Inactive: the hold is lifted; nothing is relocked.
        """
        if emergency.active and emergency.id in self._cleared:
            self.metrics["stale_emergencies"] += 1
            log.warning("node %s: emergency %s was cleared already (a broker back on an old "
                        "save): ignored", self.node.id, emergency.id)
            return
        if emergency.active:
            known = self.emergency is not None and self.emergency.id == emergency.id
            self.emergency = emergency
            self.release_locks()
            for prop_id, prop in self.props.items():
                if prop.kind == "maglock":
                    self._released_at[prop_id] = receipt
            self.metrics["emergency_releases"] += 1
            if not known:
                log.warning("node %s: emergency %s (%s): every lock released, every lock "
                            "refused until it is cleared", self.node.id, emergency.id, emergency.who)
                if self._data is not None:
                    self._data.save_emergency(emergency)
            else:
                log.info("node %s: emergency %s still active: locks released again",
                         self.node.id, emergency.id)
            return
        self._cleared.append(emergency.id)
        if self.emergency is None:
            return
        log.warning("node %s: emergency %s cleared (%s): locks may be locked again, none is "
                    "locked by this", self.node.id, self.emergency.id, emergency.who)
        self.emergency = None
        self.metrics["emergency_clears"] += 1
        if self._data is not None:
            self._data.save_emergency(None)

    def _held_open(self, prop_id: str) -> tuple[str, str] | None:
        """Why this maglock must stay open whatever anyone asks — (counter, reason) — or None.

        The apartment's emergency holds every lock; a lock this node opened on its own
        (emergency input, local puzzle) is held until the controller acknowledged why.
        """
        if self.emergency is not None:
            return "emergency_refused", f"the emergency {self.emergency.id} is active"
        seq = self._holds.get(prop_id)
        if seq is not None:
            return "held_commands", f"held open until the controller acknowledges event {seq}"
        return None

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
            target = self.props.get(prop_id)
            if isinstance(target, Maglock) and target.engaged and self._held_open(prop_id) is not None:
                # Whatever engaged it (a lock that passed the gate just before an emergency,
                # a pulse's relock, a self-test's click): released again at once. The
                # release calls back here and publishes the state.
                self.metrics["held_relocks_undone"] += 1
                log.warning("node %s: %s engaged while held open: released", self.node.id, prop_id)
                target.apply(contract.RELEASE, {})
                return
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
            # No controller has ever spoken: nobody to wait for (tools, benches) — once the
            # broker's retained messages are in (our birth's echo): a retained controller
            # status, even "offline", means events must wait for it.
            with self._conn_lock:
                return self._birth.echoed
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
                if self._birth.due:
                    self._publish_birth()
                with self._events_lock:
                    autonomous = bool(self.local) and self._check_autonomy()
                    outbox = len(self.outbox) if self.outbox is not None else None
                beat = NodeHeartbeat(boot_id=self.boot_id, boot_n=self.boot_n, ts=contract.now(),
                                     autonomous=autonomous, outbox=outbox)
                net.publish(topic, beat.to_bytes(), qos=0, retain=False)
                self.metrics["heartbeats"] += 1
            except Exception:
                # NOTE: the heartbeat thread must outlive any error: its silence means "dead".
                log.exception("node %s: heartbeat failed", self.node.id)

    # -- our own status: the retained truth is the live boot -----------------------------
    def _publish_birth(self, client: mqtt.Client | None = None) -> None:
        """Publish our retained birth (*client*: from paho's own callbacks, on connect)."""
        birth = NodeStatus(online=True, boot_id=self.boot_id, boot_n=self.boot_n, version=VERSION,
                           props=[PropInfo(id=p.id, kind=p.kind) for p in self.node.props],
                           simulated=self.simulate, ts=contract.now(), keepalive=self.keepalive,
                           heartbeat=contract.node_heartbeat_interval(self.keepalive)).to_bytes()
        with self._conn_lock:
            self._birth.payload, self._birth.echoed, self._birth.due = birth, False, False
        topic = self.topics.node_status(self.node.id)
        if client is not None:
            client.publish(topic, birth, qos=1, retain=True)
        else:
            self._publish(topic, birth, retain=True)
        self.metrics["births"] += 1

    def _on_own_status(self, status: NodeStatus, raw: bytes) -> None:
        """Our status topic, read back (paho's thread).

        The broker handles our subscription before our birth, so what comes before our
        birth's echo was there before it, and our birth replaces it. What comes *after*
        it and is not ours — a will (of an old connection, of an old boot) or the birth of
        another boot — has just replaced our birth as the retained truth: publish the
        birth again, at once the first time, then at most once per heartbeat interval
        (two processes claiming the same node would otherwise answer each other forever).
        """
        if self._stopped.is_set():
            return
        with self._conn_lock:
            if raw == self._birth.payload:
                first, self._birth.echoed = not self._birth.echoed, True
                if first:
                    with contextlib.suppress(queue.Full):   # full: the next status flushes
                        self._inbox.put_nowait(_SUBSCRIBED)
                return
            if not self._birth.echoed or (status.online and status.boot_id == self.boot_id):
                return   # older than our birth, or a birth of ours: nothing to correct
        self.metrics["status_overwritten"] += 1
        if status.online:
            log.error("node %s: another boot (%s, boot_n %s) announced itself on this node's "
                      "status: is the node running twice?", self.node.id, status.boot_id, status.boot_n)
        else:
            log.warning("node %s: a will of boot %s (boot_n %s) landed after our birth: birth "
                        "published again", self.node.id, status.boot_id, status.boot_n)
        interval = contract.node_heartbeat_interval(self.keepalive)
        now = time.monotonic()
        if now - self._birth.corrected_at >= interval:
            self._birth.corrected_at = now
            self._publish_birth()
        else:
            self._birth.due = True   # the heartbeat thread publishes it within an interval

    # -- MQTT callbacks (paho thread: decode and hand over only) ------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason_code: Any, _properties: Any) -> None:
        if reason_code.is_failure:
            log.error("node %s: broker refused the connection: %s", self.node.id, reason_code)
            return
        with self._conn_lock:
            self._epoch += 1          # statuses of this connection carry the new epoch
            self._confirmed = False   # until the controller speaks live on it
        # NOTE: subscribe first, then the birth: the broker sends what its retained
        # messages were (the emergency, our old status) before it handles our birth, so
        # anything on our status topic after our birth's echo came later than it.
        client.subscribe([(t, contract.QOS) for t in self.topics.node_subscriptions(self.node.id)])
        self._publish_birth(client)
        self.publish_all_states()
        self.connected.set()
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
        self._received += 1
        receipt = self._received
        try:
            parts = self.topics.parse(message.topic)
            model = {
                "set": Command, "simulate": Gesture, "resync": Resync, "tech": TechRequest,
                "controller_status": ControllerStatus, "status": NodeStatus, "emergency": Emergency,
            }.get(parts.kind)
            if model is None or (parts.node not in (None, self.node.id)):
                raise ContractError(f"unexpected topic {message.topic!r}")
            if not message.payload and parts.kind in ("controller_status", "status", "emergency"):
                # A retained message deleted. For the emergency it is not a clear: only an
                # Emergency(active=False) lifts the hold.
                if parts.kind == "emergency" and self.emergency is not None:
                    log.warning("node %s: the retained emergency was deleted; still held until "
                                "an explicit clear", self.node.id)
                return
            payload = contract.decode(message.payload, model)
        except ContractError as exc:
            self.metrics["bad_payloads"] += 1
            log.warning("node %s dropped a message on %s: %s", self.node.id, message.topic, exc)
            return
        try:
            if isinstance(payload, NodeStatus):
                self._on_own_status(payload, message.payload)
                return
            if isinstance(payload, Emergency):
                self._on_emergency(payload, receipt)   # at once, in this thread, before anything queued
                return
        except Exception:
            self.metrics["handler_errors"] += 1
            log.exception("node %s failed to handle %s", self.node.id, message.topic)
            return
        if isinstance(payload, Command) and self._command_now(parts.prop or "", payload, receipt):
            return
        try:
            self._inbox.put_nowait(_Inbound(parts, payload, bool(message.retain), self._epoch, receipt))
        except queue.Full:
            # NOTE: never a release nor an emergency (both are applied above, never queued).
            self.metrics["inbox_full"] += 1
            if self.metrics["inbox_full"] % _INBOX_FULL_LOG_EVERY == 1:
                log.warning("node %s: inbox full (worker busy): %s dropped (%d so far)",
                            self.node.id, message.topic, self.metrics["inbox_full"])

    def _command_now(self, prop_id: str, command: Command, receipt: int) -> bool:
        """Apply a maglock's command here, in paho's thread, instead of in the worker.

        A release always, whatever the worker is doing (busy, stuck, its inbox full): it
        passes every filter, so nothing queued before it can change whether it applies,
        and a lock queued before it is refused as superseded when its turn comes (see
        :meth:`_gate`). A lock only when the worker has nothing queued or in hand, so it
        keeps its order with what came before it (a controller status that changes the
        session first, for instance): a relay is one pin write, and handing it to the
        worker only added a thread switch (docs/performance.md, fix 9). The state is
        published as from the worker.
        """
        if not isinstance(self.props.get(prop_id), Maglock) or self._stopped.is_set():
            return False
        if not is_release(command.action) and (
                command.action not in _COMMANDS_NOW or self._inbox.unfinished_tasks):
            return False   # (paho's thread is the one that adds messages to it: no race)
        try:
            self._apply_command(prop_id, command, receipt=receipt)
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
                if item is None or self._stopped.is_set():
                    return
                self._work_on(item)
            finally:
                self._inbox.task_done()   # _command_now: nothing in hand any more

    def _work_on(self, item: _Inbound | str) -> None:
        if item == _SUBSCRIBED:
            with self._events_lock:
                if not self._ctl.seen:
                    self._flush()   # no controller, not even a retained one: send what waited
            return
        if not isinstance(item, _Inbound):
            return
        parts, payload = item.parts, item.payload
        try:
            if isinstance(payload, ControllerStatus):
                self._on_controller_status(payload, retained=item.retained, epoch=item.epoch)
            else:
                self._handle(parts, payload, receipt=item.receipt)
        except Exception:
            # NOTE: nothing a message does may kill the node.
            self.metrics["handler_errors"] += 1
            log.exception("node %s failed to handle %s", self.node.id, parts)
        if self.on_handled is not None:
            self.on_handled(parts, payload)

    def _handle(self, parts: contract.TopicParts, payload: Any, *, receipt: int | None = None) -> None:
        if isinstance(payload, Command):
            self._apply_command(parts.prop or "", payload, receipt=receipt)
        elif isinstance(payload, ControllerStatus):
            self._on_controller_status(payload, retained=False, epoch=self._epoch)
        elif isinstance(payload, Resync):
            self.metrics["resyncs"] += 1
            self._publish_birth()   # whoever asks may have missed it, or hold an old one
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
            if not status.online and self._ctl.boot_id not in (None, status.boot_id):
                # The will of a controller boot before the one we follow, delivered late:
                # it says nothing of the current one.
                self.metrics["stale_controller_wills"] += 1
                log.info("node %s: ignored the will of an old controller boot %s", self.node.id,
                         status.boot_id)
                return
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

    def _apply_command(self, prop_id: str, command: Command, *, receipt: int | None = None) -> None:
        """Apply *command* to a prop if the gate lets it through; publish the prop's state
        either way (the controller learns what the relay really does, and the ``ack`` of a
        duplicate it may have missed). *receipt*: its rank among the messages received."""
        prop = self.props.get(prop_id)
        if prop is None:
            self.metrics["unknown_prop"] += 1
            log.warning("node %s: command for unknown prop %r", self.node.id, prop_id)
            return
        release = is_release(command.action)
        if release and receipt is not None:
            self._released_at[prop_id] = max(receipt, self._released_at.get(prop_id, 0))
        # NOTE: a release takes no agent lock: nothing another thread holds may delay it.
        with contextlib.nullcontext() if release else self._events_lock:
            refusal = self._gate(prop_id, prop, command, receipt)
            if refusal is not None:
                counter, why = refusal
                self.metrics[counter] += 1
                log.warning("node %s: %s %s of %s not applied: %s", self.node.id, command.action,
                            command.id, prop_id, why)
                self.publish_state(prop_id)
                return
            if release and command.id in self._applied:
                self.metrics["repeated_releases"] += 1   # applied again: harmless
            with self._applied_lock:
                self._applied[command.id] = None
                self._applied.move_to_end(command.id)
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
            if not release and isinstance(prop, Maglock) and receipt is not None and \
                    self._released_at.get(prop_id, 0) > receipt and prop.engaged:
                # A release received after this lock was applied (by paho's thread) while
                # this one went through: the later order wins.
                self.metrics["superseded_commands"] += 1
                prop.apply(contract.RELEASE, {})
            self._acks[prop_id] = command.id
            self.publish_state(prop_id)

    def _gate(self, prop_id: str, prop: Prop, command: Command,  # noqa: PLR0911 - one return per rule
              receipt: int | None) -> tuple[str, str] | None:
        """The command gate: why *command* may not be applied (counter, reason), or None.

        The one place that filters commands. **Releasing is unconditional**: an unlock
        passes whatever its age, session, id or any hold — applying it twice is harmless.
        Any other command is refused when

        * its id was applied already (QoS 1 may deliver twice);
        * it is older than its ``ttl`` (default ``COMMAND_TTL_S``), measured on the
          controller's own clock (``ControllerClock``; never on a wall clock);
        * it is for another session than the one the controller announces;
        * on a maglock: while the lock is held open (:meth:`_held_open`: the apartment's
          emergency, or a lock this node opened on its own), or when a release received
          after it has been applied already (it waited in the worker's queue).
        """
        if is_release(command.action):
            return None
        if command.id in self._applied:
            return "duplicate_commands", "already applied"
        age = self._controller_clock.age(controller=command.controller, issued=command.issued,
                                         local=time.monotonic())
        ttl = command.ttl if command.ttl is not None else COMMAND_TTL_S
        if age is not None and age > ttl:
            return "expired_commands", f"{age:.1f} s old on the controller's clock (limit {ttl:g} s)"
        if command.session and self.session and command.session != self.session:
            return "foreign_session", f"for session {command.session}, not {self.session}"
        if not isinstance(prop, Maglock):
            return None
        held = self._held_open(prop_id)
        if held is not None:
            return held
        released = self._released_at.get(prop_id)
        if receipt is not None and released is not None and receipt < released:
            return "superseded_commands", "a release received after it was applied first"
        return None

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
            elif request.action == "self_test" and isinstance(prop, Maglock) and \
                    (held := self._held_open(request.prop or "")) is not None:
                # NOTE: a maglock's self-test locks it for a moment: not while it is held open.
                self.metrics[held[0]] += 1
                message = f"self-test refused: {held[1]}"
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
        return {"node": self.node.id, "boot_id": self.boot_id, "boot_n": self.boot_n,
                "connected": self.connected.is_set(),
                "emergency": self.emergency.id if self.emergency is not None else None,
                "controller_online": self.controller_online, "session": self.session,
                "autonomous": self.autonomous, "outbox": outbox, "holds": holds,
                "metrics": dict(self.metrics),
                "props": {pid: json.loads(json.dumps(p.state, default=str))
                          for pid, p in self.props.items()}}
