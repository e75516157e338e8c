"""What a node's health means (controller/health.py): each threshold, worst first, and
which problems become a console notice."""

from __future__ import annotations

from controller.health import (
    DISK_LOW_BYTES,
    DISK_WARN_BYTES,
    HOT_C,
    READ_ERRORS_WARN,
    WARM_C,
    assess,
    notices,
)


def codes(health: dict) -> list[tuple[str, str]]:
    return [(p["code"], p["severity"]) for p in assess(health)]


def test_a_healthy_or_unknown_pi_has_no_problem():
    assert assess(None) == [] and assess({}) == []
    assert codes({"cpu_temp_c": 52.0, "under_voltage": False, "under_voltage_seen": False,
                  "throttled": False, "disk_free_bytes": 20 * 1024**3, "read_errors": {"reader": 3}}) == []
    assert codes({"cpu_temp_c": None, "under_voltage": None}) == [], "a simulated node: nothing known"


def test_each_threshold():
    assert codes({"cpu_temp_c": WARM_C}) == [("warm", "warn")]
    assert codes({"cpu_temp_c": HOT_C}) == [("hot", "bad")]
    assert codes({"disk_free_bytes": DISK_WARN_BYTES - 1}) == [("disk_warn", "warn")]
    assert codes({"disk_free_bytes": DISK_LOW_BYTES - 1}) == [("disk_low", "bad")]
    assert codes({"read_errors": {"reader": READ_ERRORS_WARN - 1}}) == []
    assert assess({"read_errors": {"reader": READ_ERRORS_WARN}}) == [
        {"code": "read_errors", "severity": "warn", "value": READ_ERRORS_WARN, "limit": READ_ERRORS_WARN,
         "prop": "reader"}]


def test_under_voltage_since_boot_counts_and_explains_the_throttling():
    assert codes({"under_voltage": False, "under_voltage_seen": True}) == [("under_voltage", "bad")], \
        "a supply that sagged once sags again under a game's load"
    assert codes({"under_voltage": True, "throttled": True}) == [("under_voltage", "bad")], \
        "the cause, not its effect twice"
    assert codes({"throttled_seen": True}) == [("throttled", "warn")]


def test_only_bad_problems_become_notices_named_by_their_room():
    nodes = [{"id": "hall", "label": "Hall", "health_problems": assess({"cpu_temp_c": 85.0,
                                                                      "disk_free_bytes": DISK_WARN_BYTES - 1})},
             {"id": "cuisine", "label": "Cuisine", "health_problems": []}]
    assert notices(nodes) == [{"kind": "health", "node": "hall", "label": "Hall", "code": "hot",
                               "severity": "bad", "value": 85.0, "limit": HOT_C, "prop": None}]
