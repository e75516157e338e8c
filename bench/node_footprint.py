"""Node footprint: RSS and CPU of one node agent process, idle and under a burst of keys.

The node is the shipped program, ``escape-apartment node --simulate`` (run as
``python -m controller.cli node …``), on a room with a 3×4 keypad (scanned: it sleeps
on a column edge) and an MFRC522 reader (polled every 0.1 s over SPI), connected to a
real broker. CPU and memory are read from ``/proc/<pid>`` (utime + stime of every
thread; VmRSS, VmHWM). The key presses of the burst are rehearsal gestures sent over
MQTT (``…/props/keypad/simulate``): the node's simulated hand (a thread of its own)
drives its MockFactory pins.

NOTE: in simulation the MFRC522 is a Python model of the chip answering a bit-banged
MockFactory SPI bus in the node's own process, so "idle CPU" includes the chip's and
the bus's work; on a Pi the bus is hardware SPI (``spidev``) and the chip is silicon.
``--variants`` also measures a keypad-only room to tell the two apart, and every run
splits the reader's cost (measured in the bench's own process, same driver, chip model and
poll period) into the driver's share and the simulation's share (the CPU spent inside
``spi.transfer()``: bit-banged SPI on MockPins and the chip model), see
``bench.rfid_poll.background_cpu``. The target is judged on the node's whole idle CPU,
simulation included.

    .venv/bin/python -m bench.node_footprint [--quick] [--idle 30] [--keys 40] [--variants]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from bench.common import (
    BenchError,
    Broker,
    Proc,
    broker,
    cpu_percent,
    mosquitto_available,
    proc_sample,
    python_argv,
    workdir_for,
    write_game,
)
from bench.results_model import Section
from protocol.contract import Gesture, Topics, new_id
from protocol.mqtt import BrokerAddress, make_client

APARTMENT = "bench"
NODE = "room"
KEYPAD = "{id: keypad, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20], code_length: 4}"
READER = "{id: reader, kind: mfrc522, poll_interval: 0.1}"


def game_text(*, reader: bool) -> str:
    props = [KEYPAD, READER] if reader else [KEYPAD]
    lines = [f"apartment: {{id: {APARTMENT}, name: Empreinte}}", "nodes:",
             f"  - id: {NODE}", "    label: Pièce", "    props:"]
    lines += [f"      - {p}" for p in props]
    lines += ["puzzles:", "  - id: code", "    label: Code", "    theme: budget", f"    room: {NODE}",
              f'    solve: {{when: event, prop: {NODE}.keypad, event: code, equals: "0412"}}',
              "    final: true"]
    return "\n".join(lines) + "\n"


class Watcher:
    """A paho client that watches the node's status and key events."""

    def __init__(self, b: Broker) -> None:
        self.topics = Topics(APARTMENT)
        self.online = threading.Event()
        self.keys = 0
        self._lock = threading.Lock()
        address = BrokerAddress.parse(b.address)
        self.client = make_client(f"bench-fp-watch-{new_id()}", address)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(address.host, address.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(self.topics.node_status(NODE), 1),
                          (self.topics.prop_event(NODE, "keypad"), 1)])

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            data = json.loads(message.payload)
        except ValueError:
            return
        if message.topic.endswith("/status") and data.get("online"):
            self.online.set()
        elif data.get("type") == "key":
            with self._lock:
                self.keys += 1

    def type(self, keys: str) -> None:
        gesture = Gesture(id=new_id(), gesture="type", value=keys)
        self.client.publish(self.topics.prop_simulate(NODE, "keypad"), gesture.to_bytes(), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def measure(b: Broker, workdir: Path, *, reader: bool, idle_s: float, keys: int,
            settle_s: float) -> dict[str, Any]:
    name = "keypad+mfrc522" if reader else "keypad"
    game = write_game(workdir, f"footprint-{'reader' if reader else 'keypad'}",
                      game_text(reader=reader))
    with contextlib.ExitStack() as stack:
        watcher = Watcher(b)
        stack.callback(watcher.close)
        kind = "reader" if reader else "keypad"
        node = Proc(f"fp-node-{kind}", python_argv(
            "controller.cli", "node", "--simulate", "--config", str(game), "--id", NODE,
            "--broker", b.address, "--data-dir", str(workdir / f"data-{kind}")), workdir=workdir,
            stops_on_eof=False)
        stack.callback(node.stop)
        if not watcher.online.wait(20):
            msg = f"the node did not come online; {node.tail()}"
            raise BenchError(msg)
        started = proc_sample(node.pid)
        time.sleep(settle_s)  # first polls, lazy imports, thread start-up
        before = proc_sample(node.pid)
        time.sleep(idle_s)
        idle = proc_sample(node.pid)
        typed = ("1234567890" * (keys // 10 + 1))[:keys]
        seen = watcher.keys
        watcher.type(typed)
        deadline = time.monotonic() + 5 + keys * 0.5
        while watcher.keys - seen < keys and time.monotonic() < deadline:
            time.sleep(0.01)
        burst = proc_sample(node.pid)
        got = watcher.keys - seen
    minutes = (idle.t - before.t) / 60
    return {
        "room": name,
        "idle_s": round(idle.t - before.t, 2),
        "rss_mb_at_birth": round(started.rss_kb / 1024, 2),
        "rss_mb_idle_start": round(before.rss_kb / 1024, 2),
        "rss_mb_idle_end": round(idle.rss_kb / 1024, 2),
        "rss_growth_mb_per_min": round((idle.rss_kb - before.rss_kb) / 1024 / minutes, 2)
        if minutes else None,
        "idle_cpu_percent": cpu_percent(before, idle),
        "burst_keys": keys, "burst_keys_seen": got,
        "burst_s": round(burst.t - idle.t, 2),
        "burst_cpu_percent": cpu_percent(idle, burst),
        "burst_cpu_ms_per_key": round(1000 * (burst.cpu_s - idle.cpu_s) / max(1, got), 2),
        "rss_mb_after_burst": round(burst.rss_kb / 1024, 2),
        "rss_mb_peak": round(burst.hwm_kb / 1024, 2),
        "threads": burst.threads,
    }


def run(*, quick: bool, workdir: Path, idle_s: float | None = None, keys: int | None = None,
        variants: bool | None = None, broker_kind: str | None = None) -> Section:
    idle_s = idle_s or (3.0 if quick else 30.0)
    keys = keys or (8 if quick else 40)
    settle_s = 1.0 if quick else 3.0
    variants = (not quick) if variants is None else variants
    kind = broker_kind or ("mosquitto" if mosquitto_available() else "amqtt")
    section = Section()
    section.details.update({"broker": kind, "idle_s": idle_s, "keys": keys,
                            "node": "python -m controller.cli node --simulate"})
    with broker(kind, workdir) as b:
        main = measure(b, workdir, reader=True, idle_s=idle_s, keys=keys, settle_s=settle_s)
        rows = [main]
        if variants:
            rows.append(measure(b, workdir, reader=False, idle_s=idle_s, keys=keys,
                                settle_s=settle_s))
    section.details["rooms"] = rows
    # The reader's cost split in two, measured in this process on the same driver, chip
    # model and poll period (the node's own process cannot be instrumented from here):
    # the driver's share, and the simulation's (software SPI on MockPins + chip model),
    # which a Pi with hardware SPI and a real MFRC522 does not pay.
    from gpiozero import Device

    from bench.rfid_poll import background_cpu

    saved = Device.pin_factory  # rfid_poll sets gpiozero's global factory: put it back
    try:
        split = background_cpu(None, poll_interval=0.1, seconds=idle_s)
    finally:
        Device.pin_factory = saved
    section.details["reader_split"] = split
    section.metric("node.rss_mb", main["rss_mb_idle_end"], "MB")
    section.metric("node.rss_peak_mb", main["rss_mb_peak"], "MB")
    section.metric("node.rss_growth_mb_per_min", main["rss_growth_mb_per_min"], "MB/min")
    section.metric("node.idle_cpu_percent", main["idle_cpu_percent"], "% core")
    section.metric("node.burst_cpu_percent", main["burst_cpu_percent"], "% core")
    section.metric("node.burst_cpu_ms_per_key", main["burst_cpu_ms_per_key"], "ms")
    section.metric("node.reader_driver_cpu_percent", split["driver_cpu_percent"], "% core")
    section.metric("node.reader_sim_cpu_percent", split["sim_bus_cpu_percent"], "% core")
    section.metric("node.reader_spi_transactions_per_poll", split["spi_transactions_per_poll"],
                   "transactions")
    if variants:
        section.metric("node.keypad_only.idle_cpu_percent", rows[1]["idle_cpu_percent"], "% core")
        section.metric("node.keypad_only.rss_mb", rows[1]["rss_mb_idle_end"], "MB")
    section.target("node.rss_mb", target="node RSS ≤ 40 MB (keypad + MFRC522, idle)",
                   measured=main["rss_mb_peak"], limit=40.0, unit="MB")
    section.target("node.idle_cpu_percent",
                   target="node idle CPU ≤ 2 % of a core, keypad scanned + reader polled",
                   measured=main["idle_cpu_percent"], limit=2.0, unit="% core")
    if main["burst_keys_seen"] != keys:
        section.notes.append(f"burst: {main['burst_keys_seen']} of {keys} key events seen")
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--idle", type=float, help="seconds of idle measured")
    parser.add_argument("--keys", type=int, help="keys in the burst")
    parser.add_argument("--variants", action="store_true", help="also a keypad-only room")
    parser.add_argument("--broker", choices=("mosquitto", "amqtt"))
    args = parser.parse_args(argv)
    with workdir_for("bench-fp-") as tmp:
        section = run(quick=args.quick, workdir=tmp, idle_s=args.idle, keys=args.keys,
                      variants=args.variants or None, broker_kind=args.broker)
    json.dump(section.as_dict(), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
