"""The staff's requests to one node: technician self-tests and tag enrolment, rehearsal gestures.

A technician's request goes to the node (``…/nodes/<node>/tech``, :class:`TechRequest`);
the node runs the prop's own self-test or waits for the next RFID tag and answers with a
:class:`TechReply`, which :meth:`TechDesk.on_reply` hands to the waiting request. Every
request is audited. A rehearsal gesture (:meth:`TechDesk.simulate`) goes to a simulated
node's prop, checked first so that nothing is published that the node would drop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from controller.context import Context
from controller.core.errors import Bilingual, EngineError, NotFoundError
from controller.emergency import Alert
from controller.engine import GAME_MASTER, PLAYING
from controller.journal import Journal
from controller.mqtt import MqttBridge
from controller.store import StoreError
from props.kinds import ACTUATOR_KINDS, LOCK_KINDS, RFID_KINDS
from props.sim import check_gesture
from protocol import contract
from protocol.contract import Gesture, TechReply, TechRequest

log = logging.getLogger(__name__)

#: how much longer than the node's own timeout the controller waits for its reply
TECH_MARGIN_S = 5.0
#: store meta key of the tags enrolled from the technician page
ENROLLED_META = "tech_enrolled"


class NodeUnavailable(Bilingual, RuntimeError):
    """The node of a request is offline."""


class NodeTimeout(Bilingual, TimeoutError):
    """The node did not answer a technician's request in time."""


