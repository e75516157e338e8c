"""Maglock: fail-safe relay, door sensor, what it reports, pulses, and safety at exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import DigitalInputDevice, DigitalOutputDevice, GPIOPinInUse
from gpiozero.pins.mock import MockFactory

from props.exc import BadActionParams, PropConfigError, UnknownAction
from props.factory import build_prop
from props.maglock import Maglock
from props.models import MaglockConfig
from props.sim import MaglockSimulator, prepare
from tests.props.events import EventLog, WatchedPin

RELAY, DOOR = 17, 27
ROOT = Path(__file__).resolve().parents[2]

MakeLock = Callable[..., tuple[Maglock, MaglockSimulator, EventLog]]


def unlocked_level(active_high: bool) -> bool:
    """The relay pin level that leaves the coil unpowered."""
    return not active_high


@pytest.fixture
def make_lock(mock_factory: MockFactory) -> Iterator[MakeLock]:
    built: list[Maglock] = []

    def make(**overrides: Any) -> tuple[Maglock, MaglockSimulator, EventLog]:
        fields: dict[str, Any] = {"id": "front_door", "relay": RELAY, "door": DOOR}
        fields.update(overrides)
        sim = prepare(MaglockConfig(**fields), mock_factory)
        assert isinstance(sim, MaglockSimulator)
        lock = build_prop(sim.config, pin_factory=mock_factory)
        assert isinstance(lock, Maglock)
        built.append(lock)
        return lock, sim, EventLog(lock)

    yield make
    for lock in built:
        lock.close()


@pytest.mark.parametrize("active_high", [True, False])
def test_maglock_is_unlocked_after_construction(make_lock: MakeLock, mock_factory: MockFactory,
                                                active_high: bool) -> None:
    lock, _, _ = make_lock(active_high=active_high)

    assert mock_factory.pin(RELAY).state == unlocked_level(active_high)
    assert lock.state == {"locked": False, "engaged": False, "door": "closed"}
    assert not lock.is_locked


@pytest.mark.parametrize("active_high", [True, False])
def test_maglock_lock_and_unlock_drive_the_relay(make_lock: MakeLock, mock_factory: MockFactory,
                                                 active_high: bool) -> None:
    lock, _, log = make_lock(active_high=active_high)
    relay = mock_factory.pin(RELAY)

    lock.apply("lock")
    assert relay.state == (not unlocked_level(active_high))
    assert lock.state == {"locked": True, "engaged": True, "door": "closed"}
    assert lock.is_locked

    lock.apply("unlock", {})
    assert relay.state == unlocked_level(active_high)
    assert not lock.is_locked
    assert log.state_changes == 2


def test_maglock_refuses_locked_with_door_open(make_lock: MakeLock) -> None:
    lock, sim, _ = make_lock()
    sim.perform("open_door")

    lock.lock()

    assert lock.state == {"locked": False, "engaged": True, "door": "open"}
    assert not lock.is_locked
    sim.perform("close_door")
    assert lock.state == {"locked": True, "engaged": True, "door": "closed"}


def test_maglock_without_door_sensor_reports_door_unknown(make_lock: MakeLock) -> None:
    lock, sim, _ = make_lock(door=None)
    assert sim.gestures == frozenset()

    assert lock.state == {"locked": False, "engaged": False, "door": "unknown"}
    lock.lock()
    assert lock.state == {"locked": True, "engaged": True, "door": "unknown"}


def test_maglock_reports_each_door_change_once(make_lock: MakeLock) -> None:
    lock, sim, log = make_lock()

    sim.perform("open_door")
    sim.perform("open_door")
    sim.perform("close_door")

    assert log.of("door") == ["open", "closed"]
    assert log.state_changes == 2
    assert lock.door_state == "closed"


def test_maglock_door_closed_level_high(make_lock: MakeLock, mock_factory: MockFactory) -> None:
    lock, sim, log = make_lock(door_closed_level="high")
    assert mock_factory.pin(DOOR).state is True
    assert lock.door_state == "closed"

    sim.perform("open_door")

    assert mock_factory.pin(DOOR).state is False
    assert log.of("door") == ["open"]


def test_maglock_pulse_unlocks_then_relocks(make_lock: MakeLock, mock_factory: MockFactory
                                            ) -> None:
    relay = mock_factory.pin(RELAY, pin_class=WatchedPin)
    lock, _, log = make_lock()
    lock.lock()
    relay.clear_states()

    lock.apply("pulse", {"seconds": 0.1})

    assert lock.state["locked"] is False
    assert relay.wait_states(3)
    relay.assert_states_and_times([(0, True), (0, False), (0.1, True)])
    assert log.wait_for(lambda log: log.state_changes == 3)  # lock, pulse, relock
    assert lock.is_locked


@pytest.mark.parametrize("action", ["unlock", "lock"])
def test_maglock_command_during_pulse_cancels_the_relock(make_lock: MakeLock,
                                                         mock_factory: MockFactory,
                                                         action: str) -> None:
    relay = mock_factory.pin(RELAY, pin_class=WatchedPin)
    lock, _, _ = make_lock()
    lock.apply("pulse", {"seconds": 0.05})

    lock.apply(action)
    count = len(relay.states)

    assert not relay.wait_states(count + 1, timeout=0.15)  # no relock, no late click
    assert lock.engaged is (action == "lock")


def test_maglock_pulse_defaults_to_three_seconds(make_lock: MakeLock) -> None:
    lock, _, _ = make_lock()
    lock.apply("pulse")
    assert lock.pulse_seconds == 3.0
    lock.unlock()
    assert lock.pulse_seconds is None


@pytest.mark.parametrize("params", [{"seconds": -1}, {"seconds": 0}, {"seconds": "3"},
                                    {"seconds": True}, {"seconds": 10_000}])
def test_maglock_pulse_rejects_bad_seconds(make_lock: MakeLock, params: dict[str, Any]) -> None:
    lock, _, _ = make_lock()
    with pytest.raises(BadActionParams):
        lock.apply("pulse", params)
    assert not lock.engaged


def test_maglock_unknown_action(make_lock: MakeLock) -> None:
    lock, _, _ = make_lock()
    with pytest.raises(UnknownAction):
        lock.apply("open_sesame")


def test_maglock_reset_locks(make_lock: MakeLock) -> None:
    lock, _, _ = make_lock()
    lock.reset()
    assert lock.is_locked


def test_maglock_self_test_clicks_and_ends_unlocked(make_lock: MakeLock,
                                                    mock_factory: MockFactory,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("props.maglock.SELF_TEST_CLICK", 0.01)
    relay = mock_factory.pin(RELAY, pin_class=WatchedPin)
    lock, _, _ = make_lock()
    lock.lock()
    relay.clear_states()

    result = lock.self_test(timeout=1.0)

    assert result.passed
    assert "door sensor: closed" in result.steps
    assert relay.levels() == [True, False, True, False]
    assert not lock.engaged


@pytest.mark.parametrize("active_high", [True, False])
def test_maglock_close_unlocks_and_twice_is_harmless(make_lock: MakeLock,
                                                     mock_factory: MockFactory,
                                                     active_high: bool) -> None:
    lock, _, _ = make_lock(active_high=active_high)
    lock.lock()
    assert "locked=True" in repr(lock)

    lock.close()
    lock.close()

    assert lock.closed
    assert "closed" in repr(lock)
    assert mock_factory.pin(RELAY).state == unlocked_level(active_high)
    assert lock.state == {"locked": False, "engaged": False, "door": "unknown"}


@pytest.mark.parametrize("active_high", [True, False])
def test_maglock_with_block_unlocks_on_exit(mock_factory: MockFactory, active_high: bool
                                            ) -> None:
    with Maglock(relay=RELAY, active_high=active_high, pin_factory=mock_factory) as lock:
        lock.lock()
        assert mock_factory.pin(RELAY).state != unlocked_level(active_high)
    assert mock_factory.pin(RELAY).state == unlocked_level(active_high)


def test_maglock_closing_its_relay_alone_also_unlocks(make_lock: MakeLock,
                                                      mock_factory: MockFactory) -> None:
    # gpiozero's exit hook closes the reserved child devices, not the composite
    lock, _, _ = make_lock()
    lock.lock()
    lock.relay.close()
    assert mock_factory.pin(RELAY).state is False


@pytest.mark.parametrize("active_high", [True, False])
def test_maglock_failing_constructor_leaves_the_relay_unlocked_and_free(
        mock_factory: MockFactory, active_high: bool) -> None:
    squatter = DigitalInputDevice(DOOR, pin_factory=mock_factory)
    with pytest.raises(GPIOPinInUse):
        Maglock(relay=RELAY, active_high=active_high, door=DOOR, pin_factory=mock_factory)
    squatter.close()

    assert mock_factory.pin(RELAY).state == unlocked_level(active_high)
    DigitalOutputDevice(RELAY, pin_factory=mock_factory).close()  # free again


def test_maglock_rejects_a_bad_door_level(mock_factory: MockFactory) -> None:
    with pytest.raises(PropConfigError):
        Maglock(relay=RELAY, door_closed_level="sideways",  # type: ignore[arg-type]
                pin_factory=mock_factory)
    DigitalOutputDevice(RELAY, pin_factory=mock_factory).close()


def test_maglock_lock_is_thread_safe_with_pulses(make_lock: MakeLock) -> None:
    lock, _, _ = make_lock()
    barrier = threading.Barrier(4)

    def hammer(action: str) -> None:
        barrier.wait()
        for _ in range(50):
            lock.apply(action, {"seconds": 0.01} if action == "pulse" else None)

    threads = [threading.Thread(target=hammer, args=(a,))
               for a in ("lock", "unlock", "pulse", "lock")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lock.unlock()

    assert lock.pulse_seconds is None
    assert not lock.engaged


# -- a whole process: locks it holds are released when it exits ---------------------------
EXIT_SCRIPT = textwrap.dedent("""
    import atexit, json, sys

    pins = {}

    @atexit.register          # registered first, so it runs last: after gpiozero's hook
    def report():             # and after props' own, with the process about to end
        print(json.dumps({name: bool(pin.state) for name, pin in pins.items()}))

    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory
    from props.maglock import Maglock
    from props.outputs import Output

    default = MockFactory()      # gpiozero's default factory: its exit hook closes these
    Device.pin_factory = default
    private = MockFactory()      # a node's own factory: gpiozero's exit hook ignores it
    props = []
    for name, factory in (("default", default), ("private", private)):
        for active_high, pin, door in ((True, 17, 22), (False, 27, None)):
            lock = Maglock(relay=pin, active_high=active_high, door=door, pin_factory=factory)
            lock.lock()
            props.append(lock)
            pins[f"{name}-maglock-{active_high}"] = factory.pin(pin)
        relay = Output(kind="relay", pin=23, active_high=False, pin_factory=factory)
        relay.on()
        props.append(relay)
        pins[f"{name}-relay-False"] = factory.pin(23)
    assert all(pin.state == name.endswith("True") for name, pin in pins.items())
    pulsed = Maglock(relay=24, pin_factory=private)
    pulsed.pulse(seconds=30)     # a pending relock must neither delay the exit nor relock
    pins["private-pulsed-True"] = private.pin(24)
    if sys.argv[1] == "crash":
        raise RuntimeError("uncaught error")
""")


@pytest.mark.parametrize("ending", ["normal", "crash"])
def test_relays_are_unlocked_when_the_process_exits(tmp_path: Path, ending: str) -> None:
    script = tmp_path / "exit_locked.py"
    script.write_text(EXIT_SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script), ending], capture_output=True,
                          text=True, timeout=30, env=env, check=False)

    assert time.monotonic() - started < 15  # the 30 s relock did not hold the exit

    assert done.returncode == (0 if ending == "normal" else 1), done.stderr
    levels = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(levels) == 7
    for name, level in levels.items():
        active_high = name.endswith("True")
        assert level == unlocked_level(active_high), name
