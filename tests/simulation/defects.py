"""Defects the safety work fixed, put back one at a time for a test (monkeypatch): the
simulator must find each (tests/simulation/test_apartment.py).

Each defect is a function that patches the product through a ``pytest.MonkeyPatch`` the
way the code behaved before its fix, and names the invariant expected to catch it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from controller import check as check_module
from controller.emergency import Alert
from controller.events import PropEvents
from controller.mqtt import MqttBridge
from controller.orders import Orders
from controller.outputs import REACHED, Outputs
from controller.registry import Boot, EventVerdict, Registry
from controller.store import Batch, Rejected, Store
from nodes.core import NodeCore
from nodes.lane import ReleaseLane
from props.models import PropConfig
from props.start import OffStart
from protocol import contract
from protocol.contract import Command, NodeStatus, PropEvent


@dataclass(frozen=True, slots=True)
class Defect:
    name: str
    what: str
    invariant: str
    apply: Callable[[pytest.MonkeyPatch], None]
    #: the first seed of the CI plan (12 steps) that breaks *invariant* with the defect put
    #: back, found by ``explore`` from seed 0; None: none of the first 600 does
    seed: int | None = None


def commands_dated_on_wall_clocks(mp: pytest.MonkeyPatch) -> None:
    """A node drops every command, unlocks included, older than its TTL on two machines'
    wall clocks (the command's time stamp against the node's own wall clock)."""
    issued_wall: dict[str, float] = {}
    new_command, command, release = MqttBridge.new_command, NodeCore.command, ReleaseLane.release

    def expired(cmd: Command) -> bool:
        sent = issued_wall.get(cmd.id)
        return sent is not None and contract.now() - sent > contract.COMMAND_TTL_S

    def dated(self: MqttBridge, *args: Any, **kwargs: Any) -> Command:
        made = new_command(self, *args, **kwargs)
        issued_wall[made.id] = contract.now()   # the controller's wall clock
        return made

    def filtered(self: NodeCore, prop: str, cmd: Command, *, receipt: int | None, now: float) -> None:
        if expired(cmd):
            self.publish_state(prop, force=True)   # dropped
            return
        command(self, prop, cmd, receipt=receipt, now=now)

    def filtered_release(self: ReleaseLane, prop: str, cmd: Command, *, receipt: int | None) -> None:
        if not expired(cmd):
            release(self, prop, cmd, receipt=receipt)

    mp.setattr(MqttBridge, "new_command", dated)
    mp.setattr(NodeCore, "command", filtered)
    mp.setattr(ReleaseLane, "release", filtered_release)


def old_will_takes_the_node_offline(mp: pytest.MonkeyPatch) -> None:
    """The will of a node's old connection, landing after its new birth, is taken for the
    node's: its boot becomes the current one, offline (the new boot's heartbeats are then
    another boot's, ignored); and the node does not answer it with its birth again."""
    on_status = Registry.on_status
    mp.setattr(NodeCore, "own_status", lambda *_a, **_kw: None)

    def trusting(self: Registry, node_id: str, status: NodeStatus, *, live: bool = True) -> Boot:
        kind = on_status(self, node_id, status, live=live)
        if kind == Boot.STALE and not status.online:
            node = self.nodes[node_id]
            node.boot_id, node.boot_n = status.boot_id, None
            node.online, node.offline_reason = False, "will"
            return Boot.OFFLINE
        return kind

    mp.setattr(Registry, "on_status", trusting)


def old_event_takes_the_identity(mp: pytest.MonkeyPatch) -> None:
    """An event carrying an older boot id makes that boot the node's current one again
    (the current boot's heartbeats are then ignored as another boot's)."""
    on_event = Registry.on_event

    def adopting(self: Registry, node_id: str, event: PropEvent) -> EventVerdict:
        verdict = on_event(self, node_id, event)
        node = self.nodes.get(node_id)
        if verdict == EventVerdict.OTHER_BOOT and node is not None:
            node.boot_id, node.boot_n, node.last_seq = event.boot_id, None, event.seq
        return verdict

    mp.setattr(Registry, "on_event", adopting)


