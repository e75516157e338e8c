#!/usr/bin/env python3
"""Two commands on a fresh machine with Python >= 3.11 — nothing else to install:

    python3 dev.py demo     # embedded broker + controller + a simulated node per room + pages
    python3 dev.py test     # the whole test suite (extra arguments go to pytest)

It makes ``.venv`` on first use and installs the project (editable, with the dev extras)
into it; it reinstalls only when pyproject.toml changed. uv users can do the same with
``uv run escape-apartment demo`` and ``uv run --extra dev pytest`` (uv.lock is committed).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".dev-installed"


def ensure_env() -> None:
    if sys.version_info < (3, 11):
        sys.exit("Python 3.11 or newer is needed")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing the project and its dependencies into .venv …", flush=True)
    subprocess.run([BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([BIN / "python", "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[controller,dev]"],
                   check=True)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "run"):
        print(__doc__)
        return 2
    ensure_env()
    command, rest = argv[0], argv[1:]
    if command == "test":
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    elif command == "demo":
        args = [str(BIN / "escape-apartment"), "demo", *rest]
    else:  # run: any escape-apartment sub-command
        args = [str(BIN / "escape-apartment"), *rest]
    os.chdir(ROOT)
    if os.name == "nt":
        return subprocess.call(args)
    os.execv(args[0], args)
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
