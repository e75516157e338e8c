"""Bench runner: bare paho clients for the transport floor and the naive stack.

    python -m bench._transport --role echo --broker 127.0.0.1:1883 --qos 1 --client tuned

Three roles make the same four hops as a key press that opens a lock
(node A → broker → controller → broker → node B), with no game code at all:

* ``source`` (node A): on ``{"cmd": "send", "id": 7}`` publishes ``7`` on ``<topic>/ping``
  and answers ``{"kind": "sent", "t": <monotonic ns just before publishing>}``;
* ``echo`` (the controller): republishes every ``ping`` on ``<topic>/pong``;
* ``sink`` (node B): reports each ``pong`` as ``{"kind": "recv", "id": 7, "t": ns}``.

``--client tuned`` is this project's client (``protocol.mqtt.make_client``: TCP_NODELAY,
100 messages in flight); ``--client naive`` is paho's defaults (Nagle's algorithm on).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from bench._runner import Output, serve
from protocol.mqtt import BrokerAddress, make_client


def build_client(kind: str, client_id: str, broker: BrokerAddress) -> mqtt.Client:
    if kind == "tuned":
        return make_client(client_id, broker)
    return mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("source", "echo", "sink"), required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--qos", type=int, choices=(0, 1, 2), default=1)
    parser.add_argument("--client", choices=("tuned", "naive"), default="tuned")
    parser.add_argument("--topic", default="bench/transport")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    out = Output()
    broker = BrokerAddress.parse(args.broker)
    ping, pong = f"{args.topic}/ping", f"{args.topic}/pong"
    client = build_client(args.client, f"bench-{args.role}-{os.getpid()}", broker)
    ready = threading.Event()

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            out.emit("error", error=f"connect refused: {reason}")
            return
        if args.role == "source":
            ready.set()
        else:
            c.subscribe(ping if args.role == "echo" else pong, qos=args.qos)

    def on_subscribe(_c: mqtt.Client, _u: Any, _mid: Any, _codes: Any, _p: Any) -> None:
        ready.set()

    def on_message(c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if args.role == "echo":
            c.publish(pong, message.payload, qos=args.qos)
        else:
            t = time.monotonic_ns()
            try:
                trial = int(message.payload)
            except ValueError:
                print(f"unexpected message on {message.topic}: {message.payload[:200]!r}",
                      file=sys.stderr)
                return
            out.later("recv", id=trial, t=t)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect_async(broker.host, broker.port, keepalive=30)
    client.loop_start()
    try:
        if not ready.wait(15):
            out.emit("error", error=f"{args.role} not ready on {args.broker}")
            return 1
        out.emit("ready", pid=os.getpid())

        def send(id: int) -> None:
            t = time.monotonic_ns()
            client.publish(ping, str(id).encode(), qos=args.qos)
            out.emit("sent", id=id, t=t)

        serve({"send": send}, out)
    finally:
        client.disconnect()
        client.loop_stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
