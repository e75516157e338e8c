"""Clues spoken aloud: speech synthesis on the controller, no internet (docs/media.md).

Debian's ``espeak-ng`` writes a WAV of a text; each text is made once and kept in the
data directory as ``speech/<sha256 of voice, rate and text>.wav`` (written whole, then
renamed), so a clue sent to three rooms, or sent again, is synthesized once. Without
``espeak-ng`` a clue is still shown, just not spoken: :class:`SpeechUnavailable` says so.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controller.core.errors import Bilingual

log = logging.getLogger(__name__)

#: the voice and rate judged the most understandable (docs/media.md, "Speech")
VOICE = "fr-fr"
RATE_WPM = 140
#: gap between words, in units of 10 ms at the default speed: short words stay apart
WORD_GAP = 2
MAX_CHARS = 600
#: a synthesis longer than this is stopped (espeak-ng makes ~20 s of speech per second here)
TIMEOUT_S = 20
#: the cache's bound: past it, the texts spoken least recently are dropped (a 20-word clue
#: is ~0.45 MB of WAV: 64 MB keeps some 140 clues, several games' worth)
CACHE_BYTES = 64 * 1024 * 1024
#: a file handed out this recently is never dropped (its answer may not have opened it
#: yet; once opened, a dropped file is still read whole: POSIX keeps it until closed)
IN_USE_S = 60.0


#: what espeak-ng reads wrongly in our clues, said the way a person would (docs/media.md):
#: a code with a leading zero digit by digit ("0412" is not "four hundred and twelve"),
#: the hash key, an hour ("12 h 30" is not "douze hache trente")
SAY: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"\b0\d+\b"), lambda m: " ".join(m.group())),
    (re.compile(r"#"), " dièse "),
    (re.compile(r"\b(\d{1,2}) ?h ?(\d{2})\b"), r"\1 heures \2"),
)


def as_said(text: str) -> str:
    """*text* rewritten for the synthesizer (the screen still shows it as written)."""
    for pattern, replacement in SAY:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def whole_wav(path: Path) -> bool:
    """True when *path* is a WAV holding every frame its header announces, and some."""
    try:
        with wave.open(str(path), "rb") as w:
            frames = w.getnframes()
            expected = frames * w.getsampwidth() * w.getnchannels()
            return frames > 0 and len(w.readframes(frames)) == expected
    except (OSError, EOFError, wave.Error):
        return False


class SpeechUnavailable(Bilingual):
    """No speech synthesis on this controller (HTTP 503): the clue is shown, not spoken."""

    status = 503


class SpeechRefused(SpeechUnavailable):
    """A text that cannot be spoken: empty or too long (HTTP 422)."""

    status = 422


@dataclass(frozen=True, slots=True)
class Spoken:
    path: Path
    key: str
    made: bool    # False: it was in the cache


class Speech:
    """The cache of spoken texts in *root*; *program*: the espeak-ng to run (found on PATH)."""

    def __init__(self, root: Path, *, program: str = "espeak-ng", voice: str = VOICE,
                 rate: int = RATE_WPM, max_bytes: int = CACHE_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.clock = clock
        #: when each file was last handed out (clock): the newest are not dropped
        self._handed: dict[str, float] = {}
        #: the order of the last use of each file since start (the bound drops the least
        #: recent first; files not used since start before them, oldest first)
        self._uses: dict[str, int] = {}
        self._use_count = itertools.count()
        #: texts dropped from the cache since start (the bound reached)
        self.dropped = 0
        self.program = program
        self.voice, self.rate = voice, rate
        #: how many texts were synthesized (not taken from the cache) since start
        self.made = 0
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.voice}\n{self.rate}\n{WORD_GAP}\n{text}".encode()).hexdigest()

    def available(self) -> bool:
        return shutil.which(self.program) is not None

    def speak(self, text: str) -> Spoken:
        """The WAV of *text*, made now or taken from the cache. Blocking (run it in a
        thread); two callers of the same text wait for one synthesis."""
        text = as_said(text)
        if not text:
            raise SpeechRefused("rien à dire : le texte est vide", en="nothing to say: empty text")
        if len(text) > MAX_CHARS:
            raise SpeechRefused(f"texte trop long pour être dit (au plus {MAX_CHARS} caractères)",
                                    en=f"text too long to speak (at most {MAX_CHARS} characters)")
        key = self.key(text)
        path = self.root / f"{key}.wav"
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:   # no drop between the check and the hand-out
                if path.is_file():
                    self._hand_out(key)
                    return Spoken(path, key, made=False)
            program = shutil.which(self.program)
            if program is None:
                raise SpeechUnavailable(
                    "synthèse vocale indisponible : espeak-ng n'est pas installé sur le contrôleur "
                    "(apt-get install espeak-ng) ; l'indice reste affiché",
                    en="speech unavailable: espeak-ng is not installed on the controller; the "
                       "clue is still shown")
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".speech-", suffix=".wav")
            os.close(fd)
            try:
                # the text goes on stdin, never on the command line: no option injection
                command = [program, "-v", self.voice, "-s", str(self.rate), "-g", str(WORD_GAP),
                           "-w", tmp, "--stdin"]
                subprocess.run(command, input=text.encode(), check=True,  # noqa: S603 - fixed program
                               capture_output=True, timeout=TIMEOUT_S)
                # espeak-ng exits 0 on a full disk with an empty or cut file: never cached
                if not whole_wav(Path(tmp)):
                    raise OSError(errno.ENOSPC, "espeak-ng wrote an empty or cut WAV (disk full?)")
                os.replace(tmp, path)
            except (subprocess.SubprocessError, OSError) as exc:
                log.error("espeak-ng failed on a text of %d characters: %s", len(text), exc)
                raise SpeechUnavailable("la synthèse vocale a échoué : voir le journal du contrôleur",
                                        en="speech synthesis failed: see the controller's log") from exc
            finally:
                Path(tmp).unlink(missing_ok=True)
            self.made += 1
            with self._guard:
                self._hand_out(key)
                self._bound()
            return Spoken(path, key, made=True)

    def _hand_out(self, key: str) -> None:
        """*key*'s file is used now: the most recent for the bound, and kept a while."""
        self._handed[key] = self.clock()
        self._uses[key] = next(self._use_count)

    def _bound(self) -> None:
        """Drop the texts spoken least recently until the cache holds at most max_bytes;
        a file handed out within IN_USE_S stays (the cache may then be over, for a while)."""
        now = self.clock()
        files = []
        for path in self.root.glob("*.wav"):
            if path.name.startswith("."):
                continue   # a synthesis being written
            try:
                st = path.stat()
            except OSError:
                continue
            files.append((self._uses.get(path.stem, -1), st.st_mtime, st.st_size, path))
        total = sum(size for _, _, size, _ in files)
        for _, _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            handed = self._handed.get(path.stem)
            if handed is not None and now - handed < IN_USE_S:
                continue
            try:
                path.unlink()
            except OSError as exc:
                log.warning("speech cache: %s not dropped: %s", path.name, exc)
                continue
            self._handed.pop(path.stem, None)
            self._uses.pop(path.stem, None)
            total -= size
            self.dropped += 1
        for key in [k for k, at in self._handed.items() if now - at >= IN_USE_S]:
            del self._handed[key]   # old hand-outs need no memory
