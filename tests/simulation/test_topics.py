"""Topic matching is paho's; the orders that Mosquitto makes observable are Mosquitto's
(the differential test checks them against the real broker)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from simulation.topics import RetainedTree, matches, valid_filter, valid_topic, walk_key

LEVEL = st.sampled_from(["a", "b", "$s", "", "ab"])
TOPIC = st.lists(LEVEL, min_size=1, max_size=4).map("/".join).filter(bool)
FILTER = st.builds(
    lambda levels, tail: "/".join([*levels, *tail]),
    st.lists(st.one_of(LEVEL, st.just("+")), min_size=0, max_size=4),
    st.sampled_from([[], ["#"]]),
).filter(bool)


@given(FILTER, TOPIC)
def test_matching_is_pahos_topic_matches_sub(topic_filter: str, topic: str) -> None:
    assert valid_filter(topic_filter)
    assert matches(topic_filter, topic) == topic_matches_sub(topic_filter, topic)


def test_names_and_filters_are_validated_as_mqtt_says() -> None:
    assert valid_topic("a/b") and valid_topic("/") and valid_topic("$SYS/x")
    assert not any(valid_topic(t) for t in ("", "a/+", "a/#", "a\0b", "x" * 70_000))
    assert all(valid_filter(f) for f in ("#", "+", "a/+/b", "a/#", "+/+", "/#"))
    assert not any(valid_filter(f) for f in ("", "a/#/b", "a#", "a/b+", "##", "a/+x"))


def test_overlapping_filters_sort_in_mosquittos_walk_order() -> None:
    """Literal before '+' before '#', level by level; 'a/#' comes before 'a' for topic a."""
    for_topic_a_x = ["#", "+/#", "+/x", "a/#", "a/+", "a/x"]
    assert sorted(for_topic_a_x, key=walk_key) == ["a/x", "a/+", "a/#", "+/x", "+/#", "#"]
    assert sorted(["a", "a/#", "+", "#"], key=walk_key) == ["a/#", "a", "+", "#"]


def test_retained_messages_come_in_mosquittos_tree_order() -> None:
    tree = RetainedTree()
    for topic in ("r/a", "r/b/c", "r/b", "r", "r/a/z"):
        tree.store(topic, topic.encode(), 1)
    tree.store("r/a", b"", 1)          # cleared: keeps its place in the tree…
    tree.store("r/a", b"again", 0)     # …so set again, it still comes first
    assert [m.topic for m in tree.search("r/#")] == ["r/a", "r/a/z", "r/b", "r/b/c", "r"]
    assert [m.topic for m in tree.search("r/+")] == ["r/a", "r/b"]
    assert [m.topic for m in tree.search("+/b/#")] == ["r/b/c", "r/b"]
    assert tree.get("r/a") is not None and tree.get("r/a").qos == 0
    assert tree.count == 5
    tree.store("$SYS/x", b"1", 0)
    assert "$SYS/x" not in [m.topic for m in tree.search("#")]
    assert [m.topic for m in tree.search("$SYS/#")] == ["$SYS/x"]
    assert [m.topic for m in tree.all()][:2] == ["r", "r/a"]