class TechDesk:
    """Technician requests, enrolled tags and rehearsal gestures."""

    def __init__(self, ctx: Context, bridge: MqttBridge, journal: Journal, alert: Alert, *,
                 changed: Callable[[], None], wall: Callable[[], float]) -> None:
        self.ctx = ctx
        self.bridge = bridge
        self.journal = journal
        self.alert = alert
        self.changed = changed
        self.wall = wall
        #: requests waiting for their node's reply, by request id
        self.waiters: dict[str, asyncio.Future[TechReply]] = {}

    def _known(self, node: str, prop: str) -> None:
        if node not in self.ctx.registry.nodes:
            msg = f"nœud inconnu {node!r}"
            raise NotFoundError(msg, en=f"unknown node {node!r}")
        if (node, prop) not in self.ctx.registry.props:
            msg = f"accessoire inconnu {node}.{prop}"
            raise NotFoundError(msg, en=f"unknown prop {node}.{prop}")

    async def request(self, node: str, prop: str, action: str, *, timeout: float = 10.0,
                      who: str = GAME_MASTER) -> TechReply:
        """Ask *node* to self-test *prop* (``self_test``) or to read the next tag presented
        to it (``enroll``), and wait for its :class:`TechReply` (audited).

        Raises LookupError (unknown node or prop), EngineError (not an RFID reader; a
        self-test that moves something while a game is played), :class:`NodeUnavailable`
        (node offline), :class:`NodeTimeout` (no answer within *timeout* + a margin).
        """
        self._known(node, prop)
        info = self.ctx.registry.props[(node, prop)]
        engine = self.ctx.engine
        if action == "enroll" and info.kind not in RFID_KINDS:
            msg = f"{node}.{prop} ({info.kind}) n'est pas un lecteur RFID"
            raise EngineError(msg, en=f"{node}.{prop} ({info.kind}) is not an RFID reader")
        if action == "self_test" and info.kind in ACTUATOR_KINDS and engine.phase in PLAYING:
            msg = (f"partie en cours : le test de {node}.{prop} ({info.kind}) la ferait bouger ; "
                   "arrêtez la partie d'abord")
            raise EngineError(msg, en=f"a game is running: testing {node}.{prop} ({info.kind}) would "
                                      "move it; stop the game first")
        if action == "self_test" and info.kind in LOCK_KINDS:
            self.alert.refuse_locking(f"tester « {info.label} » (le test la verrouille un instant)",
                                      en=f"test “{info.label}” (the test locks it for a moment)")
        if not self.ctx.registry.nodes[node].online:
            msg = f"le nœud {node} est hors ligne"
            raise NodeUnavailable(msg, en=f"node {node} is offline")
        request = TechRequest(id=contract.new_id(), action=action, prop=prop, timeout=timeout)
        waiter: asyncio.Future[TechReply] = asyncio.get_running_loop().create_future()
        self.waiters[request.id] = waiter
        self.bridge.publish(self.bridge.topics.node_tech(node), request.to_bytes())
        label = {"self_test": "test", "enroll": "enrôlement"}.get(action, action)
        try:
            reply = await asyncio.wait_for(waiter, timeout + TECH_MARGIN_S)
        except TimeoutError:
            self.ctx.engine.audit("tech", who=who, target=f"{node}.{prop}", detail=f"{label} : sans réponse")
            self.journal.save()
            msg = f"le nœud {node} n'a pas répondu en {timeout + TECH_MARGIN_S:.0f} s"
            raise NodeTimeout(msg, en=f"node {node} did not answer within "
                                      f"{timeout + TECH_MARGIN_S:.0f} s") from None
        finally:
            self.waiters.pop(request.id, None)
        outcome = "réussi" if reply.ok else f"échec{' : ' + reply.message if reply.message else ''}"
        self.ctx.engine.audit("tech", who=who, target=f"{node}.{prop}", detail=f"{label} {outcome}")
        self.journal.save()
        self.changed()
        return reply

    def on_reply(self, reply: TechReply) -> None:
        """A node's answer: to the request waiting for it (a late or unknown one is dropped)."""
        waiter = self.waiters.pop(reply.id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def enrolled_tags(self) -> list[dict[str, Any]]:
        """The tags enrolled from the technician page (newest last)."""
        try:
            return json.loads(self.journal.store.get_meta(ENROLLED_META) or "[]")
        except (sqlite3.Error, StoreError, ValueError):
            log.exception("reading the enrolled tags failed")
            return []

    def remember_tag(self, node: str, prop: str, uid: str, name: str, *, who: str) -> dict[str, Any]:
        """Keep *uid* under *name* for *node.prop* (replacing an earlier name of that uid)."""
        entry = {"node": node, "prop": prop, "uid": uid, "name": name, "at": self.wall(), "who": who}
        tags = [t for t in self.enrolled_tags()
                if (t.get("node"), t.get("prop"), t.get("uid")) != (node, prop, uid)]
        tags.append(entry)
        # NOTE: at once, not through the backlog: the technician is told if it failed (503).
        self.journal.store.set_meta(ENROLLED_META, json.dumps(tags[-200:], ensure_ascii=False))
        self.ctx.engine.audit("tech", who=who, target=f"{node}.{prop}", detail=f"badge {uid} enrôlé : {name}")
        self.journal.save()
        return entry

    def simulate(self, node: str, prop: str, gesture: str, value: Any) -> str:
        """Send a rehearsal gesture to a simulated prop, once it is known to be one the prop
        has, with a value it takes, to a node that can perform it. Raises LookupError,
        :class:`props.sim.UnknownGesture`, BadActionParams, :class:`NodeUnavailable`
        (offline: the gesture would be lost), EngineError (a node not simulated would drop
        it), in French, and publishes nothing then."""
        config = self.ctx.configs.get((node, prop))
        if config is None:
            msg = f"accessoire inconnu {node}.{prop}"
            raise NotFoundError(msg, en=f"unknown prop {node}.{prop}")
        check_gesture(config, gesture, value)
        room = self.ctx.registry.nodes[node]
        if not room.online:
            msg = f"le nœud {room.label} est hors ligne : le geste n'arriverait pas"
            raise NodeUnavailable(msg, en=f"node {room.label} is offline: the gesture would be lost")
        if room.simulated is False:
            msg = (f"le nœud {room.label} pilote du vrai matériel (lancé sans --simulate) : "
                   "un geste de répétition n'y ferait rien")
            raise EngineError(msg, en=f"node {room.label} drives real hardware (started without "
                                      "--simulate): a rehearsal gesture would do nothing there")
        g = Gesture(id=contract.new_id(), gesture=gesture, value=value)
        self.bridge.publish(self.bridge.topics.prop_simulate(node, prop), g.to_bytes())
        return g.id
