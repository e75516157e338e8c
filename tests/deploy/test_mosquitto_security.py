"""The production broker's security, over real Mosquitto with the shipped conf and ACL.

The users come from ``escape-apartment broker credentials`` (our own ``$7$`` hashes), so a
passing run also proves Mosquitto accepts the password file we write.

How "denied" is checked: Mosquitto acknowledges a publish it refuses (PUBACK, code 0) and
simply never delivers it, so the PUBACK proves nothing. Each test instead sends the
forbidden messages, then a *fence* — an allowed message from the same publisher that the
same subscriber receives. Mosquitto handles one client's packets in order, so once the
fence has arrived, any forbidden message that was going to be delivered would have been:
no sleeps, and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.reasoncodes import ReasonCode

from protocol.contract import Topics, new_id
from tests.deploy.conftest import read_env_file
from tests.support.mosquitto import Mosquitto, connect_packet, mosquitto_required, read_connack

pytestmark = pytest.mark.mosquitto

REPO = Path(__file__).resolve().parents[2]
T = Topics("temoin")
#: upper bound of every wait for something that should happen
WAIT = 3.0


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Peer:
    """A paho 2.x client (VERSION2 callbacks) that records what it receives.

    Every wait is bounded by *timeout*; nothing here blocks forever.
    """

    def __init__(self, broker: Mosquitto, *, username: str | None = None,
                 password: str | None = None, name: str = "peer") -> None:
        self.broker = broker
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"test-{name}-{new_id()}", protocol=mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.reason: ReasonCode | None = None
        self._connack = threading.Event()
        self._subacks: set[int] = set()
        self.messages: list[Received] = []
        self._cond = threading.Condition()

    # paho network thread: record and notify, nothing else
    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: ReasonCode,
                    _p: object) -> None:
        self.reason = reason
        self._connack.set()

    def _on_subscribe(self, _c: mqtt.Client, _u: object, mid: int, _r: object,
                      _p: object) -> None:
        with self._cond:
            self._subacks.add(mid)
            self._cond.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, msg.payload, bool(msg.retain)))
            self._cond.notify_all()

    # test thread
    def connect(self, *, timeout: float = WAIT) -> ReasonCode:
        self.client.connect(self.broker.host, self.broker.port, keepalive=10)
        # Drive the network by hand until the CONNACK: a refused client then never gets a
        # background thread that would wait out paho's reconnect delay before stopping.
        deadline = time.monotonic() + timeout
        while not self._connack.is_set() and time.monotonic() < deadline:
            self.client.loop(timeout=0.05)
        assert self.reason is not None, "no CONNACK"
        if self.reason.is_failure:
            self.client.disconnect()
        else:
            self.client.loop_start()
        return self.reason

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, *topics: str, timeout: float = WAIT) -> None:
        _rc, mid = self.client.subscribe([(topic, 1) for topic in topics])
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self._subacks, timeout), "no SUBACK"

    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                timeout: float = WAIT) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout)
        # PUBACK received — which says nothing about whether the broker delivers it
        assert info.is_published(), f"no PUBACK for {topic}"

    def wait_for(self, topic: str, payload: bytes, *, timeout: float = WAIT) -> Received:
        def find() -> Received | None:
            return next((m for m in self.messages if m.topic == topic and m.payload == payload),
                        None)

        with self._cond:
            found = self._cond.wait_for(find, timeout)
        assert found is not None, f"{topic} {payload!r} not received within {timeout} s"
        return found

    def wait_for_topic(self, topic: str, *, timeout: float = WAIT) -> Received:
        with self._cond:
            found = self._cond.wait_for(
                lambda: next((m for m in self.messages if m.topic == topic), None), timeout)
        assert found is not None, f"nothing on {topic} within {timeout} s"
        return found

    def got(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]


OpenPeer = Callable[[str], Peer]


def marker(what: str) -> bytes:
    """A payload no other test (or retained leftover) can have sent."""
    return json.dumps({"v": 1, "test": what, "nonce": new_id()}).encode()


@pytest.fixture
def peer(production_broker: Mosquitto, secrets_dir: Path) -> Iterator[OpenPeer]:
    """``peer("hall")`` → a connected client with that user's generated credentials."""
    opened: list[Peer] = []

    def open_peer(user: str) -> Peer:
        env = read_env_file(secrets_dir / f"{user}.env")
        client = Peer(production_broker, username=env["ESCAPE_MQTT_USERNAME"],
                      password=env["ESCAPE_MQTT_PASSWORD"], name=user)
        reason = client.connect()
        assert not reason.is_failure, f"{user} refused: {reason}"
        opened.append(client)
        return client

    yield open_peer
    for client in opened:
        client.close()


