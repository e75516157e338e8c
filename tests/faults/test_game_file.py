"""One game file for every Pi: the controller gives each node its part over MQTT.

From outside: a raw paho client (not our node code) plays the controller and gives a real
node process parts it cannot apply (it keeps its own and says why), then a good one (it
applies it, keeps it on disk, and starts with it when the controller is away); the whole
apartment (seven simulated nodes) reloaded between sessions and timed, the controller
restarted while the nodes keep their copy, and the pre-game check refusing to pass while
a node runs another part.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from gpiozero.pins.mock import MockFactory

from config.loader import SHIPPED_GAME, load_game
from controller.main import create_app
from nodes.agent import NodeAgent
from protocol.contract import Topics
from protocol.mqtt import BrokerAddress
from tests.faults.conftest import NodeProcess, Wire, fault_game, game_file, wait_for
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mosquitto


def content_hash(data: dict[str, Any]) -> str:
    """The contract's hash, written again from docs/mqtt.md (an outsider's own code)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def game_message(part: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"v": 1, "hash": content_hash(part), "part": part, **extra}).encode()


def births(wire: Wire, topic: str, *, since: float = 0.0) -> list[dict[str, Any]]:
    out = []
    for seen in wire.received(topic, since=since):
        if seen.payload and (status := json.loads(seen.payload)).get("online"):
            out.append(status)
    return out


def last_birth(wire: Wire, topic: str, predicate: Callable[[dict[str, Any]], bool], *,
               since: float = 0.0, what: str, timeout: float = 20.0) -> dict[str, Any]:
    wait_for(lambda: any(predicate(b) for b in births(wire, topic, since=since)),
             timeout=timeout, what=what)
    return [b for b in births(wire, topic, since=since) if predicate(b)][-1]


def test_a_node_process_refuses_a_part_it_cannot_apply_and_keeps_its_own(
        mosquitto: Mosquitto, wire: Wire, tmp_path: Path, processes: list[Any]) -> None:
    game = fault_game()
    topics = Topics(game.apartment.id)
    status, part_topic = topics.node_status("hall"), topics.node_game("hall")
    wire.subscribe(status, topics.prop_state("hall", "doorbell"))
    path, data_dir = game_file(tmp_path), tmp_path / "hall"

    def start_node() -> NodeProcess:
        node = NodeProcess(node_id="hall", game=path, broker=mosquitto.address,
                           data_dir=data_dir, log=tmp_path / "hall.log")
        processes.append(node)
        return node

    node = start_node()
    own = game.part("hall").as_data()
    first = last_birth(wire, status, lambda b: b.get("game") is not None, what="the node's birth")
    assert first["game"] == content_hash(own), "it reports the hash of the part it runs"

    def refused(part: dict[str, Any], words: str) -> dict[str, Any]:
        since = time.monotonic()
        wire.publish(part_topic, game_message(part), retain=True)
        birth = last_birth(wire, status, lambda b: (b.get("game_refused") or {}).get("hash")
                           == content_hash(part), since=since, what=f"the refusal ({words})")
        assert words in birth["game_refused"]["reason"], birth["game_refused"]
        assert birth["game"] == content_hash(own), "it still runs its own part"
        assert node.process.poll() is None, "the node did not crash"
        return birth

    unknown = copy.deepcopy(own)
    unknown["node"]["props"].append({"id": "laser", "kind": "laser", "pin": 4})
    refused(unknown, "laser")
    conflict = copy.deepcopy(own)
    conflict["node"]["props"].append({"id": "doorbell", "kind": "button", "pin": 17})
    refused(conflict, "17")   # the mailbox lock's relay

    # a damaged message (hash of another content) is dropped by the contract, unanswered
    forged = json.dumps({"v": 1, "hash": content_hash(own), "part": conflict}).encode()
    since = time.monotonic()
    wire.publish(part_topic, forged, retain=True)

    # -- a good part: applied, reported, its new prop on the wire --------------------------
    good = copy.deepcopy(own)
    good["node"]["label"] = {"fr": "Hall d'entrée"}
    good["node"]["props"].append({"id": "doorbell", "kind": "button", "pin": 23})
    wire.publish(part_topic, game_message(good), retain=True)
    birth = last_birth(wire, status, lambda b: b.get("game") == content_hash(good), since=since,
                       what="the good part applied")
    assert "doorbell" in {p["id"] for p in birth["props"]} and birth.get("game_refused") is None
    assert all(content_hash(own) == b["game"] for b in births(wire, status, since=since)
               if b["game"] != content_hash(good)), "the forged one was never taken"
    wait_for(lambda: wire.received(topics.prop_state("hall", "doorbell")), what="the new prop's state")
    kept = data_dir / f"{game.apartment.id}-hall.part.json"
    assert json.loads(kept.read_bytes())["hash"] == content_hash(good)

    # -- kill -9, the controller away (no part on the broker): it starts with its copy -----
    node.kill()
    wire.publish(part_topic, b"", retain=True)
    since = time.monotonic()
    start_node()
    birth = last_birth(wire, status, lambda b: b.get("game") is not None, since=since,
                       what="the restarted node's birth")
    assert birth["game"] == content_hash(good), "the last part it was given, not the file's"
    assert "doorbell" in {p["id"] for p in birth["props"]}


