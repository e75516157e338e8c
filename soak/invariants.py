"""The invariants, checked from outside: MQTT bytes (:class:`soak.wire.Wire`) and HTTP.

Each check is a named function or method with a docstring saying what it guarantees;
every run of one is counted in the :class:`Ledger`, and every failure kept with its
details (the report lists them). The checks read only what a stranger to the code can
see: the retained states the nodes publish, the commands on the wire, the console's
``/api/state``, ``/api/game/check``, ``/api/history`` and its CSV files.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from soak.game import GameFacts
from soak.wire import Msg, Wire

#: seconds, after the order (or after the broker and the controller are back, whichever is
#: later), within which every maglock must report itself released
RELEASE_BOUND_S = 5.0
#: seconds, after a fault healed, within which the controller's view must match the nodes'
CONVERGE_BOUND_S = 30.0
#: a state received this long before a game master's order may still be on its way: it
#: does not cancel what the order allowed
RACE_S = 1.0
#: seconds after an ended emergency came back (a broker's old save) within which a node
#: acting on it would have released its locks
GHOST_WINDOW_S = 3.0


#: checks that fail on a bug already reported, with the test that reproduces it: their
#: failures are listed in the report but do not fail the run (the test turns red — XPASS —
#: once the bug is fixed: then remove both entries)
KNOWN: dict[str, str] = {}


@dataclass
class Failure:
    check: str
    at: float
    detail: str
    session: int | None


@dataclass
class Ledger:
    """How many times each invariant was checked, and every failure."""

    runs: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    session: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: told of every failure as it happens (the soak prints it)
    on_failure: Callable[[Failure], None] | None = None

    def check(self, name: str, ok: bool, detail: str | Callable[[], str] = "") -> bool:
        failure = None
        with self.lock:
            self.runs[name] += 1
            if not ok:
                text = detail() if callable(detail) else detail
                failure = Failure(name, time.monotonic(), text, self.session)
                self.failures.append(failure)
        if failure is not None and self.on_failure is not None:
            self.on_failure(failure)
        return ok

    def failed(self, name: str) -> int:
        return sum(1 for f in self.failures if f.check == name)

    def unknown_failures(self) -> int:
        """Failures of checks not in :data:`KNOWN`: what makes the run fail."""
        return sum(1 for f in self.failures if f.check not in KNOWN)


# -- safety: locks released, exit doors never relocked alone --------------------------------
@dataclass
class PendingRelease:
    why: str                # "emergency", "won", "lost", "aborted", "cancelled"
    at: float               # when it was ordered (monotonic)
    session: int | None
    released_at: dict[tuple[str, str], float] = field(default_factory=dict)


class Locks:
    """Watches every maglock's reported state on the wire.

    * :meth:`every_maglock_released` — after an emergency, an end or an abort, every
      maglock reports ``engaged: false`` within :data:`RELEASE_BOUND_S` (counted from the
      order, or from the moment the broker and the controller are both back); a node
      whose process is dead counts as released (its relays are fail-safe) and must report
      released when it is back.
    * :meth:`no_relock_without_game_master` — a maglock never goes from released to
      engaged unless a game master's order that may lock it (the check, the start, a
      lock, a puzzle reset) was given since: an exit door after *any* release (a solved
      puzzle, a reboot of its node), every other lock after an emergency, an end or an
      abort.
    """

    def __init__(self, facts: GameFacts, wire: Wire, ledger: Ledger, *,
                 alive: Callable[[str], bool], path_up_since: Callable[[], float | None],
                 opened_by_play: Callable[[], set[tuple[str, str]]] = set) -> None:
        self.facts = facts
        #: the locks the puzzles solved so far opened (a release of one is the game's)
        self.opened_by_play = opened_by_play
        self.wire = wire
        self.ledger = ledger
        self.alive = alive
        self.path_up_since = path_up_since
        self.pending: list[PendingRelease] = []
        self.done: list[PendingRelease] = []
        self.lock = threading.Lock()
        #: each lock's last reported state, retained or live (what the releases are judged on:
        #: after a broker restart the nodes may report before this client subscribed again)
        self.engaged: dict[tuple[str, str], bool | None] = dict.fromkeys(facts.maglocks)
        #: … and from live messages only, or retained ones newer than any seen (what a relock
        #: is judged on: an older retained message is the broker's old save, not a relay
        #: that moved)
        self.live: dict[tuple[str, str], bool | None] = dict.fromkeys(facts.maglocks)
        # when a game master's order last allowed each lock to be locked, and when a
        # release last took that away
        self.allowed_at: dict[tuple[str, str], float] = {}
        self.revoked_at: dict[tuple[str, str], float] = {}
        self.relocks = 0
        #: per lock, the newest node timestamp (``ts``) of its reports
        self.newest_ts: dict[tuple[str, str], float] = {}
        #: (when, lock) of every live report of a lock going from engaged to released
        self.live_releases: list[tuple[float, tuple[str, str]]] = []
        wire.listeners.append(self._on_message)

    # -- input ----------------------------------------------------------------------------
    def game_master_may_lock(self, keys: Iterable[tuple[str, str]] | None = None) -> None:
        """A game master's order that may lock *keys* (all maglocks by default) was sent."""
        now = time.monotonic()
        with self.lock:
            for key in keys if keys is not None else self.facts.maglocks:
                self.allowed_at[key] = now

    def release_ordered(self, why: str, *, at: float | None = None) -> PendingRelease:
        """An emergency, an end or an abort: every maglock must now be released."""
        pending = PendingRelease(why, at if at is not None else time.monotonic(), self.ledger.session)
        with self.lock:
            self.pending.append(pending)
            for key in self.facts.maglocks:
                self.revoked_at[key] = max(self.revoked_at.get(key, 0.0), pending.at)
        return pending

    def _on_message(self, msg: Msg) -> None:
        parts = msg.parts
        if len(parts) != 7 or parts[2] != "nodes" or parts[4] != "props" or parts[6] != "state":
            return
        key = (parts[3], parts[5])
        if key not in self.engaged or not isinstance(msg.data, dict):
            return
        engaged = msg.data.get("engaged")
        ts = msg.data.get("ts")
        with self.lock:
            self.engaged[key] = engaged
            # a retained state newer than any seen live was published while this client was
            # away (a node back on a restarted broker before it): news, not the old save
            newest = self.newest_ts.get(key)
            news = isinstance(ts, int | float) and (newest is None or ts > newest)
            if news:
                self.newest_ts[key] = ts
            if msg.retain and not news:
                return
            before = self.live[key]
            self.live[key] = engaged
            if engaged is False and before is True:
                self.live_releases.append((msg.at, key))
                if key in self.facts.exit_doors:
                    self.revoked_at[key] = max(self.revoked_at.get(key, 0.0), msg.at - RACE_S)
            elif engaged is True and before is False:
                self.relocks += 1
                self.no_relock_without_game_master(key, msg)

    # -- the checks ---------------------------------------------------------------------
    def no_relock_without_game_master(self, key: tuple[str, str], msg: Msg) -> None:
        """A lock that went from released to engaged had a game master's order allowing it
        after the last release that forbade it (see the class docstring)."""
        allowed = self.allowed_at.get(key)
        revoked = self.revoked_at.get(key)
        ok = revoked is None or (allowed is not None and allowed >= revoked)
        self.ledger.check("no_relock_without_game_master", ok, lambda: (
            f"{key[0]}.{key[1]} engaged again at t={msg.at:.1f} without a game master's order "
            f"since its release at t={revoked:.1f} (last order allowing it: "
            f"{'none' if allowed is None else f't={allowed:.1f}'}); retained={msg.retain}"))

    def every_maglock_released(self) -> None:
        """Called often: settles every pending release that is complete or overdue."""
        now = time.monotonic()
        with self.lock:
            pending = list(self.pending)
        for item in pending:
            up_since = self.path_up_since()
            if up_since is None:
                continue   # the broker or the controller is down: the clock waits
            for key in self.facts.maglocks:
                if key in item.released_at:
                    continue
                if self.engaged.get(key) is False or not self.alive(key[0]):
                    item.released_at[key] = now
            start = max(item.at, up_since)
            complete = len(item.released_at) == len(self.facts.maglocks)
            if complete or now > start + RELEASE_BOUND_S:
                missing = sorted(set(self.facts.maglocks) - set(item.released_at))
                self.ledger.check("every_maglock_released", complete, lambda m=missing, i=item, s=start: (
                    f"after {i.why}: {', '.join(f'{n}.{p}' for n, p in m)} still engaged "
                    f"{RELEASE_BOUND_S} s after t={s:.1f}"))
                with self.lock:
                    self.pending.remove(item)
                    self.done.append(item)

    def released_unordered(self, start: float, end: float) -> list[tuple[str, str]]:
        """The locks reported released (live) between *start* and *end* with no release
        order (emergency, end, abort) in that time, but those a solved puzzle opened (two
        puzzles of two rooms may be solved within the window)."""
        played = self.opened_by_play()
        with self.lock:
            if any(start <= item.at <= end for item in (*self.pending, *self.done)):
                return []
            return [key for at, key in self.live_releases if start <= at <= end and key not in played]

    def release_delays(self) -> list[float]:
        """Seconds from each release order to its last lock reported released."""
        return [max(0.0, max(i.released_at.values()) - i.at) for i in self.done
                if len(i.released_at) == len(self.facts.maglocks)]


