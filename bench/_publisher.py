"""Bench runner: simulated room nodes that publish prop events as fast as asked.

    python -m bench._publisher --broker 127.0.0.1:1883 --apartment bench \\
        --node room_01 --node room_02 … --props p1,p2,…

One paho client per room (``protocol.mqtt.make_client``, as a node's: TCP_NODELAY, QoS 1),
each announcing its birth (retained ``NodeStatus``); on
``{"cmd": "run", "rate": 500, "seconds": 3}`` the rooms publish valid ``PropEvent``
payloads on the contract's event topics (``seq`` +1 each, ``ts`` = now), round-robin over
each room's props, at *rate* events/s in all (shared evenly), or as fast as they can with
``rate`` 0, and the process answers ``{"kind": "done", "sent": n, "seconds": wall}``;
with ``"count": n`` it stops after n events in all.

All the rooms of a process share one thread and one ``select`` (paho's external-loop
API: ``loop_read`` / ``loop_write`` / ``loop_misc`` on each client's socket), and a
publish writes to the socket at once (no ``loop_start`` thread to wake): the load
generator costs as little CPU as paho allows and leaves the cores to the broker and the
controller. Each room keeps at most ``--window`` events unacknowledged, so "as fast as it
can" is paced by the broker's PUBACKs.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import time
from typing import Any

import paho.mqtt.client as mqtt

from bench._runner import Output, serve
from protocol.contract import NodeStatus, PropInfo, Topics, new_id
from protocol.mqtt import BrokerAddress, make_client

TICK_S = 0.001
MISC_EVERY_S = 0.5


class Room:
    """One simulated node: a paho client, its props, its sequence numbers."""

    def __init__(self, *, broker: BrokerAddress, topics: Topics, node: str, props: list[str],
                 window: int, out: Output) -> None:
        self.topics, self.node, self.props, self.window, self.out = topics, node, props, window, out
        self.event_topics = [topics.prop_event(node, p) for p in props]
        self.boot_id = new_id()
        self.seq = 0
        self.sent = 0
        self.inflight = 0
        self.connected = False
        self.client = make_client(f"bench-pub-{node}-{os.getpid()}", broker)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.out.emit("error", error=f"{self.node}: connect refused: {reason}")
            return
        birth = NodeStatus(online=True, boot_id=self.boot_id, version="bench",
                           props=[PropInfo(id=p, kind="button") for p in self.props],
                           simulated=True, ts=time.time())
        self.inflight += 1
        client.publish(self.topics.node_status(self.node), birth.to_bytes(), qos=1, retain=True)
        self.connected = True

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        self.inflight -= 1

    def publish_one(self) -> None:
        self.seq += 1
        self.sent += 1
        # NOTE: the PropEvent schema, written out: json.dumps per event would cost the
        # generator more than the controller spends validating it.
        payload = (f'{{"v":1,"boot_id":"{self.boot_id}","seq":{self.seq},"type":"pressed",'
                   f'"value":null,"ts":{time.time()}}}').encode()
        self.inflight += 1
        self.client.publish(self.event_topics[self.seq % len(self.event_topics)], payload, qos=1)


class Publisher:
    """The rooms of this process, driven by one thread."""

    def __init__(self, args: argparse.Namespace, out: Output) -> None:
        self.out = out
        broker = BrokerAddress.parse(args.broker)
        topics = Topics(args.apartment)
        props = args.props.split(",")
        self.broker = broker
        self.rooms = [Room(broker=broker, topics=topics, node=node, props=props,
                           window=args.window, out=out) for node in args.node]

    def connect(self, timeout: float) -> bool:
        # NOTE: a long keepalive: between runs nobody calls loop() while the bench reads
        # the controller's counters.
        for room in self.rooms:
            room.client.connect(self.broker.host, self.broker.port, keepalive=300)
        deadline = time.monotonic() + timeout
        while not all(r.connected for r in self.rooms) and time.monotonic() < deadline:
            self._poll(0.05)
        return all(r.connected for r in self.rooms)

    def _poll(self, timeout: float) -> None:
        """One select over every room's socket; read, write what is due."""
        by_sock = {room.client.socket(): room.client for room in self.rooms
                   if room.client.socket() is not None}
        writers = [s for s, c in by_sock.items() if c.want_write()]
        readable, writable, _ = select.select(list(by_sock), writers, [], timeout)
        for sock in readable:
            by_sock[sock].loop_read()
        for sock in writable:
            by_sock[sock].loop_write()

    def run(self, rate: float, seconds: float, count: int | None = None) -> None:
        """Publish *rate* events/s in all (0: flat out) for *seconds*, or *count* in all."""
        rooms = self.rooms
        per_rate = rate / len(rooms)
        per_count = None if count is None else count // len(rooms)
        for room in rooms:
            room.sent = 0
        start = time.monotonic()
        end, next_misc = start + seconds, start + MISC_EVERY_S
        now = start
        while now < end:
            busy = False
            for i, room in enumerate(rooms):
                # NOTE: the rooms' schedules are staggered (room i is i/n of a period late),
                # as independent nodes would be: not n events in the same tick.
                due = (int((now - start) * per_rate + (1 - i / len(rooms))) if rate > 0
                       else room.sent + room.window)
                if per_count is not None:
                    due = min(due, per_count)
                while room.sent < due and room.inflight < room.window:
                    room.publish_one()
                busy = busy or room.inflight >= room.window
            if per_count is not None and all(r.sent >= per_count for r in rooms):
                break
            # NOTE: publish what is due, then wait on the sockets until the next tick: a
            # sleep per event would cap the rate at the scheduler's resolution.
            self._poll(TICK_S if rate > 0 or busy else 0)
            now = time.monotonic()
            if now >= next_misc:
                for room in rooms:
                    room.client.loop_misc()
                next_misc = now + MISC_EVERY_S
        # collect the last acknowledgements (bounded)
        deadline = time.monotonic() + 5
        while any(r.inflight > 0 for r in rooms) and time.monotonic() < deadline:
            self._poll(0.01)
        self.out.emit("done", sent=sum(r.sent for r in rooms), seconds=round(now - start, 4),
                      unacked=sum(r.inflight for r in rooms))

    def close(self) -> None:
        for room in self.rooms:
            room.client.disconnect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--apartment", required=True)
    parser.add_argument("--node", required=True, action="append",
                        help="a room's node id (repeat: one paho client each)")
    parser.add_argument("--props", required=True, help="comma-separated prop ids")
    parser.add_argument("--window", type=int, default=100,
                        help="unacknowledged events at most, per room")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = Output()
    publisher = Publisher(args, out)
    try:
        if not publisher.connect(15):
            out.emit("error", error=f"{', '.join(args.node)} did not connect to {args.broker}")
            return 1
        out.emit("ready", pid=os.getpid())
        serve({"run": publisher.run}, out)
    finally:
        publisher.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
