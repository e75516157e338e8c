"""JSON text the controller hands to anyone (pages, room screens, MQTT, its database):
always valid JSON.

Non-finite numbers (NaN, ±Infinity) are not JSON: one of them in a WebSocket push once
froze the game master's console (``JSON.parse`` threw, the page stopped rendering). They
are refused where they could enter — the MQTT contract (:func:`protocol.contract.decode`)
and the game file — so none should reach this point; if a bug lets one through anyway
(a value the engine computed, a row read back from an old database), it goes out as
``null`` with an error in the log naming where it was, and the text stays valid.

HTTP responses take the same road through FastAPI: a route's response model makes
pydantic serialize it, which writes a non-finite number as ``null`` too.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from protocol import contract

log = logging.getLogger(__name__)


def dumps(value: Any, *, what: str) -> str:
    """:func:`protocol.contract.dumps` (compact, never NaN) of *value*, *what* naming it in
    the log should a non-finite number have to be neutralised."""
    try:
        return contract.dumps(value)
    except ValueError:
        clean, where = finite(value)
        if not where:
            raise   # not a number's fault (a circular reference): not ours to hide
        log.error("%s: non-finite number(s) at %s sent as null; it should have been refused "
                  "where it came in", what, ", ".join(where[:10]))
        return contract.dumps(clean)


def finite(value: Any, path: str = "$") -> tuple[Any, list[str]]:
    """*value* with every non-finite float replaced by ``None``, and where they were."""
    if isinstance(value, float):
        return (value, []) if math.isfinite(value) else (None, [path])
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        where: list[str] = []
        for key, item in value.items():
            out[key], found = finite(item, f"{path}.{key}")
            where += found
        return out, where
    if isinstance(value, list | tuple):
        items, where = [], []
        for i, item in enumerate(value):
            clean, found = finite(item, f"{path}[{i}]")
            items.append(clean)
            where += found
        return items, where
    return value, []