# -- the whole apartment ---------------------------------------------------------------
class Apartment:
    """The shipped game's seven nodes as agents on MockFactory, and a controller started on
    a game file it reloads."""

    def __init__(self, *, broker: Mosquitto, tmp_path: Path, stack: ExitStack) -> None:
        self.stack, self.tmp_path = stack, tmp_path
        self.address = BrokerAddress(broker.host, broker.port)
        self.path = tmp_path / "apartment.yaml"
        self.path.write_text(SHIPPED_GAME.read_text(encoding="utf-8"), encoding="utf-8")
        self.game = load_game(self.path)
        self.agents: dict[str, NodeAgent] = {}
        for node in self.game.nodes:
            agent = NodeAgent(game=self.game, node_id=node.id, broker=self.address,
                              pin_factory=MockFactory(), simulate=True,
                              data_dir=tmp_path / "nodes" / node.id)
            agent.start()
            stack.callback(agent.stop)
            self.agents[node.id] = agent
        self.client = self.start_controller()

    def start_controller(self) -> TestClient:
        client = TestClient(create_app(game=load_game(self.path), broker=self.address,
                                       db_path=self.tmp_path / "escape.db", config_path=self.path),
                            headers={"Content-Type": "application/json"})
        client.__enter__()
        self.stack.callback(lambda: client.__exit__(None, None, None))
        wait_for(lambda: all(n["online"] for n in client.get("/api/state").json()["nodes"]),
                 timeout=30, what="every node online")
        return client

    def state(self) -> dict[str, Any]:
        return self.client.get("/api/state").json()  # type: ignore[no-any-return]

    def statuses(self) -> dict[str, str]:
        return {n["id"]: n["game"]["status"] for n in self.state()["nodes"]}

    def all_same(self) -> bool:
        return set(self.statuses().values()) == {"same"}


@pytest.fixture
def apartment(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Apartment]:
    with ExitStack() as stack:
        yield Apartment(broker=mosquitto, tmp_path=tmp_path, stack=stack)


