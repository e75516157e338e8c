"""Node liveness on the controller: heartbeats, silence, returns (controller/registry.py,
``Liveness.watch``), the console's per-node fields, and the controller's own
MQTT keepalive and transport from the settings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from config.game import Game
from controller.core.config import Settings
from controller.main import create_app
from controller.mqtt import Incoming
from controller.registry import Registry
from protocol.contract import NodeHeartbeat, NodeStatus, PropEvent, Resync, TopicParts, node_silence_limit
from protocol.mqtt import BrokerAddress
from tests.faults.conftest import wait_for

KEEPALIVE = 3.0
HEARTBEAT = 1.0
LIMIT = node_silence_limit(keepalive=KEEPALIVE, heartbeat=HEARTBEAT)


def birth(boot: str = "boot1", **kw: object) -> NodeStatus:
    return NodeStatus(online=True, boot_id=boot, keepalive=KEEPALIVE, heartbeat=HEARTBEAT, **kw)


def node(registry: Registry, node_id: str = "hall") -> dict:
    return next(n for n in registry.snapshot()["nodes"] if n["id"] == node_id)


def test_the_silence_limit_is_1_2_keepalives_and_never_under_three_heartbeats() -> None:
    assert node_silence_limit(keepalive=3, heartbeat=1) == pytest.approx(3.6)
    assert node_silence_limit(keepalive=5) == pytest.approx(6.0)
    assert node_silence_limit(keepalive=2, heartbeat=1.5) == pytest.approx(4.5)


def test_a_silent_node_goes_offline_after_its_limit_and_back_with_its_next_heartbeat(game: Game) -> None:
    registry = Registry(game)
    assert registry.on_status("hall", birth()) == "birth"
    t0 = registry.nodes["hall"].heard_at
    assert registry.check_silence(t0 + 2 * HEARTBEAT - 0.01) == ([], False)
    assert registry.check_silence(t0 + 2 * HEARTBEAT + 0.01) == ([], True)
    assert node(registry)["heartbeat_late"] is True and node(registry)["online"] is True
    assert registry.check_silence(t0 + LIMIT + 0.01) == (["hall"], False)
    view = node(registry)
    assert (view["online"], view["offline_reason"], view["heartbeat_late"]) == (False, "silent", False)
    assert registry.check_silence(t0 + 60) == ([], False), "declared once"

    assert registry.on_heartbeat("hall", NodeHeartbeat(boot_id="boot1", autonomous=True, outbox=4)) == "return"
    view = node(registry)
    assert (view["online"], view["offline_reason"], view["autonomous"], view["outbox"]) == (True, None, True, 4)
    assert view["last_seen"] == pytest.approx(time.time(), abs=5)
    assert registry.returned == {"hall"}, "back without a birth: the service resyncs it"


def test_an_event_of_the_same_boot_brings_a_silent_node_back_too(game: Game) -> None:
    registry = Registry(game)
    registry.on_status("hall", birth())
    registry.check_silence(registry.nodes["hall"].heard_at + LIMIT + 1)
    registry.on_event("hall", PropEvent(boot_id="boot1", seq=1, type="key", value="1", ts=time.time()))
    assert registry.nodes["hall"].online and registry.returned == {"hall"}


def test_after_a_will_a_heartbeat_of_the_same_boot_brings_the_node_back_with_a_resync(game: Game) -> None:
    # One broker forwards a connection's messages in order and its will after them: a
    # heartbeat that arrives after the will comes from a new connection of that boot
    # (whose birth this controller missed: it is asked for a resync).
    registry = Registry(game)
    registry.on_status("hall", birth())
    registry.check_silence(registry.nodes["hall"].heard_at + LIMIT + 1)
    assert registry.on_status("hall", NodeStatus(online=False, boot_id="boot1")) == "offline"
    assert node(registry)["offline_reason"] == "will"
    assert registry.on_heartbeat("hall", NodeHeartbeat(boot_id="boot1")) == "return"
    assert registry.nodes["hall"].online and registry.returned == {"hall"}
    registry.returned.clear()
    assert registry.on_status("hall", NodeStatus(online=False, boot_id="boot1")) == "offline"
    assert registry.on_status("hall", birth()) == "birth"
    assert registry.nodes["hall"].online and node(registry)["offline_reason"] is None
    assert registry.returned == set(), "a birth comes with every state: no resync needed"


def test_heartbeats_of_another_boot_and_nodes_without_keepalive_are_left_alone(game: Game) -> None:
    registry = Registry(game)
    registry.on_status("hall", NodeStatus(online=True, boot_id="old"))   # an older node: no keepalive
    registry.on_status("salon", birth("boot2"))
    assert registry.on_heartbeat("salon", NodeHeartbeat(boot_id="other", outbox=9)) == "stale", \
        "the current boot is alive: a heartbeat of an unknown other boot takes nothing over"
    assert node(registry, "salon")["outbox"] is None
    gone, _ = registry.check_silence(time.monotonic() + 3600)
    assert gone == ["salon"], "the old node relies on its will alone"


def test_silence_counts_from_the_controllers_own_connection(game: Game) -> None:
    registry = Registry(game)
    registry.on_status("hall", birth())
    t0 = registry.nodes["hall"].heard_at
    assert registry.check_silence(t0 + LIMIT + 1, listening_since=t0 + 2) == ([], True)
    assert registry.nodes["hall"].online


# -- the service: a silent node is treated like a will; its return asks for a resync --------
@pytest.fixture
def client(tmp_path: Path, game: Game) -> TestClient:
    app = create_app(game=game, broker=BrokerAddress("127.0.0.1", 9), db_path=tmp_path / "escape.db")
    with TestClient(app) as c:
        yield c


def test_the_service_stops_sending_to_a_silent_node_and_resyncs_it_on_its_return(client: TestClient) -> None:
    service = client.app.state.service
    sent: list[tuple[str, bytes]] = []
    service.bridge.publish = lambda topic, payload, **_kw: sent.append((topic, payload))
    commands: list[str] = []
    service.bridge.send_command = lambda n, p, c: commands.append(f"{n}.{p}:{c.action}")
    service.bridge.connected, service.bridge.connected_at = True, 0.0
    service.handle(Incoming(TopicParts("status", "hall"), birth(), retained=False))
    service.outputs.command("hall", "box_lock", "lock")
    commands.clear()

    info = service.registry.nodes["hall"]
    info.heard_at -= LIMIT + 1              # nothing heard for longer than the limit

    def silent() -> bool:
        service.tick()   # (no verdict while the bridge still has messages queued: a later tick)
        return not info.online
    wait_for(silent, what="the hall declared silent")
    assert info.offline_reason == "silent"
    assert service.bridge.metrics["silent_nodes"] == 1
    service.desired[("hall", "box_lock")].sent_at = 0.0
    service.bridge.connected = True   # the bridge's own attempts at port 9 may have reset it
    service.tick()
    assert commands == [], "no reconciliation towards an offline node"

    assert service.handle(Incoming(TopicParts("heartbeat", "hall"),
                                          NodeHeartbeat(boot_id="boot1", outbox=0), retained=False))
    assert info.online
    resyncs = [p for t, p in sent if t == service.bridge.topics.node_resync("hall")]
    assert len(resyncs) == 1 and Resync.model_validate_json(resyncs[0]).reason == "back without a birth"
    service.bridge.connected = True
    service.tick()
    assert commands == ["hall.box_lock:lock"], "what differs is resent at once"


def test_no_verdict_while_the_controller_itself_is_cut_off(client: TestClient) -> None:
    service = client.app.state.service
    service.bridge.connected = False
    service.handle(Incoming(TopicParts("status", "hall"), birth(), retained=False))
    service.registry.nodes["hall"].heard_at -= LIMIT + 1
    service.tick()
    assert service.registry.nodes["hall"].online


# -- the controller's own keepalive -----------------------------------------------------------
def test_the_controller_keepalive_comes_from_the_settings(tmp_path: Path, game: Game,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().MQTT_KEEPALIVE == 5
    monkeypatch.setenv("ESCAPE_MQTT_KEEPALIVE", "7")
    app = create_app(game=game, broker=BrokerAddress("127.0.0.1", 9), db_path=tmp_path / "escape.db")
    with TestClient(app):
        bridge = app.state.service.bridge
        assert bridge.keepalive == 7   # what its CONNECT carries: test_hot_path.py, on the wire
    for bad in ("1", "61", "soon"):
        monkeypatch.setenv("ESCAPE_MQTT_KEEPALIVE", bad)
        with pytest.raises(ValidationError):
            Settings()


def test_the_controller_transport_comes_from_the_settings(tmp_path: Path, game: Game,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESCAPE_MQTT_TRANSPORT", raising=False)
    assert Settings().MQTT_TRANSPORT == "paho", "the default: measured faster (docs/performance.md)"
    monkeypatch.setenv("ESCAPE_MQTT_TRANSPORT", "aiomqtt")
    app = create_app(game=game, broker=BrokerAddress("127.0.0.1", 9), db_path=tmp_path / "escape.db")
    with TestClient(app):
        bridge = app.state.service.bridge
        assert bridge.transport == "aiomqtt"
        assert type(bridge.link).__name__ == "AiomqttLink"
    monkeypatch.setenv("ESCAPE_MQTT_TRANSPORT", "tcp")
    with pytest.raises(ValidationError, match="unknown MQTT transport"):
        Settings()
