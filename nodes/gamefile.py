"""A node's part of the game file: given by the controller, checked, kept, applied between games.

The controller holds the game file and publishes each node's part, retained, on
``nodes/<id>/game`` (:class:`protocol.contract.NodeGame`: the part as JSON and its hash).
The node (``NodeCore.game_offered`` decides, the agent rebuilds the props):

* checks it with the game's own models and the node's own checks
  (:func:`config.loader.parse_node_part`), and that it is for this apartment and node: a
  part it cannot apply (an unknown prop kind, a pin conflict) is refused — the node keeps
  the one it runs and says why (``game_refused`` in its birth);
* applies it only while no game runs (what the controller last said: ``running``); one
  that arrives during a game waits (``game_pending``) until the controller says it is over;
* keeps the last part it applied in its data dir (``<apartment>-<node>.part.json``, the
  message as received, written atomically) and starts with it: a node restarted while the
  controller is away runs the game it last ran, not an older copy of the file;
* reports the hash of the part it runs (``game``, in its birth and heartbeat).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from config.game import Game, Node, NodePart, Text
from config.loader import GameConfigError, format_path, parse_node_part
from nodes.datadir import write_atomically
from protocol import contract
from protocol.contract import ContractError, NodeGame

log = logging.getLogger(__name__)

#: the data dir file that keeps the last part applied (``DataDir.path``)
PART_FILE = "part.json"


class PartRefused(ValueError):
    """A part this node cannot apply; the message says why, for the technician."""


def placeholder(apartment: Game | NodePart, node_id: str) -> NodePart:
    """A part with no props, for a node the local game file does not name: it connects and
    waits for the controller's part."""
    return NodePart(apartment=apartment.apartment, node=Node(id=node_id, label=Text(fr=node_id)))


def check(message: NodeGame, *, apartment: str, node_id: str) -> NodePart:
    """The part *message* carries, validated for this node; raise :class:`PartRefused`."""
    try:
        part = parse_node_part(message.part, source=f"part {message.hash}")
    except GameConfigError as exc:
        reasons = "; ".join(f"{format_path(i.path)}: {i.message}" if i.path else i.message
                            for i in exc.issues)
        raise PartRefused(reasons) from exc
    if part.apartment.id != apartment:
        msg = f"part of apartment {part.apartment.id!r}, this node is in {apartment!r}"
        raise PartRefused(msg)
    if part.node.id != node_id:
        msg = f"part of node {part.node.id!r}, this node is {node_id!r}"
        raise PartRefused(msg)
    return part


@dataclass(frozen=True, slots=True)
class Kept:
    """The part read back from the data dir, and the message it came in."""

    part: NodePart
    hash: str
    raw: bytes


class PartStore:
    """The last part this node applied, in its data dir (one file, written atomically)."""

    def __init__(self, path: Path, *, apartment: str, node_id: str) -> None:
        self.path, self.apartment, self.node_id = path, apartment, node_id

    def load(self) -> Kept | None:
        """The kept part, checked again (this software may be older than the one that kept
        it); None when there is none or it does not pass (logged)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("kept game part %s unreadable (%s): not used", self.path, exc)
            return None
        try:
            message = contract.decode(raw, NodeGame)
            part = check(message, apartment=self.apartment, node_id=self.node_id)
        except (ContractError, PartRefused) as exc:
            log.error("kept game part %s not used: %s", self.path, exc)
            return None
        return Kept(part, message.hash, raw)

    def save(self, raw: bytes) -> bool:
        """Keep *raw* (a :class:`NodeGame` message); False if it could not be written (logged:
        the node runs it all the same, and starts with the one before after a restart)."""
        try:
            write_atomically(self.path, raw.decode())
        except OSError:
            log.exception("game part not kept in %s", self.path)
            return False
        return True

    @staticmethod
    def find(directory: Path, node_id: str) -> PartStore | None:
        """The kept part of *node_id* in *directory* when the apartment is not known (the
        local game file is unusable): the most recent one."""
        try:
            found = sorted(directory.glob(f"*-{node_id}.{PART_FILE}"), key=lambda p: p.stat().st_mtime)
        except OSError:
            return None
        for path in reversed(found):
            apartment = path.name[: -len(f"-{node_id}.{PART_FILE}")]
            try:
                contract.check_id(apartment, "apartment id")
            except ContractError:
                continue
            return PartStore(path, apartment=apartment, node_id=node_id)
        return None
