"""Fixtures of the controller tests: a small game of their own and fake clocks.

The game is not the shipped one, so the shipped game can change without breaking these
tests: two rooms, a keypad code per parcours, a box (may relock itself), an exit door,
a button, a lamp, clues with costs and English, a puzzle of one parcours only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from config.game import Game
from config.loader import parse_game

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from tests.conftest import BrokerHandle

GAME = """\
apartment:
  id: {apartment_id}
  name: Appartement d'essai
  duration_min: 60
  max_players: 6
  inactivity_warning_min: 3
  inactivity_alert_min: 5
  budget: {{start: {{primo: 1000, locataire: 900}}}}
nodes:
  - id: hall
    label: Hall
    props:
      - {{id: keypad, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20], code_length: 4}}
      - {{id: box_lock, kind: maglock, relay: 17, door: 27, relock_after_restart: true}}
  - id: salon
    label: Salon
    props:
      - {{id: door_lock, kind: maglock, relay: 17, door: 27, exit_door: true}}
      - {{id: bell, kind: button, pin: 22}}
      - {{id: lamp, kind: relay, pin: 23}}
puzzles:
  - id: mailbox
    label: La boîte aux lettres
    theme: budget
    room: hall
    solve: {{when: event, prop: hall.keypad, event: code, equals: {{primo: "0412", locataire: "1507"}}}}
    actions:
      - {{do: unlock, target: hall.box_lock}}
      - {{do: budget, amount: -100, label: Loyer}}
    clues:
      - text: {{primo: {{fr: "La date du bail.", en: "The lease date."}}, locataire: "L'avis d'échéance."}}
      - {{text: "Jour puis mois.", cost: 20}}
      - {{text: "Seulement pour les primo.", parcours: [primo]}}
  - id: bell
    label: La sonnette
    theme: rights
    room: salon
    requires: [mailbox]
    solve: {{when: event, prop: salon.bell, event: press}}
    actions:
      - {{do: unlock, target: salon.door_lock}}
      - {{do: command, target: salon.lamp, action: "on"}}
      - {{do: budget, amount: 30, label: Voisin aidé}}
  - id: extra
    label: Énigme des primo
    theme: diy
    room: hall
    requires: [mailbox]
    parcours: [primo]
    solve: {{when: event, prop: hall.keypad, event: code, equals: "1111"}}
  - id: final
    label: La sortie
    theme: story
    room: salon
    requires: [bell]
    final: true
    solve: {{when: event, prop: hall.keypad, event: code, equals: "9999"}}
"""


def make_game(apartment_id: str | None = None) -> Game:
    """The test game, under its own apartment id (so tests never share MQTT topics)."""
    apartment_id = apartment_id or f"t{uuid.uuid4().hex[:10]}"
    return parse_game(GAME.format(apartment_id=apartment_id)).game


class FakeClocks:
    """A monotonic clock and a wall clock that move only when told."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.now = 1_760_000_000.0   # a wall-clock time (October 2025)

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.now += seconds


@pytest.fixture
def game() -> Game:
    return make_game()


@pytest.fixture
def clocks() -> FakeClocks:
    return FakeClocks()


@pytest.fixture
def client(request: pytest.FixtureRequest, embedded_broker: BrokerHandle, tmp_path: Path, game: Game,
           clocks: FakeClocks) -> Iterator[TestClient]:
    """The controller's app over the embedded broker, on the fake clocks, sending a module's
    ``CLIENT_HEADERS`` with every request (a module may define its own ``client``)."""
    from fastapi.testclient import TestClient

    from controller.main import create_app
    from protocol.mqtt import BrokerAddress

    app = create_app(game=game, broker=BrokerAddress(embedded_broker.host, embedded_broker.port),
                     db_path=tmp_path / "escape.db", clock=clocks.monotonic, wall=clocks.wall)
    with TestClient(app, headers=getattr(request.module, "CLIENT_HEADERS", None)) as c:
        yield c
