"""The Pi under a node: temperature, power, disk, uptime, boots — read, never judged.

What the node reports in its heartbeat's ``health`` (``protocol.contract.NodeHealth``);
the controller says what is too hot or too weak (``controller/health.py``). Every reading
is a small file the kernel keeps, read under one root (``/`` on a Pi; a folder of fake
files in the tests: ``ESCAPE_HEALTH_ROOT``):

* ``sys/class/thermal/thermal_zone0/temp``: the SoC's temperature, in m°C;
* ``get_throttled`` of the firmware driver (``sys/devices/platform/soc/soc:firmware/`` on a
  Pi 4; found by name under ``sys/devices/platform`` elsewhere): what ``vcgencmd
  get_throttled`` prints, in hex — bit 0 under-voltage now, 1 frequency capped, 2
  throttled, 3 soft temperature limit; bits 16–19 the same since boot;
* else ``in0_lcrit_alarm`` of the ``rpi_volt`` hwmon: under-voltage now (no history);
* ``proc/uptime`` and ``proc/sys/kernel/random/boot_id`` (a new one at each boot of the Pi:
  counted in the data dir, ``nodes/datadir.py``).

A simulated node reads no sensor unless told where (``ESCAPE_HEALTH_ROOT``): its
temperature and power are ``None``, not the laptop's. Nothing here raises: a file that
cannot be read is a ``None``, and the heartbeat goes out anyway.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from protocol.contract import NodeHealth

log = logging.getLogger(__name__)

THERMAL = "sys/class/thermal/thermal_zone0/temp"
#: where the firmware driver's file is on a Pi 4 (first), then where to look for it
THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"
THROTTLED_GLOB = "sys/devices/platform/*/*firmware/get_throttled"
HWMON_GLOB = "sys/class/hwmon/hwmon*"
UPTIME = "proc/uptime"
BOOT_ID = "proc/sys/kernel/random/boot_id"

# get_throttled bits (the firmware's; vcgencmd prints the same word)
UNDER_VOLTAGE, CAPPED, THROTTLED_NOW, SOFT_TEMP = 0x1, 0x2, 0x4, 0x8
SINCE_BOOT = 16
SLOWED = CAPPED | THROTTLED_NOW | SOFT_TEMP


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


class HealthProbe:
    """Reads the Pi's health under *root*; *sensors*: False for a simulated node without a
    root of its own (no temperature, no power readings)."""

    def __init__(self, *, root: Path = Path("/"), sensors: bool = True, data_dir: Path | None = None,
                 system_boots: int | None = None) -> None:
        self.root, self.sensors, self.data_dir = Path(root), sensors, data_dir
        self.system_boots = system_boots
        self._throttled: Path | None = None
        self._found = False

    def boot_id(self) -> str | None:
        """This boot of the Pi (the kernel's random id)."""
        return _read(self.root / BOOT_ID)

    def read(self, *, read_errors: Mapping[str, int] | None = None,
             counters: Mapping[str, int] | None = None) -> NodeHealth:
        fields: dict[str, object] = {"system_boots": self.system_boots,
                                     "read_errors": dict(read_errors) if read_errors else None,
                                     "counters": {k: v for k, v in (counters or {}).items() if v} or None}
        readers: list[Callable[[], dict[str, object]]] = [self._disk, self._uptime]
        if self.sensors:
            readers += [self._temperature, self._power]
        for reader in readers:
            try:
                fields.update(reader())
            except Exception:   # a reading is information: never worth a heartbeat
                log.exception("health: %s failed", reader.__name__)
        try:
            return NodeHealth.model_validate(fields)
        except ValueError:
            log.exception("health readings out of range: %s", fields)
            return NodeHealth()

    # -- the readings -------------------------------------------------------------------
    def _temperature(self) -> dict[str, object]:
        text = _read(self.root / THERMAL)
        return {"cpu_temp_c": round(int(text) / 1000, 1)} if text and text.lstrip("-").isdigit() else {}

    def _power(self) -> dict[str, object]:
        path = self._throttled_file()
        text = _read(path) if path is not None else None
        if text:
            word = int(text, 16)
            return {"under_voltage": bool(word & UNDER_VOLTAGE),
                    "under_voltage_seen": bool(word & (UNDER_VOLTAGE << SINCE_BOOT) or word & UNDER_VOLTAGE),
                    "throttled": bool(word & SLOWED),
                    "throttled_seen": bool(word & (SLOWED << SINCE_BOOT) or word & SLOWED)}
        for hwmon in sorted(self.root.glob(HWMON_GLOB)):
            if _read(hwmon / "name") == "rpi_volt":
                alarm = _read(hwmon / "in0_lcrit_alarm")
                if alarm in ("0", "1"):
                    return {"under_voltage": alarm == "1"}
        return {}

    def _throttled_file(self) -> Path | None:
        if not self._found:   # the device tree does not change while the Pi runs
            self._found = True
            first = self.root / THROTTLED
            candidates = [first] if first.is_file() else sorted(self.root.glob(THROTTLED_GLOB))
            self._throttled = candidates[0] if candidates else None
        return self._throttled

    def _disk(self) -> dict[str, object]:
        if self.data_dir is None:
            return {}
        usage = shutil.disk_usage(self.data_dir)
        return {"disk_free_bytes": usage.free, "disk_total_bytes": usage.total}

    def _uptime(self) -> dict[str, object]:
        text = _read(self.root / UPTIME)
        return {"uptime_s": round(float(text.split()[0]), 1)} if text else {}
