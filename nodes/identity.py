"""Who this boot of a node is on the broker, and keeping its retained birth the truth.

A node connects with the same client id at every boot, so the broker drops an old
connection (and delivers its will) before it accepts the new one. Every connection
publishes a retained birth with the boot's ``boot_id`` and its ``boot_n`` (the boot
counter kept in the data dir: Sparkplug's bdSeq); the last will names both.

The node reads its own status topic back. It subscribes before it publishes its birth,
so the broker sends what was retained there before the birth; what comes *after* the
birth's echo and is not ours — a will (of an old connection, of an old boot) or another
boot's birth — has just replaced our birth as the retained truth: the birth is published
again, at once the first time, then at most once per heartbeat interval (two processes
claiming the same node would otherwise answer each other forever). Pure: time is an input.
"""

from __future__ import annotations

import logging
from enum import Enum, auto

from config.game import Node
from protocol import contract
from protocol.contract import GameRefusal, NodeStatus, PropInfo
from protocol.version import software_version

log = logging.getLogger(__name__)


class ReadBack(Enum):
    """What our own status topic, read back, asks of us."""

    NOTHING = auto()
    #: our birth came back: every retained message of our subscriptions came before it
    ECHO = auto()
    #: our birth was replaced: publish it again now
    REPUBLISH = auto()
    #: replaced again within a heartbeat interval: again at the next heartbeat
    LATER = auto()


class Identity:
    """This boot's birth and will, and the watch over the retained status."""

    def __init__(self, *, node: Node, boot_id: str, boot_n: int, keepalive: int,
                 simulated: bool) -> None:
        self.node = node
        self.boot_id = boot_id
        self.boot_n = boot_n
        self.keepalive = keepalive
        self.simulated = simulated
        self.interval = contract.node_heartbeat_interval(keepalive)
        self._birth: bytes | None = None     # as published last
        self._echoed = False                 # the broker sent it back: what follows is later
        self._corrected_at = -float("inf")   # monotonic time of the last republish for a will
        #: to publish again at the next heartbeat
        self.due = False
        #: the game part it runs (its hash), the last one it refused, one waiting for the
        #: end of the game (``nodes/gamefile.py``)
        self.game: str | None = None
        self.game_refused: GameRefusal | None = None
        self.game_pending: str | None = None

    def will(self) -> bytes:
        """The offline status: the last will, and what a clean stop says."""
        return NodeStatus(online=False, boot_id=self.boot_id, boot_n=self.boot_n).to_bytes()

    def birth(self) -> bytes:
        """A fresh birth (its ``ts`` makes it unique), remembered to recognise its echo."""
        self._birth = NodeStatus(
            online=True, boot_id=self.boot_id, boot_n=self.boot_n, version=software_version(),
            props=[PropInfo(id=p.id, kind=p.kind) for p in self.node.props],
            simulated=self.simulated, ts=contract.now(), keepalive=self.keepalive,
            heartbeat=self.interval, game=self.game, game_refused=self.game_refused,
            game_pending=self.game_pending).to_bytes()
        self._echoed, self.due = False, False
        return self._birth

    def read_back(self, status: NodeStatus, raw: bytes, *, now: float) -> ReadBack:
        """A message on our own status topic (see the module's doc)."""
        if raw == self._birth:
            first, self._echoed = not self._echoed, True
            return ReadBack.ECHO if first else ReadBack.NOTHING
        if not self._echoed or (status.online and status.boot_id == self.boot_id):
            return ReadBack.NOTHING   # older than our birth, or a birth of ours
        if status.online:
            log.error("node %s: another boot (%s, boot_n %s) announced itself on this node's "
                      "status: is the node running twice?", self.node.id, status.boot_id, status.boot_n)
        else:
            log.warning("node %s: a will of boot %s (boot_n %s) landed after our birth: birth "
                        "published again", self.node.id, status.boot_id, status.boot_n)
        if now - self._corrected_at >= self.interval:
            self._corrected_at = now
            return ReadBack.REPUBLISH
        self.due = True
        return ReadBack.LATER
