"""The core's port on a running agent (``nodes/core.py: Ports``), and the node's hands.

What the core asks — publish, apply to a prop, read its state, save — is done here on the
real things: the props built on gpiozero, the paho client and its network loop, the data
dir. So are the jobs that take seconds and must not hold up the worker: a rehearsal
gesture on a simulated prop (one at a time, in order) and a technician's request.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import paho.mqtt.client as mqtt

from config.game import Node, NodePart
from nodes.autonomy import GameView, SavedView
from nodes.datadir import DataDir
from nodes.gamefile import PartStore
from nodes.gate import Refusal
from nodes.health import HealthProbe
from nodes.tech import answer
from nodes.transport import Transport
from props.base import Prop
from props.exc import PropError
from props.kinds import RFID_KINDS
from protocol import contract
from protocol.contract import Emergency, Gesture, NodeHealth, TechRequest, Topics

log = logging.getLogger(__name__)


class AgentPorts:
    """The port, on *props* (filled by the agent at start) and what :meth:`attach` gives."""

    def __init__(self, node: Node, topics: Topics, props: dict[str, Prop],
                 simulators: dict[str, Any], metrics: Counter[str]) -> None:
        self.node, self.topics, self.props, self.simulators = node, topics, props, simulators
        self.metrics = metrics
        self.data: DataDir | None = None
        self.saved_view: SavedView | None = None
        self.part_store: PartStore | None = None
        #: the agent's: closes the props and builds a game part's (``NodeAgent._rebuild``)
        self.rebuilder: Callable[[NodePart], str | None] | None = None
        self.client: mqtt.Client | None = None
        self.transport: Transport | None = None
        #: reads the Pi's health (set with the data dir, at start)
        self.probe: HealthProbe | None = None
        self._hand: ThreadPoolExecutor | None = None

    # -- the core's port --------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                qos: int = contract.QOS) -> bool:
        transport, client = self.transport, self.client
        if transport is None or client is None or not client.is_connected():
            return False   # every state is published again on connect: no stale queue of them
        return transport.publish(topic, payload, qos=qos, retain=retain).rc == mqtt.MQTT_ERR_SUCCESS

    def apply(self, prop: str, action: str, params: Mapping[str, Any]) -> None:
        target = self.props[prop]
        if action == "reset":
            target.reset()
        else:
            target.apply(action, dict(params))

    def state(self, prop: str) -> Mapping[str, Any]:
        return self.props[prop].state

    def engaged(self, prop: str) -> bool:
        return bool(getattr(self.props[prop], "engaged", False))

    def save_emergency(self, emergency: Emergency | None) -> None:
        if self.data is not None:
            self.data.save_emergency(emergency)

    def save_view(self, view: GameView, *, controller_boot: str | None) -> None:
        if self.saved_view is not None:
            self.saved_view.save(view, controller_boot=controller_boot)

    def rebuild(self, part: NodePart) -> str | None:
        if self.rebuilder is None:
            return "this node cannot rebuild its props"
        return self.rebuilder(part)

    def save_part(self, raw: bytes) -> None:
        if self.part_store is not None:
            self.part_store.save(raw)

    def health(self) -> NodeHealth | None:
        if self.probe is None:
            return None
        errors = {pid: int(getattr(prop, "errors", 0)) for pid, prop in self.props.items()
                  if prop.kind in RFID_KINDS}
        # NOTE: dict.copy is one C call: other threads count in it while we read
        return self.probe.read(read_errors=errors, counters=dict.copy(self.metrics))

    # -- the hands ----------------------------------------------------------------------
    def perform(self, prop: str, gesture: Gesture) -> None:
        """A rehearsal gesture (it takes time: a button held 2 s, a code typed key by key),
        on the simulated hand's own thread: the commands behind it do not wait."""
        simulator = self.simulators.get(prop)
        if simulator is None:
            self.metrics["bad_gestures"] += 1
            log.warning("node %s: no simulated prop %r", self.node.id, prop)
            return
        if self._hand is None:
            self._hand = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"node-{self.node.id}-hand")
        self._hand.submit(self._perform, prop, simulator, gesture)

    def _perform(self, prop: str, simulator: Any, gesture: Gesture) -> None:
        try:
            simulator.perform(gesture.gesture, gesture.value)
        except PropError as exc:
            self.metrics["bad_gestures"] += 1
            log.warning("node %s: gesture %s on %s refused: %s", self.node.id, gesture.gesture,
                        prop, exc)
        except Exception:
            self.metrics["handler_errors"] += 1
            log.exception("node %s: gesture %s on %s failed", self.node.id, gesture.gesture, prop)

    def tech(self, request: TechRequest, why_held: Callable[[str], Refusal | None]) -> None:
        """A technician's request, answered on a thread of its own (``nodes/tech.py``)."""
        def run() -> None:
            reply, refusal = answer(request, node=self.node, props=self.props, why_held=why_held)
            if refusal is not None:
                self.metrics[refusal.counter] += 1
            self.publish(self.topics.node_tech_reply(self.node.id), reply.to_bytes())

        threading.Thread(target=run, daemon=True, name=f"node-{self.node.id}-tech").start()

    def close(self) -> None:
        if self._hand is not None:
            self._hand.shutdown(wait=False, cancel_futures=True)
