"""The technician page (tablet size) shows the controller's game file and each node's game
and software against it: a node that runs another part, or older software, is named in
French with what to do; a new file is reloaded from the page and reaches the hall's node.
The console's check list names such a node first.

Over a real Mosquitto: the controller under uvicorn, the hall as a node agent on
MockFactory, the entrance as a raw paho client announcing an older node.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory

from config.loader import load_game
from controller.api.auth import AuthSettings
from controller.main import create_app
from nodes.agent import NodeAgent
from protocol.contract import Topics
from protocol.mqtt import BrokerAddress
from tests.browser.conftest import TECH_PASSWORD, _require_chromium, chromium, serving, shot
from tests.faults.conftest import game_file
from tests.support.mosquitto import Mosquitto, require_or_skip_mosquitto

pytestmark = [pytest.mark.browser, pytest.mark.mosquitto]
TIMEOUT_MS = 20_000
TABLET = {"width": 1280, "height": 800}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, Path, Callable[[str], None]]]:

    _require_chromium()
    require_or_skip_mosquitto()
    path = game_file(tmp_path)
    game = load_game(path)
    topics = Topics(game.apartment.id)
    with Mosquitto.plain(workdir=tmp_path / "mosquitto") as broker:
        address = BrokerAddress(broker.host, broker.port)
        hall = NodeAgent(game=game, node_id="hall", broker=address, pin_factory=MockFactory(),
                         simulate=True, data_dir=tmp_path / "hall")
        hall.start()
        old = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="old-entree",
                          protocol=mqtt.MQTTv311)
        old.connect(broker.host, broker.port, keepalive=30)
        old.loop_start()

        def announce(game_hash: str) -> None:
            """The entrance's status, as an older node would send it, running *game_hash*."""
            old.publish(topics.node_status("entree"), json.dumps({
                "v": 1, "online": True, "boot_id": "oldentree1", "version": "0.0.9",
                "props": [{"id": p.id, "kind": p.kind} for p in game.node("entree").props],
                "simulated": True, "ts": time.time(), "game": game_hash}),
                qos=1, retain=True).wait_for_publish(5)

        announce("0123456789abcdef")
        auth = AuthSettings(gm_password="gm-game-file-password", tech_password=TECH_PASSWORD,
                            screen_secret="game-file-screen-secret")
        app = create_app(game=game, broker=address, auth=auth, db_path=tmp_path / "escape.db",
                         config_path=path)
        try:
            with serving(app) as url:
                yield url, path, announce
        finally:
            old.loop_stop()
            old.disconnect()
            hall.stop()


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


def test_the_technician_sees_each_nodes_game_and_software_and_reloads_the_file(
        stack: tuple[str, Path, Callable[[str], None]], browser: object) -> None:
    url, path, _announce = stack
    context = browser.new_context(viewport=TABLET)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{url}/login?next=/tech")
    page.fill("#password", TECH_PASSWORD)
    page.click("#submit")
    page.wait_for_url("**/tech")

    page.wait_for_selector('#node-games tr[data-node="hall"][data-game="same"]')
    page.wait_for_selector('#node-games tr[data-node="entree"][data-game="waiting"]')
    assert "game.yaml" in page.inner_text("#game-file")
    assert "✔ à jour" in page.inner_text('#node-games tr[data-node="hall"]')
    entree = page.inner_text('#node-games tr[data-node="entree"]')
    assert "⚠ 0.0.9" in entree and "pas encore à jour" in entree, entree
    warnings = page.inner_text("#game-warnings")
    assert "Entrée (entree) — n'a pas encore le jeu à jour" in warnings, warnings
    assert "logiciel différent de celui du contrôleur" in warnings
    assert "Hall (hall)" not in warnings
    shot(page, "tech-game-file")

    running = page.inner_text('#node-games tr[data-node="hall"] td.num')
    path.write_text(path.read_text(encoding="utf-8").replace("label: Hall\n", "label: Hall d'entrée\n", 1),
                    encoding="utf-8")
    page.click("#game-reload")
    page.wait_for_selector("#game-reload-result:has-text('Nouveau jeu pris')")
    assert "hall" in page.inner_text("#game-reload-result")
    page.wait_for_function(
        """(before) => { const row = document.querySelector('#node-games tr[data-node="hall"]');
                         return row && row.dataset.game === "same" && row.querySelector("td.num").textContent !== before; }""",
        arg=running)
    assert "Hall d'entrée (hall)" in page.inner_text('#node-games tr[data-node="hall"]')
    context.close()


def test_the_console_check_list_names_a_node_without_its_game_first_in_place(
        stack: tuple[str, Path, Callable[[str], None]], browser: object) -> None:
    """The nodes come first in the one check list, kept in place through redraws (a list
    rebuilt around them would recreate them at every push), and go once caught up."""
    url, _path, announce = stack
    context = browser.new_context(viewport=TABLET)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{url}/login?next=/console")
    page.fill("#password", "gm-game-file-password")
    page.click("#submit")
    page.wait_for_url("**/console")

    page.wait_for_selector('#check-list > li:first-child[data-node="entree"][data-status="game_waiting"]')
    props = page.locator("#check-list > li[data-prop]").count()
    assert props and page.locator("#check-list > li").count() == props + 1
    assert "pas encore" in page.inner_text('#check-list li[data-node="entree"]')
    kept = page.evaluate("""() => { const item = document.querySelector('#check-list li[data-node="entree"]');
                                    window.render(); window.render();
                                    return document.querySelector("#check-list > li:first-child") === item; }""")
    assert kept, "the node's item was rebuilt by a redraw"
    assert page.locator("#check-list > li").count() == props + 1

    expected = next(n for n in context.request.get(f"{url}/api/state").json()["nodes"]
                    if n["id"] == "entree")["game"]["expected"]
    announce(expected)   # the entrance now runs its part
    page.wait_for_selector('#check-list li[data-node="entree"]', state="detached")
    assert page.locator("#check-list > li").count() == props
    assert page.locator("#check-list > li[data-prop]").count() == props
    context.close()
