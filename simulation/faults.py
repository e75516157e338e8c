"""The faults a seed throws at the apartment, and their end.

=====================  ===========================================================================
fault                  what happens
=====================  ===========================================================================
``partition``          one node's network holds everything (both ways, or one) for a while
``cut``                a machine's connections are reset (packets in flight lost: a QoS 1
                       publish whose PUBACK is lost comes again, a duplicate)
``crash_node``         a node's process dies (``kill -9``: restarted by systemd), or its machine
                       loses power (the connection stays half open; a reboot), back after a
                       while — a tenth of a second is the fast reboot
``crash_controller``   the controller is killed, loses power, or stops cleanly; started again on
                       the same SQLite file
``broker``             the broker stops (SIGTERM: it saves with persistence) or is killed
                       (SIGKILL: the last autosave), started again
``clock``              a machine's wall clock steps by an hour, forward or back
``disk``               the controller's disk is full (SQLite's own "database or disk is full")
``stall``              a node's worker hangs (a slow SD card): no heartbeat, no message handled
``late``, ``lossy``    a machine's packets come late now and then (never out of order on their
                       link), its QoS 0 messages are lost
=====================  ===========================================================================

Each fault with a length ends by itself; :meth:`Faults.heal_all` ends those under way (the
end of a scenario: then the apartment settles and the invariants' bounds run out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from simulation.controller import CONTROLLER
from simulation.network import LinkProfile
from simulation.world import BROKER

if TYPE_CHECKING:
    from simulation.apartment import Apartment
    from simulation.observer import Observer
    from simulation.scheduler import Timer

HOUR = 3600.0
LATE = LinkProfile(late_probability=0.3, late_delay=(0.05, 1.5))
LOSSY = LinkProfile(qos0_loss=0.5)


class Faults:
    """Does the fault steps to *flat*; tells *observer* when a fault starts and ends."""

    def __init__(self, flat: Apartment, observer: Observer) -> None:
        self.flat, self.observer = flat, observer
        self.scheduler = flat.scheduler
        self.node_ids = list(flat.nodes)
        self._ends: dict[int, tuple[Timer, Callable[[], None]]] = {}
        self._next = 0

    def do(self, what: str, args: tuple[int, ...]) -> str:
        method: Callable[[tuple[int, ...]], str] = getattr(self, f"fault_{what}")
        return method(args)

    def _lasting(self, seconds: float, end: Callable[[], None]) -> None:
        """A fault under way until *end* runs, in *seconds*."""
        self.observer.fault(+1)
        number = self._next
        self._next += 1

        def finish() -> None:
            self._ends.pop(number, None)
            end()
            self.observer.fault(-1)

        self._ends[number] = (self.scheduler.call_later(seconds, finish), finish)

    def heal_all(self) -> None:
        """End every fault under way now."""
        for timer, finish in list(self._ends.values()):
            timer.cancel()
            finish()

    def _node(self, k: int) -> str:
        return self.node_ids[k % len(self.node_ids)]

    def _machine(self, k: int) -> str:
        names = [*self.node_ids, CONTROLLER]
        return names[k % len(names)]

    # -- the faults -----------------------------------------------------------------------
    def fault_partition(self, args: tuple[int, ...]) -> str:
        node, seconds = self._node(args[0]), args[1] / 10
        way = ("both ways", "outgoing", "incoming")[args[0] // 7 % 3]
        network = self.flat.world.network
        network.partition(node, outgoing=way != "incoming", incoming=way != "outgoing")
        if way != "incoming":   # heard by nobody: dead, to the controller, until its silence shows
            self.observer.node_down(node)
        self._lasting(seconds, lambda: network.heal(node))
        return f"{node} partitioned {way} for {seconds:g} s"

    def fault_cut(self, args: tuple[int, ...]) -> str:
        machine = self._machine(args[0])
        self.flat.world.network.cut(machine)
        return f"{machine}: connections reset"

    def fault_crash_node(self, args: tuple[int, ...]) -> str:
        node = self.flat.nodes[self._node(args[0])]
        seconds, power_cut = args[1] / 10, args[2] == 1
        if not node.running:
            return f"{node.id} is down already"
        node.crash(power_cut=power_cut)
        self.observer.node_down(node.id)

        def back() -> None:
            node.start()
            self.observer.node_down(node.id)

        self._lasting(seconds, back)
        return f"{node.id}: {'power cut' if power_cut else 'process killed'}, back in {seconds:g} s"

    def fault_crash_controller(self, args: tuple[int, ...]) -> str:
        controller = self.flat.controller
        seconds, kind = args[0] / 10, ("killed", "power cut", "stopped cleanly")[args[1] % 3]
        service = controller.service
        if service is None:
            return "the controller is down already"
        self.observer.controller_stopping(service)
        if kind == "stopped cleanly":
            controller.stop()
        else:
            controller.crash(power_cut=kind == "power cut")

        def back() -> None:
            controller.start()
            if controller.service is not None:
                self.observer.controller_started(controller.service)

        self._lasting(seconds, back)
        return f"controller {kind}, back in {seconds:g} s"

    def fault_broker(self, args: tuple[int, ...]) -> str:
        broker = self.flat.world.broker
        seconds, kill = args[0] / 10, args[1] == 1
        if not broker.running:
            return "the broker is down already"
        if kill:
            broker.kill()
        else:
            broker.stop()
        self._lasting(seconds, broker.start)
        persistence = "with" if broker.config.persistence else "without"
        return f"broker {'killed' if kill else 'stopped'} ({persistence} persistence), back in {seconds:g} s"

    def fault_clock(self, args: tuple[int, ...]) -> str:
        names = [*self.node_ids, CONTROLLER, BROKER]
        machine = self.flat.world.machine(names[args[0] % len(names)])
        machine.step_wall(args[1] * HOUR)
        return f"{machine.name}: wall clock stepped by {args[1] * HOUR:+.0f} s"

    def fault_disk(self, args: tuple[int, ...]) -> str:
        controller = self.flat.controller
        seconds = args[1] / 10
        if controller.disk_full:
            return "the disk is full already"
        controller.fill_disk()
        self._lasting(seconds, controller.free_disk)
        return f"controller's disk full for {seconds:g} s"

    def fault_stall(self, args: tuple[int, ...]) -> str:
        node = self.flat.nodes[self._node(args[0])]
        seconds = args[1] / 10
        if not node.running:
            return f"{node.id} is down"
        node.stall(seconds)
        self.observer.node_down(node.id)   # silent: as if cut off, until its silence shows
        self._lasting(seconds, lambda: None)
        return f"{node.id}: worker stalled for {seconds:g} s"

    def _profile(self, args: tuple[int, ...], profile: LinkProfile, words: str) -> str:
        machine, seconds = self._machine(args[0]), args[1] / 10
        network = self.flat.world.network
        network.set_profile(machine, profile)
        self._lasting(seconds, lambda: network.set_profile(machine, None))
        return f"{machine}: {words} for {seconds:g} s"

    def fault_late(self, args: tuple[int, ...]) -> str:
        return self._profile(args, LATE, "late packets")

    def fault_lossy(self, args: tuple[int, ...]) -> str:
        return self._profile(args, LOSSY, "QoS 0 messages lost")
