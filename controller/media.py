"""The media library: the sounds and videos the room screens play (docs/media.md).

Two sources, one list of names (what a game file's ``do: sound`` / ``do: video`` names):

* the shipped files, ``dashboard/static/media`` (made by ``scripts/make_sounds.py``, CC0);
* the technician's uploads, kept in the data directory as ``media/<sha256>.<ext>`` (one
  copy per content, whatever its names) with ``media/library.json``, the names.

An upload is checked on its content, never its name: mutagen reads its container (WAV,
MP3, Ogg Vorbis or Opus, FLAC, MP4/M4A) and its duration, enzyme a WebM's (mutagen does
not read Matroska), and a WebVTT file of subtitles is read here; anything else is
refused, and so is a name whose extension is not the one of what the content is. Bounds:
:data:`MAX_BYTES`, :data:`MAX_DURATION_S`. Nothing is ever fetched from the internet.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import enzyme
import mutagen
from enzyme.exceptions import Error as EnzymeError
from enzyme.parsers import ebml
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, Atoms
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from config.game import MEDIA_NAME_PATTERN
from controller.core.errors import Bilingual

log = logging.getLogger(__name__)
# enzyme's specs predate elements every Opus WebM has (CodecDelay, SeekPreRoll): it logs
# each as an error, though it reads the file well
logging.getLogger("enzyme").setLevel(logging.CRITICAL)

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "static" / "media"
#: an upload larger than this is refused (an introduction video of a few minutes fits)
MAX_BYTES = 64 * 1024 * 1024
#: and one longer than this (background music loops; a film would not be a cue)
MAX_DURATION_S = 15 * 60
#: a name as a game file writes it: lower case, digits, ``_ - .``, and an extension
NAME = re.compile(MEDIA_NAME_PATTERN)
CHUNK = 64 * 1024
#: where screens load a file: by its content, so a browser may cache it for ever
URL_PREFIX = "/api/media/files/"

Kind = Literal["audio", "video", "subtitles"]


@dataclass(frozen=True, slots=True)
class Format:
    """What an upload's content is, once mutagen has read it."""

    kind: Kind
    mime: str
    extensions: tuple[str, ...]   # the first is the one stored
    label: str                    # as the technician knows it


#: the containers accepted, by the mutagen class that could read the content
FORMATS: dict[type, Format] = {
    WAVE: Format("audio", "audio/wav", ("wav",), "WAV"),
    MP3: Format("audio", "audio/mpeg", ("mp3",), "MP3"),
    OggVorbis: Format("audio", "audio/ogg", ("ogg", "oga"), "Ogg Vorbis"),
    OggOpus: Format("audio", "audio/ogg", ("opus", "ogg"), "Ogg Opus"),
    FLAC: Format("audio", "audio/flac", ("flac",), "FLAC"),
}
MP4_AUDIO = Format("audio", "audio/mp4", ("m4a", "mp4"), "MP4 (son)")
MP4_VIDEO = Format("video", "video/mp4", ("mp4", "m4v"), "MP4 (vidéo)")
WEBM_VIDEO = Format("video", "video/webm", ("webm",), "WebM (vidéo)")
WEBM_AUDIO = Format("audio", "audio/webm", ("webm", "weba"), "WebM (son)")
WEBVTT = Format("subtitles", "text/vtt", ("vtt",), "WebVTT (sous-titres)")
#: what the room screens' Chromium decodes in a WebM (Matroska codec ids)
WEBM_CODECS = frozenset({"V_VP8", "V_VP9", "V_AV1", "A_OPUS", "A_VORBIS"})
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
#: an EBML size of all ones: unknown (a live recording); anything below is a real size
UNKNOWN_SIZE = 2 ** 56 - 1
#: a subtitles file is text: this is already hours of cues
MAX_SUBTITLES_BYTES = 1024 * 1024
#: a WebVTT cue's timing line (hours optional), e.g. ``00:01.000 --> 00:04.250``
CUE_TIMING = re.compile(r"^(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})[ \t]+-->[ \t]+"
                        r"(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})(?:[ \t]|$)")
ACCEPTED = ("WAV, MP3, Ogg (Vorbis, Opus), FLAC, MP4/M4A (son ou vidéo), WebM (VP8, VP9, AV1 ; "
            "Opus, Vorbis), sous-titres WebVTT (.vtt)")


