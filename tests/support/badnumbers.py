"""NaN, Infinity, -Infinity and 1e999 in every number a room sends, as raw JSON text (no
encoder writes them: they are put in by hand), and a browser's strict JSON parse."""

from __future__ import annotations

import json
from typing import Any

from protocol.contract import Topics, now

#: what a JSON text may hold for a number that is not one (1e999: read as infinity)
NOT_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999")
_SLOT = "\u0000slot\u0000"


def strict_json(text: str | bytes) -> Any:
    """Parse as a browser would: NaN and Infinity are syntax errors."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def place(template: dict[str, Any], path: tuple[str | int, ...], literal: str) -> bytes:
    """*template* as JSON text with *literal* written as-is at *path*."""
    data = json.loads(json.dumps(template))
    at: Any = data
    for step in path[:-1]:
        at = at[step]
    at[path[-1]] = _SLOT
    return json.dumps(data).replace(json.dumps(_SLOT), literal).encode()


def forged(topics: Topics, node: str, boot: str, *, keypad: str, lock: str) -> list[tuple[str, bytes]]:
    """One message per numeric place and per non-number, on *node*'s own topics: its
    birth, heartbeat, an event of *keypad*, the state of *lock*, a technician's reply."""
    ts = now()
    places: list[tuple[str, dict[str, Any], list[tuple[str | int, ...]]]] = [
        (topics.node_status(node),
         {"v": 1, "online": True, "boot_id": boot, "boot_n": 1, "version": "9", "ts": ts,
          "keepalive": 5, "heartbeat": 1.6},
         [("ts",), ("keepalive",), ("heartbeat",), ("boot_n",)]),
        (topics.node_heartbeat(node),
         {"v": 1, "boot_id": boot, "boot_n": 1, "ts": ts, "outbox": 0},
         [("ts",), ("boot_n",), ("outbox",)]),
        (topics.prop_event(node, keypad),
         {"v": 1, "boot_id": boot, "seq": 10_000, "type": "code", "value": {"code": 412, "held": [1.0]},
          "ts": ts},
         [("seq",), ("ts",), ("value",), ("value", "code"), ("value", "held", 0)]),
        (topics.prop_state(node, lock),
         {"v": 1, "boot_id": boot, "ts": ts, "engaged": False, "locked": False, "door": "closed",
          "current": 0.4, "detail": {"since": [ts]}},
         [("ts",), ("current",), ("detail", "since", 0)]),
        (topics.node_tech_reply(node),
         {"v": 1, "id": "t1", "ok": True, "result": {"volts": [5.0]}},
         [("result",), ("result", "volts", 0)]),
    ]
    return [(topic, place(template, path, literal))
            for topic, template, paths in places for path in paths for literal in NOT_NUMBERS]
