"""The spoken clues' cache is bounded (controller/speech.py, docs/media.md): past its bound
the texts spoken least recently are dropped, never one handed out within IN_USE_S (its
answer may not have opened it yet). Real espeak-ng, a fake clock."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from controller.speech import IN_USE_S, Speech, whole_wav

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cached(root: Path) -> set[str]:
    return {p.name for p in root.glob("*.wav")}


def test_past_its_bound_the_cache_drops_the_text_spoken_least_recently(tmp_path: Path) -> None:
    clock = Clock()
    speech = Speech(tmp_path, clock=clock)
    a = speech.speak("Regardez sous le paillasson de l'entrée.")
    clock.now += 2 * IN_USE_S
    b = speech.speak("Le code est la date du bail, jour puis mois.")
    size_b = b.path.stat().st_size
    speech.max_bytes = a.path.stat().st_size + size_b + size_b // 2   # room for two such, not three
    clock.now += 2 * IN_USE_S
    assert speech.speak("Regardez sous le paillasson de l'entrée.").made is False   # a used again
    clock.now += 2 * IN_USE_S
    c = speech.speak("Appelez le propriétaire pour la fuite d'eau.")
    assert cached(tmp_path) == {a.path.name, c.path.name}   # b, the least recently used, went
    assert speech.dropped == 1
    assert sum(p.stat().st_size for p in tmp_path.glob("*.wav")) <= speech.max_bytes
    assert whole_wav(a.path) and whole_wav(c.path)
    again = speech.speak("Le code est la date du bail, jour puis mois.")   # made again when asked
    assert again.made is True and whole_wav(again.path)


def test_a_file_handed_out_recently_is_never_dropped(tmp_path: Path) -> None:
    clock = Clock()
    speech = Speech(tmp_path, clock=clock, max_bytes=1)   # over the bound with any file
    a = speech.speak("Premier indice.")
    clock.now += IN_USE_S / 2
    b = speech.speak("Deuxième indice.")
    assert cached(tmp_path) == {a.path.name, b.path.name}   # a is maybe being sent: kept
    size_a = a.path.stat().st_size
    with a.path.open("rb") as sending:                      # an answer still reading a
        clock.now += IN_USE_S + 1
        c = speech.speak("Troisième indice.")
        assert cached(tmp_path) == {c.path.name}            # a and b dropped, c just made
        rest = sending.read()
    assert len(rest) == size_a                              # a still read whole though dropped
    assert speech.dropped == 2
    assert not list(tmp_path.glob(".speech-*"))
