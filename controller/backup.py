"""Backups of the session store: after every session, every night, kept in rotation.

The store (``controller/store.py``) is the only record of a year of sessions — the
evaluation data. A copy of a live SQLite file may be torn (a write half-way, a ``-wal``
not copied), so a backup is never a file copy: SQLite's online backup API reads a
consistent snapshot through its own connection while the controller goes on writing
(WAL: readers never block the writer). Each backup is written to a temporary file,
checked (``PRAGMA integrity_check``, the schema version), synced, then renamed into
place: a backup directory holds only whole, verified files.

A backup holds no phone number (:func:`controller.followup.strip_numbers`): it is kept up
to a year, a follow-up number 3 months at most. The snapshot is taken into memory, its
numbers erased there, and only then written out by ``VACUUM INTO`` — a fresh file of the
live rows only, so neither a number nor the leftover bytes of one erased earlier ever
reach the backup directory. A restore goes through the same copy (an older backup that
still held numbers brings none back), and each backup rewrites the older ones that still
hold some (:func:`strip_older`). The files a restore moves aside may hold numbers:
the controller deletes them :data:`~controller.followup.RETENTION_S` after their last write
(:func:`forget_replaced`, with each backup).

Rotation (:func:`rotate`): the newest backup of each of the last :data:`KEEP_DAILY` days
that have one, and of each of the last :data:`KEEP_MONTHLY` months; the rest is deleted.
The directory may be a USB stick: ``ESCAPE_BACKUP_DIR`` (the default, ``<data dir>/backups``,
is created; a directory given must exist — a stick that is not plugged in is a failed
backup, never a silent copy onto the SD card under its mount point).

The controller takes one when a session closes and one a day (:class:`Backups`), in a
thread: the game never waits for it, and a failed backup is a notice on the console,
never an error of the game. ``escape-apartment store backup|restore|verify`` does the same
by hand (docs/deploy.md, "Backups"); a restore refuses while a controller has the store
open (the store's lock file: :data:`controller.store.LOCK_SUFFIX`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.followup import RETENTION_S, strip_numbers
from controller.store import DB_NAME, LOCK_SUFFIX, SCHEMA_VERSION

log = logging.getLogger(__name__)

PREFIX, SUFFIX = "escape-", ".db"
#: a backup's name: when it was taken, local time (sorts as it should)
STAMP = "%Y%m%d-%H%M%S"
KEEP_DAILY = 14
KEEP_MONTHLY = 12
#: the nightly backup, local time, unless ESCAPE_BACKUP_AT says otherwise
NIGHTLY_AT = dt.time(3, 0)
#: a controller that starts with no backup younger than this takes one soon after (a box
#: switched off at night never sees 03:00)
NIGHTLY_EVERY = dt.timedelta(hours=24)
#: how soon: not in the rush of a start (the rooms coming online, the first check)
AFTER_START = dt.timedelta(minutes=10)
#: a clean stop waits this long for a backup under way
STOP_WAIT_S = 30.0


class BackupError(Exception):
    """A backup, a check or a restore that could not be done (the message says why, in French)."""


# -- one file -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found in a database file."""

    path: Path
    ok: bool
    error: str | None = None
    sessions: int | None = None
    last_session: str | None = None   # the last session's date (YYYY-MM-DD)

    def line(self) -> str:
        if not self.ok:
            return f"ABÎMÉE   {self.path} : {self.error}"
        last = f", la dernière le {self.last_session}" if self.last_session else ""
        return f"OK       {self.path} : {self.sessions} session(s){last}"


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)


