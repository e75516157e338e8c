"""Reloading the game file into a running controller (``SIGHUP``, ``POST /api/config/reload``).

The rules (docs/reliability.md, fault 12; docs/deploy.md, "A new game file"):

* the new file is validated first (``config/loader.py``, every error with file and line,
  and every node's part must fit in one MQTT message); a file with errors changes
  **nothing**: the controller keeps its game and says why;
* a file identical to the running game is a no-op (``unchanged``; a new file still
  waiting is forgotten: the technician went back to the running one);
* a different game is taken only while **no session is open** (phase ``idle``): given
  during a session (check, briefing, running, paused, ended or in debrief), it is kept
  (``pending``) and taken as soon as the session is over — swapping puzzles, answers or
  props under players is never "compatible";
* the apartment id names every MQTT topic: changing it needs a restart;
* taken, the game goes to the nodes as well: each node whose part changed is sent its new
  one (``controller/distribution.py``), which it applies between games and reports.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from config.loader import GameConfigError, load_game_file
from controller.core.errors import Bilingual
from controller.distribution import PartTooLarge, messages_for, whole_hash
from controller.engine import GAME_MASTER, Phase
from controller.service import GameService, PendingGame

log = logging.getLogger(__name__)


class ReloadRefused(Bilingual):
    """The reload was refused; nothing changed. ``status``: 422 (file errors), 409 (not now);
    ``errors``: every error of the file, as ``config check`` prints them."""

    def __init__(self, status: int, message: str, errors: list[str] | None = None, *,
                 en: str | None = None) -> None:
        super().__init__(message, en=en)
        self.status, self.message, self.errors = status, message, errors or []


@dataclass
class ReloadResult:
    """What a reload did (:class:`controller.api.models.Reloaded`)."""

    status: str                       # "reloaded", "unchanged" or "pending"
    path: str
    warnings: list[str] = field(default_factory=list)
    #: the nodes sent a new part (reloaded), or that will be (pending)
    nodes: list[str] = field(default_factory=list)
    game: str = ""                    # the hash of the file's content


def reload_game(service: GameService, path: Path | str, *, who: str = GAME_MASTER) -> ReloadResult:
    """Validate the game file at *path* and make it the service's game now, or at the end
    of the session open now.

    Raise :class:`ReloadRefused` (nothing changed) if the file has errors or the apartment
    id changed.
    """
    try:
        loaded = load_game_file(path, media=service.media.names() if service.media else None)
        messages_for(loaded.game)
    except (GameConfigError, PartTooLarge) as exc:
        log.error("game file %s has errors; the controller keeps its game:\n%s", path, exc)
        service.bridge.metrics["config_reload_refused"] += 1
        errors = [str(i) for i in exc.issues] if isinstance(exc, GameConfigError) else [f"{path}: {exc}"]
        raise ReloadRefused(422, "le fichier de jeu a des erreurs : le jeu en cours est conservé",
                            errors, en="the game file has errors: the current game is kept") from exc
    new, old = loaded.game, service.game
    warnings = [str(w) for w in loaded.warnings]
    digest = whole_hash(new)
    if new == old:
        if service.pending_game is not None:
            log.warning("game file %s is the running game again: the one waiting is forgotten", path)
            service.pending_game = None
            service.changed()
        return ReloadResult("unchanged", str(path), warnings, game=digest)
    if new.apartment.id != old.apartment.id:
        service.bridge.metrics["config_reload_refused"] += 1
        raise ReloadRefused(409, f"l'identifiant de l'appartement a changé ({old.apartment.id} → "
                                 f"{new.apartment.id}) : redémarrez le contrôleur",
                            en=f"the apartment id changed ({old.apartment.id} → {new.apartment.id}): "
                               "restart the controller")
    changed = sorted(n.id for n in new.nodes if old.node(n.id) is None or new.part(n.id) != old.part(n.id))
    phase = service.engine.phase
    if phase != Phase.IDLE:
        service.pending_game = PendingGame(new, who, str(path), service.wall())
        service.engine.audit("config_reload_pending", who=who, detail=str(path))
        service.journal.save()
        service.changed()
        service.bridge.metrics["config_reloads_pending"] += 1
        log.warning("game file %s is valid; a session is open (phase %s): taken when it is over",
                    path, phase)
        return ReloadResult("pending", str(path), warnings, changed, digest)
    sent = service.take_game(new, who=who, detail=str(path))
    return ReloadResult("reloaded", str(path), warnings, sent, digest)


def install_sighup(service: GameService, path: Path | str) -> bool:
    """``kill -HUP <controller>`` reloads *path* (same rules as the route); logged, never
    fatal. Only possible on the main thread's loop (uvicorn); return whether installed."""
    import asyncio
    import signal

    def on_sighup() -> None:
        try:
            result = reload_game(service, path, who="SIGHUP")
            log.warning("SIGHUP: game file %s", result.status)
        except ReloadRefused as exc:
            log.error("SIGHUP: reload refused: %s%s", exc.message,
                      "".join(f"\n  {e}" for e in exc.errors))
        except Exception:
            log.exception("SIGHUP: reload failed")

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        return False   # not the main thread (tests' TestClient), or no SIGHUP (Windows)
    return True
