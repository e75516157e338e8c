"""Writes the shipped sounds (dashboard/static/media/*.wav): synthesized with the standard
library only, so they are ours to give (CC0, dashboard/static/media/LICENCES.md).

    python3 scripts/make_sounds.py            # rewrites them, byte for byte the same

Mono, 16 bit, 22 050 Hz: small, and every browser plays WAV without a codec.
"""

from __future__ import annotations

import math
import struct
import wave
from collections.abc import Iterable, Sequence
from pathlib import Path

RATE = 22_050
OUT = Path(__file__).resolve().parent.parent / "dashboard" / "static" / "media"
#: equal-tempered frequency of a note named by its semitone distance from A4 (440 Hz)
A4 = 440.0


def note(semitones: int) -> float:
    return A4 * 2 ** (semitones / 12)


def tone(freq: float, seconds: float, *, volume: float = 0.5, attack: float = 0.01,
         decay: float = 4.0, harmonics: Sequence[float] = (1.0, 0.3, 0.1)) -> list[float]:
    """A bell-like tone: a few harmonics, a short attack, an exponential decay."""
    n = int(RATE * seconds)
    out = []
    for i in range(n):
        t = i / RATE
        env = min(1.0, t / attack) * math.exp(-decay * t)
        s = sum(h * math.sin(2 * math.pi * freq * (k + 1) * t) for k, h in enumerate(harmonics))
        out.append(volume * env * s / sum(harmonics))
    return out


def silence(seconds: float) -> list[float]:
    return [0.0] * int(RATE * seconds)


def mix(*tracks: Iterable[float]) -> list[float]:
    lists = [list(t) for t in tracks]
    length = max(len(t) for t in lists)
    return [sum(t[i] for t in lists if i < len(t)) for i in range(length)]


def later(seconds: float, samples: list[float]) -> list[float]:
    return silence(seconds) + samples


def write(name: str, samples: list[float]) -> Path:
    path = OUT / name
    frames = b"".join(struct.pack("<h", int(max(-1.0, min(1.0, s)) * 32767)) for s in samples)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(frames)
    return path


def pad(freqs: Sequence[float], seconds: float, volume: float) -> list[float]:
    """A soft chord that swells in and out: loops without a click (starts and ends at 0)."""
    n = int(RATE * seconds)
    return [volume * math.sin(math.pi * i / n) ** 2
            * sum(math.sin(2 * math.pi * f * i / RATE) for f in freqs) / len(freqs) for i in range(n)]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    # the clue chime: two bell notes, up a fifth
    write("chime.wav", mix(tone(note(3), 1.2), later(0.18, tone(note(10), 1.2))))
    # a puzzle solved: a rising major arpeggio
    write("solved.wav", mix(*(later(0.09 * k, tone(note(s), 0.9, volume=0.4))
                              for k, s in enumerate((3, 7, 10, 15)))))
    # a wrong code: two low, short, falling notes
    write("wrong.wav", mix(tone(note(-14), 0.25, decay=10, harmonics=(1.0, 0.6, 0.4)),
                           later(0.2, tone(note(-17), 0.35, decay=10, harmonics=(1.0, 0.6, 0.4)))))
    # a lock opening: a click, then a short high note
    click = [0.8 * math.exp(-i / 40) * (1 if i % 7 < 3 else -1) for i in range(600)]
    write("unlock.wav", mix(click, later(0.05, tone(note(15), 0.4, volume=0.35, decay=8))))
    # the budget going up: two quick high notes rising, like a coin dropped in a jar
    write("budget-up.wav", mix(tone(note(12), 0.3, volume=0.35, decay=9),
                               later(0.08, tone(note(19), 0.35, volume=0.35, decay=8))))
    # the budget going down: two quick middle notes falling
    write("budget-down.wav", mix(tone(note(7), 0.3, volume=0.35, decay=9),
                                 later(0.1, tone(note(0), 0.35, volume=0.35, decay=8))))
    # background music: four soft chords, 16 s, made to loop
    chords = ((-9, -5, -2), (-7, -4, 0), (-11, -7, -4), (-12, -9, -5))
    write("ambiance.wav", [s for chord in chords for s in pad([note(c) for c in chord], 4.0, 0.25)])


if __name__ == "__main__":
    main()
