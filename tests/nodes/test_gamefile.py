"""A node's part of the game file, through the core's inputs and the store on disk.

The core (``NodeCore.game_offered``) decides: a part it cannot apply is refused with its
reason and the node keeps the one it runs; a part received during a game waits for its
end; an applied part is kept and its hash reported. Over a real broker and a real node
process: tests/faults/test_game_file.py.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from config.game import NodePart
from nodes import gamefile
from nodes.core import NodeCore
from nodes.identity import Identity
from nodes.outbox import Outbox
from protocol import contract
from protocol.contract import ContractError, NodeGame, NodeStatus
from tests.nodes.test_core import GAME, KEEPALIVE, KINDS, T, Wire, live

PART = GAME.part("hall")
HASH = PART.content_hash()


@dataclass
class RebuildingWire(Wire):
    """The recording port, with the two calls a new game part needs."""

    rebuilt: list[NodePart] = field(default_factory=list)
    saved_parts: list[bytes] = field(default_factory=list)
    rebuild_error: str | None = None

    def rebuild(self, part: NodePart) -> str | None:
        if self.rebuild_error is None:
            self.rebuilt.append(part)
        return self.rebuild_error

    def save_part(self, raw: bytes) -> None:
        self.saved_parts.append(raw)

    def births(self) -> list[NodeStatus]:
        return [NodeStatus.model_validate_json(p) for t, p, _r, _q in self.published
                if t == T.node_status("hall") and json.loads(p).get("online")]


def make_core(tmp_path: Path) -> tuple[NodeCore, RebuildingWire]:
    wire = RebuildingWire()
    identity = Identity(node=PART.node, boot_id="boot1", boot_n=1, keepalive=KEEPALIVE, simulated=True)
    identity.game = HASH
    core = NodeCore(game=PART, node_id="hall", kinds=KINDS, ports=wire, now=0.0,
                    outbox=Outbox(path=tmp_path / "outbox.jsonl"), identity=identity)
    return core, wire


def message(data: dict[str, Any]) -> tuple[NodeGame, bytes]:
    """A part as the controller sends it (its hash computed over *data*)."""
    msg = NodeGame(hash=contract.content_hash(data), part=data)
    return msg, msg.to_bytes()


def changed(edit: Any) -> dict[str, Any]:
    data = copy.deepcopy(PART.as_data())
    edit(data)
    return data


def with_lamp_on(pin: int) -> Any:
    return lambda d: d["node"]["props"].append({"id": "fan", "kind": "led", "pin": pin})


def test_a_part_with_an_unknown_prop_kind_is_refused_and_the_old_one_kept(tmp_path):
    core, wire = make_core(tmp_path)
    live(core, running=False)
    msg, raw = message(changed(lambda d: d["node"]["props"].append({"id": "laser", "kind": "laser", "pin": 4})))
    core.game_offered(msg, raw)
    birth = wire.births()[-1]
    assert birth.game == HASH, "it still runs the part it had"
    assert birth.game_refused is not None and birth.game_refused.hash == msg.hash
    assert "laser" in birth.game_refused.reason
    assert wire.rebuilt == [] and wire.saved_parts == []
    assert core.kinds == KINDS
    # the same part again (retained, on a reconnection): no second refusal
    before = len(wire.births())
    core.game_offered(msg, raw)
    assert len(wire.births()) == before and core.metrics["game_parts_refused"] == 1


def test_a_part_with_a_pin_conflict_is_refused_with_the_pin_named(tmp_path):
    core, wire = make_core(tmp_path)
    live(core, running=False)
    msg, raw = message(changed(with_lamp_on(17)))      # the box's relay
    core.game_offered(msg, raw)
    refused = wire.births()[-1].game_refused
    assert refused is not None and "17" in refused.reason, refused
    assert wire.rebuilt == [] and core.identity.game == HASH


def test_a_part_of_another_node_or_apartment_is_refused(tmp_path):
    core, wire = make_core(tmp_path)
    live(core, running=False)
    for edit, words in ((lambda d: d["node"].update(id="kitchen"), "'kitchen'"),
                        (lambda d: d["apartment"].update(id="other"), "apartment 'other'")):
        msg, raw = message(changed(edit))
        core.game_offered(msg, raw)
        refused = wire.births()[-1].game_refused
        assert refused is not None and words in refused.reason
    assert wire.rebuilt == [] and core.identity.game == HASH


def test_a_damaged_part_is_refused_by_the_contract_before_the_node_sees_it():
    data = PART.as_data()
    forged = json.dumps({"v": 1, "hash": contract.content_hash(data),
                         "part": {**data, "puzzles": []}}).encode()
    with pytest.raises(ContractError, match="hash does not match"):
        contract.decode(forged, NodeGame)


def test_a_good_part_is_applied_kept_and_reported(tmp_path):
    core, wire = make_core(tmp_path)
    live(core, running=False)
    msg, raw = message(changed(with_lamp_on(4)))
    core.game_offered(msg, raw)
    assert [p.node.prop("fan") is not None for p in wire.rebuilt] == [True]
    assert wire.saved_parts == [raw]
    assert core.kinds["fan"] == "led"
    birth = wire.births()[-1]
    assert birth.game == msg.hash and birth.game_refused is None
    assert {p.id for p in birth.props} == {"keypad", "box", "lamp", "fan"}
    core.tick(now=10.0)
    beats = wire.on(T.node_heartbeat("hall"))
    assert beats and beats[-1]["game"] == msg.hash


def test_a_part_that_cannot_be_built_is_refused_and_the_old_one_runs(tmp_path):
    core, wire = make_core(tmp_path)
    live(core, running=False)
    wire.rebuild_error = "props not built: GPIOPinInUse: pin 4 is in use"
    msg, raw = message(changed(with_lamp_on(4)))
    core.game_offered(msg, raw)
    birth = wire.births()[-1]
    assert birth.game == HASH and birth.game_refused is not None
    assert "GPIOPinInUse" in birth.game_refused.reason
    assert wire.saved_parts == [] and "fan" not in core.kinds


def test_a_part_given_during_a_game_waits_for_its_end(tmp_path):
    core, wire = make_core(tmp_path)
    live(core, running=True)
    msg, raw = message(changed(with_lamp_on(4)))
    core.game_offered(msg, raw)
    assert wire.rebuilt == [], "never under the players"
    birth = wire.births()[-1]
    assert birth.game == HASH and birth.game_pending == msg.hash
    live(core, now=2.0, running=True)          # still playing
    assert wire.rebuilt == []
    live(core, now=3.0, running=False)         # the controller says it is over
    assert len(wire.rebuilt) == 1
    birth = wire.births()[-1]
    assert birth.game == msg.hash and birth.game_pending is None


def test_the_running_part_again_drops_the_one_waiting(tmp_path):
    core, wire = make_core(tmp_path)
    live(core, running=True)
    msg, raw = message(changed(with_lamp_on(4)))
    core.game_offered(msg, raw)
    again, raw_again = message(PART.as_data())
    core.game_offered(again, raw_again)
    assert wire.births()[-1].game_pending is None
    live(core, now=3.0, running=False)
    assert wire.rebuilt == []


# -- the copy on disk ------------------------------------------------------------------
def test_the_kept_part_is_read_back_and_a_damaged_one_is_not_used(tmp_path):
    store = gamefile.PartStore(tmp_path / "core-hall.part.json", apartment="core", node_id="hall")
    assert store.load() is None
    msg, raw = message(changed(with_lamp_on(4)))
    assert store.save(raw)
    kept = store.load()
    assert kept is not None and kept.hash == msg.hash and kept.part.node.prop("fan") is not None
    found = gamefile.PartStore.find(tmp_path, "hall")
    assert found is not None and found.apartment == "core"
    store.path.write_bytes(raw[:-20])           # cut short by a power cut
    assert store.load() is None
    other = gamefile.PartStore(store.path, apartment="core", node_id="kitchen")
    store.save(raw)
    assert other.load() is None, "another node's part is not used"
