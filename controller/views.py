"""What the controller shows: the staff's snapshot, the room screens' view, ``game/state``.

Views read the parts of the service and change nothing. :class:`Views` also pushes them:
:meth:`Views.changed` schedules one push per loop turn, each WebSocket audience getting
its own view (the staff: the snapshot; a room screen: its screen view), one JSON text per
audience, never one per client: what changed since the last push (:mod:`controller.hub`).
The shapes are the models of :mod:`controller.api.models`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from config.game import DEFAULT_CLUE_ICON
from controller import health, jsonsafe, profile
from controller.api.models import CLUES, MESSAGES, SCREEN_CLUES, ScreenClue, dump
from controller.backup import Backups
from controller.context import Context
from controller.distribution import whole_hash
from controller.emergency import Alert
from controller.engine import PHASE_LABELS, PLAYING, Engine, Phase, PuzzleStatus, SentClue
from controller.hub import STAFF, Hub
from controller.journal import Journal
from controller.mqtt import MqttBridge
from controller.outputs import Outputs
from protocol import contract

if TYPE_CHECKING:
    from config.game import Game, Text
    from controller.check import PreGameCheck
    from controller.distribution import Distribution
    from controller.mixer import Mixer
    from controller.stuck import Stuck

#: how many of the newest screen messages and clues each view shows
SNAPSHOT_MESSAGES = 10
SCREEN_ITEMS = 10
STATE_MESSAGES, STATE_CLUES = 3, 5
#: how many of the newest journal entries the snapshot shows
SNAPSHOT_JOURNAL = 50


def game_view(engine: Engine) -> dict[str, Any]:
    """The game as the engine holds it (:class:`controller.api.models.GameView`)."""
    puzzles = engine.puzzles
    return {
        "session": engine.session_id, "phase": str(engine.phase),
        "phase_label": PHASE_LABELS[engine.phase], "parcours": engine.parcours,
        "players": engine.players, "children": engine.children,
        "duration_s": engine.duration, "elapsed_s": round(engine.elapsed(), 3),
        "remaining_s": round(engine.remaining(), 3), "result": engine.result,
        "started_wall": engine.started_wall, "ended_wall": engine.ended_wall,
        "budget": engine.budget, "budget_start": engine.budget_start,
        "budget_history": [{"amount": b.amount, "label": b.label, "label_en": b.label_en,
                            "at": round(b.at, 1), "puzzle": b.puzzle, "obligation": b.obligation,
                            "kind": b.kind} for b in engine.budget_history],
        "bills": bills_view(engine), "month": engine.month(),
        "puzzles": [{"id": p.id, "label": p.label.fr, "label_en": p.label.en, "theme": p.theme,
                     "room": p.room,
                     "status": str(puzzles[p.id].status), "in_parcours": engine.in_parcours(p),
                     "available_at": puzzles[p.id].available_at,
                     "solved_at": puzzles[p.id].solved_at, "solved_by": puzzles[p.id].solved_by,
                     "clues": len(p.clues)} for p in engine.game.puzzles],
        "messages": dump(MESSAGES, engine.messages[-SNAPSHOT_MESSAGES:]),
        "clues": dump(CLUES, engine.clues),
        "clue_count": engine.clue_count,
        "alert": engine.alert(), "idle_s": round(engine.idle_seconds(), 1),
        "check_override": engine.check_override,
        "audit": engine.audit_log[-SNAPSHOT_JOURNAL:],
        "log": engine.log[-SNAPSHOT_JOURNAL:],
        "profile": {"children": engine.children, **engine.profile.as_dict()},
    }


def bills_view(engine: Engine) -> list[dict[str, Any]]:
    """The month's bills as they stand (:class:`controller.api.models.Bill`)."""
    return [{"id": b.id, "label": b.label.fr, "label_en": b.label.en, "icon": b.icon,
             "amount": b.amount, "unpaid": b.unpaid, "late_fee": b.late_fee, "status": b.status}
            for b in engine.bills()]


def clue_catalogue(engine: Engine) -> list[dict[str, Any]]:
    """The pre-written clues of the current parcours, per puzzle, with their index and how
    many times each was sent (:class:`controller.api.models.CataloguePuzzle`)."""
    out = []
    parcours = engine.parcours
    for puzzle in engine.game.puzzles:
        if not engine.in_parcours(puzzle):
            continue
        clues = [{"index": i, "text": c.text_for(parcours).fr, "text_en": c.text_for(parcours).en,
                  "cost": c.cost,
                  "sent": sum(1 for s in engine.clues if s.puzzle == puzzle.id and s.index == i)}
                 for i, c in enumerate(puzzle.clues) if parcours in c.parcours]
        out.append({"puzzle": puzzle.id, "label": puzzle.label.fr, "room": puzzle.room,
                    "status": str(engine.puzzles[puzzle.id].status), "clues": clues})
    return out