class MediaError(Bilingual):
    """An upload or a deletion refused; nothing changed. ``status``: the HTTP status."""

    def __init__(self, status: int, fr: str, en: str) -> None:
        super().__init__(fr, en=en)
        self.status = status


@dataclass(frozen=True, slots=True)
class MediaFile:
    """One name of the library (:class:`controller.api.models.MediaItem`)."""

    name: str
    hash: str
    ext: str
    kind: Kind
    mime: str
    format: str
    bytes: int
    duration_s: float
    shipped: bool
    added: float | None = None

    @property
    def stored(self) -> str:
        """The file's name on disk and in its URL: its content, so cached for ever."""
        return f"{self.hash}.{self.ext}"

    @property
    def url(self) -> str:
        return URL_PREFIX + self.stored


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mp4_has_video(path: Path) -> bool:
    """True when an MP4 holds a video track (its handler ``vide``): mutagen reads the
    audio of a film too, so the tracks tell a video from a song."""
    with path.open("rb") as f:
        atoms = Atoms(f)
        for trak in atoms[b"moov"].findall(b"trak"):
            try:
                ok, data = trak[b"mdia", b"hdlr"].read(f)
            except KeyError:
                continue
            if ok and data[8:12] == b"vide":
                return True
    return False


def _seconds(hours: str | None, minutes: str, seconds: str, millis: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


#: enzyme reads its element table from an XML file on each call: read once
_matroska_specs = functools.cache(ebml.get_matroska_specs)


def _webm(path: Path) -> tuple[Format, float] | None:
    """A WebM's format and duration, read by enzyme; None when it is no WebM at all.
    :class:`MediaError` (415) for a WebM the screens could not decode."""
    with path.open("rb") as f:
        if f.read(4) != EBML_MAGIC:
            return None
        f.seek(0)
        try:
            header = ebml.parse_element(f, _matroska_specs(), True)
            if header is None or header.name != "EBML" or header["DocType"].data != "webm":
                return None   # a Matroska (.mkv) that is not a WebM: not for a browser
            f.seek(0)
            found = enzyme.MKV(f)
            f.seek(0)
            segment = ebml.parse(f, _matroska_specs(), ignore_element_names=["EBML"], max_level=0)[0]
        except (EnzymeError, KeyError, IndexError, ValueError, OSError) as exc:
            log.info("upload not readable as WebM: %s", exc)
            return None
    # the headers come first: a file cut after them would pass for a whole video
    if segment.size < UNKNOWN_SIZE and segment.position + segment.size > path.stat().st_size:
        raise MediaError(415, "cette vidéo WebM est incomplète (coupée pendant l'envoi ou la copie ?)",
                         "this WebM is incomplete (cut while sent or copied?)")
    tracks = [*found.video_tracks, *found.audio_tracks]
    codecs = {t.codec_id for t in tracks}
    if not tracks or not codecs <= WEBM_CODECS:
        raise MediaError(415, f"cette vidéo WebM est codée en {', '.join(sorted(codecs)) or 'rien'}, que les "
                              "écrans ne lisent pas : VP8, VP9 ou AV1 pour l'image, Opus ou Vorbis "
                              "pour le son", f"this WebM holds {sorted(codecs)}, which the screens "
                                             "cannot decode: VP8, VP9 or AV1 video, Opus or Vorbis sound")
    duration = found.info.duration.total_seconds() if found.info and found.info.duration else 0.0
    return (WEBM_VIDEO if found.video_tracks else WEBM_AUDIO), duration


def _webvtt(path: Path) -> tuple[Format, float] | None:
    """A WebVTT file's duration (the end of its last cue); None when it is not WebVTT.
    :class:`MediaError` (415) for one with no cue."""
    if path.stat().st_size > MAX_SUBTITLES_BYTES:
        return None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError):
        return None
    lines = text.splitlines()
    if not lines or not re.match(r"^WEBVTT(?:[ \t]|$)", lines[0]):
        return None
    ends = [_seconds(*m.groups()[4:]) for line in lines if (m := CUE_TIMING.match(line))]
    if not ends:
        raise MediaError(415, "ces sous-titres WebVTT n'ont aucune réplique (lignes « 00:00.000 --> "
                              "00:02.000 » suivies du texte)", "these WebVTT subtitles hold no cue")
    return WEBVTT, max(ends)


