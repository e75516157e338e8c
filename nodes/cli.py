"""``escape-apartment node …``: run a room's node agent, and the technician's tools."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: every environment variable a node reads, and what for (``node --help`` lists them)
NODE_ENV: dict[str, str] = {
    "ESCAPE_NODE_ID": "the node id, as in the game file (--id wins)",
    "ESCAPE_CONFIG": "the game file (--config wins)",
    "ESCAPE_BROKER": "the broker's host[:port] (--broker wins; default 127.0.0.1:1883)",
    "ESCAPE_MQTT_USERNAME": "this node's MQTT user: its node id",
    "ESCAPE_MQTT_PASSWORD": "its MQTT password",
    "ESCAPE_MQTT_PASSWORD_FILE": "a file holding the MQTT password, instead of ESCAPE_MQTT_PASSWORD",
    "ESCAPE_MQTT_KEEPALIVE": "the MQTT keepalive in seconds (--keepalive wins)",
    "ESCAPE_DATA_DIR": "where the outbox of undelivered events, the boot counter, the last game "
                       "view and an active emergency are kept (--data-dir wins)",
    "XDG_STATE_HOME": "where the default data dir goes when /var/lib/escape-apartment is not "
                      "writable (see --data-dir)",
    "HOME": "likewise, ~/.local/state/escape-apartment when XDG_STATE_HOME is not set",
    "GPIOZERO_PIN_FACTORY": "mock: simulated pins, as --simulate",
    "NOTIFY_SOCKET": "set by systemd (Type=notify): the agent says READY=1 there",
    "WATCHDOG_USEC": "set by systemd (WatchdogSec=): the agent pings it twice as often",
    "WATCHDOG_PID": "set by systemd: the process the watchdog watches",
}


def environment_help() -> str:
    """What ``escape-apartment node --help`` says about the environment."""
    import textwrap

    lines = ["environment variables (the systemd unit reads /etc/escape-apartment/<node>.env, "
             "written by `escape-apartment broker credentials`):"]
    for name, text in NODE_ENV.items():
        lines += textwrap.wrap(text, width=100, initial_indent=f"  {name:<26} ",
                               subsequent_indent=" " * 29)
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("node", help="run a room's node agent, or a technician's tool",
                                   epilog=environment_help(),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(parser)
    parser.add_argument("--broker", default=os.environ.get("ESCAPE_BROKER", "127.0.0.1:1883"),
                        help="MQTT broker host[:port] (env ESCAPE_BROKER)")
    parser.add_argument("--keepalive", type=_keepalive, default=os.environ.get("ESCAPE_MQTT_KEEPALIVE", "5"),
                        help="MQTT keepalive in seconds, 2 to 60: the broker declares the node "
                             "offline (last will) 1.5 times this after it went silent "
                             "(env ESCAPE_MQTT_KEEPALIVE, default 5)")
    parser.add_argument("--data-dir", default=os.environ.get("ESCAPE_DATA_DIR"),
                        help="where the node keeps what must survive its restarts: events not "
                             "delivered yet, the game view, its boot counter, an emergency not "
                             "cleared (env ESCAPE_DATA_DIR; default: /var/lib/escape-apartment/"
                             "<id> if that directory or its parent exists and is writable, else "
                             "$XDG_STATE_HOME/escape-apartment/<id>, else "
                             "~/.local/state/escape-apartment/<id>; never a temporary folder)")
    parser.set_defaults(func=cmd_run)
    sub = parser.add_subparsers(dest="node_cmd")
    from nodes import tools

    tools.register(sub, _common)


def _keepalive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 2 <= value <= 60:
        msg = f"keepalive must be a whole number of seconds from 2 to 60, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", dest="node_id", default=os.environ.get("ESCAPE_NODE_ID"),
                        help="node id, as in the game file (env ESCAPE_NODE_ID)")
    parser.add_argument("--config", default=os.environ.get("ESCAPE_CONFIG"),
                        help="game file (default: the shipped config/apartment.yaml)")
    parser.add_argument("--simulate", action="store_true",
                        default=os.environ.get("GPIOZERO_PIN_FACTORY", "").lower() == "mock",
                        help="simulated pins (gpiozero MockFactory); also GPIOZERO_PIN_FACTORY=mock")


def cmd_run(args: argparse.Namespace) -> int:
    from config.loader import GameConfigError
    from nodes.agent import NodeAgent
    from nodes.build import load_node_game, pin_factory_for
    from nodes.datadir import default_data_dir
    from protocol.mqtt import BrokerAddress, credentials_from_env

    try:
        game = load_node_game(args)
    except GameConfigError as exc:
        log.error("the game file has errors; node not started:\n%s", exc)
        return 2
    username, password = credentials_from_env()
    broker = BrokerAddress.parse(args.broker, username=username, password=password)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir(args.node_id)
    log.info("node %s keeps its data in %s%s", args.node_id, data_dir,
             "" if args.data_dir else " (no --data-dir nor ESCAPE_DATA_DIR: the default)")
    agent = NodeAgent(game=game, node_id=args.node_id, broker=broker,
                      pin_factory=pin_factory_for(args.simulate), simulate=args.simulate,
                      keepalive=args.keepalive, data_dir=data_dir)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    agent.start()
    # NOTE: start-up objects live as long as the process: out of the collector's sight,
    # full collections stop pausing the props' threads (docs/performance.md).
    gc.collect()
    gc.freeze()
    log.info("node %s running (%s)", args.node_id, "simulated pins" if args.simulate else "GPIO")
    from nodes.sdnotify import notify

    notify("READY=1")
    while not done.wait(2.0):
        notify("WATCHDOG=1")
    agent.stop()
    return 0
