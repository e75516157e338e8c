"""The props' own benches, folded into the suite: ``keypad_idle.py`` and ``rfid_poll.py``.

Each runs in a process of its own (they set gpiozero's global pin factory), with shorter
windows under ``--quick``, and writes its JSON into the run's scratch directory; their
headline figures become metrics of the suite's table.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from bench.common import ROOT, BenchError, child_env, python_argv
from bench.results_model import Section


def _run(module: str, args: list[str], output: Path, workdir: Path, timeout: float) -> dict[str, Any]:
    log = workdir / f"{module.rsplit('.', 1)[-1]}.log"
    with log.open("wb") as out:
        try:
            done = subprocess.run(python_argv(module, *args, "--output", str(output)), cwd=ROOT,
                                  env=child_env(), stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            msg = f"{module} did not finish within {timeout} s (log {log})"
            raise BenchError(msg) from exc
    if done.returncode != 0 or not output.exists():
        msg = f"{module} failed with code {done.returncode}: {log.read_text(errors='replace')[-1500:]}"
        raise BenchError(msg)
    return json.loads(output.read_text(encoding="utf-8"))


def run(*, quick: bool, workdir: Path) -> Section:
    section = Section()
    keypad = _run("bench.keypad_idle",
                  ["--seconds", "1" if quick else "10", "--presses", "8" if quick else "100"],
                  workdir / "keypad_idle.json", workdir, timeout=120)
    rfid = _run("bench.rfid_poll",
                ["--seconds", "0.2" if quick else "2", "--cpu-seconds", "0.6" if quick else "5"],
                workdir / "rfid_poll.json", workdir, timeout=180)
    section.details["keypad_idle"] = keypad
    section.details["rfid_poll"] = rfid
    rows = {row["phase"].split()[0]: row for row in keypad["rows"]}
    section.metric("keypad.idle_cpu_percent", rows["idle"]["cpu_percent"], "% core")
    section.metric("keypad.burst_cpu_ms_per_key", rows["burst"]["cpu_ms_per_key"], "ms")
    section.metric("keypad.burst_wall_ms_per_key", rows["burst"]["wall_ms_per_key"], "ms", better="info")
    no_tag = next(r for r in rfid["background_cpu"] if r["tag"] is None)
    section.metric("rfid.idle_poller_cpu_percent", no_tag["cpu_percent_of_one_core"], "% core")
    # the driver's own share, and the simulation's (software SPI on MockPins + chip model)
    section.metric("rfid.idle_poller_driver_cpu_percent", no_tag["driver_cpu_percent"], "% core")
    section.metric("rfid.idle_poller_sim_cpu_percent", no_tag["sim_bus_cpu_percent"], "% core")
    section.metric("rfid.no_tag.spi_transactions_per_poll", no_tag["spi_transactions_per_poll"],
                   "transactions")
    section.metric("rfid.spi_read_us", rfid["spi_read_us"], "µs")
    realtime = [r for r in rfid["poll_rates"] if r["chip_timer"] == "real time"]
    for row in realtime:
        tag = "no_tag" if row["tag"] is None else f"uid{len(row['tag']) // 2}"
        section.metric(f"rfid.{tag}.polls_per_s", row["polls_per_s"], "polls/s", better="higher")
    section.notes.append("keypad and RFID figures run on MockFactory: the simulated matrix, "
                         "software SPI and chip model are part of the cost (upper bounds)")
    return section
