"""What the simulation's unit tests observe a SimClient with."""

from __future__ import annotations

from typing import Any

from simulation.client import SimClient


class Inbox:
    """Records what a client receives: (topic, payload, qos, retain, dup)."""

    def __init__(self, client: SimClient, *topics: str) -> None:
        self.messages: list[tuple[str, bytes, int, bool, bool]] = []
        self.connects = 0
        self.disconnects: list[str] = []
        client.on_message = lambda _c, _u, m: self.messages.append(
            (m.topic, bytes(m.payload), m.qos, bool(m.retain), bool(m.dup)))
        client.on_disconnect = lambda _c, _u, _f, rc, _p: self.disconnects.append(str(rc))

        def connected(c: SimClient, *_: Any) -> None:
            self.connects += 1
            if topics:
                c.subscribe([(t, 1) for t in topics])

        client.on_connect = connected

    def payloads(self, topic: str) -> list[bytes]:
        return [m[1] for m in self.messages if m[0] == topic]
