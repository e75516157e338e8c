"""What reaches a node's worker: the broker's messages, decoded and validated here in
paho's thread (or refused), and the node's own facts.

Nothing received is trusted: a topic that is not for this node, a payload that is not
the contract's (bad JSON, a non-finite number, a wrong schema, over 64 KiB) raises
``ContractError``; the agent counts it (``bad_payloads``) and drops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from protocol import contract
from protocol.contract import (
    Command,
    ContractError,
    ControllerStatus,
    Emergency,
    Gesture,
    NodeGame,
    NodeStatus,
    Resync,
    TechRequest,
    Topics,
)

#: the model of each kind of topic a node subscribes to
MODELS: dict[str, type[Any]] = {
    "set": Command, "simulate": Gesture, "resync": Resync, "tech": TechRequest,
    "controller_status": ControllerStatus, "status": NodeStatus, "emergency": Emergency,
    "game": NodeGame}
#: retained topics: an empty payload deletes the retained message
_RETAINED = ("controller_status", "status", "emergency", "game")


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message from the broker, validated, as the worker gets it."""

    parts: contract.TopicParts
    payload: Any
    raw: bytes
    retained: bool
    receipt: int          # its rank among every message received (the broker's order)


@dataclass(frozen=True, slots=True)
class Happened:
    """A prop's event."""

    prop: str
    type: str
    value: Any


@dataclass(frozen=True, slots=True)
class StateChanged:
    prop: str


@dataclass(frozen=True, slots=True)
class Released:
    """The release lane released this maglock and booked it: its state, to confirm it."""

    prop: str


@dataclass(frozen=True, slots=True)
class EmergencyBooked:
    """The release lane applied the apartment's emergency (or its clear)."""

    emergency: Emergency
    changed: bool


CONNECTED, DISCONNECTED = "connected", "disconnected"


def decode(topics: Topics, node_id: str, message: mqtt.MQTTMessage) -> tuple[Any, contract.TopicParts]:
    """The validated payload (None: a retained message deleted) and the topic's parts."""
    parts = topics.parse(message.topic)
    model = MODELS.get(parts.kind)
    if model is None or (parts.node not in (None, node_id)):
        raise ContractError(f"unexpected topic {message.topic!r}")
    if not message.payload and parts.kind in _RETAINED:
        return None, parts   # a retained message deleted (for the emergency: not a clear)
    return contract.decode(message.payload, model), parts