def relock_plan(ctx: Context) -> list[dict[str, Any]]:
    """What « Reprendre et reverrouiller » would lock again: the locks the game holds locked
    (:meth:`Engine.held_locks`) that are not engaged now (an emergency opened them); an exit
    door only when the game master ticks it (``exit_door``)."""
    if ctx.engine.phase != Phase.PAUSED:
        return []
    plan = []
    for key in ctx.engine.held_locks():
        cfg, info = ctx.maglocks.get(key), ctx.registry.props.get(key)
        if cfg is None or info is None or info.reported.get("engaged") is True:
            continue
        node = ctx.registry.nodes.get(key[0])
        plan.append({"node": key[0], "prop": key[1], "label": info.label,
                     "room": node.label if node else key[0], "exit_door": cfg.exit_door})
    return plan


class Views:
    """The snapshot, the screen views and ``game/state``, built and pushed."""

    def __init__(self, ctx: Context, bridge: MqttBridge, *, journal: Journal, outputs: Outputs,
                 alert: Alert, check: PreGameCheck, hub: Hub, demo: bool,
                 resumed: Callable[[], dict[str, Any] | None], backups: Backups,
                 stuck: Stuck, distribution: Distribution | None = None,
                 pending_game: Callable[[], Any] = lambda: None,
                 media_url: Callable[[str], str | None] = lambda _name: None,
                 debrief_page: Callable[[str | None], dict[str, Any] | None] = lambda _session: None,
                 mixer: Mixer | None = None) -> None:
        self.ctx = ctx
        #: the debrief's page the game master shows, for a session (controller/debrief_steps.py)
        self.debrief_page = debrief_page
        #: the rooms' volumes, the mute, what the screens play (None: not shown)
        self.mixer = mixer
        #: where a screen loads a file of the media library, by its name
        self.media_url = media_url
        self.bridge = bridge
        self.journal = journal
        self.outputs = outputs
        self.alert = alert
        self.check = check
        self.hub = hub
        self.demo = demo
        self.resumed = resumed
        self.distribution = distribution
        self.pending_game = pending_game
        self.backups = backups
        self.stuck = stuck
        self._push_scheduled = False
        self._game_state_due = False
        #: the game's texts in one language: (game file, language, translations)
        self._said: tuple[Game, str | None, dict[str, dict[str, Any]]] | None = None

    # -- views ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """What the game master and the technician see (:class:`~controller.api.models.Snapshot`)."""
        reg = self.ctx.registry.snapshot()
        now = self.ctx.clock()
        for prop in reg["props"]:
            prop["desired"] = self.outputs.view((prop["node"], prop["id"]), now)
        for node in reg["nodes"]:
            node["health_problems"] = health.assess(node["health"])
            # estimated from the node's clock offset, which jitters by milliseconds with each
            # heartbeat: to the second, it changes (and is pushed) only when it does change
            if node["booted_at"] is not None:
                node["booted_at"] = round(node["booted_at"])
        game = self.ctx.game
        return {"game": game_view(self.ctx.engine), **reg, **self._game_file(reg["nodes"]),
                "check": self.check.report(),
                "emergency": self.alert.view(), "lock_alerts": self.outputs.lock_alerts(),
                "stuck": self.stuck.view(), "relock": relock_plan(self.ctx),
                "hint_after_s": round(game.apartment.hint_after_min * 60),
                "resumed": self.resumed(), "store": self.journal.backlog.health(),
                "backup": self.backups.health(), "notices": self.notices(reg["nodes"]),
                "mqtt": {"connected": self.bridge.connected, "metrics": dict(self.bridge.metrics)},
                "apartment": {"id": game.apartment.id, "name": game.apartment.name.fr},
                "demo": self.demo, "ts": contract.now(),
                "media": self.mixer.view() if self.mixer is not None else None}

    def _game_file(self, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        """The game file the controller holds, one waiting for the end of the session, and
        each node's game beside it (``NodeView.game``, ``GameFileView``)."""
        if self.distribution is None:
            return {}
        registry = self.ctx.registry.nodes
        for node in nodes:
            node["game"] = self.distribution.view(registry[node["id"]])
        pending = self.pending_game()
        waiting = None if pending is None else {
            "hash": whole_hash(pending.game), "source": pending.source, "who": pending.who,
            "since": pending.since}
        return {"game_file": {**self.distribution.summary(), "pending": waiting}}

    def notices(self, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What the game master should know before the next session: a node too hot or
        under-powered, a failed backup. Never while a game is played: nothing to do about
        it with players inside, and the console is for them."""
        if self.ctx.engine.phase in PLAYING:
            return []
        return [*health.notices(nodes), *self.backups.notices()]

    def view(self, who: Any) -> dict[str, Any]:
        """What *who* (a :class:`controller.api.auth.Principal`) may see: the full snapshot
        for the game master and the technician, the screen view for a room screen."""
        if getattr(who, "role", None) == "screen":
            return self.screen_view(who.room)
        return self.snapshot()

    def screen_view(self, room: str | None) -> dict[str, Any]:
        """What a room screen shows and nothing more (no props, audit log, check, metrics):
        phase, time, budget, and the messages and clues for *room* or for every room."""
        engine = self.ctx.engine

        def mine(target: str | None) -> bool:
            return target is None or room is None or target == room

        node = self.ctx.registry.nodes.get(room or "")
        room_cfg = self.ctx.game.node(room or "")
        messages = [m for m in engine.messages[-SCREEN_ITEMS:] if mine(m.room)]
        cues = [{"id": c.id, "kind": c.kind, "file": c.file, "url": self.media_url(c.file),
                 "volume": c.volume, "loop": c.loop, "at": c.at, "subtitles": self.subtitles(c.subtitles),
                 "event": c.event}
                for c in engine.cues if c.rooms is None or room is None or room in c.rooms][-SCREEN_ITEMS:]
        solved = {pid for pid, st in engine.puzzles.items() if st.status == PuzzleStatus.SOLVED}
        clues = [{**ScreenClue.model_validate(c).model_dump(), "done": c.puzzle in solved,
                  **self.clue_media(c.puzzle, c.index)}
                 for c in engine.clues if mine(c.room)][-SCREEN_ITEMS:]
        last = engine.budget_history[-1] if engine.budget_history else None
        view = {"screen": True, "room": room,
                "game": {"phase": str(engine.phase), "result": engine.result,
                         "remaining_s": round(engine.remaining(), 3),
                         "duration_s": engine.duration, "timer_running": engine.timer_running,
                         "budget": engine.budget, "budget_start": engine.budget_start,
                         "month": engine.month(), "bills": bills_view(engine),
                         "last_change": None if last is None else {
                             "amount": last.amount, "label": last.label, "label_en": last.label_en},
                         "messages": dump(MESSAGES, messages), "clues": clues, "cues": cues,
                         "preload": self.preload(room), "music": self.music(room),
                         "emergency": self.alert.active,
                         "elapsed_s": round(engine.elapsed(), 3),
                         "clue_chime": self.ctx.game.sounds.clue_chime is not None,
                         "sound": self.mixer.sound(room) if self.mixer is not None else None},
                "nodes": [{"id": node.id, "label": node.label,
                           "label_en": room_cfg.label.en if room_cfg else None}] if node else [],
                "apartment": {"name": self.ctx.game.apartment.name.fr,
                              "name_en": self.ctx.game.apartment.name.en}, "ts": contract.now(),
                "debrief": self.debrief_page(engine.session_id) if engine.phase == Phase.DEBRIEF else None}
        return {**view, **self.profiled(view, [c for c in engine.clues if mine(c.room)][-SCREEN_ITEMS:])}

    def profiled(self, view: dict[str, Any], clues: list[SentClue]) -> dict[str, Any]:
        """The group's profile for a screen, and how to show each text of its *view* for it
        (``say``: the game's texts in the profile's language, the clues in the wording the
        profile asks for; controller/profile.py)."""
        engine = self.ctx.engine
        chosen = engine.profile
        language = chosen.language
        game = view["game"]
        shown = [view["apartment"]["name"], *(n["label"] for n in view["nodes"]),
                 *(b["label"] for b in game["bills"]), *(m["text"] for m in game["messages"]),
                 *([game["last_change"]["label"]] if game["last_change"] else [])]
        translated = self._translations(language)
        say = {fr: translated[fr] for fr in shown if fr in translated}
        for clue in clues:
            text = self.clue_wording(clue)
            if text is not None and (text.fr != clue.text or language):
                say[clue.text] = profile.said(text, language)
        return {"profile": {"children": engine.children, **chosen.as_dict(),
                            "dir": profile.direction(language or "fr")}, "say": say}

    def clue_wording(self, clue: SentClue) -> Text | None:
        """The wording of a pre-written *clue* the group's profile asks for (None: a free
        clue, shown and spoken as the game master wrote it)."""
        engine = self.ctx.engine
        found = engine.game.puzzle(clue.puzzle or "")
        if found is None or clue.index is None or not 0 <= clue.index < len(found.clues):
            return None
        return profile.wording(found.clues[clue.index], engine.parcours, engine.profile,
                               children=engine.children)

    def _translations(self, language: str | None) -> dict[str, dict[str, Any]]:
        """The game's texts in *language*, made once per game file and language."""
        game = self.ctx.game
        cached = self._said
        if cached is None or cached[0] is not game or cached[1] != language:
            cached = (game, language, profile.translations(game.player_texts(), language))
            self._said = cached
        return cached[2]

    def subtitles(self, tracks: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
        """A video's subtitles as a screen loads them (a file gone from the library: left out)."""
        return [{"lang": lang, "file": file, "url": url} for lang, file in tracks
                if (url := self.media_url(file)) is not None]

    def clue_media(self, puzzle: str | None, index: int | None) -> dict[str, Any]:
        """What a sent clue shows big and plays, from its data in the game file: its
        pictogram (a default one otherwise) and its recorded voice (else it is spoken)."""
        spec = self.ctx.game.puzzle(puzzle) if puzzle is not None else None
        written = spec.clues if spec is not None else []
        clue = written[index] if index is not None and 0 <= index < len(written) else None
        voice = clue.voice if clue is not None else None
        return {"icon": (clue.icon if clue is not None else None) or DEFAULT_CLUE_ICON,
                "voice_url": self.media_url(voice) if voice is not None else None}

    def music(self, room: str | None) -> dict[str, Any] | None:
        """The music *room*'s screen plays now, in a loop (``music:`` of the game file)."""
        moment = self.ctx.engine.music_moment()
        music = self.ctx.game.music_for(room, moment)
        url = self.media_url(music.file) if music is not None else None
        if music is None or url is None:
            return None
        return {"moment": moment, "file": music.file, "url": url, "volume": music.volume}

    def preload(self, room: str | None) -> list[dict[str, str]]:
        """The files the game file may cue on *room*'s screen, with where to load them."""
        files = sorted(self.ctx.game.media_files(room))
        return [{"file": f, "url": url} for f in files if (url := self.media_url(f)) is not None]

    def game_state(self) -> dict[str, Any]:
        """The retained ``game/state`` (:class:`~controller.api.models.GameStateMessage`)."""
        engine = self.ctx.engine
        return {"v": 1, "phase": str(engine.phase), "session": engine.session_id,
                "parcours": engine.parcours, "remaining_s": round(engine.remaining(), 3),
                "duration_s": engine.duration, "budget": engine.budget,
                "messages": dump(MESSAGES, engine.messages[-STATE_MESSAGES:]),
                "clues": dump(SCREEN_CLUES, engine.clues[-STATE_CLUES:]),
                "clue_count": engine.clue_count, "alert": engine.alert(), "ts": contract.now()}

    # -- to the nodes and room screens over MQTT ----------------------------------------
    def sync_nodes(self, *, publish: bool = True) -> None:
        """Tell the nodes (controller status) which session is current and if it runs."""
        engine = self.ctx.engine
        self.bridge.session = engine.session_id
        self.bridge.running = engine.phase in PLAYING
        if publish:
            self.bridge.publish_status()

    def publish_game_state(self) -> None:
        """The retained ``game/state``: what room screens and monitoring read.

        On the loop, published once at the end of the loop turn however often it is asked
        for (after the commands of that turn); elsewhere at once.
        """
        self.sync_nodes(publish=False)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._publish_game_state()
            return
        if not self._game_state_due:
            self._game_state_due = True
            loop.call_soon(self._publish_game_state)

    def _publish_game_state(self) -> None:
        self._game_state_due = False
        self.sync_nodes(publish=False)
        self.bridge.publish(self.bridge.topics.game_state,
                            jsonsafe.dumps(self.game_state(), what="game/state").encode(), retain=True)

    # -- to the WebSockets --------------------------------------------------------------
    def changed(self) -> None:
        """Schedule one push to every WebSocket, each its audience's view (coalesced per
        loop turn)."""
        if self._push_scheduled or not self.hub.count():
            return
        self._push_scheduled = True
        asyncio.get_running_loop().call_soon(self.push)

    def welcome(self, who: Any, audience: str) -> str:
        """The first frame of a new client of *audience*: the whole view its audience holds
        (then what changed since, pushed to all of them)."""
        if audience in self.hub.feeds:
            self.changed()
        else:
            self.hub.update(audience, self.view(who))
        return self.hub.snapshot_text(audience)

    def push(self) -> None:
        """Send each audience present what changed in its view: one JSON text per audience."""
        self._push_scheduled = False
        texts: dict[str, str] = {}
        for audience in self.hub.audiences():
            if audience == STAFF:
                data = self.snapshot()
            else:
                room = audience.partition(":")[2]
                data = self.screen_view(None if room == "*" else room)
            text = self.hub.update(audience, data)
            if text is not None:
                texts[audience] = text
        if not texts:
            return
        task = asyncio.ensure_future(self.hub.broadcast(texts))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
