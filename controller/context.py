"""What every part of the service reads, and a reload of the game file replaces as one."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from config.game import Game
from controller.engine import Engine
from controller.registry import Registry
from props.models import MaglockConfig, PropConfig

Key = tuple[str, str]   # (node id, prop id)


@dataclass(slots=True)
class Context:
    """The game, its engine, the registry of its nodes, the props the game declares, and
    the controller's monotonic clock (every part times its waits on it).

    The parts of :class:`controller.service.GameService` hold this one object, never its
    fields: a resumed session or a reloaded game (:meth:`replace`) is seen by all at once.
    """

    game: Game
    engine: Engine
    registry: Registry
    clock: Callable[[], float] = time.monotonic
    configs: dict[Key, PropConfig] = field(init=False)
    maglocks: dict[Key, MaglockConfig] = field(init=False)

    def __post_init__(self) -> None:
        self._derive()

    def _derive(self) -> None:
        self.configs = {(n.id, p.id): p for n in self.game.nodes for p in n.props}
        self.maglocks = {key: p for key, p in self.configs.items() if isinstance(p, MaglockConfig)}

    def replace(self, game: Game, engine: Engine, registry: Registry) -> None:
        self.game, self.engine, self.registry = game, engine, registry
        self._derive()
