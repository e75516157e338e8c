"""A node's health: what the Pi's files say, read by the probe, sent by a real node process.

The Pi's sensors are files (``/sys``, ``/proc``); the tests write fake ones under a folder
and point the node at it (``ESCAPE_HEALTH_ROOT``), as the settings allow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from config.loader import SHIPPED_GAME
from nodes.datadir import DataDir
from nodes.health import BOOT_ID, THERMAL, THROTTLED, UPTIME, HealthProbe
from protocol.contract import NODE_HEALTH_EVERY_S, NodeHealth, NodeHeartbeat, Topics
from tests.faults.conftest import NodeProcess, Wire, mosquitto, processes, wait_for

__all__ = ["mosquitto", "processes"]   # the fault suite's fixtures, used here


def fake_pi(root: Path, *, temp_mc: int = 48_312, throttled: str | None = "0x0",
            uptime: str = "4242.17 8000.00", boot_id: str = "b0a7-1") -> Path:
    """The sensor files of a Pi, under *root*."""
    files = {THERMAL: f"{temp_mc}\n", UPTIME: f"{uptime}\n", BOOT_ID: f"{boot_id}\n"}
    if throttled is not None:
        files[THROTTLED] = f"{throttled}\n"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="ascii")
    return root


# -- the probe -------------------------------------------------------------------------------
def test_a_healthy_pi_reads_as_such(tmp_path):
    probe = HealthProbe(root=fake_pi(tmp_path / "pi"), data_dir=tmp_path)
    health = probe.read(read_errors={"reader": 2}, counters={"bad_payloads": 3, "resyncs": 0})
    assert (health.cpu_temp_c, health.under_voltage, health.under_voltage_seen) == (48.3, False, False)
    assert (health.throttled, health.throttled_seen, health.uptime_s) == (False, False, 4242.2)
    assert health.disk_free_bytes == shutil.disk_usage(tmp_path).free
    assert health.read_errors == {"reader": 2}
    assert health.counters == {"bad_payloads": 3}, "counters at zero are left out"


def test_the_firmware_word_says_under_voltage_now_and_since_boot(tmp_path):
    # 0x50005: under-voltage now and since boot, throttled now and since boot (vcgencmd's word)
    health = HealthProbe(root=fake_pi(tmp_path, throttled="0x50005")).read()
    assert (health.under_voltage, health.under_voltage_seen, health.throttled, health.throttled_seen) == (
        True, True, True, True)
    # 0x50000: all over now, but it happened since the Pi booted
    (tmp_path / THROTTLED).write_text("0x50000\n")
    health = HealthProbe(root=tmp_path).read()
    assert (health.under_voltage, health.under_voltage_seen, health.throttled, health.throttled_seen) == (
        False, True, False, True)


def test_the_firmware_file_is_found_where_a_pi_5_keeps_it_and_the_hwmon_otherwise(tmp_path):
    pi5 = fake_pi(tmp_path / "pi5", throttled=None)
    elsewhere = pi5 / "sys/devices/platform/axi/axi:firmware/get_throttled"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_text("0x10000\n")
    assert HealthProbe(root=pi5).read().under_voltage_seen is True
    # no firmware file at all: the rpi_volt hwmon's alarm (no history)
    bare = fake_pi(tmp_path / "bare", throttled=None)
    (bare / "sys/class/hwmon/hwmon0").mkdir(parents=True)
    (bare / "sys/class/hwmon/hwmon0/name").write_text("cpu_thermal\n")
    (bare / "sys/class/hwmon/hwmon1").mkdir(parents=True)
    (bare / "sys/class/hwmon/hwmon1/name").write_text("rpi_volt\n")
    (bare / "sys/class/hwmon/hwmon1/in0_lcrit_alarm").write_text("1\n")
    health = HealthProbe(root=bare).read()
    assert (health.under_voltage, health.under_voltage_seen) == (True, None)


def test_what_cannot_be_read_is_none_and_a_simulated_node_reads_no_sensor(tmp_path):
    assert HealthProbe(root=tmp_path / "nothing").read() == NodeHealth()
    garbled = fake_pi(tmp_path / "garbled", temp_mc=0, throttled="not-hex")
    (garbled / THERMAL).write_text("hot\n")
    assert HealthProbe(root=garbled).read().cpu_temp_c is None   # and no exception
    simulated = HealthProbe(root=fake_pi(tmp_path / "laptop", temp_mc=90_000), sensors=False).read()
    assert (simulated.cpu_temp_c, simulated.under_voltage, simulated.uptime_s) == (None, None, 4242.2)


def test_the_pis_boots_are_counted_once_each_however_often_the_agent_restarts(tmp_path):
    data = DataDir(tmp_path, apartment="a", node="hall")
    assert [data.count_system_boot("k1"), data.count_system_boot("k1")] == [1, 1]
    assert data.count_system_boot("k2") == 2
    assert DataDir(tmp_path, apartment="a", node="hall").count_system_boot("k2") == 2
    assert data.count_system_boot(None) is None
    data.path("system_boots").write_text("garbage\n")
    assert data.count_system_boot("k3") == 1, "unreadable: counted again from 1"


# -- a real node process, read from the wire -------------------------------------------------
@pytest.mark.mosquitto
def test_a_node_process_sends_its_pis_health_with_its_heartbeat(tmp_path, mosquitto, processes):
    """``escape-apartment node --simulate`` with ``ESCAPE_HEALTH_ROOT`` on fake sensor files:
    a raw MQTT client sees the readings in the heartbeats, and a change of the files in a
    later one (at most NODE_HEALTH_EVERY_S later)."""
    root = fake_pi(tmp_path / "pi", temp_mc=83_500, throttled="0x50005")
    wire = Wire(mosquitto)
    topic = Topics("temoin").node_heartbeat("cuisine")   # the room with an MFRC522 reader
    wire.subscribe(topic)
    node = NodeProcess(node_id="cuisine", game=SHIPPED_GAME, broker=mosquitto.address,
                       data_dir=tmp_path / "cuisine", log=tmp_path / "cuisine.log",
                       env={"ESCAPE_HEALTH_ROOT": str(root)})
    processes.append(node)
    try:
        def healths() -> list[NodeHealth]:
            beats = [NodeHeartbeat.model_validate_json(m.payload) for m in wire.received(topic)]
            return [b.health for b in beats if b.health is not None]

        wait_for(healths, timeout=20, what="a heartbeat with the Pi's health")
        first = healths()[0]
        assert (first.cpu_temp_c, first.under_voltage, first.throttled_seen) == (83.5, True, True)
        assert first.system_boots == 1 and first.uptime_s == 4242.2
        assert first.disk_free_bytes and first.disk_free_bytes > 0
        assert first.read_errors == {"ingredients": 0}, "the room's RFID reader, no bad read yet"
        (root / THERMAL).write_text("51000\n")
        (root / THROTTLED).write_text("0x0\n")
        wait_for(lambda: healths()[-1].cpu_temp_c == 51.0, timeout=NODE_HEALTH_EVERY_S + 10,
                 what="the new temperature in a later heartbeat")
        assert healths()[-1].under_voltage is False
        beats = [json.loads(m.payload) for m in wire.received(topic)]
        assert len(beats) > len(healths()), "not every heartbeat carries it"
    finally:
        wire.close()
