"""The outputs: what the controller wants each lock and output in, and what the nodes confirm.

Every steady command (``lock``, ``unlock``, ``on``, ``off``) becomes the *desired state* of
its output (:class:`Desired`), kept in the store (a restarted controller sends it again).
It is pending until the node's reported state shows it on the current broker connection:
the console never claims what a relay did not do. Reconciliation resends what is not
confirmed, 1 s after the order and then less often, for as long as it is wanted; a lock
order not confirmed within :data:`CONFIRM_WITHIN_S` is a red alert on the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from controller.context import Context, Key
from controller.emergency import Alert
from controller.engine import Effect, MediaCue, Phase, PropCommand, ScreenMessage
from controller.journal import Journal
from controller.mqtt import MqttBridge
from protocol import contract

log = logging.getLogger(__name__)

#: resend a command whose effect is not reported after this long; then twice as long each
#: time, up to RESEND_MAX_S (never given up: an unlock is resent for as long as it is wanted)
RESEND_AFTER_S = 1.0
RESEND_MAX_S = 5.0
#: a lock order not confirmed by its node's reported state within this long is an alert on
#: the console; ``POST /api/emergency`` and lock/unlock orders wait this long for it
CONFIRM_WITHIN_S = 1.0
#: reported fields that show an output is in the desired state
REACHED = {"lock": ("engaged", True), "unlock": ("engaged", False), "on": ("on", True),
           "off": ("on", False)}
#: actions that leave a maglock engaged (a pulse relocks, a reset is a lock)
LOCKING = frozenset({"lock", "pulse", "reset"})
#: an order in words, and "confirmed" agreed with it
ORDER_WORDS = {"lock": ("verrouillage", "confirmé"), "unlock": ("ouverture", "confirmée"),
               "on": ("allumage", "confirmé"), "off": ("extinction", "confirmée")}
#: what the game master is told to do when a lock did not confirm its release
RELEASE_BY_HAND = ("faites-la ouvrir sur place : bouton d'urgence de la pièce, "
                   "ou déverrouillage manuel (bris de glace)")
WHY = {"broker": "liaison coupée avec les salles", "offline": "salle hors ligne",
       "no_answer": f"pas de réponse de la salle en {CONFIRM_WITHIN_S:.0f} s"}


def release_message(report: dict[str, Any]) -> str:
    """The emergency's answer, in plain French: what the relays confirmed, and nothing more."""
    done, left = report["confirmed"], report["unconfirmed"]
    total = len(done) + len(left)
    if not left:
        slowest = max((e["ms"] for e in done), default=0)
        return (f"Toutes les ventouses sont ouvertes : {total} sur {total}, confirmées par les "
                f"salles (la plus lente en {slowest} ms).")
    names = " ; ".join(f"{e['name']} ({WHY[e['reason']]})" for e in left)
    head = ("AUCUNE ouverture n'est confirmée" + (" : liaison coupée avec les salles"
                                                  if not report["mqtt"] else "")
            if not done else f"{len(done)} ventouse(s) sur {total} confirmée(s) ouverte(s)")
    return (f"{head}. NON confirmées : {names}. L'ordre est renvoyé jusqu'à confirmation ; "
            f"en attendant, {RELEASE_BY_HAND.replace('faites-la', 'faites-les')}.")


def order_message(action: str, report: dict[str, Any]) -> str:
    """A lock or unlock order's answer: confirmed (in how long), or still pending and why."""
    entry = (report["confirmed"] or report["unconfirmed"])[0]
    word, agreed = ORDER_WORDS[action]
    if report["confirmed"]:
        return f"{entry['name']} : {word} {agreed} par la salle en {entry['ms']} ms."
    advice = RELEASE_BY_HAND if action == "unlock" else "vérifiez la salle"
    return (f"{entry['name']} : {word} NON {agreed} ({WHY[entry['reason']]}) ; l'ordre est "
            f"renvoyé jusqu'à confirmation. En attendant, {advice}.")


