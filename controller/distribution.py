"""The game file, one source of truth: each node's part, sent and watched.

The controller holds the game file. Each node of the game gets its part of it
(``config.game.NodePart``: the apartment, the node and its props, its local puzzles) as a
retained :class:`~protocol.contract.NodeGame` on ``nodes/<id>/game``, with its hash
(``protocol.contract.content_hash``): published at every (re)connection to the broker (a
broker without persistence forgot it) and when the game is replaced (a reload, between
sessions only: ``controller/reload.py``). A node no longer in the game has its retained
part deleted. The node checks, keeps and applies it (``nodes/gamefile.py``).

Each node reports the hash of the part it runs, a part it refused and why, and a part it
keeps for the end of a game (births and heartbeats, kept in ``Registry``): :meth:`view`
compares them with what was sent, for the technician page; :meth:`checks` says what the
pre-game check must wait for (``controller/check.py``): a node online that does not run
its part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from config.game import Game
from protocol import contract
from protocol.contract import MAX_PAYLOAD_BYTES, NodeGame
from protocol.version import software_version

if TYPE_CHECKING:
    from controller.context import Context
    from controller.mqtt import MqttBridge
    from controller.registry import NodeInfo

log = logging.getLogger(__name__)


class PartTooLarge(ValueError):
    """A node's part does not fit in one MQTT message of the contract."""


class GameStatus(StrEnum):
    """Where a node stands against the part it was sent."""

    SAME = "same"          # runs it
    WAITING = "waiting"    # runs another one; nothing refused, nothing kept for later
    PENDING = "pending"    # keeps it for the end of the game it believes runs
    REFUSED = "refused"    # could not apply it: runs the one before (why: its reason)
    UNKNOWN = "unknown"    # online, says nothing of its game (software older than this)
    OFFLINE = "offline"    # not online: what it runs is not known now


#: what the pre-game check tells the game master (French; ``check_fix_game_<status>`` in i18n)
FRENCH = {
    GameStatus.WAITING: "Le nœud {node} n'a pas encore le jeu à jour : attendez quelques "
                        "secondes, sinon redémarrez-le (page technicien)",
    GameStatus.PENDING: "Le nœud {node} croit une partie en cours et garde le nouveau jeu pour "
                        "sa fin : arrêtez la partie ou redémarrez le nœud",
    GameStatus.REFUSED: "Le nœud {node} a refusé le nouveau jeu ({reason}) : corrigez le fichier "
                        "de jeu ou mettez à jour le logiciel du nœud (page technicien)",
    GameStatus.UNKNOWN: "Le nœud {node} ne dit pas quel jeu il a : mettez à jour son logiciel "
                        "(page technicien)",
}


@dataclass(frozen=True, slots=True)
class NodeGameCheck:
    """A node that does not run the part it was sent, and what to do, for the check."""

    node: str
    label: str
    status: GameStatus
    text: str
    vars: dict[str, str]


def whole_hash(game: Game) -> str:
    """The hash of the whole game file's content (shown; every node's part has its own)."""
    return contract.content_hash(game.model_dump(mode="json"))


def messages_for(game: Game, *, source: str | None = None) -> dict[str, NodeGame]:
    """The message of each node's part; raise :class:`PartTooLarge` if one does not fit."""
    digest = whole_hash(game)
    out: dict[str, NodeGame] = {}
    for node in game.nodes:
        part = game.part(node.id)
        message = NodeGame(hash=part.content_hash(), part=part.as_data(), game=digest,
                           source=source, ts=contract.now())
        size = len(message.to_bytes())
        if size > MAX_PAYLOAD_BYTES * 0.9:   # room for the envelope's fields that change
            msg = (f"the part of node {node.id!r} is {size} bytes: over what one MQTT message "
                   f"may carry ({MAX_PAYLOAD_BYTES} bytes); split the room or shorten its texts")
            raise PartTooLarge(msg)
        out[node.id] = message
    return out


class Distribution:
    """The parts of the game, published and compared with what each node runs."""

    def __init__(self, ctx: Context, bridge: MqttBridge, *, source: str | None = None) -> None:
        self.ctx = ctx
        self.bridge = bridge
        self.source = source
        self.messages: dict[str, NodeGame] = {}
        self.game_hash = ""
        self._prepare(ctx.game)

    def _prepare(self, game: Game) -> None:
        try:
            self.messages = messages_for(game, source=self.source)
        except PartTooLarge:
            # NOTE: a reload refuses such a file first; at start the controller runs all the
            # same and the nodes keep the part they have (the check then says they differ).
            log.exception("the game parts cannot be sent to the nodes")
            self.messages = {}
        self.game_hash = whole_hash(game)

    def publish(self) -> None:
        """Every node's part, retained (at each connection to the broker)."""
        for node, message in self.messages.items():
            self.bridge.publish(self.bridge.topics.node_game(node), message.to_bytes(), retain=True)
        self.bridge.metrics["game_parts_published"] += len(self.messages)

    def game_replaced(self, old: Game) -> list[str]:
        """The game is now ``ctx.game``: publish the parts that changed, delete those of
        nodes that are gone; return the nodes whose part changed."""
        before = {node: message.hash for node, message in self.messages.items()}
        self._prepare(self.ctx.game)
        changed = sorted(node for node, message in self.messages.items()
                         if before.get(node) != message.hash)
        for node in changed:
            self.bridge.publish(self.bridge.topics.node_game(node),
                                self.messages[node].to_bytes(), retain=True)
        for node in sorted({n.id for n in old.nodes} - set(self.messages)):
            self.bridge.publish(self.bridge.topics.node_game(node), b"", retain=True)
        self.bridge.metrics["game_parts_published"] += len(changed)
        return changed

    # -- what the nodes run -----------------------------------------------------------------
    def status(self, info: NodeInfo) -> GameStatus:
        """Where *info*'s node stands against the part it was sent."""
        sent = self.messages.get(info.id)
        if not info.online:
            return GameStatus.OFFLINE
        if info.game is None:
            return GameStatus.UNKNOWN
        if sent is None or info.game == sent.hash:
            return GameStatus.SAME
        if info.game_refused is not None and info.game_refused.hash == sent.hash:
            return GameStatus.REFUSED
        if info.game_pending == sent.hash:
            return GameStatus.PENDING
        return GameStatus.WAITING

    def view(self, info: NodeInfo) -> dict[str, Any]:
        """The node's game and software, for the technician page (``NodeGameView``)."""
        sent = self.messages.get(info.id)
        refused = info.game_refused
        return {"expected": sent.hash if sent else None, "running": info.game,
                "pending": info.game_pending, "status": str(self.status(info)),
                "refused": refused.model_dump() if refused is not None else None,
                "software_differs": info.version is not None and info.version != software_version()}

    def summary(self) -> dict[str, Any]:
        """The game file the controller holds (``GameFileView``)."""
        return {"hash": self.game_hash, "source": self.source, "software": software_version()}

    def checks(self) -> list[NodeGameCheck]:
        """Every online node that does not run its part, with what to do (French)."""
        out = []
        for info in self.ctx.registry.nodes.values():
            status = self.status(info)
            if status in (GameStatus.SAME, GameStatus.OFFLINE):
                continue
            refused = info.game_refused
            values = {"node": info.label or info.id,
                      "reason": refused.reason if refused is not None else ""}
            out.append(NodeGameCheck(info.id, info.label, status, FRENCH[status].format(**values), values))
        return out
