"""The controller in the simulation: the real :class:`~controller.service.GameService` on
its machine's clocks, its store a real SQLite file, its bridge on a simulated client.

What the asyncio loop does in production is done here by the scheduler: the bridge's
queue is drained as messages arrive (:meth:`GameService.take`), the timer runs every
:data:`~controller.service.TICK_S` (:meth:`GameService.on_timer`) and the heartbeat every
``heartbeat_s`` (:meth:`MqttBridge.beat`). The HTTP routes are not simulated: the game
master's orders go to ``service.orders`` directly.

A crash drops every object and the next start builds them again from the same SQLite
file, as a restarted process would; a clean stop opens the locks, writes, says
"offline" and disconnects, as ``GameService.stop`` does. A full disk is SQLite's own
``database or disk is full``: the connection's ``max_page_count`` is set to the pages it
has (what fits in their free space is still written, as on a real full disk).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.game import Game
from controller.mqtt import Incoming, MqttBridge
from controller.service import TICK_S, GameService
from controller.store import Store
from protocol import contract
from protocol.contract import PropEvent, Topics
from protocol.mqtt import RECONNECT_MAX_S, RECONNECT_MIN_S, BrokerAddress
from simulation.client import SimClient

if TYPE_CHECKING:
    from simulation.observer import Observer
    from simulation.sources import Sources
    from simulation.world import World

CONTROLLER = "controller"
#: the controller's MQTT keepalive (its settings' default)
KEEPALIVE = 5
#: SQLite's largest max_page_count: no limit
NO_PAGE_LIMIT = 1_073_741_823


class SimLink:
    """The bridge's transport (``controller.mqtt_transports.Link``) on a :class:`SimClient`;
    *reported* is called after each report to the bridge (its queue may have grown)."""

    def __init__(self, owner: MqttBridge, client: SimClient, reported: Callable[[], None]) -> None:
        self.owner, self.client, self.reported = owner, client, reported

    def start(self) -> None:
        owner, client = self.owner, self.client
        client.will_set(owner.topics.controller_status, owner.will, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda _c, _u, _f, reason, _p: self._down(reason)
        client.on_connect_fail = lambda _c, _u: self._down("connection refused")
        client.on_message = self._on_message
        client.connect(keepalive=owner.keepalive)

    def _on_connect(self, client: SimClient, _userdata: Any, _flags: Any, reason_code: Any,
                    _properties: Any) -> None:
        if reason_code.is_failure:
            return
        client.subscribe([(t, contract.QOS) for t in self.owner.topics.controller_subscriptions()])
        self.owner.on_link_up()
        self.reported()

    def _down(self, reason: object) -> None:
        self.owner.on_link_down(reason)
        self.reported()

    def _on_message(self, _client: SimClient, _userdata: Any, message: Any) -> None:
        self.owner.on_link_message(message.topic, message.payload, bool(message.retain))
        self.reported()

    def send(self, topic: str, payload: bytes, *, retain: bool) -> None:
        self.client.publish(topic, payload, qos=contract.QOS, retain=retain)

    async def stop(self, offline: bytes | None) -> None:
        self.goodbye(offline)

    def goodbye(self, offline: bytes | None) -> None:
        """The offline status (if given), then a clean DISCONNECT (no will)."""
        if offline is not None and self.client.is_connected():
            self.client.publish(self.owner.topics.controller_status, offline, qos=1, retain=True)
        self.client.disconnect()


class SimController:
    """The controller's machine: its SQLite file, and (while it runs) the service."""

    def __init__(self, world: World, sources: Sources, game: Game, path: Path) -> None:
        self.world, self.sources, self.game, self.path = world, sources, game, path
        self.scheduler = world.scheduler
        self.machine = world.machine(CONTROLLER)
        self.service: GameService | None = None
        self.store: Store | None = None
        self.link: SimLink | None = None
        self.disk_full = False
        #: each boot's virtual time of uptime 0 (commands are dated on the uptime)
        self.boots: dict[str, float] = {}
        #: told of each node event handled (which solves it made)
        self.observer: Observer | None = None
        self.starts = 0
        self._life = 0
        self._draining = False

    @property
    def running(self) -> bool:
        return self.service is not None

    def _enter(self, life: int) -> bool:
        if life != self._life or self.service is None:
            return False
        self.sources.enter(self.machine)
        return True

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        """A new process on the same SQLite file: it resumes what the last one stored."""
        if self.service is not None:
            return
        self.sources.enter(self.machine)
        self.starts += 1
        self._life += 1
        life = self._life
        store = self.store = Store(self.path)
        if self.disk_full:
            self._limit_pages(store)
        bridge = MqttBridge(topics=Topics(self.game.apartment.id), broker=BrokerAddress(),
                            boot_id=contract.new_id(), keepalive=KEEPALIVE,
                            clock=self.machine.monotonic)
        self.boots[bridge.boot_id] = self.scheduler.now - (self.machine.monotonic() - bridge.started)
        service = self.service = GameService(game=self.game, bridge=bridge, store=store,
                                             clock=self.machine.monotonic, wall=self.machine.time)
        service.resume()
        client = SimClient(self.world.network, self.machine, bridge.client_id)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(10_000)
        self.link = SimLink(bridge, client, lambda: self._reported(life))
        bridge.open(self.link)
        self.scheduler.call_later(TICK_S, self._timer, life)
        self.scheduler.call_later(bridge.heartbeat_s, self._beat, life)

    def crash(self, *, power_cut: bool = False) -> None:
        """kill -9 (the OS closes the socket: the will goes out at once) or a power cut
        (the connection stays half open until the broker's keepalive gives up)."""
        if self.service is None:
            return
        self._life += 1
        if self.link is not None:
            if power_cut:
                self.link.client.pause()
            else:
                self.link.client.crash()
        if power_cut:
            self.machine.reboot()
        self._drop()
        self.scheduler.log(CONTROLLER, "power cut" if power_cut else "process killed")

    def stop(self) -> None:
        """A clean stop (``GameService.stop``): locks opened, written, "offline", gone."""
        if self.service is None or self.link is None:
            return
        self.sources.enter(self.machine)
        self._life += 1
        service, link = self.service, self.link
        service.release_and_save()
        bridge = service.bridge
        self.scheduler.call_later(0.1, link.goodbye, bridge.will if bridge.connected else None)
        self._drop()
        self.scheduler.log(CONTROLLER, "stopped cleanly")

    def _drop(self) -> None:
        if self.store is not None:
            self.store.close()
        self.service = self.store = self.link = None
        self._draining = False

    # -- the disk -----------------------------------------------------------------------
    def fill_disk(self) -> None:
        self.disk_full = True
        if self.store is not None:
            self._limit_pages(self.store)

    def free_disk(self) -> None:
        self.disk_full = False
        if self.store is not None:
            self.store.pragma(f"max_page_count = {NO_PAGE_LIMIT}")

    @staticmethod
    def _limit_pages(store: Store) -> None:
        store.pragma(f"max_page_count = {store.pragma('page_count')}")

    # -- what the loop does -------------------------------------------------------------
    def _reported(self, life: int) -> None:
        """The bridge queued something: the loop's consumer takes it at its next turn."""
        if not self._draining and life == self._life:
            self._draining = True
            self.scheduler.call_soon(self._drain, life)

    def _drain(self, life: int) -> None:
        self._draining = False
        if not self._enter(life):
            return
        service = self.service
        assert service is not None
        queue, observer = service.bridge.queue, self.observer
        while not queue.empty() and self._life == life:
            item = queue.get_nowait()
            if observer is None or not isinstance(item, Incoming) or not isinstance(item.payload, PropEvent):
                service.take(item)
                continue
            before = observer.before_take(service)
            service.take(item)
            observer.after_take(service, item, before)

    def _timer(self, life: int) -> None:
        if self._enter(life):
            assert self.service is not None
            self.service.on_timer()
            self.scheduler.call_later(TICK_S, self._timer, life)

    def _beat(self, life: int) -> None:
        if self._enter(life):
            assert self.service is not None
            bridge = self.service.bridge
            bridge.beat()
            self.scheduler.call_later(bridge.heartbeat_s, self._beat, life)