@dataclass(slots=True)
class Desired:
    """The state the controller wants an output in, and the command that asks for it.

    *ordered_at* is when this state was last ordered (monotonic), *confirmed_at* when the
    node's reported state first showed it on the current broker connection (None: still
    pending); *attempts* counts the resends since the order (the resend back-off);
    *answers* are the ids of the commands sent for this order: only a state that
    acknowledges one of them confirms it (a state published before the order may still be
    on its way, late, and say what the relay no longer does).
    """

    action: str
    params: dict[str, Any]
    command_id: str
    sent_at: float = 0.0
    relock_pending: bool = False   # opened by a node reboot; waits for the game master
    ordered_at: float = 0.0
    confirmed_at: float | None = None
    attempts: int = 0
    #: resumed after what looked like a crash: not sent before its node says what its relay
    #: does (a clean stop that could not record itself had opened it)
    unverified: bool = False
    answers: set[str] = field(default_factory=set)

    def sent(self, command_id: str, now: float) -> None:
        """*command_id* was sent for this order now."""
        self.command_id, self.sent_at = command_id, now
        self.answers.add(command_id)

    def resend_due(self, now: float) -> bool:
        """1 s after the last send, then 2, 4… up to RESEND_MAX_S between two resends."""
        return now - self.sent_at >= min(RESEND_AFTER_S * 2 ** self.attempts, RESEND_MAX_S)

    def resend_now(self) -> None:
        """At the next reconcile, and the back-off starts again (a node is back)."""
        self.sent_at, self.attempts = 0.0, 0

    def reorder(self, now: float) -> None:
        """The desired state changed in place (a reboot opened a lock): pending again, and
        only the answer to a command sent from now on confirms it."""
        self.ordered_at, self.confirmed_at, self.attempts = now, None, 0
        self.answers.clear()

    def pending_for(self, now: float) -> float | None:
        """Seconds since the order, while it is not confirmed; None once it is."""
        return None if self.confirmed_at is not None else now - self.ordered_at

    def reached(self, reported: dict[str, Any]) -> bool:
        """*reported* (a prop's state) shows this desired state."""
        key, value = REACHED[self.action]
        return reported.get(key) == value


