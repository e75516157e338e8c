"""Every answer of the controller's API, as a model (what ``/openapi.json`` shows).

One place, as the FastAPI template keeps its models: the routes name them in
``response_model``; :mod:`controller.views` builds the WebSocket snapshot, the room
screens' view and the retained ``game/state`` with the same :class:`Message`,
:class:`ScreenClue` and :class:`Clue`. The field names are what the pages read: renaming
one breaks a page.

Every model forbids fields it does not declare: an answer that grew a field the model
does not know fails the tests (a 500), it never leaves the schema silently.

Longer than most modules on purpose: declarations only, no logic, one place to read
every answer's shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from config.game import DEFAULT_CLUE_ICON
from protocol.contract import NodeHealth


class Out(BaseModel):
    """An answer: exactly the fields declared, read from dicts or objects."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


# -- what room screens show (also in game/state and the staff's snapshot) -----------------
class Message(Out):
    """A text shown on a room screen (``room`` None: on every screen)."""

    text: str
    text_en: str | None = None
    room: str | None = None
    sound: str | None = None


class ScreenClue(Out):
    """A clue as a room screen shows it."""

    id: str
    text: str
    text_en: str | None
    room: str | None = Field(description="node id of the room screen; null: every screen")
    status: Literal["sent", "shown"] = Field(description="shown: the screen said it displayed it")


class Clue(ScreenClue):
    """A clue sent during the game, as the staff sees it."""

    puzzle: str | None
    index: int | None = Field(description="a pre-written clue of the puzzle; null: a free text")
    counts: bool = Field(description="counts in the game's clues (and costs its cost)")
    cost: int
    who: str
    sent_at: float = Field(description="run time when it was sent (s)")
    sent_wall: float
    shown_wall: float | None


MESSAGES: TypeAdapter[list[Message]] = TypeAdapter(list[Message])
SCREEN_CLUES: TypeAdapter[list[ScreenClue]] = TypeAdapter(list[ScreenClue])
CLUES: TypeAdapter[list[Clue]] = TypeAdapter(list[Clue])


def dump(adapter: TypeAdapter[Any], items: Any) -> Any:
    """*items* (objects with the model's attributes) as the model dumps them (JSON-able)."""
    return adapter.dump_python(adapter.validate_python(items, from_attributes=True))


# -- the game (the engine's state) ---------------------------------------------------------
#: what a budget line is, beyond a puzzle's action (``controller.engine.LineKind``)
LineKind = Literal["paid", "charged", "late_fee", "clue", "cancel"]


class BudgetLine(Out):
    amount: int
    label: str
    label_en: str | None = None
    at: float = Field(description="run time (s)")
    puzzle: str | None
    obligation: str | None = Field(default=None, description="the bill it pays, charges or gives back")
    kind: LineKind | None = None


class Bill(Out):
    """A bill of the month (``apartment.budget.obligations``) as it stands."""

    id: str
    label: str
    label_en: str | None
    icon: str
    amount: int = Field(description="euros the month owes for it")
    unpaid: int = Field(description="of which not paid by the players' puzzles")
    late_fee: int = Field(description="added when it is charged at the end")
    status: Literal["paid", "due", "charged"] = Field(
        description="due: the game goes on; charged: unpaid at the end, charged with its late fee")


class Month(Out):
    """The month in three figures, for a picture: income against spending, what is left."""

    income: int = Field(description="the month's start and every gain")
    spent: int
    left: int


class LastChange(Out):
    """The last move of the budget and its reason (« −620 € Loyer payé »)."""

    amount: int
    label: str
    label_en: str | None


class PuzzleView(Out):
    id: str
    label: str
    label_en: str | None
    theme: str
    room: str
    status: Literal["locked", "available", "solved"]
    in_parcours: bool
    available_at: float | None
    solved_at: float | None
    solved_by: str
    clues: int = Field(description="pre-written clues it has")


class CheckOverride(Out):
    who: str
    reason: str
    not_ready: list[str]
    at: float


class AuditEntry(Out):
    at: float
    elapsed: float | None
    who: str
    action: str
    target: str | None
    detail: str | None
    session: str | None


class LogEntry(Out):
    at: float | None
    kind: str
    text: str | None
    wall: float
    session: str | None


class GameView(Out):
    """The game as the engine holds it: phase, timer, budget, puzzles, clues, journal."""

    session: str | None
    phase: str
    phase_label: str
    parcours: str
    players: int
    children: bool
    duration_s: float
    elapsed_s: float
    remaining_s: float
    result: str | None
    started_wall: float | None
    ended_wall: float | None
    budget: int
    budget_start: int
    budget_history: list[BudgetLine]
    bills: list[Bill]
    month: Month
    puzzles: list[PuzzleView]
    messages: list[Message]
    clues: list[Clue]
    clue_count: int
    alert: Literal["warning", "alert"] | None = Field(description="no prop moved for a while")
    idle_s: float
    check_override: CheckOverride | None
    audit: list[AuditEntry]
    log: list[LogEntry]
    profile: Profile | None = Field(default=None, description="the group's profile")


