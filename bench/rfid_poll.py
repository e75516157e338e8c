"""How fast the MFRC522 driver polls, and what polling costs in CPU.

Runs the real driver (props.mfrc522.MFRC522Reader) against the simulated chip
(props.sim.mfrc522.SimulatedMFRC522) over gpiozero's MockFactory software SPI:

* back-to-back polls per second, with no tag (WUPA, then the chip's timer runs out)
  and with a tag (WUPA, anticollision and SELECT per cascade level, HLTA), with the
  chip's 1 ms timer simulated in real time and without it (driver + bus alone);
* SPI transactions per poll (what a hardware-SPI Pi pays per poll, plus the timer);
* CPU used by the background poller at the default poll_interval (0.1 s), split into
  the driver's share and the simulation's (time inside ``spi.transfer()``: the software
  SPI bit-banging on MockPins and the simulated chip, which a Pi does not run).

NOTE: under MockFactory the simulated chip runs in the caller's thread (its callbacks
fire on every clock edge), so "CPU" includes the chip's own work; on a Pi the bus is
hardware SPI and the chip is silicon. Read these numbers as an upper bound.

    .venv/bin/python bench/rfid_poll.py [--seconds 2] [--cpu-seconds 5] [--output FILE]

``python -m bench`` runs it too (shorter with ``--quick``) and folds its figures into the
suite's table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

from gpiozero import Device
from gpiozero.pins.mock import MockFactory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script

from props.mfrc522 import MFRC522Reader
from props.mfrc522_chip import Reg
from props.sim.mfrc522 import SimulatedMFRC522

RESULTS = Path(__file__).resolve().parent / "results" / "rfid_poll.json"
UIDS = {"none": None, "4-byte UID": "04a1b2c3", "7-byte UID": "04112233445566"}


def rig(*, realtime_timer: bool = True, uid: str | None = None,
        poll_interval: float | None = None):
    factory = MockFactory()
    Device.pin_factory = factory
    chip = SimulatedMFRC522(realtime_timer=realtime_timer, pin_factory=factory)
    if uid is not None:
        chip.present(uid)
    reader = MFRC522Reader(poll_interval=poll_interval, pin_factory=factory)
    return factory, chip, reader


def poll_rate(uid: str | None, *, realtime_timer: bool, seconds: float) -> dict:
    factory, chip, reader = rig(realtime_timer=realtime_timer, uid=uid)
    try:
        assert reader.poll() == uid  # warm up, and check the driver reads it
        transactions = chip.transactions
        polls = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            reader.poll()
            polls += 1
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        return {
            "tag": uid,
            "chip_timer": "real time" if realtime_timer else "instant",
            "polls_per_s": round(polls / wall, 1),
            "ms_per_poll": round(1000 * wall / polls, 2),
            "cpu_ms_per_poll": round(1000 * cpu / polls, 2),
            "spi_transactions_per_poll": round((chip.transactions - transactions) / polls, 1),
            "errors": reader.errors,
        }
    finally:
        reader.close()
        chip.close()
        factory.reset()


def background_cpu(uid: str | None, *, poll_interval: float, seconds: float) -> dict:
    """CPU of the background poller, split into the driver's and the simulation's share.

    The simulation's share is the CPU spent inside ``spi.transfer()`` (timed with the
    poll thread's ``thread_time``): gpiozero's bit-banged software SPI on MockPins and the
    simulated chip answering it, which a Pi with hardware SPI and a real chip does not run
    (there each transfer is one ``spidev`` ioctl). The driver's share is the rest: the
    driver's own Python, its sleeps' wake-ups, the poll thread (and the timing wrapper).
    """
    factory, chip, reader = rig(uid=uid, poll_interval=poll_interval)  # its own thread
    spi = reader.chip.spi
    inner_transfer, inner_poll = spi.transfer, reader.poll
    in_transfer = [0.0]
    polls = [0]

    def timed_transfer(data):  # runs in the poll thread: thread_time is the poller's
        t = time.thread_time()
        try:
            return inner_transfer(data)
        finally:
            in_transfer[0] += time.thread_time() - t

    def counted_poll():
        polls[0] += 1
        return inner_poll()

    try:
        with reader.chip.lock:  # not in the middle of a transfer while swapping
            spi.transfer = timed_transfer
            reader.poll = counted_poll
        transactions, polls0, sim0 = chip.transactions, polls[0], in_transfer[0]
        cpu0, t0 = time.process_time(), time.perf_counter()
        threading.Event().wait(seconds)  # the main thread sleeps: process CPU is the poller's
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - t0
        sim, n = in_transfer[0] - sim0, max(1, polls[0] - polls0)
        return {
            "tag": uid,
            "poll_interval_s": poll_interval,
            "polls": n,
            "cpu_percent_of_one_core": round(100 * cpu / wall, 2),
            "driver_cpu_percent": round(100 * (cpu - sim) / wall, 2),
            "sim_bus_cpu_percent": round(100 * sim / wall, 2),
            "cpu_ms_per_poll": round(1000 * cpu / n, 3),
            "driver_cpu_ms_per_poll": round(1000 * (cpu - sim) / n, 3),
            "sim_bus_cpu_ms_per_poll": round(1000 * sim / n, 3),
            "spi_transactions_per_poll": round((chip.transactions - transactions) / n, 2),
            "spi_transactions_per_s": round((chip.transactions - transactions) / wall, 1),
            "state_tag": reader.state["tag"],
        }
    finally:
        reader.close()
        chip.close()
        factory.reset()


def spi_transfer_cost(seconds: float) -> float:
    """Microseconds per 2-byte register read over MockFactory software SPI."""
    factory, chip, reader = rig()
    try:
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            reader.chip.read(Reg.VERSION)
            n += 1
        return 1e6 * (time.perf_counter() - t0) / n
    finally:
        reader.close()
        chip.close()
        factory.reset()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per poll-rate run")
    parser.add_argument("--cpu-seconds", type=float, default=5.0, help="per CPU run")
    parser.add_argument("--poll-interval", type=float, default=0.1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    saved = Device.pin_factory
    try:
        transfer_us = spi_transfer_cost(args.seconds / 2)
        rates = [poll_rate(uid, realtime_timer=rt, seconds=args.seconds)
                 for rt in (True, False) for uid in UIDS.values()]
        cpu = [background_cpu(uid, poll_interval=args.poll_interval, seconds=args.cpu_seconds)
               for uid in UIDS.values()]
    finally:
        Device.pin_factory = saved

    print(f"MockFactory software SPI: {transfer_us:.0f} µs per 2-byte register read\n")
    print(f"{'tag':<16}{'chip timer':<12}{'polls/s':>9}{'ms/poll':>9}{'CPU ms/poll':>13}"
          f"{'SPI xfers/poll':>16}")
    names = {v: k for k, v in UIDS.items()}
    for row in rates:
        print(f"{names[row['tag']]:<16}{row['chip_timer']:<12}{row['polls_per_s']:>9}"
              f"{row['ms_per_poll']:>9}{row['cpu_ms_per_poll']:>13}"
              f"{row['spi_transactions_per_poll']:>16}")
    print(f"\nbackground poller at poll_interval={args.poll_interval} s, "
          f"{args.cpu_seconds} s each (includes the simulated chip's work):")
    print(f"{'tag':<16}{'CPU % of a core':>17}{'driver %':>10}{'sim bus+chip %':>16}"
          f"{'SPI xfers/poll':>16}")
    for row in cpu:
        print(f"{names[row['tag']]:<16}{row['cpu_percent_of_one_core']:>17}"
              f"{row['driver_cpu_percent']:>10}{row['sim_bus_cpu_percent']:>16}"
              f"{row['spi_transactions_per_poll']:>16}")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "bus": "gpiozero MockFactory software SPI + props.sim.mfrc522.SimulatedMFRC522",
        "spi_read_us": round(transfer_us, 1),
        "poll_rates": rates,
        "background_cpu": cpu,
    }, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
