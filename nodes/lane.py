"""The release lane: what a node does at once, in the thread a release arrives in.

Releasing never waits — not for the worker (stuck in a prop, its inbox full), not for the
core's lock (the worker may hold it in the outbox's write on a slow SD card). So an
``unlock`` of a maglock and the apartment's emergency (in paho's thread, as they are
read) and the node's emergency input (in its button's thread):

1. release the relays **first**, with no lock taken;
2. book it in the gate (``nodes/gate.py``, thread-safe, its lock held only for a few
   dictionary operations): the release's rank (a lock received before it and still
   waiting is refused), the emergency's hold, the ``ack``;
3. release again any maglock a lock engaged between 1 and 2 (the worker applying a lock
   that passed the gate just before): the later order wins.

The rest — the state that confirms it, the emergency kept on disk — is the worker's, at
the head of its inbox (``NodeCore.released``, ``emergency_booked``); the emergency input's
event is emitted by its button's thread, which alone waits for the core's lock for it
(``NodeCore.emergency_pressed``). A maglock that engages while held (a pulse's
relock, a self-test's click) is released in its own state callback: :meth:`undo_if_held`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from nodes.gate import PENDING, CommandGate
from protocol.contract import RELEASE, Command, Emergency

log = logging.getLogger(__name__)


class Relays(Protocol):
    """What the lane needs of the props (a part of ``nodes.core.Ports``)."""

    def apply(self, prop: str, action: str, params: Mapping[str, Any]) -> None: ...

    def engaged(self, prop: str) -> bool: ...


class ReleaseLane:
    """Releases at once, from any thread, on the gate and the port's props."""

    def __init__(self, *, gate: CommandGate, ports: Relays, metrics: Counter[str]) -> None:
        self.gate, self.ports, self.metrics = gate, ports, metrics

    @property
    def maglocks(self) -> frozenset[str]:
        """The gate's: a new game part may change them."""
        return self.gate.maglocks

    def release(self, prop: str, command: Command, *, receipt: int | None) -> None:
        """An ``unlock`` of maglock *prop*."""
        self._release([prop])
        self.gate.released([prop], receipt)
        if self.gate.applied(prop, command):
            self.metrics["repeated_releases"] += 1   # applied again: harmless
        self._undo_engaged([prop])

    def emergency(self, emergency: Emergency, *, receipt: int | None) -> bool:
        """The apartment's emergency (or its clear); True if it changed something to book
        (a new alert, or the end of one)."""
        if not emergency.active:
            return self.gate.set_emergency(emergency) is not None   # clearing relocks nothing
        if self.gate.stale(emergency):
            self.metrics["stale_emergencies"] += 1
            log.warning("emergency %s was cleared already (a broker back on an old save): "
                        "ignored", emergency.id)
            return False
        self._release(self.maglocks)
        before = self.gate.set_emergency(emergency)
        self.gate.released(self.maglocks, receipt)
        self._undo_engaged(self.maglocks)
        self.metrics["emergency_releases"] += 1
        return before is None or before.id != emergency.id

    def emergency_input(self) -> None:
        """The node's emergency input: its locks held open until the controller has heard
        of it (its event, emitted next, gives the hold its seq)."""
        self._release(self.maglocks)
        self.gate.hold(self.maglocks, PENDING)
        self._undo_engaged(self.maglocks)

    def undo_if_held(self, prop: str) -> bool:
        """A maglock's state changed: if it engaged while held open, release it now."""
        if prop not in self.gate.held_open or not self.ports.engaged(prop):
            return False
        self.metrics["held_relocks_undone"] += 1
        log.warning("%s engaged while held open: released", prop)
        self._release([prop])
        return True

    def undo_superseded(self, prop: str, receipt: int | None) -> None:
        """After a lock of rank *receipt* engaged: release it if a release received after
        it, or a hold, was booked meanwhile."""
        if prop in self.maglocks and (self.gate.superseded(prop, receipt) or prop in self.gate.held_open):
            self._undo_engaged([prop])

    def _undo_engaged(self, props: Iterable[str]) -> None:
        for prop in props:
            if self.ports.engaged(prop):
                self.metrics["superseded_commands"] += 1
                self._release([prop])

    def _release(self, props: Iterable[str]) -> None:
        for prop in props:
            try:
                self.ports.apply(prop, RELEASE, {})
            except Exception:
                log.exception("release of %s failed", prop)