class Profile(Out):
    """The group's profile: how the room screens render cues (docs/media.md)."""

    children: bool
    low_literacy: bool = Field(description="reads little French: larger text, short wording, spoken")
    language: Literal["en", "ar", "pt", "tr"] | None = Field(
        description="the explanations in this language too (null: French only)")
    hard_of_hearing: bool = Field(description="every voice subtitled, a flash for chime and sounds")


class Language(Out):
    code: str
    name: str = Field(description="in French: « arabe »")


class ProfileView(Out):
    """The group's profile and the languages the game file is translated into."""

    profile: Profile
    languages: list[Language]


class Said(Out):
    """A text of the game as a room screen shows it for the group's profile."""

    text: str = Field(description="what to show, big")
    lang: str = Field(description="its language")
    dir: Literal["ltr", "rtl"]
    fr: str | None = Field(description="the French, shown small beneath (null: text is French)")


class ScreenProfile(Profile):
    dir: Literal["ltr", "rtl"] = Field(description="the direction of the profile's language")


# -- nodes, props, the pre-game check ------------------------------------------------------
class GameRefusalView(Out):
    hash: str
    reason: str = Field(description="why the node could not apply it, in its words")


class NodeGameView(Out):
    """A node's part of the game file against the one it was sent (controller/distribution.py)."""

    expected: str | None = Field(description="hash of the part the controller sent it")
    running: str | None = Field(description="hash of the part it says it runs")
    pending: str | None = Field(description="a part it keeps for the end of the game")
    status: Literal["same", "waiting", "pending", "refused", "unknown", "offline"]
    refused: GameRefusalView | None
    software_differs: bool = Field(description="its software version is not the controller's")


class PendingGameView(Out):
    hash: str
    source: str
    who: str
    since: float


class GameFileView(Out):
    """The game file the controller holds, and one waiting for the end of the session."""

    hash: str
    source: str | None
    software: str = Field(description="the controller's software version")
    pending: PendingGameView | None


class NodeView(Out):
    id: str
    label: str
    label_en: str | None
    online: bool
    boot_id: str | None
    boot_n: int | None
    version: str | None
    simulated: bool | None
    last_seen: float | None
    booted_at: float | None
    reboots: int
    offline_reason: Literal["will", "silent"] | None
    keepalive: float | None
    heartbeat_late: bool
    autonomous: bool | None
    outbox: int | None
    clock_offset: float | None = Field(description="the node's clock minus the controller's (s)")
    clock_skewed: bool
    game: NodeGameView | None = None
    health: NodeHealth | None = Field(description="the Pi's last health report (its heartbeat's)")
    health_at: float | None = Field(description="when it came (the controller's clock)")
    health_problems: list[HealthProblem] = Field(description="controller/health.py's verdict, worst first")


class LastEvent(Out):
    type: str
    value: JsonValue
    ts: float


class DesiredView(Out):
    """The state the controller wants an output in, and whether its node confirmed it."""

    action: str
    command_id: str
    confirmed: bool = Field(description="the node reported it on this broker connection")
    pending_s: float | None
    overdue: bool = Field(description="not confirmed within 1 s: a red alert on the console")
    attempts: int
    relock_pending: bool = Field(description="opened by a node reboot: waits for the game master")


class PropView(Out):
    node: str
    id: str
    kind: str
    label: str
    reported: dict[str, JsonValue]
    ack: str | None
    last_event: LastEvent | None
    desired: DesiredView | None = None


class Instruction(Out):
    key: str
    text: str
    vars: dict[str, str]


class PropCheck(Out):
    node: str
    prop: str
    kind: str
    label: str
    status: Literal["ready", "reset_sent", "needs_reset", "waiting_node", "manual_reset"]
    status_label: str
    detail: str
    instruction: Instruction | None


class NodeCheck(Out):
    """A node that does not run its part of the game file: the check waits for it."""

    node: str
    label: str
    status: Literal["waiting", "pending", "refused", "unknown"]
    instruction: Instruction


class CheckReport(Out):
    """Where every prop stands against its start state, and every node against its part."""

    ready: bool
    counts: dict[str, int]
    not_ready: list[str]
    props: list[PropCheck]
    nodes: list[NodeCheck] = Field(default_factory=list)


class CheckAnswer(CheckReport):
    phase: str


# -- lock orders and the emergency ---------------------------------------------------------
class Lock(Out):
    node: str
    prop: str
    name: str = Field(description="« Ventouse du coffre (Chambre) »")
    label: str
    room: str
    action: str | None


class ConfirmedLock(Lock):
    ms: int = Field(description="from the order to the node's report")


class UnconfirmedLock(Lock):
    reason: Literal["broker", "offline", "no_answer"]
    pending_s: float | None
    attempts: int


class EmergencyView(Out):
    active: bool
    id: str
    who: str
    ts: float


class EmergencyAnswer(Out):
    confirmed: list[ConfirmedLock]
    unconfirmed: list[UnconfirmedLock]
    all_confirmed: bool
    mqtt: bool = Field(description="the broker was reachable")
    message: str
    emergency: EmergencyView | None


class EmergencyEnded(Out):
    emergency: EmergencyView | None
    message: str


class CommandSent(Out):
    command_id: str


