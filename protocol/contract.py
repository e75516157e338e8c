"""The MQTT contract between nodes and controller: topics and payload models.

This one module is imported by both ``nodes/`` and ``controller/``; it depends on pydantic
only. Topics are built and parsed here and nowhere else (see docs/mqtt.md).

Root ``escape/<apartment_id>``; every payload is UTF-8 JSON with ``"v": 1``.

Over 400 lines because it is one thing: the whole contract, every topic and every payload
beside the others, so that a reader checks a message against one file.

>>> t = Topics("temoin")
>>> t.prop_event("hall", "mailbox_keypad")
'escape/temoin/nodes/hall/props/mailbox_keypad/event'
>>> t.parse("escape/temoin/nodes/hall/props/mailbox_keypad/event")
TopicParts(kind='event', node='hall', prop='mailbox_keypad')
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

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
#: a command that is not a release is dropped by the node when older than this (seconds),
#: its age measured on the node against the controller's own uptime (see ControllerClock)
COMMAND_TTL_S = 30.0
#: the one action no filter may ever refuse (releasing a maglock twice is harmless)
RELEASE = "unlock"

TopicKind = Literal[
    "status", "heartbeat", "state", "event", "set", "resync", "simulate", "tech", "tech_reply",
    "controller_status", "game_state", "emergency", "game",
]


class ContractError(ValueError):
    """A topic or payload does not follow the contract."""


def _random_id() -> str:
    return uuid.uuid4().hex[:12]


#: where :func:`now` and :func:`new_id` come from: the system's wall clock and random ids.
#: The deterministic simulator (``simulation/``) points them at the clock of the simulated
#: machine whose code is running and at seeded ids.
wall_source: Callable[[], float] = time.time
id_source: Callable[[], str] = _random_id


def new_id() -> str:
    """A short random id for boot ids, command ids, sessions and clues."""
    return id_source()


def now() -> float:
    """Wall-clock time stamp carried in payloads (seconds since the epoch).

    For people and logs only: no decision compares two machines' wall clocks (a Pi has no
    RTC and the flat may have no time server). Freshness is measured by the receiver.
    """
    return wall_source()


def is_release(action: str) -> bool:
    """True for the action that no filter (expiry, session, hold, duplicate id) may refuse."""
    return action == RELEASE


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

    def node_game(self, node: str) -> str:
        """The node's part of the game file: retained, from the controller (:class:`NodeGame`)."""
        return f"{self.root}/nodes/{check_id(node, 'node id')}/game"

    @property
    def controller_status(self) -> str:
        return f"{self.root}/controller/status"

    @property
    def game_state(self) -> str:
        return f"{self.root}/game/state"

    @property
    def emergency(self) -> str:
        """The apartment-wide emergency release: retained, from the controller, read by every node."""
        return f"{self.root}/emergency"

    # -- subscriptions ------------------------------------------------------------
    def node_subscriptions(self, node: str) -> list[str]:
        """What a node subscribes to: its commands, resync, tech, and the controller."""
        base = f"{self.root}/nodes/{check_id(node, 'node id')}"
        return [self.emergency, f"{base}/props/+/set", f"{base}/props/+/simulate",
                f"{base}/resync", f"{base}/tech", f"{base}/status", self.controller_status,
                f"{base}/game"]

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
            case ["emergency"]:
                return TopicParts("emergency")
            case ["nodes", node, ("status" | "heartbeat" | "resync" | "tech" | "game") as leaf] if (
                _ID.match(node)
            ):
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
    # NOTE: NaN and infinities are refused here, at the door: one of them in a number once
    # froze the console (invalid JSON pushed) and sank a batch of session-log rows.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    v: Literal[1] = VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


# -- the game file: the controller gives each node its part ------------------------------
#: a game part's hash: the first 16 hex digits of the SHA-256 of its canonical JSON
GAME_HASH_PATTERN = r"^[0-9a-f]{16}$"