def verify(path: Path) -> Verdict:
    """Is *path* a whole session store this controller can read? Never raises."""
    if not path.is_file():
        return Verdict(path, ok=False, error="fichier absent")
    try:
        with contextlib.closing(_read_only(path)) as db:
            check = [row[0] for row in db.execute("PRAGMA integrity_check")]
            if check != ["ok"]:
                return Verdict(path, ok=False, error="; ".join(check[:3]))
            version = db.execute("PRAGMA user_version").fetchone()[0]
            # an older schema is fine: the store brings it up to date when it opens it
            if not 1 <= version <= SCHEMA_VERSION:
                return Verdict(path, ok=False,
                               error=f"schéma {version}, ce contrôleur lit jusqu'au {SCHEMA_VERSION}")
            count, last = db.execute("SELECT count(*), max(date) FROM sessions").fetchone()
    except sqlite3.Error as exc:
        return Verdict(path, ok=False, error=str(exc))
    return Verdict(path, ok=True, sessions=count, last_session=last)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(source: Path, target: Path, *, at: float) -> None:
    """*source* into the new file *target* without a phone number (erased as at *at*), synced."""
    with contextlib.closing(_read_only(source)) as src, \
            contextlib.closing(sqlite3.connect(":memory:")) as mem:
        src.backup(mem)   # a consistent snapshot, while the controller goes on writing
        mem.execute("PRAGMA secure_delete = ON")
        with mem:
            strip_numbers(mem, at)
        # a new file of the live rows only; one self-contained file in rollback mode (no -wal,
        # -shm beside it): the store sets WAL again on open
        mem.execute("VACUUM INTO ?", (str(target),))
    with target.open("rb+") as out:
        os.fsync(out.fileno())


def stamp_of(path: Path) -> dt.datetime | None:
    """When the backup *path* was taken (from its name), or None if it is not one of ours."""
    name = path.name
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
        return None
    try:
        return dt.datetime.strptime(name[len(PREFIX):-len(SUFFIX)], STAMP)
    except ValueError:
        return None


def backups(directory: Path) -> list[tuple[dt.datetime, Path]]:
    """The backups in *directory*, newest first."""
    found = [(stamp, path) for path in directory.glob(f"{PREFIX}*{SUFFIX}")
             if (stamp := stamp_of(path)) is not None and path.is_file()]
    return sorted(found, reverse=True)


def keep(stamps: list[dt.datetime], *, daily: int = KEEP_DAILY,
         monthly: int = KEEP_MONTHLY) -> set[dt.datetime]:
    """Which of *stamps* rotation keeps: the newest of each of the last *daily* days and of
    each of the last *monthly* months that have one (and always the newest of all)."""
    kept: set[dt.datetime] = set()
    for period, count in ((lambda s: s.date(), daily), (lambda s: (s.year, s.month), monthly)):
        seen: list[Any] = []
        for stamp in sorted(stamps, reverse=True):
            key = period(stamp)
            if key not in seen:
                if len(seen) == count:
                    break
                seen.append(key)
                kept.add(stamp)
    return kept


def rotate(directory: Path, *, daily: int = KEEP_DAILY, monthly: int = KEEP_MONTHLY) -> list[Path]:
    """Delete the backups rotation does not keep; return them."""
    found = backups(directory)
    kept = keep([stamp for stamp, _ in found], daily=daily, monthly=monthly)
    removed = []
    for stamp, path in found:
        if stamp not in kept:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed.append(path)
    return removed


def default_directory(store: Path) -> Path:
    """Where backups go when ``ESCAPE_BACKUP_DIR`` says nothing: beside the store."""
    return store.parent / "backups"


def ready_directory(directory: Path, *, create: bool) -> None:
    """The backup directory exists (made when *create*) and can be written, or BackupError."""
    if create:
        directory.mkdir(parents=True, exist_ok=True)
    if not directory.is_dir():
        msg = f"le dossier des sauvegardes {directory} n'existe pas (clé USB absente ?)"
        raise BackupError(msg)
    if not os.access(directory, os.W_OK | os.X_OK):
        msg = f"le dossier des sauvegardes {directory} n'est pas accessible en écriture"
        raise BackupError(msg)


def backup(source: Path, directory: Path, *, now: dt.datetime | None = None, create: bool = False,
           daily: int = KEEP_DAILY, monthly: int = KEEP_MONTHLY) -> Verdict:
    """Back *source* (the live store) up into *directory*, verified, then rotate; BackupError
    if it could not be done (nothing half-written is left under a backup's name)."""
    ready_directory(directory, create=create)
    if not source.is_file():
        msg = f"pas de base de sessions à sauvegarder ({source})"
        raise BackupError(msg)
    now = now or dt.datetime.now()
    for stale in directory.glob(f".{PREFIX}*.tmp"):   # a backup cut short (power, kill)
        with contextlib.suppress(OSError):
            stale.unlink()
    target = directory / f"{PREFIX}{now.strftime(STAMP)}{SUFFIX}"
    try:
        verdict = _write(source, target, at=now.timestamp())
    except (OSError, sqlite3.Error) as exc:
        msg = f"sauvegarde impossible dans {directory} : {exc}"
        raise BackupError(msg) from exc
    for path in rotate(directory, daily=daily, monthly=monthly):
        log.info("backup rotated out: %s", path.name)
    for path in strip_older(directory, now.timestamp()):
        log.info("backup rewritten without its phone numbers: %s", path.name)
    return verdict


