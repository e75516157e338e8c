"""How fast the simulated broker runs: messages per second of real CPU through it.

Seven publishers (the seven nodes) each publish a message every 10 virtual ms to one or
more subscribers (the controller) through the simulated broker and network, with the
default link delays; the bench runs the world until every message is delivered and
divides by the wall time. The figure bounds how many simulated games per second the
deterministic simulator can play: a game is a few hundred messages.

    .venv/bin/python -m bench.simulation [--quick]     # alone, prints JSON
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.results_model import Section
from simulation.world import World

PUBLISHERS = 7


def measure(*, messages: int, qos: int, subscribers: int = 1, trace: bool = False,
            seed: int = 1) -> dict[str, Any]:
    """Publish *messages* in all; return the rates and what was delivered."""
    world = World.create(seed, trace=trace)
    received = [0]

    def count(*_: Any) -> None:
        received[0] += 1

    for i in range(subscribers):
        sub = world.client(f"controller{i}")
        sub.on_message = count
        sub.subscribe("node/#", 1)
    pubs = [world.client(f"node{i}") for i in range(PUBLISHERS)]
    for p in pubs:
        p.max_inflight_messages_set(100)
    world.run_for(1.0)
    per_publisher = messages // PUBLISHERS

    def burst(n: int) -> None:
        for i, p in enumerate(pubs):
            p.publish(f"node/{i}/event", f"event {n} of node {i}", qos=qos)
        if n + 1 < per_publisher:
            world.scheduler.call_later(0.01, burst, n + 1)

    expected = per_publisher * PUBLISHERS * subscribers
    steps0, virtual0 = world.scheduler.steps, world.now
    wall0, cpu0 = time.perf_counter(), time.process_time()
    world.scheduler.call_soon(burst, 0)
    world.scheduler.run_until_true(lambda: received[0] >= expected, timeout=per_publisher * 0.01 + 60)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if received[0] != expected:
        msg = f"delivered {received[0]} of {expected} messages"
        raise RuntimeError(msg)
    published = per_publisher * PUBLISHERS
    return {"qos": qos, "subscribers": subscribers, "trace": trace, "messages": published,
            "deliveries": received[0], "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "messages_per_s": round(published / wall), "deliveries_per_s": round(received[0] / wall),
            "scheduler_steps_per_s": round((world.scheduler.steps - steps0) / wall),
            "virtual_s_per_wall_s": round((world.now - virtual0) / wall, 1)}


def run(*, quick: bool, workdir: Path | None = None) -> Section:
    n = 14_000 if quick else 140_000
    cases = {"qos1": measure(messages=n, qos=1), "qos0": measure(messages=n, qos=0),
             "qos1_traced": measure(messages=n, qos=1, trace=True),
             "qos1_fanout3": measure(messages=n // 3, qos=1, subscribers=3)}
    section = Section(details=cases)
    for name, case in cases.items():
        section.metric(f"sim.{name}.messages_per_s", case["messages_per_s"], "msg/s", better="higher")
    section.metric("sim.qos1_fanout3.deliveries_per_s", cases["qos1_fanout3"]["deliveries_per_s"],
                   "deliveries/s", better="higher")
    section.metric("sim.qos1.virtual_s_per_wall_s", cases["qos1"]["virtual_s_per_wall_s"], "×",
                   better="higher")
    section.target("sim.qos1.messages_per_s", target="QoS 1 messages per second through the simulated broker",
                   measured=cases["qos1"]["messages_per_s"], limit=10_000, at_most=False, unit="msg/s")
    section.notes.append(f"{PUBLISHERS} publishers, one message each every 10 virtual ms; trace off unless "
                         "'traced'; QoS 1 = PUBLISH + PUBACK each way")
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick).as_dict(), indent=2))


if __name__ == "__main__":
    main()
