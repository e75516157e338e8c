"""What the group is stuck on, as the console's snapshot shows it: per open puzzle, since
when it is open, the codes typed on its props, the last prop touched, the one open longest,
and a clue suggested (not sent) after ``apartment.hint_after_min`` without progress."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.game import Game
from controller.mqtt import Incoming, MqttBridge
from controller.service import GameService
from controller.store import Store
from protocol.contract import NodeStatus, PropEvent, TopicParts, Topics
from protocol.mqtt import BrokerAddress
from tests.controller.conftest import FakeClocks


@pytest.fixture
def service(tmp_path: Path, game: Game, clocks: FakeClocks):
    store = Store(tmp_path / "escape.db")
    bridge = MqttBridge(topics=Topics(game.apartment.id), broker=BrokerAddress("127.0.0.1", 9),
                        boot_id="ctl")
    svc = GameService(game=game, bridge=bridge, store=store, clock=clocks.monotonic, wall=clocks.wall)
    for node in ("hall", "salon"):
        svc.registry.on_status(node, NodeStatus(online=True, boot_id=f"boot-{node}"))
    yield svc
    store.close()


class Feed:
    def __init__(self, service: GameService) -> None:
        self.service = service
        self.seq = 0

    def __call__(self, node: str, prop: str, type_: str, value: Any = None) -> None:
        self.seq += 1
        self.service.handle(Incoming(TopicParts("event", node, prop),
                                     PropEvent(boot_id=f"boot-{node}", seq=self.seq, type=type_,
                                               value=value, ts=1.0), retained=False))


def stuck(service: GameService) -> dict[str, dict[str, Any]]:
    return {p["puzzle"]: p for p in service.views.snapshot()["stuck"]}


def test_wrong_codes_the_last_touch_and_the_hint_suggestion(service: GameService, clocks: FakeClocks) -> None:
    feed = Feed(service)
    service.orders.start_game(parcours="primo", players=4)
    assert service.views.snapshot()["hint_after_s"] == 8 * 60
    assert list(stuck(service)) == ["mailbox"]
    clocks.advance(60)
    for key in "0413":
        feed("hall", "keypad", "key", key)
    feed("hall", "keypad", "code", "0413")
    clocks.advance(5)
    feed("hall", "keypad", "key", "7")
    mailbox = stuck(service)["mailbox"]
    assert [(t["type"], t["value"]) for t in mailbox["tries"]] == [("code", "0413")], \
        "only what could solve it counts as a try"
    assert (mailbox["touched"]["type"], mailbox["touched"]["value"]) == ("key", "7")
    assert mailbox["available_at"] == 0 and mailbox["longest"] and not mailbox["hint_due"]
    clocks.advance(8 * 60)
    assert stuck(service)["mailbox"]["hint_due"], "no progress for 8 min: suggest a clue"
    assert service.views.snapshot()["game"]["clues"] == [], "suggested, never sent"


def test_solving_opens_the_next_puzzles_and_the_oldest_is_marked(service: GameService,
                                                                 clocks: FakeClocks) -> None:
    feed = Feed(service)
    service.orders.start_game(parcours="primo", players=4)
    clocks.advance(120)
    feed("hall", "keypad", "code", "0412")      # solves the mailbox
    now = stuck(service)
    assert set(now) == {"bell", "extra"}
    assert all(p["available_at"] == pytest.approx(120, abs=0.2) for p in now.values())
    assert all(p["tries"] == [] and not p["hint_due"] for p in now.values())
    assert sum(p["longest"] for p in now.values()) == 1
    clocks.advance(60)
    feed("salon", "bell", "press")              # solves the bell: the final opens
    clocks.advance(9 * 60)
    now = stuck(service)
    assert set(now) == {"extra", "final"}
    assert now["extra"]["longest"] and not now["final"]["longest"], "open since 2:00, the final since 3:00"
    assert now["extra"]["hint_due"] and now["final"]["hint_due"]
    feed("hall", "keypad", "code", "1234")      # a try on both: still no progress
    assert [t["value"] for t in stuck(service)["final"]["tries"]] == ["1234"]
    assert stuck(service)["final"]["hint_due"]


def test_nothing_outside_a_game(service: GameService) -> None:
    assert service.views.snapshot()["stuck"] == []
    service.orders.start_game(parcours="primo", players=4)
    service.orders.stop_game()
    assert service.views.snapshot()["stuck"] == []
