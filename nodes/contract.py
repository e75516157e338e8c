"""The MQTT contract between nodes and controller: topics and payload models.

This one module is imported by both ``nodes/`` and ``controller/``; it depends on pydantic
only. Topics are built and parsed here and nowhere else (see docs/mqtt.md).

Root ``escape/<apartment_id>``; every payload is UTF-8 JSON with ``"v": 1``.

>>> t = Topics("temoin")
>>> t.prop_event("hall", "mailbox_keypad")
'escape/temoin/nodes/hall/props/mailbox_keypad/event'
>>> t.parse("escape/temoin/nodes/hall/props/mailbox_keypad/event")
TopicParts(kind='event', node='hall', prop='mailbox_keypad')
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

VERSION = 1
QOS = 1
#: ids of apartments, nodes and props: also safe as MQTT topic levels
ID_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
_ID = re.compile(ID_PATTERN)
#: the largest payload either side accepts; anything larger is dropped unread
MAX_PAYLOAD_BYTES = 64 * 1024
#: the prop id of node-level events (``emergency``, ``solved_locally``); no prop may use it
NODE_PROP = "node"
#: the events a node reports about itself, on the ``NODE_PROP`` topic
NODE_EVENTS = frozenset({"emergency", "solved_locally"})
#: the controller's heartbeat never gets slower than this (seconds)
MAX_HEARTBEAT_S = 2.0
#: a node's heartbeat: this many per MQTT keepalive
NODE_HEARTBEATS_PER_KEEPALIVE = 3
#: the controller declares a node silent after this many keepalives without a word from it
NODE_SILENCE_KEEPALIVES = 1.2

TopicKind = Literal[
    "status", "heartbeat", "state", "event", "set", "resync", "simulate", "tech", "tech_reply",
    "controller_status", "game_state",
]


class ContractError(ValueError):
    """A topic or payload does not follow the contract."""


def new_id() -> str:
    """A short random id for boot ids and command ids."""
    return uuid.uuid4().hex[:12]


def now() -> float:
    """Wall-clock time stamp carried in payloads (seconds since the epoch)."""
    return time.time()


def heartbeat_interval(autonomy_after_s: float) -> float:
    """How often the controller republishes its status: at most 2 s, and at least four
    times within the autonomy threshold, so a node never mistakes one late heartbeat for
    a controller that is gone."""
    return min(MAX_HEARTBEAT_S, autonomy_after_s / 4)


def node_heartbeat_interval(keepalive: float) -> float:
    """How often a node publishes its heartbeat: three times per keepalive."""
    return keepalive / NODE_HEARTBEATS_PER_KEEPALIVE


def node_silence_limit(*, keepalive: float, heartbeat: float | None = None) -> float:
    """After how long without a word (heartbeat, event, state) the controller declares a
    node offline: 1.2 × its keepalive — before the broker's own 1.5 × keepalive (which
    Mosquitto 2.0 only checks every ~5 s) — and never less than three heartbeats."""
    limit = NODE_SILENCE_KEEPALIVES * keepalive
    if heartbeat is not None:
        limit = max(limit, 3 * heartbeat)
    return limit


def check_id(value: str, what: str = "id") -> str:
    """Return *value* if it is a valid id (usable as a topic level), else raise."""
    if not isinstance(value, str) or not _ID.match(value):
        msg = f"invalid {what} {value!r}: expected lower_snake_case, at most 40 characters"
        raise ContractError(msg)
    return value


@dataclass(frozen=True, slots=True)
class TopicParts:
    """A parsed topic: what kind it is and which node/prop it is about."""

    kind: TopicKind
    node: str | None = None
    prop: str | None = None


class Topics:
    """Builds and parses every topic of one apartment."""

    def __init__(self, apartment_id: str) -> None:
        self.apartment_id = check_id(apartment_id, "apartment id")
        self.root = f"escape/{apartment_id}"

    # -- builders -----------------------------------------------------------------
    def node_status(self, node: str) -> str:
        return f"{self.root}/nodes/{check_id(node, 'node id')}/status"

    def _prop(self, node: str, prop: str, leaf: str) -> str:
        return f"{self.root}/nodes/{check_id(node, 'node id')}/props/{check_id(prop, 'prop id')}/{leaf}"

    def prop_state(self, node: str, prop: str) -> str:
        return self._prop(node, prop, "state")

    def prop_event(self, node: str, prop: str) -> str:
        return self._prop(node, prop, "event")

    def prop_set(self, node: str, prop: str) -> str:
        return self._prop(node, prop, "set")

    def prop_simulate(self, node: str, prop: str) -> str:
        return self._prop(node, prop, "simulate")

    def node_heartbeat(self, node: str) -> str:
        return f"{self.root}/nodes/{check_id(node, 'node id')}/heartbeat"

    def node_resync(self, node: str) -> str:
        return f"{self.root}/nodes/{check_id(node, 'node id')}/resync"

    def node_tech(self, node: str) -> str:
        return f"{self.root}/nodes/{check_id(node, 'node id')}/tech"

    def node_tech_reply(self, node: str) -> str:
        return f"{self.root}/nodes/{check_id(node, 'node id')}/tech/reply"

    @property
    def controller_status(self) -> str:
        return f"{self.root}/controller/status"

    @property
    def game_state(self) -> str:
        return f"{self.root}/game/state"

    # -- subscriptions ------------------------------------------------------------
    def node_subscriptions(self, node: str) -> list[str]:
        """What a node subscribes to: its commands, resync, tech, and the controller."""
        base = f"{self.root}/nodes/{check_id(node, 'node id')}"
        return [f"{base}/props/+/set", f"{base}/props/+/simulate", f"{base}/resync",
                f"{base}/tech", self.controller_status]

    def controller_subscriptions(self) -> list[str]:
        """What the controller subscribes to."""
        return [f"{self.root}/nodes/+/status", f"{self.root}/nodes/+/heartbeat",
                f"{self.root}/nodes/+/props/+/state",
                f"{self.root}/nodes/+/props/+/event", f"{self.root}/nodes/+/tech/reply"]

    # -- parser -------------------------------------------------------------------
    def parse(self, topic: str) -> TopicParts:
        """Return what *topic* is; raise :class:`ContractError` if it is not ours."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            msg = f"topic {topic!r} is not under {self.root!r}"
            raise ContractError(msg)
        levels = topic[len(prefix):].split("/")
        match levels:
            case ["controller", "status"]:
                return TopicParts("controller_status")
            case ["game", "state"]:
                return TopicParts("game_state")
            case ["nodes", node, ("status" | "heartbeat" | "resync" | "tech") as leaf] if _ID.match(node):
                return TopicParts(leaf, node)
            case ["nodes", node, "tech", "reply"] if _ID.match(node):
                return TopicParts("tech_reply", node)
            case ["nodes", node, "props", prop, ("state" | "event" | "set" | "simulate") as leaf] if (
                _ID.match(node) and _ID.match(prop)
            ):
                return TopicParts(leaf, node, prop)
        msg = f"unknown topic {topic!r}"
        raise ContractError(msg)