# -- correctness: solves, budget, the console's JSON ------------------------------------------
class Game:
    """Per session: what the console shows, checked at every poll.

    * :meth:`each_solve_counted_once` — a puzzle, once solved, stays solved with the same
      time, and brings at most one budget line;
    * :meth:`budget_is_start_plus_amounts_minus_clues` — the budget equals the parcours'
      start + the amounts of the solved puzzles (from the game file) − the cost of the
      clues the game master sent (from her own orders).
    """

    def __init__(self, facts: GameFacts, ledger: Ledger) -> None:
        self.facts = facts
        self.ledger = ledger
        self.session_id: str | None = None
        self.parcours = "primo"
        self.paid = 0
        self.paid_for: Counter[str] = Counter()   # paid clues per puzzle: a budget line each
        self.solved_at: dict[str, float] = {}
        self.lock = threading.Lock()

    def open(self, session_id: str, parcours: str) -> None:
        with self.lock:
            self.session_id, self.parcours, self.paid = session_id, parcours, 0
            self.paid_for = Counter()
            self.solved_at = {}

    def opened(self) -> set[tuple[str, str]]:
        """The locks the puzzles solved in this session opened."""
        with self.lock:
            solved = list(self.solved_at)
        return {key for p in solved for key in self.facts.puzzles[p].unlocks}

    def clue_paid(self, cost: int, puzzle: str | None = None) -> None:
        with self.lock:
            self.paid += cost
            if cost and puzzle:
                self.paid_for[puzzle] += 1

    def on_state(self, state: dict[str, Any]) -> None:
        game = state.get("game", {})
        with self.lock:
            if self.session_id is None or game.get("session") != self.session_id:
                return
            if game.get("phase") in ("check", "briefing"):
                return
            self.each_solve_counted_once(game)
            self.budget_is_start_plus_amounts_minus_clues(game)

    def each_solve_counted_once(self, game: dict[str, Any]) -> None:
        """A solved puzzle keeps its solve time; no puzzle has more budget lines than one
        for its solve and one per clue paid for it."""
        lines = Counter(line.get("puzzle") for line in game.get("budget_history", []) if line.get("puzzle"))
        twice = sorted(p for p, n in lines.items() if n > 1 + self.paid_for[p])
        moved = []
        for puzzle in game.get("puzzles", []):
            if puzzle.get("status") != "solved":
                continue
            at = puzzle.get("solved_at")
            first = self.solved_at.setdefault(puzzle["id"], at)
            if first != at:
                moved.append(f"{puzzle['id']} {first}→{at}")
        self.ledger.check("each_solve_counted_once", not twice and not moved,
                          lambda: f"budget lines twice: {twice}; solve time moved: {moved}")

    def budget_is_start_plus_amounts_minus_clues(self, game: dict[str, Any]) -> None:
        """budget = start + Σ amounts of the solved puzzles − Σ clues paid."""
        solved = {p["id"] for p in game.get("puzzles", []) if p.get("status") == "solved"}
        want = self.facts.expected_budget(self.parcours, solved, self.paid,
                                          over=game.get("result") is not None)
        got = game.get("budget")
        self.ledger.check("budget_is_start_plus_amounts_minus_clues", got == want, lambda: (
            f"budget {got}, expected {want} = {self.facts.budget_start[self.parcours]} + amounts of "
            f"{sorted(solved)} − {self.paid} of clues − the bills unpaid at the end"))


