"""The year: the stack up, the groups one after another, faults meanwhile, the checks.

:class:`Soak` holds the world (processes, the wire, the console, the checks) and plays
each :class:`soak.groups.Plan` through the game master's HTTP routes and the rehearsal
hands (``/api/sim``), while :class:`soak.faults.Faults` breaks things in a thread of its
own. Nothing here reaches into a process: what the checks know, a stranger could see.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak import invariants as inv
from soak.console import Console, Poller, Snapshot, Unavailable
from soak.faults import KINDS, Faults
from soak.game import GameFacts, read, shortened_copy
from soak.groups import Plan, year
from soak.procs import Stack
from soak.wire import Msg, Wire

ENDED = ("won", "lost", "aborted")
#: the hand that puts a prop back in its start state, per instruction of the check
HAND_FIX = {"close_door": "close_door", "release": "release", "close": "close", "open": "open",
            "remove_tag": "remove"}
#: log lines that say a process of ours met an error it did not handle
LOG_ALARMS = re.compile(r"Traceback|Errno 22|Invalid argument|CRITICAL|Fatal", re.IGNORECASE)


@dataclass
class Options:
    sessions: int = 24
    quick: bool = False
    seed: int = 1
    duration_min: int = 5
    faults: bool = True
    fault_kinds: tuple[str, ...] = KINDS
    fault_plan: list[str] | None = None
    fault_limit: int | None = None
    fault_gap_s: tuple[float, float] = (5.0, 25.0)
    disk_full_s: float = 60.0
    calendar: bool = True
    sleep_fix: bool = True
    workdir: Path | None = None
    keep: bool = False
    verbose: bool = True

    @classmethod
    def quick_run(cls, seed: int = 1) -> Options:
        """3 sessions and one fault of each kind (the disk full for 10 s): CI's run."""
        return cls(sessions=3, quick=True, seed=seed, fault_plan=list(_quick_plan(seed)),
                   fault_gap_s=(6.0, 12.0), disk_full_s=10.0)


def _quick_plan(seed: int) -> list[str]:
    kinds = list(KINDS)
    random.Random(seed).shuffle(kinds)
    return kinds


