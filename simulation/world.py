"""One simulated world: the scheduler, the network, the broker and the machines around it.

    world = World.create(seed=7)
    node = world.client("hall", keepalive=5)         # a SimClient on its own machine
    world.run_for(10.0)

Everything else (the node and controller shells, the actors, the fault model) plugs into
``world.scheduler`` (time, randomness), ``world.network`` (faults on links) and
``world.broker`` (restarts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulation.broker import BrokerConfig, SimBroker
from simulation.client import SimClient
from simulation.network import LinkProfile, Network
from simulation.scheduler import Machine, Scheduler

BROKER = "broker"


@dataclass
class World:
    scheduler: Scheduler
    network: Network
    broker: SimBroker
    machines: dict[str, Machine] = field(default_factory=dict)

    @classmethod
    def create(cls, seed: int, *, config: BrokerConfig | None = None, profile: LinkProfile | None = None,
               trace: bool = True, start: bool = True) -> World:
        scheduler = Scheduler(seed, trace=trace)
        network = Network(scheduler, profile=profile)
        broker_machine = Machine(scheduler, BROKER)
        world = cls(scheduler, network, SimBroker(network, broker_machine, config), {BROKER: broker_machine})
        if start:
            world.broker.start()
        return world

    def machine(self, name: str) -> Machine:
        """The machine called *name* (created on first use)."""
        found = self.machines.get(name)
        if found is None:
            found = self.machines[name] = Machine(self.scheduler, name)
        return found

    def client(self, machine: str, client_id: str | None = None, *, keepalive: int = 60,
               connect: bool = True, **options: Any) -> SimClient:
        """A SimClient on *machine* (client id: the machine's name), connecting unless told."""
        client = SimClient(self.network, self.machine(machine), client_id or machine, **options)
        if connect:
            client.connect(keepalive=keepalive)
        return client

    def run_for(self, seconds: float) -> None:
        self.scheduler.run_for(seconds)

    @property
    def now(self) -> float:
        return self.scheduler.now
