"""The game engine: runs a game file's puzzles, timer, budget and clues. No I/O here.

The engine is fed prop events and the game master's orders and answers with *effects*
(commands for props, messages for room screens) that the service carries out. Time comes
from injectable clocks (a monotonic one for the timer, a wall one for records), so tests
run a whole hour in microseconds.

The lifecycle is declared as a table (:data:`TRANSITIONS`), as ``transitions`` does::

    idle → check → briefing → running ⇄ paused → won | lost | aborted → debrief → idle

Every order of the game master (force-solve, time, clue, lock…) goes to the session's
audit log with who and when; the service drains it (:meth:`Engine.take_journal`) into the
store. What the engine holds is saved and restored by :mod:`controller.record` (a restarted
controller resumes the same game) and shown by :mod:`controller.views`.

Longer than most modules on purpose: it is one state machine. The lifecycle, the timer,
the budget, the puzzle orders and the clues change the same state under the same phase
rules, and each order checks the phase right beside what it changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from config import rules
from config.game import (
    LAST_MINUTES_S,
    BudgetAction,
    EndAction,
    Game,
    MediaAction,
    MessageAction,
    PropAction,
    Puzzle,
    Requires,
    Text,
    TimerAction,
)
from controller.core.errors import EngineError, NotFoundError
from controller.profile import LANGUAGE_NAMES, GroupProfile
from props.kinds import LOCK_KINDS
from props.models import MaglockConfig, OutputConfig
from props.start import one_shot, start_command
from protocol import contract

log = logging.getLogger(__name__)

#: who gave an order when nobody said (authentication comes later)
GAME_MASTER = "game master"
#: recorded as the override reason when a game starts straight from idle
DIRECT_START_REASON = "démarrage direct, sans vérification préalable"


class Phase(StrEnum):
    IDLE = "idle"
    CHECK = "check"
    BRIEFING = "briefing"
    RUNNING = "running"
    PAUSED = "paused"
    WON = "won"
    LOST = "lost"
    ABORTED = "aborted"
    DEBRIEF = "debrief"


#: what the game master's console shows for each phase
PHASE_LABELS: dict[Phase, str] = {
    Phase.IDLE: "En attente",
    Phase.CHECK: "Vérification avant partie",
    Phase.BRIEFING: "Briefing",
    Phase.RUNNING: "En cours",
    Phase.PAUSED: "En pause",
    Phase.WON: "Gagné",
    Phase.LOST: "Perdu : temps écoulé",
    Phase.ABORTED: "Interrompu",
    Phase.DEBRIEF: "Débriefing",
}

#: the lifecycle: which trigger moves the game from which phases to which
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "check", "source": [Phase.IDLE], "dest": Phase.CHECK},
    {"trigger": "brief", "source": [Phase.CHECK], "dest": Phase.BRIEFING},
    {"trigger": "start", "source": [Phase.BRIEFING], "dest": Phase.RUNNING},
    {"trigger": "cancel", "source": [Phase.CHECK, Phase.BRIEFING], "dest": Phase.IDLE},
    {"trigger": "pause", "source": [Phase.RUNNING], "dest": Phase.PAUSED},
    {"trigger": "resume", "source": [Phase.PAUSED], "dest": Phase.RUNNING},
    {"trigger": "win", "source": [Phase.RUNNING, Phase.PAUSED], "dest": Phase.WON},
    {"trigger": "time_up", "source": [Phase.RUNNING], "dest": Phase.LOST},
    {"trigger": "abort", "source": [Phase.RUNNING, Phase.PAUSED], "dest": Phase.ABORTED},
    {"trigger": "debrief", "source": [Phase.WON, Phase.LOST, Phase.ABORTED], "dest": Phase.DEBRIEF},
    {"trigger": "reset", "source": [Phase.WON, Phase.LOST, Phase.ABORTED, Phase.DEBRIEF, Phase.IDLE],
     "dest": Phase.IDLE},
]
ENDED = frozenset({Phase.WON, Phase.LOST, Phase.ABORTED})
#: phases in which the run has begun (the timer exists)
PLAYING = frozenset({Phase.RUNNING, Phase.PAUSED})
#: phases of a session not yet run
PREPARING = frozenset({Phase.CHECK, Phase.BRIEFING})

_TRIGGER_WORDS = {
    "check": "lancer la vérification", "brief": "passer au briefing", "start": "démarrer",
    "cancel": "annuler la préparation", "pause": "mettre en pause", "resume": "reprendre",
    "win": "gagner", "time_up": "terminer le temps", "abort": "arrêter la partie",
    "debrief": "passer au débriefing", "reset": "remettre à zéro",
}


#: the same, in English (errors say both: controller/core/errors.py)
PHASE_LABELS_EN: dict[Phase, str] = {
    Phase.IDLE: "Waiting", Phase.CHECK: "Pre-game check", Phase.BRIEFING: "Briefing",
    Phase.RUNNING: "Running", Phase.PAUSED: "Paused", Phase.WON: "Won",
    Phase.LOST: "Lost: time is up", Phase.ABORTED: "Aborted", Phase.DEBRIEF: "Debrief",
}
_TRIGGER_WORDS_EN = {
    "check": "start the check", "brief": "go to the briefing", "start": "start",
    "cancel": "cancel the preparation", "pause": "pause", "resume": "resume", "win": "win",
    "time_up": "end the time", "abort": "stop the game", "debrief": "go to the debrief",
    "reset": "reset",
}
_PLAYING_WORDS_EN = {
    "résoudre une énigme": "solve a puzzle", "remettre une énigme à zéro": "reset a puzzle",
    "sauter à une énigme": "skip to a puzzle", "envoyer un indice": "send a clue",
}


def _impossible(what: str) -> str:
    """« impossible de … » with the elision French wants before a vowel: « impossible d'envoyer »."""
    return f"impossible d'{what}" if what[:1] in "aeiouéèêh" else f"impossible de {what}"


