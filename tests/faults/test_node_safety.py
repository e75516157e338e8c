"""Safety rules of the node, through the contract only: releasing is unconditional, the
emergency is a first-class message.

A node agent runs on MockFactory over a real Mosquitto; a bare MQTT client (``wire``)
plays the controller (``tests/support/fake_controller.py``): retained statuses with its
uptime, commands dated on it, the retained ``Emergency``. The relay is read on the
MockFactory pin; what the controller would see, on the retained state topic.

What players see: a door opens whenever the controller says so — whatever the command's
age, session or id, whatever the node is busy with — and during an emergency no door
closes, even for a node restarted meanwhile. What the game master sees: every refused
lock reported back (the state says the lock is still open).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from nodes.agent import NodeAgent
from protocol.contract import Emergency, Resync, TechReply, TechRequest, Topics, new_id
from protocol.mqtt import BrokerAddress
from tests.faults.conftest import EMERGENCY, RELAY, Wire, fault_game, wait_for
from tests.support.fake_controller import FakeController, nodelay
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mosquitto

T = Topics("faults")
STATE = T.prop_state("hall", "mailbox_lock")


@dataclass
class Hall:
    agent: NodeAgent
    factory: MockFactory

    @property
    def locked(self) -> bool:
        return bool(self.factory.pin(RELAY).state)


def start_hall(broker: Mosquitto, data_dir: Path) -> Hall:
    factory = MockFactory()
    agent = NodeAgent(game=fault_game(), node_id="hall", broker=BrokerAddress(broker.host, broker.port),
                      pin_factory=factory, simulate=True, data_dir=data_dir)
    agent.start()
    wait_for(agent.connected.is_set, what="the hall to connect")
    return Hall(agent, factory)


@pytest.fixture
def hall(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Hall]:
    node = start_hall(mosquitto, tmp_path / "hall")
    yield node
    node.agent.stop()


@pytest.fixture
def controller(wire: Wire) -> Iterator[FakeController]:
    nodelay(wire.client)
    ctl = FakeController(publish=wire.publish, topics=T, heartbeat=0.3).start()
    yield ctl
    ctl.stop()


def engaged_reports(wire: Wire, since: float) -> list[bool]:
    return [json.loads(m.payload)["engaged"] for m in wire.received(STATE, since=since) if m.payload]


def fence(wire: Wire, hall: Hall) -> None:
    """Wait until the hall has handled everything published before (one publisher's
    messages arrive in order; the Resync goes through its worker, the last in line)."""
    marker = Resync(reason=f"fence-{new_id()}")
    seen: list[object] = []
    previous = hall.agent.on_handled
    hall.agent.on_handled = lambda _parts, payload: seen.append(payload)
    try:
        wire.publish(T.node_resync("hall"), marker.to_bytes())
        wait_for(lambda: marker in seen, what="the hall to handle the fence")
    finally:
        hall.agent.on_handled = previous


def clock_known(wire: Wire, hall: Hall, ctl: FakeController) -> None:
    """Wait until the hall dates commands on *ctl*'s clock: a stale order to the bell (a
    button: harmless either way) is refused as expired only then."""
    def probe() -> bool:
        before = hall.agent.metrics["expired_commands"]
        ctl.send("hall", "bell", ctl.command("lock", issued=0.0, ttl=1.0))
        fence(wire, hall)
        return hall.agent.metrics["expired_commands"] > before
    wait_for(probe, what="the hall to know the controller's clock")


def emergency(wire: Wire, *, active: bool) -> float:
    """Publish the retained apartment emergency (or its clear); return when (perf_counter)."""
    message = Emergency(active=active, id=f"em{new_id()}", who="test (game master)")
    at = time.perf_counter()
    wire.publish(T.emergency, message.to_bytes(), retain=True, wait=False)
    return at


# -- releasing is unconditional -------------------------------------------------------------
def test_an_unlock_passes_every_filter_and_a_lock_passes_none(hall, wire, controller):
    wire.subscribe(STATE)
    clock_known(wire, hall, controller)
    lock = controller.command("lock")
    controller.send("hall", "mailbox_lock", lock)
    wait_for(lambda: hall.locked, what="a fresh lock to engage")

    # An unlock 100 s old (its ttl 1 s), for another session: applied at once.
    stale = controller.command("unlock", issued=0.0, ttl=1.0, session="another")
    controller.send("hall", "mailbox_lock", stale)
    wait_for(lambda: not hall.locked, what="a stale unlock of another session to release")

    controller.send("hall", "mailbox_lock", controller.command("lock"))
    wait_for(lambda: hall.locked, what="the lock again")
    # The same unlock again (its id applied already): applied again, and reported.
    since = time.monotonic()
    controller.send("hall", "mailbox_lock", stale)
    wait_for(lambda: not hall.locked, what="a repeated unlock id to release again")
    wait_for(lambda: False in engaged_reports(wire, since), what="the release reported")
    metrics = hall.agent.metrics
    assert metrics["expired_commands"] >= 1 and metrics["foreign_session"] == 0
    assert metrics["repeated_releases"] == 1

    # Every filter refuses a lock, and each refusal is reported (the lock is still open).
    refused = {
        "expired_commands": controller.command("lock", issued=0.0, ttl=1.0),
        "foreign_session": controller.command("lock", session="another"),
        "duplicate_commands": lock,
    }
    before = {name: metrics[name] for name in refused}
    since = time.monotonic()
    for command in refused.values():
        controller.send("hall", "mailbox_lock", command)
    fence(wire, hall)
    assert not hall.locked
    assert {name: metrics[name] - before[name] for name in refused} == dict.fromkeys(refused, 1)
    wait_for(lambda: len(engaged_reports(wire, since)) >= 3, what="each refusal reported")
    assert not any(engaged_reports(wire, since))

    # The emergency input holds the lock open: the controller's relock is refused, its
    # unlock is not.
    hall.factory.pin(EMERGENCY).drive_low()
    hall.factory.pin(EMERGENCY).drive_high()
    controller.send("hall", "mailbox_lock", controller.command("lock"))
    controller.send("hall", "mailbox_lock", controller.command("unlock"))
    fence(wire, hall)
    assert not hall.locked and metrics["held_commands"] == 1


# -- the emergency ---------------------------------------------------------------------------
def test_the_emergency_releases_at_once_holds_every_lock_and_its_clear_relocks_nothing(
        hall, wire, controller):
    wire.subscribe(STATE)
    controller.send("hall", "mailbox_lock", controller.command("lock"))
    wait_for(lambda: hall.locked, what="the lock to engage")

    since = time.monotonic()
    sent = emergency(wire, active=True)
    wait_for(lambda: not hall.locked, timeout=2, what="the emergency to release the relay")
    relay_ms = (time.perf_counter() - sent) * 1000
    wait_for(lambda: False in engaged_reports(wire, since), timeout=2, what="the release reported")
    reported_ms = (time.perf_counter() - sent) * 1000

    # While it is active every lock is refused (counted, and reported as still open).
    since = time.monotonic()
    for _ in range(3):
        controller.send("hall", "mailbox_lock", controller.command("lock"))
    fence(wire, hall)
    assert not hall.locked
    assert hall.agent.metrics["emergency_refused"] == 3
    assert engaged_reports(wire, since) and not any(engaged_reports(wire, since))

    # The game master clears it: nothing relocks by itself; a lock after the clear works.
    emergency(wire, active=False)
    fence(wire, hall)
    assert not hall.locked
    assert hall.factory.pin(RELAY).states[-1].state is False
    controller.send("hall", "mailbox_lock", controller.command("lock"))
    wait_for(lambda: hall.locked, what="a lock after the clear to engage")
    print(f"\n[emergency topic] relay released {relay_ms:.1f} ms after the publish, confirmed "
          f"(state engaged=false) at {reported_ms:.1f} ms")


def test_the_emergency_outlives_a_restart_of_the_node_and_comes_back_on_every_connection(
        mosquitto, tmp_path, wire, controller):
    data_dir = tmp_path / "hall"
    first = start_hall(mosquitto, data_dir)
    try:
        controller.send("hall", "mailbox_lock", controller.command("lock"))
        wait_for(lambda: first.locked, what="the lock to engage")
        emergency(wire, active=True)
        wait_for(lambda: not first.locked, what="the emergency to release the relay")
        # the broker restarts: the retained emergency comes again, and releases again
        releases = first.agent.metrics["emergency_releases"]
        mosquitto.stop()
        mosquitto.start()
        wait_for(wire.client.is_connected, timeout=10, what="the test's client to reconnect")
        wait_for(lambda: first.agent.metrics["emergency_releases"] > releases, timeout=10,
                 what="the emergency to come again with the reconnection")
        assert not first.locked
    finally:
        first.agent.stop()

    # A node (re)starting while the emergency is retained, with nothing on its disk: the
    # retained message comes before any command, and holds it at once.
    fresh = start_hall(mosquitto, tmp_path / "fresh")
    try:
        wait_for(lambda: fresh.agent.metrics["emergency_releases"] == 1, what="the retained emergency")
        fence(wire, fresh)
        controller.send("hall", "mailbox_lock", controller.command("lock"))
        fence(wire, fresh)
        assert not fresh.locked and fresh.agent.metrics["emergency_refused"] == 1
    finally:
        fresh.agent.stop()

    # The retained message is lost (deleted, or a broker without persistence): the node
    # remembers the emergency on its disk and refuses every lock after its restart.
    wire.publish(T.emergency, b"", retain=True)
    second = start_hall(mosquitto, data_dir)
    try:
        assert second.agent.emergency is not None
        fence(wire, second)   # subscribed: what follows is delivered
        for _ in range(2):
            controller.send("hall", "mailbox_lock", controller.command("lock"))
        fence(wire, second)
        assert not second.locked and second.agent.metrics["emergency_refused"] == 2
        emergency(wire, active=False)
        fence(wire, second)
        controller.send("hall", "mailbox_lock", controller.command("lock"))
        wait_for(lambda: second.locked, what="a lock after the clear to engage")
    finally:
        second.agent.stop()
    assert not (data_dir / "faults-hall.emergency.json").exists(), "the clear is remembered too"


class StuckWorker:
    """Holds the node's worker thread inside a message for as long as the test wants (its
    ``on_handled`` hook, called by the worker after each message it handles, waits)."""

    def __init__(self, wire: Wire, hall: Hall) -> None:
        self.wire, self.hall = wire, hall
        self.stuck, self.freed = threading.Event(), threading.Event()
        hall.agent.on_handled = self._handled

    def _handled(self, _parts: object, payload: object) -> None:
        if isinstance(payload, Resync) and payload.reason == "stall":
            self.stuck.set()
            self.freed.wait(30)

    def __enter__(self) -> StuckWorker:
        self.stuck.clear()
        self.freed.clear()
        self.wire.publish(T.node_resync("hall"), Resync(reason="stall").to_bytes())
        wait_for(self.stuck.is_set, what="the worker to be stuck")
        return self

    def __exit__(self, *exc: object) -> None:
        self.freed.set()


def test_a_stuck_worker_or_a_full_inbox_delays_no_release(hall, wire, controller):
    """The worker is stuck in a message; meanwhile its inbox fills up with messages it
    cannot handle yet. The emergency, then an unlock, still release the relay at once."""
    controller.send("hall", "mailbox_lock", controller.command("lock"))
    wait_for(lambda: hall.locked, what="the lock to engage")

    with StuckWorker(wire, hall) as worker:
        # a lock queued behind the stuck worker, then the emergency: released at once
        controller.send("hall", "mailbox_lock", controller.command("lock"))
        sent = emergency(wire, active=True)
        wait_for(lambda: not hall.locked, timeout=2, what="the emergency to release the relay")
        emergency_ms = (time.perf_counter() - sent) * 1000
        assert not worker.freed.is_set() and worker.stuck.is_set(), "the worker was still stuck"
        emergency(wire, active=False)
        wait_for(lambda: hall.agent.emergency is None, what="the hall to hear the end of the alert")
    # the worker free, the lock queued before the emergency is refused (superseded)
    fence(wire, hall)
    assert not hall.locked and hall.agent.metrics["superseded_commands"] == 1

    # now fill the inbox to the brim behind the stuck worker, then unlock
    controller.send("hall", "mailbox_lock", controller.command("lock"))
    wait_for(lambda: hall.locked, what="the lock to engage again")
    with StuckWorker(wire, hall) as worker:
        junk = controller.command("lock").to_bytes()   # to a prop the hall does not have
        for _ in range(10_050):
            wire.publish(T.prop_set("hall", "ghost"), junk, qos=0, wait=False)
        wait_for(lambda: hall.agent.metrics["inbox_full"] > 0, timeout=10, what="the inbox to be full")
        sent = time.perf_counter()
        controller.send("hall", "mailbox_lock", controller.command("unlock"))
        wait_for(lambda: not hall.locked, timeout=5, what="the unlock to release the relay")
        unlock_ms = (time.perf_counter() - sent) * 1000
        assert not worker.freed.is_set(), "the worker was still stuck"
        # the node stops cleanly even so (its inbox full, its worker stuck)
        stopped_at = time.monotonic()
        worker.freed.set()
        hall.agent.stop()
        assert time.monotonic() - stopped_at < 5
    print(f"\n[busy worker] emergency released the relay {emergency_ms:.1f} ms after its publish, "
          f"an unlock {unlock_ms:.1f} ms after its publish with the inbox full "
          f"({hall.agent.metrics['inbox_full']} messages dropped)")


def test_a_maglock_self_test_never_locks_during_an_emergency(hall, wire, controller, monkeypatch):
    # a slower click than the shipped 0.2 s, so the emergency surely lands between two
    monkeypatch.setattr("props.maglock.SELF_TEST_CLICK", 1.0)
    wire.subscribe(T.node_tech_reply("hall"))
    relay = hall.factory.pin(RELAY)

    def self_test() -> TechReply:
        request = TechRequest(id=new_id(), action="self_test", prop="mailbox_lock", timeout=5)
        wire.publish(T.node_tech("hall"), request.to_bytes())
        wait_for(lambda: any(json.loads(m.payload)["id"] == request.id
                             for m in wire.received(T.node_tech_reply("hall"))), what="the reply")
        return next(TechReply.model_validate_json(m.payload)
                    for m in wire.received(T.node_tech_reply("hall"))
                    if json.loads(m.payload)["id"] == request.id)

    # An emergency arrives in the middle of a self-test (between its unlock and its lock
    # click): the click is undone at once, the test ends open.
    controller.send("hall", "mailbox_lock", controller.command("lock"))
    wait_for(lambda: hall.locked, what="the lock to engage")
    request = TechRequest(id=new_id(), action="self_test", prop="mailbox_lock", timeout=5)
    wire.publish(T.node_tech("hall"), request.to_bytes())
    wait_for(lambda: not hall.locked, what="the self-test's first click (unlock)")
    relay.clear_states()
    emergency(wire, active=True)
    wait_for(lambda: hall.agent.emergency is not None, what="the emergency to arrive")
    assert [s.state for s in relay.states] == [False], "it came before the lock click"
    wait_for(lambda: any(json.loads(m.payload)["id"] == request.id
                         for m in wire.received(T.node_tech_reply("hall"))), timeout=10,
             what="the reply")
    assert not hall.locked and hall.agent.metrics["held_relocks_undone"] == 1
    # the lock click was undone within the same call: engaged for under 50 ms
    engaged_for = [nxt.timestamp for s, nxt in zip(relay.states, relay.states[1:], strict=False)
                   if s.state]
    assert engaged_for and max(engaged_for) < 0.05, relay.states

    # A self-test asked during the emergency is refused: the relay never clicks.
    relay.clear_states()
    reply = self_test()
    assert not reply.ok and "emergency" in reply.message
    assert [s.state for s in relay.states] == [False]
    emergency(wire, active=False)


