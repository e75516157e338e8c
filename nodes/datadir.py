"""The node's data dir: what a node keeps across its own restarts, and where.

Every file is named ``<apartment>-<node>.<what>``, so several nodes (a simulated apartment
on one machine) may share one directory:

* ``outbox.jsonl`` — events the controller has not acknowledged (``nodes/outbox.py``);
* ``game.json`` — the last game view the controller gave (``nodes/autonomy.py``);
* ``boot_n`` — the boot counter: read, +1 and written back at each start, so a higher
  ``boot_n`` is a later boot (Sparkplug's bdSeq). Births, wills and heartbeats carry it;
* ``emergency.json`` — an apartment emergency this node heard and nobody has cleared yet:
  a node restarted during an emergency refuses every lock before it reaches the broker;
* ``system_boots`` — the Pi's own boots (not the agent's restarts): the kernel's boot id
  of the last one seen, and how many were seen (``nodes/health.py``).

Small files are written atomically (temporary file, fsync, rename): a power cut leaves
the old content or the new, never half of one.

Where, when ``--data-dir`` / ``ESCAPE_DATA_DIR`` say nothing (:func:`default_data_dir`):
``/var/lib/escape-apartment/<node>`` when it, or ``/var/lib/escape-apartment``, exists and
is writable (systemd's ``StateDirectory=`` makes it; it is never created there), else
``$XDG_STATE_HOME/escape-apartment/<node>``, else ``~/.local/state/escape-apartment/<node>``.
Never a temporary folder: what waits in the outbox must survive a restart of the agent.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from protocol.contract import ContractError, Emergency, decode

log = logging.getLogger(__name__)

#: the system-wide state directory of every node on a Pi (systemd's StateDirectory)
SYSTEM_STATE_DIR = Path("/var/lib/escape-apartment")


def default_data_dir(node_id: str, environ: Mapping[str, str] | None = None) -> Path:
    """A persistent directory for *node_id* when none was given (see the module's doc)."""
    env = os.environ if environ is None else environ
    system = SYSTEM_STATE_DIR / node_id
    for candidate in (system, SYSTEM_STATE_DIR):   # made by the deploy (systemd, by hand)
        if candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK):
            return system
    state_home = Path(env.get("XDG_STATE_HOME") or "")
    if not state_home.is_absolute():   # unset, or relative: ignored, as the XDG spec says
        state_home = Path(env.get("HOME") or Path.home()) / ".local" / "state"
    return state_home / "escape-apartment" / node_id


def write_atomically(path: Path, text: str) -> None:
    """Replace *path* with *text*: temporary file, fsync, rename (raises OSError)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class DataDir:
    """The files of one node in *directory* (created if missing)."""

    def __init__(self, directory: Path, *, apartment: str, node: str) -> None:
        self.directory = Path(directory)
        self.prefix = f"{apartment}-{node}"
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, what: str) -> Path:
        return self.directory / f"{self.prefix}.{what}"

    # -- boot counter -------------------------------------------------------------------
    def next_boot(self) -> int:
        """This start's ``boot_n``: the last one + 1, written back before it is used.

        A missing file starts at 1. An unreadable one starts again at 1, loudly: the
        controller then tells boots apart by ``boot_id`` alone until the counter passes
        the old one. A counter that cannot be written is still used (logged).
        """
        path = self.path("boot_n")
        last = 0
        try:
            last = int(path.read_text(encoding="ascii").strip())
            if last < 0:
                raise ValueError(last)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.error("boot counter %s unreadable (%s): counting again from 1", path, exc)
            last = 0
        boot_n = last + 1
        try:
            write_atomically(path, f"{boot_n}\n")
        except OSError:
            log.exception("boot counter %s not written: the next start may reuse %d", path, boot_n)
        return boot_n

    # -- the Pi's boots -----------------------------------------------------------------
    def count_system_boot(self, kernel_boot_id: str | None) -> int | None:
        """How many times the Pi booted since this data dir was made, this boot counted
        once however often the agent restarts in it (None: the kernel's boot id unknown)."""
        if not kernel_boot_id:
            return None
        path = self.path("system_boots")
        last, count = "", 0
        try:
            last, _, text = path.read_text(encoding="ascii").strip().partition(" ")
            count = max(0, int(text))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.error("boots of the Pi %s unreadable (%s): counting again from 1", path, exc)
        if last == kernel_boot_id:
            return count
        count += 1
        try:
            write_atomically(path, f"{kernel_boot_id} {count}\n")
        except OSError:
            log.exception("boots of the Pi %s not written", path)
        return count

    # -- emergency ----------------------------------------------------------------------
    def load_emergency(self) -> Emergency | None:
        """The emergency this node heard and nobody cleared, if any."""
        path = self.path("emergency.json")
        try:
            emergency = decode(path.read_bytes(), Emergency)
        except FileNotFoundError:
            return None
        except (OSError, ContractError) as exc:
            # NOTE: a damaged record is read as an emergency: refusing locks until the game
            # master clears it is the safe side.
            log.error("emergency record %s unreadable (%s): treated as an active emergency",
                      path, exc)
            return Emergency(active=True, id="unreadable", who=f"unreadable {path.name}")
        return emergency if emergency.active else None

    def save_emergency(self, emergency: Emergency | None) -> None:
        """Remember *emergency* (None or inactive: forget it); errors are logged only."""
        path = self.path("emergency.json")
        try:
            if emergency is not None and emergency.active:
                write_atomically(path, emergency.model_dump_json(exclude_none=True))
            else:
                path.unlink(missing_ok=True)
        except OSError:
            log.exception("emergency record %s not updated", path)