class Outputs:
    """Desired states, commands, reconciliation and the nodes' confirmations."""

    def __init__(self, ctx: Context, bridge: MqttBridge, journal: Journal, alert: Alert, *,
                 changed: Callable[[], None], publish_game_state: Callable[[], None]) -> None:
        self.ctx = ctx
        self.bridge = bridge
        self.journal = journal
        self.alert = alert
        self.changed = changed
        self.publish_game_state = publish_game_state
        self.desired: dict[Key, Desired] = {}
        #: the last ``reset`` sent to each prop (the pre-game check reads its ack): id, when
        self.resets: dict[Key, tuple[str, float]] = {}
        #: set on a clean stop: the release on the way out is not the desired state
        self.stopping = False
        #: monotonic receipt time of each prop's last reported state
        self._state_at: dict[Key, float] = {}
        #: awaiting a confirmation (see wait_confirmed): woken by each one
        self._confirm_waiters: list[asyncio.Future[None]] = []
        #: maglock orders not confirmed within CONFIRM_WITHIN_S, as last shown
        self.overdue: frozenset[Key] = frozenset()

    # -- commands ---------------------------------------------------------------------
    def execute(self, effects: Iterable[Effect]) -> None:
        """Send the commands now; the game state is published (once, at the end of the loop
        turn) only when there was something to do."""
        acted = False
        for effect in effects:
            if isinstance(effect, PropCommand):
                self.command(effect.node, effect.prop, effect.action, effect.params)
            elif isinstance(effect, ScreenMessage | MediaCue):
                self.publish_game_state()
            acted = True
        if acted and self.ctx.engine.phase != Phase.IDLE:
            self.publish_game_state()

    def would_lock(self, key: Key, action: str) -> bool:
        return key in self.ctx.maglocks and action in LOCKING

    def command(self, node: str, prop: str, action: str, params: dict[str, Any] | None = None) -> str:
        """Send a command to a prop now; remember it as desired if it is a steady state.

        While the emergency alert lasts nothing locks a maglock: such a command (a puzzle
        reset while paused, say) is not sent, and the journal says so (the game master's
        own orders are refused before: :meth:`Alert.refuse_locking`). Returns the command
        id ("" when not sent).
        """
        key = (node, prop)
        params = dict(params or {})
        command_id = ""
        if self.alert.active and self.would_lock(key, action):
            self.bridge.metrics["locks_withheld"] += 1
            self.ctx.engine.note("emergency", f"{self.lock_name(key)} : {action} non envoyé "
                                              "(alerte d'urgence en cours)")
        else:
            command_id = self._send(key, action, params)
        if action == "reset":
            self.resets[key] = (command_id, self.ctx.clock())
        return command_id

    def _send(self, key: Key, action: str, params: dict[str, Any]) -> str:
        command = self.bridge.new_command(action, params, session=self.ctx.engine.session_id)
        want = None
        if action in REACHED:
            now = self.ctx.clock()
            want = Desired(action, params, command.id, now, ordered_at=now)
            want.answers.add(command.id)
            self.desired[key] = want
        # NOTE: the door first, then the books: on the wire before anything is written.
        self.bridge.send_command(key[0], key[1], command)
        if want is not None and not self.stopping:
            self.persist(key, want)
        return command.id

    def persist(self, key: Key, want: Desired) -> None:
        self.journal.desired(key, want.action, want.params, want.relock_pending)

    def done_by_node(self, commands: Iterable[PropCommand]) -> None:
        """Commands a node carried out on its own (a local solve): the desired state now,
        not sent again."""
        for cmd in commands:
            now = self.ctx.clock()
            want = Desired(cmd.action, dict(cmd.params), "", now, ordered_at=now)
            self.desired[(cmd.node, cmd.prop)] = want
            self.persist((cmd.node, cmd.prop), want)

    def resume(self, rows: Iterable[dict[str, Any]], *, clean: bool) -> None:
        """The desired states a previous controller stored. After a crash the nodes still
        hold their locks: sent again as they were. After a clean stop the locks were opened
        on the way out: as after a node reboot, only those whose config allows it are
        locked again; the others wait for the game master (``relock_pending``)."""
        now = self.ctx.clock()
        for row in rows:
            key = (row["node"], row["prop"])
            if key not in self.ctx.configs:
                continue
            want = Desired(row["action"], row["params"], contract.new_id(), 0.0, row["relock_pending"],
                           ordered_at=now)
            cfg = self.ctx.maglocks.get(key)
            if cfg and want.action == "lock" and not cfg.relock_after_restart:
                if clean:
                    want.action, want.relock_pending = "unlock", True
                    self.persist(key, want)
                else:
                    want.unverified = True
            if cfg and want.action == "lock" and self.alert.active:
                want.action = "unlock"   # nothing locks while the alert lasts
                self.persist(key, want)
            self.desired[key] = want

    def forget_relocks(self) -> None:
        """The emergency opened everything: no lock waits for the game master any more."""
        for key, want in self.desired.items():
            if want.relock_pending:
                want.relock_pending = False
                self.persist(key, want)

    def game_replaced(self) -> None:
        """A reloaded game: forget the outputs it no longer has (and lock orders for what
        is no longer a lock), and the resets of the old game's check."""
        self.desired = {key: want for key, want in self.desired.items()
                        if key in self.ctx.configs and (want.action not in ("lock", "unlock")
                                                        or key in self.ctx.maglocks)}
        self.resets.clear()

    # -- nodes coming and going -------------------------------------------------------
    def node_rebooted(self, node: str) -> None:
        """A lock its node's reboot opened is not locked again on its own unless the config
        says it may (a box may, a door on the way out may not)."""
        for (n, p), want in self.desired.items():
            cfg = self.ctx.maglocks.get((n, p))
            if n == node and cfg and want.action == "lock" and not cfg.relock_after_restart:
                want.action, want.relock_pending = "unlock", True
                want.reorder(self.ctx.clock())
                self.persist((n, p), want)
                log.warning("%s.%s opened by a reboot of %s: waits for the game master", n, p, n)

    def node_back(self, node: str, *, confirm: bool = True) -> None:
        """*node* is back: what differs is resent at the next reconcile."""
        for (n, p), want in self.desired.items():
            if n == node:
                want.resend_now()
                if confirm:
                    self.confirm((n, p))

    def connected(self) -> None:
        """The broker is back: the resend back-off starts over."""
        now = self.ctx.clock()
        for want in self.desired.values():
            want.sent_at, want.attempts = now, 0

    def reconcile(self) -> None:
        """Resend what no node has confirmed yet (``Desired.resend_due``), for as long as it
        is wanted. Nothing is resent while the broker is away (the MQTT client would queue
        every resend; the order itself is queued already) nor to a node that is offline
        (its birth resends at once)."""
        if not self.bridge.connected:
            return
        now = self.ctx.clock()
        nodes = self.ctx.registry.nodes
        for (node, prop), want in self.desired.items():
            self.confirm((node, prop))
            if (want.confirmed_at is not None or not nodes[node].online or not want.resend_due(now)
                    or (want.unverified and not self.ctx.registry.props[(node, prop)].reported)):
                continue
            want.sent(contract.new_id(), now)
            want.attempts += 1
            self.bridge.metrics["resent_commands"] += 1
            self.bridge.send_command(node, prop, self.bridge.new_command(
                want.action, want.params, session=self.ctx.engine.session_id,
                command_id=want.command_id))
            if (node, prop) in self.overdue:
                self.changed()   # the console shows how often it was sent

    # -- confirmation: what the nodes report, not what was ordered --------------------
    def reported(self, key: Key, *, live: bool = True) -> None:
        """*key*'s node reported its state: live, on this connection — or a retained state
        read at subscription, which may contradict an order but never confirms one (it
        says what was, maybe by a boot that died since)."""
        if live:
            self._state_at[key] = self.ctx.clock()
        self.confirm(key)

    def confirm(self, key: Key) -> None:
        """Mark *key*'s desired state confirmed when its node reports it on this broker
        connection (and is online); pending again when a report contradicts it."""
        want = self.desired.get(key)
        if want is None:
            return
        reported = self.ctx.registry.props[key].reported
        if want.unverified and reported:
            if not want.reached(reported):
                # Released while no controller ran (or by a clean stop whose record a full
                # disk refused): like a reboot, it waits for the game master.
                want.unverified = False
                want.action, want.relock_pending = "unlock", True
                want.reorder(self.ctx.clock())
                self.persist(key, want)
                log.warning("%s.%s found open after a restart: waits for the game master", *key)
            elif self._state_at.get(key, -1.0) >= self.bridge.connected_at:
                want.unverified = False   # said live: it holds (a retained state may be old)
        if not want.reached(reported):
            if want.confirmed_at is not None:
                want.reorder(self.ctx.clock())
            return
        if (want.confirmed_at is not None or not self._fresh(key, since=want.ordered_at)
                or self.ctx.registry.props[key].ack not in want.answers):
            return
        want.confirmed_at = self.ctx.clock()
        waiters, self._confirm_waiters = self._confirm_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fresh(self, key: Key, *, since: float) -> bool:
        """*key*'s reported state is current: broker connected, node online, and reported
        on this connection (the registry keeps what it heard before an outage) after the
        order *since* (a report older than the order may come from a node that died or a
        lock that moved since: the node's answer to the order says what its relay does)."""
        return (self.bridge.connected and self.ctx.registry.nodes[key[0]].online
                and self._state_at.get(key, -1.0) >= max(self.bridge.connected_at, since))

    def watch(self) -> None:
        """Push (and log) when a lock order becomes overdue or is confirmed at last."""
        now = self.ctx.clock()
        overdue = frozenset(key for key, want in self.desired.items() if key in self.ctx.maglocks
                            and (want.pending_for(now) or 0.0) > CONFIRM_WITHIN_S)
        if overdue == self.overdue:
            return
        for key in sorted(overdue - self.overdue):
            want = self.desired[key]
            log.warning("%s.%s: %s not confirmed after %.1f s (%s)", *key, want.action,
                        now - want.ordered_at, self._unconfirmed_reason(key))
            word, agreed = ORDER_WORDS[want.action]
            self.ctx.engine.note("unconfirmed", f"{self.lock_name(key)} : {word} non {agreed} "
                                                f"en {CONFIRM_WITHIN_S:.0f} s")
        self.overdue = overdue
        self.changed()

    async def wait_confirmed(self, keys: Iterable[Key], timeout: float = CONFIRM_WITHIN_S) -> None:
        """Wait (on the loop, never blocking it) until every one of *keys* is confirmed, or
        *timeout* s; at once while the broker is away (nothing can be confirmed: the game
        master had better know now)."""
        keys = list(keys)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def pending() -> bool:
            return any((w := self.desired.get(k)) is None or w.confirmed_at is None for k in keys)

        while pending() and self.bridge.connected:
            left = deadline - loop.time()
            if left <= 0:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._confirm_waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                return
            finally:
                with contextlib.suppress(ValueError):
                    self._confirm_waiters.remove(waiter)

    def lock_name(self, key: Key) -> str:
        """« Ventouse de l'armoire (Chambre) »: what the game master reads, never ids."""
        registry = self.ctx.registry
        return f"{registry.props[key].label} ({registry.nodes[key[0]].label})"

    def _unconfirmed_reason(self, key: Key) -> str:
        if not self.bridge.connected:
            return "broker"
        if not self.ctx.registry.nodes[key[0]].online:
            return "offline"
        return "no_answer"

    def lock_report(self, keys: Iterable[Key]) -> dict[str, Any]:
        """Which of *keys* (maglocks) are confirmed in their desired state, which are not."""
        now = self.ctx.clock()
        registry = self.ctx.registry
        confirmed: list[dict[str, Any]] = []
        unconfirmed: list[dict[str, Any]] = []
        for key in keys:
            want = self.desired.get(key)
            entry: dict[str, Any] = {"node": key[0], "prop": key[1], "name": self.lock_name(key),
                                     "label": registry.props[key].label,
                                     "room": registry.nodes[key[0]].label,
                                     "action": want.action if want else None}
            if want is not None and want.confirmed_at is not None:
                entry["ms"] = round(max(0.0, want.confirmed_at - want.ordered_at) * 1000)
                confirmed.append(entry)
            else:
                entry["reason"] = self._unconfirmed_reason(key)
                entry["pending_s"] = round(want.pending_for(now) or 0.0, 3) if want else None
                entry["attempts"] = want.attempts if want else 0
                unconfirmed.append(entry)
        return {"confirmed": confirmed, "unconfirmed": unconfirmed,
                "all_confirmed": not unconfirmed, "mqtt": self.bridge.connected}

    def lock_alerts(self) -> list[dict[str, Any]]:
        """Lock orders not confirmed within CONFIRM_WITHIN_S: a red alert on the console."""
        return self.lock_report(sorted(k for k in self.overdue if k in self.ctx.maglocks))["unconfirmed"]

    def view(self, key: Key, now: float) -> dict[str, Any] | None:
        """*key*'s desired state as the console shows it (None: nothing wanted)."""
        want = self.desired.get(key)
        if want is None:
            return None
        pending = want.pending_for(now)
        # confirmed: the node reported it on this connection (not: it was sent)
        return {"action": want.action, "command_id": want.command_id, "confirmed": pending is None,
                "pending_s": None if pending is None else round(pending, 3),
                "overdue": pending is not None and pending > CONFIRM_WITHIN_S,
                "attempts": want.attempts, "relock_pending": want.relock_pending}