def content_hash(data: Mapping[str, Any]) -> str:
    """The hash of a game part (or of a whole game), as JSON data: SHA-256 of its canonical
    JSON (keys sorted, no spaces, UTF-8), first 16 hex digits. Both sides compute it here.

    >>> content_hash({"b": 1, "a": [1.5, None, "é"]})
    '10c71012fb391fea'
    """
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class GameRefusal(BaseModel):
    """A part a node was given and could not apply: which, and why (in the node's words)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hash: str = Field(pattern=GAME_HASH_PATTERN)
    reason: str = Field(min_length=1, max_length=1000)


class NodeGame(_Payload):
    """A node's part of the game file (``nodes/<id>/game``, retained, from the controller).

    ``part`` is ``config.game.NodePart`` as JSON: this module does not know the game's
    models; the node validates it with them before it builds anything. ``hash`` is
    :func:`content_hash` of ``part``: a message whose hash does not match is refused here.
    """

    hash: str = Field(pattern=GAME_HASH_PATTERN)
    part: dict[str, JsonValue]
    game: str | None = Field(default=None, pattern=GAME_HASH_PATTERN,
                             description="the hash of the whole game file it comes from")
    source: str | None = Field(default=None, max_length=200, description="the game file's name")
    ts: float | None = None

    @model_validator(mode="after")
    def _hash_of_part(self) -> NodeGame:
        if content_hash(self.part) != self.hash:
            msg = "hash does not match the part (damaged or forged)"
            raise ValueError(msg)
        return self


class PropInfo(BaseModel):
    """A prop as a node announces it in its birth message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    kind: str = Field(max_length=40)


class NodeStatus(_Payload):
    """Retained birth (online) or last will (offline) of a node.

    A will names the birth it belongs to (``boot_id``, ``boot_n``: Sparkplug's bdSeq), so
    births and wills of old and new boots may arrive in any order.
    """

    online: bool
    boot_id: str = Field(min_length=1, max_length=40)
    boot_n: int | None = Field(default=None, ge=1, description=(
        "the node's boot counter, kept on its disk: a higher one is a later boot"))
    version: str | None = Field(default=None, max_length=40)
    props: list[PropInfo] | None = None
    simulated: bool | None = None
    ts: float | None = None
    keepalive: float | None = Field(default=None, gt=0, le=3600,
                                    description="the node's MQTT keepalive (seconds)")
    heartbeat: float | None = Field(default=None, gt=0, le=3600,
                                    description="seconds between two heartbeats of the node")
    # -- the game it runs (NodeGame) --
    game: str | None = Field(default=None, pattern=GAME_HASH_PATTERN,
                             description="hash of the part of the game file it runs (None: none yet)")
    game_refused: GameRefusal | None = Field(default=None, description=(
        "the last part it was given and could not apply (it runs the one before)"))
    game_pending: str | None = Field(default=None, pattern=GAME_HASH_PATTERN, description=(
        "hash of a part it was given and applies once the game running now is over"))


# -- a node's health (the Pi under it) ---------------------------------------------
#: a node sends its health with one heartbeat in this many seconds (and the first of each
#: connection): it changes slowly, and the heartbeat stays small
NODE_HEALTH_EVERY_S = 10.0
_COUNT = Annotated[int, Field(ge=0)]


