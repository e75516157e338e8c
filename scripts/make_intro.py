"""Writes the shipped introduction video and its subtitles (dashboard/static/media/):

* ``intro.webm``: drawn cards (Pillow) with the story told by espeak-ng in French, WebM
  (VP9 video, Opus sound), which Debian's Chromium plays with no extra codec;
* ``intro-fr.vtt`` and ``intro-en.vtt``: its subtitles, one cue per spoken sentence, timed
  on the narration itself (each sentence is synthesized alone and measured).

The narration, the French subtitles and the English ones come from :data:`SCENES`, so
what is said is what is written. A development tool, not something the controller runs::

    .venv/bin/pip install av pillow numpy   # PyAV brings its own FFmpeg (libvpx, libopus)
    .venv/bin/python scripts/make_intro.py

Everything is made here (no image, sound or font of anyone else's but the DejaVu font
drawing the letters): CC0, dashboard/static/media/LICENCES.md.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from controller.speech import RATE_WPM, VOICE, WORD_GAP, as_said  # noqa: E402

OUT = ROOT / "dashboard" / "static" / "media"
WIDTH, HEIGHT, FPS = 1280, 720, 10
SAMPLE_RATE = 48_000          # Opus's own rate
GAP_S = 0.35                  # silence between two sentences
TAIL_S = 0.8                  # after a scene's last sentence, before the next card
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


@dataclass(frozen=True)
class Scene:
    title: str
    picture: str                              # a name of :data:`PICTURES`
    colour: tuple[int, int, int]
    sentences: tuple[tuple[str, str], ...]    # (French, as spoken and subtitled; English)


SCENES: tuple[Scene, ...] = (
    Scene("L'appartement témoin", "house", (32, 58, 96), (
        ("Bienvenue dans l'appartement témoin.", "Welcome to the show flat."),
        ("Vous venez d'emménager : c'est votre logement.", "You have just moved in: this is your home."),
    )),
    Scene("Le budget du mois", "money", (28, 84, 60), (
        ("Ce mois-ci, votre foyer a un budget.", "This month, your household has a budget."),
        ("Le salaire et l'aide au logement doivent payer le loyer, l'électricité, l'eau et "
         "l'assurance.", "The wages and the housing benefit must pay the rent, electricity, "
                         "water and the insurance."),
    )),
    Scene("Des énigmes dans chaque pièce", "doors", (92, 52, 30), (
        ("Dans chaque pièce, des énigmes vous attendent.", "In each room, puzzles are waiting for you."),
        ("Chaque énigme résolue ouvre la suite et règle une facture.",
         "Each puzzle solved opens the next one and pays a bill."),
    )),
    Scene("Une heure", "clock", (70, 40, 96), (
        ("Vous avez une heure.", "You have one hour."),
        ("L'écran de la pièce montre le temps, le budget et les indices.",
         "The room's screen shows the time, the budget and the clues."),
        ("Un indice aide, mais il peut coûter de l'argent.", "A clue helps, but it may cost money."),
    )),
    Scene("En sécurité", "exit", (120, 30, 40), (
        ("Un problème ? Appelez l'animateur : toutes les portes s'ouvrent tout de suite.",
         "A problem? Call the game master: every door opens at once."),
        ("Bonne chance !", "Good luck!"),
    )),
)


def speak(text: str) -> np.ndarray:
    """*text* spoken by espeak-ng as the clues are (controller/speech.py), 48 kHz mono
    float32."""
    program = shutil.which("espeak-ng")
    if program is None:
        sys.exit("espeak-ng is needed: apt-get install espeak-ng")
    command = [program, "-v", VOICE, "-s", str(RATE_WPM), "-g", str(WORD_GAP), "--stdout"]
    wav = subprocess.run(command, input=as_said(text).encode(), capture_output=True,  # noqa: S603 - fixed program
                         check=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    # espeak-ng speaks at 22 050 Hz: resampled linearly, plenty for a synthetic voice
    positions = np.arange(0, len(pcm) * SAMPLE_RATE / rate) * rate / SAMPLE_RATE
    return np.interp(positions, np.arange(len(pcm)), pcm).astype(np.float32)


def draw_picture(draw: ImageDraw.ImageDraw, name: str, cx: int, cy: int) -> None:
    """A simple drawing, in white lines, in the middle of a card."""
    white, width = (250, 246, 236), 12
    if name == "house":
        draw.polygon([(cx - 170, cy - 20), (cx, cy - 170), (cx + 170, cy - 20)], outline=white, width=width)
        draw.rectangle([cx - 130, cy - 20, cx + 130, cy + 170], outline=white, width=width)
        draw.rectangle([cx - 35, cy + 60, cx + 35, cy + 170], fill=white)
        draw.rectangle([cx + 55, cy + 10, cx + 105, cy + 60], outline=white, width=8)
    elif name == "money":
        for i in range(3):   # three bills
            x = cx - 250 + i * 185
            draw.rounded_rectangle([x, cy - 110, x + 130, cy + 60], radius=14, outline=white, width=10)
            for line in range(3):
                draw.line([x + 22, cy - 70 + line * 38, x + 108, cy - 70 + line * 38], fill=white, width=8)
        for i in range(4):
            draw.ellipse([cx - 90 + i * 45, cy + 95, cx - 30 + i * 45, cy + 155], outline=white, width=8)
    elif name == "doors":
        for i in range(3):
            x = cx - 260 + i * 190
            draw.rectangle([x, cy - 150, x + 140, cy + 160], outline=white, width=width)
            draw.ellipse([x + 100, cy, x + 122, cy + 22], fill=white)
            draw.text((x + 40, cy - 110), "?", fill=white, font=ImageFont.truetype(FONT, 90))
    elif name == "clock":
        draw.ellipse([cx - 170, cy - 170, cx + 170, cy + 170], outline=white, width=width)
        draw.line([cx, cy, cx, cy - 130], fill=white, width=width)
        draw.line([cx, cy, cx + 90, cy + 40], fill=white, width=width)
        for k in range(12):
            angle = k * np.pi / 6
            x, y = cx + 145 * np.sin(angle), cy - 145 * np.cos(angle)
            draw.ellipse([x - 7, y - 7, x + 7, y + 7], fill=white)
    elif name == "exit":
        draw.rectangle([cx - 110, cy - 170, cx + 110, cy + 170], outline=white, width=width)
        draw.ellipse([cx - 20, cy - 120, cx + 20, cy - 80], fill=white)
        draw.line([cx, cy - 75, cx - 10, cy + 20], fill=white, width=14)
        draw.line([cx - 10, cy + 20, cx - 60, cy + 110], fill=white, width=14)
        draw.line([cx - 10, cy + 20, cx + 50, cy + 100], fill=white, width=14)
        draw.line([cx - 5, cy - 50, cx + 60, cy - 20], fill=white, width=12)
        draw.line([cx + 150, cy, cx + 250, cy], fill=white, width=14)
        draw.polygon([(cx + 250, cy - 35), (cx + 300, cy), (cx + 250, cy + 35)], fill=white)


def card(scene: Scene) -> np.ndarray:
    image = Image.new("RGB", (WIDTH, HEIGHT), scene.colour)
    draw = ImageDraw.Draw(image)
    title = ImageFont.truetype(FONT, 64)
    width = draw.textlength(scene.title, font=title)
    draw.text(((WIDTH - width) / 2, 50), scene.title, fill=(250, 246, 236), font=title)
    # the lower third stays plain: the subtitles are drawn there by the screen
    draw_picture(draw, scene.picture, WIDTH // 2, 330)
    return np.asarray(image)


def timestamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def build() -> tuple[list[tuple[float, Scene]], np.ndarray, list[tuple[float, float, str, str]]]:
    """The scenes with their start, the whole narration, and one cue per sentence."""
    audio: list[np.ndarray] = []
    scenes: list[tuple[float, Scene]] = []
    cues: list[tuple[float, float, str, str]] = []
    now = 0.0
    for scene in SCENES:
        scenes.append((now, scene))
        for fr, en in scene.sentences:
            voice = speak(fr)
            cues.append((now, now + len(voice) / SAMPLE_RATE, fr, en))
            audio += [voice, np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)]
            now += len(voice) / SAMPLE_RATE + GAP_S
        audio.append(np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32))
        now += TAIL_S
    return scenes, np.concatenate(audio), cues


def write_video(path: Path, scenes: list[tuple[float, Scene]], audio: np.ndarray) -> None:
    total = len(audio) / SAMPLE_RATE
    # bitexact: no random ids nor version strings, so the same script writes the same bytes
    with av.open(str(path), "w", format="webm", container_options={"fflags": "+bitexact"}) as out:
        video = out.add_stream("libvpx-vp9", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        # still cards: a high quantizer keeps the drawing sharp and the file small
        video.options = {"crf": "40", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1",
                         "flags": "+bitexact"}
        sound = out.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        sound.bit_rate = 32_000
        cards = [(start, card(scene)) for start, scene in scenes]
        for n in range(int(total * FPS) + 1):
            picture = next(c for start, c in reversed(cards) if start <= n / FPS)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = n, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        step = 960   # 20 ms, an Opus frame
        for i in range(0, len(audio), step):
            chunk = audio[i:i + step]
            chunk = np.pad(chunk, (0, step - len(chunk)))
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, i, Fraction(1, SAMPLE_RATE)
            out.mux(sound.encode(frame))
        out.mux(sound.encode())


def write_vtt(path: Path, cues: list[tuple[float, float, str, str]], lang: str) -> None:
    lines = ["WEBVTT", f"Language: {lang}", ""]
    for n, (start, end, fr, en) in enumerate(cues, 1):
        lines += [str(n), f"{timestamp(start)} --> {timestamp(end)}", fr if lang == "fr" else en, ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    scenes, audio, cues = build()
    write_video(OUT / "intro.webm", scenes, audio)
    write_vtt(OUT / "intro-fr.vtt", cues, "fr")
    write_vtt(OUT / "intro-en.vtt", cues, "en")
    size = (OUT / "intro.webm").stat().st_size
    print(f"intro.webm: {len(audio) / SAMPLE_RATE:.1f} s, {size} bytes; {len(cues)} cues")


if __name__ == "__main__":
    main()
