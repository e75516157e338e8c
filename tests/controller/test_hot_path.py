"""The controller's per-event work (docs/performance.md):

* an event that changes nothing but the log (a key, a wrong code) publishes nothing and is
  written with the others of its loop turn in one transaction, with only the inactivity
  clock of the resume record (no whole record);
* a solve is durable at once — after its commands, before the next message is read;
* the game state is published once per loop turn, and only when something it shows moved;
* the MQTT bridge runs on the loop: no thread hand-off, a command written at once.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from config.game import Game
from config.loader import parse_game
from controller.journal import FLUSH_AFTER_S
from controller.mqtt import Connection, Incoming, MqttBridge
from controller.mqtt_transports import TRANSPORTS
from controller.record import history_rows, to_record
from controller.service import GameService
from controller.store import Batch, Store
from protocol.contract import Command, NodeStatus, PropEvent, TopicParts, Topics
from protocol.mqtt import BrokerAddress
from tests.controller.conftest import GAME, FakeClocks


class Recorder:
    """What the service did, in order: commands, publishes, store writes."""

    def __init__(self, service: GameService) -> None:
        self.log: list[str] = []
        bridge, store = service.bridge, service.store
        bridge.send_command = lambda n, p, c: self.log.append(f"command {n}.{p} {c.action}")
        bridge.publish = lambda topic, payload, **_kw: self.log.append(
            "game_state" if topic == bridge.topics.game_state else f"publish {topic}")
        bridge.publish_status = lambda **_kw: None
        write = store.write

        def spy(batch: Batch) -> Any:
            # one transaction each, named after what it carries
            self.log.append("save_session" if batch.sessions else
                            "save_desired" if batch.desired and not batch.journal else "add_journal")
            return write(batch)

        store.write = spy   # type: ignore[method-assign]

    def take(self) -> list[str]:
        out, self.log = self.log, []
        return out


@pytest.fixture
def service(tmp_path: Path, game: Game, clocks: FakeClocks):
    store = Store(tmp_path / "escape.db")
    bridge = MqttBridge(topics=Topics(game.apartment.id), broker=BrokerAddress("127.0.0.1", 9),
                        boot_id="ctl")
    svc = GameService(game=game, bridge=bridge, store=store, clock=clocks.monotonic, wall=clocks.wall)
    svc.registry.on_status("hall", NodeStatus(online=True, boot_id="boot1"))
    yield svc
    store.close()


def event(seq: int, type_: str, value: Any) -> Incoming:
    return Incoming(TopicParts("event", "hall", "keypad"),
                    PropEvent(boot_id="boot1", seq=seq, type=type_, value=value, ts=1.0), retained=False)


def test_events_that_change_nothing_are_batched_and_publish_nothing(service: GameService,
                                                                    clocks: FakeClocks, monkeypatch):
    service.orders.start_game(parcours="primo", players=4)
    rec = Recorder(service)
    records: list[int] = []
    monkeypatch.setattr("controller.journal.to_record", lambda engine: records.append(1) or to_record(engine))

    async def burst() -> list[str]:
        clocks.advance(30)
        for seq, key in enumerate("0413", start=1):
            service.handle(event(seq, "key", key))
        service.handle(event(5, "code", "0413"))      # a wrong code
        during = rec.take()
        await asyncio.sleep(FLUSH_AFTER_S * 3)
        return during

    during = asyncio.run(burst())
    assert during == [], "nothing published nor written while the burst is handled"
    assert rec.take() == ["add_journal"], "one transaction for the whole burst"
    assert records == [], "the resume record is not rebuilt for them"
    rows = [e for e in service.store.events(service.engine.session_id) if e["kind"] == "prop"]
    assert [(e["type"], e["value"]) for e in rows] == [("key", "0"), ("key", "4"), ("key", "1"),
                                                      ("key", "3"), ("code", "0413")]
    record = service.store.open_session()
    assert record is not None and record["last_activity"] == pytest.approx(30.0)


def test_a_solve_is_durable_at_once_after_its_commands(service: GameService, clocks: FakeClocks):
    service.orders.start_game(parcours="primo", players=4)
    rec = Recorder(service)

    async def solve() -> list[str]:
        clocks.advance(10)
        service.handle(event(1, "key", "0"))
        service.handle(event(2, "code", "0412"))
        during = rec.take()
        # durable before the next message is read: a crash now resumes the solved puzzle
        record = service.store.open_session()
        assert record is not None and record["puzzles"]["mailbox"]["status"] == "solved"
        await asyncio.sleep(0)
        return during + rec.take()

    log = asyncio.run(solve())
    first_write = log.index("save_session")
    commands = [i for i, line in enumerate(log) if line.startswith("command ")]
    assert commands and max(commands) < first_write, f"the doors first, then the books: {log}"
    assert log.count("game_state") == 1 and log.index("game_state") > first_write
    rows = [e["type"] for e in service.store.events(service.engine.session_id) if e["kind"] == "prop"]
    assert rows == ["key", "code"], "the rows queued before the solve are written with it"


def test_game_state_is_published_once_per_loop_turn(service: GameService):
    rec = Recorder(service)

    async def orders() -> list[str]:
        service.orders.start_game(parcours="primo", players=4)
        service.orders.add_time(60)
        service.orders.pause()
        during = [line for line in rec.take() if line == "game_state"]
        await asyncio.sleep(0)
        return during + [line for line in rec.take() if line == "game_state"]

    assert asyncio.run(orders()) == ["game_state"]


class _FakeBroker:
    """Just enough of a broker for one client: CONNACK, SUBACK, and raw bytes both ways."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> socket.socket:
        self.server.settimeout(5)
        self.conn, _ = self.server.accept()
        self.conn.settimeout(5)
        return self.conn

    def packet(self) -> tuple[int, bytes]:
        """One MQTT packet: (type, body)."""
        assert self.conn is not None
        head = self.conn.recv(1)
        length, mult = 0, 1
        while True:
            byte = self.conn.recv(1)[0]
            length += (byte & 0x7F) * mult
            mult *= 128
            if not byte & 0x80:
                break
        body = b""
        while len(body) < length:
            body += self.conn.recv(length - len(body))
        return head[0] >> 4, body

    def close(self) -> None:
        for sock in (self.conn, self.server):
            if sock is not None:
                sock.close()


