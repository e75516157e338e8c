"""Node identity on the controller (controller/registry.py; docs/mqtt.md, "Node identity").

Births, wills, heartbeats and events of an old boot A and a new boot B of one node (a fast
reboot) are delivered in every order, with a controller restarted at every point (the new
one reads the status topic's retained message first: the last status published), and the
registry must then show the truth — B current and online — after one heartbeat of B; each
event is applied once; "reboot" is reported at most once per registry, and only when a
boot it knew as current was replaced.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.game import Game
from controller.registry import CLOCK_WARN_S, Boot, EventVerdict, Registry
from protocol.contract import NodeHeartbeat, NodeStatus, PropEvent
from tests.controller.conftest import FakeClocks, make_game

KEEPALIVE, HEARTBEAT = 3.0, 1.0
GAME = make_game()


@dataclass(frozen=True)
class Msg:
    """One message of the node, as the controller receives it."""

    name: str
    boot: str
    kind: str            # birth | will | beat | event
    seq: int = 0


def payload(msg: Msg, *, counters: bool) -> NodeStatus | NodeHeartbeat | PropEvent:
    boot_n = {"A": 1, "B": 2}[msg.boot] if counters else None
    if msg.kind == "birth":
        return NodeStatus(online=True, boot_id=msg.boot, boot_n=boot_n, keepalive=KEEPALIVE,
                          heartbeat=HEARTBEAT, ts=1.0)
    if msg.kind == "will":
        return NodeStatus(online=False, boot_id=msg.boot, boot_n=boot_n)
    if msg.kind == "beat":
        return NodeHeartbeat(boot_id=msg.boot, boot_n=boot_n, ts=1.0)
    return PropEvent(boot_id=msg.boot, seq=msg.seq, type="code", value=msg.name, ts=1.0)


@dataclass
class Controller:
    """A registry and what it answered."""

    clocks: FakeClocks
    registry: Registry = field(init=False)
    kinds: list[str] = field(default_factory=list)
    verdicts: dict[str, EventVerdict] = field(default_factory=dict)
    currents: list[str | None] = field(default_factory=list)
    #: (boot known before — current or remembered —, boot current after) of each reboot
    reboots: list[tuple[str | None, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.registry = Registry(GAME, clock=self.clocks.monotonic, wall=self.clocks.wall)

    def deliver(self, msg: Msg, *, counters: bool, live: bool = True) -> None:
        data = payload(msg, counters=counters)
        hall = self.registry.nodes["hall"]
        before = hall.boot_id or (hall.remembered[0] if hall.remembered else None)
        if isinstance(data, NodeStatus):
            self.kinds.append(self.registry.on_status("hall", data, live=live))
        elif isinstance(data, NodeHeartbeat):
            self.kinds.append(self.registry.on_heartbeat("hall", data))
        else:
            self.verdicts[msg.name] = self.registry.on_event("hall", data)
        self.currents.append(hall.boot_id)
        if self.kinds and self.kinds[-1] == Boot.REBOOT and not isinstance(data, PropEvent):
            self.reboots.append((before, hall.boot_id))


BIRTH_A, WILL_A, BEAT_A, EVENT_A = (Msg("bA", "A", "birth"), Msg("wA", "A", "will"),
                                     Msg("hA", "A", "beat"), Msg("eA", "A", "event", 1))
BIRTH_B, BEAT_B, EVENT_B = Msg("bB", "B", "birth"), Msg("hB", "B", "beat"), Msg("eB", "B", "event", 1)
MESSAGES = (BIRTH_A, WILL_A, BEAT_A, EVENT_A, BIRTH_B, BEAT_B, EVENT_B)


def play(order: tuple[Msg, ...], restart_at: int | None, *, counters: bool, seeded: bool = True,
         beats_after: int = 1) -> tuple[list[Controller], Controller]:
    """Deliver *order* (a controller restarted before message *restart_at*: *seeded*, it
    starts from the boot its predecessor knew as current, as the store keeps it), then B's
    next heartbeats; return every controller and the last one."""
    clocks = FakeClocks()
    controllers = [Controller(clocks)]
    for i, msg in enumerate(order):
        if i == restart_at:
            fresh = Controller(clocks)
            known = controllers[-1].registry.known_boots().get("hall")
            if seeded and known is not None:
                fresh.registry.remember("hall", *known)
            retained = [m for m in order[:i] if m.kind in ("birth", "will")]
            if retained:   # the status topic keeps the last status published
                fresh.deliver(retained[-1], counters=counters, live=False)
            controllers.append(fresh)
        clocks.advance(0.05)
        controllers[-1].deliver(msg, counters=counters)
    last = controllers[-1]
    for _ in range(beats_after):
        clocks.advance(HEARTBEAT)
        last.deliver(BEAT_B, counters=counters)
    return controllers, last


def check_truth(controllers: list[Controller], last: Controller, order: tuple[Msg, ...], *,
                seeded: bool = True) -> None:
    hall = last.registry.nodes["hall"]
    assert (hall.boot_id, hall.online) == ("B", True), f"{[m.name for m in order]}: {last.kinds}"
    if seeded and one_broker(order):
        # one reboot happened: reported once in all, whatever the restarts (an order no
        # broker delivers — the old boot alive after the new one's birth — may report it
        # twice: the safe side, the exit door waits for the game master)
        assert sum(ctl.kinds.count(Boot.REBOOT) for ctl in controllers) <= 1, \
            [ctl.kinds for ctl in controllers]
    for ctl in controllers:
        for name, verdict in ctl.verdicts.items():
            assert verdict != EventVerdict.DUPLICATE, f"{name} was new"
        assert ctl.kinds.count(Boot.REBOOT) <= 1, f"reboot reported twice: {ctl.kinds}"
        for before, after in ctl.reboots:
            assert before is not None and before != after, "a reboot replaces a boot known before"
        # once B is current, nothing of A takes it back (B is the newer boot, alive)
        if "B" in ctl.currents:
            assert "A" not in ctl.currents[ctl.currents.index("B"):], ctl.currents


@pytest.mark.parametrize(("restart", "seeded"), [(None, True)] + [
    (i, seeded) for i in range(1, len(MESSAGES)) for seeded in (True, False)])
def test_every_order_of_an_old_and_a_new_boot_converges_within_one_heartbeat(
        restart: int | None, seeded: bool) -> None:
    """All 5,040 orders of the seven messages, with boot counters (``boot_n``); the
    restarted controller with its predecessor's store (*seeded*), or with a new one."""
    for order in itertools.permutations(MESSAGES):
        controllers, last = play(order, restart, counters=True, seeded=seeded)
        check_truth(controllers, last, order, seeded=seeded)


