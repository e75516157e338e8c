"""The technician's requests to a running node (``tech`` topic): wiring, self-test, enroll.

A request may take seconds (a self-test clicks a relay and waits for a hand; enroll waits
for a tag), so the agent answers it on a thread of its own; the same functions serve the
``node test`` / ``node enroll`` tools, which build the props without MQTT.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from config.game import Node
from nodes.gate import Refusal
from props.base import Prop
from props.kinds import RFID_KINDS
from protocol.contract import TechReply, TechRequest

log = logging.getLogger(__name__)


def wait_next_tag(prop: Any, timeout: float) -> str | None:
    """The UID of the next tag presented to an RFID prop (any reader kind), or None.

    It listens to the prop's own events (``tag`` for a reader, ``placed`` for a sorting
    station), chaining whatever listener was there, so it works on a running node too.
    """
    if prop.kind not in RFID_KINDS:
        msg = f"{prop.name or prop} is a {prop.kind}, not an RFID reader"
        raise ValueError(msg)
    seen: list[str] = []
    got = threading.Event()
    previous = prop.when_event

    def listen(event_type: str, value: Any) -> None:
        if event_type == "tag" and isinstance(value, str):
            seen.append(value)
            got.set()
        elif event_type == "placed" and isinstance(value, dict):
            seen.append(str(value.get("uid")))
            got.set()
        if previous is not None:
            previous(event_type, value)

    prop.when_event = listen
    try:
        return seen[0] if got.wait(timeout) else None
    finally:
        prop.when_event = previous


def answer(request: TechRequest, *, node: Node, props: Mapping[str, Prop],
           why_held: Callable[[str], Refusal | None]) -> tuple[TechReply, Refusal | None]:
    """Do what *request* asks; the reply, and the refusal if a held maglock refused it.

    A maglock's self-test locks it for a moment: never while it is held open (*why_held*:
    the emergency, or a lock the node opened on its own).
    """
    ok, result, message = False, None, ""
    refusal: Refusal | None = None
    prop = props.get(request.prop or "")
    try:
        if request.action == "wiring":
            from nodes.wiring import wiring_sheet

            ok, result = True, wiring_sheet(node, markdown=True)
        elif prop is None:
            message = f"unknown prop {request.prop!r}"
        elif request.action == "self_test" and (refusal := why_held(request.prop or "")) is not None:
            message = f"self-test refused: {refusal.reason}"
        elif request.action == "self_test":
            outcome = prop.self_test(timeout=request.timeout)
            ok, result, message = outcome.passed, list(outcome.steps), outcome.message
        elif request.action == "enroll":
            uid = wait_next_tag(prop, request.timeout)
            ok, result = uid is not None, uid
            message = "" if ok else "no tag presented in time"
    except Exception as exc:
        log.exception("tech request %s failed", request.action)
        message = str(exc)
    return TechReply(id=request.id, ok=ok, result=result, message=message), refusal