def _write(source: Path, target: Path, *, at: float) -> Verdict:
    """*source* copied without a number into *target* by way of a temporary file beside it:
    verified, synced, then renamed (nothing half-written is ever under *target*'s name)."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        _copy(source, tmp, at=at)
        verdict = verify(tmp)
        if not verdict.ok:
            msg = f"la copie ne se relit pas : {verdict.error}"
            raise BackupError(msg)
        os.replace(tmp, target)
        _sync_dir(target.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return Verdict(target, ok=True, sessions=verdict.sessions, last_session=verdict.last_session)


def _holds_numbers(path: Path) -> bool:
    try:
        with contextlib.closing(_read_only(path)) as db:
            return db.execute("SELECT 1 FROM followup_contacts WHERE phone IS NOT NULL LIMIT 1"
                              ).fetchone() is not None
    except sqlite3.Error:   # a store older than the follow-up (no such table), or a damaged file
        return False


def strip_older(directory: Path, at: float) -> list[Path]:
    """Rewrite without their numbers the backups in *directory* that still hold some (taken
    before backups left them out: kept up to a year, they would keep a number past its 3
    months); return them. One that cannot be rewritten is left as it is, and logged."""
    done = []
    for _stamp, path in backups(directory):
        if not _holds_numbers(path):
            continue
        try:
            _write(path, path, at=at)
        except (OSError, sqlite3.Error, BackupError) as exc:
            log.warning("backup %s still holds phone numbers, not rewritten: %s", path.name, exc)
            continue
        done.append(path)
    return done


# -- restoring ------------------------------------------------------------------------------
@contextlib.contextmanager
def exclusive(live: Path) -> Iterator[None]:
    """Hold the store's lock alone: no controller has the store open, and none can open it
    meanwhile (BackupError, in words, when one has it)."""
    lock = live.with_name(live.name + LOCK_SUFFIX)
    live.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            msg = (f"un contrôleur a la base {live} ouverte : arrêtez-le d'abord (sudo systemctl stop "
                   "escape-controller, ou docker compose stop controller)")
            raise BackupError(msg) from None
        yield
    finally:
        os.close(fd)


def restore(live: Path, source: Path, *, now: dt.datetime | None = None) -> tuple[Verdict, list[Path]]:
    """Put the backup *source* in place of the live store *live*, both checked; the files it
    replaces are moved aside (``<name>.replaced-<when>``), deleted only 3 months on
    (:func:`forget_replaced`). Return what the restored store holds and the files moved
    aside; BackupError if it was not done (the live files are then untouched)."""
    verdict = verify(source)
    if not verdict.ok:
        msg = f"la sauvegarde {source} est abîmée : {verdict.error}"
        raise BackupError(msg)
    now = now or dt.datetime.now()
    stamp = now.strftime(STAMP)
    moved: list[Path] = []
    with exclusive(live):
        tmp = live.with_name(f".{live.name}.restore.tmp")
        try:
            # first: a failure here leaves the live files as they were
            _copy(source, tmp, at=now.timestamp())
            for suffix in ("", "-wal", "-shm"):
                old = live.with_name(live.name + suffix)
                if old.exists():
                    aside = live.with_name(f"{live.name}{suffix}.replaced-{stamp}")
                    os.replace(old, aside)
                    moved.append(aside)
            os.replace(tmp, live)
            _sync_dir(live.parent)
        except (OSError, sqlite3.Error) as exc:
            msg = f"restauration impossible : {exc}"
            raise BackupError(msg) from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return verify(live), moved


def forget_replaced(live: Path, now: float) -> list[Path]:
    """Delete the files a restore moved aside once their last write is 3 months old: they may
    hold phone numbers, every one of them given before that write. Return them."""
    gone = []
    for path in sorted(live.parent.glob(f"{live.name}*.replaced-*")):   # the store, its -wal, -shm
        with contextlib.suppress(OSError):
            if path.stat().st_mtime + RETENTION_S <= now:
                path.unlink()
                gone.append(path)
    return gone


def newest_good(directory: Path) -> Verdict:
    """The newest backup in *directory* that verifies (BackupError if none does)."""
    if not directory.is_dir():
        msg = f"le dossier des sauvegardes {directory} n'existe pas (clé USB absente ?)"
        raise BackupError(msg)
    for _stamp, path in backups(directory):
        verdict = verify(path)
        if verdict.ok:
            return verdict
        log.warning("backup %s skipped: %s", path, verdict.error)
    msg = f"aucune sauvegarde lisible dans {directory}"
    raise BackupError(msg)


# -- the controller's part ------------------------------------------------------------------
class Backups:
    """The controller's backups: one when a session closes (:meth:`after_session`), one a
    day (:meth:`tick`: at *nightly* local time, or at start when the newest backup is more
    than a day old), each in a thread; their health for the console.

    *store* is the live database (None: an in-memory store, nothing to back up).
    """

    def __init__(self, store: Path | None, directory: Path, *, create: bool,
                 nightly: dt.time = NIGHTLY_AT, wall: Callable[[], float] = time.time,
                 changed: Callable[[], None] = lambda: None) -> None:
        self.store, self.directory, self.create = store, directory, create
        self.nightly, self.wall, self.changed = nightly, wall, changed
        #: why the last backup failed (None: it worked, or none was tried yet)
        self.error: str | None = None
        self.failed_at: float | None = None
        #: the last backup that worked: when, why, where, what it holds
        self.last: dict[str, Any] | None = None
        self.taken = 0
        self.failures = 0
        self.next_nightly: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._again: str | None = None
        self._lock = threading.Lock()   # one backup at a time, whoever asks

    def start(self) -> None:
        """When the first nightly backup is due: soon if the newest is over a day old."""
        if self.store is None:
            return
        now = dt.datetime.fromtimestamp(self.wall())
        try:
            found = backups(self.directory) if self.directory.is_dir() else []
        except OSError:
            found = []
        self.next_nightly = ((now + AFTER_START).timestamp()
                             if not found or now - found[0][0] >= NIGHTLY_EVERY else self._next_at(now))

    def _next_at(self, after: dt.datetime) -> float:
        at = dt.datetime.combine(after.date(), self.nightly)
        if at <= after:
            at = dt.datetime.combine(after.date() + dt.timedelta(days=1), self.nightly)
        return at.timestamp()

    def tick(self) -> None:
        """The nightly backup, when it is due (the service's ticker calls this)."""
        if self.next_nightly is not None and self.wall() >= self.next_nightly:
            self.next_nightly = self._next_at(dt.datetime.fromtimestamp(self.wall()))
            self.request("nightly")

    def after_session(self, session: str) -> None:
        self.request(f"session {session}")

    def request(self, reason: str) -> None:
        """Take a backup now, in a thread (on the loop) or at once (no loop: tools, tests);
        one asked while one runs is taken right after it."""
        if self.store is None:
            return
        if self._task is not None and not self._task.done():
            self._again = reason
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.run(reason)
            return
        self._task = loop.create_task(self._in_thread(reason), name="backup")

    async def _in_thread(self, reason: str | None) -> None:
        while reason is not None:
            await asyncio.to_thread(self.run, reason)
            self.changed()
            reason, self._again = self._again, None

    def run(self, reason: str) -> Verdict | None:
        """One backup, now, in this thread; never raises (a failure is kept for the console)."""
        if self.store is None:
            return None
        with self._lock:
            for path in forget_replaced(self.store, self.wall()):
                log.info("a file a restore moved aside is 3 months old, deleted: %s", path.name)
            started = time.perf_counter()
            try:
                verdict = backup(self.store, self.directory, create=self.create,
                                 now=dt.datetime.fromtimestamp(self.wall()))
            except Exception as exc:   # whatever it is, the game goes on
                self.failures += 1
                self.error = str(exc) if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"
                self.failed_at = self.wall()
                log.error("backup (%s) failed: %s; the game goes on", reason, self.error,
                          exc_info=not isinstance(exc, BackupError))
                return None
            self.taken += 1
            self.error = self.failed_at = None
            self.last = {"at": self.wall(), "reason": reason, "path": str(verdict.path),
                         "sessions": verdict.sessions, "bytes": verdict.path.stat().st_size,
                         "seconds": round(time.perf_counter() - started, 3)}
            log.info("backup (%s): %s, %s sessions, %.2f s", reason, verdict.path, verdict.sessions,
                     self.last["seconds"])
            return verdict

    async def stop(self) -> None:
        """A clean stop lets a backup under way finish (:data:`STOP_WAIT_S` at most)."""
        self._again = None
        if self._task is not None and not self._task.done():
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), STOP_WAIT_S)

    def health(self) -> dict[str, Any]:
        """What the console and the technician see (:class:`~controller.api.models.BackupHealth`)."""
        return {"ok": self.error is None, "error": self.error, "failed_at": self.failed_at,
                "directory": str(self.directory), "last": self.last, "taken": self.taken,
                "failures": self.failures, "next_nightly": self.next_nightly,
                "running": self._task is not None and not self._task.done()}

    def notices(self) -> list[dict[str, Any]]:
        """A failed backup, as a console notice."""
        if self.error is None:
            return []
        return [{"kind": "backup", "code": "backup_failed", "severity": "bad", "detail": self.error}]


