"""The node's on-disk outbox: order, acknowledgement, bounds, what survives a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodes.outbox import Outbox
from protocol.contract import PropEvent


def event(seq: int, *, boot: str = "boot1", value: object = "0412") -> PropEvent:
    return PropEvent(boot_id=boot, seq=seq, type="code", value=value, ts=1000.0 + seq)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_events_wait_in_order_on_disk_until_acknowledged(tmp_path: Path):
    box = Outbox(path=tmp_path / "hall.outbox.jsonl")
    for seq in (1, 2, 3):
        box.append("keypad", event(seq), sent=seq == 1)
    assert [e["event"]["seq"] for e in lines(box.path)] == [1, 2, 3]
    assert [e.event.seq for e in box.unsent()] == [2, 3]
    assert box.ack(boot_id="boot1", seq=2) == 2
    assert [e.event.seq for e in box] == [3]
    assert [e["event"]["seq"] for e in lines(box.path)] == [3]
    assert box.ack(boot_id="other", seq=9) == 0, "another boot's ack forgets nothing"
    box.close()


def test_a_full_outbox_drops_its_oldest_tenth_and_counts_them(tmp_path: Path):
    box = Outbox(path=tmp_path / "o.jsonl", max_events=20)
    for seq in range(1, 22):
        box.append("keypad", event(seq), sent=False)
    assert box.dropped == 3          # 21 > 20: down to 18 at once
    assert [e.event.seq for e in box][0] == 4
    assert len(lines(box.path)) == len(box) == 18
    small = Outbox(path=tmp_path / "b.jsonl", max_events=1000, max_bytes=2048)
    for seq in range(1, 30):
        small.append("keypad", event(seq, value="x" * 100), sent=False)
    assert small.nbytes <= 2048 and small.dropped > 0
    with pytest.raises(ValueError):
        Outbox(path=tmp_path / "c.jsonl", max_events=0)


def test_what_an_earlier_run_left_is_handed_back_once_and_a_torn_line_skipped(tmp_path: Path):
    path = tmp_path / "o.jsonl"
    first = Outbox(path=path)
    first.append("keypad", event(5), sent=True)
    first.append("bell", event(6, value=None), sent=False)
    first.close()
    with path.open("ab") as out:
        out.write(b'{"prop": "keypad", "event": {"v": 1, "boot')   # cut short by a crash
    second = Outbox(path=path)
    left = second.take_leftovers()
    assert [(prop, e.seq, e.boot_id) for prop, e, _origin in left] == [("keypad", 5, "boot1"),
                                                                       ("bell", 6, "boot1")]
    assert second.corrupt_lines == 1
    assert second.take_leftovers() == [], "handed back once: the file is emptied"
    second.append("keypad", event(1, boot="boot2"), sent=False, origin=("boot1", 5))
    assert lines(path)[0]["origin"] == ["boot1", 5]


def test_backlog_is_always_a_suffix_so_has_unsent_is_constant_time(tmp_path: Path):
    box = Outbox(path=tmp_path / "o.jsonl")
    assert not box.has_unsent()
    box.append("k", event(1), sent=True)
    assert not box.has_unsent()
    box.append("k", event(2), sent=False)
    assert box.has_unsent()
    box.mark_all_unsent()
    assert [e.sent for e in box] == [False, False]
    assert box.discard(lambda e: e.event.seq == 1) == 1
    assert [e.event.seq for e in box] == [2]
