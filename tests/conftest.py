"""Shared fixtures: real MQTT brokers (embedded amqtt everywhere, Mosquitto where installed).

``broker`` is parametrised over both; a test using it runs once per broker. Mosquitto
tests skip when it is not installed, unless ``ESCAPE_REQUIRE_MOSQUITTO=1`` (CI), where a
missing Mosquitto fails them instead.

A test skips where a tool it needs is missing (Mosquitto, Chromium, libfaketime,
systemd-analyze, root for a tmpfs). Under ``ESCAPE_CI=1`` (``.ci/run``) every skip is a
failure: a test CI does not run proves nothing.

hypothesis is imported here, at collection: its pytest plugin would otherwise import it
in the terminal summary, and pytest's assertion rewriting would then ``ast.parse`` it after
the browser tests' greenlets ran, which CPython 3.11.7 can fail with "SystemError: AST
constructor recursion depth mismatch" (a run's last line, after every test passed).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import hypothesis  # noqa: F401
import pytest

from controller.broker import EmbeddedBroker
from tests.support.mosquitto import Mosquitto, require_or_skip_mosquitto


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("ESCAPE_CI") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, and ESCAPE_CI=1: every test must run in CI ({reason})"


@dataclass(frozen=True)
class BrokerHandle:
    kind: str
    host: str
    port: int


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[BrokerHandle]:
    with EmbeddedBroker(port=0) as broker:
        yield BrokerHandle("amqtt", broker.host, broker.port)


@pytest.fixture(scope="session")
def mosquitto_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerHandle]:
    require_or_skip_mosquitto()
    with Mosquitto.plain(workdir=tmp_path_factory.mktemp("mosquitto")) as broker:
        yield BrokerHandle("mosquitto", broker.host, broker.port)


@pytest.fixture(params=["amqtt", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def broker(request: pytest.FixtureRequest) -> BrokerHandle:
    """A running real broker: the embedded one, then Mosquitto."""
    name = "embedded_broker" if request.param == "amqtt" else "mosquitto_broker"
    return request.getfixturevalue(name)