class Emergencies:
    """:meth:`ended_emergency_stays_ended` — an emergency the game master ended never acts
    again. A broker back on its old save (Mosquitto saves every 60 s) may hand its
    ``Emergency(active)`` back, retained: no node may take it for a new one. So: nobody
    publishes it live again, and within :data:`GHOST_WINDOW_S` of its coming back no locks
    of two nodes or more report released with no release ordered (a solved puzzle releases
    one lock; an emergency, every lock of every node)."""

    def __init__(self, ledger: Ledger, locks: Locks | None = None) -> None:
        self.ledger = ledger
        self.locks = locks
        self.ended: set[str] = set()
        self.ended_at: float | None = None
        #: (when, id) of ended emergencies handed back by the broker, to be judged
        self.ghosts: list[tuple[float, str]] = []
        self.ghosts_seen = 0
        #: emergencies the year's groups live through (the faults time a broker kill after one)
        self.planned = 0

    @property
    def to_come(self) -> bool:
        """Some planned emergency has not ended yet."""
        return len(self.ended) < self.planned

    def on_message(self, msg: Msg) -> None:
        data = msg.data
        if not isinstance(data, dict) or "active" not in data:
            return
        if not data["active"]:
            em_id = str(data.get("id"))
            if em_id not in self.ended:   # not the same end said again (each reconnection)
                self.ended.add(em_id)
                self.ended_at = msg.at
            return
        em_id = str(data.get("id"))
        if em_id not in self.ended:
            self.ledger.check("ended_emergency_stays_ended", True, "")
        elif msg.retain:
            self.ghosts_seen += 1
            self.ghosts.append((msg.at, em_id))
        else:
            self.ledger.check("ended_emergency_stays_ended", False, lambda: (
                f"emergency {em_id} published active again after the game master ended it"))

    def settle(self, now: float) -> None:
        """Called often: judges every ghost whose window has passed."""
        due = [g for g in self.ghosts if g[0] + GHOST_WINDOW_S < now]
        for ghost in due:
            self.ghosts.remove(ghost)
            self.ended_emergency_stays_ended(*ghost)

    def ended_emergency_stays_ended(self, at: float, em_id: str) -> None:
        """No node released its locks on an ended emergency the broker handed back."""
        window = (at - RACE_S, at + GHOST_WINDOW_S)
        released = [] if self.locks is None else self.locks.released_unordered(*window)
        nodes = sorted({node for node, _ in released})
        self.ledger.check("ended_emergency_stays_ended", len(nodes) < 2, lambda: (
            f"emergency {em_id}, ended, came back from the broker's save and "
            f"{', '.join(f'{n}.{p}' for n, p in released)} were released with no order: the "
            "nodes took it for a new one"))


