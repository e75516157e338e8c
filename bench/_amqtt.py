"""Bench runner: the embedded amqtt broker (controller/broker.py) in a process of its own.

    python -m bench._amqtt --port 18830

Prints ``{"kind": "ready"}`` once it accepts connections; stops when stdin closes.
"""

from __future__ import annotations

import argparse
import logging

from bench._runner import Output, wait_for_stdin_eof
from controller.broker import EmbeddedBroker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    out = Output()
    broker = EmbeddedBroker(host="127.0.0.1", port=args.port).start()
    try:
        out.emit("ready", port=broker.port)
        wait_for_stdin_eof()
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
