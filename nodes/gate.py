"""The command gate: which command a node applies, and which locks it holds open.

The one place that filters commands. **Releasing is unconditional**: an ``unlock``
(``contract.RELEASE``) passes whatever its age, session, id or any hold — applying it
twice is harmless. Any other command is refused when

* its id was applied already (QoS 1 may deliver twice; the last
  :data:`APPLIED_IDS_KEPT` ids are remembered);
* it is older than its ``ttl`` (default ``COMMAND_TTL_S``), measured on the controller's
  own clock (``contract.ControllerClock``; never on a wall clock);
* it is for another session than the one the controller announces;
* on a maglock: while the lock is held open (the apartment's emergency, or a lock this
  node opened on its own until the controller acknowledged why), or when a release
  received after it has been applied already (it waited behind other messages: the later
  order wins).

No I/O. Thread-safe: the release lane (``nodes/lane.py``) books releases here from the
thread they arrive in while the worker checks commands; one small lock, held only for
these dictionary operations. :attr:`CommandGate.held_open` is an immutable set replaced
whole, so a prop's callback reads it with no lock at all.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from protocol.contract import COMMAND_TTL_S, Command, Emergency, is_release

APPLIED_IDS_KEPT = 1024
#: emergency ids remembered as cleared (one per alert: a year holds a handful)
CLEARED_KEPT = 64
#: a hold whose event has no seq yet (the emergency input, before its event is emitted)
PENDING = sys.maxsize


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a command is not applied: the metric it counts in, and the words for the log."""

    counter: str
    reason: str


class CommandGate:
    """The gate and the holds of one node's maglocks."""

    def __init__(self, maglocks: Iterable[str], *, emergency: Emergency | None = None) -> None:
        self.maglocks = frozenset(maglocks)
        #: the apartment's emergency while active (set first, cleared only by an explicit clear)
        self.emergency: Emergency | None = None
        #: maglock -> seq of the event the controller must acknowledge before it may lock
        self.holds: dict[str, int] = {}
        #: the maglocks nothing may engage now (emergency or hold)
        self.held_open: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._applied: OrderedDict[str, None] = OrderedDict()
        self._acks: dict[str, str] = {}   # prop -> id of the last command applied
        # per maglock, the receipt rank of the last release applied: a lock received
        # before it and applied after it would undo it
        self._released_at: dict[str, int] = {}
        # ids of the emergencies seen cleared: a broker back on an old save (kill -9, power
        # cut) hands an ended one back as active; only a new id is a new emergency
        self._cleared: deque[str] = deque(maxlen=CLEARED_KEPT)
        self.set_emergency(emergency)

    # -- the gate ---------------------------------------------------------------------
    def refusal(self, prop: str, command: Command, *, age: float | None, session: str | None,
                receipt: int | None) -> Refusal | None:
        """Why *command* may not be applied to *prop* now, or None (see the module's doc)."""
        if is_release(command.action):
            return None
        with self._lock:
            return self._refusal(prop, command, age=age, session=session, receipt=receipt)

    def _refusal(self, prop: str, command: Command, *, age: float | None,  # noqa: PLR0911 - one return per rule
                 session: str | None, receipt: int | None) -> Refusal | None:
        if command.id in self._applied:
            return Refusal("duplicate_commands", "already applied")
        ttl = command.ttl if command.ttl is not None else COMMAND_TTL_S
        if age is not None and age > ttl:
            return Refusal("expired_commands",
                           f"{age:.1f} s old on the controller's clock (limit {ttl:g} s)")
        if command.session and session and command.session != session:
            return Refusal("foreign_session", f"for session {command.session}, not {session}")
        if prop not in self.maglocks:
            return None
        held = self._why_held(prop)
        if held is not None:
            return held
        if self._superseded(prop, receipt):
            return Refusal("superseded_commands", "a release received after it was applied first")
        return None

    def why_held(self, prop: str) -> Refusal | None:
        """Why this maglock must stay open whatever anyone asks, or None."""
        with self._lock:
            return self._why_held(prop)

    def _why_held(self, prop: str) -> Refusal | None:
        if prop not in self.maglocks:
            return None
        if self.emergency is not None:
            return Refusal("emergency_refused", f"the emergency {self.emergency.id} is active")
        seq = self.holds.get(prop)
        if seq is not None:
            return Refusal("held_commands", f"held open until the controller acknowledges event {seq}")
        return None

    def superseded(self, prop: str, receipt: int | None) -> bool:
        """Was a release received after the message of rank *receipt* applied already?"""
        with self._lock:
            return self._superseded(prop, receipt)

    def _superseded(self, prop: str, receipt: int | None) -> bool:
        released = self._released_at.get(prop)
        return receipt is not None and released is not None and receipt < released

    def ack(self, prop: str) -> str | None:
        """The id of the last command applied to *prop* (its state's ``ack``)."""
        return self._acks.get(prop)

    @property
    def applied_ids(self) -> tuple[str, ...]:
        """The ids of the commands applied, oldest first (the last ``APPLIED_IDS_KEPT``)."""
        with self._lock:
            return tuple(self._applied)

    # -- what happened ----------------------------------------------------------------
    def applied(self, prop: str, command: Command) -> bool:
        """*command* is being applied to *prop* (before it moves: its state then carries
        this ``ack``); True if its id was applied before."""
        with self._lock:
            again = command.id in self._applied
            self._applied[command.id] = None
            self._applied.move_to_end(command.id)
            while len(self._applied) > APPLIED_IDS_KEPT:
                self._applied.popitem(last=False)
            self._acks[prop] = command.id
            return again

    def released(self, props: Iterable[str], receipt: int | None) -> None:
        """A release of *props* received with rank *receipt*: a lock received before it
        that is still waiting will be refused."""
        if receipt is None:
            return
        with self._lock:
            for prop in props:
                self._released_at[prop] = max(receipt, self._released_at.get(prop, 0))

    def hold(self, props: Iterable[str], seq: int) -> None:
        """Hold *props* open until the controller acknowledges event *seq* (``PENDING``:
        an event not emitted yet)."""
        with self._lock:
            for prop in props:
                if prop in self.maglocks:
                    self.holds[prop] = seq
            self._refresh()

    def acknowledged(self, seq: int) -> None:
        """The controller handled this boot's events up to *seq*: lift the holds they cover."""
        with self._lock:
            self.holds = {p: s for p, s in self.holds.items() if s > seq}
            self._refresh()

    def stale(self, emergency: Emergency) -> bool:
        """*emergency* is active but was seen cleared already: a replay, not an alert."""
        with self._lock:
            return emergency.active and emergency.id in self._cleared

    def set_emergency(self, emergency: Emergency | None) -> Emergency | None:
        """The apartment's emergency (None or inactive: cleared); return the one it replaces."""
        with self._lock:
            before = self.emergency
            if emergency is not None and not emergency.active:
                self._cleared.append(emergency.id)
            self.emergency = emergency if emergency is not None and emergency.active else None
            self._refresh()
            return before

    def reconfigure(self, maglocks: Iterable[str]) -> None:
        """The node's props were rebuilt from a new game part: these are its maglocks now
        (the emergency still holds them all; the holds of maglocks that are gone go)."""
        with self._lock:
            self.maglocks = frozenset(maglocks)
            self.holds = {p: s for p, s in self.holds.items() if p in self.maglocks}
            self._released_at = {p: r for p, r in self._released_at.items() if p in self.maglocks}
            self._refresh()

    def _refresh(self) -> None:
        self.held_open = self.maglocks if self.emergency is not None else frozenset(self.holds)