def _publish_packet(topic: str, payload: bytes) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode() + payload   # QoS 0: no packet id
    assert len(body) < 128
    return bytes([0x30, len(body)]) + body


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_transport_runs_on_the_loop_and_a_command_goes_out_at_once(game: Game, transport: str):
    """No paho thread: a message is decoded on the loop's thread and queued. With the paho
    transport a command is written to the socket inside send_command (docs/performance.md,
    fix 8); with aiomqtt as soon as the loop turns. The CONNECT carries the keepalive, the
    socket has TCP_NODELAY."""
    broker = _FakeBroker()
    topics = Topics(game.apartment.id)
    bridge = MqttBridge(topics=topics, broker=BrokerAddress("127.0.0.1", broker.port), boot_id="ctl",
                        keepalive=7, transport=transport)
    threads: list[int] = []
    on_message = bridge.on_link_message

    def spy(*args: Any) -> None:
        threads.append(threading.get_ident())
        on_message(*args)

    bridge.on_link_message = spy   # type: ignore[method-assign]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        bridge.start()
        conn = await asyncio.to_thread(broker.accept)
        kind, connect = await asyncio.to_thread(broker.packet)
        assert kind == 1, "CONNECT first"
        assert connect[:7] == b"\x00\x04MQTT\x04", "MQTT 3.1.1"
        assert connect[7] & 0x02, "clean session"
        assert connect[7] & 0x04 and connect[7] & 0x20 and (connect[7] >> 3) & 0x03 == 1, \
            "a retained QoS 1 will"
        assert int.from_bytes(connect[8:10], "big") == 7, "the keepalive the settings gave"
        conn.sendall(b"\x20\x02\x00\x00")                       # CONNACK, accepted
        kind, sub = await asyncio.to_thread(broker.packet)
        assert kind == 8, "then SUBSCRIBE"
        conn.sendall(bytes([0x90, 2 + 5]) + sub[:2] + b"\x01" * 5)  # SUBACK
        assert (await asyncio.wait_for(bridge.queue.get(), 5)) == Connection(up=True)
        assert bridge.connected
        assert bridge.link is not None
        sock = bridge.link.paho.socket()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), "TCP_NODELAY"
        assert not [t.name for t in threading.enumerate() if t.name.startswith("paho")], \
            "no paho network thread"
        kind, _ = await asyncio.to_thread(broker.packet)
        assert kind == 3, "the retained online status"

        event = PropEvent(boot_id="b", seq=1, type="key", value="1", ts=1.0)
        conn.sendall(_publish_packet(topics.prop_event("hall", "keypad"), event.to_bytes()))
        item = await asyncio.wait_for(bridge.queue.get(), 5)
        assert isinstance(item, Incoming) and item.payload == event
        assert threads == [threading.get_ident()], "decoded on the loop's thread"

        conn.setblocking(False)
        bridge.send_command("hall", "door", Command(id="c1", action="unlock"))
        if transport == "paho":
            data = conn.recv(4096)   # no await in between: written before send_command returned
        else:
            for _ in range(5):   # the publish task, then aiomqtt's writer: a few loop turns
                await asyncio.sleep(0)
            data = await asyncio.to_thread(lambda: (conn.setblocking(True), conn.recv(4096))[1])
        conn.setblocking(True)
        assert data[0] >> 4 == 3 and topics.prop_set("hall", "door").encode() in data
        assert loop.is_running()
        await bridge.stop()

    try:
        asyncio.run(main())
    finally:
        broker.close()


