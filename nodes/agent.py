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
  anyone; it needs neither broker nor controller.

The paho network thread only decodes messages and hands them to a worker thread
(``_inbox``); props call back from gpiozero threads and only publish.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from gpiozero import Button, Factory

from config.game import Game
from nodes import contract
from nodes.contract import (
    Command,
    ContractError,
    ControllerStatus,
    Gesture,
    NodeStatus,
    PropEvent,
    PropInfo,
    PropState,
    Resync,
    TechReply,
    TechRequest,
    Topics,
)
from nodes.mqtt import BrokerAddress, make_client
from props.base import Prop
from props.exc import PropError
from props.factory import build_prop

log = logging.getLogger(__name__)

VERSION = "0.1.0"
_APPLIED_IDS_KEPT = 1024


class NodeAgent:
    """Runs one room: props on gpiozero, MQTT to the controller.

    >>> agent = NodeAgent(game=game, node_id="hall", broker=BrokerAddress("127.0.0.1", 1883),
    ...                   pin_factory=MockFactory(), simulate=True)
    >>> agent.start()        # builds the props (relays start unlocked) and connects
    >>> agent.stop()         # unlocks, says offline, disconnects
    """

    def __init__(self, *, game: Game, node_id: str, broker: BrokerAddress,
                 pin_factory: Factory | None = None, simulate: bool = False,
                 keepalive: int = 5) -> None:
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
        self.metrics: Counter[str] = Counter()
        self.session: str | None = None
        self.controller_online = False
        self.connected = threading.Event()
        self._acks: dict[str, str] = {}
        self._applied: OrderedDict[str, None] = OrderedDict()
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._inbox: queue.Queue[tuple[contract.TopicParts, Any] | None] = queue.Queue(maxsize=10_000)
        self._worker: threading.Thread | None = None
        self._emergency: Button | None = None
        self._client: mqtt.Client | None = None
        self._stopped = threading.Event()
        #: called (from the worker thread) after each message is handled; for tests and tools
        self.on_handled: Callable[[contract.TopicParts, Any], None] | None = None

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> None:
        """Build the props and connect (in the background: works with no broker yet)."""
        self._build_props()
        self._worker = threading.Thread(target=self._work, name=f"node-{self.node.id}-worker",
                                        daemon=True)
        self._worker.start()
        will = NodeStatus(online=False, boot_id=self.boot_id).to_bytes()
        client = make_client(f"{self.game.apartment.id}-{self.node.id}-{self.boot_id}", self.broker,
                             will_topic=self.topics.node_status(self.node.id), will_payload=will)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        client.connect_async(self.broker.host, self.broker.port, keepalive=self.keepalive)
        client.loop_start()

    def stop(self) -> None:
        """Open the locks, say offline, disconnect; safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._inbox.put(None)
        client = self._client
        if client is not None and client.is_connected():
            info = client.publish(self.topics.node_status(self.node.id),
                                  NodeStatus(online=False, boot_id=self.boot_id).to_bytes(),
                                  qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError):
                log.warning("offline status of %s not confirmed", self.node.id)
            client.disconnect()
        if client is not None:
            client.loop_stop()
        if self._worker is not None:
            self._worker.join(timeout=2)
        self._close_props()

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
        self._publish_event("node", "emergency", True)

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
        with self._seq_lock:
            self._seq += 1
            event = PropEvent(boot_id=self.boot_id, seq=self._seq, type=event_type, value=value,
                              ts=contract.now(), session=self.session)
            # NOTE: publish under the lock so seq order is the order on the wire.
            self._publish(self.topics.prop_event(self.node.id, prop_id), event.to_bytes())
        self.metrics["events"] += 1

    def publish_state(self, prop_id: str) -> None:
        prop = self.props.get(prop_id)
        if prop is None:
            return
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

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        client = self._client
        if client is None:
            return
        client.publish(topic, payload, qos=contract.QOS, retain=retain)

    # -- MQTT callbacks (paho thread: decode and hand over only) ------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason_code: Any, _properties: Any) -> None:
        if reason_code.is_failure:
            log.error("node %s: broker refused the connection: %s", self.node.id, reason_code)
            return
        client.subscribe([(t, contract.QOS) for t in self.topics.node_subscriptions(self.node.id)])
        birth = NodeStatus(online=True, boot_id=self.boot_id, version=VERSION,
                           props=[PropInfo(id=p.id, kind=p.kind) for p in self.node.props],
                           simulated=self.simulate, ts=contract.now())
        client.publish(self.topics.node_status(self.node.id), birth.to_bytes(), qos=1, retain=True)
        self.publish_all_states()
        self.connected.set()
        log.info("node %s connected to %s:%s (boot %s)", self.node.id, self.broker.host,
                 self.broker.port, self.boot_id)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason_code: Any, _properties: Any) -> None:
        self.connected.clear()
        if not self._stopped.is_set():
            log.warning("node %s lost the broker (%s); reconnecting", self.node.id, reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            parts = self.topics.parse(message.topic)
            model = {
                "set": Command, "simulate": Gesture, "resync": Resync, "tech": TechRequest,
                "controller_status": ControllerStatus,
            }.get(parts.kind)
            if model is None or (parts.node not in (None, self.node.id)):
                raise ContractError(f"unexpected topic {message.topic!r}")
            if not message.payload and parts.kind == "controller_status":
                return  # a cleared retained status
            payload = contract.decode(message.payload, model)
        except ContractError as exc:
            self.metrics["bad_payloads"] += 1
            log.warning("node %s dropped a message on %s: %s", self.node.id, message.topic, exc)
            return
        try:
            self._inbox.put_nowait((parts, payload))
        except queue.Full:
            self.metrics["inbox_full"] += 1

    # -- worker thread ----------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            parts, payload = item
            try:
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
            self.controller_online = payload.online
            if payload.online:
                self.session = payload.session
        elif isinstance(payload, Resync):
            self.metrics["resyncs"] += 1
            self.publish_all_states()
        elif isinstance(payload, Gesture):
            self._simulate(parts.prop or "", payload)
        elif isinstance(payload, TechRequest):
            threading.Thread(target=self._tech, args=(payload,), daemon=True,
                             name=f"node-{self.node.id}-tech").start()

    def _apply_command(self, prop_id: str, command: Command) -> None:
        prop = self.props.get(prop_id)
        if prop is None:
            self.metrics["unknown_prop"] += 1
            log.warning("node %s: command for unknown prop %r", self.node.id, prop_id)
            return
        if command.id in self._applied:
            self.metrics["duplicate_commands"] += 1
            self.publish_state(prop_id)  # the ack may have been lost: say it again
            return
        if command.expires is not None and command.expires < contract.now():
            self.metrics["expired_commands"] += 1
            log.warning("node %s: command %s (%s) expired; not applied", self.node.id,
                        command.id, command.action)
            return
        if command.session and self.session and command.session != self.session:
            self.metrics["foreign_session"] += 1
            log.warning("node %s: command %s is for session %s, not %s", self.node.id,
                        command.id, command.session, self.session)
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
        try:
            simulator.perform(gesture.gesture, gesture.value)
        except PropError as exc:
            self.metrics["bad_gestures"] += 1
            log.warning("node %s: gesture %s on %s refused: %s", self.node.id, gesture.gesture,
                        prop_id, exc)

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
        return {"node": self.node.id, "boot_id": self.boot_id, "connected": self.connected.is_set(),
                "controller_online": self.controller_online, "session": self.session,
                "metrics": dict(self.metrics),
                "props": {pid: json.loads(json.dumps(p.state, default=str))
                          for pid, p in self.props.items()}}
