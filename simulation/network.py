"""The network between the clients and the broker: per-connection links, delays, faults.

Each TCP connection is two :class:`Link` objects (client→broker, broker→client). A link
is a FIFO, like the TCP stream it stands for: every packet gets a delay drawn by the
scheduler, but none overtakes an earlier one on the same link. What may arrive "out of
order" is therefore only what MQTT allows: packets of different connections (two
publishers, or a client's old and new connection) relative to each other.

Faults, all chosen by the caller (the fault model draws them from the seed):

- a :class:`LinkProfile` per machine: latency range, occasional late packets (still in
  order on their link), and a QoS 0 loss rate (at most once: MQTT allows it; a healthy
  TCP link does not lose, so it defaults to 0);
- :meth:`Network.partition`: the machine's links hold everything (TCP retransmits
  silently); :meth:`Network.heal` delivers the backlog in order. Neither end notices a
  partition except through its keepalive;
- :meth:`Network.cut`: the machine's connections are reset: what is in flight is lost and
  both ends see the connection close.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from simulation.packets import Closed, Connect, Packet, Publish
from simulation.scheduler import Machine, Scheduler, Timer


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """How one machine's links behave (both directions)."""

    latency: tuple[float, float] = (0.0002, 0.002)
    late_probability: float = 0.0
    late_delay: tuple[float, float] = (0.05, 0.5)
    qos0_loss: float = 0.0

    def __post_init__(self) -> None:
        for name, (low, high) in (("latency", self.latency), ("late_delay", self.late_delay)):
            if not 0 <= low <= high:
                msg = f"{name} must be a range 0 <= low <= high, not {(low, high)}"
                raise ValueError(msg)
        for name in ("late_probability", "qos0_loss"):
            if not 0 <= getattr(self, name) <= 1:
                msg = f"{name} must be a probability, not {getattr(self, name)}"
                raise ValueError(msg)


class Endpoint(Protocol):
    """One end of a connection: what it receives, in order."""

    def receive(self, packet: Packet) -> None: ...


