"""The emergency alert: a first-class message, not an ordinary command.

Raising it (:meth:`controller.service.GameService.emergency`) publishes a retained
:class:`~protocol.contract.Emergency` before anything else: every node releases its locks
on it, and a node that (re)connects while it is active releases at once. While the alert
lasts nothing locks a maglock: the game master's orders that would are refused
(:meth:`Alert.refuse_locking`), and a lock the game itself would send is withheld
(:meth:`controller.outputs.Outputs.command`). Ending it never relocks anything. The last
message is kept in the store: a restarted controller knows an alert is still on.
"""

from __future__ import annotations

import logging

from controller.core.errors import EngineError
from controller.journal import Journal
from controller.mqtt import MqttBridge
from controller.store import Store
from protocol import contract
from protocol.contract import ContractError, Emergency

log = logging.getLogger(__name__)

#: store meta key of the last emergency message (``contract.Emergency`` as JSON)
EMERGENCY_META = "emergency"


class EmergencyActive(EngineError):
    """An order that would lock something, given while the emergency alert is active."""


class Alert:
    """The emergency alert's state, as published (retained) and stored."""

    def __init__(self, bridge: MqttBridge, journal: Journal) -> None:
        self.bridge = bridge
        self.journal = journal
        #: the last emergency message (active or ended); None: there never was one
        self.state: Emergency | None = None

    @property
    def active(self) -> bool:
        return self.state is not None and self.state.active

    def load(self, store: Store) -> None:
        """The alert as the last controller left it."""
        raw = store.get_meta(EMERGENCY_META)
        if not raw:
            return
        try:
            self.state = contract.decode(raw.encode(), Emergency)
        except ContractError:
            log.exception("the stored emergency state is unreadable: ignored")

    def raise_(self, *, who: str) -> None:
        """On: published first (every node releases on it, before anything queued), then stored."""
        log.warning("EMERGENCY RELEASE by %s", who)
        self.state = Emergency(active=True, id=contract.new_id(), who=who, ts=contract.now())
        self.publish()

    def end(self, *, who: str) -> None:
        """« Fin de l'alerte »: published and stored; nothing is locked again."""
        # NOTE: said again even with no alert known here: a node keeps an alert on its disk
        # (the controller's store may have lost it), and only this message lifts it.
        state = self.state
        self.state = Emergency(active=False, id=state.id if state else contract.new_id(),
                               who=who, ts=contract.now())
        self.publish()
        self.store()
        log.warning("emergency alert ended by %s", who)

    def publish(self) -> None:
        """The retained message (again after a broker restart: one without persistence lost it)."""
        if self.state is not None:
            self.bridge.publish(self.bridge.topics.emergency, self.state.to_bytes(), retain=True)

    def store(self) -> None:
        if self.state is not None:
            self.journal.meta(EMERGENCY_META, self.state.to_bytes().decode())

    def refuse_locking(self, what: str, *, en: str) -> None:
        """While the alert lasts, an order that would lock something is refused, clearly."""
        if self.active:
            msg = (f"impossible de {what} : alerte d'urgence en cours, les ventouses restent "
                   "ouvertes. Appuyez d'abord sur « Fin de l'alerte ».")
            raise EmergencyActive(msg, en=f"cannot {en}: the emergency alert is on, the maglocks "
                                          "stay open. Press “End of the alert” first.")

    def view(self) -> dict[str, object] | None:
        """The alert as the console shows it (None: there never was one)."""
        state = self.state
        return None if state is None else {"active": state.active, "id": state.id,
                                           "who": state.who, "ts": state.ts}