# -- escape-apartment store … ---------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    store = sub.add_parser("store", help="the session store: backup, restore, verify")
    store.add_argument("--data-dir", default=None,
                       help="where the live store is (env ESCAPE_DATA_DIR, as the controller's)")
    store.add_argument("--backup-dir", default=None,
                       help="where the backups are (env ESCAPE_BACKUP_DIR; default <data dir>/backups)")
    verbs = store.add_subparsers(dest="store_cmd", required=True)
    verbs.add_parser("backup", help="back the store up now (online: the controller may run)"
                     ).set_defaults(func=cmd_backup)
    check = verbs.add_parser("verify", help="check the live store and every backup (or FILE…)")
    check.add_argument("files", nargs="*", type=Path, help="only these files")
    check.set_defaults(func=cmd_verify)
    back = verbs.add_parser("restore", help="put a backup in place of the store (controller stopped)")
    back.add_argument("--from", dest="source", type=Path, default=None,
                      help="this backup (default: the newest that verifies)")
    back.set_defaults(func=cmd_restore)


@dataclass(frozen=True)
class _Where:
    live: Path
    directory: Path
    create: bool


def _where(args: argparse.Namespace) -> _Where:
    from controller.core.config import Settings

    settings = Settings.with_flags(DATA_DIR=args.data_dir, BACKUP_DIR=args.backup_dir)
    live = settings.DATA_DIR / DB_NAME
    return _Where(live, settings.BACKUP_DIR or default_directory(live), settings.BACKUP_DIR is None)


