"""A test's copy of what a live page holds: the whole view, then the patches applied.

Does what ``App.live`` / ``App.applyPatch`` in ``dashboard/static/common.js`` do, written
apart from the controller's own code (``controller/delta.py`` makes the patches) so a test
checks one against the other.
"""

from __future__ import annotations

import copy
import json
from typing import Any


def apply(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 ``add`` / ``remove`` / ``replace`` applied to a copy of *doc*."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if op["path"] == "":
            doc = copy.deepcopy(op["value"])
            continue
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")]
        *walk, last = parts
        parent = doc
        for part in walk:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op["op"] == "add":
                parent.insert(index, op["value"])
            elif op["op"] == "remove":
                del parent[index]
            else:
                parent[index] = op["value"]
        elif op["op"] == "remove":
            del parent[last]
        else:
            parent[last] = op["value"]
    return doc


class LiveFeed:
    """Frames in, the view out, checking each frame follows the last one."""

    def __init__(self) -> None:
        self.data: Any = None
        self.version = 0
        self.frames: list[str] = []

    def feed(self, text: str) -> Any:
        """One frame's text: the view it leaves (None for a pong)."""
        self.frames.append(text)
        frame = json.loads(text)
        if frame["type"] == "snapshot":
            self.data, self.version = frame["data"], frame["v"]
        elif frame["type"] == "patch":
            assert self.data is not None, "a patch before any snapshot"
            assert frame["v"] == self.version + 1, f"frame {frame['v']} after {self.version}"
            self.data, self.version = apply(self.data, frame["ops"]), frame["v"]
        else:
            return None
        return self.data

    def receive(self, ws: Any) -> Any:
        """The next view from a test client's WebSocket (pongs skipped)."""
        while (data := self.feed(ws.receive_text())) is None:
            pass
        return data
