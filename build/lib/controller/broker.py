"""The embedded MQTT broker (amqtt) for the demo and the tests.

Production runs Mosquitto (config/mosquitto/); the demo and the test suite start this
one in-process so that nothing else needs installing. It runs on its own asyncio loop in
its own thread, so the controller's work never delays a hop through the broker.

NOTE: asyncio sets TCP_NODELAY on every TCP transport it creates, so amqtt's sockets
need no ``set_tcp_nodelay`` option (Mosquitto's does).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """An amqtt broker in a background thread.

    >>> with EmbeddedBroker(port=0) as broker:   # port 0: pick a free one
    ...     print(broker.port)
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}",
                                      "max_connections": 500}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            msg = f"embedded broker did not start on {self.host}:{self.port} in {timeout} s"
            raise RuntimeError(msg)
        if self._error is not None:
            msg = f"embedded broker failed to start on {self.host}:{self.port}: {self._error}"
            raise RuntimeError(msg) from self._error
        log.info("embedded MQTT broker (amqtt) on %s:%s", self.host, self.port)
        return self

    def _run(self) -> None:
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            self._broker = Broker(self.config())
            await self._broker.start()

        try:
            loop.run_until_complete(boot())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        loop, broker = self._loop, self._broker
        if loop is None or broker is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
        try:
            future.result(timeout)
        except Exception:
            log.exception("embedded broker shutdown failed")
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        self._broker = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
