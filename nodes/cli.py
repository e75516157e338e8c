"""``escape-apartment node …``: run a room's node agent, and the technician's tools."""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import signal
import threading
from collections.abc import Callable

from nodes.settings import NodeSettings
from protocol.settings import environment_help as help_section
from protocol.settings import flag_type, settings_error, variables

log = logging.getLogger(__name__)

#: what a node reads from its environment besides its settings (nodes/settings.py): where
#: systemd and the XDG layout say things; ``node --help`` lists them after the settings
PLATFORM_ENV: dict[str, str] = {
    "XDG_STATE_HOME": "where the default data dir goes when /var/lib/escape-apartment is not "
                      "writable (see --data-dir)",
    "HOME": "likewise, ~/.local/state/escape-apartment when XDG_STATE_HOME is not set",
    "NOTIFY_SOCKET": "set by systemd (Type=notify): the agent says READY=1 there",
    "WATCHDOG_USEC": "set by systemd (WatchdogSec=): the agent pings it twice as often",
    "WATCHDOG_PID": "set by systemd: the process the watchdog watches",
}


def environment_help() -> str:
    """What ``escape-apartment node --help`` says about the environment."""
    return help_section("environment variables (the systemd unit reads /etc/escape-apartment/"
                        "<node>.env, written by `escape-apartment broker credentials`):",
                        {**variables(NodeSettings), **PLATFORM_ENV})


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("node", help="run a room's node agent, or a technician's tool",
                                   epilog=environment_help(),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    # no defaults here: a flag left out is read from the settings (apply_settings)
    _common(parser)
    parser.add_argument("--broker", default=None,
                        help="MQTT broker host[:port] (env ESCAPE_BROKER; default 127.0.0.1:1883)")
    parser.add_argument("--keepalive", type=flag_type(NodeSettings, "MQTT_KEEPALIVE"), default=None,
                        help="MQTT keepalive in seconds, 2 to 60: the broker declares the node "
                             "offline (last will) 1.5 times this after it went silent "
                             "(env ESCAPE_MQTT_KEEPALIVE, default 5)")
    parser.add_argument("--data-dir", default=None,
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
    # every node command starts from the settings object, the flags on top
    for command in (parser, *sub.choices.values()):
        command.set_defaults(func=with_settings(command.get_default("func")))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", dest="node_id", default=None,
                        help="node id, as in the game file (env ESCAPE_NODE_ID)")
    parser.add_argument("--config", default=None,
                        help="game file (env ESCAPE_CONFIG; default: the shipped config/apartment.yaml)")
    parser.add_argument("--simulate", action="store_true", default=None,
                        help="simulated pins (gpiozero MockFactory); also GPIOZERO_PIN_FACTORY=mock")


def apply_settings(args: argparse.Namespace) -> NodeSettings:
    """Read the node's settings (its flags on top of the environment) into *args*:
    ``args.settings``, and the resolved ``node_id``, ``config``, ``simulate``, ``broker``,
    ``keepalive`` and ``data_dir``."""
    settings = NodeSettings.from_cli(
        node_id=args.node_id, config=args.config, simulate=args.simulate,
        broker=getattr(args, "broker", None), keepalive=getattr(args, "keepalive", None),
        data_dir=getattr(args, "data_dir", None))
    args.settings = settings
    args.node_id, args.config, args.simulate = settings.NODE_ID, settings.CONFIG, settings.simulate
    args.broker, args.keepalive, args.data_dir = settings.BROKER, settings.MQTT_KEEPALIVE, settings.DATA_DIR
    return settings


def with_settings(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """*command*, once :func:`apply_settings` read the settings; wrong ones: exit 2, in words."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            apply_settings(args)
        except ValueError as exc:   # pydantic's ValidationError, SecretFileError
            log.error("wrong settings; node not started: %s", settings_error(NodeSettings, exc))
            return 2
        return command(args)
    return run


def cmd_run(args: argparse.Namespace) -> int:
    from config.loader import GameConfigError
    from nodes.agent import NodeAgent
    from nodes.build import node_part_at_start, pin_factory_for
    from nodes.datadir import default_data_dir

    if not args.node_id:
        log.error("--id is required (or ESCAPE_NODE_ID); node not started")
        return 2
    data_dir = args.data_dir or default_data_dir(args.node_id)
    try:
        part = node_part_at_start(args, data_dir)
    except GameConfigError as exc:
        log.error("the game file has errors and no game part was kept; node not started:\n%s", exc)
        return 2
    broker = args.settings.broker()
    log.info("node %s keeps its data in %s%s", args.node_id, data_dir,
             "" if args.data_dir else " (no --data-dir nor ESCAPE_DATA_DIR: the default)")
    agent = NodeAgent(game=part, node_id=args.node_id, broker=broker,
                      pin_factory=pin_factory_for(args.simulate), simulate=args.simulate,
                      keepalive=args.keepalive, data_dir=data_dir,
                      health_root=args.settings.HEALTH_ROOT)
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
