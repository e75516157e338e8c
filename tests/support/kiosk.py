"""The room screen's kiosk launcher (config/kiosk/escape-kiosk) run as the Pi runs it, with
a recorder in place of Chromium: the command line it would start."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KIOSK = REPO / "config" / "kiosk"
LAUNCHER = KIOSK / "escape-kiosk"
ENV_FILE = KIOSK / "kiosk.env"
#: Playwright starts Chromium with a profile of its own, and opens the page itself
NOT_FOR_PLAYWRIGHT = ("--user-data-dir=",)

RECORDER = '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$0.argv"\n'


def launch(env: dict[str, str], workdir: Path) -> tuple[subprocess.CompletedProcess[str], list[str] | None]:
    """Run the launcher with *env* only (as systemd gives it the env file): its result, and
    the argv it started the browser with (None: it started none)."""
    recorder = workdir / "chromium"
    recorder.write_text(RECORDER, encoding="utf-8")
    recorder.chmod(0o755)
    argv = workdir / "chromium.argv"
    argv.unlink(missing_ok=True)
    done = subprocess.run([str(LAUNCHER)], capture_output=True, text=True, timeout=30, check=False,
                          env={"PATH": os.defpath, "XDG_RUNTIME_DIR": str(workdir),
                               "ESCAPE_KIOSK_BROWSER": str(recorder), **env})
    return done, argv.read_text(encoding="utf-8").splitlines() if argv.exists() else None


@functools.cache
def kiosk_flags() -> tuple[str, ...]:
    """The flags the kiosk gives Chromium, those a Playwright launch can take."""
    with tempfile.TemporaryDirectory() as tmp:
        done, argv = launch({"ESCAPE_KIOSK_SERVER": "http://127.0.0.1:8000", "ESCAPE_KIOSK_ROOM": "hall",
                             "ESCAPE_KIOSK_TOKEN": "t"}, Path(tmp))
    assert done.returncode == 0 and argv, done.stderr
    return tuple(a for a in argv if a.startswith("--") and not a.startswith(NOT_FOR_PLAYWRIGHT))
