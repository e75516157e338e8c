"""The game master's hand on the room screens' sound (docs/media.md, "The console's hand").

* a **volume per room** (0 to 1) and a **global mute**, set from the console, kept in the
  store (``meta``) so that a console reloaded or a controller restarted finds them as
  they were; each room screen's view carries its room's (``game.sound``) and the screen
  applies them at once (``dashboard/static/media.js``);
* **what each screen says it plays**: each screen page reports what its audio and video
  elements are doing (file, music/cue/voice/video, paused, muted) when it changes and
  every :data:`REPORT_EVERY_S`; the console shows exactly that, or « rien », or
  « écran hors ligne » once a screen has not reported for :data:`SILENT_S`. Nothing here
  guesses from the cues sent: a screen that did not say it plays something, does not.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from controller.context import Context
from controller.core.errors import InvalidValue
from controller.journal import Journal
from controller.store import Store

log = logging.getLogger(__name__)

#: store meta key of the volumes and the mute (JSON, :class:`MixState`)
MIX_META = "media_mix"
#: a screen reports at least this often (media.js, REPORT_MS)
REPORT_EVERY_S = 5.0
#: a screen not heard from for this long is off line (three reports missed)
SILENT_S = 3 * REPORT_EVERY_S
#: screen pages kept per room (a room's TV, and a page a technician opened by hand)
SCREENS_PER_ROOM = 4
#: a room's volume when the game master has not set one
DEFAULT_VOLUME = 1.0


class MixState(BaseModel):
    """What is stored: each room's volume, and the mute."""

    volumes: dict[str, float] = {}
    muted: bool = False


@dataclass(frozen=True, slots=True)
class Playing:
    """One element a screen reported: *since* is the controller's wall clock."""

    key: str
    file: str
    kind: str          # music, cue, voice, video
    paused: bool
    muted: bool
    volume: float      # the element's volume as the screen set it (room volume applied)
    since: float

    def view(self) -> dict[str, Any]:
        return {"file": self.file, "kind": self.kind, "paused": self.paused, "muted": self.muted,
                "volume": round(self.volume, 2), "since": round(self.since)}


@dataclass(slots=True)
class Screen:
    heard: float                  # monotonic clock of its last report
    items: tuple[Playing, ...]


def valid_volume(volume: float) -> float:
    """*volume* if it is a number from 0 to 1 (NaN is not), else refused in French."""
    if not (isinstance(volume, int | float) and math.isfinite(volume) and 0 <= volume <= 1):
        msg = f"volume impossible : {volume!r} (de 0 à 1, soit 0 à 100 %)"
        raise InvalidValue(msg, en=f"impossible volume: {volume!r} (0 to 1)")
    return float(volume)


class Mixer:
    """Each room's volume, the global mute, and what each room's screen reported."""

    def __init__(self, ctx: Context, journal: Journal, *, changed: Callable[[], None],
                 clock: Callable[[], float], wall: Callable[[], float]) -> None:
        self.ctx = ctx
        self.journal = journal
        self.changed = changed
        self.clock = clock
        self.wall = wall
        self.volumes: dict[str, float] = {}
        self.muted = False
        #: room → screen page id → its last report
        self.screens: dict[str, dict[str, Screen]] = {}
        #: room → its screen online, as last pushed (a report pushes its room's at once)
        self._announced: dict[str, bool] = {}

    # -- kept across restarts -------------------------------------------------------------
    def load(self, store: Store) -> None:
        """The volumes and the mute as the last controller left them."""
        raw = store.get_meta(MIX_META)
        if not raw:
            return
        try:
            state = MixState.model_validate_json(raw)
        except ValidationError:
            log.exception("the stored volumes and mute are unreadable: ignored")
            return
        self.volumes = {room: v for room, v in state.volumes.items()
                        if self.ctx.game.node(room) is not None and 0 <= v <= 1}
        self.muted = state.muted

    def _store(self) -> None:
        self.journal.meta(MIX_META, MixState(volumes=self.volumes, muted=self.muted).model_dump_json())

    # -- the game master's orders ---------------------------------------------------------
    def known_room(self, room: str) -> str:
        if self.ctx.game.node(room) is None:
            msg = f"pièce inconnue : {room!r}"
            raise InvalidValue(msg, en=f"unknown room: {room!r}")
        return room

    def set_volume(self, room: str, volume: float, *, who: str) -> None:
        """*room*'s screen plays everything at *volume* (0 to 1) of what it would."""
        self.known_room(room)
        volume = valid_volume(volume)
        self.volumes[room] = volume
        self._store()
        self.ctx.engine.audit("media_volume", who=who, target=room, detail=f"{round(volume * 100)} %")
        self.journal.save()
        self.changed()

    def mute(self, muted: bool, *, who: str) -> None:
        """Every screen silent (music, cues, voices, chime), or back to its volume."""
        self.muted = muted
        self._store()
        self.ctx.engine.audit("media_mute" if muted else "media_unmute", who=who)
        self.journal.save()
        self.changed()

    def volume(self, room: str | None) -> float:
        return DEFAULT_VOLUME if room is None else self.volumes.get(room, DEFAULT_VOLUME)

    def sound(self, room: str | None) -> dict[str, Any]:
        """What *room*'s screen applies (``ScreenSound``)."""
        return {"volume": self.volume(room), "muted": self.muted}

    # -- what the screens say -------------------------------------------------------------
    def report(self, room: str, screen: str, items: Sequence[dict[str, Any]], *, gone: bool = False) -> None:
        """*screen* (a page of *room*) plays *items* now; *gone*: the page is closing."""
        self.known_room(room)
        pages = self.screens.setdefault(room, {})
        if gone:
            pages.pop(screen, None)
        else:
            before = {p.key: p for p in pages[screen].items} if screen in pages else {}
            now = self.wall()
            playing = []
            for item in items:
                seen = before.get(item["key"])
                # the first report of an element dates it; later ones keep that date
                same = seen is not None and seen.file == item["file"]
                since = seen.since if same else now - item["played_s"]
                playing.append(Playing(item["key"], item["file"], item["kind"], item["paused"],
                                       item["muted"], item["volume"], since))
            pages.pop(screen, None)
            pages[screen] = Screen(self.clock(), tuple(playing))
            while len(pages) > SCREENS_PER_ROOM:
                pages.pop(next(iter(pages)))
        self._announced[room] = self.online(room)
        self.changed()

    def reporting(self, room: str) -> list[Screen]:
        """*room*'s screen pages heard from within :data:`SILENT_S`."""
        now = self.clock()
        return [s for s in self.screens.get(room, {}).values() if now - s.heard <= SILENT_S]

    def online(self, room: str) -> bool:
        return bool(self.reporting(room))

    def watch(self) -> bool:
        """True when a room's screen went silent since its state was last pushed: the
        console's view changed without any message (the service's timer asks, and pushes)."""
        now = {n.id: self.online(n.id) for n in self.ctx.game.nodes}
        flipped = now != self._announced
        self._announced = now
        return flipped

    def view(self) -> dict[str, Any]:
        """What the console shows (``MixView``): the mute, and per room its volume, whether
        its screen reports, and what it reported playing."""
        rooms = []
        for node in self.ctx.game.nodes:
            screens = self.reporting(node.id)
            rooms.append({"room": node.id, "volume": self.volume(node.id),
                          "screen": "online" if screens else "offline",
                          "playing": [p.view() for screen in screens for p in screen.items]})
        return {"muted": self.muted, "rooms": rooms}