@dataclass
class SessionResult:
    plan: Plan
    session_id: str | None = None
    result: str | None = None
    final_budget: int | None = None
    expected_budget: int | None = None
    solved: list[str] = field(default_factory=list)
    clues: int = 0
    repeats: int = 0
    check_s: float | None = None
    played_s: float | None = None
    faults: list[int] = field(default_factory=list)
    events_lost: list[str] = field(default_factory=list)
    events: int = 0
    error: str | None = None

    def public(self) -> dict[str, Any]:
        return {**self.plan.public(), "session_id": self.session_id, "result": self.result,
                "final_budget": self.final_budget, "expected_budget": self.expected_budget,
                "solved": len(self.solved), "clues_sent": self.clues, "gestures_repeated": self.repeats,
                "check_s": _round(self.check_s), "played_s": _round(self.played_s),
                "faults": self.faults, "events": self.events, "events_lost": self.events_lost,
                "error": self.error}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class Soak:
    """The whole run. :meth:`run` returns the report's data."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.t0 = time.monotonic()
        self.ledger = inv.Ledger()
        self.ledger.on_failure = lambda f: self.log(
            f"!! {'known bug' if f.check in inv.KNOWN else 'FAILED'} {f.check}: {f.detail}")
        self._own_workdir = options.workdir is None
        self.workdir = options.workdir or Path(tempfile.mkdtemp(prefix="soak-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)   # the broker runs as its own user and reads its files here
        game_file = shortened_copy(self.workdir / "apartment.yaml", duration_min=options.duration_min)
        self.facts: GameFacts = read(game_file)
        self.stack = Stack(workdir=self.workdir, game_file=game_file, node_ids=self.facts.nodes,
                           sleep_fix=options.sleep_fix)
        self.results: list[SessionResult] = []
        self.completed: dict[str, dict[str, Any]] = {}
        self.lines: list[str] = []
        self.controller_up_at: float | None = None
        self.timer_reset_at = 0.0
        self._last_timer: tuple[float, float] | None = None
        self.alarms: list[str] = []
        self.process_exits: list[str] = []
        self._stop = threading.Event()
        #: set while a group is at it (gestures on the props): what a full disk needs to show
        self.playing = threading.Event()
        self.wire: Wire
        self.console: Console
        self.poller: Poller
        self.locks: inv.Locks
        self.game: inv.Game
        self.faults: Faults | None = None
        self.emergencies = inv.Emergencies(self.ledger)

    # -- small things ----------------------------------------------------------------------
    def log(self, text: str) -> None:
        line = f"[{time.monotonic() - self.t0:7.1f} s] {text}"
        self.lines.append(line)
        if self.options.verbose:
            print(line, flush=True)

    def alive(self, name: str) -> bool:
        return self.stack.procs[name].alive

    def path_up_since(self) -> float | None:
        """Since when the broker and the controller both run and talk (None: not now)."""
        if not (self.alive("broker") and self.alive("controller")):
            return None
        return self.controller_up_at

    def until(self, predicate: Callable[[], object], timeout: float, step: float = 0.1) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(step)
        return bool(predicate())

    def state(self, *, after: float | None = None, within: float = 60.0) -> dict[str, Any]:
        """A snapshot asked after *after* (default: now)."""
        return self.poller.fresh(after=after if after is not None else time.monotonic(), within=within).state

    def fault_active(self, kind: str | None = None) -> bool:
        active = self.faults.active if self.faults is not None else None
        return active is not None and kind in (None, active.kind)

    # -- the wire's news ----------------------------------------------------------------
    def _on_wire(self, msg: Msg) -> None:
        self.ledger.check("mqtt_payloads_are_valid_json", msg.valid,
                          lambda: f"{msg.topic}: {msg.payload[:300]!r}")
        parts = msg.parts
        if parts[2:] == ["emergency"]:
            self.emergencies.on_message(msg)
        if msg.retain or not isinstance(msg.data, dict):
            return
        if parts[2:] == ["controller", "status"] and msg.data.get("online"):
            procs = self.stack.procs
            since = max(p.started_at for p in (procs["broker"], procs["controller"]))
            if self.controller_up_at is None or self.controller_up_at < since:
                self.controller_up_at = msg.at
        elif parts[2:] == ["game", "state"]:
            phase = msg.data.get("phase")
            if phase in ENDED and self._phase_seen not in ENDED:
                self.locks.release_ordered(phase, at=msg.at)
            self._phase_seen = phase

    _phase_seen: str | None = None

    def _on_state(self, snap: Snapshot) -> None:
        self.game.on_state(snap.state)
        self.timer_runs_at_real_pace(snap)

    def timer_runs_at_real_pace(self, snap: Snapshot) -> None:
        """While a game runs, its remaining time falls by the time that passed: a step of
        any wall clock moves nothing (between two answers, outside the game master's
        orders on the time and crashes of the controller)."""
        game = snap.state.get("game", {})
        if game.get("phase") != "running":
            self._last_timer = None
            return
        now = (snap.sent + snap.at) / 2
        last, self._last_timer = self._last_timer, (now, float(game.get("remaining_s", 0)))
        if last is None or last[0] < self.timer_reset_at:
            return
        ran = last[1] - self._last_timer[1]
        passed = now - last[0]
        slack = 2.5 + (snap.at - snap.sent)
        self.ledger.check("timer_runs_at_real_pace", abs(ran - passed) <= slack,
                          lambda: f"the timer moved {ran:.1f} s in {passed:.1f} s")

    def time_touched(self) -> None:
        """A game master's order on the time (pause, resume, add, trim) or a restart."""
        self.timer_reset_at = time.monotonic() + 0.01

    def _monitor(self) -> None:
        """Every 0.2 s: pending releases, processes that ended by themselves."""
        while not self._stop.wait(0.2):
            try:
                self.locks.every_maglock_released()
                self.emergencies.settle(time.monotonic())
            except Exception as exc:
                self.log(f"monitor error: {exc!r}")
            for name, code in list(self.stack.unexpected_exits()):
                self.ledger.check("processes_survive", False, f"{name} exited by itself with code {code}")
                self.process_exits.append(f"{name} exited with code {code} at "
                                          f"{time.monotonic() - self.t0:.1f} s")
                self.log(f"!! {name} exited by itself (code {code}); restarting it")
                if name == "broker":
                    self.stack.start_broker()
                else:
                    self.stack.procs[name].start()

    # -- crashes: what must survive them ---------------------------------------------------
    def before_crash(self) -> dict[str, Any]:
        snap = self.poller.poll_once(health=False) or self.poller.latest
        game = snap.state.get("game", {}) if snap else {}
        solved = {p["id"] for p in game.get("puzzles", []) if p.get("status") == "solved"}
        return {"session": game.get("session"), "solved": solved, "completed": dict(self.completed)}

    def after_crash(self, before: dict[str, Any], *, what: str) -> None:
        self.time_touched()
        try:
            rows = self.console.get("/api/history/sessions?limit=1000", within=90)["sessions"]
            state = self.console.get("/api/state", within=60)
        except Unavailable as exc:
            self.ledger.check("completed_sessions_kept", False, f"after {what}: {exc}")
            return
        inv.completed_sessions_kept(self.ledger, before["completed"], rows, after=what)
        session = before["session"]
        if session is not None and session in self.completed:
            return   # completed meanwhile: the check above covers it
        inv.solved_puzzles_kept(self.ledger, before["solved"], state, session_id=session, after=what)

    # -- set up, run, tear down -----------------------------------------------------------
    def run(self) -> dict[str, Any]:
        options = self.options
        plans = year(self.facts, options.sessions, self.rng,
                     start=dt.date(dt.date.today().year + 1, 1, 1), quick=options.quick)
        self.log(f"soak: {len(plans)} session(s), seed {options.seed}, workdir {self.workdir}")
        self.emergencies.planned = sum(p.emergency for p in plans)
        self.stack.prepare()
        started = time.monotonic()
        try:
            self._start(plans)
            for plan in plans:
                self.results.append(self.play(plan))
                time.sleep(self.rng.uniform(0.5, 2.0))   # between two groups
            if self.faults is not None:
                # a quick run's faults all happen: wait for the last ones
                planned = options.fault_plan is not None
                self.until(lambda: self.faults is not None and self.faults.done
                           and self.faults.active is None, timeout=180 if planned else 1)
                self.faults.stop()
            self.finish()
        finally:
            self._stop.set()
            self.teardown()
        return self.report_data(time.monotonic() - started)

    def _start(self, plans: list[Plan]) -> None:
        stack = self.stack
        user, password = stack.mqtt_login
        stack.start_broker()
        self.wire = Wire(port=stack.mqtt_port, username=user, password=password, root=self.facts.root)
        self.wire.listeners.append(self._on_wire)
        self.game = inv.Game(self.facts, self.ledger)
        self.locks = inv.Locks(self.facts, self.wire, self.ledger, alive=self.alive,
                               path_up_since=self.path_up_since, opened_by_play=self.game.opened)
        self.emergencies.locks = self.locks
        stack.procs["controller"].start()
        for node in self.facts.nodes:
            stack.procs[node].start()
        self.console = Console(stack.url, stack.gm_password)
        if not self.until(self._login, timeout=60, step=0.2):
            msg = f"the controller did not answer within 60 s: see {stack.procs['controller'].log}"
            raise RuntimeError(msg)
        self.poller = Poller(stack.url, stack.gm_password, on_state=self._on_state,
                             on_invalid=lambda where, detail: inv.console_state_is_valid_json(
                                 self.ledger, where, detail))
        self.poller.console.login()
        self.poller.start()
        if not self.until(self._all_online, timeout=60, step=0.2):
            msg = "not every room came online within 60 s"
            raise RuntimeError(msg)
        self.log(f"stack up in {time.monotonic() - self.t0:.1f} s: broker :{stack.mqtt_port}, "
                 f"console {stack.url}")
        threading.Thread(target=self._monitor, name="soak-monitor", daemon=True).start()
        if self.options.faults:
            self.faults = Faults(self, self.rng, gap_s=self.options.fault_gap_s,
                                 disk_full_s=self.options.disk_full_s, plan=self.options.fault_plan,
                                 kinds=self.options.fault_kinds, limit=self.options.fault_limit)
            self.faults.start()

    def _login(self) -> bool:
        try:
            self.console.login()
        except Exception:
            return False
        return True

    def _all_online(self) -> bool:
        snap = self.poller.latest
        return snap is not None and all(n.get("online") for n in snap.state.get("nodes", []))

    def teardown(self) -> None:
        for closer in (getattr(self, "poller", None), getattr(self, "wire", None)):
            if closer is not None:
                with contextlib.suppress(Exception):   # tearing down anyway
                    closer.stop() if isinstance(closer, Poller) else closer.close()
        if self.faults is not None:
            self.faults.stop()
        self.scan_logs()
        self.stack.stop_all()
        if self._own_workdir and not self.options.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def scan_logs(self) -> None:
        """Every line of our processes' logs that says an error went unhandled."""
        for path in sorted(self.stack.logs.glob("*.log")):
            if path.name == "broker.log":
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if LOG_ALARMS.search(line):
                    self.alarms.append(f"{path.name}:{n}: {line.strip()[:300]}")
        self.ledger.check("logs_show_no_unhandled_error", not self.alarms,
                          lambda: f"{len(self.alarms)} line(s), the first: {self.alarms[0]}")

    # -- one group -------------------------------------------------------------------------
    def play(self, plan: Plan) -> SessionResult:
        result = SessionResult(plan)
        self.ledger.session = plan.n
        first_fault = len(self.faults.records) if self.faults else 0
        self.log(f"session {plan.n}/{self.options.sessions} {plan.date:%Y-%m-%d %H:%M} {plan.parcours}, "
                 f"{plan.players} players{' with children' if plan.children else ''}: {plan.outcome}")
        if self.options.calendar:
            self.stack.set_calendar(int(plan.date.timestamp() - time.time()))
            self.time_touched()
        started = time.monotonic()
        try:
            self._prepare(plan, result)
            result.check_s = time.monotonic() - started
            self._play(plan, result)
            result.played_s = time.monotonic() - started - (result.check_s or 0)
            self._close(plan, result)
        except Unavailable as exc:
            result.error = str(exc)
            self.ledger.check("session_completes", False, f"session {plan.n}: {exc}")
            self.log(f"!! session {plan.n}: {exc}")
            self._recover_session()
        if self.faults:
            result.faults = [r.n for r in self.faults.records[first_fault:]]
        self.log(f"session {plan.n}: {result.result}, budget {result.final_budget} "
                 f"(expected {result.expected_budget}), {len(result.solved)} solved, "
                 f"{result.clues} clue(s), {result.repeats} gesture(s) repeated")
        return result

    def _recover_session(self) -> None:
        """After a session that could not finish: abort and reset it, so the next one starts."""
        try:
            state = self.console.get("/api/state", within=60)
            if state["game"]["phase"] in ("running", "paused"):
                self.console.order("/api/game/stop")
            if state["game"]["phase"] != "idle":
                self.console.order("/api/game/reset")
        except Unavailable as exc:
            self.log(f"!! could not reset the session: {exc}")

    def gm(self, path: str, body: Any = None, *, method: str = "POST") -> Any:
        answer = self.console.order(path, body, method=method)
        if answer.status_code >= 400:
            msg = f"{method} {path} → {answer.status_code}: {answer.text[:300]}"
            raise Unavailable(msg)
        return answer.json()

    # -- before the game: the check ---------------------------------------------------------
    def _prepare(self, plan: Plan, result: SessionResult) -> None:
        group = {"parcours": plan.parcours, "players": plan.players, "children": plan.children}
        if self.state()["game"]["phase"] != "idle":
            self.gm("/api/game/reset")
        self.locks.game_master_may_lock()
        self.gm("/api/game/check", group)
        result.session_id = self.state()["game"]["session"]
        self.game.open(result.session_id or "", plan.parcours)
        forgot = plan.forget_reset
        deadline = time.monotonic() + 180
        last_recheck = time.monotonic()
        while time.monotonic() < deadline:
            asked = time.monotonic()
            answer = self.console.get("/api/game/check")
            inv.check_passes_only_in_start_state(self.ledger, self.facts, self.wire, answer, asked=asked,
                                                 down_since=lambda n: self.stack.procs[n].down_since)
            if answer.get("ready"):
                break
            off = self._off_start(asked)
            if forgot and off:
                forgot = False
                reply = self.console.order("/api/game/briefing", {})
                inv.briefing_refused_when_not_ready(self.ledger, reply.status_code, off)
                if reply.status_code == 200:
                    return
            for prop in answer.get("props", []):
                self._hand_fix(prop)
            if time.monotonic() - last_recheck > 4:
                last_recheck = time.monotonic()
                self.locks.game_master_may_lock()
                self.console.order("/api/game/check", {})
            time.sleep(0.5)
        else:
            msg = "the pre-game check never said ready"
            raise Unavailable(msg)
        self.gm("/api/game/briefing", {})

    def _off_start(self, asked: float) -> list[str]:
        off = []
        for key in self.facts.props:
            msg = self.wire.state(*key)
            if msg is not None and msg.at > asked - inv.RACE_S:
                continue
            if not self.facts.in_start_state(key, self.wire.state_fields(*key)):
                off.append(f"{key[0]}.{key[1]}")
        return off

    def _hand_fix(self, prop: dict[str, Any]) -> None:
        """The game master's hand on what only a hand can put back (the check says what)."""
        if prop.get("status") == "ready" or not prop.get("instruction"):
            return
        key = prop["instruction"]["key"]
        node, name = prop["node"], prop["prop"]
        if key in HAND_FIX:
            self.sim(node, name, HAND_FIX[key], None, wait_online=False)
        elif key in ("empty_bin", "empty_bins"):
            bins = (self.wire.state_fields(node, name) or {}).get("bins") or {}
            for bin_name, uid in bins.items():
                if uid:
                    self.sim(node, name, "remove", {"bin": bin_name}, wait_online=False)

    # -- the game --------------------------------------------------------------------------
    def sim(self, node: str, prop: str, gesture: str, value: Any, *, wait_online: bool = True) -> bool:
        """A player's (or the game master's) hand; waits while the room is offline."""
        body = {"gesture": gesture, "value": value}
        deadline = time.monotonic() + (90 if wait_online else 5)
        while time.monotonic() < deadline:
            answer = self.console.order(f"/api/sim/{node}/{prop}", body,
                                        accept=lambda a: a.status_code == 503)
            if answer.status_code == 200:
                return True
            if answer.status_code != 503:
                self.ledger.check("gestures_accepted", False,
                                  f"/api/sim/{node}/{prop} {body} → {answer.status_code} {answer.text[:200]}")
                return False
            time.sleep(0.5)
        return False

    def phase_now(self) -> str | None:
        """The phase in the poller's latest answer (no waiting)."""
        snap = self.poller.latest
        return None if snap is None else snap.state.get("game", {}).get("phase")

    def phase(self) -> str:
        return str(self.state(within=90)["game"]["phase"])

    def _play(self, plan: Plan, result: SessionResult) -> None:
        if plan.outcome == "time_up":
            # during the briefing: the run must start with the time the game master left it
            trim = int(self.facts.duration_s - plan.leave_s)
            self.gm("/api/game/time", {"seconds": -trim})
        self.locks.game_master_may_lock()
        self.time_touched()
        self.gm("/api/game/start", {"parcours": plan.parcours, "players": plan.players,
                                    "children": plan.children})
        self.log(f"session {plan.n}: started ({result.session_id})")
        emergency_at = max(1, len(plan.play) // 2)
        self.playing.set()
        try:
            self._puzzles(plan, result, emergency_at)
            if plan.outcome == "time_up":
                self._stuck(plan)
        finally:
            self.playing.clear()
        self._end(plan, result)

    def _stuck(self, plan: Plan) -> None:
        """A group that cannot find the next answer keeps trying: wrong codes, wrong tags."""
        tries = [(k, p) for k, p in self.facts.props.items() if p.kind in ("keypad", "mfrc522", "rdm6300")]
        while self.phase() in ("running", "paused"):
            (node, prop), info = self.rng.choice(tries)
            if info.kind == "keypad":
                length = info.config.get("code_length")
                self.sim(node, prop, "type", "9" * length if length else "0000#")
            else:
                tags = [t for t in info.config.get("tags", {}) if not self._tag_solves(node, prop, t)]
                if tags:
                    self.sim(node, prop, "present", self.rng.choice(tags))
                    time.sleep(0.5)
                    self.sim(node, prop, "remove", None)
            time.sleep(self.rng.uniform(1.5, 4.0))

    def _tag_solves(self, node: str, prop: str, tag: str) -> bool:
        return any(g[:2] == (node, prop) and g[3] == tag for p in self.facts.puzzles.values()
                   for gestures in p.gestures.values() for g in gestures)

    def _puzzles(self, plan: Plan, result: SessionResult, emergency_at: int) -> None:
        for i, puzzle in enumerate(plan.play):
            if self.phase() not in ("running", "paused"):
                break
            for clue in plan.clues.get(puzzle, []):
                self._clue(clue, result)
            if not self._solve(plan, puzzle, result):
                if self.phase() in ("running", "paused"):
                    self.ledger.check("puzzles_solvable", False,
                                      f"session {plan.n}: {puzzle} not solved after 8 tries of its "
                                      "solution; the game master stops the game")
                    self.locks.release_ordered("aborted")
                    self.gm("/api/game/stop")
                break
            if plan.open_doors:
                for node, lock in self.facts.puzzles[puzzle].unlocks:
                    self.sim(node, lock, "open_door", None)
            if i == 0 and plan.pause_s:
                self.time_touched()
                self.gm("/api/game/pause")
                time.sleep(plan.pause_s)
                self.time_touched()
                self.gm("/api/game/resume")
            if i == 1 and plan.add_time_s:
                self.time_touched()
                self.gm("/api/game/time", {"seconds": plan.add_time_s})
            if plan.emergency and i + 1 == emergency_at:
                self._emergency(plan)
                if plan.outcome == "abort":
                    break
            self._relock_exit_doors()

    def _clue(self, clue: dict[str, Any], result: SessionResult) -> None:
        answer = self.console.order("/api/clues", clue)
        if answer.status_code != 200:
            self.ledger.check("clue_sent", False,
                              f"/api/clues {clue} → {answer.status_code} {answer.text[:200]}")
            return
        if "cost" in clue:
            cost = int(clue["cost"])
        elif clue.get("index") is not None:
            cost = self.facts.puzzles[clue["puzzle"]].clue_costs[clue["index"]]
        else:
            cost = 0
        self.game.clue_paid(cost, clue.get("puzzle"))
        result.clues += 1

    def _solved(self, puzzle: str, after: float) -> bool:
        snap = self.poller.latest
        if snap is None or snap.sent < after:
            return False
        return any(p["id"] == puzzle and p["status"] == "solved" for p in snap.state["game"]["puzzles"])

    def _solve(self, plan: Plan, puzzle: str, result: SessionResult) -> bool:
        facts = self.facts
        gestures = facts.puzzles[puzzle].gestures[plan.parcours]
        if puzzle in plan.wrong_code:
            node, prop, _g, _v = gestures[0]
            length = facts.props[(node, prop)].config.get("code_length")
            self.sim(node, prop, "type", "9" * length if length else "0000#")
            time.sleep(0.3)
        for attempt in range(8):
            if attempt:
                result.repeats += 1
                self._retry_prelude(gestures)
            for node, prop, gesture, value in gestures:
                self.sim(node, prop, gesture, value)
                time.sleep(self.rng.uniform(0.05, 0.3))
            sent = time.monotonic()
            # a hold lasts its seconds on the node; a fault meanwhile delays everything
            patience = 6.0 + sum(v for _n, _p, g, v in gestures if g == "hold")
            while True:
                if self.until(lambda s=sent: self._solved(puzzle, s), timeout=patience, step=0.1):
                    return True
                if not self.fault_active():
                    break
                patience = 3.0
            if self.phase() not in ("running", "paused"):
                return False
        return False

    def _retry_prelude(self, gestures: list[Any]) -> None:
        """Before trying a puzzle again: what a player would undo first."""
        for node, prop, gesture, value in gestures:
            kind = self.facts.props[(node, prop)].kind
            if kind == "keypad" and not self.facts.props[(node, prop)].config.get("code_length"):
                self.sim(node, prop, "type", "#")      # whatever was half typed is dropped
            elif kind == "reed_switch" and gesture == "open":
                self.sim(node, prop, "close", None)
            elif kind in ("mfrc522", "rdm6300") and gesture == "present":
                self.sim(node, prop, "remove", None)
            elif kind == "sorting" and gesture == "present":
                self.sim(node, prop, "remove", {"bin": value["bin"]})

    def _relock_exit_doors(self) -> None:
        """The console shows an exit door opened by its room's reboot: one click relocks it."""
        snap = self.poller.latest
        if snap is None or (snap.state.get("emergency") or {}).get("active"):
            return
        for prop in snap.state.get("props", []):
            desired = prop.get("desired") or {}
            if desired.get("relock_pending") and (prop["node"], prop["id"]) in self.facts.exit_doors:
                self.locks.game_master_may_lock([(prop["node"], prop["id"])])
                self.console.order(f"/api/props/{prop['node']}/{prop['id']}/lock", {})

    def _emergency(self, plan: Plan) -> None:
        sent = time.monotonic()
        pending = self.locks.release_ordered("emergency", at=sent)
        answer = self.console.order("/api/emergency", {})
        body = answer.json() if answer.status_code in (200, 202) else {}
        self.log(f"session {plan.n}: emergency → {answer.status_code}, "
                 f"{len(body.get('confirmed', []))} confirmed, {len(body.get('unconfirmed', []))} not")
        if not self.fault_active():
            self.ledger.check("emergency_confirmed", answer.status_code == 200 and body.get("all_confirmed"),
                              f"no fault active, yet the emergency answered {answer.status_code}: "
                              f"{body.get('message')}")
        self.until(lambda: pending in self.locks.done, timeout=60, step=0.1)
        # the broker's save falls during the alert, as its autosave (every 60 s) does in any
        # alert longer than a minute: a broker killed after its end comes back on that save
        self.stack.broker_saves()
        time.sleep(plan.emergency_hold_s)   # the game master sees to the players first
        self.gm("/api/emergency/end", {})
        if plan.outcome != "abort":
            self.time_touched()
            self.gm("/api/game/resume")

    def _end(self, plan: Plan, result: SessionResult) -> None:
        phase = self.phase()
        stopping = plan.outcome == "abort" or phase == "paused"
        if phase in ("running", "paused") and plan.outcome != "time_up" and stopping:
            self.locks.release_ordered("aborted")
            self.gm("/api/game/stop")
        deadline_s = self.facts.duration_s + 600
        if not self.until(lambda: self.phase() in ENDED, timeout=deadline_s, step=0.5):
            msg = "the game never ended"
            raise Unavailable(msg)
        state = self.state()
        result.result = state["game"]["phase"]
        result.solved = [p["id"] for p in state["game"]["puzzles"] if p["status"] == "solved"]
        result.final_budget = state["game"]["budget"]
        result.expected_budget = self.facts.expected_budget(plan.parcours, set(result.solved), self.game.paid,
                                                            over=True)

    # -- after the game: debrief, evaluation, reset ------------------------------------------
    def _close(self, plan: Plan, result: SessionResult) -> None:
        sid = result.session_id
        assert sid is not None
        self.gm("/api/game/debrief")
        self.console.get("/api/game/debrief")
        evaluation = {"rating": plan.rating, "learned": plan.learned, "comment": plan.comment}
        path = f"/api/history/sessions/{sid}/evaluation"
        deadline = time.monotonic() + 180
        answer = self.console.order(path, evaluation, method="PUT")
        # a 503 while the disk is full is the rule (nothing can be written), never a 409
        taken = answer.status_code == 200 or (answer.status_code == 503 and self.fault_active("disk_full"))
        self.ledger.check("evaluation_accepted_once_ended", taken, lambda: (
            f"session {plan.n} ({result.result}, shown ended): PUT evaluation → {answer.status_code} "
            f"{answer.text[:200]}; /api/health: {self.poller.health[1:] if self.poller.health else None}"))
        while answer.status_code != 200:
            # the game master tries again a little later (the console's banner says why)
            if time.monotonic() > deadline:
                msg = f"PUT {path} → {answer.status_code}: {answer.text[:300]}"
                raise Unavailable(msg)
            time.sleep(1.0)
            answer = self.console.order(path, evaluation, method="PUT")
        # the release after the end must be settled before the next check locks again
        self.until(lambda: not self.locks.pending, timeout=120, step=0.1)
        self.gm("/api/game/reset")
        self.completed[sid] = {"result": result.result, "players": plan.players,
                               "children": plan.children, "final_budget": result.final_budget,
                               "puzzles_solved": len(result.solved), "rating": plan.rating,
                               "learned": plan.learned, "comment": plan.comment,
                               "parcours": plan.parcours}
        self._check_events(result)

    def _check_events(self, result: SessionResult) -> None:
        sid = result.session_id
        events = self.wire.since(self.t0, lambda m: m.topic.endswith("/event"))
        logged = self.console.get(f"/api/history/sessions/{sid}/events?limit=100000")["events"]
        result.events_lost, result.events = inv.session_events_recorded(self.ledger, sid or "", events,
                                                                        logged)

    # -- at the end: the history -------------------------------------------------------------
    def finish(self) -> None:
        self.ledger.session = None
        self.until(lambda: not self.emergencies.ghosts, timeout=inv.GHOST_WINDOW_S + 2)
        self.log("the year is over: checking the history")
        rows = self.console.get("/api/history/sessions?limit=1000")["sessions"]
        played = [{"id": sid, **values} for sid, values in self.completed.items()]
        sessions_csv = self.console.text("/api/history/sessions.csv")
        puzzles_csv = self.console.text("/api/history/puzzles.csv")
        n_puzzles = len(self.facts.puzzles)
        inv.history_complete(self.ledger, played, rows, sessions_csv=sessions_csv, puzzles_csv=puzzles_csv,
                             n_puzzles=n_puzzles)
        (self.workdir / "sessions.csv").write_text(sessions_csv, encoding="utf-8")
        for result in self.results:
            if result.session_id in self.completed:
                result.events_lost, result.events = self._final_events(result)

    def _final_events(self, result: SessionResult) -> tuple[list[str], int]:
        events = self.wire.since(self.t0, lambda m: m.topic.endswith("/event"))
        logged = self.console.get(f"/api/history/sessions/{result.session_id}/events?limit=100000")["events"]
        return inv.session_events_recorded(self.ledger, result.session_id or "", events, logged)

    # -- the report's data -----------------------------------------------------------------
    def report_data(self, duration_s: float) -> dict[str, Any]:
        counts = {k: sum(1 for r in self.results if r.result == k) for k in (*ENDED, None)}
        faults = self.faults
        return {
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.options).items()},
            "duration_s": round(duration_s, 1),
            "disk_full_possible": self.stack.tmpfs is not None,
            "sessions": [r.public() for r in self.results],
            "played": {"sessions": len(self.results), "won": counts["won"], "time_up": counts["lost"],
                       "aborted": counts["aborted"], "unfinished": counts[None]},
            "faults": {"records": [r.public(self.t0) for r in faults.records] if faults else [],
                       "by_kind": faults.summary() if faults else {},
                       "injector_errors": faults.errors if faults else []},
            "checks": {"runs": dict(sorted(self.ledger.runs.items())),
                       "failed": {name: self.ledger.failed(name) for name in sorted(self.ledger.runs)},
                       "known": dict(inv.KNOWN),
                       "failures": [{"check": f.check, "at_s": round(f.at - self.t0, 1),
                                     "session": f.session, "detail": f.detail}
                                    for f in self.ledger.failures]},
            "release_s": _stats(self.locks.release_delays()) if hasattr(self, "locks") else {},
            "ghost_emergencies": self.emergencies.ghosts_seen,
            "lost": {"events": sum(len(r.events_lost) for r in self.results),
                     "sessions_missing": [f.detail for f in self.ledger.failures
                                          if f.check in ("completed_sessions_kept", "history_complete")],
                     "solved_lost": [f.detail for f in self.ledger.failures
                                     if f.check == "solved_puzzles_kept"]},
            "process_exits": self.process_exits,
            "log_alarms": self.alarms[:200],
            "mqtt": {"messages": len(self.wire.messages) if hasattr(self, "wire") else 0,
                     "not_json": len(self.wire.bad_json) if hasattr(self, "wire") else 0},
            "logins": self.console.logins if hasattr(self, "console") else 0,
            "log": self.lines,
        }


def _stats(values: list[float]) -> dict[str, float | None]:
    from soak.faults import _stats as stats

    return stats(values)
