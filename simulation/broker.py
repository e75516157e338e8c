"""A simulated MQTT 3.1.1 broker with Mosquitto 2.0's semantics for what this project uses.

Sessions (clean and persistent), client-id takeover, last wills, keepalive expiry,
subscriptions with wildcards, retained messages, QoS 0 and 1 with an in-flight window
and an offline queue, and restarts with and without persistence. Where Mosquitto departs
from the MQTT 3.1.1 text, this broker does what Mosquitto 2.0.11 does (tests/simulation/
test_broker_differential.py runs the same scripts on both); those places say so.

Not modelled: QoS 2, MQTT 5, authentication and ACLs, ``$SYS`` topics, bridges, message
size limits, message expiry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

from simulation.network import Connection, Network
from simulation.packets import (
    Closed,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Publish,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
)
from simulation.scheduler import Machine
from simulation.session import Session
from simulation.topics import RetainedTree, matches, valid_filter, valid_topic, walk_key

#: the granted-QoS code of a refused subscription
SUBSCRIPTION_FAILED = 0x80
#: CONNACK "identifier rejected"
REFUSED_IDENTIFIER = 2


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """The Mosquitto options the simulation honours (their Mosquitto 2.0 defaults)."""

    persistence: bool = False
    autosave_interval: int = 1800
    max_inflight_messages: int = 20
    max_queued_messages: int = 1000
    queue_qos0_messages: bool = False
    #: not an option: Mosquitto 2.0 looks for expired keepalives only when 6 whole seconds
    #: passed since its last look (``keepalive__check``); MQTT says "within 1.5 × keepalive"
    keepalive_sweep: int = 6

    @classmethod
    def from_mosquitto_conf(cls, text: str) -> BrokerConfig:
        """The options above as a ``mosquitto.conf`` sets them (others are ignored)."""
        defaults = cls()
        known = {f.name for f in fields(cls)} - {"keepalive_sweep"}
        values: dict[str, bool | int] = {}
        for line in text.splitlines():
            key, _, value = line.partition("#")[0].strip().partition(" ")
            if key in known:
                flag = isinstance(getattr(defaults, key), bool)
                values[key] = value.strip() == "true" if flag else int(value)
        return replace(defaults, **values)

    @classmethod
    def production(cls) -> BrokerConfig:
        """What the shipped ``config/mosquitto/mosquitto.conf`` configures."""
        from config.broker import MOSQUITTO_CONF

        return cls.from_mosquitto_conf(Path(MOSQUITTO_CONF).read_text(encoding="utf-8"))


class BrokerConn:
    """The broker's end of one client connection."""

    __slots__ = ("broker", "client_id", "connection", "keepalive", "last_in", "session", "state", "will")

    def __init__(self, broker: SimBroker, connection: Connection) -> None:
        self.broker = broker
        self.connection = connection
        self.client_id = ""
        self.keepalive = 0
        self.last_in = broker.now_s()
        self.will: Will | None = None
        self.session: Session | None = None
        self.state = "new"  # then "active", then "closed"

    def receive(self, packet: Packet) -> None:
        self.broker.receive(self, packet)

    def send(self, packet: Packet) -> None:
        self.connection.down.send(packet)


@dataclass(slots=True)
class _Saved:
    """The persistence file: retained messages and persistent sessions."""

    retained: list[tuple[str, bytes, int]]
    sessions: list[Session]


