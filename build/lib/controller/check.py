"""The pre-game check: is every prop of the apartment in its start state?

Before a session's briefing, the service sends every prop its start command (locks engaged,
outputs at rest, keypads cleared, readers emptied) and this module reads what the nodes
report back, prop by prop, against its kind's start state (:mod:`props.start`: buttons
released, windows and doors closed, no tag on a reader, bins empty…):

=================  ============================  ==============================================
status             label (console)               meaning
=================  ============================  ==============================================
``ready``          prêt                          in its start state
``reset_sent``     remise à zéro envoyée         a reset/lock was sent, not confirmed yet
``needs_reset``    à remettre à zéro             not in its start state; nothing pending
``waiting_node``   en attente du nœud            its node is offline, or has not reported it
``manual_reset``   remise en place manuelle      a human must act: close a window, release a
                                                 button, take a tag off a reader
=================  ============================  ==============================================

Each prop not ready carries an :class:`~props.start.Instruction` for the game master
(« Fermez : Fenêtre de la salle de bain »). Only ``ready`` counts as ready; a game starts
when every prop is, or when the game master overrides with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from props.models import PropConfig
from props.start import Instruction, Remedy, off_start, one_shot, start_command


class CheckStatus(StrEnum):
    READY = "ready"
    RESET_SENT = "reset_sent"
    NEEDS_RESET = "needs_reset"
    WAITING_NODE = "waiting_node"
    MANUAL_RESET = "manual_reset"


CHECK_LABELS: dict[CheckStatus, str] = {
    CheckStatus.READY: "prêt",
    CheckStatus.RESET_SENT: "remise à zéro envoyée",
    CheckStatus.NEEDS_RESET: "à remettre à zéro",
    CheckStatus.WAITING_NODE: "en attente du nœud",
    CheckStatus.MANUAL_RESET: "remise en place manuelle nécessaire",
}

#: the instructions of a prop whose node says nothing (French; ``check_fix_<key>`` in i18n)
NODE_FRENCH = {
    "node_offline": "Nœud hors ligne, vérifiez son alimentation et son réseau : {node}",
    "no_state": "Aucun état reçu de : {label}",
}


@dataclass(frozen=True, slots=True)
class PropCheck:
    """The check of one prop."""

    node: str
    prop: str
    kind: str
    label: str
    status: CheckStatus
    instruction: Instruction | None = None

    @property
    def ref(self) -> str:
        return f"{self.node}.{self.prop}"

    @property
    def detail(self) -> str:
        """What to do, in French ("" when ready)."""
        return self.instruction.text if self.instruction else ""

    def summary(self) -> str:
        """One line for the game master: the instruction if a human must act, else the prop
        and its status (« Ventouse du coffre (remise à zéro envoyée) »)."""
        if self.status == CheckStatus.MANUAL_RESET and self.instruction:
            return self.instruction.text
        return f"{self.label} ({CHECK_LABELS[self.status]})"

    def public(self) -> dict[str, Any]:
        return {"node": self.node, "prop": self.prop, "kind": self.kind, "label": self.label,
                "status": str(self.status), "status_label": CHECK_LABELS[self.status],
                "detail": self.detail,
                "instruction": self.instruction.public() if self.instruction else None}


# one return per status, read top to bottom
def assess(node: str, config: PropConfig, *, online: bool, reported: dict[str, Any],  # noqa: PLR0911
           ack: str | None, desired_action: str | None, reset_id: str | None,
           node_label: str = "") -> PropCheck:
    """Where one prop stands against its start state.

    *desired_action* is what the controller wants of an output now; *reset_id* the id of
    the ``reset`` command sent to a keypad or reader during this check (if any).
    """
    label = config.label or config.id

    def result(status: CheckStatus, what: Instruction | None = None) -> PropCheck:
        return PropCheck(node, config.id, config.kind, label, status, what)

    def waiting(key: str) -> PropCheck:
        values = {"node": node_label or node, "label": label}
        return result(CheckStatus.WAITING_NODE,
                      Instruction(key, NODE_FRENCH[key].format(**values), values))

    if not online:
        return waiting("node_offline")
    if not reported:
        return waiting("no_state")
    off = off_start(config, reported)
    if off is None:
        return result(CheckStatus.READY)
    if off.remedy == Remedy.HAND:
        return result(CheckStatus.MANUAL_RESET, off.instruction)
    if not one_shot(config):
        sent = desired_action == start_command(config)
        return result(CheckStatus.RESET_SENT if sent else CheckStatus.NEEDS_RESET, off.instruction)
    if reset_id is not None and ack != reset_id:
        return result(CheckStatus.RESET_SENT, off.instruction)
    if reset_id is not None and off.remedy == Remedy.COMMAND_THEN_HAND:
        return result(CheckStatus.MANUAL_RESET, off.instruction)
    return result(CheckStatus.NEEDS_RESET, off.instruction)
