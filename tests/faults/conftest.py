"""The fault suite's rig: a real Mosquitto of its own per test, node agents on MockFactory,
the controller in-process (TestClient), and the tools to break things between them.

Every wait is bounded and waits on a condition (``wait_for``), never on a bare sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from gpiozero.pins.mock import MockFactory

from config.game import Game
from config.loader import parse_game
from controller.main import create_app
from controller.service import GameService
from controller.views import game_view
from nodes.agent import NodeAgent
from protocol.contract import Topics, new_id
from protocol.mqtt import BrokerAddress
from tests.support.mosquitto import Mosquitto, free_port, require_or_skip_mosquitto
from tests.support.netfault import TcpProxy

#: the relay and door pins of every maglock in GAME, the emergency input of the hall
RELAY, DOOR, EMERGENCY = 17, 27, 26

#: two rooms: the hall's mailbox is a local puzzle (its node may solve it alone); the
#: front door is not, and it is an exit door (never relocked on its own after a reboot)
GAME = """\
apartment: {{id: faults, name: Pannes, autonomy_after_s: {autonomy}}}
nodes:
  - id: hall
    label: Hall
    emergency: {{pin: 26}}
    props:
      - {{id: mailbox_keypad, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20], code_length: 4,
          debounce: 0}}
      - {{id: mailbox_lock, kind: maglock, relay: 17, door: 27, relock_after_restart: true}}
      - {{id: bell, kind: button, pin: 22}}
  - id: entree
    label: Entrée
    props:
      - {{id: door_keypad, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20], code_length: 4,
          debounce: 0}}
      - {{id: door_lock, kind: maglock, relay: 17, door: 27, exit_door: true}}
      - {{id: bell, kind: button, pin: 22}}
puzzles:
  - id: mailbox
    label: Boîte aux lettres
    theme: budget
    room: hall
    local: true
    solve: {{when: event, prop: hall.mailbox_keypad, event: code,
             equals: {{primo: "0412", locataire: "1507"}}}}
    actions:
      - {{do: unlock, target: hall.mailbox_lock}}
      - {{do: budget, amount: -100, label: Courrier lu}}
  - id: front_door
    label: Porte d'entrée
    theme: rights
    room: entree
    requires: [mailbox]
    solve: {{when: event, prop: entree.door_keypad, event: code, equals: "3179"}}
    actions: [{{do: unlock, target: entree.door_lock}}]
    final: true
"""


def fault_game(*, autonomy_after_s: float = 30.0) -> Game:
    return parse_game(GAME.format(autonomy=autonomy_after_s)).game


def game_file(tmp_path: Path, *, autonomy_after_s: float = 30.0) -> Path:
    path = tmp_path / "game.yaml"
    path.write_text(GAME.format(autonomy=autonomy_after_s), encoding="utf-8")
    return path


def wait_for(predicate: Callable[[], object], *, timeout: float = 5.0, what: str = "condition") -> float:
    """Poll *predicate* every 2 ms until true; return the seconds it took; fail after *timeout*."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.002)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of this test alone, with persistence (retained messages survive a restart)."""
    require_or_skip_mosquitto()
    with Mosquitto.plain(workdir=tmp_path / "mosquitto", persistence=True) as broker:
        yield broker


# -- a raw MQTT client: forge, fuzz and watch ----------------------------------------------
@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool
    at: float