def one_broker(order: tuple[Msg, ...]) -> bool:
    """What one broker can deliver of a node that rebooted: A was born before it spoke,
    and died before B was born (its will may come any time after its birth)."""
    at = {m.name: i for i, m in enumerate(order)}
    return (at["bA"] < min(at["hA"], at["eA"], at["wA"])
            and max(at["hA"], at["eA"]) < at["bB"] < min(at["hB"], at["eB"]))


@pytest.mark.parametrize("restart", [None, *range(1, len(MESSAGES))])
def test_nodes_without_boot_counter_converge_in_every_order_one_broker_delivers(
        restart: int | None) -> None:
    """An older node (no ``boot_n``): nothing orders two boots but the broker, so the claim
    is for the orders one broker can deliver (its old boot's will may come any time)."""
    played = 0
    for order in itertools.permutations(MESSAGES):
        if one_broker(order):
            for seeded in (True, False):
                controllers, last = play(order, restart, counters=False, seeded=seeded)
                check_truth(controllers, last, order, seeded=seeded)
            played += 1
    assert played == 24


@settings(max_examples=300, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations([*MESSAGES, EVENT_A, EVENT_B, Msg("eA2", "A", "event", 2),
                        Msg("eB2", "B", "event", 2)]),
       st.one_of(st.none(), st.integers(min_value=1, max_value=10)))