def console_confirms_at_send(mp: pytest.MonkeyPatch) -> None:
    """A lock order shows as done the moment it is sent, before any node said so."""
    send = Outputs._send

    def optimistic(self: Outputs, key: tuple[str, str], action: str, params: dict[str, Any]) -> str:
        command_id = send(self, key, action, params)
        want = self.desired.get(key)
        if action in REACHED and want is not None:
            want.confirmed_at = self.ctx.clock()
        return command_id

    mp.setattr(Outputs, "_send", optimistic)


def emergency_not_retained(mp: pytest.MonkeyPatch) -> None:
    """The emergency alert is published once, not retained: a node that was away misses it."""

    def once(self: Alert) -> None:
        if self.state is not None:
            self.bridge.publish(self.bridge.topics.emergency, self.state.to_bytes(), retain=False)

    mp.setattr(Alert, "publish", once)


def relock_after_emergency_end(mp: pytest.MonkeyPatch) -> None:
    """Ending the emergency locks again the maglocks the game had locked."""
    end = Orders.end_emergency

    def relocking(self: Orders, *, who: str = "game_master") -> None:
        end(self, who=who)
        for node, prop in self.ctx.maglocks:
            self.outputs.command(node, prop, "lock")

    mp.setattr(Orders, "end_emergency", relocking)


def check_ignores_buttons_and_windows(mp: pytest.MonkeyPatch) -> None:
    """The pre-game check looks at locks, keypads, readers and bins only: a window left
    open or a button left pressed passes."""
    off_start = check_module.off_start

    def blind(config: PropConfig, reported: dict[str, Any]) -> OffStart | None:
        if config.kind in ("button", "reed_switch", "pressure_mat"):
            return None
        return off_start(config, reported)

    mp.setattr(check_module, "off_start", blind)


def failed_writes_dropped(mp: pytest.MonkeyPatch) -> None:
    """A batch of rows the database refuses (a full disk) is dropped, as if written."""
    write = Store.write

    def dropping(self: Store, batch: Batch) -> list[Rejected]:
        try:
            return write(self, batch)
        except sqlite3.Error:
            return []

    mp.setattr(Store, "write", dropping)


def event_session_ignored(mp: pytest.MonkeyPatch) -> None:
    """An event is applied to the open session whatever session it was stamped with."""
    on_event = PropEvents.on_event

    def unstamped(self: PropEvents, node: str, prop: str, event: PropEvent) -> None:
        on_event(self, node, prop, event.model_copy(update={"session": None}))

    mp.setattr(PropEvents, "on_event", unstamped)


DEFECTS = [
    Defect("commands_dated_on_wall_clocks", "a clock step makes nodes drop unlocks",
           "locks_released_after_an_emergency_or_an_end", commands_dated_on_wall_clocks, 141),
    Defect("old_will_takes_the_node_offline", "a fast reboot's old will marks the node offline",
           "view_converges_to_the_truth", old_will_takes_the_node_offline, 20),
    Defect("old_event_takes_the_identity", "a replayed event of an old boot takes over",
           "view_converges_to_the_truth", old_event_takes_the_identity),
    Defect("console_confirms_at_send", "the console confirms a lock before its node",
           "console_confirms_only_what_relays_did", console_confirms_at_send, 0),
    Defect("emergency_not_retained", "the emergency alert is not retained",
           "locks_released_after_an_emergency_or_an_end", emergency_not_retained),
    Defect("relock_after_emergency_end", "the end of the alert locks again",
           "exit_door_never_relocked_without_the_game_master", relock_after_emergency_end, 5),
    Defect("failed_writes_dropped", "rows a full disk refused are lost",
           "nothing_recorded_is_lost", failed_writes_dropped),
    Defect("event_session_ignored", "a late event of the last session solves a puzzle of this one",
           "each_solve_counted_once", event_session_ignored),
    Defect("check_ignores_buttons_and_windows", "the check passes a window left open",
           "check_passes_only_in_start_state", check_ignores_buttons_and_windows, 463),
]