# -- payloads ---------------------------------------------------------------------
class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class PropInfo(BaseModel):
    """A prop as a node announces it in its birth message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    kind: str = Field(max_length=40)


class NodeStatus(_Payload):
    """Retained birth (online) or last will (offline) of a node."""

    online: bool
    boot_id: str = Field(min_length=1, max_length=40)
    version: str | None = Field(default=None, max_length=40)
    props: list[PropInfo] | None = None
    simulated: bool | None = None
    ts: float | None = None
    keepalive: float | None = Field(default=None, gt=0, le=3600,
                                    description="the node's MQTT keepalive (seconds)")
    heartbeat: float | None = Field(default=None, gt=0, le=3600,
                                    description="seconds between two heartbeats of the node")


class NodeHeartbeat(_Payload):
    """A node's sign of life (QoS 0, not retained), every ``heartbeat`` s of its birth.

    The controller declares a node offline when it has heard nothing from it (heartbeat,
    event or state) for :func:`node_silence_limit`; the heartbeat also tells the console
    whether the node plays its local puzzles alone and how many events wait in its outbox.
    """

    boot_id: str = Field(min_length=1, max_length=40)
    ts: float | None = None
    autonomous: bool | None = Field(default=None, description="runs its local puzzles alone")
    outbox: int | None = Field(default=None, ge=0, description="events not acknowledged yet")


class EventAck(BaseModel):
    """The last event of one node the controller has handled: ``(boot_id, seq)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    boot_id: str = Field(min_length=1, max_length=40)
    seq: int = Field(ge=0)


