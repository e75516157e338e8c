"""What a node's health means: the thresholds, and which problems are worth a notice.

A node reports readings (``protocol.contract.NodeHealth``, ``nodes/health.py``); the
controller judges them, here and only here. Each problem has a code (the pages put it in
words, French first: ``health_<code>`` in ``dashboard/static/i18n``), the reading and the
threshold it crossed, and a severity:

* ``bad``: the Pi cannot be trusted with a game as it is — it shows on the technician page
  and as a notice on the game master's console *between* sessions (never during one: the
  game master can do nothing about a power supply with players inside);
* ``warn``: the technician page only.
"""

from __future__ import annotations

from typing import Any, Literal

Severity = Literal["warn", "bad"]

#: the SoC's temperature (°C): a Pi 4/5 slows itself down from 80 °C (soft limit), more at 85
HOT_C = 80.0
WARM_C = 70.0
#: free space of the node's data dir (its outbox of events): below this the SD card is full
#: soon, and events that wait for the controller could be lost
DISK_LOW_BYTES = 200 * 1024**2
DISK_WARN_BYTES = 1024**3
#: bad reads of one RFID reader since the agent started: a loose wire or a tag too far
READ_ERRORS_WARN = 20


def problem(code: str, severity: Severity, *, value: float | None = None,
            limit: float | None = None, prop: str | None = None) -> dict[str, Any]:
    return {"code": code, "severity": severity, "value": value, "limit": limit, "prop": prop}


def assess(health: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The problems a node's last health report shows, worst first (:class:`HealthProblem`)."""
    if not health:
        return []
    out: list[dict[str, Any]] = []
    if health.get("under_voltage") or health.get("under_voltage_seen"):
        # NOTE: "since boot" counts too: a supply that sags under load sags again in a game
        out.append(problem("under_voltage", "bad", value=1.0 if health.get("under_voltage") else 0.0))
    temp = health.get("cpu_temp_c")
    if temp is not None and temp >= HOT_C:
        out.append(problem("hot", "bad", value=temp, limit=HOT_C))
    elif temp is not None and temp >= WARM_C:
        out.append(problem("warm", "warn", value=temp, limit=WARM_C))
    free = health.get("disk_free_bytes")
    if free is not None and free < DISK_LOW_BYTES:
        out.append(problem("disk_low", "bad", value=free, limit=DISK_LOW_BYTES))
    elif free is not None and free < DISK_WARN_BYTES:
        out.append(problem("disk_warn", "warn", value=free, limit=DISK_WARN_BYTES))
    if (health.get("throttled") or health.get("throttled_seen")) and not any(
            p["code"] in ("under_voltage", "hot") for p in out):
        out.append(problem("throttled", "warn", value=1.0 if health.get("throttled") else 0.0))
    for prop, errors in sorted((health.get("read_errors") or {}).items()):
        if errors >= READ_ERRORS_WARN:
            out.append(problem("read_errors", "warn", value=errors, limit=READ_ERRORS_WARN, prop=prop))
    return out


def notices(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The console's notices of the nodes' health (``bad`` problems only), per node."""
    return [{"kind": "health", "node": n["id"], "label": n["label"], **p}
            for n in nodes for p in n.get("health_problems", ()) if p["severity"] == "bad"]