class Wire:
    """A bare paho client on the broker: publishes what no well-behaved peer would, records
    what it receives. Every wait is bounded."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"fault-wire-{new_id()}", protocol=mqtt.MQTTv311)
        # publishing thousands in a loop: let paho queue them all
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.seen: list[Seen] = []
        self._cond = threading.Condition()
        self._subacks: set[int] = set()
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.seen.append(Seen(msg.topic, msg.payload, bool(msg.retain), time.monotonic()))
            self._cond.notify_all()

    def _on_subscribe(self, _c: mqtt.Client, _u: object, mid: int, _r: object, _p: object) -> None:
        with self._cond:
            self._subacks.add(mid)
            self._cond.notify_all()

    def subscribe(self, *topics: str) -> None:
        _rc, mid = self.client.subscribe([(t, 1) for t in topics])
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self._subacks, 5), "no SUBACK"

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False,
                wait: bool = True) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if wait:
            info.wait_for_publish(5)
            assert info.is_published(), f"no PUBACK for {topic}"

    def publish_json(self, topic: str, data: dict[str, Any], **kw: Any) -> None:
        self.publish(topic, json.dumps(data).encode(), **kw)

    def received(self, topic: str, *, since: float = 0.0) -> list[Seen]:
        with self._cond:
            return [m for m in self.seen if m.topic == topic and m.at >= since]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- the apartment ------------------------------------------------------------------------
class Rig:
    """Controller + one simulated node agent per room, over *broker*.

    The controller may reach the broker through a :class:`TcpProxy` (``controller_link``)
    so a test can cut it off without touching the nodes. Each node keeps its outbox in
    ``tmp_path/nodes/<id>``.
    """

    def __init__(self, *, game: Game, broker: Mosquitto, stack: ExitStack, tmp_path: Path,
                 controller_via_proxy: bool = False, nodes: tuple[str, ...] | None = None) -> None:
        self.game, self.broker, self.stack, self.tmp_path = game, broker, stack, tmp_path
        self.address = BrokerAddress(broker.host, broker.port)
        self.topics = Topics(game.apartment.id)
        self.controller_link: TcpProxy | None = None
        if controller_via_proxy:
            self.controller_link = stack.enter_context(TcpProxy(upstream=(broker.host, broker.port)))
        self.factories: dict[str, MockFactory] = {}
        self.agents: dict[str, NodeAgent] = {}
        for node in game.nodes:
            if nodes is None or node.id in nodes:
                self.start_node(node.id)
        self.client = self.start_controller()
        for node_id, agent in self.agents.items():
            wait_for(agent.connected.is_set, what=f"node {node_id} to connect")
        wait_for(lambda: all(self.service.registry.nodes[n].online for n in self.agents),
                 what="the controller to see every node online")
        wait_for(lambda: all(a.status()["controller_online"] for a in self.agents.values()),
                 what="every node to hear the controller")

    def start_node(self, node_id: str) -> NodeAgent:
        self.factories[node_id] = MockFactory()
        agent = NodeAgent(game=self.game, node_id=node_id, broker=self.address,
                          pin_factory=self.factories[node_id], simulate=True,
                          data_dir=self.tmp_path / "nodes" / node_id)
        agent.start()
        self.stack.callback(agent.stop)
        self.agents[node_id] = agent
        return agent

    def start_controller(self) -> TestClient:
        link = self.controller_link
        address = BrokerAddress(link.host, link.port) if link is not None else self.address
        client = TestClient(create_app(game=self.game, broker=address, demo=True,
                                       db_path=self.tmp_path / "escape.db"),
                            headers={"Content-Type": "application/json"})
        client.__enter__()
        self.stack.callback(lambda: client.__exit__(None, None, None))
        return client

    @property
    def service(self) -> GameService:
        return self.client.app.state.service  # type: ignore[no-any-return]

    def start_game(self, parcours: str = "primo") -> None:
        reply = self.client.post("/api/game/start", json={"parcours": parcours, "players": 3})
        assert reply.status_code == 200, reply.text
        wait_for(lambda: all(self.relay_driven(n, RELAY) for n in self.agents),
                 what="every lock to engage at the start")
        wait_for(self.reconciled, what="the controller to see every lock engaged")
        wait_for(self.settled, what="every start command to be acknowledged")

    # -- reading the hardware and the game master's view ---------------------------------
    def relay_driven(self, node: str, pin: int = RELAY) -> bool:
        return bool(self.factories[node].pin(pin).state)

    def gesture(self, node: str, prop: str, gesture: str, value: object = None) -> None:
        """A hand on a simulated prop: drives the node's MockFactory pins; returns once the node has taken
        in what the prop reported (the node's worker handles it)."""
        self.agents[node].simulators[prop].perform(gesture, value)
        assert self.agents[node].wait_idle(), f"node {node} did not take in the gesture"

    def reconciled(self) -> bool:
        """Controller's desired state == the state every online node reports."""
        service = self.service
        for (node, prop), want in list(service.desired.items()):
            if node not in self.agents:
                continue
            reported = service.registry.props[(node, prop)].reported
            if not want.reached(reported):
                return False
        return True

    def settled(self) -> bool:
        """Every command the controller has in flight is acknowledged (``ack`` in the state)."""
        service = self.service
        sent = {key: want.command_id for key, want in list(service.desired.items())}
        sent.update({key: command_id for key, (command_id, _at) in list(service.outputs.resets.items())})
        return all(service.registry.props[key].ack == command_id
                   for key, command_id in sent.items() if key[0] in self.agents and command_id)

    def puzzle(self, puzzle_id: str) -> dict[str, Any]:
        return next(p for p in game_view(self.service.engine)["puzzles"] if p["id"] == puzzle_id)

    def metrics(self) -> dict[str, int]:
        return dict(self.service.bridge.metrics)


@pytest.fixture
def make_rig(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    with ExitStack() as stack:
        yield lambda game, **kw: Rig(game=game, broker=mosquitto, stack=stack, tmp_path=tmp_path, **kw)


@pytest.fixture
def wire(mosquitto: Mosquitto) -> Iterator[Wire]:
    peer = Wire(mosquitto)
    yield peer
    peer.close()


# -- processes: what kill -9, SIGSTOP and SIGHUP need ---------------------------------------
ROOT = Path(__file__).resolve().parents[2]


def console_command() -> list[str]:
    """The installed console script, as systemd runs it (python -m where it is missing)."""
    script = Path(sys.executable).with_name("escape-apartment")
    return [str(script)] if script.exists() else [sys.executable, "-m", "controller.cli"]


class _Process:
    process: subprocess.Popen[bytes]

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)   # a stopped process cannot terminate
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class NodeProcess(_Process):
    """``escape-apartment node --simulate`` in a process of its own (its MockFactory dies with it)."""

    def __init__(self, *, node_id: str, game: Path, broker: str, data_dir: Path, log: Path,
                 keepalive: int = 5, env: dict[str, str] | None = None) -> None:
        env = {**os.environ, "ESCAPE_MQTT_KEEPALIVE": str(keepalive), **(env or {})}
        env.pop("ESCAPE_DATA_DIR", None)
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [*console_command(), "node", "--id", node_id, "--simulate",
                 "--config", str(game), "--broker", broker, "--data-dir", str(data_dir)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


_CONTROLLER = textwrap.dedent("""
    import logging, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import uvicorn
    from config.loader import load_game
    from controller.main import create_app
    from protocol.mqtt import BrokerAddress

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    game_file, db, broker_host, broker_port, http_port = sys.argv[2:7]
    app = create_app(game=load_game(game_file), broker=BrokerAddress(broker_host, int(broker_port)),
                     db_path=Path(db), config_path=Path(game_file))
    uvicorn.run(app, host="127.0.0.1", port=int(http_port), log_level="warning")
""")




class ControllerProcess(_Process):
    """The controller under uvicorn in a process of its own (access control off), on the
    game file *game* (which ``SIGHUP`` reloads) and the session database *db*."""

    def __init__(self, *, game: Path, db: Path, broker: Mosquitto, log: Path,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _CONTROLLER, str(ROOT), str(game), str(db), broker.host,
                 str(broker.port), str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **env} if env else None)

    def state(self) -> dict[str, Any] | None:
        import httpx

        try:
            return httpx.get(f"{self.url}/api/state", timeout=2).json()  # type: ignore[no-any-return]
        except (httpx.HTTPError, ValueError):
            return None

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        return httpx.post(f"{self.url}{path}", json=body or {}, timeout=5)


@pytest.fixture
def processes() -> Iterator[list[_Process]]:
    """Every process a test starts: stopped (SIGCONT first) at the end, whatever happened."""
    started: list[_Process] = []
    yield started
    for proc in reversed(started):
        proc.stop()
