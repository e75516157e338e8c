"""The product's time stamps and ids, in a simulation: whose clock, which ids.

Nodes and the controller stamp payloads with ``protocol.contract.now()`` and name boots,
commands, sessions and clues with ``contract.new_id()``. In one process that simulates
eight machines, the time stamp must be the wall clock of the machine whose code is
running (a stepped clock shows in what that machine sends) and the ids must come from the
seed (the same seed, the same run). Every entry into a machine's code (a packet
delivered, a timer, an actor's hand) calls :meth:`Sources.enter` first: a run is single
threaded, so that machine stays current until the next entry.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

from protocol import contract
from simulation.scheduler import EPOCH, Machine


class Sources:
    """The current machine's wall clock and seeded ids, for ``protocol.contract``."""

    def __init__(self, seed: int) -> None:
        self.machine: Machine | None = None
        self._ids = random.Random(f"ids-{seed}")

    def enter(self, machine: Machine) -> None:
        self.machine = machine

    def wall(self) -> float:
        machine = self.machine
        return machine.time() if machine is not None else EPOCH

    def new_id(self) -> str:
        return f"{self._ids.getrandbits(48):012x}"

    @contextlib.contextmanager
    def installed(self) -> Iterator[Sources]:
        """``contract.now`` and ``contract.new_id`` read these sources until the end."""
        saved = contract.wall_source, contract.id_source
        contract.wall_source, contract.id_source = self.wall, self.new_id
        try:
            yield self
        finally:
            contract.wall_source, contract.id_source = saved
