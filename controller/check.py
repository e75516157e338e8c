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
``waiting_node``   en attente du nœud            its node is offline or has not reported it,
                                                 or the controller is cut from the broker
``manual_reset``   remise en place manuelle      a human must act: close a window, release a
                                                 button, take a tag off a reader
=================  ============================  ==============================================

Each prop not ready carries an :class:`~props.start.Instruction` for the game master
(« Fermez : Fenêtre de la salle de bain »). Only ``ready`` counts as ready; a game starts
when every prop is, or when the game master overrides with a reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from controller.engine import PropCommand
from props.models import PropConfig
from props.start import Instruction, Remedy, off_start, one_shot, start_command

if TYPE_CHECKING:
    from controller.context import Context
    from controller.distribution import Distribution
    from controller.outputs import Outputs

#: during the check, resend a keypad's or reader's reset after this long
RECHECK_AFTER_S = 2.0


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
    "broker_cut": "Liaison coupée avec les salles : état inconnu de {label}",
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
           node_label: str = "", linked: bool = True) -> PropCheck:
    """Where one prop stands against its start state.

    *desired_action* is what the controller wants of an output now; *reset_id* the id of
    the ``reset`` command sent to a keypad or reader during this check (if any); *linked*:
    the controller is connected to the broker (cut off, what it holds of the props dates
    from before the outage: nothing is ready).
    """
    label = config.label or config.id

    def result(status: CheckStatus, what: Instruction | None = None) -> PropCheck:
        return PropCheck(node, config.id, config.kind, label, status, what)

    def waiting(key: str) -> PropCheck:
        values = {"node": node_label or node, "label": label}
        return result(CheckStatus.WAITING_NODE,
                      Instruction(key, NODE_FRENCH[key].format(**values), values))

    if not linked:
        return waiting("broker_cut")
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


class PreGameCheck:
    """The check of the whole apartment, from what the nodes report and what was sent."""

    def __init__(self, ctx: Context, outputs: Outputs, distribution: Distribution | None = None) -> None:
        self.ctx = ctx
        self.outputs = outputs
        self.distribution = distribution

    def report(self) -> dict[str, Any]:
        """Where every prop stands against its start state."""
        registry, desired, resets = self.ctx.registry, self.outputs.desired, self.outputs.resets
        bridge = self.outputs.bridge
        checks: list[PropCheck] = []
        for (node, prop), cfg in self.ctx.configs.items():
            info = registry.props[(node, prop)]
            want = desired.get((node, prop))
            reset = resets.get((node, prop))
            # What a node reported before this connection (retained states read after a
            # restart) may be stale: nothing is ready until its boot has spoken since.
            spoke = registry.nodes[node].spoke_at
            heard = spoke is not None and spoke >= bridge.connected_at
            checks.append(assess(node, cfg, online=registry.nodes[node].online,
                                 reported=info.reported if heard else {}, ack=info.ack,
                                 desired_action=want.action if want else None,
                                 reset_id=reset[0] if reset else None,
                                 node_label=registry.nodes[node].label,
                                 linked=bridge.connected))
        counts = Counter(str(c.status) for c in checks)
        # a node that does not run its part of the game file: it may play other answers
        nodes = self.distribution.checks() if self.distribution is not None else []
        not_ready = [n.text for n in nodes] + [c.summary() for c in checks if c.status != CheckStatus.READY]
        return {"ready": not not_ready, "counts": {str(s): counts.get(str(s), 0) for s in CheckStatus},
                "not_ready": not_ready, "props": [c.public() for c in checks],
                "nodes": [{"node": n.node, "label": n.label, "status": str(n.status),
                           "instruction": Instruction(f"game_{n.status}", n.text, n.vars).public()}
                          for n in nodes]}

    def not_ready(self) -> list[str]:
        return self.report()["not_ready"]

    def resend_start_state(self, *, only_not_ready: bool) -> None:
        """Every prop's start command again (only to those not ready yet)."""
        status = {(p["node"], p["prop"]): p["status"] for p in self.report()["props"]}
        self.outputs.execute(command for command in self.ctx.engine.start_state()
                             if not (only_not_ready
                                     and status[(command.node, command.prop)] == CheckStatus.READY))

    def tick(self) -> bool:
        """A keypad or reader that drifted off its start state (a key pressed after its
        reset) gets another reset; True when one was sent."""
        now = self.ctx.clock()
        sent_any = False
        for prop in self.report()["props"]:
            key = (prop["node"], prop["prop"])
            if prop["status"] != CheckStatus.NEEDS_RESET or not one_shot(self.ctx.configs[key]):
                continue
            sent = self.outputs.resets.get(key)
            if sent is None or now - sent[1] >= RECHECK_AFTER_S:
                self.outputs.execute([PropCommand(key[0], key[1], "reset")])
                sent_any = True
        return sent_any