def console_state_is_valid_json(ledger: Ledger, where: str, detail: str) -> None:
    """Called with every answer of the console that was not strict JSON (a NaN, a cut)."""
    ledger.check("console_state_is_valid_json", False, f"{where}: {detail}")


# -- readiness --------------------------------------------------------------------------------
def check_passes_only_in_start_state(ledger: Ledger, facts: GameFacts, wire: Wire,
                                     answer: dict[str, Any], *, asked: float,
                                     down_since: Callable[[str], float | None]) -> None:
    """When the pre-game check says « prêt », every room runs and every prop's last
    reported state (on the wire) is its start state; a prop that changed, or a room that
    went down, in the last :data:`RACE_S` before the question is given the benefit of the
    doubt."""
    if not answer.get("ready"):
        return
    off = []
    for node in facts.nodes:
        since = down_since(node)
        if since is not None and since < asked - RACE_S:
            off.append(f"{node}: its node is down")
    for key in facts.props:
        msg = wire.state(*key)
        if msg is not None and msg.at > asked - RACE_S:
            continue
        if not facts.in_start_state(key, wire.state_fields(*key)):
            off.append(f"{key[0]}.{key[1]}={wire.state_fields(*key)}")
    ledger.check("check_passes_only_in_start_state", not off,
                 lambda: f"the check said ready with {len(off)} prop(s) off: {'; '.join(off)}")


