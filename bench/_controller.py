"""Bench runner: the controller (``create_app`` under uvicorn) with a probe for the benches.

    python -m bench._controller --game FILE --broker 127.0.0.1:1883 --port 8081

This is the production app (``controller.main.create_app``, run by uvicorn with its
default event loop, as ``escape-apartment controller`` does), plus:

* a hook on ``GameService.on_handled`` that records, for every message the service has
  handled, when (``time.monotonic_ns()``) and, for events, how late (``time.time()``
  minus the event's ``ts``);
* read-only routes under ``/bench`` to fetch those records.

Prints ``{"kind": "ready", "pid": …}`` once the app serves and its MQTT client is
connected; stops when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from bench._runner import Output, wait_for_stdin_eof
from config.loader import load_game
from controller.main import WS_PER_MESSAGE_DEFLATE, create_app
from controller.mqtt import Connection, Incoming
from controller.mqtt_transports import TRANSPORTS
from protocol.contract import NodeStatus, PropEvent, PropState
from protocol.mqtt import BrokerAddress

log = logging.getLogger(__name__)
_KEPT = 200_000


class Probe:
    """Records what the service handled (called on the event loop, after each message)."""

    def __init__(self) -> None:
        self.events = 0
        self.latencies_s: list[float] = []
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.event_log: deque[tuple[int, str, str, str, int]] = deque(maxlen=_KEPT)
        self.statuses: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.states: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.connections: deque[dict[str, Any]] = deque(maxlen=1_000)
        self.commands: deque[tuple[int, str, str, str]] = deque(maxlen=_KEPT)
        #: when paho handed each ``code`` event to the bridge (``on_message``), ns
        self.code_reads: deque[int] = deque(maxlen=_KEPT)
        #: (start, snapshot+JSON done, every WebSocket written) of each push, ns
        self.pushes: deque[tuple[int, int, int]] = deque(maxlen=10_000)

    def watch_pushes(self, service: Any) -> None:
        """Time each WebSocket push: snapshot + JSON, then the broadcast to every client."""
        hub = service.hub
        broadcast = hub.broadcast
        started: dict[str, tuple[int, int]] = {}

        async def timed_broadcast(text: str) -> None:
            t_built = time.monotonic_ns()
            await broadcast(text)
            t0 = started.pop("push", (t_built, t_built))[0]
            self.pushes.append((t0, t_built, time.monotonic_ns()))

        views = service.views
        push = views.push

        def timed_push() -> None:
            started["push"] = (time.monotonic_ns(), 0)
            push()

        hub.broadcast = timed_broadcast
        views.push = timed_push

    def watch_commands(self, bridge: Any) -> None:
        """Time every command as the service hands it to the MQTT client."""
        send = bridge.send_command

        def send_command(node: str, prop: str, command: Any) -> None:
            self.commands.append((time.monotonic_ns(), node, prop, command.action))
            send(node, prop, command)

        bridge.send_command = send_command

    def watch_reads(self, bridge: Any) -> None:
        """Time each keypad ``code`` event as paho hands it over (before decoding)."""
        client = bridge.link.paho   # whichever the transport, paho reads the socket
        forward = client.on_message

        def on_message(c: Any, userdata: Any, message: Any) -> None:
            if b'"type":"code"' in message.payload:
                self.code_reads.append(time.monotonic_ns())

            forward(c, userdata, message)

        client.on_message = on_message

    def reset(self) -> None:
        self.events, self.latencies_s, self.first_ns, self.last_ns = 0, [], None, None

    def __call__(self, item: Any) -> None:
        t = time.monotonic_ns()
        if isinstance(item, Incoming):
            payload, parts = item.payload, item.parts
            if isinstance(payload, PropEvent):
                self.events += 1
                if len(self.latencies_s) < 2_000_000:
                    self.latencies_s.append(time.time() - payload.ts)
                if self.first_ns is None:
                    self.first_ns = t
                self.last_ns = t
                self.event_log.append((t, parts.node or "", parts.prop or "", payload.type,
                                       payload.seq))
            elif isinstance(payload, NodeStatus):
                self.statuses.append({"t": t, "node": parts.node, "online": payload.online,
                                      "boot_id": payload.boot_id, "ts": payload.ts,
                                      "retained": item.retained})
            elif isinstance(payload, PropState):
                self.states.append({"t": t, "node": parts.node, "prop": parts.prop,
                                    "ts": payload.ts, "fields": payload.fields,
                                    "retained": item.retained})
        elif isinstance(item, Connection):
            self.connections.append({"t": t, "up": item.up})


def _patch(cls: Any, name: str, make: Any) -> None:
    original = getattr(cls, name, None)
    if original is None:
        print(f"bench experiment: {cls.__name__}.{name} does not exist; not patched", file=sys.stderr)
        return
    setattr(cls, name, make(original))


def short_switch_interval() -> None:
    """Experiment ``switch-interval``: ``sys.setswitchinterval(0.0005)`` (default 5 ms).

    The paho network thread needs the GIL to write a command the event loop has just
    queued; if the loop thread goes on with Python work, the write waits for the loop to
    block or for the interpreter's switch interval.
    """
    sys.setswitchinterval(0.0005)


#: candidate fixes, patched in by ``--experiment NAME`` to measure them before they are made.
#: Made since (docs/performance.md, "Fixes made"): quiet-game-state, deferred-writes,
#: batched-event-rows, batched-handover — now the controller's own behaviour.
EXPERIMENTS = {"switch-interval": short_switch_interval}


def add_bench_routes(app: FastAPI, probe: Probe) -> None:
    @app.post("/bench/reset", include_in_schema=False)
    def reset() -> dict[str, Any]:
        probe.reset()
        return {"ok": True}

    @app.get("/bench/events", include_in_schema=False)
    def events() -> dict[str, Any]:
        service = app.state.service
        lat = sorted(probe.latencies_s)

        def pct(p: float) -> float | None:
            if not lat:
                return None
            return round(1000 * lat[min(len(lat) - 1, max(0, int(p / 100 * len(lat) + 0.999999) - 1))], 4)

        return {"events": probe.events, "first_ns": probe.first_ns, "last_ns": probe.last_ns,
                "latency_ms": {"n": len(lat), "p50": pct(50), "p90": pct(90), "p99": pct(99),
                               "max": round(1000 * lat[-1], 4) if lat else None},
                "events_seen": service.events_seen, "queue": service.bridge.queue.qsize(),
                "metrics": dict(service.bridge.metrics)}

    @app.get("/bench/pushes", include_in_schema=False)
    def pushes() -> dict[str, Any]:
        rows = list(probe.pushes)
        build = sorted(b - a for a, b, _c in rows)
        send = sorted(c - b for _a, b, c in rows)

        def pct(xs: list[int], p: float) -> float | None:
            return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))] / 1e6, 4) if xs else None

        return {"n": len(rows), "snapshot_json_ms": {"p50": pct(build, 50), "p99": pct(build, 99)},
                "broadcast_ms": {"p50": pct(send, 50), "p99": pct(send, 99)}}

    @app.get("/bench/records", include_in_schema=False)
    def records(since: int = 0, events: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "statuses": [r for r in probe.statuses if r["t"] > since],
            "states": [r for r in probe.states if r["t"] > since],
            "connections": [r for r in probe.connections if r["t"] > since],
            "now_ns": time.monotonic_ns(),
        }
        if events:
            out["events"] = [r for r in probe.event_log if r[0] > since]
            out["commands"] = [r for r in probe.commands if r[0] > since]
            out["code_reads"] = [t for t in probe.code_reads if t > since]
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", help="where the controller keeps its session store")
    parser.add_argument("--loop", default="auto", help="uvicorn event loop (auto, asyncio, uvloop)")
    parser.add_argument("--ready-timeout", type=float, default=15.0)
    parser.add_argument("--ws-deflate", choices=("shipped", "on", "off"), default="shipped",
                        help="uvicorn ws_per_message_deflate: as the controller ships it "
                             "(controller.main.WS_PER_MESSAGE_DEFLATE), or forced on/off")
    parser.add_argument("--experiment", action="append", default=[], choices=sorted(EXPERIMENTS),
                        help="patch in a proposed fix (for measuring it only)")
    parser.add_argument("--transport", choices=TRANSPORTS, default=TRANSPORTS[0],
                        help="the controller's MQTT transport (ESCAPE_MQTT_TRANSPORT)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    for name in args.experiment:
        EXPERIMENTS[name]()
    os.environ["ESCAPE_MQTT_TRANSPORT"] = args.transport   # the controller's Settings read it
    out = Output()
    probe = Probe()
    game = load_game(args.game)
    extra: dict[str, Any] = {}
    if args.data_dir and "db_path" in inspect.signature(create_app).parameters:
        extra["db_path"] = Path(args.data_dir) / "controller.db"
    # NOTE: no auth argument: access control off, as create_app allows for benches.
    app = create_app(game=game, broker=BrokerAddress.parse(args.broker), freeze_gc=True, **extra)
    add_bench_routes(app, probe)
    original = app.router.lifespan_context

    async def announce_ready() -> None:
        service = app.state.service
        deadline = time.monotonic() + args.ready_timeout
        while not (service.bridge.connected and server.started):
            if time.monotonic() > deadline:
                out.emit("error", error=f"the controller did not connect to {args.broker}")
                return
            await asyncio.sleep(0.005)
        loop = asyncio.get_running_loop()
        out.emit("ready", pid=os.getpid(), loop=f"{type(loop).__module__}.{type(loop).__name__}")

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        async with original(app_) as state:
            app_.state.service.on_handled = probe
            probe.watch_commands(app_.state.service.bridge)
            probe.watch_reads(app_.state.service.bridge)
            probe.watch_pushes(app_.state.service)
            # NOTE: the server accepts connections only after the lifespan has started.
            task = asyncio.get_running_loop().call_later(
                0.05, lambda: asyncio.ensure_future(announce_ready()))
            try:
                yield state
            finally:
                task.cancel()

    app.router.lifespan_context = lifespan
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, loop=args.loop,
                            log_level="warning", access_log=False, lifespan="on",
                            ws_per_message_deflate={"on": True, "off": False}.get(
                                args.ws_deflate, WS_PER_MESSAGE_DEFLATE))
    server = uvicorn.Server(config)

    def stop_on_eof() -> None:
        wait_for_stdin_eof()
        server.should_exit = True

    threading.Thread(target=stop_on_eof, name="bench-stdin", daemon=True).start()
    server.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