class _LockOrder(Out):
    command_id: str
    mqtt: bool
    message: str


class LockOrderConfirmed(_LockOrder, ConfirmedLock):
    confirmed: Literal[True]


class LockOrderPending(_LockOrder, UnconfirmedLock):
    confirmed: Literal[False]


# -- the whole state: staff snapshot and room screens --------------------------------------
class Recovered(Out):
    rows: int
    waited_s: float
    at: float
    failures: int


class HealthProblem(Out):
    """A reading past its threshold (controller/health.py); the pages say it in words
    (i18n ``health_<code>``, with ``value`` and ``limit``)."""

    code: str
    severity: Literal["warn", "bad"]
    value: float | None
    limit: float | None
    prop: str | None = Field(description="the RFID reader, for read_errors")


class Notice(Out):
    """Something the game master should know before the next session (never shown during
    one): a node's ``bad`` health problem, or a failed backup."""

    kind: Literal["health", "backup"]
    code: str
    severity: Literal["warn", "bad"]
    node: str | None = None
    label: str | None = None
    value: float | None = None
    limit: float | None = None
    prop: str | None = None
    detail: str | None = Field(default=None, description="why a backup failed (French)")


class LastBackup(Out):
    at: float
    reason: str = Field(description="nightly, or the session it followed")
    path: str
    sessions: int | None
    bytes: int
    seconds: float


class BackupHealth(Out):
    """The session store's backups (controller/backup.py)."""

    ok: bool
    error: str | None
    failed_at: float | None
    directory: str
    last: LastBackup | None
    taken: int
    failures: int
    next_nightly: float | None
    running: bool


class StoreHealth(Out):
    ok: bool
    error: str | None
    waiting: int
    since: float | None
    failing_s: float | None
    retry_s: float | None
    failures: int
    rejected: int
    dropped: int
    recovered: Recovered | None


class Health(Out):
    ok: bool
    status: Literal["ok", "degraded"]
    mqtt: bool
    store: StoreHealth


class Resumed(Out):
    session: str | None
    clean: bool
    phase: str


class MqttView(Out):
    connected: bool
    metrics: dict[str, int]


class Apartment(Out):
    id: str
    name: str


class Try(Out):
    """An event on a puzzle's prop: a code typed, a tag presented, a button pressed."""

    at: float = Field(description="run time (s)")
    node: str
    prop: str
    type: str
    value: JsonValue
    tag: str | None = Field(description="the game file's name of the tag presented, if known")


class StuckPuzzle(Out):
    """A puzzle open now, and what the group did on it (controller/stuck.py)."""

    puzzle: str
    available_at: float = Field(description="run time it opened at (s)")
    progress_at: float = Field(description="run time of its last step forward, or its opening (s)")
    tries: list[Try] = Field(description="the latest events that could solve it, oldest first")
    touched: Try | None = Field(description="the last event of any kind on its props")
    hint_due: bool = Field(description="no progress for apartment.hint_after_min: suggest a clue")
    longest: bool = Field(description="the puzzle open the longest")


class RelockLock(Out):
    """A lock « Reprendre et reverrouiller » would lock again."""

    node: str
    prop: str
    label: str
    room: str
    exit_door: bool = Field(description="relocked only when the game master ticks it")


class Snapshot(Out):
    """What the game master and the technician see (``GET /api/state``, the WebSocket)."""

    game: GameView
    nodes: list[NodeView]
    props: list[PropView]
    check: CheckReport
    emergency: EmergencyView | None
    lock_alerts: list[UnconfirmedLock]
    stuck: list[StuckPuzzle]
    relock: list[RelockLock]
    hint_after_s: int = Field(description="apartment.hint_after_min, in seconds")
    resumed: Resumed | None
    store: StoreHealth
    backup: BackupHealth
    notices: list[Notice]
    mqtt: MqttView
    apartment: Apartment
    demo: bool
    ts: float
    game_file: GameFileView | None = None
    media: MixView | None = Field(default=None, description="each room's volume, the mute, what "
                                  "each screen says it plays")


class RoomClue(ScreenClue):
    """A clue as a room screen shows it, and whether it still matters."""

    done: bool = Field(description="its puzzle is solved: an old clue, no longer shown as new")
    icon: str = Field(default=DEFAULT_CLUE_ICON, description="the pictogram shown big with it (icon: in "
                                                             "the game file, a default one otherwise)")
    voice_url: str | None = Field(default=None, description="its recorded voice (voice: in the game "
                                                            "file); null: spoken by speech synthesis")


class ScreenSubtitles(Out):
    """A WebVTT track of a video, as a screen loads it."""

    lang: str = Field(description="its language (fr, en…)")
    file: str
    url: str


class ScreenCue(Out):
    """A sound or video for this screen to play once (``id`` grows through a game)."""

    id: int
    kind: Literal["sound", "video", "stop"] = Field(description="stop: silence this screen")
    file: str
    url: str | None = Field(description="where to load it; null: no longer in the library (or stop)")
    volume: float = Field(ge=0, le=1)
    loop: bool
    at: float = Field(description="elapsed run time when it was cued, seconds")
    subtitles: list[ScreenSubtitles] = Field(default_factory=list, description="a video's subtitles, "
                                             "the first shown by default")
    event: str | None = Field(default=None, description="the game event whose sound this is "
                              "(clue_chime: a clue's voice waits for it to end); null: an action's "
                              "or the game master's")


