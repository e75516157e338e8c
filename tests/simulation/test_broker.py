"""The simulated broker and network on their own: faults, timing, persistence, bad input.

What Mosquitto does is checked in test_broker_differential.py; these tests cover what a
real broker cannot be made to show on demand (partitions, late packets, exact timings,
a crash between autosaves) and that one seed always gives the same run.
"""

from __future__ import annotations

import hashlib

import pytest

from simulation.broker import SUBSCRIPTION_FAILED, BrokerConfig
from simulation.network import LinkProfile
from simulation.packets import Connect, Packet, Publish, Suback, Subscribe
from simulation.world import World
from tests.simulation.helpers import Inbox


# -- determinism -----------------------------------------------------------------------------
def chaos(seed: int) -> str:
    """Publishers, faults of every kind at times drawn from the seed; returns the trace."""
    world = World.create(seed, profile=LinkProfile(late_probability=0.05, qos0_loss=0.05),
                         config=BrokerConfig(persistence=True, autosave_interval=20))
    rnd = world.scheduler.random
    names = [f"n{i}" for i in range(4)]
    clients = {}
    for name in names:
        c = world.client(name, keepalive=3, clean_session=name != "n0")
        c.will_set(f"status/{name}", b"offline", qos=1, retain=True)
        c.reconnect_delay_set(0.5, 1.0)
        Inbox(c, "#")
        clients[name] = c

    def act() -> None:
        name = rnd.choice(names)
        roll = rnd.random()
        if roll < 0.6:
            clients[name].publish(f"event/{name}", f"{world.now:.3f}", qos=rnd.choice((0, 1)),
                                  retain=rnd.random() < 0.2)
        elif roll < 0.7:
            world.network.partition(name) if not world.network.partitioned(name) else world.network.heal(name)
        elif roll < 0.75:
            world.network.cut(name)
        elif roll < 0.8:
            world.machine(name).step_wall(rnd.uniform(-60, 60))
        elif roll < 0.83:
            world.broker.kill() if world.broker.running else world.broker.start()
        elif roll < 0.85:
            world.broker.restart()
        world.scheduler.call_later(rnd.expovariate(5.0), act)

    world.scheduler.call_soon(act)
    world.run_for(120.0)
    assert world.broker.routed > 100
    return world.scheduler.trace_text()


def test_the_same_seed_gives_the_same_run_byte_for_byte() -> None:
    first = chaos(1234)
    assert len(first.splitlines()) > 2000
    assert chaos(1234) == first
    assert hashlib.sha256(chaos(1235).encode()).digest() != hashlib.sha256(first.encode()).digest()


# -- network faults --------------------------------------------------------------------------
def test_a_partition_holds_everything_then_delivers_it_in_order() -> None:
    world = World.create(1)
    sub, pub = world.client("sub"), world.client("pub")
    inbox = Inbox(sub, "p/#")
    sub.subscribe("p/#", 1)
    world.run_for(1)
    world.network.partition("sub")
    for n in range(10):
        pub.publish("p/x", f"{n}", qos=n % 2)
    world.run_for(5)
    assert inbox.messages == []                       # nobody noticed anything yet
    assert world.broker.connected("sub") and sub.is_connected()
    world.network.heal("sub")
    world.run_for(1)
    assert inbox.payloads("p/x") == [f"{n}".encode() for n in range(10)]


def test_a_long_partition_is_noticed_by_both_keepalives_and_healed_by_reconnecting() -> None:
    world = World.create(2)
    watcher = world.client("watcher")
    seen = Inbox(watcher, "status/#")
    watcher.subscribe("status/#", 1)
    node = world.client("node", keepalive=2, connect=False)
    node.will_set("status/node", b"offline", qos=1, retain=True)
    node.reconnect_delay_set(0.5, 1.0)
    inbox = Inbox(node)
    node.connect(keepalive=2)
    world.run_for(1)
    world.network.partition("node")
    world.run_for(12)
    # the broker: more than int(1.5 × 2) = 3 whole seconds, seen by its 6 s sweep
    assert seen.payloads("status/node") == [b"offline"]
    # the client: a ping after 2 s of silence, given up 2 s later; reconnections fail
    assert inbox.disconnects[:1] == ["Keep alive timeout"] and not node.is_connected()
    world.network.heal("node")
    world.run_for(5)
    assert node.is_connected() and inbox.connects >= 2