def test_events_are_applied_once_whatever_the_order_and_duplicates(order: list[Msg],
                                                                   restart: int | None) -> None:
    """Events redelivered (QoS 1) and interleaved with both boots' births, wills and
    heartbeats: each is new once per controller, and never moves the identity. (A boot's
    events leave it in seq order, which one broker keeps: only their duplicates are late.)"""
    for boot in "AB":
        at = [i for i, m in enumerate(order) if m.kind == "event" and m.boot == boot]
        first_one = next(i for i in at if order[i].seq == 1)
        order[at[0]], order[first_one] = order[first_one], order[at[0]]
    clocks = FakeClocks()
    ctl = Controller(clocks)
    applied: list[dict[tuple[str, int], int]] = [{}]
    for i, msg in enumerate(order):
        if i == restart:
            ctl = Controller(clocks)
            applied.append({})
        before = ctl.registry.nodes["hall"].boot_id
        clocks.advance(0.05)
        ctl.deliver(msg, counters=True)
        if msg.kind == "event":
            key = (msg.boot, msg.seq)
            applied[-1][key] = applied[-1].get(key, 0) + (ctl.verdicts[msg.name] != EventVerdict.DUPLICATE)
            assert ctl.registry.nodes["hall"].boot_id == before, "an event moved the identity"
    for counts in applied:
        assert all(n <= 1 for n in counts.values()), f"applied twice by one controller: {counts}"
    for key in {(m.boot, m.seq) for m in order if m.kind == "event"}:
        assert any(counts.get(key) for counts in applied), f"{key} never applied"


# -- the rules, one by one ------------------------------------------------------------------
def birth(boot: str, boot_n: int | None = None) -> NodeStatus:
    return NodeStatus(online=True, boot_id=boot, boot_n=boot_n, keepalive=KEEPALIVE,
                      heartbeat=HEARTBEAT, ts=1.0)


def beat(boot: str, boot_n: int | None = None, ts: float | None = None) -> NodeHeartbeat:
    return NodeHeartbeat(boot_id=boot, boot_n=boot_n, ts=ts)


@pytest.fixture
def clocks() -> FakeClocks:
    return FakeClocks()


@pytest.fixture
def registry(clocks: FakeClocks, game: Game) -> Registry:
    return Registry(game, clock=clocks.monotonic, wall=clocks.wall)


def test_an_old_boots_event_is_a_fact_not_an_identity_claim(registry: Registry, clocks: FakeClocks) -> None:
    registry.on_status("hall", birth("B", 2))
    registry.on_heartbeat("hall", beat("B", 2))
    old = PropEvent(boot_id="A", seq=7, type="code", value="0412", ts=1.0)
    assert registry.on_event("hall", old) == EventVerdict.OTHER_BOOT
    assert registry.on_event("hall", old) == EventVerdict.DUPLICATE, "deduplicated by (boot, seq)"
    hall = registry.nodes["hall"]
    assert (hall.boot_id, hall.last_seq) == ("B", 0)
    clocks.advance(HEARTBEAT)
    assert registry.on_heartbeat("hall", beat("B", 2)) == Boot.SAME, "B's heartbeats still count"
    assert registry.on_status("hall", NodeStatus(online=False, boot_id="A", boot_n=1)) == Boot.STALE
    assert hall.online and registry.check_silence(clocks.mono + 0.5) == ([], False)


def test_a_restarted_controller_reading_an_old_will_adopts_the_boot_that_beats(registry: Registry) -> None:
    assert registry.on_status("hall", NodeStatus(online=False, boot_id="A", boot_n=1), live=False) == Boot.OFFLINE
    assert registry.on_heartbeat("hall", beat("B", 2, ts=1.0)) == Boot.REBOOT
    hall = registry.nodes["hall"]
    assert (hall.boot_id, hall.boot_n, hall.online, hall.reboots) == ("B", 2, True, 1)
    assert registry.returned == {"hall"}, "its birth was missed: ask for a resync"


def test_a_newer_boot_takes_over_a_live_one_and_an_older_one_never_does(registry: Registry) -> None:
    registry.on_status("hall", birth("B", 5))
    assert registry.on_heartbeat("hall", beat("A", 4)) == Boot.STALE
    assert registry.on_status("hall", birth("A", 4)) == Boot.STALE, "a live birth of an older boot"
    assert registry.on_status("hall", birth("A", 4), live=False) == Boot.STALE
    assert registry.on_status("hall", birth("C", 6), live=False) == Boot.REBOOT, "a newer boot's claim"
    assert registry.nodes["hall"].boot_id == "C"