class ScreenMedia(Out):
    """A file this screen may be asked to play: loaded before it is (kept if the network drops)."""

    file: str
    url: str


class ScreenMusic(Out):
    """The music this screen plays now, in a loop, for the moment of the game."""

    moment: Literal["welcome", "game", "last_minutes", "victory", "defeat"]
    file: str
    url: str
    volume: float = Field(ge=0, le=1)


class ScreenGame(Out):
    phase: str
    result: str | None
    remaining_s: float
    duration_s: float
    timer_running: bool = Field(description="the timer counts down (the screen counts between pushes)")
    budget: int
    budget_start: int
    month: Month
    last_change: LastChange | None
    bills: list[Bill]
    messages: list[Message]
    clues: list[RoomClue]
    cues: list[ScreenCue] = Field(default_factory=list, description="the newest sounds and videos "
                                  "cued for this screen")
    preload: list[ScreenMedia] = Field(default_factory=list, description="the files the game file "
                                       "may cue on this screen: loaded in advance")
    music: ScreenMusic | None = Field(default=None, description="the room's music now (null: none)")
    emergency: bool = Field(description="the emergency alert is on: everybody out")
    elapsed_s: float = Field(default=0.0, description="elapsed run time now, seconds (a cue's "
                             "age is this minus its at)")
    clue_chime: bool = Field(default=False, description="a clue's chime is a sound of the game "
                             "file (a cue), not the screen's beep")
    sound: ScreenSound | None = Field(default=None, description="the room's volume and the mute, "
                                      "applied to everything the screen plays")


class ScreenNode(Out):
    id: str
    label: str
    label_en: str | None = None


class ScreenApartment(Out):
    name: str
    name_en: str | None = None


class ScreenView(Out):
    """What a room screen sees, and nothing more."""

    screen: Literal[True]
    room: str | None
    game: ScreenGame
    nodes: list[ScreenNode]
    apartment: ScreenApartment
    ts: float
    debrief: DebriefSteps | None = Field(default=None, description="in the debrief phase: the "
                                         "debrief's page the game master shows")
    profile: ScreenProfile | None = Field(default=None, description="the group's profile")
    say: dict[str, Said] = Field(
        default_factory=dict, description="each French text of this view (a clue, a room's name, "
        "a bill…) → how to show it for the group's profile; a text not here is shown as it is")


class GameStateMessage(Out):
    """The retained ``game/state`` (MQTT): for room screens and monitoring."""

    v: Literal[1]
    phase: str
    session: str | None
    parcours: str
    remaining_s: float
    duration_s: float
    budget: int
    messages: list[Message]
    clues: list[ScreenClue]
    clue_count: int
    alert: Literal["warning", "alert"] | None
    ts: float


# -- clues ----------------------------------------------------------------------------------
class CatalogueClue(Out):
    index: int
    text: str
    text_en: str | None
    cost: int
    sent: int = Field(description="how many times it was sent in this game")


class CataloguePuzzle(Out):
    puzzle: str
    label: str
    room: str
    status: str
    clues: list[CatalogueClue]


class Clues(Out):
    catalogue: list[CataloguePuzzle]
    sent: list[Clue]
    clue_count: int


class ClueSent(Out):
    clue: Clue
    clue_count: int
    budget: int


class ClueShown(Out):
    clue: Clue


# -- history and debrief --------------------------------------------------------------------
class EvaluationView(Out):
    rating: int
    learned: list[str]
    comment: str
    who: str
    at: float


class SessionRow(Out):
    """A played session, as the history lists it."""

    id: str
    apartment: str
    created_at: float
    date: str
    parcours: str
    players: int
    children: bool
    started_at: float | None
    ended_at: float | None
    result: str | None
    phase: str
    closed: bool
    duration_s: float | None
    time_used_s: float | None
    clues: int
    clues_sent: int
    budget_start: int | None
    final_budget: int | None
    check_override: str | None
    updated_at: float
    puzzles_solved: int
    puzzles: int
    rating: int | None
    learned: list[str] | None
    comment: str | None
    result_label: str | None
    started: str
    ended: str
    time_used: str


class Sessions(Out):
    sessions: list[SessionRow]
    limit: int
    offset: int


class PuzzleResult(Out):
    session_id: str
    puzzle_id: str
    position: int
    label: str
    theme: str | None
    room: str | None
    status: str
    available_at_s: float | None
    solved_at_s: float | None
    duration_s: float | None
    solved_by: str | None
    clues: int


class BudgetRow(Out):
    seq: int
    at_s: float
    amount: int
    label: str
    label_en: str | None = None
    puzzle: str | None
    obligation: str | None = Field(default=None, description="the bill it pays or charges")
    kind: LineKind | None = None