def sniff(path: Path) -> tuple[Format, float]:
    """The format and duration (seconds) of the file at *path*, read from its content;
    :class:`MediaError` (415) when it is none of :data:`FORMATS`. *path* should have no
    extension: mutagen would count it as a hint."""
    try:
        found: Any = mutagen.File(str(path))
        if found is None:
            with path.open("rb") as f:
                head = f.read(2)
            # an MP3 without tags starts with a frame sync (11 bits set): only then tried
            if len(head) == 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
                found = MP3(str(path))
    except (mutagen.MutagenError, OSError, ValueError, KeyError, IndexError) as exc:
        log.info("upload not readable as media: %s", exc)
        found = None
    fmt = FORMATS.get(type(found))
    if isinstance(found, MP4):
        try:
            fmt = MP4_VIDEO if _mp4_has_video(path) else MP4_AUDIO
        except (mutagen.MutagenError, OSError, KeyError, ValueError):
            fmt = None
    other = _webm(path) or _webvtt(path) if found is None else None
    if other is not None:
        fmt, duration = other
        return fmt, _within_bounds(fmt, duration)
    if found is None or fmt is None:
        raise MediaError(415, f"ce fichier n'est ni un son ni une vidéo reconnus (acceptés : {ACCEPTED})",
                         "this file is not a sound, video or subtitles we can read (accepted: WAV, "
                         "MP3, Ogg, FLAC, MP4/M4A, WebM, WebVTT)")
    return fmt, _within_bounds(fmt, float(getattr(found.info, "length", 0.0) or 0.0))


def _within_bounds(fmt: Format, duration: float) -> float:
    """*duration*, once it is more than nothing and at most :data:`MAX_DURATION_S`."""
    if duration <= 0:
        raise MediaError(415, f"ce fichier {fmt.label} ne dure rien : est-il vide ou abîmé ?",
                         f"this {fmt.label} file has no duration: empty or damaged?")
    if duration > MAX_DURATION_S:
        raise MediaError(413, f"trop long : {_minutes(duration)}, au plus {_minutes(MAX_DURATION_S)}",
                         f"too long: {duration:.0f} s, at most {MAX_DURATION_S} s")
    return duration


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f}".replace(".", ",") + " Mo"


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise MediaError(422, "nom de fichier refusé : lettres minuscules sans accent, chiffres, - et _, "
                              "puis l'extension (ex. musique_salon.mp3)",
                         "file name refused: lower-case letters, digits, - and _, then the "
                         "extension (e.g. music_room.mp3)")


