"""What changed between two JSON documents, as a JSON Patch (RFC 6902).

The live pages get a whole view once, then only what changed
(:class:`controller.hub.Hub`): during a game the staff's snapshot (~26 KB with the
shipped game) changes by its clock fields each second. :func:`diff` returns ``add`` /
``remove`` / ``replace`` operations only, with JSON Pointer paths (RFC 6901), which the
pages apply in ``common.js`` (``App.applyPatch``). It works on documents as JSON decodes
them (dicts, lists, str, int, float, bool, None).

Values are compared by type as well as value (``1`` is not ``True``, nor ``1.0``): what
the page holds after the patch is exactly what ``json.loads`` of the new document gives.

Hand-written, not the maintained ``jsonpatch`` library, because it measured 4 to 6 times
cheaper for the same patches (``python -m bench --only patch``, bench/patch_diff.py: the
shipped game's views, 2,000 rounds, 2026-12-04, Python 3.11, jsonpatch 1.48). CPU per diff
p50 / p99, this module vs ``jsonpatch.make_patch``, on the staff snapshot (~26 KB): 1 s of
game clock 365 / 482 µs vs 1,643 / 2,021 µs; a puzzle solved 585 / 754 vs 2,387 / 2,901; a
clue sent 388 / 542 vs 1,814 / 2,241. On a room screen (~1.3 KB): 33 / 76 vs 175 / 290;
37 / 76 vs 229 / 371; 40 / 82 vs 224 / 353. The patches are the same size in every case
(281, 2,555, 881, 162, 476, 276 bytes); docs/performance.md has the table.
"""

from __future__ import annotations

from typing import Any

Op = dict[str, Any]

#: how far a list may have slid (items dropped at its head, as a capped journal does)
#: and still be sent as removals and appends rather than item by item
_MAX_SLIDE = 16


def pointer(parts: list[str | int]) -> str:
    """A JSON Pointer (RFC 6901) to *parts*: ``~`` and ``/`` escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def same(a: Any, b: Any) -> bool:
    """Equal as JSON documents, types included (``1``, ``1.0`` and ``True`` differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def diff(old: Any, new: Any) -> list[Op]:
    """The operations that turn *old* into *new* (empty when they are the same)."""
    ops: list[Op] = []
    _diff(old, new, [], ops)
    return ops


def _diff(old: Any, new: Any, path: list[str | int], ops: list[Op]) -> None:
    if type(old) is not type(new):
        ops.append({"op": "replace", "path": pointer(path), "value": new})
    elif isinstance(old, dict):
        for key in old.keys() - new.keys():
            ops.append({"op": "remove", "path": pointer([*path, key])})
        for key, value in new.items():
            if key in old:
                _diff(old[key], value, [*path, key], ops)
            else:
                ops.append({"op": "add", "path": pointer([*path, key]), "value": value})
    elif isinstance(old, list):
        _diff_list(old, new, path, ops)
    elif old != new:
        ops.append({"op": "replace", "path": pointer(path), "value": new})


def _diff_list(old: list[Any], new: list[Any], path: list[str | int], ops: list[Op]) -> None:
    head = 0   # the items both start with
    while head < min(len(old), len(new)) and same(old[head], new[head]):
        head += 1
    rest_old, rest_new = old[head:], new[head:]
    tail = 0   # the items both end with, after those they start with
    while tail < min(len(rest_old), len(rest_new)) and same(rest_old[-1 - tail], rest_new[-1 - tail]):
        tail += 1
    if tail and tail in (len(rest_old), len(rest_new)):
        # items removed or inserted in one place (a line added to the middle of a list)
        ops.extend({"op": "remove", "path": pointer([*path, head])}
                   for _ in range(len(rest_old) - tail))
        ops.extend({"op": "add", "path": pointer([*path, head + i]), "value": v}
                   for i, v in enumerate(rest_new[:len(rest_new) - tail]))
        return
    # a window that slid: its first items dropped, new ones appended (the last N entries
    # of a journal)
    for drop in range(1, min(_MAX_SLIDE, len(rest_old) - 1) + 1):   # something is kept
        kept = rest_old[drop:]
        if len(kept) <= len(rest_new) and same(kept, rest_new[:len(kept)]):
            ops.extend({"op": "remove", "path": pointer([*path, head])} for _ in range(drop))
            ops.extend({"op": "add", "path": pointer([*path, "-"]), "value": v}
                       for v in rest_new[len(kept):])
            return
    # item by item (not the end both share), then what one has more than the other at its end
    common = min(len(old), len(new))
    for i in range(head, common - tail if len(old) == len(new) else common):
        _diff(old[i], new[i], [*path, i], ops)
    ops.extend({"op": "remove", "path": pointer([*path, common])} for _ in range(len(old) - common))
    ops.extend({"op": "add", "path": pointer([*path, "-"]), "value": v} for v in new[common:])