class NodeHealth(BaseModel):
    """How the Pi under a node is doing: what the technician page shows, with thresholds in
    words (controller/health.py). ``None``: not known here (a simulated node has no CPU
    sensor nor power monitor)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cpu_temp_c: float | None = Field(default=None, ge=-60, le=200, description="the SoC's temperature")
    under_voltage: bool | None = Field(default=None, description="the supply is too weak now")
    under_voltage_seen: bool | None = Field(default=None, description="it was, since the Pi booted")
    throttled: bool | None = Field(default=None, description=(
        "the CPU is slowed now (heat or power: frequency capped, throttled or soft limit)"))
    throttled_seen: bool | None = Field(default=None, description="it was, since the Pi booted")
    disk_free_bytes: int | None = Field(default=None, ge=0, description="free space of its data dir")
    disk_total_bytes: int | None = Field(default=None, ge=0)
    uptime_s: float | None = Field(default=None, ge=0, description="since the Pi booted")
    system_boots: int | None = Field(default=None, ge=0, description=(
        "times the Pi booted since its data dir was made (the agent's restarts are boot_n)"))
    read_errors: dict[Annotated[str, Field(pattern=ID_PATTERN)], _COUNT] | None = Field(
        default=None, max_length=100, description="per RFID reader: bad reads since the agent started")
    counters: dict[Annotated[str, Field(max_length=60)], _COUNT] | None = Field(
        default=None, max_length=200, description="the node's own counters (refusals, errors …)")


class NodeHeartbeat(_Payload):
    """A node's sign of life (QoS 0, not retained), every ``heartbeat`` s of its birth.

    The controller declares a node offline when it has heard nothing from it (heartbeat,
    event or state) for :func:`node_silence_limit`; the heartbeat also tells the console
    whether the node plays its local puzzles alone and how many events wait in its outbox.
    """

    boot_id: str = Field(min_length=1, max_length=40)
    boot_n: int | None = Field(default=None, ge=1, description="the boot counter of its birth")
    ts: float | None = Field(default=None, description=(
        "the node's wall clock: the controller shows its offset, and decides nothing by it"))
    autonomous: bool | None = Field(default=None, description="runs its local puzzles alone")
    outbox: int | None = Field(default=None, ge=0, description="events not acknowledged yet")
    # -- the game it runs (NodeGame) --
    game: str | None = Field(default=None, pattern=GAME_HASH_PATTERN,
                             description="hash of the part of the game file it runs")
    health: NodeHealth | None = Field(default=None, description=(
        f"the Pi's health, in one heartbeat every {NODE_HEALTH_EVERY_S:.0f} s"))


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
    uptime: float | None = Field(default=None, ge=0, description=(
        "seconds since this controller boot, on its monotonic clock: commands are dated on it"))
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

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

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
    seq: int = Field(ge=1, description="1 for the first event of a boot, +1 per event")
    type: str = Field(min_length=1, max_length=40)
    value: JsonValue = None
    ts: float
    session: str | None = Field(default=None, max_length=40)
    #: the event was queued while the controller was away and is delivered late
    replayed: bool | None = None


class Command(_Payload):
    """A command to a prop (``set`` topic); never retained; acknowledged in state ``ack``.

    Dated on the controller's own monotonic clock (``controller``, ``issued``): the node
    measures its age against the controller's heartbeat (:class:`ControllerClock`), never
    against its own wall clock. An ``unlock`` is applied whatever its age, session or id.
    """

    id: str = Field(min_length=1, max_length=40)
    action: str = Field(min_length=1, max_length=40)
    params: dict[str, JsonValue] = Field(default_factory=dict)
    session: str | None = Field(default=None, max_length=40)
    controller: str | None = Field(default=None, max_length=40,
                                   description="boot id of the controller that issued it")
    issued: float | None = Field(default=None, ge=0,
                                 description="the controller's uptime when issued (s)")
    ttl: float | None = Field(default=None, gt=0, le=3600,
                              description="dropped (unless a release) when older than this (s)")


class Emergency(_Payload):
    """The apartment-wide emergency release (topic ``<root>/emergency``, retained).

    While ``active`` every node releases every maglock it drives, at once and before
    anything queued, refuses any lock, and releases again on each (re)connection (the
    retained message comes first). Only the game master clears it; clearing relocks nothing.
    """

    active: bool
    id: str = Field(min_length=1, max_length=40)
    who: str | None = Field(default=None, max_length=200)
    ts: float | None = None


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


class ControllerClock:
    """A node's view of the controller's clock, from the controller's heartbeats.

    Each live :class:`ControllerStatus` says the controller's ``uptime``; the node notes it
    with its own monotonic time of receipt. A command's age is then the controller's
    uptime now (as the node estimates it) minus the command's ``issued``: both on the
    controller's monotonic clock, so neither machine's wall clock matters, and a step of
    either changes nothing. The estimate errs young by the heartbeat's transit time.

    >>> clock = ControllerClock()
    >>> clock.observe("c1", uptime=100.0, local=5000.0)
    >>> clock.age(controller="c1", issued=90.0, local=5002.0)
    12.0
    >>> clock.age(controller="c2", issued=90.0, local=5002.0) is None   # another boot
    True
    """

    __slots__ = ("_boot", "_offset")

    def __init__(self) -> None:
        self._boot: str | None = None
        self._offset = 0.0

    def observe(self, boot_id: str, *, uptime: float | None, local: float) -> None:
        if uptime is not None:
            self._boot, self._offset = boot_id, uptime - local

    def age(self, *, controller: str | None, issued: float | None, local: float) -> float | None:
        """Seconds since the command was issued, or None when it cannot be told (a command
        of a controller boot not heard yet, or not dated)."""
        if controller is None or issued is None or controller != self._boot:
            return None
        return local + self._offset - issued


def _refuse_constant(name: str) -> Any:
    msg = f"{name} is not a number this contract accepts"
    raise ValueError(msg)


def _finite_float(text: str) -> float:
    # NOTE: json reads 1e999 as infinity without asking parse_constant, and the models'
    # allow_inf_nan does not reach a state's extra fields: refused here, for every number.
    value = float(text)
    if not math.isfinite(value):
        msg = f"{text} is not a finite number"
        raise ValueError(msg)
    return value


def dumps(value: Any) -> str:
    """JSON text of *value* for anyone to read: never NaN or Infinity (invalid JSON)."""
    return json.dumps(value, allow_nan=False, default=str, ensure_ascii=False)


def decode(payload: bytes, model: type[_Payload] | type[PropState]) -> Any:
    """Decode and validate *payload* as *model*; raise :class:`ContractError` if bad."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        msg = f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit"
        raise ContractError(msg)
    try:
        data = json.loads(payload, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
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