class ControllerStatus(_Payload):
    """Retained birth, heartbeat or last will of the controller.

    While online the controller publishes it again every ``heartbeat`` seconds (see
    :func:`heartbeat_interval`), so a node can tell a live controller from a retained
    leftover, knows what it may solve on its own (``parcours``, ``solved``) and which of
    its queued events it may forget (``acks``).
    """

    online: bool
    boot_id: str = Field(min_length=1, max_length=40)
    session: str | None = Field(default=None, max_length=40)
    running: bool | None = Field(default=None, description="a game is running (or paused) now")
    ts: float | None = None
    heartbeat: float | None = Field(default=None, gt=0, le=3600,
                                    description="seconds between two statuses while online")
    parcours: str | None = Field(default=None, pattern=ID_PATTERN,
                                 description="parcours of the current game")
    solved: list[Annotated[str, Field(pattern=ID_PATTERN)]] | None = Field(
        default=None, max_length=1000, description="puzzles solved in the current game")
    acks: dict[Annotated[str, Field(pattern=ID_PATTERN)], EventAck] | None = Field(
        default=None, max_length=500, description="per node: the last event handled")


class PropState(BaseModel):
    """A prop's retained reported state: ``v``, ``ack``, ``boot_id``, ``ts`` plus its fields."""

    model_config = ConfigDict(extra="allow", frozen=True)

    v: Literal[1] = VERSION
    boot_id: str | None = Field(default=None, max_length=40)
    ack: str | None = Field(default=None, max_length=40, description="id of the last command applied")
    ts: float | None = None

    @property
    def fields(self) -> dict[str, Any]:
        """The prop's own state fields (without the envelope)."""
        return dict(self.model_extra or {})

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class PropEvent(_Payload):
    """Something a player did to a prop (a code typed, a tag presented)."""

    boot_id: str = Field(min_length=1, max_length=40)
    seq: int = Field(ge=0)
    type: str = Field(min_length=1, max_length=40)
    value: JsonValue = None
    ts: float
    session: str | None = Field(default=None, max_length=40)
    #: the event was queued while the controller was away and is delivered late
    replayed: bool | None = None


class Command(_Payload):
    """A command to a prop (``set`` topic); never retained; acknowledged in state ``ack``."""

    id: str = Field(min_length=1, max_length=40)
    action: str = Field(min_length=1, max_length=40)
    params: dict[str, JsonValue] = Field(default_factory=dict)
    session: str | None = Field(default=None, max_length=40)
    expires: float | None = Field(default=None, description="epoch seconds after which it is dropped")


class Resync(_Payload):
    """Ask a node to publish all its states again."""

    reason: str | None = Field(default=None, max_length=200)


class Gesture(_Payload):
    """A simulated hand on a prop (rehearsal and tests; honoured by simulated nodes only)."""

    id: str = Field(min_length=1, max_length=40)
    gesture: str = Field(min_length=1, max_length=40)
    value: JsonValue = None


class TechRequest(_Payload):
    """A technician's request to a node: self-test a prop, enroll the next tag."""

    id: str = Field(min_length=1, max_length=40)
    action: Literal["self_test", "enroll", "wiring"]
    prop: str | None = Field(default=None, pattern=ID_PATTERN)
    timeout: float = Field(default=10.0, gt=0, le=120)


class TechReply(_Payload):
    """The node's answer to a :class:`TechRequest`."""

    id: str = Field(min_length=1, max_length=40)
    ok: bool
    result: JsonValue = None
    message: str = ""


def decode(payload: bytes, model: type[_Payload] | type[PropState]) -> Any:
    """Decode and validate *payload* as *model*; raise :class:`ContractError` if bad."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        msg = f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit"
        raise ContractError(msg)
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        msg = f"payload is not UTF-8 JSON: {exc}"
        raise ContractError(msg) from exc
    if not isinstance(data, dict):
        msg = "payload is not a JSON object"
        raise ContractError(msg)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        msg = f"payload does not match {model.__name__}: {exc.error_count()} error(s): " + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:3]
        )
        raise ContractError(msg) from exc
