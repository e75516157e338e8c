"""The whole apartment on one scheduler: the broker, the controller and every room's node.

    with Apartment.open(seed=7, game=game, directory=tmp) as flat:
        flat.run_for(10.0)
        flat.controller.service.orders.begin_check(parcours="primo", players=3)

Everything runs on virtual time inside ``flat.world.scheduler`` (``docs/simulation.md``);
:meth:`Apartment.open` installs the product's time stamps and ids (``simulation/sources``)
for the run and puts them back at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterable, Iterator
from pathlib import Path

from config.game import Game
from simulation.broker import BrokerConfig
from simulation.controller import SimController
from simulation.node import SimNode
from simulation.sources import Sources
from simulation.world import World


@functools.cache
def production_broker() -> BrokerConfig:
    """The shipped ``mosquitto.conf`` (read once)."""
    return BrokerConfig.production()


class Apartment:
    """The broker, the controller and the nodes of *game*, each on its own machine."""

    def __init__(self, seed: int, game: Game, directory: Path, *, trace: bool = False,
                 legacy_nodes: Iterable[str] = (), persistence: bool = True) -> None:
        config = production_broker()
        if not persistence:
            config = dataclasses.replace(config, persistence=False)
        self.seed = seed
        self.game = game
        self.world = World.create(seed, config=config, trace=trace)
        self.scheduler = self.world.scheduler
        self.sources = Sources(seed)
        self.controller = SimController(self.world, self.sources, game, directory / "escape.db")
        legacy = set(legacy_nodes)
        self.nodes = {n.id: SimNode(self.world, self.sources, game, n, directory / n.id,
                                    legacy_id=n.id in legacy) for n in game.nodes}

    @classmethod
    @contextlib.contextmanager
    def open(cls, seed: int, game: Game, directory: Path, **options: object) -> Iterator[Apartment]:
        """An apartment with every process started, the contract's sources installed."""
        flat = cls(seed, game, directory, **options)  # type: ignore[arg-type]
        with flat.sources.installed():
            flat.controller.start()
            for node in flat.nodes.values():
                node.start()
            yield flat

    @property
    def now(self) -> float:
        return self.scheduler.now

    def run_for(self, seconds: float) -> None:
        self.scheduler.run_for(seconds)
