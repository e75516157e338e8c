"""The MQTT 3.1.1 packets the simulated clients and broker exchange (as objects, not bytes).

Only what this project uses: QoS 0 and 1 (QoS 2 is refused by :class:`~simulation.client.SimClient`),
no authentication beyond a user name, no MQTT 5 properties. :class:`Closed` is not an
MQTT packet: it is the end of a TCP stream (a FIN), delivered in order after what the peer
sent before closing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _payload(data: bytes) -> str:
    return repr(data) if len(data) <= 48 else f"{data[:40]!r}…({len(data)} B)"


@dataclass(slots=True, frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool

    def __str__(self) -> str:
        return f"will={self.topic} q{self.qos} r{int(self.retain)} {_payload(self.payload)}"


@dataclass(slots=True)
class Connect:
    client_id: str
    clean_session: bool
    keepalive: int
    will: Will | None = None
    username: str | None = None

    def __str__(self) -> str:
        will = f" {self.will}" if self.will else ""
        return f"CONNECT id={self.client_id!r} clean={int(self.clean_session)} ka={self.keepalive}{will}"


@dataclass(slots=True)
class Connack:
    session_present: bool
    return_code: int = 0

    def __str__(self) -> str:
        return f"CONNACK sp={int(self.session_present)} rc={self.return_code}"


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool = False
    mid: int = 0

    def copy(self) -> Publish:
        return Publish(self.topic, self.payload, self.qos, self.retain, self.dup, self.mid)

    def __str__(self) -> str:
        return (f"PUBLISH {self.topic} q{self.qos} r{int(self.retain)} d{int(self.dup)} m{self.mid} "
                f"{_payload(self.payload)}")


@dataclass(slots=True)
class Puback:
    mid: int

    def __str__(self) -> str:
        return f"PUBACK m{self.mid}"


@dataclass(slots=True)
class Subscribe:
    mid: int
    topics: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        return f"SUBSCRIBE m{self.mid} " + " ".join(f"{t}:q{q}" for t, q in self.topics)


@dataclass(slots=True)
class Suback:
    mid: int
    granted: tuple[int, ...]

    def __str__(self) -> str:
        return f"SUBACK m{self.mid} {list(self.granted)}"


@dataclass(slots=True)
class Unsubscribe:
    mid: int
    topics: tuple[str, ...]

    def __str__(self) -> str:
        return f"UNSUBSCRIBE m{self.mid} {' '.join(self.topics)}"


@dataclass(slots=True)
class Unsuback:
    mid: int

    def __str__(self) -> str:
        return f"UNSUBACK m{self.mid}"


@dataclass(slots=True)
class Pingreq:
    def __str__(self) -> str:
        return "PINGREQ"


@dataclass(slots=True)
class Pingresp:
    def __str__(self) -> str:
        return "PINGRESP"


@dataclass(slots=True)
class Disconnect:
    def __str__(self) -> str:
        return "DISCONNECT"


@dataclass(slots=True)
class Closed:
    """The peer closed its end of the TCP connection (what it sent before still arrived)."""

    reason: str = field(default="closed")
    #: the connection was never accepted (nobody listening): a failed connect, not a loss
    refused: bool = False

    def __str__(self) -> str:
        return f"<{'refused' if self.refused else 'closed'}: {self.reason}>"


Packet = (Connect | Connack | Publish | Puback | Subscribe | Suback | Unsubscribe | Unsuback | Pingreq
          | Pingresp | Disconnect | Closed)