def briefing_refused_when_not_ready(ledger: Ledger, status: int, off: list[str]) -> None:
    """Briefing without an override, with a prop off its start state: refused (4xx)."""
    ledger.check("briefing_refused_when_not_ready", 400 <= status < 500,
                 lambda: f"briefing answered {status} with {off} off their start state")


# -- convergence after a fault ----------------------------------------------------------------
def view_differences(facts: GameFacts, wire: Wire, state: dict[str, Any],
                     alive: Callable[[str], bool]) -> list[str]:
    """What differs between the controller's view and the nodes' truth (empty: converged).

    Truth: a node whose process runs is online with the boot of its retained birth, and
    each of its props as it last reported on the wire; a node whose process is dead is
    offline. The controller has no order pending, no clock warning, and says MQTT is up.
    """
    diffs: list[str] = []
    nodes = {n["id"]: n for n in state.get("nodes", [])}
    for node in facts.nodes:
        view = nodes.get(node, {})
        status = wire.status(node) or {}
        if alive(node):
            same_boot = view.get("boot_id") == status.get("boot_id")
            if not (status.get("online") and view.get("online") and same_boot):
                diffs.append(f"{node}: view online={view.get('online')} boot={view.get('boot_id')}, "
                             f"retained online={status.get('online')} boot={status.get('boot_id')}")
            elif view.get("clock_skewed"):
                diffs.append(f"{node}: clock warning ({view.get('clock_offset')} s)")
        elif view.get("online"):
            diffs.append(f"{node}: dead, shown online")
    for prop in state.get("props", []):
        key = (prop["node"], prop["id"])
        if key not in facts.props or not alive(key[0]):
            continue
        truth = wire.state_fields(*key)
        reported = {k: v for k, v in (prop.get("reported") or {}).items()
                    if k not in ("v", "ack", "boot_id", "ts")}
        if truth is not None and reported != truth:
            diffs.append(f"{key[0]}.{key[1]}: view {reported} ≠ wire {truth}")
        desired = prop.get("desired")
        if desired and not desired.get("confirmed") and not desired.get("relock_pending"):
            diffs.append(f"{key[0]}.{key[1]}: {desired.get('action')} not confirmed")
    if not state.get("mqtt", {}).get("connected"):
        diffs.append("controller: MQTT disconnected")
    if not state.get("store", {}).get("ok", True):
        diffs.append("controller: session log failing")
    return diffs


# -- nothing lost ------------------------------------------------------------------------------
def completed_sessions_kept(ledger: Ledger, completed: dict[str, dict[str, Any]],
                            rows: list[dict[str, Any]], *, after: str) -> None:
    """Every session completed before *after* is in the history, unchanged (result,
    players, children, final budget, puzzles solved, evaluation)."""
    by_id = {r["id"]: r for r in rows}
    wrong = []
    for sid, want in completed.items():
        row = by_id.get(sid)
        if row is None:
            wrong.append(f"{sid} missing")
            continue
        wrong += _row_differences(sid, want, row)
    ledger.check("completed_sessions_kept", not wrong, lambda: f"after {after}: {'; '.join(wrong)}")


def _row_differences(sid: str, want: dict[str, Any], row: dict[str, Any]) -> list[str]:
    """The fields of a history row that are not what was played (themes in any order:
    the history keeps them in the game's order)."""
    out = []
    for k, value in want.items():
        got, expected = row.get(k), value
        if k == "learned":
            got, expected = sorted(got or []), sorted(value)
        if k != "id" and got != expected:
            out.append(f"{sid}.{k}: {got!r} ≠ {expected!r}")
    return out