class Link:
    """One direction of a TCP connection: in order, delayed, possibly held or dead."""

    __slots__ = ("_last_ready", "_queue", "_timer", "dead", "endpoint", "held", "name", "network",
                 "profile_of")

    def __init__(self, network: Network, name: str, profile_of: str) -> None:
        self.network = network
        self.name = name
        self.profile_of = profile_of
        self.endpoint: Endpoint | None = None
        self.held = False
        self.dead = False
        self._queue: deque[tuple[float, Packet]] = deque()
        self._timer: Timer | None = None
        self._last_ready = 0.0

    def send(self, packet: Packet) -> None:
        if self.dead:
            return
        net = self.network
        profile = net.profile(self.profile_of)
        rnd = net.scheduler.random
        if (profile.qos0_loss and isinstance(packet, Publish) and packet.qos == 0
                and rnd.random() < profile.qos0_loss):
            net.scheduler.log(self.name, f"lost {packet}")
            return
        delay = rnd.uniform(*profile.latency)
        if profile.late_probability and rnd.random() < profile.late_probability:
            delay += rnd.uniform(*profile.late_delay)
        ready = max(net.scheduler.now + delay, self._last_ready)
        self._last_ready = ready
        self._queue.append((ready, packet))
        if self._timer is None and not self.held:
            self._timer = net.scheduler.call_at(ready, self._deliver)

    def pending(self) -> int:
        return len(self._queue)

    def _deliver(self) -> None:
        self._timer = None
        _, packet = self._queue.popleft()
        scheduler = self.network.scheduler
        if scheduler.trace is not None:
            scheduler.log(self.name, str(packet))
        if self.endpoint is not None:
            self.endpoint.receive(packet)
        if self._queue and not self.held and not self.dead and self._timer is None:
            self._timer = scheduler.call_at(self._queue[0][0], self._deliver)

    def hold(self) -> None:
        self.held = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def release(self) -> None:
        self.held = False
        if self._queue and not self.dead and self._timer is None:
            self._timer = self.network.scheduler.call_at(self._queue[0][0], self._deliver)

    def kill(self) -> None:
        """The stream is gone: nothing queued arrives, nothing more is sent."""
        self.dead = True
        self._queue.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Connection:
    """A client's TCP connection to the broker: two links and their two ends."""

    def __init__(self, network: Network, machine: str, number: int, client: Endpoint) -> None:
        self.network = network
        self.machine = machine
        self.name = f"{machine}#{number}"
        self.up = Link(network, f"{self.name}>broker", machine)
        self.down = Link(network, f"broker>{self.name}", machine)
        self.down.endpoint = client
        self.up.endpoint = _Accept(self)
        self.client = client
        #: the broker's end, once the first packet reached it (else the broker never knew)
        self.accepted = False
        self.closed = False

    def close_by_client(self) -> None:
        """The client closes (or its process dies): what it sent still arrives, then the
        close; nothing more reaches it. Before the broker saw anything, nothing does."""
        if self.closed:
            return
        self.closed = True
        self.down.kill()
        if not self.accepted:
            self.up.kill()
            return
        self.up.send(Closed("client closed"))

    def close_by_broker(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.up.kill()
        self.down.send(Closed(reason))

    def reset(self, reason: str, *, refused: bool = False) -> None:
        """RST: everything in flight is lost; each end learns of it after a link delay (an
        end that already closed ignores it)."""
        self.closed = True
        self.up.kill()
        self.down.kill()
        scheduler = self.network.scheduler
        latency = self.network.profile(self.machine).latency
        scheduler.call_later(scheduler.random.uniform(*latency), self.client.receive,
                             Closed(reason, refused=refused))
        if self.accepted and self.up.endpoint is not None:
            scheduler.call_later(scheduler.random.uniform(*latency), self.up.endpoint.receive,
                                 Closed(reason))
        scheduler.log(self.name, f"reset ({reason})")


class _Accept:
    """The broker's listening socket, until the connection's first packet arrives."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def receive(self, packet: Packet) -> None:
        conn = self.connection
        accept = conn.network.accept
        endpoint = accept(conn) if accept is not None and isinstance(packet, Connect) else None
        if endpoint is None:
            if not isinstance(packet, Closed):
                conn.reset("connection refused", refused=True)
            return
        conn.accepted = True
        conn.up.endpoint = endpoint
        endpoint.receive(packet)


class Network:
    """Every connection of a simulation, the faults on them, and the broker's listener."""

    def __init__(self, scheduler: Scheduler, *, profile: LinkProfile | None = None) -> None:
        self.scheduler = scheduler
        self.default_profile = profile or LinkProfile()
        self._profiles: dict[str, LinkProfile] = {}
        #: partitioned machines: (holding what they send, holding what they receive)
        self._partitioned: dict[str, tuple[bool, bool]] = {}
        self.connections: dict[str, list[Connection]] = {}
        self._numbers: dict[str, int] = {}
        #: set by the broker while it listens: returns its end of a new connection
        self.accept: Callable[[Connection], Endpoint | None] | None = None

    def profile(self, machine: str) -> LinkProfile:
        return self._profiles.get(machine, self.default_profile)

    def set_profile(self, machine: str, profile: LinkProfile | None) -> None:
        """Give *machine*'s links their own behaviour (None: back to the default)."""
        if profile is None:
            self._profiles.pop(machine, None)
        else:
            self._profiles[machine] = profile

    def open(self, machine: Machine | str, client: Endpoint) -> Connection:
        """A new connection from *machine*; a refused one is reset after a link delay."""
        name = machine if isinstance(machine, str) else machine.name
        number = self._numbers.get(name, 0) + 1
        self._numbers[name] = number
        conn = Connection(self, name, number, client)
        live = [c for c in self.connections.get(name, []) if not c.closed]
        self.connections[name] = [*live, conn]
        up, down = self._partitioned.get(name, (False, False))
        if up:
            conn.up.hold()
        if down:
            conn.down.hold()
        return conn

    # -- faults -------------------------------------------------------------------------
    def partition(self, machine: str, *, outgoing: bool = True, incoming: bool = True) -> None:
        """Hold everything *machine* sends and receives (or one direction only) until
        :meth:`heal`; nobody is told."""
        self._partitioned[machine] = (outgoing, incoming)
        for conn in self.connections.get(machine, []):
            if outgoing:
                conn.up.hold()
            if incoming:
                conn.down.hold()
        way = "both ways" if outgoing and incoming else "outgoing" if outgoing else "incoming"
        self.scheduler.log(machine, f"partitioned ({way})")

    def heal(self, machine: str) -> None:
        """End *machine*'s partition: the held packets are delivered, in order."""
        self._partitioned.pop(machine, None)
        for conn in self.connections.get(machine, []):
            conn.up.release()
            conn.down.release()
        self.scheduler.log(machine, "partition healed")

    def partitioned(self, machine: str) -> bool:
        return machine in self._partitioned

    def cut(self, machine: str, reason: str = "connection cut") -> None:
        """Reset every open connection of *machine* (in-flight packets are lost)."""
        for conn in self.connections.get(machine, []):
            if not conn.closed:
                conn.reset(reason)
