"""The shape of a bench's results: metrics (for the table and --compare) and targets.

Every bench's ``run()`` returns a :class:`Section`; ``python -m bench`` writes them all
into one JSON file::

    {"suite": "escape-apartment-bench", "schema": 1, "name": …, "timestamp": …,
     "quick": true, "machine": {…}, "duration_s": …,
     "benches": {"e2e": {"metrics": {"e2e.mosquitto.p99_ms": {"value": 1.9,
                 "unit": "ms", "better": "lower"}, …},
                 "targets": [{"name": …, "target": …, "measured": …, "met": true}],
                 "details": {…}, "notes": […], "duration_s": 12.3}, …}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Better = Literal["lower", "higher", "info"]


@dataclass
class Section:
    """What one bench measured."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def metric(self, name: str, value: float | int | None, unit: str,
               better: Better = "lower") -> None:
        self.metrics[name] = {"value": value, "unit": unit, "better": better}

    def target(self, name: str, *, target: str, measured: float | None, limit: float,
               at_most: bool = True, unit: str = "") -> None:
        """A stated target: *measured* must be ≤ *limit* (or ≥ when ``at_most=False``)."""
        met = None if measured is None else (measured <= limit if at_most else measured >= limit)
        self.targets.append({"name": name, "target": target, "measured": measured,
                             "limit": limit, "unit": unit, "met": met})

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "targets": self.targets, "details": self.details,
                "notes": self.notes}