class ClueRow(Out):
    session_id: str
    id: str
    seq: int
    puzzle: str | None
    idx: int | None
    text: str
    room: str | None
    counts: bool
    cost: int
    who: str | None
    sent_at_s: float
    sent_wall: float
    shown_wall: float | None


class AuditRow(Out):
    at: float
    elapsed_s: float | None
    who: str
    action: str
    target: str | None
    detail: str | None


class SessionDetail(SessionRow):
    """One session with its puzzles, budget lines, clues, audit log and evaluation."""

    puzzles_detail: list[PuzzleResult]
    budget_lines: list[BudgetRow]
    clues_detail: list[ClueRow]
    audit: list[AuditRow]
    events: int = Field(description="how many prop events it had")
    evaluation: EvaluationView | None


class EventRow(Out):
    at: float
    elapsed_s: float | None
    kind: str
    node: str | None
    prop: str | None
    type: str | None
    value: JsonValue
    text: str | None


class SessionEvents(Out):
    session: str
    events: list[EventRow]


class Results(Out):
    won: int
    lost: int
    aborted: int
    in_progress: int


class ParcoursStats(Out):
    parcours: str
    sessions: int
    participants: int
    won: int | None


class EvaluationStats(Out):
    count: int
    average_rating: float | None
    learned: dict[str, int]


class PuzzleStats(Out):
    id: str
    label: str | None
    theme: str | None
    icon: str | None = None
    title: str | None = Field(default=None, description="the theme's name (config/sheet.yaml)")
    title_en: str | None = None
    sessions: int
    solved: int | None
    solved_by_players: int | None
    solve_rate: float | None
    average_time_s: float | None
    median_time_s: float | None
    average_clues: float | None
    clues: int | None


class Stats(Out):
    sessions: int
    participants: int
    sessions_with_children: int
    results: Results
    success_rate: float | None
    average_time_s: float | None
    average_time_won_s: float | None
    average_clues: float | None
    average_final_budget: float | None
    per_parcours: list[ParcoursStats]
    evaluations: EvaluationStats
    puzzles: list[PuzzleStats]
    debrief: DebriefAnswers = Field(description="what the groups said at the debrief: how many "
                                    "picked each feeling and each thing to do at home")


class DebriefSession(Out):
    id: str | None
    date: str | None
    parcours: str | None
    players: int | None
    children: bool | None
    started: str | None
    ended: str | None
    started_at: float | None
    ended_at: float | None
    result: str | None
    result_label: str | None
    phase: str | None
    closed: bool | None
    duration_s: float | None
    time_used_s: float | None
    time_used: str | None
    check_override: str | None


class DebriefPuzzle(Out):
    id: str
    label: str
    label_en: str
    theme: str | None
    room: str | None
    room_label: str | None
    room_label_en: str | None
    outcome: Literal["solved", "forced", "skipped", "unsolved", "not_reached"]
    solved_by: str | None
    available_at_s: float | None
    solved_at_s: float | None
    time_s: float | None
    clues: int
    budget: int


class DebriefTheme(Out):
    theme: str | None
    icon: str | None = Field(description="the theme's pictogram (config/sheet.yaml)")
    title: str = Field(description="the theme's name (config/sheet.yaml; its id when the file is unreadable)")
    title_en: str = Field(description="the name in English (the French one when the file has none)")
    puzzles: list[DebriefPuzzle]
    total: int
    solved: int
    forced: int
    skipped: int
    unsolved: int
    not_reached: int
    time_s: float | None
    clues: int
    budget: int


class BalanceLine(Out):
    at_s: float | None
    amount: int
    label: str
    label_en: str = Field(description="the line in English (the French one when the game file has none)")
    puzzle: str | None
    clue: bool
    obligation: str | None = Field(default=None, description="the bill it pays or charges")
    kind: LineKind | None = None
    balance: int


class DebriefBill(Out):
    """A bill of the month at the debrief: paid in the game, or charged at the end and why."""

    id: str
    label: str
    label_en: str
    icon: str
    status: Literal["paid", "charged", "due"]
    paid: int = Field(description="euros paid by the players' puzzles")
    charged: int = Field(description="euros charged at the end, unpaid")
    late_fee: int = Field(description="euros of late fee charged with it")
    late_fee_label: str | None
    late_fee_label_en: str | None
    consequence: str | None = Field(description="what an unpaid bill leads to")
    consequence_en: str | None


class DebriefBudget(Out):
    start: int | None
    final: int | None
    change: int | None
    history: list[BalanceLine]
    month: Month
    bills: list[DebriefBill]
    late: int = Field(description="euros charged at the end for unpaid bills, late fees included")


class Debrief(Out):
    """What the group did, theme by theme, its clues and its budget."""

    session: DebriefSession
    puzzles_total: int
    solved: int
    forced: int
    skipped: int
    unsolved: int
    not_reached: int
    clues: int
    clues_sent: int
    clues_free: int
    clue_cost: int
    budget: DebriefBudget
    themes: list[DebriefTheme]
    puzzles: list[DebriefPuzzle]
    evaluation: EvaluationView | None


# -- technician, rehearsal, configuration, access -------------------------------------------
class SelfTest(Out):
    node: str
    prop: str
    ok: bool
    steps: list[JsonValue] = Field(description="what the node did, step by step")
    message: str