def test_a_node_whose_counter_went_back_is_adopted_once_its_old_boot_is_gone(registry: Registry,
                                                                           clocks: FakeClocks) -> None:
    # A new SD card: boot_n starts again at 1. The old boot (57) is dead, its will lost.
    registry.on_status("hall", birth("old", 57))
    assert registry.on_heartbeat("hall", beat("new", 1)) == Boot.STALE, "the old boot was heard just now"
    clocks.advance(2 * HEARTBEAT + 0.1)
    assert registry.on_heartbeat("hall", beat("new", 1)) == Boot.REBOOT
    assert registry.nodes["hall"].boot_id == "new"


def test_a_restarted_controller_starts_from_the_boot_its_predecessor_knew(game: Game,
                                                                          clocks: FakeClocks) -> None:
    def fresh() -> Registry:
        registry = Registry(game, clock=clocks.monotonic, wall=clocks.wall)
        registry.remember("hall", "B", 2)
        return registry

    same = fresh()
    assert same.on_status("hall", birth("B", 2), live=False) == Boot.BIRTH, "the same boot: no reboot"
    assert same.known_boots() == {"hall": ("B", 2)}
    older = fresh()
    assert older.on_status("hall", birth("A", 1), live=False) == Boot.STALE, "an older boot's leftover"
    assert older.on_heartbeat("hall", beat("A", 1)) == Boot.REBOOT, "but it runs (a new SD card)"
    newer = fresh()
    assert newer.on_status("hall", birth("C", 3), live=False) == Boot.REBOOT, "rebooted while we were down"


def test_a_will_of_a_newer_boot_whose_birth_was_missed_is_a_reboot_and_takes_the_node_offline(
        registry: Registry) -> None:
    # A node rebooting behind a one-way cut times out before its CONNACK: the broker
    # publishes the new boot's will before its birth ever comes. Its relays were released
    # all the same: a reboot, once, whichever comes first.
    registry.on_status("hall", birth("A", 1))
    assert registry.on_status("hall", NodeStatus(online=False, boot_id="B", boot_n=2)) == Boot.REBOOT
    hall = registry.nodes["hall"]
    assert (hall.boot_id, hall.online, hall.offline_reason, hall.reboots) == ("B", False, "will", 1)
    assert registry.on_status("hall", birth("B", 2)) == Boot.BIRTH, "its birth: no second reboot"
    assert registry.on_status("hall", birth("C", 3)) == Boot.REBOOT
    assert hall.reboots == 2


def test_a_flip_back_to_a_former_boot_is_no_second_reboot(registry: Registry, clocks: FakeClocks) -> None:
    # Nodes without a counter: a live birth always takes over; the other boot comes back
    # once the current one is silent. The relock rule fires once, not at every flip.
    registry.on_status("hall", birth("A"))
    assert registry.on_status("hall", birth("B")) == Boot.REBOOT
    clocks.advance(2 * HEARTBEAT + 0.1)
    assert registry.on_heartbeat("hall", beat("A")) == Boot.RETURN
    clocks.advance(2 * HEARTBEAT + 0.1)
    assert registry.on_heartbeat("hall", beat("B")) == Boot.RETURN
    assert registry.nodes["hall"].reboots == 1


def test_a_will_of_the_current_boot_then_its_heartbeat_is_a_return_with_a_resync(registry: Registry) -> None:
    registry.on_status("hall", birth("A", 1))
    assert registry.on_status("hall", NodeStatus(online=False, boot_id="A", boot_n=1)) == Boot.OFFLINE
    assert registry.on_heartbeat("hall", beat("A", 1)) == Boot.RETURN
    assert registry.nodes["hall"].online and registry.returned == {"hall"}


