"""Fault: garbage on the wire — thousands of malformed MQTT messages at the controller and a node.

What the game master sees: nothing. No crash, no state change (the controller's and the
node's state are compared before and after), and every message is accounted for in the
metrics (``bad_payloads``, or ``unknown_prop`` / ``unknown_node`` for well-formed messages
about props and nodes that do not exist).

The corpus comes from Hypothesis (derandomized: the same messages on every run): random
bytes, text that is not JSON, JSON of the wrong shape, payloads one field away from valid
(wrong type, missing, unknown, ``"v": 2``), huge strings, invalid ids in topic levels, and
unknown props and nodes. A message that would be *valid* for a real target (which may
legitimately change state) is left out. They are published from one client in batches,
each closed by a *fence*: a harmless valid message the receiver hands to its handler after
everything published before it (Mosquitto keeps one publisher's order).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st

from controller.mqtt import Incoming
from controller.views import game_view
from protocol import contract
from protocol.contract import (
    Command,
    ContractError,
    ControllerStatus,
    Emergency,
    Gesture,
    NodeStatus,
    PropEvent,
    PropState,
    Resync,
    TechReply,
    TechRequest,
    Topics,
)
from tests.faults.conftest import RELAY, Rig, fault_game, wait_for

pytestmark = pytest.mark.mosquitto

#: messages per receiver (two receivers: over 10,000 in all)
PER_RECEIVER = 5000
BATCH = 400
T = Topics("faults")
NODES = ("hall", "entree")
PROPS = {"hall": ("mailbox_keypad", "mailbox_lock", "bell"),
         "entree": ("door_keypad", "door_lock", "bell")}
CONTROLLER_MODELS: dict[str, Any] = {"status": NodeStatus, "state": PropState, "event": PropEvent,
                                     "tech_reply": TechReply}
NODE_MODELS: dict[str, Any] = {"set": Command, "simulate": Gesture, "resync": Resync,
                               "tech": TechRequest, "controller_status": ControllerStatus,
                               "status": NodeStatus, "emergency": Emergency}

# -- strategies ---------------------------------------------------------------------------
json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
# NOTE: two levels, not st.recursive: four times cheaper to draw, and deep nesting is
# covered by the fixed cases below (5000 open braces).
json_value = json_leaf | st.lists(json_leaf, max_size=4) | st.dictionaries(
    st.text(max_size=8), json_leaf | st.lists(json_leaf, max_size=3), max_size=5)
#: a topic level MQTT accepts in a PUBLISH but that may not be one of our ids
level = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn"), blacklist_characters="/+#"),
                min_size=0, max_size=45)
an_id = st.sampled_from(["hall", "entree", "ghost", "mailbox_lock", "bell", "nope", "node"])


def near_miss(template: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """A valid-looking payload with one thing wrong (or, rarely, right: filtered later)."""
    def mutate(data: dict[str, Any], how: str, key: str, junk: Any) -> bytes:
        data = dict(data)
        if how == "drop" and key in data:
            del data[key]
        elif how == "type":
            data[key] = junk
        elif how == "extra":
            data["surprise_" + key] = junk
        elif how == "version":
            data["v"] = junk if junk != 1 else 2
        return json.dumps(data).encode()
    return st.builds(mutate, st.just(template), st.sampled_from(["drop", "type", "extra", "version"]),
                     st.sampled_from(sorted(template)), json_value)


TEMPLATES = [
    {"v": 1, "online": True, "boot_id": "b1", "version": "0.1.0", "props": [], "ts": 1.0},
    {"v": 1, "boot_id": "b1", "seq": 3, "type": "code", "value": "0412", "ts": 1.0},
    {"v": 1, "locked": True, "engaged": True, "door": "closed", "ack": "c1", "ts": 1.0},
    {"v": 1, "id": "c1", "action": "unlock", "params": {}, "issued": 9e9, "ttl": 30},
    {"v": 1, "id": "g1", "gesture": "type", "value": "0412"},
    {"v": 1, "online": True, "boot_id": "k1", "session": "s1", "running": True, "heartbeat": 2.0,
     "acks": {"hall": {"boot_id": "b1", "seq": 1}}},
    {"v": 1, "id": "t1", "action": "self_test", "prop": "bell"},
]
payloads = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.text(min_size=1, max_size=100).map(str.encode),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(TEMPLATES).flatmap(near_miss),
    st.sampled_from(TEMPLATES).map(lambda t: json.dumps(t).encode()),   # valid somewhere; filtered
    st.sampled_from([b"{", b"[]", b"null", b'"x"', b"1e999", b"\xff\xfe\x00", b"{" * 5000]),
)


def controller_topic() -> st.SearchStrategy[str]:
    leaf = st.sampled_from(["state", "event"])
    return st.one_of(
        st.builds(lambda n, lf: f"escape/faults/nodes/{n}/{lf}", an_id | level,
                  st.sampled_from(["status", "tech/reply"])),
        st.builds(lambda n, p, lf: f"escape/faults/nodes/{n}/props/{p}/{lf}", an_id | level,
                  an_id | level, leaf),
        st.builds(lambda n, p, lf: T.prop_event(n, p) if lf == "event" else T.prop_state(n, p),
                  st.sampled_from(NODES), st.sampled_from(PROPS["hall"] + ("ghost",)), leaf),
    )


def node_topic() -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda p, lf: f"escape/faults/nodes/hall/props/{p}/{lf}", an_id | level,
                  st.sampled_from(["set", "simulate"])),
        st.sampled_from([T.node_resync("hall"), T.node_tech("hall"), T.controller_status]),
    )


# -- what each receiver should make of a message -------------------------------------------
def _decode(payload: bytes, model: Any) -> Any:
    try:
        return contract.decode(payload, model)
    except ContractError:
        return None


def controller_verdict(topic: str, payload: bytes) -> str | None:
    """The counter the controller must bump; None if the message may change state (excluded)."""
    try:
        parts = T.parse(topic)
    except ContractError:
        return "bad_payloads"
    model = CONTROLLER_MODELS.get(parts.kind)
    if model is None or _decode(payload, model) is None:
        return "bad_payloads"
    if parts.node not in PROPS:
        return "unknown_node"
    if parts.kind == "event" and parts.prop == contract.NODE_PROP \
            and _decode(payload, model).type in contract.NODE_EVENTS:
        return None   # a node's own emergency or local solve: real news
    if parts.kind in ("state", "event") and parts.prop not in PROPS[parts.node]:
        return "unknown_prop"
    return None


def node_verdict(topic: str, payload: bytes) -> str | None:
    """The counter the hall must bump; None if the message may change its state (excluded)."""
    try:
        parts = T.parse(topic)
    except ContractError:
        return "bad_payloads"
    model = NODE_MODELS.get(parts.kind)
    if model is None or parts.node not in (None, "hall") or _decode(payload, model) is None:
        return "bad_payloads"
    if parts.kind == "set" and parts.prop not in PROPS["hall"]:
        return "unknown_prop"
    if parts.kind == "simulate" and parts.prop not in PROPS["hall"]:
        return "bad_gestures"
    return None


SUBSCRIBED = {"controller": T.controller_subscriptions(), "hall": T.node_subscriptions("hall")}


def corpus(topics: st.SearchStrategy[str], verdict: Any, receiver: str) -> list[tuple[str, bytes, str]]:
    found: list[tuple[str, bytes, str]] = []

    # NOTE: one message per example. Lists of messages would draw faster, but hypothesis
    # fills lists with near-copies (a fifth as many distinct messages for the same time).
    @settings(max_examples=PER_RECEIVER, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(topic=topics, payload=payloads)
    def collect(topic: str, payload: bytes) -> None:
        if not any(mqtt.topic_matches_sub(sub, topic) for sub in SUBSCRIBED[receiver]):
            reject()   # never delivered: nothing to count
        counter = verdict(topic, payload)
        if counter is None:
            reject()   # valid for a real target: it may change state, legitimately
        found.append((topic, payload, counter))

    collect()
    # huge strings: over the 64 KiB limit, and one just under it that is still wrong
    big = json.dumps({"v": 1, "boot_id": "x" * 100_000, "seq": 1, "type": "code", "ts": 1}).encode()
    under = json.dumps({"v": 1, "id": "y" * 60_000, "action": "unlock"}).encode()
    target = T.prop_event("hall", "bell") if receiver == "controller" else T.prop_set("hall", "mailbox_lock")
    found += [(target, big, "bad_payloads"), (target, under, "bad_payloads")]
    if receiver == "controller":
        # well-formed events, from a forged boot, about props that do not exist (the
        # node's own pseudo-prop with a type it never sends, too): they must not reach
        # the registry, whose boot and seq they would move
        forged = PropEvent(boot_id="forged", seq=99, type="code", value="0412", ts=1.0).to_bytes()
        found += [(T.prop_event("hall", contract.NODE_PROP), forged, "unknown_prop"),
                  (T.prop_event("hall", "ghost"), forged, "unknown_prop")]
    return found


# -- state snapshots ----------------------------------------------------------------------
def controller_state(rig: Rig) -> dict[str, Any]:
    service = rig.service
    reg = service.registry
    game = game_view(service.engine)
    return {
        "nodes": {n.id: (n.online, n.boot_id, n.last_seq, n.reboots) for n in reg.nodes.values()},
        "props": {k: (p.reported, p.ack, p.last_event) for k, p in reg.props.items()},
        "desired": {k: (w.action, w.relock_pending) for k, w in service.desired.items()},
        "game": (game["phase"], game["budget"], [(p["id"], p["status"]) for p in game["puzzles"]]),
        "events_seen": service.events_seen,
    }


def node_state(rig: Rig) -> dict[str, Any]:
    hall = rig.agents["hall"]
    status = hall.status()
    return {"props": status["props"], "session": status["session"], "holds": status["holds"],
            "outbox": status["outbox"]["events"], "view": hall.core.view, "seq": hall.core.seq,
            "relay": rig.relay_driven("hall", RELAY), "applied": hall.core.gate.applied_ids}


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What differs, one level down: for the assertion message."""
    out: dict[str, Any] = {}
    for key, b in before.items():
        a = after[key]
        if isinstance(b, dict) and isinstance(a, dict):
            out.update({f"{key}.{k}": (b.get(k), a.get(k)) for k in b.keys() | a.keys() if b.get(k) != a.get(k)})
        elif b != a:
            out[key] = (b, a)
    return out