# -- authentication -----------------------------------------------------------------------
def test_anonymous_client_is_refused(production_broker: Mosquitto) -> None:
    client = Peer(production_broker, name="anonymous")
    reason = client.connect()
    assert reason.is_failure
    assert reason == "Not authorized"


@pytest.mark.parametrize("user", ["hall", "controller"])
def test_wrong_password_is_refused(production_broker: Mosquitto, user: str) -> None:
    client = Peer(production_broker, username=user, password="not-the-password", name=user)
    assert client.connect() == "Not authorized"


def test_unknown_user_is_refused(production_broker: Mosquitto, secrets_dir: Path) -> None:
    # a valid password of another user does not help an unknown username
    password = read_env_file(secrets_dir / "hall.env")["ESCAPE_MQTT_PASSWORD"]
    client = Peer(production_broker, username="sdb", password=password, name="sdb")
    assert client.connect() == "Not authorized"


def test_every_generated_user_can_log_in(peer: OpenPeer) -> None:
    for user in ("hall", "entree", "cuisine", "controller", "healthcheck"):
        peer(user)


# -- what a node may publish ----------------------------------------------------------------
def test_node_publishes_its_own_topics_to_the_controller(peer: OpenPeer) -> None:
    controller, hall = peer("controller"), peer("hall")
    controller.subscribe(*T.controller_subscriptions())
    own = [T.node_status("hall"), T.node_heartbeat("hall"), T.prop_state("hall", "mailbox_lock"),
           T.prop_event("hall", "mailbox_keypad"), T.node_tech_reply("hall")]
    sent = {topic: marker(topic) for topic in own}
    for topic, payload in sent.items():
        hall.publish(topic, payload)
    for topic, payload in sent.items():
        controller.wait_for(topic, payload)


def test_node_cannot_publish_as_another_node_or_as_the_controller(peer: OpenPeer) -> None:
    controller, hall = peer("controller"), peer("hall")
    controller.subscribe("escape/#")
    forged = [
        T.prop_state("entree", "door_lock"),      # fake "locked" report of another room
        T.prop_set("entree", "door_lock"),        # unlock (or lock!) another room's door
        T.prop_set("hall", "mailbox_lock"),       # commands come from the controller only
        T.prop_event("entree", "door_keypad"),    # solve another room's puzzle
        T.node_status("entree"),
        T.node_heartbeat("entree"),               # keep a dead room looking alive
        T.node_resync("entree"),
        T.controller_status,
        T.game_state,
    ]
    for topic in forged:
        hall.publish(topic, marker("forged"), retain=True)
    fence = marker("fence")
    hall.publish(T.prop_event("hall", "mailbox_keypad"), fence)
    controller.wait_for(T.prop_event("hall", "mailbox_keypad"), fence)
    leaked = [m.topic for m in controller.messages if m.topic in forged]
    assert leaked == []


def test_forged_messages_are_not_retained_either(peer: OpenPeer) -> None:
    hall = peer("hall")
    forged = T.prop_state("entree", "door_lock")
    hall.publish(forged, marker("forged-retained"), retain=True)
    own, own_payload = T.node_status("hall"), marker("own-retained")
    hall.publish(own, own_payload, retain=True)
    late = peer("controller")  # subscribes afterwards: sees retained messages only
    late.subscribe(forged, own)
    late.wait_for(own, own_payload)
    assert [m for m in late.got(forged) if b"forged-retained" in m.payload] == []


