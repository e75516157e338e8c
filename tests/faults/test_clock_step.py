"""Fault: the node's wall clock steps an hour ahead, then an hour back, in the middle of a game.

A Pi has no RTC: its clock is stepped when a time server is first reached, or runs wrong
all along in a flat without internet. No decision of the node may depend on it. A real
``escape-apartment node --simulate`` process runs under libfaketime (its wall clock read
from a file the test rewrites; its monotonic clock real); a bare MQTT client plays the
controller (retained statuses with its uptime, commands dated on it, the emergency).

What players see: at +1 h and at −1 h, locks close when the game says so, every unlock
and the emergency open them at once; a node restarted while the controller is gone still
plays its local puzzles. What the game master sees: every order confirmed by the node's
state (``engaged``), in milliseconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from protocol.contract import Emergency, NodeHeartbeat, Resync, Topics, new_id
from tests.faults.conftest import Wire, _Process, console_command, game_file, wait_for
from tests.support.fake_controller import FakeController, nodelay
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mosquitto

FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
T = Topics("faults")
STATE = T.prop_state("hall", "mailbox_lock")
HEARTBEAT = T.node_heartbeat("hall")
HOUR = 3600


class FakedNode(_Process):
    """``escape-apartment node --simulate`` whose wall clock is the file *clock*."""

    def __init__(self, *, game: Path, broker: Mosquitto, data_dir: Path, clock: Path, log: Path) -> None:
        env = {**os.environ, "LD_PRELOAD": str(FAKETIME), "FAKETIME_TIMESTAMP_FILE": str(clock),
               "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
               "ESCAPE_MQTT_KEEPALIVE": "3"}
        env.pop("ESCAPE_DATA_DIR", None)
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [*console_command(), "node", "--id", "hall", "--simulate", "--config", str(game),
                 "--broker", broker.address, "--data-dir", str(data_dir)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def beats(wire: Wire, since: float = 0.0) -> list[NodeHeartbeat]:
    return [NodeHeartbeat.model_validate_json(m.payload) for m in wire.received(HEARTBEAT, since=since)]


def engaged(wire: Wire, since: float) -> list[tuple[float, bool]]:
    return [(m.at, json.loads(m.payload)["engaged"]) for m in wire.received(STATE, since=since)
            if m.payload]


def confirmed_ms(wire: Wire, publish: object, want: bool, what: str) -> float:
    """Publish (a callable), then wait for the state to report ``engaged == want``; return
    the milliseconds from just before the publish to the confirming state's receipt."""
    since = time.monotonic()
    publish()   # type: ignore[operator]
    wait_for(lambda: any(e == want for _at, e in engaged(wire, since)), timeout=3, what=what)
    at = next(at for at, e in engaged(wire, since) if e == want)
    return (at - since) * 1000


def reported_now(wire: Wire) -> bool:
    """The lock's state as the node reports it after everything sent before (a Resync)."""
    since = time.monotonic()
    wire.publish(T.node_resync("hall"), Resync(reason=f"fence-{new_id()}").to_bytes())
    wait_for(lambda: engaged(wire, since), what="the states published again")
    return engaged(wire, since)[-1][1]


def step_clock(wire: Wire, clock: Path, offset: int) -> None:
    """Step the node's wall clock to *offset* seconds from the real one; wait until its
    heartbeats show it."""
    clock.write_text(f"{offset:+d}\n", encoding="ascii")
    since = time.monotonic()
    wait_for(lambda: any(b.ts is not None and abs(b.ts - time.time() - offset) < 60
                         for b in beats(wire, since)), timeout=5,
             what=f"the node's heartbeats to carry a clock {offset:+d} s off")


def test_a_node_whose_clock_steps_an_hour_either_way_applies_every_order_and_keeps_its_game(
        mosquitto, wire, tmp_path, processes):
    if not FAKETIME.exists():
        pytest.skip(f"libfaketime not installed ({FAKETIME}; Debian package faketime)")
    clock = tmp_path / "clock"
    clock.write_text("+0\n", encoding="ascii")
    game = game_file(tmp_path, autonomy_after_s=1.0)
    data_dir = tmp_path / "hall"
    wire.subscribe(STATE, HEARTBEAT, T.node_status("hall"))
    nodelay(wire.client)
    ctl = FakeController(publish=wire.publish, topics=T, heartbeat=0.3).start()

    def spawn() -> FakedNode:
        node = FakedNode(game=game, broker=mosquitto, data_dir=data_dir, clock=clock,
                         log=tmp_path / "hall.log")
        processes.append(node)
        return node

    def send(action: str, **kw: object) -> object:
        return lambda: ctl.send("hall", "mailbox_lock", ctl.command(action, **kw))

    def emergency(active: bool) -> object:
        message = Emergency(active=active, id=f"em{new_id()}", who="test")
        return lambda: wire.publish(T.emergency, message.to_bytes(), retain=True, wait=False)

    node = spawn()
    wait_for(lambda: len(beats(wire)) >= 2, timeout=20, what="the node to run and beat")
    measured: dict[str, dict[str, float]] = {}
    measured["+0 h"] = {"lock": confirmed_ms(wire, send("lock"), True, "the game's lock")}

    for offset in (+HOUR, -HOUR):
        step_clock(wire, clock, offset)
        label = f"{offset // HOUR:+d} h"
        row = measured[label] = {}
        # the emergency: released and confirmed at once; then cleared, relocking nothing
        row["emergency"] = confirmed_ms(wire, emergency(True), False, f"the emergency at {label}")
        emergency(False)()
        assert reported_now(wire) is False, "clearing the emergency relocks nothing"
        # a game's lock is applied, an unlock opens it
        row["lock"] = confirmed_ms(wire, send("lock"), True, f"a lock at {label}")
        row["unlock"] = confirmed_ms(wire, send("unlock"), False, f"an unlock at {label}")
        # a lock too old on the controller's own clock is refused, whatever the node's clock
        send("lock", issued=0.0, ttl=1.0)()
        assert reported_now(wire) is False, f"a stale lock was applied at {label}"
        if offset > 0:
            assert confirmed_ms(wire, send("lock"), True, "the lock again") >= 0

    # -- the controller dies, then the node (clock still an hour back) is killed and
    #    restarts: it still knows a game runs and plays its local puzzles ----------------
    ctl.stop(will=True)
    node.kill()
    restarted = time.monotonic()
    spawn()
    wait_for(lambda: any(b.autonomous for b in beats(wire, restarted)), timeout=20,
             what="the restarted node to play its local puzzles on its own")
    autonomous_s = time.monotonic() - restarted
    log = (tmp_path / "hall.log").read_text(encoding="utf-8", errors="replace")
    assert "game was running" in log

    summary = "; ".join(f"{label}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in row.items())
                        for label, row in measured.items())
    print(f"\n[clock step] publish → state confirmed: {summary}; restarted at -1 h, autonomous "
          f"{autonomous_s:.2f} s after its start (threshold 1 s)")
