"""Reloading the game file into a running controller (``SIGHUP``, ``POST /api/config/reload``).

The rules (docs/reliability.md, fault 12):

* the new file is validated first (``config/loader.py``, every error with file and line);
  a file with errors changes **nothing**: the controller keeps its game and says why;
* a file identical to the running game is a no-op (``unchanged``);
* a different game is taken only while **no session is open** (phase ``idle``): a game in
  check, briefing, running, paused, ended or in debrief keeps the game it started with.
  Swapping puzzles, answers or props under players is never "compatible": reload between
  two sessions (or reset the finished one first);
* the apartment id names every MQTT topic: changing it needs a restart;
* the nodes are not reloaded: each Pi reads its own copy of the file. When nodes or props
  changed, the answer says which nodes must be restarted with the new file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from config.loader import GameConfigError, load_game_file
from controller.core.errors import Bilingual
from controller.engine import GAME_MASTER, Phase
from controller.service import GameService

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

    status: str                       # "reloaded" or "unchanged"
    path: str
    warnings: list[str] = field(default_factory=list)
    restart_nodes: list[str] = field(default_factory=list)


def reload_game(service: GameService, path: Path | str, *, who: str = GAME_MASTER) -> ReloadResult:
    """Validate the game file at *path* and, if allowed, make it the service's game.

    Raise :class:`ReloadRefused` (nothing changed) if the file has errors, or a session is
    open, or the apartment id changed.
    """
    try:
        loaded = load_game_file(path)
    except GameConfigError as exc:
        log.error("game file %s has errors; the controller keeps its game:\n%s", path, exc)
        service.bridge.metrics["config_reload_refused"] += 1
        raise ReloadRefused(422, "le fichier de jeu a des erreurs : le jeu en cours est conservé",
                            [str(issue) for issue in exc.issues],
                            en="the game file has errors: the current game is kept") from exc
    new, old = loaded.game, service.game
    warnings = [str(w) for w in loaded.warnings]
    if new == old:
        return ReloadResult("unchanged", str(path), warnings)
    if new.apartment.id != old.apartment.id:
        service.bridge.metrics["config_reload_refused"] += 1
        raise ReloadRefused(409, f"l'identifiant de l'appartement a changé ({old.apartment.id} → "
                                 f"{new.apartment.id}) : redémarrez le contrôleur",
                            en=f"the apartment id changed ({old.apartment.id} → {new.apartment.id}): "
                               "restart the controller")
    phase = service.engine.phase
    if phase != Phase.IDLE:
        service.bridge.metrics["config_reload_refused"] += 1
        raise ReloadRefused(409, f"une session est ouverte (phase {phase}) : rechargez le jeu "
                                 "entre deux sessions ; rien n'a changé",
                            en=f"a session is open (phase {phase}): reload the game between two "
                               "sessions; nothing changed")
    restart = sorted({n.id for n in new.nodes} ^ {n.id for n in old.nodes}
                     | {n.id for n in new.nodes if (o := old.node(n.id)) is not None and o != n})
    service.replace_game(new)
    service.engine.audit("config_reload", who=who, detail=str(path))
    service.journal.save()
    service.publish_game_state()
    service.changed()
    service.bridge.metrics["config_reloads"] += 1
    log.warning("game file %s reloaded%s", path,
                f"; restart these nodes with it: {', '.join(restart)}" if restart else "")
    return ReloadResult("reloaded", str(path), warnings, restart)


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