# -- what a node may receive ----------------------------------------------------------------
def test_node_receives_its_commands_and_the_controller_status(peer: OpenPeer) -> None:
    controller, hall = peer("controller"), peer("hall")
    hall.subscribe(*T.node_subscriptions("hall"))
    topics = [T.prop_set("hall", "mailbox_lock"), T.prop_simulate("hall", "mailbox_keypad"),
              T.node_resync("hall"), T.node_tech("hall"), T.controller_status]
    sent = {topic: marker(topic) for topic in topics}
    for topic, payload in sent.items():
        controller.publish(topic, payload)
    for topic, payload in sent.items():
        hall.wait_for(topic, payload)


def test_node_reads_the_emergency_and_its_own_status_but_no_other_nodes(peer: OpenPeer) -> None:
    controller, hall = peer("controller"), peer("hall")
    hall.subscribe(T.emergency, T.node_status("hall"), T.node_status("entree"))
    emergency, own_status = marker("emergency"), marker("own-status")
    controller.publish(T.emergency, emergency, retain=True)
    controller.publish(T.node_status("entree"), marker("not-for-hall"), retain=True)
    hall.publish(T.node_status("hall"), own_status, retain=True)   # its birth, read back
    hall.wait_for(T.emergency, emergency)
    hall.wait_for(T.node_status("hall"), own_status)
    assert [m for m in hall.messages if b"not-for-hall" in m.payload] == []
    # ...and a node subscribing later gets the retained emergency at once
    late = peer("entree")
    late.subscribe(T.emergency)
    assert late.wait_for(T.emergency, emergency).retain


def test_node_cannot_write_the_emergency(peer: OpenPeer) -> None:
    """Neither raise nor clear it: only the controller (the game master) does."""
    controller, hall = peer("controller"), peer("hall")
    real = marker("the-game-masters-emergency")
    controller.publish(T.emergency, real, retain=True)
    controller.subscribe(T.emergency, T.prop_event("hall", "mailbox_keypad"))
    controller.wait_for(T.emergency, real)   # the retained one, at subscription
    forged = marker("forged-emergency")
    hall.publish(T.emergency, forged, retain=True)
    hall.publish(T.emergency, b"", retain=True)   # deleting the retained one: a forged clear
    fence = marker("fence")
    hall.publish(T.prop_event("hall", "mailbox_keypad"), fence)
    controller.wait_for(T.prop_event("hall", "mailbox_keypad"), fence)
    assert [m.payload for m in controller.got(T.emergency)] == [real]
    late = peer("controller")   # subscribes afterwards: the retained one is still the real one
    late.subscribe(T.emergency)
    assert late.wait_for(T.emergency, real).retain
    assert [m.payload for m in late.got(T.emergency)] == [real]


def test_node_cannot_receive_another_nodes_commands(peer: OpenPeer) -> None:
    controller, hall = peer("controller"), peer("hall")
    # Subscribing is not refused (Mosquitto checks "read" when it delivers); what matters
    # is that nothing of entree's arrives, however wide the subscription.
    hall.subscribe(f"{T.root}/nodes/entree/props/+/set", f"{T.root}/nodes/entree/#", "escape/#")
    others = [T.prop_set("entree", "door_lock"), T.prop_simulate("entree", "door_keypad"),
              T.node_resync("entree"), T.node_tech("entree"), T.node_tech_reply("entree"),
              T.prop_state("entree", "door_lock"), T.prop_event("entree", "door_keypad"),
              T.game_state]
    for topic in others:
        controller.publish(topic, marker("not-for-hall"))
    fence, fence_payload = T.prop_set("hall", "mailbox_lock"), marker("fence")
    controller.publish(fence, fence_payload)
    hall.wait_for(fence, fence_payload)
    leaked = [m.topic for m in hall.messages if b"not-for-hall" in m.payload]
    assert leaked == []


# -- last wills -----------------------------------------------------------------------------
def _vanish_with_will(broker: Mosquitto, *, username: str, password: str,
                      will_topic: str, will_payload: bytes) -> None:
    """Connect with a will, then drop the socket without DISCONNECT: the will fires."""
    packet = connect_packet(client_id=f"test-will-{new_id()}", username=username,
                            password=password, will_topic=will_topic,
                            will_payload=will_payload, will_qos=1, will_retain=True)
    with socket.create_connection((broker.host, broker.port), timeout=WAIT) as sock:
        sock.sendall(packet)
        assert read_connack(sock) == 0