def test_events_of_a_boot_heard_before_its_adoption_are_not_applied_twice(registry: Registry) -> None:
    registry.on_status("hall", NodeStatus(online=False, boot_id="A", boot_n=1), live=False)
    for seq in (1, 2):
        assert registry.on_event("hall", PropEvent(boot_id="B", seq=seq, type="key", ts=1.0)) \
            == EventVerdict.OTHER_BOOT
    registry.on_heartbeat("hall", beat("B", 2))
    assert registry.nodes["hall"].last_seq == 2
    assert registry.on_event("hall", PropEvent(boot_id="B", seq=2, type="key", ts=1.0)) == EventVerdict.DUPLICATE
    assert registry.on_event("hall", PropEvent(boot_id="B", seq=3, type="key", ts=1.0)) == EventVerdict.NEW


def test_without_counters_a_live_boot_replaces_a_silent_one(registry: Registry, clocks: FakeClocks) -> None:
    # No counters: the retained birth of a boot that is gone, then the live boot's heartbeats.
    registry.on_status("hall", birth("A"), live=False)
    assert registry.nodes["hall"].online
    assert registry.on_heartbeat("hall", beat("B")) == Boot.STALE, "A was heard of just now"
    clocks.advance(2 * HEARTBEAT + 0.1)
    assert registry.on_heartbeat("hall", beat("B")) == Boot.REBOOT
    assert registry.nodes["hall"].boot_id == "B" and registry.returned == {"hall"}


def test_retained_messages_do_not_move_last_seen(registry: Registry, clocks: FakeClocks, game: Game) -> None:
    from protocol.contract import PropState

    registry.on_status("hall", birth("A", 1), live=False)
    registry.on_state("hall", "keypad", PropState(boot_id="A"), live=False)
    assert registry.nodes["hall"].last_seen is None, "read from the broker's store: says nothing of now"
    registry.on_heartbeat("hall", beat("A", 1))
    assert registry.nodes["hall"].last_seen == clocks.now


def test_a_late_state_of_a_replaced_boot_does_not_overwrite_the_current_one(registry: Registry) -> None:
    from protocol.contract import PropState

    registry.on_status("hall", birth("A", 1))
    registry.on_status("hall", birth("B", 2))
    assert registry.on_state("hall", "box_lock", PropState(boot_id="B", engaged=False)) is not None
    assert registry.on_state("hall", "box_lock", PropState(boot_id="A", engaged=True)) is False
    assert registry.props[("hall", "box_lock")].reported == {"engaged": False}
    # a boot not replaced (yet): its states count (a restarted controller reads them before
    # the heartbeat that makes their boot current)
    assert registry.on_state("hall", "box_lock", PropState(boot_id="C", engaged=True))
    assert registry.props[("hall", "box_lock")].reported == {"engaged": True}


# -- clock offset: information only -----------------------------------------------------------
def test_the_clock_offset_is_the_median_of_the_last_heartbeats_and_warns_above_2_s(
        registry: Registry, clocks: FakeClocks) -> None:
    registry.on_status("hall", birth("A", 1))
    view = lambda: next(n for n in registry.snapshot()["nodes"] if n["id"] == "hall")  # noqa: E731
    assert (view()["clock_offset"], view()["clock_skewed"]) == (None, False)
    offsets = [0.3, 0.2, 9.0, 0.25, 0.3]   # one heartbeat held up on the way
    for offset in offsets:
        clocks.advance(HEARTBEAT)
        registry.on_heartbeat("hall", beat("A", 1, ts=clocks.now + offset))
    assert view()["clock_offset"] == pytest.approx(statistics.median_low(offsets))
    assert view()["clock_skewed"] is False
    for _ in range(3):   # the node's clock steps an hour ahead: shown after three heartbeats
        clocks.advance(HEARTBEAT)
        registry.on_heartbeat("hall", beat("A", 1, ts=clocks.now + 3600))
    assert view()["clock_offset"] == pytest.approx(3600) and view()["clock_skewed"] is True
    assert abs(view()["clock_offset"]) > CLOCK_WARN_S
    clocks.advance(HEARTBEAT)
    registry.on_status("hall", birth("B", 2))
    assert view()["clock_offset"] is None, "another boot: its clock is measured afresh"