class PuzzleStatus(StrEnum):
    LOCKED = "locked"
    AVAILABLE = "available"
    SOLVED = "solved"


@dataclass(frozen=True, slots=True)
class PropCommand:
    """Effect: put a prop's output in a state (``lock``, ``unlock``, ``on``…)."""

    node: str
    prop: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScreenMessage:
    """Effect: show a text on a room screen (or every screen when room is None)."""

    text: str
    text_en: str | None = None
    room: str | None = None
    sound: str | None = None


@dataclass(frozen=True, slots=True)
class MediaCue:
    """Effect: play a file of the media library on room screens (every screen when rooms
    is None). *id* grows through a game: a screen plays each cue once."""

    id: int
    kind: str                      # "sound", "video", or "stop" (silence the screens)
    file: str
    rooms: tuple[str, ...] | None
    volume: float
    loop: bool
    at: float                      # elapsed run time, seconds
    #: a video's subtitles: (language, WebVTT file of the library), the first shown
    subtitles: tuple[tuple[str, str], ...] = ()
    #: the game event whose sound this is (``sounds:``, e.g. ``clue_chime``); None: cued by
    #: an action or the game master
    event: str | None = None


Effect = PropCommand | ScreenMessage | MediaCue
#: the same event sound on the same screens within this many seconds plays once
EVENT_SOUND_GAP_S = 0.5
#: the game events that come in bursts from one cause (one sound for the burst)
BURSTS = frozenset({"unlock", "budget_up", "budget_down"})


class LineKind(StrEnum):
    """What a budget line is, when it is more than a puzzle's action."""

    PAID = "paid"            # a puzzle paid a bill of the month (``pays:``)
    CHARGED = "charged"      # a bill left unpaid, charged at the end
    LATE_FEE = "late_fee"    # the late fee of a bill charged at the end
    CLUE = "clue"            # a clue that costs
    CANCEL = "cancel"        # a puzzle reset gives back what it moved


@dataclass(slots=True)
class BudgetLine:
    amount: int
    label: str
    at: float
    puzzle: str | None = None
    label_en: str | None = None
    #: the bill (``apartment.budget.obligations``) this line pays, charges or gives back
    obligation: str | None = None
    kind: LineKind | None = None


@dataclass(frozen=True, slots=True)
class Bill:
    """One bill of the month as it stands (:meth:`Engine.bills`)."""

    id: str
    label: Text
    icon: str
    amount: int          # euros the month owes for it (its puzzles' payments)
    unpaid: int          # of which not paid yet (charged at the end)
    late_fee: int        # added when it is charged at the end
    status: str          # "paid", "due" (the game goes on), "charged" (charged at the end)


def month_figures(start: int, lines: Iterable[tuple[int, str | None]]) -> dict[str, int]:
    """The month in three figures: ``income`` (start and gains), ``spent``, ``left``.

    *lines*: ``(amount, kind)``. A line that cancels another (a puzzle reset) takes back
    from the side the first was on, so a payment cancelled is money not spent, not income.
    """
    income, spent = start, 0
    for amount, kind in lines:
        if kind == LineKind.CANCEL:
            spent, income = (spent - amount, income) if amount > 0 else (spent, income + amount)
        elif amount > 0:
            income += amount
        else:
            spent -= amount
    return {"income": income, "spent": spent, "left": income - spent}


@dataclass(slots=True)
class PuzzleState:
    status: PuzzleStatus = PuzzleStatus.LOCKED
    solved_at: float | None = None
    solved_by: str = ""          # "players", "game master", "game master (saut)"…
    progress: list[int] = field(default_factory=list)   # indices of matched conditions
    available_at: float | None = None


@dataclass(slots=True)
class SentClue:
    """A clue sent to a room screen (or every screen) during a run."""

    id: str
    text: str
    text_en: str | None
    room: str | None
    puzzle: str | None
    index: int | None
    counts: bool
    cost: int
    who: str
    sent_at: float                 # elapsed run time, seconds
    sent_wall: float
    shown_wall: float | None = None

    @property
    def status(self) -> str:
        return "shown" if self.shown_wall is not None else "sent"


