"""What a node knows of its controller, and whether an event may go on the wire now.

The link is a declared state machine (:data:`LINK_TRANSITIONS`, run by the
``transitions`` library, as the engine declares its phases)::

    offline ──connect──▶ subscribing ──subscribed──▶ alone (no controller ever heard)
                              │                  └─▶ waiting (a controller is known)
                              └──heard──▶ live ◀──heard── waiting, alone, silent
    live ──overdue──▶ silent     live, silent, alone ──lost──▶ waiting     any ──disconnect──▶ offline

* ``subscribing``: connected, and the broker's retained messages are still coming (until
  our birth comes back to us: the broker sends what was retained before it);
* ``alone``: nobody to wait for (no controller status ever seen: tools, benches);
* ``waiting``: a controller is known but has not spoken *live* on this connection (a
  retained status proves nothing: after a broker restart it may say "online" for a
  controller that has not reconnected), or it said it is offline;
* ``live``: a live status on this connection: events are published at once;
* ``silent``: it was live and its heartbeats stopped (hung, or cut off before its will
  is out): events wait.

Events go on the wire in ``alone`` and ``live`` only. Every doubt (``lost``, ``overdue``,
a new connection, a new controller boot) means what was not acknowledged may have gone
nowhere: :attr:`ControllerLink.resend_due` asks for everything unacknowledged again.
Time is an input (monotonic seconds): no clock is read here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from transitions import Machine

#: heartbeats missed before the node stops trusting the controller to be listening
HEARTBEATS_MISSED = 3


class LinkState(StrEnum):
    OFFLINE = "offline"
    SUBSCRIBING = "subscribing"
    ALONE = "alone"
    WAITING = "waiting"
    LIVE = "live"
    SILENT = "silent"


_S = LinkState
_CONNECTED = [_S.SUBSCRIBING, _S.ALONE, _S.WAITING, _S.LIVE, _S.SILENT]

#: the link's life: which trigger moves it from which states to which (``dest: None``:
#: nothing moves; the first row whose conditions hold is taken)
LINK_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "connect", "source": "*", "dest": _S.SUBSCRIBING, "after": "_new_connection"},
    {"trigger": "disconnect", "source": "*", "dest": _S.OFFLINE},
    {"trigger": "subscribed", "source": _S.SUBSCRIBING, "dest": _S.WAITING, "conditions": "seen"},
    {"trigger": "subscribed", "source": _S.SUBSCRIBING, "dest": _S.ALONE},
    {"trigger": "subscribed", "source": [_S.OFFLINE, _S.ALONE, _S.WAITING, _S.LIVE, _S.SILENT],
     "dest": None},
    # a status that proves nobody listens (retained, or received after we lost the broker)
    {"trigger": "known", "source": _S.ALONE, "dest": _S.WAITING, "before": "_saw"},
    {"trigger": "known", "source": [_S.OFFLINE, _S.SUBSCRIBING, _S.WAITING, _S.LIVE, _S.SILENT],
     "dest": None, "before": "_saw"},
    {"trigger": "heard", "source": _CONNECTED, "dest": _S.LIVE, "before": "_saw"},
    {"trigger": "heard", "source": _S.OFFLINE, "dest": None, "before": "_saw"},
    {"trigger": "lost", "source": [_S.ALONE, _S.LIVE, _S.SILENT], "dest": _S.WAITING,
     "before": "_saw", "after": "_doubt"},
    {"trigger": "lost", "source": [_S.OFFLINE, _S.SUBSCRIBING, _S.WAITING], "dest": None,
     "before": "_saw", "after": "_doubt"},
    {"trigger": "overdue", "source": _S.LIVE, "dest": _S.SILENT, "after": "_doubt"},
]


class ControllerLink:
    """The node's view of the controller: the link's state and what the statuses said.

    >>> link = ControllerLink(started_at=0.0)
    >>> link.trigger("connect"); link.trigger("subscribed"); link.deliverable(now=1.0)
    True
    """

    state: LinkState

    def __init__(self, *, started_at: float) -> None:
        self.started_at = started_at
        #: any controller status ever seen: else there is nobody to wait for
        self.seen_any = False
        self.boot_id: str | None = None
        self.heartbeat: float | None = None
        self.acks_supported = False
        self.online = False
        #: monotonic time of the last *live* status
        self.last_heard: float | None = None
        #: send every unacknowledged event again at the next flush
        self.resend_due = False
        #: which connection this is (1 = the first) and the one everything was last resent on
        self.epoch = 0
        self.confirmed_epoch = 0
        self.machine = Machine(model=self, states=LinkState, transitions=LINK_TRANSITIONS,
                               initial=LinkState.OFFLINE, auto_transitions=False)

    # -- the machine's callbacks and conditions --------------------------------------
    def seen(self) -> bool:
        return self.seen_any

    def _saw(self) -> None:
        self.seen_any = True

    def _doubt(self) -> None:
        self.resend_due = True

    def _new_connection(self) -> None:
        self.epoch += 1

    # -- questions --------------------------------------------------------------------
    def hear(self, now: float) -> None:
        """A live status on this connection: the controller listens."""
        self.last_heard = now
        if self.state is not LinkState.OFFLINE and self.confirmed_epoch != self.epoch:
            # A new connection: nothing unacknowledged is known to have arrived.
            self.confirmed_epoch = self.epoch
            self.resend_due = True
        self.trigger("heard")

    def deliverable(self, *, now: float) -> bool:
        """May an event go on the wire now? (A live controller's heartbeats overdue: no.)"""
        if self.state is LinkState.LIVE and self.heartbeat is not None and self.last_heard is not None \
                and now - self.last_heard > max(HEARTBEATS_MISSED * self.heartbeat, self.heartbeat + 1.0):
            self.trigger("overdue")
        return self.state in (LinkState.ALONE, LinkState.LIVE)

    def silent_for(self, now: float) -> float:
        """Seconds since the controller was last heard live (since the start if never)."""
        heard = self.last_heard if self.last_heard is not None else self.started_at
        return now - heard
