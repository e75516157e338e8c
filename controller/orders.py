"""The game master's orders: the pre-game check, the run, puzzles, clues, props, the emergency.

Each order goes to the engine (which refuses it, changing nothing, if the game does not
allow it), then its commands leave (:meth:`controller.outputs.Outputs.execute`), then the
session is saved (:mod:`controller.journal`) and the new state published and pushed
(:mod:`controller.views`). Orders that would lock something are refused while the
emergency alert lasts (:meth:`controller.emergency.Alert.refuse_locking`); releasing never is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from controller.check import PreGameCheck
from controller.context import Context, Key
from controller.core.errors import NotFoundError
from controller.emergency import Alert
from controller.engine import (
    ENDED,
    GAME_MASTER,
    PLAYING,
    PREPARING,
    Effect,
    Engine,
    EngineError,
    Phase,
    SentClue,
)
from controller.journal import Journal
from controller.outputs import Outputs
from controller.views import Views, relock_plan


class Orders:
    """What the game master (and a node's emergency input) may order."""

    def __init__(self, ctx: Context, *, alert: Alert, outputs: Outputs, check: PreGameCheck,
                 journal: Journal, views: Views) -> None:
        self.ctx = ctx
        self.alert = alert
        self.outputs = outputs
        self.check = check
        self.journal = journal
        self.views = views

    @property
    def engine(self) -> Engine:
        return self.ctx.engine

    def _done(self) -> None:
        """After a game master's order: save, publish, push."""
        self.journal.save()
        if self.engine.phase != Phase.IDLE:
            self.views.publish_game_state()
        self.views.changed()

    def _run(self, effects: list[Effect]) -> None:
        """After an order that opens, runs or ends a session: the nodes hear of it, then
        its commands leave, then save, publish, push."""
        self.views.sync_nodes()
        self.outputs.execute(effects)
        self._done()

    # -- the game master's orders: the pre-game check -------------------------------------
    def begin_check(self, *, parcours: str | None = None, players: int | None = None,
                    children: bool | None = None, who: str = GAME_MASTER) -> dict[str, Any]:
        """Open a session and check the apartment; again in check: resend what is not ready
        (and correct the group with what is given)."""
        self.alert.refuse_locking("lancer la vérification (elle verrouille les ventouses)",
                                  en="start the check (it locks the maglocks)")
        if self.engine.phase == Phase.CHECK:
            self.engine.configure(parcours=parcours, players=players, children=children)
            self.engine.audit("recheck", who=who)
            self.check.resend_start_state(only_not_ready=True)
            self._done()
            return self.check.report()
        if self.engine.phase in ENDED or self.engine.phase == Phase.DEBRIEF:
            self.reset_game(who=who)
        effects = self.engine.prepare(parcours=parcours or "primo", players=players or 4,
                                      children=bool(children), who=who)
        self.outputs.resets.clear()
        self._run(effects)
        return self.check.report()

    def brief(self, *, override: str | None = None, who: str = GAME_MASTER,
              parcours: str | None = None, players: int | None = None,
              children: bool | None = None) -> None:
        """Check → briefing: needs every prop ready, or an override with a reason."""
        if self.engine.phase == Phase.CHECK:
            self.engine.configure(parcours=parcours, players=players, children=children)
        self.engine.brief(not_ready=self.check.not_ready(), override=override, who=who)
        self._done()

    # -- the game master's orders: the run --------------------------------------------------
    def start_game(self, *, parcours: str | None = None, players: int | None = None,
                   children: bool | None = None, override: str | None = None,
                   who: str = GAME_MASTER) -> None:
        """Start the run: from briefing; from check (ready, or override); from idle or a
        finished game at once (the check is then overridden, and recorded as such)."""
        self.alert.refuse_locking("démarrer la partie (elle verrouille les ventouses)",
                                  en="start the game (it locks the maglocks)")
        if self.engine.phase in ENDED or self.engine.phase == Phase.DEBRIEF:
            self.reset_game(who=who)
        from_idle = self.engine.phase == Phase.IDLE
        not_ready = self.check.not_ready() if self.engine.phase == Phase.CHECK else []
        effects = self.engine.start(parcours=parcours, players=players, children=children,
                                    not_ready=not_ready, override=override, who=who)
        if from_idle:
            self.outputs.resets.clear()
        self._run(effects)

    def stop_game(self, *, who: str = GAME_MASTER) -> None:
        """Abort a run, or cancel a session still in check or briefing."""
        if self.engine.phase in PREPARING:
            session = self.engine.session_id or ""
            effects = self.engine.cancel(who=who)
            self.views.sync_nodes()
            self.outputs.execute(effects)
            self.journal.close(session, result="cancelled")
        else:
            self._run(self.engine.abort(who=who))
        self.views.changed()

    def set_profile(self, *, who: str = GAME_MASTER, **profile: Any) -> None:
        """Change the group's profile (:meth:`Engine.set_profile`): the screens render anew."""
        self.engine.set_profile(who=who, **profile)
        self._done()

    def pause(self, *, who: str = GAME_MASTER) -> None:
        self.engine.pause(who=who)
        self._done()

    def resume_game(self, *, relock: bool = False, exit_doors: Iterable[str] = (),
                    who: str = GAME_MASTER) -> list[Key]:
        """Resume a paused game; with *relock*, lock again what the game holds locked and an
        emergency opened (:func:`controller.views.relock_plan`) — an exit door only when it
        is named in *exit_doors* (``node.prop``: the game master ticked it). Returns the
        locks ordered locked."""
        self.alert.refuse_locking("reprendre la partie", en="resume the game")
        plan = relock_plan(self.ctx) if relock else []
        doors = {f"{p['node']}.{p['prop']}" for p in plan if p["exit_door"]}
        wrong = [d for d in exit_doors if d not in doors]
        if wrong:
            msg = (f"« {wrong[0]} » n'est pas une porte de sortie ouverte à reverrouiller ; "
                   "rien n'a été fait")
            raise EngineError(msg, en=f"“{wrong[0]}” is not an open exit door to relock; "
                                      "nothing was done")
        self.engine.resume(who=who)
        chosen = [(p["node"], p["prop"]) for p in plan
                  if not p["exit_door"] or f"{p['node']}.{p['prop']}" in exit_doors]
        for node, prop in chosen:
            self.outputs.command(node, prop, "lock")
        if chosen:
            self.engine.audit("relock", who=who,
                              detail=", ".join(f"{node}.{prop}" for node, prop in chosen))
        self._done()
        return chosen

    def add_time(self, seconds: int, *, who: str = GAME_MASTER) -> None:
        self.engine.add_time(seconds, who=who)
        self._done()

    def debrief(self, *, who: str = GAME_MASTER) -> None:
        self.engine.debrief(who=who)
        self._done()

    def reset_game(self, *, who: str = GAME_MASTER) -> None:
        """Back to idle: the session is closed (it stays in the history)."""
        session = self.engine.session_id
        if session is not None and self.engine.phase != Phase.IDLE:
            self.journal.save()
        self.engine.reset(who=who)
        self.outputs.resets.clear()
        self.views.sync_nodes()
        if session is not None:
            self.journal.close(session)
        self.views.publish_game_state()
        self.views.changed()

    # -- the game master's orders: puzzles, clues, props -----------------------------------
    def force_solve(self, puzzle: str, *, who: str = GAME_MASTER) -> None:
        self.outputs.execute(self.engine.force_solve(puzzle, who=who))
        self._after_puzzle_order()

    def reset_puzzle(self, puzzle: str, *, who: str = GAME_MASTER) -> None:
        self.outputs.execute(self.engine.reset_puzzle(puzzle, who=who))
        self._after_puzzle_order()

    def skip_to(self, puzzle: str, *, who: str = GAME_MASTER) -> None:
        self.outputs.execute(self.engine.skip_to(puzzle, who=who))
        self._after_puzzle_order()

    def _after_puzzle_order(self) -> None:
        if self.engine.phase not in PLAYING:
            self.views.sync_nodes()   # that order won the game
        self._done()

    def send_clue(self, **order: Any) -> SentClue:
        clue, effects = self.engine.send_clue(**order)
        self.outputs.execute(effects)
        self._done()
        return clue

    def cue_media(self, kind: str, file: str, rooms: tuple[str, ...] | None, *, volume: float = 1.0,
                  loop: bool = False, who: str = GAME_MASTER,
                  subtitles: tuple[tuple[str, str], ...] = ()) -> None:
        """Play a file of the media library on room screens, or stop them (``kind`` stop)."""
        self.outputs.execute(self.engine.cue_media(kind, file, rooms, volume=volume, loop=loop, who=who,
                                                   subtitles=subtitles))
        self._done()

    def clue_shown(self, clue_id: str) -> SentClue:
        clue = self.engine.clue_shown(clue_id)
        self._done()
        return clue

    def prop_order(self, node: str, prop: str, action: str, params: dict[str, Any], *,
                   who: str = GAME_MASTER) -> str:
        """The game master's hand on any lock or output (audited)."""
        key = (node, prop)
        if key not in self.ctx.registry.props:
            msg = f"accessoire inconnu {node}.{prop}"
            raise NotFoundError(msg, en=f"unknown prop {node}.{prop}")
        if action in ("lock", "unlock") and key not in self.ctx.maglocks:
            msg = f"{node}.{prop} n'est pas une serrure"
            raise EngineError(msg, en=f"{node}.{prop} is not a lock")
        if self.outputs.would_lock(key, action):
            label = self.ctx.registry.props[key].label
            self.alert.refuse_locking(f"verrouiller « {label} »", en=f"lock “{label}”")
        command_id = self.outputs.command(node, prop, action, params)
        detail = action + (f" {json.dumps(params, ensure_ascii=False)}" if params else "")
        self.engine.audit("prop", who=who, target=f"{node}.{prop}", detail=detail)
        self._done()
        return command_id

    # -- the emergency: a first-class message, not an ordinary command --------------------
    def emergency(self, *, who: str) -> list[Key]:
        """Open every lock of the apartment at once; pause a running game; raise the alert.

        Never refused: any phase, any caller, the broker down (then the retained
        ``Emergency`` and the unlocks wait in the MQTT client's queue and leave the moment
        the broker is back; reconciliation resends every unconfirmed unlock). While the
        alert lasts nothing is locked, and every node that (re)connects reads the retained
        message and releases at once. Returns the locks ordered open.
        """
        self.alert.raise_(who=who)   # first: every node releases on it, before anything queued
        self.outputs.execute(self.engine.release_all())
        self.alert.store()
        self.outputs.forget_relocks()
        if self.engine.phase == Phase.RUNNING:
            self.engine.pause(who=who)
        self.engine.audit("emergency", who=who, detail="toutes les serrures ouvertes")
        self.journal.save()
        self.views.publish_game_state()
        self.views.changed()
        return list(self.ctx.maglocks)

    def end_emergency(self, *, who: str = GAME_MASTER) -> None:
        """« Fin de l'alerte »: the retained message says so; nothing is locked again."""
        self.alert.end(who=who)
        self.engine.audit("emergency_end", who=who, detail="fin de l'alerte : rien n'est reverrouillé")
        self._done()