class SimBroker:
    """One broker process on the simulated network; :meth:`start` it first."""

    def __init__(self, network: Network, machine: Machine, config: BrokerConfig | None = None) -> None:
        self.network = network
        self.scheduler = network.scheduler
        self.machine = machine
        self.config = config or BrokerConfig()
        self.running = False
        self.sessions: dict[str, Session] = {}
        self.retained = RetainedTree()
        self.routed = 0
        self.dropped = 0
        self._conns: dict[BrokerConn, None] = {}  # a dict: ordered, so runs repeat
        self._saved: _Saved | None = None
        self._incarnation = 0
        self._auto_ids = 0
        self._routes: dict[str, list[tuple[Session, int]]] = {}

    def now_s(self) -> int:
        """Mosquitto's clock: whole seconds of its machine's monotonic time."""
        return math.floor(self.machine.monotonic() + 1e-6)  # a timer set for a second is in it

    def _log(self, text: str) -> None:
        self.scheduler.log(self.machine.name, text)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start listening; with persistence, load what the last save wrote."""
        if self.running:
            return
        self.running = True
        self._incarnation += 1
        self.network.accept = self._accept
        if self.config.persistence and self._saved is not None:
            for topic, payload, qos in self._saved.retained:
                self.retained.store(topic, payload, qos)
            for session in self._saved.sessions:
                self.sessions[session.client_id] = session.saved()
        self._log(f"started ({len(self.retained.all())} retained, {len(self.sessions)} sessions)")
        # Mosquitto looks at keepalives at start, then every `keepalive_sweep` whole seconds
        self._at_second(self.now_s(), self._sweep, self._incarnation)
        if self.config.persistence and self.config.autosave_interval:
            self._at_second(self.now_s() + self.config.autosave_interval + 1, self._autosave,
                            self._incarnation)

    def stop(self) -> None:
        """SIGTERM: the wills of every connected client are published (Mosquitto 2.0 does,
        at shutdown), then the state is saved (with persistence) and the sockets closed."""
        if not self.running:
            return
        for conn in [c for c in self._conns if c.state == "active"]:
            self._publish_will(conn)
        if self.config.persistence:
            self._save()
        self._halt("broker stopped")

    def kill(self) -> None:
        """SIGKILL: no will, no save (what the last autosave wrote is what a restart loads);
        the OS closes the sockets."""
        if self.running:
            self._halt("broker killed")

    def restart(self) -> None:
        self.stop()
        self.start()

    def _halt(self, reason: str) -> None:
        for conn in list(self._conns):
            conn.state = "closed"
            conn.connection.close_by_broker(reason)
        self._conns.clear()
        self.running = False
        self._incarnation += 1
        self.network.accept = None
        self.sessions = {}
        self.retained = RetainedTree()
        self._routes.clear()
        self._log(reason)

    def _save(self) -> None:
        self._saved = _Saved(
            [(m.topic, m.payload, m.qos) for m in self.retained.all()],
            [s.saved() for s in self.sessions.values() if not s.clean])

    def _at_second(self, second: int, action: Callable[[int], None], incarnation: int) -> None:
        self.scheduler.call_later(second - self.machine.monotonic(), action, incarnation)

    def _autosave(self, incarnation: int) -> None:
        if incarnation == self._incarnation:
            self._save()
            self._at_second(self.now_s() + self.config.autosave_interval + 1, self._autosave, incarnation)

    def _sweep(self, incarnation: int) -> None:
        if incarnation != self._incarnation:
            return
        now = self.now_s()
        for conn in [c for c in self._conns if c.state == "active" and c.keepalive]:
            # Mosquitto: whole seconds, and integer 1.5 × keepalive (keepalive 1 → 1 s)
            if now - conn.last_in > conn.keepalive * 3 // 2:
                self._drop(conn, "keepalive expired")
        self._at_second(now + self.config.keepalive_sweep, self._sweep, incarnation)

    # -- observation (for tests and invariants) -----------------------------------------
    def connected(self, client_id: str) -> bool:
        session = self.sessions.get(client_id)
        return session is not None and session.conn is not None

    # -- connections --------------------------------------------------------------------
    def _accept(self, connection: Connection) -> BrokerConn | None:
        if not self.running:
            return None
        conn = BrokerConn(self, connection)
        self._conns[conn] = None
        return conn

    def receive(self, conn: BrokerConn, packet: Packet) -> None:
        if conn.state == "closed":
            return
        if isinstance(packet, Closed):
            self._lost(conn, packet.reason)
            return
        conn.last_in = self.now_s()
        if conn.state == "new":
            if isinstance(packet, Connect):
                self._connect(conn, packet)
            else:
                self._drop(conn, "protocol error: first packet not CONNECT")
        elif isinstance(packet, Publish):
            self._on_publish(conn, packet)
        elif isinstance(packet, Puback):
            self._on_puback(conn, packet)
        elif isinstance(packet, Subscribe):
            self._on_subscribe(conn, packet)
        elif isinstance(packet, Unsubscribe):
            self._on_unsubscribe(conn, packet)
        elif isinstance(packet, Pingreq):
            conn.send(Pingresp())
        elif isinstance(packet, Disconnect):
            conn.will = None  # a clean DISCONNECT discards the will
            self._lost(conn, "disconnected")
            conn.connection.close_by_broker("disconnected")
        else:
            self._drop(conn, f"protocol error: {type(packet).__name__}")

    def _connect(self, conn: BrokerConn, packet: Connect) -> None:
        cid = packet.client_id
        if not cid:
            if not packet.clean_session:
                conn.send(Connack(False, REFUSED_IDENTIFIER))
                conn.state = "closed"
                conn.connection.close_by_broker("identifier rejected")
                return
            self._auto_ids += 1
            cid = f"auto-{self._auto_ids:08d}"
        conn.client_id, conn.keepalive, conn.will = cid, packet.keepalive, packet.will
        old = self.sessions.get(cid)
        if old is not None and old.conn is not None:
            previous = old.conn
            # Mosquitto 2.0 publishes the old connection's will when either the old or the
            # new connection is a clean session, and drops it when both are persistent.
            if old.clean or packet.clean_session:
                self._publish_will(previous)
            previous.will = None
            previous.state = "closed"
            self._conns.pop(previous, None)
            old.conn = None
            previous.connection.close_by_broker("session taken over")
            self._log(f"{cid}: already connected, closing the old connection")
        if old is not None and (old.clean or packet.clean_session):
            del self.sessions[cid]
            self._routes.clear()
            old = None
        session = old or Session(cid, packet.clean_session)
        self.sessions[cid] = session
        session.conn, conn.session, conn.state = conn, session, "active"
        conn.send(Connack(old is not None, 0))
        session.resume(self.config)

    def _lost(self, conn: BrokerConn, reason: str) -> None:
        """The connection ended (closed by the client, reset, or by us): will and session."""
        if conn.state == "closed":
            return
        was_active, conn.state = conn.state == "active", "closed"
        self._conns.pop(conn, None)
        if not was_active:
            return
        session = conn.session
        if session is not None and session.conn is conn:
            session.conn = None
        self._log(f"{conn.client_id}: {reason}")
        self._publish_will(conn)
        if session is not None and session.clean and self.sessions.get(conn.client_id) is session:
            del self.sessions[conn.client_id]
            self._routes.clear()

    def _drop(self, conn: BrokerConn, reason: str) -> None:
        """The broker closes the connection (keepalive, protocol error): the will goes out."""
        self._lost(conn, reason)
        conn.connection.close_by_broker(reason)

    def _publish_will(self, conn: BrokerConn) -> None:
        will, conn.will = conn.will, None
        if will is not None:
            self._log(f"{conn.client_id}: publishing its will on {will.topic}")
            self._route(will.topic, will.payload, will.qos, will.retain)

    # -- messages -----------------------------------------------------------------------
    def _on_publish(self, conn: BrokerConn, packet: Publish) -> None:
        if not valid_topic(packet.topic) or packet.qos > 1:
            self._drop(conn, "protocol error: bad PUBLISH")
            return
        self._route(packet.topic, packet.payload, packet.qos, packet.retain)
        if packet.qos:
            conn.send(Puback(packet.mid))

    def _route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Send to every matching subscriber (once per client), then store if retained."""
        self.routed += 1
        for session, granted in self._subscribers(topic):
            # Mosquitto clears the retain flag of a live forward (no retain-as-published)
            self._enqueue(session, Publish(topic, payload, min(qos, granted), False))
        if retain:
            self.retained.store(topic, payload, qos)

    def _subscribers(self, topic: str) -> list[tuple[Session, int]]:
        found = self._routes.get(topic)
        if found is None:
            found = []
            for session in self.sessions.values():
                best: tuple[tuple[int, ...], int] | None = None
                for topic_filter, granted in session.subs.items():
                    if matches(topic_filter, topic):
                        key = walk_key(topic_filter)
                        if best is None or key < best[0]:
                            best = (key, granted)
                if best is not None:
                    found.append((session, best[1]))
            if len(self._routes) > 10_000:
                self._routes.clear()
            self._routes[topic] = found
        return found

    def _enqueue(self, session: Session, message: Publish) -> None:
        conn = session.conn
        pending = conn.connection.down.pending if conn is not None else int
        if not session.enqueue(message, self.config, pending):
            self.dropped += 1

    def _on_puback(self, conn: BrokerConn, packet: Puback) -> None:
        if conn.session is not None:
            conn.session.acknowledge(packet.mid, self.config)

    def _on_subscribe(self, conn: BrokerConn, packet: Subscribe) -> None:
        session = conn.session
        assert session is not None
        granted: list[int] = []
        retained: list[Publish] = []
        for topic_filter, qos in packet.topics:
            if not valid_filter(topic_filter) or not 0 <= qos <= 1:
                granted.append(SUBSCRIPTION_FAILED)
                continue
            session.subs[topic_filter] = qos
            granted.append(qos)
            retained += [Publish(m.topic, m.payload, min(m.qos, qos), True)
                         for m in self.retained.search(topic_filter)]
        self._routes.clear()
        # Mosquitto sends the SUBACK first, then the retained messages (filter by filter)
        conn.send(Suback(packet.mid, tuple(granted)))
        for message in retained:
            self._enqueue(session, message)

    def _on_unsubscribe(self, conn: BrokerConn, packet: Unsubscribe) -> None:
        session = conn.session
        assert session is not None
        for topic_filter in packet.topics:
            session.subs.pop(topic_filter, None)
        self._routes.clear()
        conn.send(Unsuback(packet.mid))
