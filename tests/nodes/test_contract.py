"""The MQTT contract: topics built and parsed in one place, payloads validated."""

from __future__ import annotations

import json

import pytest

from protocol.contract import (
    Command,
    ContractError,
    NodeHeartbeat,
    NodeStatus,
    PropEvent,
    PropState,
    TopicParts,
    Topics,
    decode,
    node_heartbeat_interval,
)

T = Topics("temoin")


def test_topics_round_trip():
    assert T.parse(T.prop_event("hall", "k")) == TopicParts("event", "hall", "k")
    assert T.parse(T.prop_set("hall", "lock")) == TopicParts("set", "hall", "lock")
    assert T.parse(T.node_status("hall")) == TopicParts("status", "hall")
    assert T.parse(T.node_resync("hall")) == TopicParts("resync", "hall")
    assert T.parse(T.node_heartbeat("hall")) == TopicParts("heartbeat", "hall")
    assert "escape/temoin/nodes/+/heartbeat" in T.controller_subscriptions()
    assert T.parse(T.controller_status) == TopicParts("controller_status")
    assert T.parse(T.game_state) == TopicParts("game_state")
    assert T.parse(T.node_tech_reply("hall")) == TopicParts("tech_reply", "hall")


@pytest.mark.parametrize("topic", [
    "escape/other/nodes/hall/status", "escape/temoin/nodes/Hall/status",
    "escape/temoin/nodes/hall/props/k/bogus", "escape/temoin/nodes/hall", "x",
    "escape/temoin/nodes/hall/props/+/set",
])
def test_foreign_or_malformed_topics_are_refused(topic: str):
    with pytest.raises(ContractError):
        T.parse(topic)


def test_builders_refuse_ids_that_would_break_topics():
    with pytest.raises(ContractError):
        T.prop_set("hall/+", "k")
    with pytest.raises(ContractError):
        Topics("Temoin")


def test_payloads_carry_version_1_and_skip_nones():
    status = NodeStatus(online=False, boot_id="b1")
    assert json.loads(status.to_bytes()) == {"v": 1, "online": False, "boot_id": "b1"}


def test_state_keeps_prop_fields_beside_the_envelope():
    state = decode(b'{"v":1,"locked":true,"door":"closed","ack":"c1"}', PropState)
    assert state.ack == "c1"
    assert state.fields == {"locked": True, "door": "closed"}


@pytest.mark.parametrize("raw", [
    b"not json", b"\xff\xfe", b"[1,2]", b'{"v":2,"online":true,"boot_id":"b"}',
    b'{"v":1,"id":"x","action":"unlock","extra":1}', b'{"v":1,"id":"","action":"unlock"}',
    b"{" * 100_000,
])
def test_bad_payloads_raise_contract_error(raw: bytes):
    with pytest.raises(ContractError):
        decode(raw, Command)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400"])
@pytest.mark.parametrize(("model", "template"), [
    (PropState, '{"v":1,"ts":1.0,"buffer_length":%s}'),                 # a state's own field
    (PropState, '{"v":1,"ts":1.0,"bins":{"a":[%s]}}'),                  # nested in one
    (PropState, '{"v":1,"ts":%s}'),
    (PropEvent, '{"v":1,"boot_id":"b","seq":1,"type":"x","ts":1.0,"value":{"n":[%s]}}'),
    (NodeHeartbeat, '{"v":1,"boot_id":"b","ts":%s}'),
])
def test_non_finite_numbers_are_refused_wherever_they_are(number: str, model: type, template: str):
    with pytest.raises(ContractError, match="number"):
        decode((template % number).encode(), model)
    assert decode((template % "1.5").encode(), model) is not None, "a finite number passes"


def test_event_requires_boot_seq_type_ts():
    with pytest.raises(ContractError, match="boot_id"):
        decode(b'{"v":1,"seq":1,"type":"code","ts":1}', PropEvent)


def test_birth_announces_keepalive_and_heartbeat_and_the_heartbeat_is_small():
    birth = NodeStatus(online=True, boot_id="b1", keepalive=5, heartbeat=node_heartbeat_interval(5))
    assert decode(birth.to_bytes(), NodeStatus).heartbeat == pytest.approx(5 / 3)
    beat = NodeHeartbeat(boot_id="b1", ts=1.0, autonomous=False, outbox=0)
    assert len(beat.to_bytes()) < 100
    assert decode(beat.to_bytes(), NodeHeartbeat) == beat
    with pytest.raises(ContractError):
        decode(b'{"v":1,"boot_id":"b1","outbox":-1}', NodeHeartbeat)
