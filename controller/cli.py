"""The ``escape-apartment`` command and its sub-commands.

Each sub-command lives beside what it runs (``config/cli.py``, ``nodes/cli.py``,
``controller/cli.py`` for ``controller`` and ``demo``); this module only assembles them.
Imports are lazy so that ``escape-apartment node`` never loads FastAPI.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from config import broker as broker_cli
    from config import cli as config_cli
    from controller import backup as store_cli
    from controller import report as report_cli
    from controller import sheet as sheet_cli
    from controller.core.config import new_secrets
    from nodes import cli as node_cli

    parser = argparse.ArgumentParser(
        prog="escape-apartment",
        description="Room controller for the 'appartement témoin' escape game.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    config_cli.register(sub)
    node_cli.register(sub)
    register_controller(sub)
    broker_cli.register(sub, controller_secrets=new_secrets)
    store_cli.register(sub)
    sheet_cli.register(sub)
    report_cli.register(sub)
    return parser


def register_controller(sub: argparse._SubParsersAction) -> None:
    from controller.core.config import environment_help

    ctl = sub.add_parser("controller", help="run the game controller (FastAPI + MQTT)",
                         epilog=environment_help(),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    # no defaults here: a flag left out is read from the settings (controller/core/config.py)
    ctl.add_argument("--config", default=None, help="game file (env ESCAPE_CONFIG; default: the shipped one)")
    ctl.add_argument("--broker", default=None,
                     help="MQTT broker host[:port] (env ESCAPE_MQTT_HOST, ESCAPE_MQTT_PORT)")
    ctl.add_argument("--host", default=None, help="HTTP bind address (env ESCAPE_HTTP_HOST)")
    ctl.add_argument("--port", type=int, default=None, help="HTTP port (env ESCAPE_HTTP_PORT)")
    ctl.set_defaults(func=cmd_controller)

    demo = sub.add_parser("demo", help="embedded broker + controller + a simulated node per room")
    demo.add_argument("--config", default=None, help="game file (default: the shipped one)")
    demo.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    demo.add_argument("--mqtt-port", type=int, default=1883, help="embedded broker port (default 1883)")
    demo.add_argument("--host", default="127.0.0.1", help="HTTP bind address")
    demo.set_defaults(func=cmd_demo)


def cmd_controller(args: argparse.Namespace) -> int:
    from controller.main import read_settings, run_controller

    settings = read_settings(config=args.config, broker=args.broker, host=args.host, port=args.port)
    return 2 if settings is None else run_controller(settings)


def cmd_demo(args: argparse.Namespace) -> int:
    from controller.demo import run_demo

    return run_demo(config=args.config, http_port=args.port, mqtt_port=args.mqtt_port,
                    host=args.host)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if not args.verbose:
        # amqtt logs every connection and state-machine step at INFO: keep the demo readable.
        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