class Enrolled(Out):
    node: str
    prop: str
    ok: bool
    uid: str | None
    name: str | None
    message: str
    yaml: str | None = Field(description="the lines to paste under the prop's tags: in the game file")


class EnrolledTag(Out):
    node: str
    prop: str
    uid: str
    name: str
    at: float
    who: str


class EnrolledTags(Out):
    tags: list[EnrolledTag]


class GestureSent(Out):
    gesture_id: str


class Reloaded(Out):
    status: Literal["reloaded", "unchanged", "pending"] = Field(
        description="pending: a session is open; taken as soon as it is over")
    path: str
    warnings: list[str]
    nodes: list[str] = Field(description="nodes sent their new part (or, pending, to be)")
    game: str = Field(description="the hash of the file's content")


class LayoutProp(Out):
    id: str
    kind: str
    label: str
    tags: dict[str, str]
    bins: list[str]
    door_sensor: bool
    gestures: list[str]


class LayoutNode(Out):
    id: str
    label: str
    label_en: str | None
    props: list[LayoutProp]


class SolutionStep(Out):
    """One event that solves a puzzle (or a part of it), for the rehearsal."""

    prop: str = Field(description="node.prop")
    label: str = Field(description="the prop's name")
    room: str = Field(description="its room's name")
    event: str
    value: JsonValue = Field(description="the value it must have (a list: one of them; null: any)")
    tag: str | None = Field(description="the game file's name of the tag, when the value is one")
    min_value: float | None


class LayoutPuzzle(Out):
    id: str
    label: str
    label_en: str | None
    room: str
    parcours: list[str]
    order: Literal["one", "all", "sequence"] = Field(description="all: any order; sequence: in order")
    solution: dict[str, list[SolutionStep]] = Field(description="per parcours")


class Layout(Out):
    apartment: str
    demo: bool
    nodes: list[LayoutNode]
    puzzles: list[LayoutPuzzle]


class LoggedIn(Out):
    role: str


class LoggedOut(Out):
    ok: bool


class Me(Out):
    role: str
    room: str | None


# -- the year's calendar and the follow-up calls ----------------------------------------------
class PlannedGroup(Out):
    """A group registered ahead on a planned session."""

    id: int
    adults: int
    children: int
    households: int
    tenancy: Literal["primo", "locataire"] = Field(
        description="primo: first-time tenant (primo-accédant); locataire: current tenant")
    referral: Literal["osica_cal", "ccas", "mds", "service_habitat", "autre"]
    referral_label: str
    referral_label_en: str
    first_visit: bool


class PlannedSession(Out):
    """A session of the year's calendar, with the groups registered on it."""

    id: int
    date: str = Field(description="YYYY-MM-DD")
    time: str = Field(description="HH:MM, local time")
    game_master: str
    parcours: Literal["primo", "locataire"]
    note: str
    session_id: str | None = Field(description="the game session it was started as; null: not yet")
    groups: list[PlannedGroup]
    adults: int
    children: int
    households: int
    players: int = Field(description="adults and children")
    places_left: int
    max_players: int


class PlannedSessions(Out):
    sessions: list[PlannedSession]
    max_players: int | None = Field(default=None, description="the apartment's limit, children included")
    today: str | None = Field(default=None, description="the controller's date (YYYY-MM-DD)")


class PlanCancelled(Out):
    ok: bool


class FollowupContact(Out):
    """A household's consent to be called back, as the staff sees it."""

    id: int
    session_id: str
    session_date: str
    phone: str | None = Field(description="null once erased (called, 3 months old, on request, or restored "
                                          "from a backup: backups keep no number)")
    consent: bool
    given_at: float
    due_at: float = Field(description="when the call is due (one month after)")
    erase_at: float = Field(description="when the number is erased whatever happens (3 months after)")
    called_at: float | None
    erased_at: float | None = Field(
        description="when the number was erased (restore: when the copy was made)")
    erased_why: str | None = Field(
        description="called, retention (3 months), request (the household's), or restore (the store came "
                    "back from a backup: none keeps a number)")
    answers: dict[str, JsonValue]


class FollowupContacts(Out):
    contacts: list[FollowupContact]


class FollowupQuestion(Out):
    id: str
    kind: Literal["scale", "yes_no", "choice", "text"]
    text: str
    text_en: str
    options: list[str]
    options_en: list[str]


class Questionnaire(Out):
    purpose: str
    purpose_en: str
    questions: list[FollowupQuestion]


class FollowupExport(Out):
    """Everything kept about one household's follow-up (the right of access)."""

    contact: FollowupContact
    audit: list[AuditRow]


class FollowupErased(Out):
    id: int
    erased_at: float


# -- the media library (controller/media.py) and speech (controller/speech.py) ------------
class MediaItem(Out):
    """One sound or video of the library, under the name a game file gives it."""

    name: str = Field(description="what a game file's do: sound / do: video names")
    kind: Literal["audio", "video", "subtitles"]
    format: str = Field(description="the container read from the content (WAV, MP3, …)")
    mime: str
    bytes: int
    duration_s: float
    hash: str = Field(description="SHA-256 of the content")
    shipped: bool = Field(description="shipped with the game (cannot be deleted)")
    added: float | None = Field(description="when it was uploaded (Unix time); null: shipped")
    url: str = Field(description="where screens load it: named by its content, cached for ever")


