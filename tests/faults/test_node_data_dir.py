"""Fault: a node started without ``--data-dir`` (nor ``ESCAPE_DATA_DIR``) is restarted with
events waiting in its outbox.

It keeps them in a persistent directory of its own (``~/.local/state/escape-apartment/<id>``
here: HOME points into the test's folder), never in a temporary one: what players typed
while the controller was away is delivered after the restart, once. Real processes
(``escape-apartment node --simulate``), a real Mosquitto, a bare MQTT client as the
controller.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from nodes.datadir import SYSTEM_STATE_DIR
from protocol.contract import Gesture, NodeHeartbeat, NodeStatus, PropEvent, Topics, new_id
from tests.faults.conftest import _Process, console_command, game_file, wait_for
from tests.support.fake_controller import FakeController
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mosquitto

T = Topics("faults")


class NodeWithoutDataDir(_Process):
    """``escape-apartment node --simulate`` with no --data-dir, ESCAPE_DATA_DIR nor
    XDG_STATE_HOME, and *home* as HOME."""

    def __init__(self, *, game: Path, broker: Mosquitto, home: Path, log: Path) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("ESCAPE_DATA_DIR", "XDG_STATE_HOME")}
        env.update(HOME=str(home), ESCAPE_MQTT_KEEPALIVE="3")
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [*console_command(), "node", "--id", "hall", "--simulate", "--config", str(game),
                 "--broker", broker.address],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def test_a_node_restarted_without_a_data_dir_keeps_its_queued_events(mosquitto, wire, tmp_path,
                                                                      processes):
    if SYSTEM_STATE_DIR.exists():
        pytest.skip(f"{SYSTEM_STATE_DIR} exists here: the node would use it, not the test's HOME")
    game, home, log = game_file(tmp_path), tmp_path / "home", tmp_path / "hall.log"
    home.mkdir()
    beat_topic, status_topic = T.node_heartbeat("hall"), T.node_status("hall")
    event_topic = T.prop_event("hall", "mailbox_keypad")
    wire.subscribe(beat_topic, status_topic, event_topic)

    def beats(since: float) -> list[NodeHeartbeat]:
        return [NodeHeartbeat.model_validate_json(m.payload) for m in wire.received(beat_topic, since=since)]

    def spawn() -> NodeWithoutDataDir:
        proc = NodeWithoutDataDir(game=game, broker=mosquitto, home=home, log=log)
        processes.append(proc)
        return proc

    # a controller was here and is gone (its will): the node queues what players do
    ctl = FakeController(publish=wire.publish, topics=T)
    ctl.beat()
    wire.publish(T.controller_status, ctl.status(online=False).to_bytes(), retain=True)
    first = spawn()
    wait_for(lambda: beats(0.0), timeout=20, what="the node to run")
    for code in ("1111", "2222"):
        wire.publish(T.prop_simulate("hall", "mailbox_keypad"),
                     Gesture(id=new_id(), gesture="type", value=code).to_bytes())
    typed = time.monotonic()
    queued = 2 * (4 + 1)   # each key, then the code
    wait_for(lambda: any(b.outbox == queued for b in beats(typed)), what="two codes in the outbox")
    assert wire.received(event_topic) == [], "nothing delivered: no live controller"

    first.kill()
    restarted = time.monotonic()
    spawn()
    wait_for(lambda: any(b.outbox == queued for b in beats(restarted)), timeout=20,
             what="the restarted node to have the two codes still")
    births = [NodeStatus.model_validate_json(m.payload) for m in wire.received(status_topic) if m.payload]
    assert [b.boot_n for b in births if b.online] == [1, 2], "the boot counter is kept too"

    # the controller is back: both codes delivered, replayed, in order
    ctl.start()
    try:
        wait_for(lambda: len(wire.received(event_topic)) >= queued, timeout=10,
                 what="the codes delivered")
    finally:
        ctl.stop()
    events = [PropEvent.model_validate_json(m.payload) for m in wire.received(event_topic)]
    assert [(e.value, e.replayed) for e in events if e.type == "code"] == [("1111", True),
                                                                          ("2222", True)]
    assert len(events) == queued, "each once"

    data_dir = home / ".local" / "state" / "escape-apartment" / "hall"
    assert (data_dir / "faults-hall.outbox.jsonl").exists()
    text = log.read_text(encoding="utf-8", errors="replace")
    assert f"node hall keeps its data in {data_dir}" in text
    assert "/tmp/escape-node-" not in text