def test_thousands_of_malformed_messages_change_nothing_and_are_all_counted(make_rig, wire, caplog):
    # each dropped message is logged as a warning: keep the captured log to errors
    caplog.set_level(logging.ERROR)
    # the corpus first: hypothesis draws faster with no apartment running beside it
    generated_at = time.monotonic()
    to_controller = corpus(controller_topic(), controller_verdict, "controller")
    to_node = corpus(node_topic(), node_verdict, "hall")
    generated_s = time.monotonic() - generated_at
    assert len(to_controller) + len(to_node) >= 10_000
    distinct = len({(t, p) for t, p, _c in to_controller + to_node})
    rig: Rig = make_rig(fault_game())
    rig.start_game("primo")
    hall = rig.agents["hall"]

    # fences: valid, harmless, and seen by each receiver's handler
    seen_fences: set[str] = set()
    rig.service.on_handled = lambda item: seen_fences.add(item.payload.id) if isinstance(
        item, Incoming) and isinstance(item.payload, TechReply) else None
    hall.on_handled = lambda _parts, payload: seen_fences.add(payload.reason or "") if isinstance(
        payload, Resync) else None
    before_c, before_n = controller_state(rig), node_state(rig)
    metrics_c, metrics_n = Counter(rig.service.bridge.metrics), Counter(hall.metrics)

    sent_at = time.monotonic()
    for name, messages in (("controller", to_controller), ("hall", to_node)):
        for start in range(0, len(messages), BATCH):
            for topic, payload, _counter in messages[start:start + BATCH]:
                wire.publish(topic, payload, wait=False)
            fence = f"fence-{name}-{start}"
            if name == "controller":
                wire.publish(T.node_tech_reply("hall"), TechReply(id=fence, ok=True).to_bytes(), wait=False)
            else:
                wire.publish(T.node_resync("hall"), Resync(reason=fence).to_bytes(), wait=False)
            wait_for(lambda f=fence: f in seen_fences, timeout=20, what=f"{name} to handle {fence}")
    handled_s = time.monotonic() - sent_at

    # no crash: both still work; no state change
    assert controller_state(rig) == before_c, changes(before_c, controller_state(rig))
    assert node_state(rig) == before_n, changes(before_n, node_state(rig))
    assert rig.service.bridge.metrics["handler_errors"] == metrics_c["handler_errors"]
    assert hall.metrics["handler_errors"] == metrics_n["handler_errors"]
    # every message counted where it belongs
    want_c = Counter(counter for _t, _p, counter in to_controller)
    # the hall reads its own status topic too: what the controller's corpus sent there
    also_n = [(t, p) for t, p, _c in to_controller
              if any(mqtt.topic_matches_sub(sub, t) for sub in SUBSCRIBED["hall"])]
    want_n = Counter(counter for _t, _p, counter in to_node)
    want_n.update(node_verdict(t, p) for t, p in also_n)
    got_c = Counter({k: rig.service.bridge.metrics[k] - metrics_c[k] for k in want_c})
    got_n = Counter({k: hall.metrics[k] - metrics_n[k] for k in want_n})
    assert got_c == want_c
    assert got_n == want_n
    rig.gesture("hall", "bell", "press")   # and the room still plays
    wait_for(lambda: rig.service.registry.props[("hall", "bell")].last_event is not None,
             what="a real event to get through after the storm")
    total = len(to_controller) + len(to_node)
    print(f"\n[fuzz] {total} messages, {distinct} distinct ({len(to_controller)} at the controller: {dict(want_c)}; "
          f"{len(to_node)} at the hall: {dict(want_n)}); generated in {generated_s:.1f} s, "
          f"published and handled in {handled_s:.1f} s")
