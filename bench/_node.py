"""Bench runner: one node agent on its own MockFactory, with timestamps on its pins.

    python -m bench._node --game FILE --node node_b --broker 127.0.0.1:1883 --watch 17

The node is the real :class:`nodes.agent.NodeAgent` in simulate mode; only some of its
mock pins are pre-created as timed subclasses *before* the agent builds its props, so
the props claim them unchanged:

* every pin given with ``--watch`` is a :class:`TimedPin`: each change of level is
  reported as ``{"kind": "pin", "pin": 17, "state": false, "t": <monotonic ns>}``, timed
  in the thread that changed it (the agent's worker applying a command);
* with ``--watch``, each command (``…/set``) is also reported as
  ``{"kind": "rx", "topic": …, "t": ns}`` as the node's paho thread receives it;
* the column pins of every keypad are :class:`TimedColumnPin`: ``type`` times the
  moment the last key's press pulls its column low (the electrical event a real keypad
  sees), and the moment the keypad emits its ``code`` event.

Commands (JSON lines on stdin):

* ``{"cmd": "type", "prop": "keypad", "keys": "0412"}`` →
  ``{"kind": "typed", "ok": true, "t_pin": ns, "t_code": ns, "t_code_wire": ns}``; the
  last key stays down until
* ``{"cmd": "release", "prop": "keypad"}`` → ``{"kind": "released", "ok": true}``
* ``{"cmd": "status"}`` → ``{"kind": "status", ...NodeAgent.status()}``
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import threading
import time
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin

from bench._runner import Output, serve
from config.loader import load_game
from nodes.agent import NodeAgent
from props.models import KeypadConfig
from props.sim import KeypadColumnPin, KeypadSimulator
from protocol.mqtt import BrokerAddress

log = logging.getLogger(__name__)


class TimedPin(MockPin):
    """A mock pin that reports each change of its level, with a monotonic time stamp."""

    output: Output | None = None
    number: int = -1

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        if changed:
            t = time.monotonic_ns()
            if self.output is not None:
                # NOTE: handed to a writer thread: the worker that drove the pin goes on at once.
                self.output.later("pin", pin=self.number, state=bool(value), t=t)
        return changed


class TimedColumnPin(KeypadColumnPin):
    """A keypad column that remembers when it was first pulled low after :meth:`arm`."""

    def __init__(self, factory: MockFactory, info: Any) -> None:
        super().__init__(factory, info)
        self.armed = False
        self.t_low: int | None = None

    def arm(self) -> None:
        self.t_low, self.armed = None, True

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        if changed and self.armed and not value:
            self.t_low, self.armed = time.monotonic_ns(), False
        return changed


class Runner:
    def __init__(self, agent: NodeAgent, columns: dict[str, list[TimedColumnPin]],
                 out: Output) -> None:
        self.agent = agent
        self.columns = columns
        self.out = out
        self.t_code: dict[str, int | None] = {}
        #: when node A's paho wrote the bytes of the last ``code`` event to its socket
        self.t_code_wire: int | None = None
        self._code_seen = threading.Event()
        #: the key left down by type(), per keypad
        self.held: dict[str, str] = {}

    def spy_codes(self) -> None:
        """Time each ``code`` event as the keypad emits it (before the agent publishes it)."""
        for prop_id in self.columns:
            prop = self.agent.props[prop_id]
            forward = prop.when_event
            assert forward is not None

            def spy(event_type: str, value: Any, *, _prop: str = prop_id,
                    _forward: Any = forward) -> None:
                if event_type == "code":
                    self.t_code[_prop] = time.monotonic_ns()
                _forward(event_type, value)

            prop.when_event = spy

    def type(self, prop: str, keys: str) -> None:
        """Type *keys*; the last one stays down (a finger rests ≈ 100 ms on a key) until
        :meth:`release`, so the simulated hand's let-go is not timed with the system."""
        simulator = self.agent.simulators[prop]
        assert isinstance(simulator, KeypadSimulator)
        ok = simulator.type(keys[:-1]) if len(keys) > 1 else True
        self.t_code[prop] = None
        self.t_code_wire = None
        for column in self.columns[prop]:
            column.arm()
        last = keys[-1]
        mark = simulator.down(last)
        self.held[prop] = last
        ok = simulator.wait_registered(last, mark) and ok
        t_pin = next((c.t_low for c in self.columns[prop] if c.t_low is not None), None)
        for column in self.columns[prop]:
            column.armed = False
        self.out.emit("typed", ok=ok, t_pin=t_pin, t_code=self.t_code.get(prop),
                      t_code_wire=self.t_code_wire)

    def release(self, prop: str) -> None:
        """Let go of the key :meth:`type` left down; wait until the keypad is idle."""
        simulator = self.agent.simulators[prop]
        assert isinstance(simulator, KeypadSimulator)
        key = self.held.pop(prop, None)
        ok = True
        if key is not None:
            ok = simulator.wait_idle(simulator.up(key))
        self.out.emit("released", ok=ok)

    def spy_wire(self) -> None:
        """Time the moment paho writes a ``code`` event's bytes to the socket."""
        client = self.agent.client
        send = getattr(client, "_sock_send", None)
        if client is None or send is None:
            return

        def sock_send(buf: bytes) -> int:
            if self.t_code_wire is None and b'"type":"code"' in buf:
                self.t_code_wire = time.monotonic_ns()   # as the bytes go: before send()
            return send(buf)

        client._sock_send = sock_send  # type: ignore[method-assign]

    def watch_commands(self) -> None:
        """Time each command as the node's paho thread receives it (before decoding)."""
        client = self.agent.client
        if client is None:
            return
        forward = client.on_message

        def on_message(c: Any, userdata: Any, message: Any) -> None:
            if message.topic.endswith("/set"):
                self.out.later("rx", topic=message.topic, t=time.monotonic_ns())
            forward(c, userdata, message)

        client.on_message = on_message

    def status(self) -> None:
        self.out.emit("status", **self.agent.status())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--watch", type=int, action="append", default=[],
                        help="BCM pin whose changes are reported (repeat)")
    parser.add_argument("--connect-timeout", type=float, default=15.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    out = Output()
    game = load_game(args.game)
    node = game.node(args.node)
    if node is None:
        parser.error(f"no node {args.node!r} in {args.game}")
    factory = MockFactory()
    for number in args.watch:
        pin = factory.pin(number, pin_class=TimedPin)
        pin.output, pin.number = out, number
    columns: dict[str, list[TimedColumnPin]] = {}
    for prop in node.props:
        if isinstance(prop, KeypadConfig):
            columns[prop.id] = [factory.pin(c, pin_class=TimedColumnPin) for c in prop.cols]
    agent = NodeAgent(game=game, node_id=args.node, broker=BrokerAddress.parse(args.broker),
                      pin_factory=factory, simulate=True)
    runner = Runner(agent, columns, out)
    agent.start()
    try:
        runner.spy_codes()
        runner.spy_wire()
        if args.watch:
            runner.watch_commands()
        if not agent.connected.wait(args.connect_timeout):
            out.emit("error", error=f"node {args.node} did not connect to {args.broker}")
            return 1
        gc.collect()   # as the node program does (nodes/cli.py)
        gc.freeze()
        out.emit("ready", pid=os.getpid(), boot_id=agent.boot_id)
        serve({"type": runner.type, "release": runner.release, "status": runner.status}, out)
    finally:
        agent.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