def solved_puzzles_kept(ledger: Ledger, before: set[str], after_state: dict[str, Any], *,
                        session_id: str | None, after: str) -> None:
    """The puzzles the console showed solved before a crash are solved after it."""
    game = after_state.get("game", {})
    if session_id is None:
        return   # no session was open: nothing to keep
    if game.get("session") != session_id:
        ledger.check("solved_puzzles_kept", False,
                     lambda: f"after {after}: session {session_id} not resumed "
                             f"(the console shows {game.get('session')})")
        return
    now = {p["id"] for p in game.get("puzzles", []) if p.get("status") == "solved"}
    lost = sorted(before - now)
    ledger.check("solved_puzzles_kept", not lost, lambda: f"after {after}: {lost} no longer solved")


def session_events_recorded(ledger: Ledger, session_id: str, wire_events: list[Msg],
                            logged: list[dict[str, Any]]) -> tuple[list[str], int]:
    """Every event a node published for this session (once per boot and number) is in its
    event log: nothing the players did is lost, whatever crashed or filled up meanwhile."""
    seen: dict[tuple[str, int], Msg] = {}
    for msg in wire_events:
        data = msg.data
        if isinstance(data, dict) and data.get("session") == session_id:
            seen.setdefault((str(data.get("boot_id")), int(data.get("seq", 0))), msg)
    want = Counter((m.parts[3], m.parts[5], m.data.get("type"), _hashable(m.data.get("value")))
                   for m in seen.values())
    got = Counter((e.get("node"), e.get("prop"), e.get("type"), _hashable(e.get("value")))
                  for e in logged if e.get("kind") == "prop")
    missing = want - got
    lost = [f"{n}.{p} {t} {v}" for (n, p, t, v), k in missing.items() for _ in range(k)]
    ledger.check("session_events_recorded", not lost,
                 lambda: f"session {session_id}: {len(lost)} of {sum(want.values())} events "
                         f"not in its log: {lost[:10]}")
    return lost, sum(want.values())


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


# -- the history at the end --------------------------------------------------------------------
def history_complete(ledger: Ledger, played: list[dict[str, Any]], rows: list[dict[str, Any]], *,
                     sessions_csv: str, puzzles_csv: str, n_puzzles: int) -> None:
    """Every session played is in ``/api/history/sessions`` with its participants, result,
    budget and evaluation, and in both CSV files (one line per session, one per session
    and puzzle), with the same values."""
    by_id = {r["id"]: r for r in rows}
    problems = []
    for want in played:
        row = by_id.get(want["id"])
        if row is None:
            problems.append(f"{want['id']} not in /api/history/sessions")
            continue
        problems += _row_differences(want["id"], want, row)
    lines = list(csv.DictReader(io.StringIO(sessions_csv.lstrip("\ufeff")), delimiter=";"))
    csv_by_id = {line["session"]: line for line in lines}
    for want in played:
        line = csv_by_id.get(want["id"])
        if line is None:
            problems.append(f"{want['id']} not in sessions.csv")
            continue
        expected = {"joueurs": str(want["players"]), "enfants": "oui" if want["children"] else "non",
                    "budget_final": str(want["final_budget"]), "note_groupe": str(want["rating"]),
                    "themes_retenus": ",".join(sorted(want["learned"])), "commentaire": want["comment"],
                    "parcours": want["parcours"]}
        line["themes_retenus"] = ",".join(sorted(filter(None, line.get("themes_retenus", "").split(","))))
        for column, value in expected.items():
            if line.get(column) != value:
                problems.append(f"sessions.csv {want['id']}.{column}: {line.get(column)!r} ≠ {value!r}")
        if not line.get("resultat"):
            problems.append(f"sessions.csv {want['id']}: no result")
    puzzle_lines = Counter(line["session"] for line in
                           csv.DictReader(io.StringIO(puzzles_csv.lstrip("\ufeff")), delimiter=";"))
    for want in played:
        if puzzle_lines.get(want["id"]) != n_puzzles:
            problems.append(f"puzzles.csv: {puzzle_lines.get(want['id'])} lines for {want['id']}, "
                            f"expected {n_puzzles}")
    ledger.check("history_complete", not problems,
                 lambda: f"{len(problems)} problem(s): {'; '.join(problems[:20])}")
