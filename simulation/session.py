"""What the broker keeps per client id, and how a message reaches that client.

:meth:`Session.enqueue` is Mosquitto 2.0's ``db__message_insert``: a message for a
connected client goes out at once if its in-flight window allows (QoS 1) or always
(QoS 0: it is never queued behind QoS 1, so it may overtake queued QoS 1 messages); a
QoS 1 message beyond the window waits in the queue until a PUBACK frees a place; for an
offline persistent session, QoS 1 messages queue (QoS 0 ones are dropped unless
``queue_qos0_messages``), up to ``max_queued_messages``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simulation.packets import Publish

if TYPE_CHECKING:
    from simulation.broker import BrokerConfig, BrokerConn


@dataclass(slots=True)
class Session:
    """A client id's subscriptions and undelivered QoS 1 messages."""

    client_id: str
    clean: bool
    subs: dict[str, int] = field(default_factory=dict)
    #: sent, not yet acknowledged (resent with DUP on reconnection), by message id
    inflight: dict[int, Publish] = field(default_factory=dict)
    #: not sent yet: the client is offline or its in-flight window is full
    queued: deque[Publish] = field(default_factory=deque)
    last_mid: int = 0
    conn: BrokerConn | None = None

    def next_mid(self) -> int:
        self.last_mid = self.last_mid % 65_535 + 1
        return self.last_mid

    def enqueue(self, message: Publish, cfg: BrokerConfig, pending: Callable[[], int]) -> bool:
        """Send, queue or drop *message* (a copy of its own); False when dropped for lack of
        room. *pending* counts the packets still on their way to the client."""
        if self.conn is None:
            return self._keep(message, cfg)
        if message.qos == 0:
            if cfg.max_queued_messages and pending() >= cfg.max_queued_messages:
                return False
            self.conn.send(message)
            return True
        message.mid = self.next_mid()
        if not cfg.max_inflight_messages or len(self.inflight) < cfg.max_inflight_messages:
            self.inflight[message.mid] = message
            self.transmit(message)
            return True
        if cfg.max_queued_messages and len(self.queued) >= cfg.max_queued_messages:
            return False
        self.queued.append(message)
        return True

    def _keep(self, message: Publish, cfg: BrokerConfig) -> bool:
        """For an offline client: QoS 1 queues; QoS 0 is not kept (not an overflow)."""
        if message.qos == 0 and not cfg.queue_qos0_messages:
            return True
        if cfg.max_queued_messages and len(self.inflight) + len(self.queued) >= cfg.max_queued_messages:
            return False
        message.mid = self.next_mid() if message.qos else 0
        self.queued.append(message)
        return True

    def transmit(self, message: Publish) -> None:
        if self.conn is not None:
            self.conn.send(message.copy())
            message.dup = True  # any later send of it is a redelivery

    def resume(self, cfg: BrokerConfig) -> None:
        """On reconnection: resend what was in flight (with DUP), then what queued."""
        for message in self.inflight.values():
            self.transmit(message)
        self.flush(cfg)

    def acknowledge(self, mid: int, cfg: BrokerConfig) -> None:
        if self.inflight.pop(mid, None) is not None:
            self.flush(cfg)

    def flush(self, cfg: BrokerConfig) -> None:
        """Send queued messages while the in-flight window has room."""
        limit = cfg.max_inflight_messages
        while self.conn is not None and self.queued and (not limit or len(self.inflight) < limit):
            message = self.queued.popleft()
            if message.qos:
                self.inflight[message.mid] = message
                self.transmit(message)
            else:
                self.conn.send(message)

    def saved(self) -> Session:
        """A copy for the persistence file (offline, messages copied)."""
        return Session(self.client_id, False, dict(self.subs),
                       {mid: m.copy() for mid, m in self.inflight.items()},
                       deque(m.copy() for m in self.queued), self.last_mid)
