"""The players and the game master: a step's intent, done to the apartment.

Players act on the props physically (``simulation/props.py``): they type codes, lay tags
on readers and take them off, drop things in bins, hold buttons, open windows and doors
(a door opens only while its maglock is off), press a room's emergency button. What to do
comes from the game file: :func:`solution` turns each puzzle's solve condition into the
gestures that meet it, for the parcours being played. Which puzzle is open is what the
players see: the game master's console while the controller runs, the last one seen else.

The game master acts through ``service.orders`` (the console's routes call the same
methods): move the session on (check → briefing → start; a finished game → the next
session's check), start with an override, pause, add time, send a clue, force a puzzle,
open or lock a lock, the emergency and its end, abort. An order the game refuses (the
wrong phase, the emergency on) changes nothing; one given while the controller is down is
not given at all. Between two sessions the game master's hands put the props back
(``tidy``: close a window, take a tag off, empty a bin).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from config.game import Condition, EventCondition, Game, Puzzle
from config.rules import resolve
from controller.core.errors import EngineError
from controller.engine import ENDED, PLAYING, Phase, PuzzleStatus
from props.models import KeypadConfig
from simulation.props import Contact, Keypad, Maglock, Reader, SimProp, Sorting
from simulation.scenario import Step

if TYPE_CHECKING:
    from simulation.apartment import Apartment
    from simulation.observer import Observer

#: (node, prop, gesture, value): one thing a hand does
Gesture = tuple[str, str, str, Any]
#: how long a hand holds a button it means to hold (past any ``hold_time`` of the game)
HOLD_S = 2.3
#: the orders that may lock a lock (the start state, a start, a lock, a puzzle reset)
LOCKING = frozenset({"begin_check", "start_game", "override", "lock", "reset_puzzle"})


def _gestures(game: Game, cond: EventCondition, parcours: str) -> list[Gesture]:  # noqa: PLR0911  (one return per kind)
    node, prop = cond.prop.split(".")
    found = game.prop(cond.prop)
    config = found[1] if found else None
    value = resolve(cond.equals, parcours)
    if isinstance(config, KeypadConfig) and cond.event == "code":
        code = str(value)
        enter = config.code_length is None or len(code) != config.code_length
        return [(node, prop, "keys", code + (config.enter_key if enter else ""))]
    if cond.event == "held":
        return [(node, prop, "hold", max(HOLD_S, (cond.min_value or 0) + 0.3))]
    if cond.event in ("press", "stepped_on", "closed"):
        return [(node, prop, "contact", True)]
    if cond.event in ("release", "stepped_off", "opened"):
        return [(node, prop, "contact", False)]
    if cond.event == "tag":
        return [(node, prop, "lay", value)]
    if cond.event == "placed" and isinstance(value, dict):
        return [(node, prop, "drop", (value["bin"], value["uid"]))]
    return []


def solution(game: Game, puzzle: Puzzle, parcours: str) -> list[Gesture]:
    """The gestures that solve *puzzle* in *parcours*, in order."""
    solve = puzzle.solve
    conds = solve.of if isinstance(solve, Condition) else [solve]
    return [g for cond in conds for g in _gestures(game, cond, parcours)]


class Actors:
    """Does the players' and the game master's steps to *flat*; tells *observer*."""

    def __init__(self, flat: Apartment, observer: Observer) -> None:
        self.flat, self.observer = flat, observer
        self.game = flat.game
        self.scheduler = flat.scheduler
        self.open_puzzles: list[str] = []
        self.parcours = "primo"
        self._progress: dict[tuple[str | None, str], int] = {}
        self.maglocks = [(n, p) for n, node in flat.nodes.items() for p in node.maglocks()]

    # -- what the players see ---------------------------------------------------------------
    def _look(self) -> None:
        service = self.flat.controller.service
        if service is None:
            return
        engine = service.engine
        self.parcours = engine.parcours
        self.open_puzzles = [pid for pid, st in engine.puzzles.items()
                             if st.status == PuzzleStatus.AVAILABLE] if engine.phase in PLAYING else []

    def prop(self, node: str, prop: str) -> SimProp:
        return self.flat.nodes[node].props[prop]

    def do(self, step: Step) -> str:
        """Do *step*; return what was done, in words (for the trace)."""
        self._look()
        method: Callable[[tuple[int, ...]], str] = getattr(self, f"{step.who}_{step.what}")
        return method(step.args)

    def gesture(self, gesture: Gesture, cause: int) -> str:
        node_id, prop_id, kind, value = gesture
        node = self.flat.nodes[node_id]
        prop = node.props[prop_id]
        node.cause = cause
        self.observer.hand(node_id, prop_id)
        self.flat.sources.enter(node.machine)
        try:
            if kind == "keys" and isinstance(prop, Keypad):
                for key in str(value):
                    prop.press(key)
            elif kind == "hold" and isinstance(prop, Contact):
                prop.set_active(True)
                self.scheduler.call_later(float(value), self._release, node_id, prop_id)
            elif kind == "contact" and isinstance(prop, Contact):
                prop.set_active(bool(value))
            elif kind == "lay" and isinstance(prop, Reader):
                prop.lay(value)
            elif kind == "drop" and isinstance(prop, Sorting):
                prop.drop(*value)
            elif kind == "door" and isinstance(prop, Maglock):
                prop.set_door(bool(value))
        finally:
            node.cause = None
        return f"{node_id}.{prop_id} {kind} {value!r}"

    def _release(self, node_id: str, prop_id: str) -> None:
        prop = self.prop(node_id, prop_id)
        if isinstance(prop, Contact):
            self.flat.sources.enter(self.flat.nodes[node_id].machine)
            prop.set_active(False)

    # -- the players -------------------------------------------------------------------------
    def player_solve(self, args: tuple[int, ...]) -> str:
        if not self.open_puzzles:
            return "nothing open to solve"
        pid = self.open_puzzles[args[0] % len(self.open_puzzles)]
        puzzle = self.game.puzzle(pid)
        assert puzzle is not None
        gestures = solution(self.game, puzzle, self.parcours)
        if not gestures:
            return f"{pid}: no gesture known"
        key = (self.observer.session, pid)
        index = self._progress.get(key, 0)
        self._progress[key] = index + 1
        cause = self.observer.cause(f"solve {pid}")
        return f"{pid} step {index % len(gestures) + 1}: " + self.gesture(
            gestures[index % len(gestures)], cause)

    def _of_kind(self, kinds: tuple[type[SimProp], ...]) -> list[tuple[str, str]]:
        return [(n, p) for n, node in self.flat.nodes.items() for p, prop in node.props.items()
                if isinstance(prop, kinds)]

    def player_wrong(self, args: tuple[int, ...]) -> str:
        props = self._of_kind((Keypad, Reader))
        node, prop = props[args[0] % len(props)]
        target = self.prop(node, prop)
        cause = self.observer.cause("wrong")
        if isinstance(target, Keypad):
            return self.gesture((node, prop, "keys", "9" * 4 + target.config.enter_key), cause)
        return self.gesture((node, prop, "lay", "ffffffff"), cause)

    def player_partial(self, args: tuple[int, ...]) -> str:
        props = self._of_kind((Keypad,))
        node, prop = props[args[0] % len(props)]
        return self.gesture((node, prop, "keys", "1"), self.observer.cause("partial"))

    def player_fiddle(self, args: tuple[int, ...]) -> str:
        props = self._of_kind((Contact, Reader, Sorting, Maglock))
        node, prop = props[args[0] % len(props)]
        target = self.prop(node, prop)
        cause = self.observer.cause("fiddle")
        if isinstance(target, Contact):
            return self.gesture((node, prop, "contact", not target.active), cause)
        if isinstance(target, Reader):
            tags = [None, *target.config.tags]
            return self.gesture((node, prop, "lay", tags[args[1] % len(tags)]), cause)
        if isinstance(target, Sorting):
            bins = list(target.config.bins)
            tags = [None, *target.config.tags]
            return self.gesture((node, prop, "drop", (bins[args[1] % len(bins)],
                                                      tags[args[0] % len(tags)])), cause)
        assert isinstance(target, Maglock)
        return self.gesture((node, prop, "door", not target.door_open), cause)

    def player_emergency(self, args: tuple[int, ...]) -> str:
        nodes = list(self.flat.nodes.values())
        node = nodes[args[0] % len(nodes)]
        if not node.running:
            return f"{node.id}: emergency button of a node that is down"
        node.press_emergency()
        self.observer.emergency_input(node.id)
        return f"{node.id}: emergency button pressed"

    # -- the game master's hands --------------------------------------------------------------
    def gm_tidy(self, args: tuple[int, ...]) -> str:
        """Put back one prop a hand must: a contact, a tag on a reader, a bin, a door."""
        off: list[Gesture] = []
        for n, node in self.flat.nodes.items():
            for p, prop in node.props.items():
                if isinstance(prop, Contact) and prop.active != prop.config.start_active:
                    off.append((n, p, "contact", prop.config.start_active))
                elif isinstance(prop, Reader) and prop.in_field is not None:
                    off.append((n, p, "lay", None))
                elif isinstance(prop, Sorting):
                    off += [(n, p, "drop", (b, None)) for b, uid in prop.in_bin.items() if uid]
                elif isinstance(prop, Maglock) and prop.door_open:
                    off.append((n, p, "door", False))
        if not off:
            return "nothing to put back"
        return "put back " + self.gesture(off[args[0] % len(off)], self.observer.cause("tidy"))

    # -- the game master's console ------------------------------------------------------------
    def _order(self, name: str, call: Callable[[], Any], *, keys: list[tuple[str, str]] | None = None) -> str:
        service = self.flat.controller.service
        if service is None:
            return f"{name}: the controller is down"
        self.flat.sources.enter(self.flat.controller.machine)
        try:
            call()
        except EngineError as exc:
            return f"{name} refused: {exc}"
        self.observer.order(name, keys=keys if name in LOCKING or name == "unlock" else None,
                            locking=name in LOCKING)
        return name

    def gm_next(self, args: tuple[int, ...]) -> str:
        service = self.flat.controller.service
        if service is None:
            return "next: the controller is down"
        orders, phase = service.orders, service.engine.phase
        if phase == Phase.CHECK:
            return self._order("brief", orders.brief)
        if phase == Phase.BRIEFING:
            return self._order("start_game", orders.start_game)
        if phase in PLAYING:
            return "next: the game runs"
        parcours = ("primo", "locataire")[args[0] % 2]
        return self._order("begin_check", lambda: orders.begin_check(parcours=parcours, players=4))

    def gm_override(self, _args: tuple[int, ...]) -> str:
        service = self.flat.controller.service
        if service is None or service.engine.phase in PLAYING:
            return "override: nothing to start"
        return self._order("override", lambda: service.orders.start_game(override="simulation"))

    def _simple(self, name: str, method: str, *args: Any) -> str:
        service = self.flat.controller.service
        if service is None:
            return f"{name}: the controller is down"
        return self._order(name, lambda: getattr(service.orders, method)(*args))

    def gm_pause(self, _args: tuple[int, ...]) -> str:
        return self._simple("pause", "pause")

    def gm_resume(self, _args: tuple[int, ...]) -> str:
        return self._simple("resume_game", "resume_game")

    def gm_add_time(self, args: tuple[int, ...]) -> str:
        return self._simple(f"add_time {args[0]:+d}", "add_time", args[0])

    def _puzzle(self, k: int, *, open_only: bool) -> str | None:
        ids = self.open_puzzles if open_only else [p.id for p in self.game.puzzles]
        return ids[k % len(ids)] if ids else None

    def gm_clue(self, args: tuple[int, ...]) -> str:
        pid = self._puzzle(args[0], open_only=True)
        puzzle = self.game.puzzle(pid) if pid else None
        if puzzle is None or not puzzle.clues:
            return "clue: no puzzle open"
        service = self.flat.controller.service
        if service is None:
            return "clue: the controller is down"
        index = args[1] % len(puzzle.clues)
        return self._order(f"clue {pid}#{index}",
                           lambda: service.orders.send_clue(puzzle=pid, index=index))

    def gm_force(self, args: tuple[int, ...]) -> str:
        pid = self._puzzle(args[0], open_only=True)
        return self._simple(f"force {pid}", "force_solve", pid) if pid else "force: no puzzle open"

    def gm_reset_puzzle(self, args: tuple[int, ...]) -> str:
        service = self.flat.controller.service
        if service is None or service.engine.phase not in PLAYING:
            return "reset_puzzle: no game"
        solved = [p for p, st in service.engine.puzzles.items() if st.status == PuzzleStatus.SOLVED]
        if not solved:
            return "reset_puzzle: nothing solved"
        pid = solved[args[0] % len(solved)]
        return self._order("reset_puzzle", lambda: service.orders.reset_puzzle(pid)) + f" {pid}"

    def _prop_order(self, action: str, k: int) -> str:
        node, prop = self.maglocks[k % len(self.maglocks)]
        service = self.flat.controller.service
        if service is None:
            return f"{action}: the controller is down"
        return self._order(action, lambda: service.orders.prop_order(node, prop, action, {}),
                           keys=[(node, prop)]) + f" {node}.{prop}"

    def gm_unlock(self, args: tuple[int, ...]) -> str:
        return self._prop_order("unlock", args[0])

    def gm_lock(self, args: tuple[int, ...]) -> str:
        return self._prop_order("lock", args[0])

    def gm_emergency(self, _args: tuple[int, ...]) -> str:
        service = self.flat.controller.service
        if service is None:
            return "emergency: the controller is down"
        return self._order("emergency", lambda: service.orders.emergency(who="game master"))

    def gm_end_emergency(self, _args: tuple[int, ...]) -> str:
        return self._simple("end_emergency", "end_emergency")

    def gm_abort(self, _args: tuple[int, ...]) -> str:
        service = self.flat.controller.service
        if service is None or service.engine.phase in ENDED:
            return "abort: nothing to stop"
        return self._simple("abort", "stop_game")

    def gm_reset(self, _args: tuple[int, ...]) -> str:
        return self._simple("reset", "reset_game")