class MediaList(Out):
    files: list[MediaItem]
    max_bytes: int
    max_duration_s: int
    accepted: str


class MediaDeleted(Out):
    deleted: str


class MediaCued(Out):
    """A sound or video the game master played (or a stop), as the screens get it."""

    id: int
    kind: Literal["sound", "video", "stop"]
    file: str
    rooms: list[str] | None = Field(description="null: every screen")


class SpeechStatus(Out):
    available: bool = Field(description="espeak-ng is installed on the controller")
    voice: str
    rate_wpm: int


# -- the debrief that teaches, step by step (controller/debrief_steps.py) ---------------------
Outcome = Literal["solved", "forced", "skipped", "unsolved", "not_reached"]


class StepLine(Out):
    """A budget line as a debrief page shows it, with the balance after it."""

    at_s: float | None
    amount: int
    label: str
    label_en: str
    puzzle: str | None
    obligation: str | None
    kind: LineKind | None
    balance: int


class StepBill(Out):
    id: str
    label: str
    label_en: str
    icon: str
    status: Literal["paid", "charged", "due"]
    paid: int
    charged: int
    late_fee: int


class StepTop(Out):
    start: int | None
    final: int | None
    change: int | None


class StepChoice(Out):
    """A pictogram the group picks from, and how many picked it."""

    id: str
    icon: str
    label: str
    label_en: str = Field(description="the label in English (the French one when the file has none)")
    count: int


class FeelingsPage(Out):
    """Step 1, « Comment ça s'est passé pour vous ? »."""

    kind: Literal["feelings"]
    budget: StepTop
    result: str | None
    time_used_s: float | None
    solved: int
    puzzles_total: int
    choices: list[StepChoice]


class StoryEvent(Out):
    kind: Literal["start", "puzzle", "end"]
    at_s: float | None
    label: str | None = None
    label_en: str | None = None
    room: str | None = None
    room_en: str | None = None
    outcome: Outcome | None = None
    clues: int | None = None
    theme: str | None = None
    result: str | None = None
    not_reached: int | None = None
    lines: list[StepLine]


class StoryPage(Out):
    """Step 2, « Ce qui s'est passé »: the game in the order it happened."""

    kind: Literal["story"]
    budget: StepTop
    events: list[StoryEvent]


class ThemePuzzle(Out):
    label: str
    label_en: str
    room: str | None
    room_en: str | None
    outcome: Outcome
    clues: int
    time_s: float | None


class ThemeContact(Out):
    icon: str
    who: str
    who_en: str
    phone: str
    example: bool


class ThemePage(Out):
    """Step 3, « Ce que vous avez appris », one theme: its puzzles, its budget lines, its
    practical message and who to call."""

    kind: Literal["theme"]
    theme: str
    icon: str
    title: str
    title_en: str
    message: str
    message_en: str = Field(description="the message in English (the French one when the file has none)")
    advice: str
    advice_en: str
    index: int = Field(description="this theme's rank among the session's, from 1")
    of: int
    puzzles: list[ThemePuzzle]
    lines: list[StepLine]
    total: int = Field(description="what the theme's lines did to the budget, in euros")
    bills: list[StepBill]
    contacts: list[ThemeContact]


class HomeTheme(Out):
    theme: str
    icon: str
    title: str
    title_en: str
    choices: list[StepChoice]


class HomePage(Out):
    """Step 4, « Et chez vous ? »: what the households will do at home, and the whole month."""

    kind: Literal["home"]
    budget: StepTop
    month: Month
    lines: list[StepLine]
    bills: list[StepBill]
    themes: list[HomeTheme]


class StepPage(Out):
    step: int = Field(ge=1, le=4)
    kind: Literal["feelings", "story", "theme", "home"]
    theme: str | None
    icon: str | None
    title: str | None
    title_en: str | None


class DebriefAnswers(Out):
    feelings: dict[str, int]
    at_home: dict[str, int]


class DebriefSteps(Out):
    """A session's debrief, step by step: the pages, the one shown, what the group answered."""

    session: str
    ended: bool
    players: int
    page: int = Field(description="the page shown, from 0")
    step: int = Field(ge=1, le=4)
    pages: list[StepPage]
    content: FeelingsPage | StoryPage | ThemePage | HomePage = Field(discriminator="kind")
    answers: DebriefAnswers
# -- the year's impact report (controller/report.py) ------------------------------------------
class ReportPeriod(Out):
    from_: str = Field(alias="from", serialization_alias="from", description="first day, YYYY-MM-DD")
    to: str = Field(description="last day, YYYY-MM-DD")
    label: str = Field(description="« année 2026 », or the range in words")


class ReportSessions(Out):
    planned: int = Field(description="sessions of the calendar in the period")
    held: int = Field(description="sessions whose run started in the period (planned or not)")
    target: int = Field(description="the sessions the action promises (24 a year)")
    planned_held: int
    planned_not_held: int = Field(description="planned in the period, never played")
    unplanned: int = Field(description="held without a planned session")
    of_target: float | None = Field(description="held / target")


