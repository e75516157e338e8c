"""Secrets both sides read: a password from a file only its owner can read."""

from __future__ import annotations

import stat
from pathlib import Path


def read_secret_file(path: str | Path) -> str:
    """Read a password file, refusing one that others can read (like ssh does)."""
    path = Path(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        msg = f"{path} is readable by others (mode {stat.filemode(mode)}): chmod 600 it"
        raise PermissionError(msg)
    return path.read_text(encoding="utf-8").strip()
