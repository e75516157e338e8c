"""Bench runner: dashboard WebSocket clients, and a node that publishes the events they see.

    python -m bench._wsclients --url ws://127.0.0.1:8081/ws --clients 20 \\
        --broker 127.0.0.1:1883 --apartment temoin --node hall --prop mailbox_keypad --trials 200

Connects *clients* WebSockets to the controller's ``/ws`` (each gets its first snapshot),
then, *trials* times: publishes a valid ``PropEvent`` whose ``value`` is a unique marker
(QoS 1, as a node does), timing the publish with ``time.monotonic_ns()``, and waits until
every client has received a snapshot that contains the marker (the prop's
``last_event``), timing each arrival as soon as ``recv()`` returns. Prints one
``{"kind": "result", "samples_ns": [...], "missed": n}`` and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time

from websockets.asyncio.client import ClientConnection, connect

from bench._runner import Output
from protocol.contract import Topics, new_id
from protocol.mqtt import BrokerAddress, make_client


async def _arrival(ws: ClientConnection, marker: str, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            frame = await asyncio.wait_for(ws.recv(), remaining)
        except TimeoutError:
            return None
        t = time.monotonic_ns()
        if marker in (frame if isinstance(frame, str) else frame.decode()):
            return t
    return None


async def run(args: argparse.Namespace, out: Output) -> None:
    clients = [await connect(args.url, max_size=None, open_timeout=10) for _ in range(args.clients)]
    try:
        for ws in clients:  # the snapshot each client gets on connect
            await asyncio.wait_for(ws.recv(), 10)
        broker = BrokerAddress.parse(args.broker)
        mqtt = make_client(f"bench-push-{os.getpid()}", broker)
        mqtt.connect(broker.host, broker.port, keepalive=60)
        mqtt.loop_start()
        topic = Topics(args.apartment).prop_event(args.node, args.prop)
        boot, nonce = new_id(), new_id()
        samples: list[int] = []
        missed = 0
        try:
            out.emit("ready", pid=os.getpid())
            for i in range(args.warmup + args.trials):
                marker = f"bench-push-{nonce}-{i}"
                waiters = [asyncio.ensure_future(_arrival(ws, marker, args.timeout)) for ws in clients]
                await asyncio.sleep(0)  # every waiter is in recv() before the event leaves
                payload = json.dumps({"v": 1, "boot_id": boot, "seq": i + 1, "type": "bench_push",
                                      "value": marker, "ts": time.time()}).encode()
                t0 = time.monotonic_ns()
                mqtt.publish(topic, payload, qos=1)
                arrivals = await asyncio.gather(*waiters)
                if i >= args.warmup:
                    samples += [t - t0 for t in arrivals if t is not None]
                    missed += sum(t is None for t in arrivals)
                await asyncio.sleep(args.interval)
        finally:
            mqtt.disconnect()
            mqtt.loop_stop()
        out.emit("result", samples_ns=samples, missed=missed, clients=len(clients))
    finally:
        for ws in clients:
            await ws.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--apartment", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--prop", required=True)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between events")
    parser.add_argument("--timeout", type=float, default=3.0, help="per event, per client")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = Output()
    try:
        asyncio.run(run(args, out))
    except Exception as exc:
        out.emit("error", error=repr(exc))
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