class ReportParticipants(Out):
    people: int = Field(description="players of the sessions held (what the game was started with)")
    adults: int = Field(description="adults of the groups registered on the sessions held")
    children: int
    households: int
    groups: int
    first_visit_households: int
    first_visit_people: int
    unregistered_people: int = Field(description="players of sessions held without the calendar: "
                                                 "not split into adults, children, households")


class ReportReferral(Out):
    referral: Literal["osica_cal", "ccas", "mds", "service_habitat", "autre"]
    label: str
    groups: int
    households: int
    adults: int
    children: int
    people: int


class ReportParcours(Out):
    parcours: Literal["primo", "locataire"]
    label: str
    sessions: int
    people: int
    adults: int
    children: int
    households: int
    won: int


class ReportResults(Out):
    won: int
    lost: int = Field(description="time up")
    aborted: int = Field(description="stopped by the game master (an emergency, a fire drill…)")
    in_progress: int


class ReportSpread(Out):
    count: int
    median_s: float | None
    min_s: float | None
    max_s: float | None


class ReportTimes(Out):
    won: ReportSpread = Field(description="time used by the groups that won")
    finished: ReportSpread = Field(description="time used by every finished session")


class ReportPuzzle(Out):
    id: str
    label: str
    theme: str | None
    sessions: int
    reached: int
    solved: int
    solved_by_players: int
    clues: int
    clues_per_session: float | None = Field(description="clues per session that reached it")
    players_rate: float | None = Field(description="solved by the players themselves / reached")


class ReportTheme(Out):
    theme: str
    label: str
    groups: int = Field(description="groups that said they learned something on this theme")
    of_groups: int = Field(description="groups that answered the debrief's evaluation")


class ReportRatingCount(Out):
    rating: int
    count: int


class ReportRatings(Out):
    count: int
    mean: float | None
    distribution: list[ReportRatingCount]


class ReportAnswerCount(Out):
    answer: str
    count: int


class ReportQuestion(Out):
    id: str
    text: str
    kind: Literal["scale", "yes_no", "choice", "text"]
    answered: int
    answers: list[ReportAnswerCount] = Field(description="per offered answer; none for free text "
                                                         "(never shown: it may name people)")


class ReportFollowup(Out):
    contacts: int = Field(description="households that agreed to be called")
    called: int
    erased_uncalled: int
    questions: list[ReportQuestion]


class ReportMonth(Out):
    month: str = Field(description="YYYY-MM")
    label: str
    planned: int
    held: int


class ReportSessionRow(Out):
    """One session held, anonymised (no id, no game master, no comment)."""

    date: str
    parcours: str
    players: int
    planned: bool
    result: Literal["won", "lost", "aborted", "in_progress", "cancelled"]
    time_used_s: float | None
    clues: int
    rating: int | None


class ReportDebriefAnswer(Out):
    choice: str = Field(description="the pictogram's id (config/sheet.yaml)")
    label: str
    count: int = Field(description="how many people picked it, over the period")


class ReportDebriefStep(Out):
    step: Literal["feelings", "at_home"]
    label: str
    answers: list[ReportDebriefAnswer]


class YearReport(Out):
    """The year's impact report: counts and categories only."""

    period: ReportPeriod
    sessions: ReportSessions
    participants: ReportParticipants
    by_referral: list[ReportReferral]
    by_parcours: list[ReportParcours]
    results: ReportResults
    times: ReportTimes
    puzzles: list[ReportPuzzle] = Field(description="the hardest first")
    themes: list[ReportTheme]
    ratings: ReportRatings
    followup: ReportFollowup
    months: list[ReportMonth]
    table: list[ReportSessionRow]
    debrief: list[ReportDebriefStep] = Field(description="what the groups answered at the debrief's "
                                                         "steps; empty while the store keeps none")
    left_out: list[str] = Field(description="what the report never shows")
# -- the game master's hand on the screens' sound (controller/mixer.py) -------------------
class ScreenSound(Out):
    volume: float = Field(ge=0, le=1, description="the room's volume: every element's volume is "
                          "multiplied by it")
    muted: bool = Field(description="silence everything: music, cues, voices, chime")


class MixPlaying(Out):
    """One thing a screen said it plays (never guessed from the cues sent)."""

    file: str = Field(description="a name of the library; empty for a clue's voice")
    kind: Literal["music", "cue", "voice", "video"]
    paused: bool
    muted: bool
    volume: float = Field(description="the element's volume on the screen, room volume applied")
    since: float = Field(description="wall clock when it started, as the controller dates it")


class MixRoom(Out):
    room: str
    volume: float = Field(ge=0, le=1)
    screen: Literal["online", "offline"] = Field(description="offline: no report for "
                                                 "controller.mixer.SILENT_S (or never)")
    playing: list[MixPlaying]


class MixView(Out):
    """The console's « Sons et vidéos »: the mute, and per room its volume and what plays."""

    muted: bool
    rooms: list[MixRoom]


class PlayingHeard(Out):
    ok: bool