def cmd_backup(args: argparse.Namespace) -> int:
    where = _where(args)
    try:
        verdict = backup(where.live, where.directory, create=where.create)
    except BackupError as exc:
        print(f"Sauvegarde impossible : {exc}")
        return 1
    print(f"Sauvegarde faite : {verdict.path} ({verdict.sessions} session(s))")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    where = _where(args)
    files = list(args.files) or [where.live, *(p for _s, p in (
        backups(where.directory) if where.directory.is_dir() else []))]
    verdicts = [verify(path) for path in files]
    for verdict in verdicts:
        print(verdict.line())
    if not args.files and not where.directory.is_dir():
        print(f"(pas de dossier de sauvegardes {where.directory})")
    return 0 if all(v.ok for v in verdicts) else 1


def cmd_restore(args: argparse.Namespace) -> int:
    where = _where(args)
    try:
        source = verify(args.source) if args.source is not None else newest_good(where.directory)
        restored, moved = restore(where.live, source.path)
    except BackupError as exc:
        print(f"Restauration refusée : {exc}")
        return 1
    for path in moved:
        print(f"Ancien fichier gardé : {path}")
    if moved:
        print("(il peut contenir des numéros de téléphone : le contrôleur l'efface 3 mois après, "
              "ou effacez-le vous-même dès que la restauration est vérifiée)")
    print(f"Restauré depuis {source.path} :")
    print(restored.line())
    return 0 if restored.ok else 1
