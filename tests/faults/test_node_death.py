"""Faults of a node: killed, cut off the network, haunted by an old last will.

What the game master sees: a dead room shows offline within 1.5 × the keepalive (at once
when its process dies, from its silent heartbeat when it hangs or loses the network); when it
comes back, the exit door it opened is *not* locked again on its own (the console shows it
waiting for a relock), while the mailbox box is. An old will never makes a live room look
dead.
"""

from __future__ import annotations

import signal
import time

import pytest
from gpiozero.pins.mock import MockFactory

from controller.mqtt import Incoming
from nodes.agent import NodeAgent
from protocol.contract import NodeStatus, TechReply
from protocol.mqtt import BrokerAddress
from tests.faults.conftest import NodeProcess, Rig, fault_game, game_file, wait_for
from tests.support.netfault import TcpProxy

pytestmark = pytest.mark.mosquitto

KEEPALIVE_S = 5


def test_killed_nodes_show_offline_at_once_and_only_the_box_relocks_on_return(
        make_rig, mosquitto, tmp_path, processes):
    game = fault_game()
    path = game_file(tmp_path)
    rig: Rig = make_rig(game, nodes=())

    def spawn(node_id: str) -> NodeProcess:
        proc = NodeProcess(node_id=node_id, game=path, broker=mosquitto.address,
                           data_dir=tmp_path / "proc" / node_id, log=tmp_path / f"{node_id}.log",
                           keepalive=KEEPALIVE_S)
        processes.append(proc)
        return proc

    registry = rig.service.registry
    procs = {n: spawn(n) for n in ("hall", "entree")}
    wait_for(lambda: registry.nodes["hall"].online and registry.nodes["entree"].online, timeout=15,
             what="both node processes to come online")
    assert rig.client.post("/api/game/start", json={"parcours": "primo", "players": 2}).status_code == 200
    box, door = registry.props[("hall", "mailbox_lock")], registry.props[("entree", "door_lock")]
    wait_for(lambda: box.reported.get("engaged") is True and door.reported.get("engaged") is True,
             timeout=5, what="both locks to engage")
    boots = {n: registry.nodes[n].boot_id for n in procs}

    # -- kill -9: no goodbye; the kernel closes the socket and the broker sends the will ---
    detected = {}
    for node_id, proc in procs.items():
        killed_at = time.monotonic()
        proc.kill()
        wait_for(lambda n=node_id: not registry.nodes[n].online, timeout=1.5 * KEEPALIVE_S,
                 what=f"{node_id} to show offline")
        detected[node_id] = time.monotonic() - killed_at
    state = rig.client.get("/api/state").json()
    assert [n["online"] for n in state["nodes"]] == [False, False]

    # -- they come back: new boots; relays start unlocked ------------------------------------
    for node_id in procs:
        procs[node_id] = spawn(node_id)
    wait_for(lambda: all(registry.nodes[n].online and registry.nodes[n].boot_id != boots[n]
                         for n in procs), timeout=15, what="both nodes to come back with new boots")
    wait_for(lambda: box.reported.get("engaged") is True, timeout=5,
             what="the mailbox box to be relocked by the controller (relock_after_restart)")
    props = {(p["node"], p["id"]): p for p in rig.client.get("/api/state").json()["props"]}
    assert props[("entree", "door_lock")]["desired"]["relock_pending"] is True
    assert props[("entree", "door_lock")]["desired"]["action"] == "unlock"
    assert door.reported.get("engaged") is False, "an exit door is never relocked on its own"
    assert props[("hall", "mailbox_lock")]["desired"]["relock_pending"] is False

    # the game master relocks the door in one click
    assert rig.client.post("/api/props/entree/door_lock/lock").status_code == 200
    wait_for(lambda: door.reported.get("engaged") is True, timeout=3, what="the door to relock")
    print(f"\n[kill -9] offline via last will after {', '.join(f'{n} {s * 1000:.0f} ms' for n, s in detected.items())} "
          f"(bound {1.5 * KEEPALIVE_S:.1f} s)")


def test_node_cut_off_the_network_shows_offline_within_1_5_keepalives(make_rig, mosquitto):
    keepalive = 4
    rig: Rig = make_rig(fault_game(), nodes=("entree",))
    registry = rig.service.registry
    with TcpProxy(upstream=(mosquitto.host, mosquitto.port)) as cable:
        # the hall reaches the broker through a cable we can pull
        hall = NodeAgent(game=rig.game, node_id="hall", broker=BrokerAddress(cable.host, cable.port),
                         pin_factory=MockFactory(), simulate=True, keepalive=keepalive,
                         data_dir=rig.tmp_path / "cable-hall")
        hall.start()
        try:
            wait_for(lambda: registry.nodes["hall"].online, what="the hall online")
            assert registry.nodes["hall"].keepalive == keepalive, "announced in its birth"
            cut_at = time.monotonic()
            cable.freeze()      # no FIN, no RST: nothing but the silence tells
            wait_for(lambda: not registry.nodes["hall"].online, timeout=1.5 * keepalive + 1,
                     what="the controller to declare the hall offline")
            detected = time.monotonic() - cut_at
            assert registry.nodes["hall"].offline_reason == "silent"
            hall_view = next(n for n in rig.client.get("/api/state").json()["nodes"] if n["id"] == "hall")
            assert (hall_view["online"], hall_view["offline_reason"]) == (False, "silent")
            cable.restore()
            back = wait_for(lambda: registry.nodes["hall"].online, timeout=3 * keepalive,
                            what="the hall back online once the cable is back")
        finally:
            cable.restore()
            hall.stop()
    # NOTE: the controller watches the node's heartbeat (every keepalive / 3) and declares it
    # offline after 1.2 x keepalive of silence; Mosquitto's own will would come 1.5 x
    # keepalive after the last packet, plus up to ~5 s of its keepalive sweep.
    assert detected <= 1.5 * keepalive
    assert rig.service.registry.nodes["entree"].online, "the other room is not affected"
    print(f"\n[network cut] hall offline {detected * 1000:.0f} ms after its cable was frozen "
          f"(keepalive {keepalive} s: bound 1.5 x = {1.5 * keepalive:.1f} s); back online "
          f"{back * 1000:.0f} ms after the cable came back "
          f"({'heartbeat, resync' if rig.metrics().get('silent_returns') else 'new connection, birth'})")


