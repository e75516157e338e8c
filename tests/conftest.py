"""Shared fixtures: real MQTT brokers (embedded amqtt everywhere, Mosquitto where installed).

``broker`` is parametrised over both; a test using it runs once per broker. Mosquitto
tests skip when it is not installed, unless ``ESCAPE_REQUIRE_MOSQUITTO=1`` (CI), where a
missing Mosquitto fails them instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from controller.broker import EmbeddedBroker
from tests.support.mosquitto import Mosquitto, require_or_skip_mosquitto


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
