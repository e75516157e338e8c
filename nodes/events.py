"""A node's events on their way to the controller: numbered, kept, delivered, forgotten.

* ``seq`` is 1 for a boot's first event and grows by one per event; events go on the
  wire in seq order (an event is published at once only behind an empty backlog);
* every event waits in the on-disk outbox (``nodes/outbox.py``) until the controller's
  status acknowledges it, so an event that vanished with a broker restart or a dying
  controller is sent again rather than lost;
* it is published at once only while the link says a live controller listens
  (``nodes/link.py``); otherwise it waits, and the backlog goes out in order, marked
  ``replayed``, once one does; after any doubt everything unacknowledged goes again;
* events an earlier run of the agent left in the outbox are re-stamped into this boot's
  sequence (the controller dedups per boot) and marked replayed; those the old boot's
  acknowledgement covers are dropped.

Pure apart from the outbox's file; not thread-safe (the core's lock covers it).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from nodes.link import ControllerLink
from nodes.outbox import Outbox
from protocol import contract
from protocol.contract import EventAck, PropEvent, Topics

log = logging.getLogger(__name__)

#: an event an earlier run of the agent left in the outbox: (prop, event, its origin)
Leftover = tuple[str, PropEvent, tuple[str, int] | None]
#: ``publish(topic, payload) -> taken``: the core's port
Publish = Callable[[str, bytes], bool]


class EventStream:
    """The events of one boot of one node."""

    def __init__(self, *, node_id: str, boot_id: str, topics: Topics, outbox: Outbox,
                 link: ControllerLink, publish: Publish, metrics: Counter[str]) -> None:
        self.node_id, self.boot_id, self.topics = node_id, boot_id, topics
        self.outbox, self.link, self.metrics = outbox, link, metrics
        self._publish = publish
        #: the seq of this boot's last event (0: none yet)
        self.seq = 0
        self._previous_boots: set[str] = set()

    def restore(self, leftovers: list[Leftover]) -> None:
        """Queue what an earlier run could not deliver, re-stamped as events of this boot."""
        for prop, event, _older_origin in leftovers:
            self.seq += 1
            self._previous_boots.add(event.boot_id)   # the boot a controller may have acked
            self.outbox.append(prop, event.model_copy(update={
                "boot_id": self.boot_id, "seq": self.seq, "replayed": True}),
                sent=False, origin=(event.boot_id, event.seq))
        if leftovers:
            self.metrics["leftover_events"] += len(leftovers)
            log.warning("node %s: %d events left by an earlier run will be delivered",
                        self.node_id, len(leftovers))

    def emit(self, prop: str, event_type: str, value: Any, *, session: str | None,
             now: float) -> int:
        """Number, keep and (if the controller listens) publish one event; return its seq."""
        self.seq += 1
        event = PropEvent(boot_id=self.boot_id, seq=self.seq, type=event_type, value=value,
                          ts=contract.now(), session=session)
        box = self.outbox
        sent = False
        if self.link.deliverable(now=now) and not box.has_unsent():
            # NOTE: on the wire first, then in the file.
            sent = self._publish(self.topics.prop_event(self.node_id, prop), event.to_bytes())
        if not sent:
            self.metrics["queued_events"] += 1
        if not sent or self.link.acks_supported:
            box.append(prop, event, sent=sent)   # until the controller acknowledges it
        self.metrics["events"] += 1
        return self.seq

    def flush(self, now: float) -> None:
        """Publish the backlog in order, marked replayed (everything again after a doubt)."""
        box = self.outbox
        if not self.link.deliverable(now=now):
            return
        if self.link.resend_due:
            box.mark_all_unsent()
            self.link.resend_due = False
        for entry in box.unsent():
            event = entry.event if entry.event.replayed else entry.event.model_copy(
                update={"replayed": True})
            if not self._publish(self.topics.prop_event(self.node_id, entry.prop), event.to_bytes()):
                break   # not taken: the rest goes at the next status
            entry.sent = True
            self.metrics["replayed_events"] += 1
        if not self.link.acks_supported:
            box.discard(lambda e: e.sent)

    def acknowledged(self, ack: EventAck | None) -> int | None:
        """The controller handled events up to ``ack.seq``: forget them. Return the seq of
        this boot acknowledged (holds up to it may be lifted), or None."""
        if ack is None:
            return None
        if ack.boot_id == self.boot_id:
            self.outbox.ack(boot_id=ack.boot_id, seq=ack.seq)
            return ack.seq
        if ack.boot_id in self._previous_boots:
            # Leftovers of an earlier run that its controller had handled after all.
            self._previous_boots.discard(ack.boot_id)
            pruned = self.outbox.discard(lambda e: e.origin is not None and not e.sent
                                         and e.origin[0] == ack.boot_id and e.origin[1] <= ack.seq)
            self.metrics["leftover_events_already_handled"] += pruned
        return None