def test_store_batch_keeps_the_order_and_patches_only_the_inactivity_clock(tmp_path: Path,
                                                                         game: Game):
    from controller.engine import Engine

    store = Store(tmp_path / "escape.db")
    try:
        engine = Engine(game)
        engine.start(parcours="primo", players=4)
        store.save_session(to_record(engine), history_rows(engine), engine.take_journal())
        before = store.open_session()
        sid = engine.session_id
        store.add_journal([
            ("prop", {"session": sid, "wall": 1.0, "at": 2.0, "node": "hall", "prop": "keypad",
                      "type": "key", "value": "1"}),
            ("note", {"session": sid, "wall": 1.5, "at": 2.5, "kind": "ignored", "text": "pas encore"}),
            ("prop", {"session": sid, "wall": 2.0, "at": 3.0, "node": "hall", "prop": "keypad",
                      "type": "code", "value": {"odd": [1, 2]}}),
            ("audit", {"session": sid, "at": 2.0, "elapsed": 3.0, "who": "gm", "action": "x",
                       "target": None, "detail": None}),
        ], activity=(sid, 3.0, 3.0))
        rows = store.events(sid)
        assert [(r["kind"], r["type"], r["value"], r["text"]) for r in rows[-3:]] == [
            ("prop", "key", "1", None), ("ignored", None, None, "pas encore"),
            ("prop", "code", {"odd": [1, 2]}, None)]
        after = store.open_session()
        assert after == {**before, "last_activity": 3.0}
        assert store.recent_journal(sid)[1][-1]["action"] == "x"
        assert json.loads(json.dumps(after)) == after
    finally:
        store.close()



def test_a_wrong_codes_sound_reaches_the_screens_without_publishing_anything(tmp_path: Path,
                                                                             clocks: FakeClocks):
    """With event sounds in the game file, a wrong code cues its sound for the screens'
    views (docs/media.md) and still publishes nothing, writes nothing at once."""
    game = parse_game(GAME.format(apartment_id="hotpath") + "sounds:\n  wrong_code: {file: wrong.wav}\n").game
    store = Store(tmp_path / "escape.db")
    bridge = MqttBridge(topics=Topics(game.apartment.id), broker=BrokerAddress("127.0.0.1", 9),
                        boot_id="ctl")
    svc = GameService(game=game, bridge=bridge, store=store, clock=clocks.monotonic, wall=clocks.wall)
    svc.registry.on_status("hall", NodeStatus(online=True, boot_id="boot1"))
    svc.orders.start_game(parcours="primo", players=4)
    rec = Recorder(svc)

    async def wrong() -> list[str]:
        svc.handle(event(1, "code", "0413"))
        return rec.take()

    assert asyncio.run(wrong()) == [], "nothing published nor written while it is handled"
    assert [(c.file, c.rooms) for c in svc.engine.cues] == [("wrong.wav", ("hall",))]
    store.close()
