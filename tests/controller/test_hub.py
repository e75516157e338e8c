"""The WebSocket hub: every client gets the newest snapshot; a slow one holds up nobody."""

from __future__ import annotations

import asyncio

from controller import hub as hub_module
from controller.hub import Hub


class FakeSocket:
    """Stands in for starlette's WebSocket: records what it was sent."""

    def __init__(self, *, delay: float = 0.0, fail: bool = False) -> None:
        self.delay, self.fail = delay, fail
        self.sent: list[str] = []
        self.closed = False

    async def send_text(self, text: str) -> None:
        if self.fail:
            raise ConnectionError("gone")
        if self.delay:
            await asyncio.sleep(self.delay)
        self.sent.append(text)

    async def close(self) -> None:
        self.closed = True


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_broadcast_reaches_every_client_in_order():
    async def scenario():
        hub = Hub()
        clients = [FakeSocket() for _ in range(20)]
        for ws in clients:
            hub.add(ws)
        await hub.broadcast("one")
        await _settle()
        await hub.broadcast("two")
        await _settle()
        assert all(ws.sent == ["one", "two"] for ws in clients)
        for ws in clients:
            hub.discard(ws)
        assert hub.count() == 0

    asyncio.run(scenario())


def test_a_client_that_falls_behind_gets_the_newest_frame_only():
    async def scenario():
        hub = Hub()
        slow = FakeSocket(delay=0.05)
        hub.add(slow)
        await hub.broadcast("one")
        await asyncio.sleep(0.01)       # "one" is being written
        for text in ("two", "three", "four"):
            await hub.broadcast(text)
        await asyncio.sleep(0.2)
        assert slow.sent == ["one", "four"]
        hub.discard(slow)

    asyncio.run(scenario())


def test_a_dead_or_slow_client_is_dropped_without_delaying_the_others(monkeypatch):
    monkeypatch.setattr(hub_module, "SEND_TIMEOUT_S", 0.05)

    async def scenario():
        hub = Hub()
        dead, stuck, fine = FakeSocket(fail=True), FakeSocket(delay=10), FakeSocket()
        for ws in (dead, stuck, fine):
            hub.add(ws)
        await hub.broadcast("frame")
        await _settle()
        assert fine.sent == ["frame"]  # at once, whatever the others do
        await asyncio.sleep(0.2)
        assert hub.clients == {fine}
        assert dead.closed and stuck.closed
        hub.discard(fine)
        hub.discard(fine)  # twice is harmless

    asyncio.run(scenario())
