"""Faults of a node: killed, cut off the network, haunted by an old last will.

What the game master sees: a dead room shows offline within 1.5 × the keepalive; when it
comes back, the exit door it opened is *not* locked again on its own (the console shows it
waiting for a relock), while the mailbox box is. An old will never makes a live room look
dead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from controller.mqtt import Incoming
from nodes.agent import NodeAgent
from nodes.contract import NodeStatus, TechReply
from nodes.mqtt import BrokerAddress
from tests.faults.conftest import Rig, fault_game, game_file, wait_for
from tests.support.netfault import TcpProxy

pytestmark = pytest.mark.mosquitto

KEEPALIVE_S = 5
#: Mosquitto 2.0 checks keepalives in a sweep every 5 s (plus its 1 s clock): the slack
MOSQUITTO_SWEEP_S = 6.0


class NodeProcess:
    """``escape-apartment node --simulate`` in a process of its own (its MockFactory dies with it)."""

    def __init__(self, *, node_id: str, game: Path, broker: str, data_dir: Path, log: Path,
                 keepalive: int = KEEPALIVE_S) -> None:
        env = {**os.environ, "ESCAPE_MQTT_KEEPALIVE": str(keepalive)}
        env.pop("ESCAPE_DATA_DIR", None)
        self.log = log
        # the installed console script, as systemd runs it (python -m where it is missing)
        script = Path(sys.executable).with_name("escape-apartment")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "controller.cli"]
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [*command, "node", "--id", node_id, "--simulate",
                 "--config", str(game), "--broker", broker, "--data-dir", str(data_dir)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@pytest.fixture
def node_processes(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for proc in started:
        proc.stop()


def test_killed_nodes_show_offline_at_once_and_only_the_box_relocks_on_return(
        make_rig, mosquitto, tmp_path, node_processes):
    game = fault_game()
    path = game_file(tmp_path)
    rig: Rig = make_rig(game, nodes=())

    def spawn(node_id: str) -> NodeProcess:
        proc = NodeProcess(node_id=node_id, game=path, broker=mosquitto.address,
                           data_dir=tmp_path / "proc" / node_id, log=tmp_path / f"{node_id}.log")
        node_processes.append(proc)
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


def test_node_cut_off_the_network_shows_offline_after_its_keepalive_runs_out(make_rig, mosquitto):
    keepalive = 2
    rig: Rig = make_rig(fault_game(), nodes=("entree",))
    with TcpProxy(upstream=(mosquitto.host, mosquitto.port)) as cable:
        # the hall reaches the broker through a cable we can pull
        hall = NodeAgent(game=rig.game, node_id="hall", broker=BrokerAddress(cable.host, cable.port),
                         pin_factory=MockFactory(), simulate=True, keepalive=keepalive,
                         data_dir=rig.tmp_path / "cable-hall")
        hall.start()
        try:
            wait_for(lambda: rig.service.registry.nodes["hall"].online, what="the hall online")
            cut_at = time.monotonic()
            cable.freeze()      # no FIN, no RST: the broker only has the keepalive to go by
            wait_for(lambda: not rig.service.registry.nodes["hall"].online,
                     timeout=1.5 * keepalive + MOSQUITTO_SWEEP_S + 1, what="the broker to give up on the hall")
            detected = time.monotonic() - cut_at
        finally:
            cable.restore()
            hall.stop()
    # NOTE: Mosquitto 2.0 sweeps its clients' keepalives every 5 s or so, so a silent node
    # is declared dead between 1.5 x keepalive and that plus one sweep (docs/reliability.md).
    assert detected <= 1.5 * keepalive + MOSQUITTO_SWEEP_S
    assert rig.service.registry.nodes["entree"].online, "the other room is not affected"
    print(f"\n[network cut] hall offline via last will {detected * 1000:.0f} ms after its cable was "
          f"frozen (keepalive {keepalive} s: 1.5 x = {1.5 * keepalive:.1f} s, + Mosquitto's sweep)")


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