class MediaLibrary:
    """The shipped files and the uploads in *root*; thread-safe (uploads are checked in a
    worker thread while the loop lists)."""

    def __init__(self, root: Path, *, shipped: Path = SHIPPED_DIR) -> None:
        self.root = root
        self.index_path = root / "library.json"
        self._lock = threading.Lock()
        self._shipped = self._read_shipped(shipped)
        self._uploads: dict[str, MediaFile] = self._read_index()
        for left in root.glob(".upload-*") if root.is_dir() else []:
            left.unlink(missing_ok=True)   # an upload cut by a crash: never kept

    # -- reading ----------------------------------------------------------------------
    @staticmethod
    def _read_shipped(folder: Path) -> dict[str, MediaFile]:
        found = {}
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if not NAME.match(path.name):
                continue   # the licences, a README
            try:
                fmt, duration = sniff(path)
            except MediaError as exc:
                log.error("shipped media %s left out: %s", path.name, exc.en)
                continue
            found[path.name] = MediaFile(path.name, _hash_file(path), path.suffix[1:], fmt.kind,
                                         fmt.mime, fmt.label, path.stat().st_size, round(duration, 3),
                                         shipped=True)
        return found

    def _read_index(self) -> dict[str, MediaFile]:
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # the files are still there: a technician can upload them again; the game's
            # check names what is missing
            log.error("media library index %s unreadable (%s): starting with no uploads",
                      self.index_path, exc)
            return {}
        items = {}
        for entry in data.get("files", []):
            item = MediaFile(**{**entry, "shipped": False})
            if (self.root / item.stored).is_file():
                items[item.name] = item
            else:
                log.error("media %s: its file %s is missing", item.name, item.stored)
        return items

    def items(self) -> list[MediaFile]:
        with self._lock:
            return sorted([*self._shipped.values(), *self._uploads.values()], key=lambda m: m.name)

    def names(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._shipped) | frozenset(self._uploads)

    def get(self, name: str) -> MediaFile | None:
        with self._lock:
            return self._uploads.get(name) or self._shipped.get(name)

    def path_of(self, stored: str) -> Path | None:
        """The file on disk whose stored name (``<hash>.<ext>``) is *stored*, if any."""
        with self._lock:
            for item in (*self._shipped.values(), *self._uploads.values()):
                if item.stored == stored:
                    return (SHIPPED_DIR / item.name) if item.shipped else self.root / stored
        return None

    # -- changing -----------------------------------------------------------------------
    def receive(self) -> tuple[BinaryIO, Path]:
        """A temporary file in the library's folder (same disk: moved, not copied) with
        no extension, for an upload being received."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        return os.fdopen(fd, "wb"), Path(tmp)

    def add(self, name: str, received: Path) -> MediaFile:
        """Check the upload at *received* (a temporary file of :meth:`receive`, removed
        whatever happens) and keep it under *name*."""
        try:
            check_name(name)
            if self.get(name) is not None:
                raise MediaError(409, f"« {name} » existe déjà : supprimez-le d'abord ou choisissez un "
                                      "autre nom", f"{name!r} exists already: delete it first or "
                                                   "choose another name")
            size = received.stat().st_size
            if size > MAX_BYTES:
                raise MediaError(413, f"fichier trop gros : {_megabytes(size)}, au plus "
                                      f"{_megabytes(MAX_BYTES)}", f"file too large: {size} bytes, "
                                                                  f"at most {MAX_BYTES}")
            fmt, duration = sniff(received)
            ext = name.rsplit(".", 1)[1]
            if ext not in fmt.extensions:
                raise MediaError(415, f"ce fichier est un {fmt.label} : son nom doit finir par "
                                      f".{fmt.extensions[0]}, pas .{ext}",
                                 f"this file is {fmt.label}: its name must end with "
                                 f".{fmt.extensions[0]}, not .{ext}")
            item = MediaFile(name, _hash_file(received), fmt.extensions[0], fmt.kind, fmt.mime,
                             fmt.label, size, round(duration, 3), shipped=False, added=time.time())
            with self._lock:
                if name in self._uploads or name in self._shipped:   # a concurrent upload won
                    raise MediaError(409, f"« {name} » existe déjà", f"{name!r} exists already")
                target = self.root / item.stored
                if target.exists():
                    received.unlink()    # the same content under another name: one copy
                else:
                    os.replace(received, target)
                self._uploads[name] = item
                self._save()
            log.info("media %s added (%s, %d bytes, %.1f s)", name, fmt.label, size, duration)
            return item
        finally:
            received.unlink(missing_ok=True)

    def delete(self, name: str, *, in_use: frozenset[str] = frozenset()) -> MediaFile:
        """Forget the upload *name* (its file too when no other name holds the same
        content). A shipped file and one the game plays are refused (409)."""
        with self._lock:
            if name in self._shipped:
                raise MediaError(409, f"« {name} » est livré avec le jeu : il ne se supprime pas",
                                 f"{name!r} is shipped with the game: it cannot be deleted")
            item = self._uploads.get(name)
            if item is None:
                raise MediaError(404, f"« {name} » n'est pas dans la médiathèque",
                                 f"{name!r} is not in the media library")
            if name in in_use:
                raise MediaError(409, f"« {name} » est joué par le fichier de jeu : retirez-le du jeu "
                                      "d'abord", f"{name!r} is played by the game file: remove it "
                                                 "from the game first")
            del self._uploads[name]
            self._save()
            if not any(other.stored == item.stored for other in self._uploads.values()):
                (self.root / item.stored).unlink(missing_ok=True)
        log.info("media %s deleted", name)
        return item

    def _save(self) -> None:
        """The index, written whole then renamed: a crash leaves the old one or the new."""
        data = {"files": [{k: v for k, v in asdict(i).items() if k != "shipped"}
                          for i in self._uploads.values()]}
        tmp = self.index_path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.index_path)