def test_late_packets_never_overtake_on_their_link_but_publishers_interleave() -> None:
    world = World.create(3, profile=LinkProfile(late_probability=0.3, late_delay=(0.1, 2.0)))
    sub = world.client("sub")
    inbox = Inbox(sub)
    sub.subscribe("o/#", 1)
    pubs = [world.client(f"p{i}") for i in range(3)]
    world.run_for(5)
    for n in range(100):
        for i, p in enumerate(pubs):
            p.publish(f"o/{i}", f"{n}", qos=i % 2)
    world.run_for(60)
    for i in range(3):
        assert inbox.payloads(f"o/{i}") == [f"{n}".encode() for n in range(100)]
    topics = [m[0] for m in inbox.messages]
    assert topics != sorted(topics, key=topics.index)  # interleaved, not grouped


def test_qos0_loss_loses_only_qos0() -> None:
    world = World.create(4, profile=LinkProfile(qos0_loss=0.5))
    sub, pub = world.client("sub"), world.client("pub")
    inbox = Inbox(sub)
    sub.subscribe("l/#", 1)
    world.run_for(1)
    for n in range(200):
        pub.publish("l/q0", f"{n}", qos=0)
        pub.publish("l/q1", f"{n}", qos=1)
    world.run_for(5)
    assert inbox.payloads("l/q1") == [f"{n}".encode() for n in range(200)]
    assert 40 < len(inbox.payloads("l/q0")) < 160


def test_a_cut_after_the_broker_got_a_qos1_message_makes_an_unmarked_duplicate() -> None:
    """The PUBACK is lost with the connection: paho resends with DUP, the broker forwards
    it again (QoS 1 is at least once), and DUP is not propagated to subscribers (MQTT
    3.1.1 §3.3.1.1): a receiver cannot tell the copy from a new message by its flags."""
    world = World.create(5, profile=LinkProfile(latency=(0.01, 0.01)))
    sub, pub = world.client("sub"), world.client("pub", connect=False)
    inbox = Inbox(sub)
    sub.subscribe("d/#", 1)
    pub.reconnect_delay_set(0.5, 1.0)
    pub.connect()
    world.run_for(1)
    pub.publish("d/x", b"once?", qos=1)
    world.run_for(0.015)                  # the broker has it; its PUBACK is on the way back
    world.network.cut("pub")
    world.run_for(3)
    assert inbox.messages == [("d/x", b"once?", 1, False, False)] * 2
    trace = world.scheduler.trace_text()
    assert "pub#1>broker PUBLISH d/x q1 r0 d0 m1" in trace
    assert "pub#2>broker PUBLISH d/x q1 r0 d1 m1" in trace


# -- keepalive, takeover, restarts -----------------------------------------------------------
def test_mosquitto_declares_a_silent_keepalive_5_client_dead_within_7_to_14_s() -> None:
    for seed in range(20):
        world = World.create(seed)
        world.run_for(world.scheduler.random.uniform(0, 6))  # any phase of the 6 s sweep
        watcher = world.client("watcher")
        seen = Inbox(watcher)
        watcher.subscribe("status/#", 1)
        node = world.client("node", keepalive=5, connect=False)
        node.will_set("status/node", b"offline", qos=1)
        node.connect(keepalive=5)
        world.run_for(1)
        node.pause()
        hung_at = world.now
        assert world.scheduler.run_until_true(lambda s=seen: bool(s.messages), timeout=20)
        assert 7 - 1 < world.now - hung_at <= 14 + 0.1, seed   # the last packet was up to 1 s before


def test_a_node_back_before_its_old_connection_died_has_its_old_will_before_its_birth() -> None:
    world = World.create(6)
    watcher = world.client("watcher")
    seen = Inbox(watcher)
    watcher.subscribe("status/#", 1)
    old = world.client("hall", keepalive=5, connect=False)
    old.will_set("status/hall", b"offline", qos=1, retain=True)
    old.connect(keepalive=5)
    world.run_for(1)
    world.network.partition("hall")      # power cut: no FIN ever leaves the old process…
    old.crash()
    world.network.heal("hall")
    new = world.client("hall", keepalive=5, connect=False)   # …and it boots again at once
    new.will_set("status/hall", b"offline", qos=1, retain=True)
    new.on_connect = lambda c, *_: c.publish("status/hall", b"online", qos=1, retain=True)
    new.connect(keepalive=5)
    world.run_for(20)
    assert seen.payloads("status/hall") == [b"offline", b"online"]   # takeover: the will first
    assert world.broker.retained.get("status/hall").payload == b"online"


