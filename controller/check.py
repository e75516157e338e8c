"""The pre-game check: is every prop of the apartment in its start state?

Before a session's briefing, the service sends every prop its start state (locks engaged,
outputs at rest, keypads cleared, readers emptied) and this module reads what the nodes
report back, prop by prop:

=================  ============================  ==============================================
status             label (console)               meaning
=================  ============================  ==============================================
``ready``          prêt                          in its start state
``reset_sent``     remise à zéro envoyée         a reset/lock was sent, not confirmed yet
``needs_reset``    à remettre à zéro             not in its start state; nothing pending
``waiting_node``   en attente du nœud            its node is offline, or has not reported it
``manual_reset``   remise en place manuelle      a human must act: close a door, take a tag
=================  ============================  ==============================================

Only ``ready`` counts as ready; a game starts when every prop is, or when the game master
overrides with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from props.models import (
    ButtonConfig,
    KeypadConfig,
    MaglockConfig,
    MFRC522Config,
    OutputConfig,
    PropConfig,
    RDM6300Config,
    SortingConfig,
)


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

#: prop kinds brought to their start state by a one-shot ``reset`` command
RESET_BY_COMMAND = (KeypadConfig, MFRC522Config, RDM6300Config, SortingConfig)


@dataclass(frozen=True, slots=True)
class PropCheck:
    """The check of one prop."""

    node: str
    prop: str
    kind: str
    label: str
    status: CheckStatus
    detail: str = ""

    @property
    def ref(self) -> str:
        return f"{self.node}.{self.prop}"

    def public(self) -> dict[str, Any]:
        return {"node": self.node, "prop": self.prop, "kind": self.kind, "label": self.label,
                "status": str(self.status), "status_label": CHECK_LABELS[self.status],
                "detail": self.detail}


def start_action(config: PropConfig) -> str | None:
    """The steady state an output starts in (``lock``, ``on``, ``off``), if it has one."""
    if isinstance(config, MaglockConfig):
        return "lock"
    if isinstance(config, OutputConfig):
        return "on" if config.initial_value else "off"
    return None


# one return per status, read top to bottom
def assess(node: str, config: PropConfig, *, online: bool, reported: dict[str, Any],  # noqa: PLR0911
           ack: str | None, desired_action: str | None, reset_id: str | None) -> PropCheck:
    """Where one prop stands against its start state.

    *desired_action* is what the controller wants of an output now; *reset_id* the id of
    the ``reset`` command sent to a keypad or reader during this check (if any).
    """

    def result(status: CheckStatus, detail: str = "") -> PropCheck:
        return PropCheck(node, config.id, config.kind, config.label or config.id, status, detail)

    if not online:
        return result(CheckStatus.WAITING_NODE, "nœud hors ligne")
    if not reported:
        return result(CheckStatus.WAITING_NODE, "aucun état reçu du nœud")
    if isinstance(config, ButtonConfig):
        return result(CheckStatus.READY)
    if isinstance(config, MaglockConfig | OutputConfig):
        want = start_action(config)
        if isinstance(config, MaglockConfig):
            if reported.get("door") == "open":
                return result(CheckStatus.MANUAL_RESET, "porte ouverte : fermez-la")
            reached = reported.get("engaged") is True
        else:
            reached = reported.get("on") is (want == "on")
        if reached:
            return result(CheckStatus.READY)
        if desired_action == want:
            return result(CheckStatus.RESET_SENT)
        return result(CheckStatus.NEEDS_RESET)
    # keypads and readers: a one-shot reset, acknowledged in the next state
    dirty, manual = _dirty(config, reported)
    if not dirty:
        return result(CheckStatus.READY)
    if reset_id is not None and ack != reset_id:
        return result(CheckStatus.RESET_SENT)
    if reset_id is not None and manual:
        return result(CheckStatus.MANUAL_RESET, manual)
    return result(CheckStatus.NEEDS_RESET, "code à moitié tapé" if isinstance(config, KeypadConfig) else "")


def _dirty(config: PropConfig, reported: dict[str, Any]) -> tuple[bool, str]:
    """Whether a keypad or reader is off its start state, and what a human must do if a
    reset cannot fix it."""
    if isinstance(config, KeypadConfig):
        return bool(reported.get("buffer_length")), ""
    if isinstance(config, MFRC522Config | RDM6300Config):
        tag = reported.get("tag")
        name = reported.get("tag_name") or tag
        return tag is not None, f"badge « {name} » sur le lecteur : retirez-le"
    if isinstance(config, SortingConfig):
        bins = reported.get("bins") or {}
        full = sorted(name for name, uid in bins.items() if uid is not None)
        return bool(full), f"objet dans le(s) bac(s) {', '.join(full)} : retirez-le(s)"
    return False, ""
