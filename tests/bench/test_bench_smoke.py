"""Smoke test of the benchmark suite: the fastest piece runs, and its JSON has the right shape.

It runs ``python -m bench --only e2e`` for a handful of trials over the embedded amqtt
broker (always available): a controller, two node agents and three bare paho clients,
each in its own process, a few seconds in all. The numbers are not judged here (CI
machines are noisy); ``python -m bench --quick`` prints them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _summary_shape(summary):
    assert summary["n"] > 0
    for key in ("min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"):
        assert isinstance(summary[key], float), key
    assert summary["min_ms"] <= summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]


def test_e2e_bench_runs_and_writes_results_of_the_documented_shape(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "e2e", "--trials", "4", "--brokers", "amqtt",
         "--name", "smoke", "--results-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "e2e.amqtt.p99_ms" in done.stdout  # the table

    files = sorted(p.name for p in tmp_path.glob("*.json"))
    assert "latest.json" in files
    assert any(name.startswith("smoke-") for name in files)
    report = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))

    assert report["suite"] == "escape-apartment-bench"
    assert report["schema"] == 1
    assert report["name"] == "smoke"
    assert report["machine"]["cpus"] >= 1
    bench = report["benches"]["e2e"]
    assert "error" not in bench
    assert set(bench) >= {"metrics", "targets", "details", "notes", "duration_s", "machine_load"}
    for name in ("e2e.amqtt.p50_ms", "e2e.amqtt.p99_ms", "e2e.amqtt.floor_p99_ms",
                 "e2e.amqtt.p99_over_floor_p99"):
        metric = bench["metrics"][name]
        assert isinstance(metric["value"], float), name
        assert metric["better"] in ("lower", "higher", "info")
        assert metric["unit"]
    target = bench["targets"][0]
    assert set(target) == {"name", "target", "measured", "limit", "unit", "met"}
    system = bench["details"]["amqtt"]["system"]
    assert 1 <= system["trials"] <= 4
    assert isinstance(system["failed_trials"], int)
    _summary_shape(system["pin_to_relay"])
    _summary_shape(system["parts"]["node_a_pin_to_code_event"])
    _summary_shape(bench["details"]["amqtt"]["floor"]["latency"])


def test_compare_prints_the_ratio_of_each_metric(tmp_path):
    def report(value):
        return {"suite": "escape-apartment-bench", "schema": 1, "timestamp": "t", "quick": True,
                "benches": {"e2e": {"metrics": {
                    "e2e.amqtt.p99_ms": {"value": value, "unit": "ms", "better": "lower"}}}}}

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(report(4.0)), encoding="utf-8")
    b.write_text(json.dumps(report(2.0)), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bench", "--compare", str(a), str(b)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("e2e.amqtt.p99_ms"))
    assert "0.5" in line
    assert "better" in line


def test_e2e_measures_the_two_node_transports_in_one_run():
    done = subprocess.run(
        [sys.executable, "-m", "bench.e2e", "--trials", "4", "--rounds", "1", "--brokers", "amqtt",
         "--no-naive", "--node-transports", "paho,thread"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    section = json.loads(done.stdout)
    for transport in ("paho", "thread"):
        assert isinstance(section["metrics"][f"e2e.amqtt.node_{transport}.p99_ms"]["value"], float)
        _summary_shape(section["details"]["amqtt"]["node_transports"][transport]["pin_to_relay"])
    assert section["metrics"]["e2e.amqtt.p99_ms"] == section["metrics"]["e2e.amqtt.node_paho.p99_ms"]
