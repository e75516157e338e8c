"""Bench runner: one simulated room node that publishes prop events as fast as asked.

    python -m bench._publisher --broker 127.0.0.1:1883 --apartment bench --node room_01 \\
        --props p1,p2,…

A paho client made by ``nodes.mqtt.make_client`` (as a node's: TCP_NODELAY, QoS 1),
which announces its birth (retained ``NodeStatus``) and then, on
``{"cmd": "run", "rate": 500, "seconds": 3}``, publishes valid ``PropEvent`` payloads on
the contract's event topics (``seq`` +1 each, ``ts`` = now) round-robin over its props
at *rate* events/s, or as fast as it can with ``rate`` 0, and answers
``{"kind": "done", "sent": n, "seconds": wall}``; with ``"count": n`` it stops after n
events.

The client runs its network loop in this one thread (no ``loop_start``): a publish
writes to the socket at once instead of waking paho's thread, so the load generator
costs as little CPU as paho allows and leaves the cores to the controller. At most
``--window`` events are unacknowledged at any time, so "as fast as it can" is paced by
the broker's PUBACKs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from typing import Any

import paho.mqtt.client as mqtt

from bench._runner import Output, serve
from nodes.contract import NodeStatus, PropInfo, Topics, new_id
from nodes.mqtt import BrokerAddress, make_client

TICK_S = 0.001


class Publisher:
    def __init__(self, args: argparse.Namespace, out: Output) -> None:
        self.out = out
        self.topics = Topics(args.apartment)
        self.node = args.node
        self.props = args.props.split(",")
        self.event_topics = [self.topics.prop_event(self.node, p) for p in self.props]
        self.boot_id = new_id()
        self.seq = 0
        self.window = args.window
        self.inflight = 0
        self.connected = False
        self.broker = BrokerAddress.parse(args.broker)
        self.client = make_client(f"bench-pub-{self.node}-{os.getpid()}", self.broker)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish

    def connect(self, timeout: float) -> bool:
        # NOTE: a long keepalive: between runs nobody calls loop() while the bench reads
        # the controller's counters.
        self.client.connect(self.broker.host, self.broker.port, keepalive=300)
        deadline = time.monotonic() + timeout
        while not self.connected and time.monotonic() < deadline:
            self.client.loop(timeout=0.05)
        return self.connected

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.out.emit("error", error=f"connect refused: {reason}")
            return
        birth = NodeStatus(online=True, boot_id=self.boot_id, version="bench",
                           props=[PropInfo(id=p, kind="button") for p in self.props],
                           simulated=True, ts=time.time())
        self.inflight += 1
        client.publish(self.topics.node_status(self.node), birth.to_bytes(), qos=1, retain=True)
        self.connected = True

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        self.inflight -= 1

    def _publish_one(self) -> None:
        self.seq += 1
        payload = json.dumps({"v": 1, "boot_id": self.boot_id, "seq": self.seq, "type": "pressed",
                              "value": None, "ts": time.time()}).encode()
        self.inflight += 1
        self.client.publish(self.event_topics[self.seq % len(self.event_topics)], payload, qos=1)

    def run(self, rate: float, seconds: float, count: int | None = None) -> None:
        """Publish at *rate* events/s (0: flat out) for *seconds*, or until *count* are sent."""
        sent = 0
        start = time.monotonic()
        end = start + seconds
        now = start
        while now < end and (count is None or sent < count):
            # NOTE: publish what is due, then wait on the socket until the next tick: a
            # sleep per event would cap the rate at the scheduler's resolution.
            due = int((now - start) * rate) + 1 if rate > 0 else sent + self.window
            if count is not None:
                due = min(due, count)
            while sent < due and self.inflight < self.window:
                self._publish_one()
                sent += 1
            self.client.loop(timeout=TICK_S if rate > 0 or self.inflight >= self.window else 0)
            now = time.monotonic()
        # collect the last acknowledgements (bounded)
        deadline = time.monotonic() + 5
        while self.inflight > 0 and time.monotonic() < deadline:
            self.client.loop(timeout=0.01)
        self.out.emit("done", sent=sent, seconds=round(now - start, 4), unacked=self.inflight)

    def close(self) -> None:
        self.client.disconnect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--apartment", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--props", required=True, help="comma-separated prop ids")
    parser.add_argument("--window", type=int, default=100, help="unacknowledged events at most")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = Output()
    publisher = Publisher(args, out)
    try:
        if not publisher.connect(15):
            out.emit("error", error=f"{args.node} did not connect to {args.broker}")
            return 1
        out.emit("ready", pid=os.getpid())
        serve({"run": publisher.run}, out)
    finally:
        publisher.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