def test_a_new_file_reaches_seven_nodes_between_sessions_and_survives_a_controller_restart(
        apartment: Apartment) -> None:
    wait_for(apartment.all_same, timeout=20, what="every node on the controller's part")
    before = {nid: a.status()["game"] for nid, a in apartment.agents.items()}
    text = apartment.path.read_text(encoding="utf-8")
    renamed = text.replace('fr: "L\'appartement témoin"', 'fr: "L\'appartement témoin, saison 2"', 1)
    assert renamed != text
    apartment.path.write_text(renamed, encoding="utf-8")   # in every node's part: all seven change
    started = time.monotonic()
    reply = apartment.client.post("/api/config/reload", json={})
    assert reply.status_code == 200, reply.text
    assert sorted(reply.json()["nodes"]) == sorted(apartment.agents)
    took = wait_for(lambda: all(a.status()["game"] not in (None, before[nid])
                                for nid, a in apartment.agents.items()),
                    timeout=30, what="every node to apply its new part")
    wait_for(apartment.all_same, timeout=20, what="the controller to see every node on it")
    seen = time.monotonic() - started
    print(f"\n[game reload] 7 nodes applied their new part in {took:.2f} s; "
          f"the controller saw them all in {seen:.2f} s")
    new = {nid: a.status()["game"] for nid, a in apartment.agents.items()}
    applied = {nid: a.status()["metrics"].get("game_parts_applied", 0) for nid, a in apartment.agents.items()}
    assert set(applied.values()) == {1}

    # -- the controller restarts: the nodes keep their copy, nothing is applied again --------
    apartment.client.__exit__(None, None, None)
    wait_for(lambda: all(not a.status()["controller_online"] for a in apartment.agents.values()),
             timeout=20, what="the nodes to see the controller gone")
    assert {nid: a.status()["game"] for nid, a in apartment.agents.items()} == new
    apartment.client = apartment.start_controller()
    wait_for(apartment.all_same, timeout=20, what="every node on the restarted controller's part")
    assert {nid: a.status()["metrics"].get("game_parts_applied", 0)
            for nid, a in apartment.agents.items()} == applied, "the same part is not rebuilt"


def test_the_pre_game_check_refuses_while_a_node_runs_another_part(
        mosquitto: Mosquitto, apartment: Apartment) -> None:
    """A node with older software runs another part: the check names it and does not pass;
    the briefing needs an override. Played by a raw client speaking only the contract."""
    wait_for(apartment.all_same, timeout=20, what="every node on the controller's part")
    sdb = apartment.agents.pop("sdb")
    sdb.stop()
    topics = Topics(apartment.game.apartment.id)
    old = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="old-sdb",
                      protocol=mqtt.MQTTv311)
    old.connect(mosquitto.host, mosquitto.port, keepalive=30)
    old.loop_start()
    try:
        props = [{"id": p.id, "kind": p.kind} for p in apartment.game.node("sdb").props]

        def birth(**fields: Any) -> None:
            old.publish(topics.node_status("sdb"), json.dumps({
                "v": 1, "online": True, "boot_id": "oldsdb1", "version": "0.0.9", "props": props,
                "simulated": True, "ts": time.time(), **fields}), qos=1, retain=True).wait_for_publish(5)

        birth(game="0123456789abcdef")
        wait_for(lambda: apartment.statuses().get("sdb") == "waiting", timeout=20,
                 what="the controller to see the node on another part")
        assert apartment.client.post("/api/game/check", json={"parcours": "primo"}).status_code == 200
        report = apartment.state()["check"]
        assert not report["ready"]
        [entry] = report["nodes"]
        assert entry["node"] == "sdb" and entry["status"] == "waiting"
        assert "Salle de bain" in entry["instruction"]["text"] or "sdb" in entry["instruction"]["text"]
        assert any(text == entry["instruction"]["text"] for text in report["not_ready"])
        node = next(n for n in apartment.state()["nodes"] if n["id"] == "sdb")
        assert node["game"]["software_differs"] and node["version"] == "0.0.9"
        reply = apartment.client.post("/api/game/briefing", json={})
        assert reply.status_code == 409, reply.text

        expected = node["game"]["expected"]
        birth(game="0123456789abcdef", game_refused={"hash": expected, "reason": "unknown prop kind 'x'"})
        wait_for(lambda: apartment.statuses().get("sdb") == "refused", timeout=20, what="the refusal seen")
        [entry] = apartment.state()["check"]["nodes"]
        assert "unknown prop kind 'x'" in entry["instruction"]["text"]

        birth(game=expected)
        wait_for(lambda: apartment.statuses().get("sdb") == "same", timeout=20, what="the node on its part")
        assert apartment.state()["check"]["nodes"] == []
    finally:
        old.loop_stop()
        old.disconnect()