def test_node_last_will_reaches_controller_only_on_its_own_status(
        production_broker: Mosquitto, secrets_dir: Path, peer: OpenPeer) -> None:
    controller = peer("controller")
    controller.subscribe(*T.controller_subscriptions())
    password = read_env_file(secrets_dir / "hall.env")["ESCAPE_MQTT_PASSWORD"]
    # Mosquitto 2.0 accepts the CONNECT with a will on another node's status...
    forged = marker("forged-will")
    _vanish_with_will(production_broker, username="hall", password=password,
                      will_topic=T.node_status("entree"), will_payload=forged)
    # ...and the real one is the fence: it comes from a later connection.
    own = marker("own-will")
    _vanish_with_will(production_broker, username="hall", password=password,
                      will_topic=T.node_status("hall"), will_payload=own)
    controller.wait_for(T.node_status("hall"), own)
    assert [m for m in controller.got(T.node_status("entree")) if m.payload == forged] == []


# -- the controller -------------------------------------------------------------------------
def test_controller_reads_and_writes_the_whole_tree(peer: OpenPeer) -> None:
    controller, watcher = peer("controller"), peer("controller")
    watcher.subscribe("escape/#")
    topics = [T.prop_set("entree", "door_lock"), T.game_state, T.controller_status,
              T.prop_state("cuisine", "hood_switch"), T.node_status("hall")]
    sent = {topic: marker(topic) for topic in topics}
    for topic, payload in sent.items():
        controller.publish(topic, payload)
    for topic, payload in sent.items():
        watcher.wait_for(topic, payload)


# -- persistence ----------------------------------------------------------------------------
def test_retained_messages_survive_a_broker_restart(production_broker: Mosquitto,
                                                    peer: OpenPeer) -> None:
    hall, controller = peer("hall"), peer("controller")
    state, state_payload = T.prop_state("hall", "mailbox_lock"), marker("persisted-state")
    game, game_payload = T.game_state, marker("persisted-game")
    hall.publish(state, state_payload, retain=True)
    controller.publish(game, game_payload, retain=True)
    hall.close()
    controller.close()

    production_broker.restart()  # clean stop: Mosquitto writes its persistence file

    fresh = peer("controller")
    fresh.subscribe(state, game)
    assert fresh.wait_for(state, state_payload).retain
    assert fresh.wait_for(game, game_payload).retain


# -- the compose health check ---------------------------------------------------------------
def test_compose_healthcheck_command_passes_against_the_production_broker(
        production_broker: Mosquitto, secrets_dir: Path) -> None:
    """Run docker-compose.yml's own health check command, pointed at the test broker."""
    if shutil.which("mosquitto_sub") is None:
        if mosquitto_required():
            pytest.fail("mosquitto_sub is not installed")
        pytest.skip("mosquitto_sub is not installed")
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    kind, command = compose["services"]["mosquitto"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    # compose turns "$$" into "$" before the container's shell sees it; the container's
    # environment holds healthcheck.env (the service's env_file)
    command = command.replace("$$", "$")
    assert re.search(r"-p 1883\b", command), command
    command = re.sub(r"-p 1883\b", f"-p {production_broker.port}", command)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           **read_env_file(secrets_dir / "healthcheck.env")}
    start = time.monotonic()
    done = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True,
                          timeout=15, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "no uptime received"
    assert time.monotonic() - start < 5


def test_healthcheck_user_reads_uptime_but_not_the_game(peer: OpenPeer) -> None:
    controller, probe = peer("controller"), peer("healthcheck")
    probe.subscribe("escape/#")
    controller.publish(T.game_state, marker("not-for-healthcheck"))
    # The fence: the uptime is retained, so subscribing now delivers it right away, after
    # anything the controller's publish (already acknowledged) would have queued.
    probe.subscribe("$SYS/broker/uptime")
    probe.wait_for_topic("$SYS/broker/uptime")
    assert [m.topic for m in probe.messages if m.topic.startswith("escape/")] == []