def test_a_clock_offset_changes_no_decision(registry: Registry, clocks: FakeClocks) -> None:
    registry.on_status("hall", birth("A", 1))
    clocks.advance(HEARTBEAT)
    assert registry.on_heartbeat("hall", beat("A", 1, ts=clocks.now - 7200)) == Boot.UPDATED  # warning shown
    clocks.advance(HEARTBEAT)
    assert registry.on_heartbeat("hall", beat("A", 1, ts=clocks.now - 7200)) == Boot.SAME
    assert registry.nodes["hall"].online
    assert registry.check_silence(clocks.mono + 0.1) == ([], False)


def test_booted_at_is_on_the_controllers_clock(registry: Registry, clocks: FakeClocks) -> None:
    # A retained birth: the node's own time, brought to ours by its clock offset.
    registry.on_status("hall", NodeStatus(online=True, boot_id="A", boot_n=1, keepalive=KEEPALIVE,
                                          heartbeat=HEARTBEAT, ts=clocks.now + 3600 - 50), live=False)
    view = lambda: next(n for n in registry.snapshot()["nodes"] if n["id"] == "hall")  # noqa: E731
    assert view()["booted_at"] is None, "no offset known yet: not shown rather than wrong"
    registry.on_heartbeat("hall", beat("A", 1, ts=clocks.now + 3600))
    assert view()["booted_at"] == pytest.approx(clocks.now - 50)
    clocks.advance(10)
    registry.on_status("hall", NodeStatus(online=True, boot_id="B", boot_n=2, ts=clocks.now + 3600))
    assert view()["booted_at"] == pytest.approx(clocks.now), "a live birth: when we heard it"


# -- the service: sessions of events, a boot adopted from its heartbeat -----------------------
@pytest.fixture
def service(tmp_path, game: Game, clocks: FakeClocks):
    from controller.mqtt import MqttBridge
    from controller.service import GameService
    from controller.store import Store
    from protocol.contract import Topics
    from protocol.mqtt import BrokerAddress

    store = Store(tmp_path / "escape.db")
    bridge = MqttBridge(topics=Topics(game.apartment.id), broker=BrokerAddress("127.0.0.1", 9),
                        boot_id="ctl")
    svc = GameService(game=game, bridge=bridge, store=store, clock=clocks.monotonic, wall=clocks.wall)
    svc.published = []
    bridge.publish = lambda topic, data, **_kw: svc.published.append((topic, data))
    bridge.publish_status = lambda **_kw: None
    bridge.send_command = lambda n, p, c: svc.published.append((f"{n}.{p}", c.to_bytes()))
    svc.registry.on_status("hall", birth("boot1", 1))
    svc.registry.on_status("salon", birth("salon1", 1))
    yield svc
    store.close()


def code(seq: int, value: str, *, session: str | None, replayed: bool | None = None,
         prop: str = "keypad", type_: str = "code") -> object:
    from controller.mqtt import Incoming
    from protocol.contract import TopicParts

    return Incoming(TopicParts("event", "hall", prop),
                    PropEvent(boot_id="boot1", seq=seq, type=type_, value=value, ts=1.0,
                              session=session, replayed=replayed), retained=False)


def puzzle(service, puzzle_id: str) -> str:
    return service.engine.puzzles[puzzle_id].status


def test_an_event_of_another_session_is_recorded_never_applied(service) -> None:
    service.orders.start_game(parcours="primo", players=3)
    session = service.engine.session_id
    service.handle(code(1, "0412", session="old_game"))
    assert puzzle(service, "mailbox") != "solved", "a code typed in an earlier game solved this one"
    assert service.bridge.metrics["other_session_events"] == 1
    service.journal.flush()
    old_rows = service.store.events("old_game")
    assert [(r["kind"], r["type"], r["value"]) for r in old_rows] == [("prop", "code", "0412")]
    notes = [r["text"] for r in service.store.events(session) if r["kind"] == "ignored"]
    assert notes and "old_game" in notes[0] and "non appliqué" in notes[0]
    service.handle(code(2, "0412", session=session, replayed=True))
    assert puzzle(service, "mailbox") == "solved", "an event of this game queued while we were away"


def test_an_event_without_a_session_is_applied_as_before(service) -> None:
    service.orders.start_game(parcours="primo", players=3)
    service.handle(code(1, "0412", session=None))
    assert puzzle(service, "mailbox") == "solved"


