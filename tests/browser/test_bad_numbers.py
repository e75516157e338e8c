"""The game master's console with NaN and Infinity thrown at the controller.

A raw MQTT client publishes, on a real room's topics, births, heartbeats, events, states
and technician replies with a non-finite number in each numeric place. One ``Infinity``
in a WebSocket push once froze the console (``JSON.parse`` threw; nothing rendered after).
Here the console, at tablet size, keeps rendering: no script error, the timer moves, a
solve shows.
"""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest

from protocol.contract import PropEvent, Topics, new_id, now
from tests.browser.conftest import GM_PASSWORD, Server, shot
from tests.support.badnumbers import forged

pytestmark = pytest.mark.browser
TIMEOUT_MS = 20_000
TABLET = {"width": 1280, "height": 800}


def test_the_console_keeps_rendering_with_nan_thrown_at_the_controller(browser: object, server: Server):
    service = server.app.state.service   # type: ignore[attr-defined]
    context = browser.new_context(viewport=TABLET)
    context.set_default_timeout(TIMEOUT_MS)
    # every script error of the page, kept by the page itself
    context.add_init_script("window.__errors = []; window.addEventListener('error', "
                            "(e) => window.__errors.push(String(e.message)));")
    page = context.new_page()
    page.goto(f"{server.url}/login?next=/console")
    page.fill("#password", GM_PASSWORD)
    page.click("#submit")
    page.wait_for_url("**/console")
    page.wait_for_selector("#link.ok")
    assert page.evaluate("""async () => (await fetch('/api/game/start', {method: 'POST',
        headers: {"Content-Type": "application/json"}, body: JSON.stringify({parcours: 'primo', players: 3})})).ok""")
    page.wait_for_function("document.getElementById('phase').textContent === 'En cours'")

    broker = service.bridge.broker
    topics = Topics(service.game.apartment.id)
    wire = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"nan-{new_id()}")
    wire.connect(broker.host, broker.port)
    wire.loop_start()
    try:
        boot = service.registry.nodes["hall"].boot_id
        messages = forged(topics, "hall", boot, keypad="mailbox_keypad", lock="mailbox_lock")
        bad, fences = service.bridge.metrics["bad_payloads"], service.bridge.metrics["unknown_prop"]
        for topic, payload in messages:
            wire.publish(topic, payload, qos=1).wait_for_publish(5)
        # a fence: a well-formed event of a prop that does not exist, counted after them all
        fence = PropEvent(boot_id=boot, seq=1, type="x", ts=now()).to_bytes()
        wire.publish(topics.prop_event("hall", "no_such_prop"), fence, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while service.bridge.metrics["unknown_prop"] == fences and time.monotonic() < deadline:
            time.sleep(0.02)
        assert service.bridge.metrics["unknown_prop"] == fences + 1, "the fence was read"
    finally:
        wire.disconnect()
        wire.loop_stop()

    # the console renders on: the timer moves, and a solve typed in the hall shows
    first = page.text_content("#remaining")
    page.wait_for_function(f"document.getElementById('remaining').textContent !== '{first}'")
    assert page.evaluate("""async () => (await fetch('/api/sim/hall/mailbox_keypad', {method: 'POST',
        headers: {"Content-Type": "application/json"}, body: JSON.stringify({gesture: 'type', value: '0412'})})).ok""")
    page.wait_for_selector('#puzzles li[data-puzzle="mailbox"][data-status="solved"]')
    page.wait_for_selector('.prop[data-prop="hall.mailbox_lock"][data-locked="false"]')
    shot(page, "console-after-nan")
    errors = page.evaluate("window.__errors")
    assert errors == [], errors
    assert service.bridge.metrics["bad_payloads"] - bad == len(messages), "every one refused at the door"
    context.close()