def test_a_kill_between_autosaves_restores_the_last_autosave() -> None:
    world = World.create(7, config=BrokerConfig(persistence=True, autosave_interval=60))
    pub = world.client("pub")
    pub.publish("k/saved", b"before the autosave", qos=1, retain=True)
    world.run_for(70)                    # Mosquitto saves when more than 60 s passed
    pub.publish("k/lost", b"after it", qos=1, retain=True)
    world.run_for(1)
    world.broker.kill()
    world.broker.start()
    assert world.broker.retained.get("k/saved") is not None
    assert world.broker.retained.get("k/lost") is None


def test_clients_come_back_after_a_broker_restart_and_resubscribe_in_on_connect() -> None:
    world = World.create(8)
    sub = world.client("sub", connect=False)
    inbox = Inbox(sub, "r/#")
    sub.reconnect_delay_set(0.5, 1.0)
    sub.connect()
    pub = world.client("pub", connect=False)
    pub.reconnect_delay_set(0.5, 1.0)
    pub.connect()
    world.run_for(1)
    world.broker.restart()
    world.run_for(3)
    pub.publish("r/x", b"after", qos=1)
    world.run_for(1)
    assert inbox.connects == 2
    assert inbox.payloads("r/x") == [b"after"]


def test_the_production_config_is_read_from_the_shipped_mosquitto_conf() -> None:
    cfg = BrokerConfig.production()
    assert (cfg.persistence, cfg.autosave_interval) == (True, 60)
    assert (cfg.max_inflight_messages, cfg.max_queued_messages) == (100, 10_000)
    assert BrokerConfig.from_mosquitto_conf("queue_qos0_messages true  # why not\n").queue_qos0_messages


def test_an_offline_persistent_session_queues_up_to_max_queued_messages() -> None:
    world = World.create(9, config=BrokerConfig(max_queued_messages=5))
    s = world.client("s", clean_session=False)
    inbox = Inbox(s)
    s.subscribe("q/#", 1)
    world.run_for(1)
    s.disconnect()
    pub = world.client("pub")
    world.run_for(1)
    for n in range(8):
        pub.publish("q/x", f"{n}", qos=1)
    world.run_for(1)
    s.connect()
    world.run_for(1)
    assert inbox.payloads("q/x") == [f"{n}".encode() for n in range(5)]
    assert world.broker.dropped == 3


# -- bad input ----------------------------------------------------------------------------
class Raw:
    """A client that is not a SimClient: sends whatever packets it is given."""

    def __init__(self, world: World, name: str) -> None:
        self.received: list[Packet] = []
        self.conn = world.network.open(name, self)

    def receive(self, packet: Packet) -> None:
        self.received.append(packet)


def test_bad_input_gets_a_clear_error_and_changes_nothing() -> None:
    world = World.create(10)
    c = world.client("c")
    for call, error in ((lambda: c.publish("a/+", b"x"), ValueError), (lambda: c.publish("", b"x"), ValueError),
                        (lambda: c.publish("a", b"x", qos=2), ValueError),
                        (lambda: c.publish("a", object()), TypeError),
                        (lambda: c.subscribe("a/#/b"), ValueError), (lambda: c.will_set("a/#"), ValueError)):
        with pytest.raises(error):
            call()
    raw = Raw(world, "raw")
    raw.conn.up.send(Connect("raw", True, 60))
    raw.conn.up.send(Subscribe(1, (("ok/#", 1), ("bad/#/x", 1), ("q2", 2))))
    world.run_for(1)
    assert Suback(1, (1, SUBSCRIPTION_FAILED, SUBSCRIPTION_FAILED)) in raw.received
    raw.conn.up.send(Publish("bad/+", b"wildcard", 0, True))
    world.run_for(1)
    assert world.broker.retained.count == 0 and not world.broker.connected("raw")
    assert c.is_connected()


def test_a_one_way_partition_lets_the_node_hear_but_not_be_heard() -> None:
    world = World.create(11)
    watcher = world.client("watcher")
    seen = Inbox(watcher)
    watcher.subscribe("#", 1)
    node = world.client("node", keepalive=5)
    heard = Inbox(node)
    node.subscribe("cmd/#", 1)
    world.run_for(1)
    world.network.partition("node", incoming=False)
    node.publish("event/node", b"unheard", qos=1)
    watcher.publish("cmd/node", b"heard", qos=1)
    world.run_for(2)
    assert heard.payloads("cmd/node") == [b"heard"] and seen.payloads("event/node") == []
    world.network.heal("node")
    world.run_for(1)
    assert seen.payloads("event/node") == [b"unheard"]