def test_a_local_solve_of_another_session_is_not_applied_but_an_emergency_always_is(service) -> None:
    service.orders.start_game(parcours="primo", players=3)
    service.handle(code(1, "mailbox", session="old_game", prop="node", type_="solved_locally"))
    assert puzzle(service, "mailbox") != "solved"
    service.handle(code(2, "", session="old_game", prop="node", type_="emergency"))
    assert service.engine.phase == "paused", "a release is never filtered"
    assert all(want.action == "unlock" for (n, _p), want in service.desired.items()
               if (n, _p) in service.ctx.maglocks)


def test_a_boot_adopted_from_its_heartbeat_is_resynced_and_its_exit_door_waits(service,
                                                                              clocks: FakeClocks) -> None:
    from controller.mqtt import Incoming
    from protocol.contract import Resync, TopicParts

    service.orders.start_game(parcours="primo", players=3)
    assert service.desired[("salon", "door_lock")].action == "lock"
    service.bridge.connected = True
    # the salon rebooted fast; this controller saw only its old boot's will
    service.handle(Incoming(TopicParts("status", "salon"),
                             NodeStatus(online=False, boot_id="salon1", boot_n=1), retained=True))
    service.published.clear()
    clocks.advance(1)
    assert service.handle(Incoming(TopicParts("heartbeat", "salon"),
                                          beat("salon2", 2), retained=False))
    assert service.registry.nodes["salon"].online
    resyncs = [Resync.model_validate_json(d) for t, d in service.published
               if t == service.bridge.topics.node_resync("salon")]
    assert len(resyncs) == 1
    want = service.desired[("salon", "door_lock")]
    assert (want.action, want.relock_pending) == ("unlock", True), "an exit door waits for the game master"
    assert service.desired[("hall", "box_lock")].action == "lock", "another node's lock is untouched"


@pytest.mark.parametrize(("retained_boot", "rebooted"), [("salon1", False), ("salon2", True)])
def test_a_reboot_while_no_controller_ran_is_still_a_reboot_and_only_once(
        tmp_path, game: Game, clocks: FakeClocks, retained_boot: str, rebooted: bool) -> None:
    """The last boot of each node is kept in the store: the next controller tells a node
    that rebooted while it was down (its exit door waits for the game master) from one
    that did not (its locks are resent as they were)."""
    from controller.mqtt import Incoming, MqttBridge
    from controller.service import GameService
    from controller.store import Store
    from protocol.contract import TopicParts, Topics
    from protocol.mqtt import BrokerAddress

    def controller() -> GameService:
        bridge = MqttBridge(topics=Topics(game.apartment.id), broker=BrokerAddress("127.0.0.1", 9),
                            boot_id="ctl")
        bridge.publish = lambda *_a, **_kw: None
        bridge.publish_status = lambda **_kw: None
        bridge.send_command = lambda *_a: None
        svc = GameService(game=game, bridge=bridge, store=store, clock=clocks.monotonic, wall=clocks.wall)
        svc.resume()
        return svc

    store = Store(tmp_path / "escape.db")
    first = controller()
    first.handle(Incoming(TopicParts("status", "salon"), birth("salon1", 1), retained=False))
    first.orders.start_game(parcours="primo", players=3)
    assert first.desired[("salon", "door_lock")].action == "lock"
    # killed (no clean stop); meanwhile the salon reboots, or not; a new controller starts
    second = controller()
    assert second.registry.nodes["salon"].remembered == ("salon1", 1)
    boot_n = 2 if rebooted else 1
    second.handle(Incoming(TopicParts("status", "salon"), birth(retained_boot, boot_n), retained=True))
    want = second.desired[("salon", "door_lock")]
    assert (want.action, want.relock_pending) == (("unlock", True) if rebooted else ("lock", False))
    # the game master relocks it; a third controller sees the same boot: no reboot again
    second.orders.prop_order("salon", "door_lock", "lock", {})
    third = controller()
    third.handle(Incoming(TopicParts("status", "salon"), birth(retained_boot, boot_n), retained=True))
    want = third.desired[("salon", "door_lock")]
    assert (want.action, want.relock_pending) == ("lock", False)
    assert third.registry.nodes["salon"].reboots == 0
    store.close()