def test_a_frozen_node_shows_offline_within_1_5_keepalives_and_comes_back_consistent(
        make_rig, mosquitto, tmp_path, processes, wire):
    """SIGSTOP: the process and its socket stay, nothing comes out (a hung Pi, a frozen
    kernel). The controller declares it offline from its silent heartbeat, stops sending
    to it, and takes it back on SIGCONT with every state consistent."""
    game, path = fault_game(), game_file(tmp_path)
    rig: Rig = make_rig(game, nodes=("entree",))
    registry = rig.service.registry
    hall = NodeProcess(node_id="hall", game=path, broker=mosquitto.address,
                       data_dir=tmp_path / "proc" / "hall", log=tmp_path / "hall.log",
                       keepalive=KEEPALIVE_S)
    processes.append(hall)
    wait_for(lambda: registry.nodes["hall"].online, timeout=15, what="the hall process online")
    assert rig.client.post("/api/game/start", json={"parcours": "primo", "players": 2}).status_code == 200
    box, door = registry.props[("hall", "mailbox_lock")], registry.props[("entree", "door_lock")]
    wait_for(lambda: box.reported.get("engaged") is True and door.reported.get("engaged") is True,
             what="both locks to engage")
    boot = registry.nodes["hall"].boot_id
    wire.subscribe(rig.topics.prop_set("hall", "mailbox_lock"))

    stopped_at = time.monotonic()
    hall.signal(signal.SIGSTOP)
    wait_for(lambda: not registry.nodes["hall"].online, timeout=1.5 * KEEPALIVE_S,
             what="the frozen hall to show offline")
    detected = time.monotonic() - stopped_at
    offline_at = time.monotonic()
    assert registry.nodes["hall"].offline_reason in ("silent", "will")
    assert not next(n for n in rig.client.get("/api/state").json()["nodes"] if n["id"] == "hall")["online"]

    # the game master opens the mailbox meanwhile: sent once; never resent to a node offline
    # (accepted, but not confirmed: the answer says the room is offline)
    order = rig.client.post("/api/props/hall/mailbox_lock/unlock")
    assert (order.status_code, order.json()["confirmed"], order.json()["reason"]) == (202, False, "offline")
    time.sleep(1.5)   # > RESEND_AFTER_S: an online node would have had it again by now
    sent = wire.received(rig.topics.prop_set("hall", "mailbox_lock"), since=offline_at)
    assert len(sent) == 1, [m.payload for m in sent]
    assert rig.service.registry.nodes["hall"].online is False

    resumed_at = time.monotonic()
    hall.signal(signal.SIGCONT)
    back = wait_for(lambda: registry.nodes["hall"].online, timeout=2 * KEEPALIVE_S,
                    what="the hall back online after SIGCONT")
    wait_for(lambda: box.reported.get("engaged") is False, timeout=5,
             what="the mailbox to report the unlock ordered while the hall was frozen")
    wait_for(rig.reconciled, what="desired == reported for every lock")
    assert registry.nodes["hall"].boot_id == boot, "the same process: no reboot, no relock rule"
    assert door.reported.get("engaged") is True, "the other room kept its lock"
    want = rig.service.desired[("hall", "mailbox_lock")]
    assert (want.action, want.relock_pending) == ("unlock", False)
    how = "heartbeat (resync asked)" if rig.metrics().get("silent_returns") else "new connection (birth)"
    print(f"\n[SIGSTOP] hall offline {detected * 1000:.0f} ms after SIGSTOP (keepalive {KEEPALIVE_S} s, "
          f"bound {1.5 * KEEPALIVE_S:.1f} s); back {back * 1000:.0f} ms after SIGCONT by {how}; "
          f"frozen {resumed_at - stopped_at:.1f} s")


def test_an_old_last_will_arriving_after_a_newer_birth_leaves_the_room_online(make_rig, wire):
    rig: Rig = make_rig(fault_game())
    registry = rig.service.registry
    boot = registry.nodes["hall"].boot_id
    assert boot == rig.agents["hall"].boot_id
    fence = f"fence-{time.monotonic_ns()}"
    fenced: list[str] = []
    rig.service.on_handled = lambda item: fenced.append(item.payload.id) if isinstance(
        item, Incoming) and isinstance(item.payload, TechReply) else None

    # the will of a boot before this one (a broker that delivers it late, or a replayed one)
    wire.publish(rig.topics.node_status("hall"), NodeStatus(online=False, boot_id="oldboot1").to_bytes(),
                 retain=True)
    # the controller handles one publisher's messages in order: once this is handled, so was the will
    wire.publish(rig.topics.node_tech_reply("hall"), TechReply(id=fence, ok=True).to_bytes())
    wait_for(lambda: fence in fenced, what="the controller to handle the fence")
    assert registry.nodes["hall"].online
    assert registry.nodes["hall"].boot_id == boot
    hall = next(n for n in rig.client.get("/api/state").json()["nodes"] if n["id"] == "hall")
    assert hall["online"] is True
