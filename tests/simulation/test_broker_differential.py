"""The simulated broker against real Mosquitto: the same scripts, the same deliveries.

Each scenario of :mod:`tests.simulation.scenarios` runs once over a fresh Mosquitto
(raw paho clients, their own threads and sockets) and over the simulation with three
seeds (different delays each); per client, the events — CONNACK session flags, SUBACK
codes, each message's topic, payload, QoS, retain and DUP flags, disconnections — must
be identical, in order (per publisher where several publish at once). Each scenario also
checks the behaviour itself on both, so neither can pass by seeing nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.simulation.drivers import MosquittoDriver, SimDriver
from tests.simulation.scenarios import SCENARIOS, Scenario
from tests.support.mosquitto import require_or_skip_mosquitto

SEEDS = (1, 2, 3)


@pytest.mark.mosquitto
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_the_simulated_broker_delivers_what_mosquitto_delivers(scenario: Scenario, tmp_path: Path) -> None:
    require_or_skip_mosquitto()
    real = MosquittoDriver(tmp_path, persistence=scenario.persistence)
    try:
        scenario.run(real)
    finally:
        real.close()
    scenario.check(real.events)
    for seed in SEEDS:
        sim = SimDriver(seed, persistence=scenario.persistence)
        scenario.run(sim)
        assert scenario.project(sim.events) == scenario.project(real.events), f"seed {seed}"
