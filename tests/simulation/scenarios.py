"""Scripted MQTT sequences, run on real Mosquitto and on the simulated broker alike.

Each scenario drives a :class:`~tests.simulation.drivers.Driver`, then states what must
hold on the events it recorded (``check``: the behaviour itself, so a scenario cannot
pass by both sides observing nothing), and what of them is compared between the two
brokers (``project``: everything, in order, unless the order is not deterministic on a
real broker — several publishers at once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.simulation.drivers import Driver, Event

Events = dict[str, list[Event]]


def msg(topic: str, payload: bytes, qos: int, retain: bool = False, dup: bool = False) -> Event:
    return ("msg", topic, payload, qos, retain, dup)


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Driver], None]
    check: Callable[[Events], None]
    project: Callable[[Events], Any] = field(default=lambda events: events)
    persistence: bool = False


# -- retained messages --------------------------------------------------------------------
def retained_run(d: Driver) -> None:
    pub = d.client("pub")
    early = d.client("early")
    early.subscribe(("r/#", 1))
    pub.publish("r/a", b"1", qos=1, retain=True)
    pub.publish("r/a", b"2", qos=1, retain=True)       # replaced
    pub.publish("r/b/c", b"c", qos=0, retain=True)
    pub.publish("r/b", b"b", qos=1, retain=True)
    pub.publish("r", b"root", qos=1, retain=True)
    pub.publish("r/gone", b"x", qos=1, retain=True)
    pub.publish("r/gone", b"", qos=1, retain=True)      # cleared (and forwarded, empty)
    d.settle()
    late = d.client("late")
    late.subscribe(("r/#", 0), ("r/+", 1))              # retained sent filter by filter
    d.settle()
    late.subscribe(("r/+", 1))                          # again: the retained ones again
    d.settle()


def retained_check(ev: Events) -> None:
    assert ev["early"][2:] == [msg("r/a", b"1", 1), msg("r/a", b"2", 1), msg("r/b/c", b"c", 0),
                               msg("r/b", b"b", 1), msg("r", b"root", 1), msg("r/gone", b"x", 1),
                               msg("r/gone", b"", 1)]
    late = ev["late"][2:8]
    assert set(late) == {msg("r/a", b"2", 0, True), msg("r/b/c", b"c", 0, True),
                         msg("r/b", b"b", 0, True), msg("r", b"root", 0, True),
                         msg("r/a", b"2", 1, True), msg("r/b", b"b", 1, True)}
    assert ev["late"][8:] == [("suback", [1]), msg("r/a", b"2", 1, True), msg("r/b", b"b", 1, True)]
    assert not any(e[1] == "r/gone" for e in late)


# -- wildcards and overlapping subscriptions ---------------------------------------------
def wildcards_run(d: Driver) -> None:
    w = d.client("w")
    w.subscribe(("w/+/x", 1), ("w/#", 0), ("w/a/x", 0), ("+/+/y", 1), ("#", 1))
    v = d.client("v")
    v.subscribe(("w/+", 1), ("w/a/+/#", 1), ("$x/#", 1))
    pub = d.client("pub")
    for topic in ("w/a/x", "w/b/x", "w/b/y", "w", "w/a", "w/a/x/deep", "other/b/y", "$x/a/y", "/w/x"):
        pub.publish(topic, topic.encode(), qos=1)
    d.settle()


def wildcards_check(ev: Events) -> None:
    got = {e[1]: e[3] for e in ev["w"] if e[0] == "msg"}
    # once per client, with the QoS of the first filter in Mosquitto's walk order
    assert [e[1] for e in ev["w"] if e[0] == "msg"].count("w/a/x") == 1
    assert got["w/a/x"] == 0 and got["w/b/x"] == 1 and got["w/b/y"] == 0 and got["other/b/y"] == 1
    assert "$x/a/y" not in got
    assert {e[1] for e in ev["v"] if e[0] == "msg"} == {"w/a", "w/a/x", "w/a/x/deep", "$x/a/y"}


# -- last will ------------------------------------------------------------------------------
def will_run(d: Driver) -> None:
    obs = d.client("obs")
    obs.subscribe(("will/#", 1))
    cut = d.client("cut", will=("will/cut", b"cut gone", 1, False))
    clean = d.client("clean", will=("will/clean", b"never", 1, True))
    kept = d.client("kept", will=("will/kept", b"kept gone", 0, True))
    d.cut(cut)
    d.disconnect(clean)
    d.cut(kept)
    d.settle()
    late = d.client("late")
    late.subscribe(("will/#", 1))
    d.settle()


def will_check(ev: Events) -> None:
    assert sorted(ev["obs"][2:]) == sorted([msg("will/cut", b"cut gone", 1), msg("will/kept", b"kept gone", 0)])
    assert ev["late"][2:] == [msg("will/kept", b"kept gone", 0, True)]
    assert ev["clean"][-1] == ("disconnect", "Normal disconnection")


def will_project(ev: Events) -> Events:
    # the two cut clients are independent connections: their wills may come in either order
    return {**ev, "obs": sorted(ev["obs"])}


# -- client-id takeover --------------------------------------------------------------------
def takeover_run(d: Driver) -> None:
    obs = d.client("obs")
    obs.subscribe(("will/#", 1))
    d.client("a", client_id="A", will=("will/A", b"A clean", 1, False))
    d.client("a2", client_id="A")                     # clean + clean: the old will goes out
    d.settle()
    d.client("p", client_id="P", clean=False, will=("will/P", b"P", 1, False))
    d.client("p2", client_id="P", clean=False)        # persistent + persistent: no will
    d.settle()
    d.client("q", client_id="Q", clean=False, will=("will/Q", b"Q", 1, False))
    d.client("q2", client_id="Q", clean=True)         # persistent + clean: the will goes out
    d.settle()


def takeover_check(ev: Events) -> None:
    assert ev["obs"][2:] == [msg("will/A", b"A clean", 1), msg("will/Q", b"Q", 1)]
    for old in ("a", "p", "q"):
        assert ev[old] == [("connack", False), ("disconnect", "Unspecified error")]
    assert ev["p2"] == [("connack", True)]
    assert ev["q2"] == [("connack", False)]


# -- QoS 1 for an offline persistent session, DUP on redelivery ------------------------------
def offline_queue_run(d: Driver) -> None:
    pub = d.client("pub")
    s = d.client("s", client_id="S", clean=False, manual_ack=True)
    s.subscribe(("q/#", 1), ("q0/#", 0))
    pub.publish("q/1", b"in flight", qos=1)
    d.wait_until(lambda: len(s.messages()) == 1, timeout=5, what="q/1")
    d.cut(s)                                          # never acknowledged: stays in flight
    d.settle()                                        # the broker saw it go before what follows
    pub.publish("q/2", b"queued", qos=1)
    pub.publish("q/zero", b"qos0 offline: dropped", qos=0)
    pub.publish("q0/x", b"qos1 on a qos0 subscription: dropped", qos=1)
    pub.publish("q/3", b"queued too", qos=1)
    d.settle()
    d.client("s", client_id="S", clean=False)        # the same name: one event list
    d.settle()
    # a clean session drops the session and what it queued
    d.disconnect(d.client("c0", client_id="C", clean=False))
    c = d.client("c", client_id="C", clean=False)
    c.subscribe(("c/#", 1))
    d.disconnect(c)
    d.settle()
    pub.publish("c/1", b"for the persistent session", qos=1)
    d.settle()
    d.disconnect(d.client("c", client_id="C", clean=True))
    d.client("c", client_id="C", clean=False)
    pub.publish("c/2", b"nobody subscribed any more", qos=1)
    d.settle()


def offline_queue_check(ev: Events) -> None:
    assert ev["s"] == [("connack", False), ("suback", [1, 0]), msg("q/1", b"in flight", 1),
                       ("connack", True), msg("q/1", b"in flight", 1, dup=True),
                       msg("q/2", b"queued", 1), msg("q/3", b"queued too", 1)]
    bye = ("disconnect", "Normal disconnection")
    assert ev["c"] == [("connack", True), ("suback", [1]), bye, ("connack", False), bye, ("connack", False)]


# -- the broker's in-flight window --------------------------------------------------------
WINDOW = 20  # Mosquitto's default max_inflight_messages


def window_run(d: Driver) -> None:
    s = d.client("s", manual_ack=True)
    s.subscribe(("win/#", 1))
    pub = d.client("pub", max_inflight=100)          # the publisher's own window is no limit
    for n in range(WINDOW + 5):
        pub.publish("win/q1", f"{n}".encode(), qos=1, wait=False)
    pub.publish("win/q0", b"overtakes", qos=0)
    d.wait_until(lambda: len(s.messages()) == WINDOW + 1, timeout=5, what="a full window and QoS 0")
    d.settle()                                        # the rest waits for acknowledgements
    s.ack_all()
    d.wait_until(lambda: len(s.messages()) == WINDOW + 6, timeout=5, what="the queued rest")
    d.settle()


def window_check(ev: Events) -> None:
    q1 = [msg("win/q1", f"{n}".encode(), 1) for n in range(WINDOW + 5)]
    # QoS 0 is never queued behind QoS 1: it overtakes what waits for the window
    assert ev["s"][2:] == [*q1[:WINDOW], msg("win/q0", b"overtakes", 0), *q1[WINDOW:]]


# -- keepalive ------------------------------------------------------------------------------
#: Mosquitto 2.0: will after more than int(1.5 × 1) = 1 whole second of silence, seen by a
#: sweep every 6 s: between 1 and 8 s (plus the time to deliver it)
KEEPALIVE_WINDOW = (1.0, 8.5)


def keepalive_run(d: Driver) -> None:
    obs = d.client("obs")
    obs.subscribe(("will/#", 1))
    hung = d.client("hung", keepalive=1, will=("will/hung", b"silent", 1, False))
    d.hang(hung)
    start = d.now()
    d.wait_until(lambda: len(obs.messages()) == 1, timeout=12, what="the will of a silent client")
    elapsed = d.now() - start
    assert KEEPALIVE_WINDOW[0] < elapsed <= KEEPALIVE_WINDOW[1], elapsed


def keepalive_check(ev: Events) -> None:
    assert ev["obs"][2:] == [msg("will/hung", b"silent", 1)]


# -- broker restart -------------------------------------------------------------------------
def _restart_run(d: Driver, *, kill: bool) -> None:
    pub = d.client("pub")
    pub.publish("keep/1", b"retained", qos=1, retain=True)
    s = d.client("s", client_id="S", clean=False)
    s.subscribe(("queue/#", 1))
    d.disconnect(s)
    d.settle()
    pub.publish("queue/1", b"queued across the restart", qos=1)
    obs = d.client("obs")
    obs.subscribe(("will/#", 1))
    d.client("z", will=("will/z", b"z gone", 1, True))
    d.settle()
    if kill:
        d.kill_broker()
    else:
        d.stop_broker()
    d.settle()
    d.start_broker()
    n = d.client("n")
    n.subscribe(("keep/#", 1), ("will/#", 1))
    d.client("s", client_id="S", clean=False)
    d.settle()


def restart_check_persistent(ev: Events) -> None:
    # at shutdown Mosquitto publishes the wills of the clients still connected
    assert ev["obs"][2:] == [msg("will/z", b"z gone", 1), ("disconnect", "Unspecified error")]
    assert ev["n"][2:] == [msg("keep/1", b"retained", 1, True), msg("will/z", b"z gone", 1, True)]
    assert ev["s"][3:] == [("connack", True), msg("queue/1", b"queued across the restart", 1)]


def restart_check_volatile(ev: Events) -> None:
    assert ev["obs"][2:] == [msg("will/z", b"z gone", 1), ("disconnect", "Unspecified error")]
    assert ev["n"][2:] == []
    assert ev["s"][3:] == [("connack", False)]


def kill_check(ev: Events) -> None:
    # SIGKILL: no will, and nothing saved since the last autosave (none yet)
    assert ev["obs"][2:] == [("disconnect", "Unspecified error")]
    assert ev["n"][2:] == []
    assert ev["s"][3:] == [("connack", False)]


# -- paho's backlog after a reconnection ---------------------------------------------------
def backlog_run(d: Driver) -> None:
    obs = d.client("obs", clean=False, reconnect=True)
    obs.subscribe(("ev/#", 1))
    node = d.client("node", reconnect=True, birth=("ev/birth", b"online"))
    d.settle()
    d.stop_broker()
    d.wait_until(lambda: node.count("disconnect") == 1, timeout=5, what="the node to notice")
    for topic, qos in (("ev/1", 1), ("ev/lost", 0), ("ev/2", 1)):
        node.publish(topic, topic.encode(), qos=qos, wait=False)
    d.start_broker()
    d.wait_until(lambda: len(obs.messages()) >= 4, timeout=15, what="the backlog")
    d.settle()


def backlog_check(ev: Events) -> None:
    lost = ("disconnect", "Unspecified error")
    assert ev["node"] == [("connack", False), lost, ("connack", False)]
    # what on_connect publishes goes before the QoS 1 kept while offline; QoS 0 is lost
    assert ev["obs"][ev["obs"].index(("connack", True)) + 1:] == [
        msg("ev/birth", b"online", 1), msg("ev/1", b"ev/1", 1), msg("ev/2", b"ev/2", 1)]
    assert ev["obs"][:4] == [("connack", False), ("suback", [1]), msg("ev/birth", b"online", 1), lost]


# -- ordering under a burst -----------------------------------------------------------------
BURST = 200


def burst_run(d: Driver) -> None:
    sub = d.client("sub")
    sub.subscribe(("b/#", 1))
    pubs = [d.client(f"p{i}") for i in range(3)]
    infos = []
    for n in range(BURST):
        for i, (p, qos) in enumerate(zip(pubs, (1, 0, 1), strict=True)):
            infos.append(p.publish(f"b/p{i}", f"{n}".encode(), qos=qos, wait=False))
    d.wait_until(lambda: len(sub.messages()) == 3 * BURST, timeout=20, what="the whole burst")
    d.wait_until(lambda: all(i.is_published() for i in infos if i.mid), timeout=10, what="PUBACKs")
    d.settle()


def burst_project(ev: Events) -> dict[str, list[Event]]:
    """Per publisher (topic), in order: different publishers may interleave either way."""
    per: dict[str, list[Event]] = {}
    for e in ev["sub"]:
        if e[0] == "msg":
            per.setdefault(e[1], []).append(e)
    return per


def burst_check(ev: Events) -> None:
    per = burst_project(ev)
    for i, qos in enumerate((1, 0, 1)):
        assert per[f"b/p{i}"] == [msg(f"b/p{i}", f"{n}".encode(), qos) for n in range(BURST)]


SCENARIOS = [
    Scenario("retained_set_replace_clear", retained_run, retained_check),
    Scenario("wildcards_and_overlaps", wildcards_run, wildcards_check),
    Scenario("will_on_cut_not_on_disconnect", will_run, will_check, will_project),
    Scenario("takeover_publishes_the_old_will", takeover_run, takeover_check),
    Scenario("qos1_offline_queue_dup_and_clean_session", offline_queue_run, offline_queue_check),
    Scenario("qos0_overtakes_qos1_beyond_the_inflight_window", window_run, window_check),
    Scenario("keepalive_expiry_publishes_the_will", keepalive_run, keepalive_check),
    Scenario("restart_with_persistence", lambda d: _restart_run(d, kill=False), restart_check_persistent,
             persistence=True),
    Scenario("restart_without_persistence", lambda d: _restart_run(d, kill=False), restart_check_volatile),
    Scenario("kill_before_autosave", lambda d: _restart_run(d, kill=True), kill_check, persistence=True),
    Scenario("paho_sends_on_connect_first_then_its_backlog", backlog_run, backlog_check, persistence=True),
    Scenario("per_publisher_order_in_a_burst", burst_run, burst_check, burst_project),
]
