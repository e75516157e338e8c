"""The controller's per-event work (issue "Performance", docs/performance.md):

* an event that changes nothing but the log (a key, a wrong code) publishes nothing and is
  written with the others of its loop turn in one transaction, with only the inactivity
  clock of the resume record (no whole record);
* a solve is durable at once — after its commands, before the next message is read;
* the game state is published once per loop turn, and only when something it shows moved;
* the MQTT bridge wakes the loop once per burst.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from config.game import Game
from controller.mqtt import Incoming, MqttBridge
from controller.service import FLUSH_AFTER_S, GameService
from controller.store import Store
from nodes.contract import NodeStatus, PropEvent, TopicParts, Topics
from nodes.mqtt import BrokerAddress
from tests.controller.conftest import FakeClocks


class Recorder:
    """What the service did, in order: commands, publishes, store writes."""

    def __init__(self, service: GameService) -> None:
        self.log: list[str] = []
        bridge, store = service.bridge, service.store
        bridge.send_command = lambda n, p, c: self.log.append(f"command {n}.{p} {c.action}")
        bridge.publish = lambda topic, payload, **_kw: self.log.append(
            "game_state" if topic == bridge.topics.game_state else f"publish {topic}")
        bridge.publish_status = lambda **_kw: None
        for name in ("save_session", "add_journal", "save_desired"):
            self._wrap(store, name)

    def _wrap(self, store: Store, name: str) -> None:
        original = getattr(store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.log.append(name)
            return original(*args, **kwargs)

        setattr(store, name, call)

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
                                                                    clocks: FakeClocks):
    service.start_game(parcours="primo", players=4)
    rec = Recorder(service)
    to_record = service.engine.to_record
    records: list[int] = []
    service.engine.to_record = lambda: records.append(1) or to_record()   # type: ignore[method-assign]

    async def burst() -> list[str]:
        clocks.advance(30)
        for seq, key in enumerate("0413", start=1):
            service._handle(event(seq, "key", key))
        service._handle(event(5, "code", "0413"))      # a wrong code
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
    service.start_game(parcours="primo", players=4)
    rec = Recorder(service)

    async def solve() -> list[str]:
        clocks.advance(10)
        service._handle(event(1, "key", "0"))
        service._handle(event(2, "code", "0412"))
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
        service.start_game(parcours="primo", players=4)
        service.add_time(60)
        service.pause()
        during = [line for line in rec.take() if line == "game_state"]
        await asyncio.sleep(0)
        return during + [line for line in rec.take() if line == "game_state"]

    assert asyncio.run(orders()) == ["game_state"]


def test_the_bridge_wakes_the_loop_once_per_burst(game: Game):
    bridge = MqttBridge(topics=Topics(game.apartment.id), broker=BrokerAddress("127.0.0.1", 9),
                        boot_id="ctl")

    async def main() -> tuple[int, list[int]]:
        loop = asyncio.get_running_loop()
        bridge._loop = loop
        wakeups = 0
        original = loop.call_soon_threadsafe

        def counting(*args: Any) -> Any:
            nonlocal wakeups
            wakeups += 1
            return original(*args)

        loop.call_soon_threadsafe = counting   # type: ignore[method-assign]
        items = [event(i, "key", str(i % 10)) for i in range(1, 201)]
        paho = threading.Thread(target=lambda: [bridge._hand_over(it) for it in items])
        paho.start()
        paho.join()
        got = [(await asyncio.wait_for(bridge.queue.get(), 5)).payload.seq for _ in items]
        return wakeups, got

    wakeups, seqs = asyncio.run(main())
    assert seqs == list(range(1, 201)), "every message, in order"
    assert wakeups == 1, "the thread handed the burst over before the loop ran: one wake-up"


def test_store_batch_keeps_the_order_and_patches_only_the_inactivity_clock(tmp_path: Path,
                                                                         game: Game):
    from controller.engine import Engine

    store = Store(tmp_path / "escape.db")
    try:
        engine = Engine(game)
        engine.start(parcours="primo", players=4)
        store.save_session(engine.to_record(), engine.history_rows(), engine.take_journal())
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
