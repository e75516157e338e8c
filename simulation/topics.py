"""Topic names, topic filters and retained messages, as Mosquitto 2.0 handles them.

Matching follows MQTT 3.1.1 (and paho's ``topic_matches_sub``, checked against it by the
tests): ``+`` matches one level, ``#`` the rest (including the parent: ``a/#`` matches
``a``), and a wildcard in the first level never matches a topic starting with ``$``.

Two orders are Mosquitto's own, and observable:

- **overlapping subscriptions** of one client: Mosquitto 2.0 (``allow_duplicate_messages
  false``, its default for MQTT 3.1.1 clients) sends a message once, with the QoS of the
  first matching filter in its subscription-tree walk: at each level the literal branch,
  then ``+``, then ``#`` (:func:`walk_key`);
- **retained messages sent on SUBSCRIBE**: in the order of Mosquitto's retained tree,
  where each level keeps its children in order of creation and a node is never removed
  while the broker runs (clearing a retained message keeps its place); ``a/#`` sends the
  children of ``a`` depth first and ``a`` itself last (:class:`RetainedTree`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_TOPIC_BYTES = 65_535


def valid_topic(topic: str) -> bool:
    """A topic one may publish to: not empty, no wildcard, no NUL, at most 65535 bytes."""
    return (bool(topic) and "+" not in topic and "#" not in topic and "\0" not in topic
            and len(topic.encode()) <= MAX_TOPIC_BYTES)


def valid_filter(topic_filter: str) -> bool:
    """A subscription filter: ``+`` alone in its level, ``#`` alone in the last level."""
    if not topic_filter or "\0" in topic_filter or len(topic_filter.encode()) > MAX_TOPIC_BYTES:
        return False
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "+" in level and level != "+":
            return False
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
    return True


def matches(topic_filter: str, topic: str) -> bool:
    """Whether *topic* matches *topic_filter* (paho's ``topic_matches_sub`` semantics)."""
    if topic_filter == topic:
        return True
    f, t = topic_filter.split("/"), topic.split("/")
    if topic.startswith("$") and f[0] in ("+", "#"):
        return False
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


#: rank of a filter level in Mosquitto's tree walk: literal, then ``+``, then ``#``; a
#: filter that ends here (exact match at this depth) comes after a ``#`` below it
_LITERAL, _PLUS, _HASH, _END = 0, 1, 2, 3


def walk_key(topic_filter: str) -> tuple[int, ...]:
    """Sort key putting the filters that match one topic in Mosquitto's walk order."""
    ranks = [_PLUS if level == "+" else _HASH if level == "#" else _LITERAL
             for level in topic_filter.split("/")]
    return (*ranks, _END)


@dataclass(slots=True)
class Retained:
    topic: str
    payload: bytes
    qos: int


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    message: Retained | None = None


def _levels(topic: str) -> list[str]:
    # Mosquitto roots every topic not starting with '$' under an empty level
    return topic.split("/") if topic.startswith("$") else ["", *topic.split("/")]


class RetainedTree:
    """The retained messages, in Mosquitto's tree (see the module docstring for the order)."""

    def __init__(self) -> None:
        self._root = _Node()
        self.count = 0

    def store(self, topic: str, payload: bytes, qos: int) -> None:
        """Keep *payload* as *topic*'s retained message; an empty payload clears it."""
        node = self._root
        for level in _levels(topic):
            node = node.children.setdefault(level, _Node())
        self.count += (1 if payload else 0) - (1 if node.message else 0)
        node.message = Retained(topic, payload, qos) if payload else None

    def get(self, topic: str) -> Retained | None:
        node: _Node | None = self._root
        for level in _levels(topic):
            node = node.children.get(level) if node else None
        return node.message if node else None

    def all(self) -> list[Retained]:
        """Every retained message, parents before their children (how Mosquitto saves them)."""
        out: list[Retained] = []

        def visit(node: _Node) -> None:
            for child in node.children.values():
                if child.message:
                    out.append(child.message)
                visit(child)

        visit(self._root)
        return out

    def search(self, topic_filter: str) -> list[Retained]:
        """The retained messages a new subscription to *topic_filter* receives, in order."""
        out: list[Retained] = []
        self._search(self._root, _levels(topic_filter), 0, out)
        return out

    def _search(self, node: _Node, split: list[str], level: int, out: list[Retained]) -> bool:
        """Mosquitto's ``retain__search``; True when a ``#`` walked a level of children."""
        head, rest = split[0], split[1:]
        if head == "#" and not rest:
            walked = False
            for child in node.children.values():
                walked = True
                if child.message:
                    out.append(child.message)
                if child.children:
                    self._search(child, split, level + 1, out)
            return walked
        branches: Iterator[_Node]
        if head == "+":
            branches = iter(list(node.children.values()))
        else:
            found = node.children.get(head)
            branches = iter([found] if found is not None else [])
        for branch in branches:
            if rest:
                walked = self._search(branch, rest, level + 1, out)
                if (walked or (rest[0] == "#" and level > 0)) and branch.message:
                    out.append(branch.message)
            elif branch.message:
                out.append(branch.message)
        return False