class Engine:
    """One game being played, from the pre-game check to the debrief.

    >>> engine = Engine(load_game(SHIPPED_GAME), clock=lambda: 0.0)
    >>> effects = engine.start(parcours="primo", players=4)   # straight from idle
    >>> effects = engine.on_event("hall", "mailbox_keypad", "code", "0412")
    """

    def __init__(self, game: Game, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 hush: Callable[[], bool] = lambda: False) -> None:
        self.game = game
        self.clock = clock
        self.wall = wall
        #: True while nothing may play on the screens (the emergency alert): no event sound
        self.hush = hush
        self.phase = Phase.IDLE
        self.log: list[dict[str, Any]] = []
        self.audit_log: list[dict[str, Any]] = []
        self._journal: list[tuple[str, dict[str, Any]]] = []
        self._trigger_game: Game | None = None
        self._trigger_index = rules.Triggers(())
        self._clear_session()

    def _clear_session(self) -> None:
        self.session_id: str | None = None
        self.parcours = "primo"
        self.players = 0
        self.children = False
        #: how the room screens render cues for this group (controller/profile.py)
        self.profile = GroupProfile()
        self.created_wall: float | None = None
        self.started_wall: float | None = None
        self.ended_wall: float | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.result: str | None = None
        self._elapsed_before = 0.0
        self._running_since: float | None = None
        self.added_seconds = 0
        self.budget = self.budget_start = self._start_budget()
        self.budget_history: list[BudgetLine] = []
        #: the month's unpaid bills were charged (at the end, once)
        self.settled = False
        self.puzzles: dict[str, PuzzleState] = {p.id: PuzzleState() for p in self.game.puzzles}
        self.messages: list[ScreenMessage] = []
        #: the sounds and videos played this game (not kept on disk: a cue is of its moment)
        self.cues: list[MediaCue] = []
        #: when each event sound last played, by (file, rooms) (clock): one at a time
        self._event_sounds: dict[tuple[str, tuple[str, ...] | None], float] = {}
        self.clues: list[SentClue] = []
        self.last_activity = 0.0
        self.check_override: dict[str, Any] | None = None
        self.audit_log = []

    # -- lifecycle --------------------------------------------------------------------
    def _move(self, trigger: str) -> None:
        for row in TRANSITIONS:
            if row["trigger"] == trigger and self.phase in row["source"]:
                self.note("phase", f"{self.phase} -> {row['dest']}")
                self.phase = row["dest"]
                return
        msg = (f"{_impossible(_TRIGGER_WORDS.get(trigger, trigger))} : "
               f"la partie est « {PHASE_LABELS[self.phase]} »")
        raise EngineError(msg, en=f"cannot {_TRIGGER_WORDS_EN.get(trigger, trigger)}: "
                                  f"the game is '{PHASE_LABELS_EN[self.phase]}'")

    def can(self, trigger: str) -> bool:
        """Whether *trigger* is allowed in the current phase."""
        return any(row["trigger"] == trigger and self.phase in row["source"] for row in TRANSITIONS)

    def _check_group(self, parcours: str | None, players: int | None) -> None:
        if parcours is not None and parcours not in ("primo", "locataire"):
            msg = f"parcours inconnu {parcours!r} : primo ou locataire"
            raise EngineError(msg, en=f"unknown parcours {parcours!r}: primo or locataire")
        if players is not None and not 1 <= players <= self.game.apartment.max_players:
            top = self.game.apartment.max_players
            msg = f"{top} joueurs au plus, enfants compris : il faut de 1 à {top} joueurs"
            raise EngineError(msg, en=f"at most {top} players, children included: players must be 1 to {top}")

    def prepare(self, *, parcours: str = "primo", players: int = 1, children: bool = False,
                session_id: str | None = None, who: str = GAME_MASTER) -> list[Effect]:
        """Open a session and start the pre-game check: the props' start-state effects."""
        self._check_group(parcours, players)
        if not self.can("check"):
            self._move("check")  # raises with the phase in the message
        self._clear_session()
        self.session_id = session_id or contract.new_id()
        self._move("check")
        self.parcours, self.players, self.children = parcours, players, children
        self.created_wall = self.wall()
        self.budget = self.budget_start = self._start_budget()
        self.audit("check", who=who, detail=f"{parcours}, {players} joueurs")
        return self.start_state()

    def start_state(self) -> list[PropCommand]:
        """The commands that put every prop in its pre-game state (props/start.py): locks
        engaged, outputs at rest, keypads cleared, readers emptied. Contacts have none: a
        window left open needs a hand, which the check asks for."""
        return [PropCommand(node.id, prop.id, action) for node in self.game.nodes
                for prop in node.props if (action := start_command(prop)) is not None]

    def configure(self, *, parcours: str | None = None, players: int | None = None,
                  children: bool | None = None) -> None:
        """Correct the group (parcours, players, children) before the run starts."""
        if self.phase not in PREPARING:
            msg = f"le groupe ne peut plus changer : la partie est « {PHASE_LABELS[self.phase]} »"
            raise EngineError(msg, en=f"the group can no longer change: the game is "
                                      f"'{PHASE_LABELS_EN[self.phase]}'")
        self._check_group(parcours, players)
        if parcours is not None:
            self.parcours = parcours
            self.budget = self.budget_start = self._start_budget()
        if players is not None:
            self.players = players
        if children is not None:
            self.children = children

    def brief(self, *, not_ready: Iterable[str] = (), override: str | None = None,
              who: str = GAME_MASTER) -> None:
        """Check → briefing: every prop must be ready, or the game master overrides with a
        reason (recorded in the audit log with what was not ready)."""
        missing = list(not_ready)
        if self.phase != Phase.CHECK:
            self._move("brief")
        if missing and not (override and override.strip()):
            shown = ", ".join(missing[:6]) + ("…" if len(missing) > 6 else "")
            msg = (f"{len(missing)} accessoire(s) pas prêt(s) : {shown}. "
                   "Remettez-les en place ou forcez le départ en donnant une raison.")
            raise EngineError(msg, en=f"{len(missing)} prop(s) not ready: {shown}. Put them back "
                                      "or force the start with a reason.")
        self._move("brief")
        if override and override.strip():
            self.check_override = {"who": who, "reason": override.strip(), "not_ready": missing,
                                   "at": self.wall()}
            self.audit("check_override", who=who, detail=override.strip(),
                       target=", ".join(missing) or None)
        self.audit("briefing", who=who)

    def start(self, *, parcours: str | None = None, players: int | None = None,
              children: bool | None = None, session_id: str | None = None,
              not_ready: Iterable[str] = (), override: str | None = None,
              who: str = GAME_MASTER) -> list[Effect]:
        """Start the run. From idle it opens the session, runs the check with an override
        (:data:`DIRECT_START_REASON`) and briefs at once; from check it briefs first."""
        effects: list[Effect] = []
        if self.phase == Phase.IDLE:
            self._check_group(parcours, players)
            effects += self.prepare(parcours=parcours or "primo", players=players or 1,
                                    children=bool(children), session_id=session_id, who=who)
            self.brief(not_ready=["vérification non faite"], override=override or DIRECT_START_REASON,
                       who=who)
        else:
            if self.phase in PREPARING:
                self.configure(parcours=parcours, players=players, children=children)
            if self.phase == Phase.CHECK:
                self.brief(not_ready=not_ready, override=override, who=who)
        self._move("start")
        now = self.clock()
        self.started_at, self._running_since, self._elapsed_before = now, now, 0.0
        self.started_wall = self.wall()
        # added_seconds stays: time changed during the briefing counts (prepare zeroed it)
        self.ended_at, self.ended_wall, self.result = None, None, None
        self.budget = self.budget_start = self._start_budget()
        self.budget_history = []
        self.settled = False
        self.puzzles = {p.id: PuzzleState() for p in self.game.puzzles}
        self.messages = []
        self.cues = []
        self.clues = []
        self.last_activity = 0.0
        self._refresh_availability()
        self.audit("start", who=who)
        # Pre-game state: every lock locked (again: a lock may have been opened by hand).
        return effects + [PropCommand(node.id, prop.id, "lock") for node in self.game.nodes
                          for prop in node.props if prop.kind in LOCK_KINDS]

    def _start_budget(self) -> int:
        budget = self.game.apartment.budget
        return int(rules.resolve(budget.start, self.parcours)) if budget else 0

    def pause(self, *, who: str = GAME_MASTER) -> None:
        self._move("pause")
        self._elapsed_before = self.elapsed()
        self._running_since = None
        self.audit("pause", who=who)

    def resume(self, *, who: str = GAME_MASTER) -> None:
        self._move("resume")
        self._running_since = self.clock()
        self.audit("resume", who=who)

    def abort(self, *, who: str = GAME_MASTER) -> list[Effect]:
        self._move("abort")
        self.audit("abort", who=who)
        return self._end(Phase.ABORTED)

    def cancel(self, *, who: str = GAME_MASTER) -> list[Effect]:
        """Give up a session before its run: back to idle, every lock open."""
        self._move("cancel")
        self.result = "cancelled"
        self.audit("cancel", who=who)
        self._clear_session()
        self.result = "cancelled"
        return self.release_all()

    def debrief(self, *, who: str = GAME_MASTER) -> None:
        self._move("debrief")
        self.audit("debrief", who=who)

    def reset(self, *, who: str = GAME_MASTER) -> None:
        """Back to idle for the next group: nothing of the last game is left on a screen
        (the time is the full duration again, the budget the month's start)."""
        was = self.phase
        self._move("reset")
        if was != Phase.IDLE:
            self.audit("reset", who=who)
        self._clear_session()

    def _end(self, phase: Phase) -> list[Effect]:
        self._elapsed_before = self.elapsed()
        self._running_since = None
        self.ended_at = self.clock()
        self.ended_wall = self.wall()
        self.result = str(phase)
        self._settle()
        # NOTE: when a game ends, however it ends, every lock opens: nobody stays locked in.
        return self.release_all()

    # -- the month's bills --------------------------------------------------------------
    def bills(self) -> list[Bill]:
        """Each bill of the month (``apartment.budget.obligations``): what it costs, what is
        still unpaid (its paying puzzles unsolved), and whether it was charged at the end."""
        budget = self.game.apartment.budget
        out: list[Bill] = []
        for obligation in budget.obligations if budget else []:
            amount = unpaid = 0
            for puzzle in self.game.puzzles:
                if not self.in_parcours(puzzle):
                    continue
                for action in puzzle.actions:
                    if isinstance(action, BudgetAction) and action.pays == obligation.id:
                        owed = -int(rules.resolve(action.amount, self.parcours))
                        amount += owed
                        if self.puzzles[puzzle.id].status != PuzzleStatus.SOLVED:
                            unpaid += owed
            status = "paid" if not unpaid else "charged" if self.settled else "due"
            out.append(Bill(obligation.id, obligation.label, obligation.icon, amount, unpaid,
                            int(rules.resolve(obligation.late_fee, self.parcours)), status))
        return out

    def _settle(self) -> None:
        """The game is over: every bill still unpaid is charged, with its late fee. What is
        due is due: skipping a bill never leaves the household richer. Once per session."""
        if self.settled:
            return
        unpaid = [b for b in self.bills() if b.unpaid]
        self.settled = True
        budget = self.game.apartment.budget
        for bill in unpaid:
            obligation = budget.obligation(bill.id) if budget else None
            self.move_budget(-bill.unpaid, f"Payé en retard : {bill.label.fr}",
                             label_en=f"Paid late: {bill.label.get('en')}",
                             obligation=bill.id, kind=LineKind.CHARGED)
            if bill.late_fee and obligation is not None:
                fee = obligation.late_fee_label
                self.move_budget(-bill.late_fee, f"{bill.label.fr} : {fee.fr}",
                                 label_en=f"{bill.label.get('en')}: {fee.get('en')}",
                                 obligation=bill.id, kind=LineKind.LATE_FEE)
            self.note("charged", f"{bill.id}: {bill.unpaid} € + {bill.late_fee} € late fee")

    def held_locks(self) -> list[tuple[str, str]]:
        """The locks the game holds locked now: every lock, but those the puzzles solved so
        far opened (what an emergency release may have opened that the game had not)."""
        opened = {action.target for puzzle in self.game.puzzles
                  if self.puzzles[puzzle.id].status == PuzzleStatus.SOLVED
                  for action in puzzle.actions
                  if isinstance(action, PropAction) and action.command == "unlock"}
        return [(node.id, prop.id) for node in self.game.nodes for prop in node.props
                if prop.kind in LOCK_KINDS and f"{node.id}.{prop.id}" not in opened]

    def release_all(self) -> list[Effect]:
        """Effects that open every lock of the apartment."""
        return [PropCommand(node.id, prop.id, "unlock") for node in self.game.nodes
                for prop in node.props if prop.kind in LOCK_KINDS]

    # -- timer ------------------------------------------------------------------------
    @property
    def duration(self) -> float:
        return self.game.apartment.duration_min * 60 + self.added_seconds

    def elapsed(self) -> float:
        running = self.clock() - self._running_since if self._running_since is not None else 0.0
        return self._elapsed_before + running

    def remaining(self) -> float:
        return max(0.0, self.duration - self.elapsed())

    def music_moment(self) -> str | None:
        """Which music the rooms play now (``config.game.MUSIC_MOMENTS``); None: none."""
        if self.phase in (Phase.CHECK, Phase.BRIEFING):
            return "welcome"
        if self.phase in (Phase.RUNNING, Phase.PAUSED):
            return "last_minutes" if self.remaining() <= LAST_MINUTES_S else "game"
        return {"won": "victory", "lost": "defeat"}.get(self.result or "") \
            if self.phase in (Phase.WON, Phase.LOST, Phase.DEBRIEF) else None

    @property
    def timer_running(self) -> bool:
        return self._running_since is not None

    def restore_timer(self, elapsed: float, *, running: bool) -> None:
        """Carry on a run recorded by another process (controller/record.py): *elapsed*
        seconds played so far, the timer running or stopped."""
        now = self.clock()
        self._running_since = now if running else None
        self._elapsed_before = elapsed
        if self.started_wall is not None:
            self.started_at = now - elapsed
        if self.ended_wall is not None:
            self.ended_at = now
        if self.phase in PLAYING:
            self._refresh_availability()

    def add_time(self, seconds: int, *, who: str = GAME_MASTER) -> None:
        """Add (or, negative, remove) time; refused when it would end the game at once."""
        if self.phase not in (Phase.BRIEFING, *PLAYING):
            msg = f"impossible de changer le temps : la partie est « {PHASE_LABELS[self.phase]} »"
            raise EngineError(msg, en=f"cannot change the time: the game is '{PHASE_LABELS_EN[self.phase]}'")
        if seconds < 0 and self.duration + seconds - self.elapsed() < 1:
            msg = (f"retirer {-seconds} s terminerait la partie (il reste {int(self.remaining())} s) ; "
                   "pour l'arrêter, utilisez Arrêter")
            raise EngineError(msg, en=f"removing {-seconds} s would end the game ({int(self.remaining())} s "
                                      "left); to end it, use Stop")
        self.added_seconds += seconds
        self.note("timer", f"{seconds:+d} s")
        self.audit("time", who=who, detail=f"{seconds:+d} s")

    def tick(self) -> list[Effect]:
        """Call often (every 0.2 s): ends the game when the time is up."""
        if self.phase == Phase.RUNNING and self.remaining() <= 0:
            self._move("time_up")
            return self._end(Phase.LOST)
        return []

    def idle_seconds(self) -> float:
        """Run time since the last prop event (or the start)."""
        return max(0.0, self.elapsed() - self.last_activity)

    def alert(self) -> str | None:
        """``"warning"`` / ``"alert"`` when no prop has moved for the configured minutes."""
        if self.phase != Phase.RUNNING:
            return None
        idle, apt = self.idle_seconds(), self.game.apartment
        if idle >= apt.inactivity_alert_min * 60:
            return "alert"
        if idle >= apt.inactivity_warning_min * 60:
            return "warning"
        return None

    # -- puzzles ----------------------------------------------------------------------
    # What solves a puzzle and when it is open are rules of the game, shared with a node
    # playing alone: config/rules.py. Here only their bookkeeping (status, times, notes).
    def in_parcours(self, puzzle: Puzzle) -> bool:
        return rules.in_parcours(puzzle, self.parcours)

    def _puzzle(self, puzzle_id: str) -> Puzzle:
        puzzle = self.game.puzzle(puzzle_id)
        if puzzle is None:
            msg = f"énigme inconnue {puzzle_id!r}"
            raise NotFoundError(msg, en=f"unknown puzzle {puzzle_id!r}")
        return puzzle

    def _refresh_availability(self) -> None:
        solved = {pid for pid, st in self.puzzles.items() if st.status == PuzzleStatus.SOLVED}
        for puzzle in self.game.puzzles:
            state = self.puzzles[puzzle.id]
            if state.status == PuzzleStatus.SOLVED or not self.in_parcours(puzzle):
                continue
            ok = rules.available(puzzle, solved, self.parcours)
            state.status = PuzzleStatus.AVAILABLE if ok else PuzzleStatus.LOCKED
            if ok and state.available_at is None:
                state.available_at = self.elapsed()

    def on_event(self, node: str, prop: str, event: str, value: Any) -> list[Effect]:
        """A prop event: solve what it solves. Puzzles not yet available ignore it."""
        if self.phase != Phase.RUNNING:
            return []
        self.last_activity = self.elapsed()
        seen = rules.Event.of(node, prop, event, value)
        wrong = self.wrong_code(seen)   # judged before it solves anything
        effects: list[Effect] = []
        for puzzle in self._triggers()(seen):
            state = self.puzzles[puzzle.id]
            if not self.in_parcours(puzzle) or state.status == PuzzleStatus.SOLVED:
                continue
            if state.status == PuzzleStatus.LOCKED:
                self.note("ignored", f"{node}.{prop} {event}={value!r}: puzzle {puzzle.id} "
                                      "is not available yet")
                continue
            state.progress = rules.advance(puzzle, state.progress, seen, self.parcours)
            if rules.complete(puzzle, state.progress):
                effects += self._solve(puzzle, by="players")
        if wrong:
            self.event_sound("wrong_code", (node,))
        return effects

    def _triggers(self) -> rules.Triggers:
        """The puzzles each event may move (built once per game)."""
        if self._trigger_game is not self.game:
            self._trigger_index, self._trigger_game = rules.Triggers(self.game.puzzles), self.game
        return self._trigger_index

    def _check_playing(self, what: str) -> None:
        if self.phase not in PLAYING:
            msg = f"{_impossible(what)} : la partie est « {PHASE_LABELS[self.phase]} »"
            raise EngineError(msg, en=f"cannot {_PLAYING_WORDS_EN.get(what, what)}: the game is "
                                      f"'{PHASE_LABELS_EN[self.phase]}'")

    def _check_in_parcours(self, puzzle: Puzzle) -> None:
        if not self.in_parcours(puzzle):
            msg = f"l'énigme {puzzle.id!r} n'est pas dans le parcours {self.parcours}"
            raise EngineError(msg, en=f"puzzle {puzzle.id!r} is not in parcours {self.parcours}")

    def force_solve(self, puzzle_id: str, *, who: str = GAME_MASTER) -> list[Effect]:
        """Solve a puzzle as if the players had: its actions run."""
        puzzle = self._puzzle(puzzle_id)
        self._check_playing("résoudre une énigme")
        self._check_in_parcours(puzzle)
        if self.puzzles[puzzle_id].status == PuzzleStatus.SOLVED:
            return []
        self.audit("force_solve", who=who, target=puzzle_id)
        return self._solve(puzzle, by=who)

    def reset_puzzle(self, puzzle_id: str, *, who: str = GAME_MASTER) -> list[Effect]:
        """Put a puzzle back to unsolved so the players can do it again.

        Its progress is forgotten, the budget it moved is given back, and what its actions
        opened or switched on is closed or switched off again, except exit doors (a door on
        the way out is never locked again by the engine on its own). Its input props get a
        ``reset`` (a half-typed code is cleared). Puzzles solved after it stay solved.
        """
        puzzle = self._puzzle(puzzle_id)
        self._check_playing("remettre une énigme à zéro")
        self._check_in_parcours(puzzle)
        state = self.puzzles[puzzle_id]
        was_solved = state.status == PuzzleStatus.SOLVED
        state.status, state.solved_at, state.solved_by = PuzzleStatus.LOCKED, None, ""
        state.progress.clear()
        effects: list[Effect] = []
        if was_solved:
            for line in [b for b in self.budget_history if b.puzzle == puzzle_id and b.amount
                         and b.kind not in (LineKind.CLUE, LineKind.CANCEL)]:
                self.move_budget(-line.amount, f"Annulé : {line.label}", puzzle_id,
                                 label_en=f"Cancelled: {line.label_en or line.label}",
                                 obligation=line.obligation, kind=LineKind.CANCEL)
            for action in puzzle.actions:
                if not isinstance(action, PropAction):
                    continue
                node, prop = action.target.split(".")
                found = self.game.prop(action.target)
                cfg = found[1] if found else None
                if action.do == "unlock" and not (isinstance(cfg, MaglockConfig) and cfg.exit_door):
                    effects.append(PropCommand(node, prop, "lock"))
                elif action.do == "command" and isinstance(cfg, OutputConfig):
                    back = start_command(cfg)   # its start state: the music plays again
                    if back is not None:
                        effects.append(PropCommand(node, prop, back))
        for ref in {c.prop for c in puzzle.conditions()}:
            found = self.game.prop(ref)
            if found and one_shot(found[1]):
                effects.append(PropCommand(found[0].id, found[1].id, "reset"))
        self._refresh_availability()
        self.audit("reset_puzzle", who=who, target=puzzle_id)
        return effects

    def skip_to(self, puzzle_id: str, *, who: str = GAME_MASTER) -> list[Effect]:
        """Make a puzzle available by force-solving what it requires (recursively)."""
        puzzle = self._puzzle(puzzle_id)
        self._check_playing("sauter à une énigme")
        self._check_in_parcours(puzzle)
        order: list[str] = []
        self._requirements_to_solve(puzzle, order, set())
        finals = [pid for pid in order if self._puzzle(pid).final]
        if finals:
            msg = f"sauter à {puzzle_id!r} demanderait de résoudre l'énigme finale {finals[0]!r}"
            raise EngineError(msg, en=f"skipping to {puzzle_id!r} would solve the final puzzle {finals[0]!r}")
        self.audit("skip_to", who=who, target=puzzle_id, detail=", ".join(order) or None)
        effects: list[Effect] = []
        for pid in order:
            if self.puzzles[pid].status != PuzzleStatus.SOLVED:
                effects += self._solve(self._puzzle(pid), by=f"{who} (saut)")
        return effects

    def _requirements_to_solve(self, puzzle: Puzzle, order: list[str], seen: set[str]) -> None:
        reqs = [r for r in puzzle.required_ids() if self.in_parcours(self._puzzle(r))]
        if isinstance(puzzle.requires, Requires):
            if any(self.puzzles[r].status == PuzzleStatus.SOLVED or r in order for r in reqs):
                return
            reqs = reqs[:1]  # one is enough: the first listed
        for req in reqs:
            if req in seen:
                continue
            seen.add(req)
            if self.puzzles[req].status != PuzzleStatus.SOLVED:
                self._requirements_to_solve(self._puzzle(req), order, seen)
                order.append(req)

    def _solve(self, puzzle: Puzzle, *, by: str) -> list[Effect]:
        state = self.puzzles[puzzle.id]
        state.status, state.solved_at, state.solved_by = PuzzleStatus.SOLVED, self.elapsed(), by
        if state.available_at is None:
            state.available_at = state.solved_at
        self.note("solved", f"{puzzle.id} by {by}")
        self.event_sound("solved", (puzzle.room,))   # before what its actions cue
        effects: list[Effect] = []
        ended = False
        for action in puzzle.actions:
            if isinstance(action, PropAction):
                node, prop = action.target.split(".")
                effects.append(PropCommand(node, prop, action.command, dict(action.params)))
            elif isinstance(action, BudgetAction):
                self.move_budget(int(rules.resolve(action.amount, self.parcours)), action.label.fr,
                                 puzzle.id, label_en=action.label.en, obligation=action.pays,
                                 kind=LineKind.PAID if action.pays else None)
            elif isinstance(action, MessageAction):
                message = ScreenMessage(action.text.fr, action.text.en, action.room, action.sound)
                self.messages.append(message)
                effects.append(message)
            elif isinstance(action, MediaAction):
                effects += self.cue_media(action.do, action.file, action.rooms, volume=action.volume,
                                          loop=action.loop, who=f"puzzle {puzzle.id}")
            elif isinstance(action, TimerAction):
                if action.op == "add":
                    self.added_seconds += action.seconds
                    self.note("timer", f"{action.seconds:+d} s ({puzzle.id})")
                elif action.op == "pause" and self.phase == Phase.RUNNING:
                    self.pause(who=f"puzzle {puzzle.id}")
                elif action.op == "resume" and self.phase == Phase.PAUSED:
                    self.resume(who=f"puzzle {puzzle.id}")
            elif isinstance(action, EndAction):
                ended = True
        self._refresh_availability()
        if (puzzle.final or ended) and self.phase in PLAYING:
            self._move("win")
            effects += self._end(Phase.WON)
        return effects

    def move_budget(self, amount: int, label: str, puzzle: str | None = None, *,
                    label_en: str | None = None, obligation: str | None = None,
                    kind: LineKind | None = None) -> None:
        self.budget += amount
        self.budget_history.append(BudgetLine(amount, label, self.elapsed(), puzzle, label_en,
                                              obligation, kind))
        if amount:
            self.event_sound("budget_up" if amount > 0 else "budget_down", None)

    def month(self) -> dict[str, int]:
        """Income, spending and what is left this month (:func:`month_figures`)."""
        return month_figures(self.budget_start, ((b.amount, b.kind) for b in self.budget_history))

    # -- clues ------------------------------------------------------------------------
    def send_clue(self, *, puzzle: str | None = None, index: int | None = None,
                  text: str | None = None, text_en: str | None = None,
                  room: str | None = None, room_given: bool = False, counts: bool = True,
                  cost: int | None = None, who: str = GAME_MASTER) -> tuple[SentClue, list[Effect]]:
        """Send a pre-written clue (*puzzle* + *index*) or a free *text*.

        The room defaults to the puzzle's room (every screen without a puzzle); pass
        ``room_given=True`` with ``room=None`` to send to every screen. A clue that
        counts adds to the game's clue count and costs its ``cost`` from the budget.
        """
        self._check_playing("envoyer un indice")
        target = self._puzzle(puzzle) if puzzle is not None else None
        if target is not None:
            self._check_in_parcours(target)
        if (index is None) == (text is None or not text.strip()):
            msg = "donnez soit un indice écrit d'avance (puzzle + index), soit un texte libre"
            raise EngineError(msg, en="give either a written clue (puzzle + index) or a free text")
        if index is not None:
            if target is None:
                msg = "un indice écrit d'avance se choisit avec son énigme (puzzle)"
                raise EngineError(msg, en="a written clue is chosen with its puzzle (puzzle)")
            if not 0 <= index < len(target.clues):
                msg = f"l'énigme {target.id!r} a {len(target.clues)} indice(s) : pas d'indice n°{index}"
                raise NotFoundError(msg, en=f"puzzle {target.id!r} has {len(target.clues)} clue(s): "
                                            f"no clue #{index}")
            clue = target.clues[index]
            if self.parcours not in clue.parcours:
                msg = f"l'indice n°{index} de {target.id!r} n'est pas pour le parcours {self.parcours}"
                raise EngineError(msg, en=f"clue #{index} of {target.id!r} is not for parcours "
                                          f"{self.parcours}")
            words = clue.text_for(self.parcours)
            text, text_en = words.fr, words.en
            price = clue.cost if cost is None else cost
        else:
            price = cost or 0
        if room is not None and self.game.node(room) is None:
            msg = f"pièce inconnue {room!r}"
            raise NotFoundError(msg, en=f"unknown room {room!r}")
        if not room_given and room is None and target is not None:
            room = target.room
        sent = SentClue(id=contract.new_id(), text=(text or "").strip(), text_en=text_en,
                        room=room, puzzle=target.id if target else None, index=index,
                        counts=counts, cost=price if counts else 0, who=who,
                        sent_at=self.elapsed(), sent_wall=self.wall())
        self.clues.append(sent)
        if sent.cost:
            label = f"Indice : {target.label.fr}" if target else "Indice"
            label_en = f"Clue: {target.label.get('en')}" if target else "Clue"
            self.move_budget(-sent.cost, label, sent.puzzle, label_en=label_en, kind=LineKind.CLUE)
        self.note("clue", f"{sent.id} -> {room or 'all'}: {sent.text[:80]}")
        self.audit("clue", who=who, target=sent.puzzle or room,
                   detail=f"{sent.id}{'' if counts else ' (ne compte pas)'}: {sent.text[:200]}")
        message = ScreenMessage(sent.text, sent.text_en, sent.room)
        self.event_sound("clue_chime", (room,) if room else None)
        return sent, [message]

    def clue_shown(self, clue_id: str) -> SentClue:
        """A room screen says it displayed the clue (idempotent)."""
        clue = next((c for c in self.clues if c.id == clue_id), None)
        if clue is None:
            msg = f"indice inconnu {clue_id!r} dans cette partie"
            raise NotFoundError(msg, en=f"unknown clue {clue_id!r} in this game")
        if clue.shown_wall is None:
            clue.shown_wall = self.wall()
            self.note("clue_shown", clue_id)
        return clue

    @property
    def clue_count(self) -> int:
        return sum(1 for c in self.clues if c.counts)

    # -- journal: event log and audit log ---------------------------------------------
    def note(self, kind: str, text: str) -> None:
        """Write *text* to the session's event log (a note of *kind*: ``phase``, ``solved``…)."""
        log.info("game %s: %s: %s", self.session_id, kind, text)
        entry = {"at": round(self.elapsed(), 3) if self.started_at else 0.0, "kind": kind,
                 "text": text, "wall": self.wall(), "session": self.session_id}
        self.log.append(entry)
        del self.log[:-500]
        self._journal.append(("note", entry))

    # -- media --------------------------------------------------------------------------
    def cue_media(self, kind: str, file: str, rooms: tuple[str, ...] | None, *, volume: float = 1.0,
                  loop: bool = False, who: str = GAME_MASTER,
                  subtitles: tuple[tuple[str, str], ...] = ()) -> list[Effect]:
        """The game master plays *file* (``kind``: sound, video) on the screens of *rooms*
        (None: every screen), or with ``kind`` "stop" silences them; any phase."""
        for room in rooms or ():
            if self.game.node(room) is None:
                msg = f"pièce inconnue {room!r}"
                raise NotFoundError(msg, en=f"unknown room {room!r}")
        cue = MediaCue(len(self.cues) + 1, kind, file, rooms, volume, loop, round(self.elapsed(), 3),
                       subtitles)
        self.cues.append(cue)
        self.audit(f"media_{kind}", who=who, target=", ".join(rooms) if rooms else "all",
                   detail=file or None)
        return [cue]

    # -- event sounds: what the room screens play on a game event, with no action -------------
    def event_sound(self, event: str, rooms: tuple[str, ...] | None) -> list[MediaCue]:
        """Cue the game file's sound of *event* (``sounds:``, :data:`config.game.EVENT_SOUNDS`)
        on the screens of *rooms* (None: every screen); nothing when the game file gives it
        none or while the emergency alert lasts. Each cue has its own id: a screen plays it
        once, however often its view is sent. It reaches the screens with their view, not
        as an effect: a wrong code still publishes nothing over MQTT. A lock opening or the
        budget moving, on the same screens within :data:`EVENT_SOUND_GAP_S`, is one sound
        (the bills charged at the end, the locks a victory opens); every code typed is heard."""
        sound = self.game.event_sounds().get(event)
        if sound is None or self.hush():
            return []
        now, same = self.clock(), (sound.file, rooms)
        if event in BURSTS:
            if now - self._event_sounds.get(same, now - EVENT_SOUND_GAP_S) < EVENT_SOUND_GAP_S:
                return []
            self._event_sounds[same] = now
        cue = MediaCue(len(self.cues) + 1, "sound", sound.file, rooms, sound.volume, False,
                       round(self.elapsed(), 3), event=event)
        self.cues.append(cue)
        return [cue]

    def wrong_code(self, seen: rules.Event) -> bool:
        """*seen* is a code no puzzle of this parcours still to solve accepts (a code right
        for a puzzle not open yet is not called wrong: it is only early)."""
        if seen.type != "code":
            return False
        return not any(rules.matches(cond, seen, self.parcours)
                       for puzzle in self._triggers()(seen)
                       if self.in_parcours(puzzle) and self.puzzles[puzzle.id].status != PuzzleStatus.SOLVED
                       for cond in puzzle.conditions())

    def lock_opened(self, node: str) -> list[MediaCue]:
        """A lock of *node*'s room was confirmed open by its node: its sound, during the run
        and at a victory (the doors a won game opens); a lost or aborted game, or no game,
        opens its doors without a sound."""
        if self.phase not in (*PLAYING, Phase.WON):
            return []
        return self.event_sound("unlock", (node,))

    def audit(self, action: str, *, who: str = GAME_MASTER, target: str | None = None,
              detail: str | None = None) -> dict[str, Any]:
        """Record an order of the game master (or of a node's emergency input)."""
        entry = {"at": self.wall(), "elapsed": round(self.elapsed(), 3), "who": who,
                 "action": action, "target": target, "detail": detail, "session": self.session_id}
        log.info("audit %s: %s %s %s %s", self.session_id, who, action, target or "", detail or "")
        if self.session_id is not None:
            self.audit_log.append(entry)
            del self.audit_log[:-500]
        self._journal.append(("audit", entry))
        return entry

    def set_profile(self, *, children: bool | None = None, low_literacy: bool | None = None,
                    language: str | bool | None = False, hard_of_hearing: bool | None = None,
                    who: str = GAME_MASTER) -> None:
        """Change the group's profile (what is given; *language* None: French only, False:
        unchanged), in any phase of a session: it changes how cues are rendered, not the game."""
        if self.session_id is None:
            msg = "pas de session : le profil du groupe se choisit en démarrant une partie"
            raise EngineError(msg, en="no session: the group's profile is chosen when a game starts")
        if isinstance(language, str) and language not in self.game.languages():
            offered = ", ".join(LANGUAGE_NAMES.get(c, c) for c in self.game.languages()) or "aucune"
            msg = f"langue {language!r} non traduite dans ce jeu (langues : {offered})"
            raise EngineError(msg, en=f"language {language!r} has no translation in this game")
        current, had_children = self.profile, self.children
        self.profile = GroupProfile(
            low_literacy=current.low_literacy if low_literacy is None else low_literacy,
            language=current.language if language is False else language or None,
            hard_of_hearing=current.hard_of_hearing if hard_of_hearing is None else hard_of_hearing)
        if children is not None:
            self.children = children
        if (self.profile, self.children) != (current, had_children):   # the log says what changed
            self.audit("profile", who=who, detail=self.profile.summary(self.children))

    def take_journal(self) -> list[tuple[str, dict[str, Any]]]:
        """The notes and audit entries since the last call (for the store)."""
        journal, self._journal = self._journal, []
        return journal
