"""The incremental push: what changed between two views, as a JSON Patch, and the hub's
numbered frames (controller/delta.py, controller/hub.py)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controller import delta
from controller.hub import Hub
from tests.support.livefeed import LiveFeed, apply

KEYS = st.sampled_from(["a", "b", "c", "x/y", "t~1", "", "0"])
SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2, allow_nan=False) | st.text(max_size=3)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(KEYS, inner, max_size=4),
                    max_leaves=30)


def strict(value: Any) -> str:
    """A document's text, types kept apart (1, 1.0 and true differ)."""
    return json.dumps(value, sort_keys=True)


@settings(max_examples=400, deadline=None)
@given(JSON, JSON)
def test_the_patch_turns_the_old_document_into_the_new_one(old: Any, new: Any) -> None:
    ops = delta.diff(old, new)
    assert strict(apply(old, ops)) == strict(new)
    assert (ops == []) == (strict(old) == strict(new))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=20), st.integers(0, 5), st.lists(st.integers(0, 50), max_size=5))
def test_a_sliding_journal_is_sent_as_what_left_and_what_came(items: list[int], dropped: int,
                                                              added: list[int]) -> None:
    old = [{"n": i, "text": "x" * 20} for i in items]
    new = old[dropped:] + [{"n": 100 + i, "text": "y"} for i in added]
    ops = delta.diff(old, new)
    assert strict(apply(old, ops)) == strict(new)
    if dropped < len(old):   # something kept: what left, what came, nothing resent
        assert len(ops) <= dropped + len(added), ops


def test_types_count_not_only_values() -> None:
    assert delta.diff({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "value": True}]
    assert delta.diff([1], [1.0]) == [{"op": "replace", "path": "/0", "value": 1.0}]
    assert delta.diff({"a/b": {"c~": 1}}, {"a/b": {"c~": 2}}) == [
        {"op": "replace", "path": "/a~1b/c~0", "value": 2}]


def test_one_puzzle_solved_is_one_small_patch() -> None:
    puzzles = [{"id": f"p{i}", "label": "Une énigme assez longue", "status": "locked"} for i in range(12)]
    solved = [dict(p) for p in puzzles]
    solved[3]["status"] = "solved"
    assert delta.diff({"puzzles": puzzles}, {"puzzles": solved}) == [
        {"op": "replace", "path": "/puzzles/3/status", "value": "solved"}]


def test_the_hub_numbers_each_audience_s_frames_and_sends_nothing_unchanged() -> None:
    hub = Hub()
    page = LiveFeed()
    page.feed(hub.update("staff", {"t": 1, "rows": [1, 2]}))
    assert page.version == 1
    assert hub.update("staff", {"t": 1, "rows": [1, 2]}) is None
    page.feed(hub.update("staff", {"t": 2, "rows": [1, 2, 3]}))
    assert page.data == {"t": 2, "rows": [1, 2, 3]} and page.version == 2
    late = LiveFeed()   # a page that connects now gets the whole view, numbered
    late.feed(hub.snapshot_text("staff"))
    late.feed(hub.update("staff", {"t": 3, "rows": [2, 3]}))
    assert late.data == {"t": 3, "rows": [2, 3]} and late.version == 3
    # a NaN goes out as null, in the view and in the patch alike
    assert json.loads(hub.update("staff", {"t": float("nan"), "rows": []}))["ops"][0] == {
        "op": "replace", "path": "/t", "value": None}


def test_a_line_inserted_or_removed_in_the_middle_of_a_list_is_one_operation() -> None:
    lines = [f"Le capteur n° {i} attend son nœud" for i in range(12)]
    inserted = [*lines[:8], "La ventouse de la boîte aux lettres est à remettre à zéro", *lines[8:]]
    assert delta.diff({"not_ready": lines}, {"not_ready": inserted}) == [
        {"op": "add", "path": "/not_ready/8", "value": inserted[8]}]
    assert delta.diff({"not_ready": inserted}, {"not_ready": lines}) == [
        {"op": "remove", "path": "/not_ready/8"}]
    assert delta.diff([1, 2, 3], [1, 5, 6, 2, 3]) == [
        {"op": "add", "path": "/1", "value": 5}, {"op": "add", "path": "/2", "value": 6}]
