"""Media routes: the library of sounds and videos, and the clues' speech (docs/media.md).

* ``GET /api/media`` (game master, technician): every file, shipped and uploaded;
* ``POST /api/media?name=musique_salon.mp3`` (technician), the file itself as the body,
  ``Content-Type: application/octet-stream``: checked on its content (type, size,
  duration), kept under its SHA-256; 201 with the new entry. Refused, nothing kept: 413
  too large or too long, 415 not a sound or video we read (or a name whose extension is
  not its type), 409 a name already taken, 422 a name a game file could not write;
* ``DELETE /api/media/{name}`` (technician): a shipped file, or one the game plays: 409;
* ``GET /api/media/files/{hash}.{ext}`` (room screens and staff): the file, with byte
  ranges (a video seeks) and cached for ever (its name is its content);
* ``POST /api/media/play`` ``{"file": "ambiance.wav", "room": "salon", "volume": 0.5,
  "loop": true}`` (game master): play a file of the library on a room's screen (``room``: a
  node id, a list, or null: every screen); ``POST /api/media/stop`` ``{"room": …}``: silence
  them. Unknown file or room: 422;
* ``POST /api/media/intro`` (game master): the game file's introduction video (``intro:``)
  on its screen with its subtitles; none in the game file: 404;
* ``POST /api/media/volume`` ``{"room": "salon", "volume": 0.3}`` and ``POST
  /api/media/mute`` ``{"muted": true}`` (game master): a room's volume, the global mute,
  kept by the controller (:mod:`controller.mixer`); ``GET /api/media/mix``: them, and what
  each screen says it plays. Bad input: 422, nothing changed;
* ``POST /api/media/playing`` (a room screen, for its own room): what its elements play now;
* ``GET /api/speech/clues/{id}`` (room screens and staff): the clue's text spoken
  (``audio/wav``, made once per text); 503 in words when espeak-ng is not installed;
* ``GET /api/speech?text=…`` (game master): any text spoken, to hear it before sending.
* ``GET /api/speech/messages?text=…`` (room screens and staff): a message shown on that
  screen this game, spoken (for a group that reads little).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from controller.api.access import GM, OTHER_ROOM, SCREEN, TECH
from controller.api.auth import principal
from controller.api.deps import ServiceDep, actor, http_errors
from controller.api.errors import ApiError
from controller.api.models import (
    MediaCued,
    MediaDeleted,
    MediaItem,
    MediaList,
    MixView,
    PlayingHeard,
    SpeechStatus,
)
from controller.core.errors import InvalidValue, NotFoundError
from controller.media import ACCEPTED, MAX_BYTES, MAX_DURATION_S, MediaError, MediaFile, MediaLibrary
from controller.service import GameService
from controller.speech import MAX_CHARS, Speech, SpeechUnavailable

router = APIRouter(tags=["media"])
#: a content-named file never changes: cached for a year, never revalidated
IMMUTABLE = "private, max-age=31536000, immutable"
#: a spoken clue is named by its text too
SPOKEN = "private, max-age=86400"
BINARY = {"schema": {"type": "string", "format": "binary"}}
MEDIA_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"audio/*": BINARY, "video/*": BINARY}, "description": "the file"}}
SPEECH_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"content": {"audio/wav": BINARY}, "description": "the text spoken"}}


def library(request: Request) -> MediaLibrary:
    return request.app.state.media


def speech(request: Request) -> Speech:
    return request.app.state.speech


def item_view(item: MediaFile) -> dict[str, Any]:
    return {"name": item.name, "kind": item.kind, "format": item.format, "mime": item.mime,
            "bytes": item.bytes, "duration_s": item.duration_s, "hash": item.hash,
            "shipped": item.shipped, "added": item.added, "url": item.url}


def _refused(exc: MediaError | SpeechUnavailable) -> ApiError:
    return ApiError(exc.status, exc.fr, en=exc.en)


@router.get("/api/media", dependencies=[GM], response_model=MediaList)
def list_media(request: Request) -> dict[str, Any]:
    return {"files": [item_view(i) for i in library(request).items()], "max_bytes": MAX_BYTES,
            "max_duration_s": MAX_DURATION_S, "accepted": ACCEPTED}


def _too_large(size: int | None = None) -> ApiError:
    mb = f"{MAX_BYTES / 1_000_000:.0f}"
    said = "" if size is None else f" ({size / 1_000_000:.1f} Mo)".replace(".", ",")
    return ApiError(413, f"fichier trop gros{said} : au plus {mb} Mo",
                    en=f"file too large: at most {MAX_BYTES} bytes")


@router.post("/api/media", dependencies=[TECH], response_model=MediaItem, status_code=201,
             max_body_size=MAX_BYTES + 1024 * 1024)
async def upload_media(request: Request,
                       name: Annotated[str, Query(max_length=64, description="the name a game file "
                                                  "will give it, e.g. musique_salon.mp3")]) -> dict[str, Any]:
    """The body is the file itself (``application/octet-stream``), read here after the
    role was checked, on disk as it comes, never whole in memory."""
    lib = library(request)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BYTES:
        raise _too_large(int(declared))
    out, tmp = await asyncio.to_thread(lib.receive)
    size = 0
    try:
        with out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BYTES:
                    raise _too_large()
                await asyncio.to_thread(out.write, chunk)
        item = await asyncio.to_thread(lib.add, name, tmp)
    except MediaError as exc:
        raise _refused(exc) from exc
    except OSError as exc:   # a full disk: nothing kept, the game goes on
        raise ApiError(507, f"le fichier n'a pas pu être enregistré ({exc.strerror}) : disque plein ?",
                       en=f"the file could not be stored ({exc.strerror}): disk full?") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return item_view(item)


Room = Annotated[str, Field(max_length=40)]


class PlayOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(max_length=64, description="a name of the library")
    room: Room | list[Room] | None = Field(default=None, description="node id(s); null: every screen")
    volume: float = Field(default=1.0, ge=0, le=1)
    loop: bool = Field(default=False, description="the room's music: loops until stopped")


class StopOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: Room | list[Room] | None = Field(default=None, description="node id(s); null: every screen")


def _rooms(room: str | list[str] | None) -> tuple[str, ...] | None:
    return None if room is None else (room,) if isinstance(room, str) else tuple(room)


def _cued(service: GameService) -> dict[str, Any]:
    cue = service.engine.cues[-1]
    return {"id": cue.id, "kind": cue.kind, "file": cue.file,
            "rooms": list(cue.rooms) if cue.rooms is not None else None}


@router.post("/api/media/play", dependencies=[GM], response_model=MediaCued)
async def play_media(request: Request, body: PlayOrder, service: ServiceDep) -> dict[str, Any]:
    item = library(request).get(body.file)
    if item is None:
        raise ApiError(422, f"« {body.file} » n'est pas dans la médiathèque",
                       en=f"{body.file!r} is not in the media library")
    if item.kind == "subtitles":
        raise ApiError(422, f"« {body.file} » est un fichier de sous-titres : il s'affiche avec sa vidéo, "
                            "il ne se joue pas seul", en=f"{body.file!r} is subtitles: shown with its "
                                                        "video, not played alone")
    kind = "video" if item.kind == "video" else "sound"
    with http_errors(), bad_input():
        service.orders.cue_media(kind, item.name, _rooms(body.room), volume=body.volume, loop=body.loop,
                                 who=actor(request))
    return _cued(service)


@router.post("/api/media/intro", dependencies=[GM], response_model=MediaCued)
async def play_intro(request: Request, service: ServiceDep) -> dict[str, Any]:
    """The game file's introduction video (``intro:``) on its screen, with its subtitles:
    the game master starts it at the briefing; ``POST /api/media/stop`` stops it."""
    intro = service.ctx.game.intro
    if intro is None:
        raise ApiError(404, "le fichier de jeu n'a pas de vidéo de présentation (intro:)",
                       en="the game file has no introduction video (intro:)")
    item = library(request).get(intro.file)
    if item is None or item.kind != "video":
        raise ApiError(409, f"la vidéo de présentation « {intro.file} » n'est pas une vidéo de la "
                            "médiathèque", en=f"the introduction video {intro.file!r} is not a video "
                                              "of the media library")
    with http_errors():
        service.orders.cue_media("video", item.name, None if intro.room is None else (intro.room,),
                                 volume=intro.volume, subtitles=tuple(intro.subtitles.items()),
                                 who=actor(request))
    return _cued(service)


@router.post("/api/media/stop", dependencies=[GM], response_model=MediaCued)
async def stop_media(request: Request, body: StopOrder, service: ServiceDep) -> dict[str, Any]:
    with http_errors(), bad_input():
        service.orders.cue_media("stop", "", _rooms(body.room), who=actor(request))
    return _cued(service)


@router.delete("/api/media/{name}", dependencies=[TECH], response_model=MediaDeleted)
def delete_media(request: Request, service: ServiceDep, name: Annotated[str, PathParam(max_length=64)]
                 ) -> dict[str, str]:
    try:
        item = library(request).delete(name, in_use=service.ctx.game.media_files())
    except MediaError as exc:
        raise _refused(exc) from exc
    return {"deleted": item.name}


@router.get("/api/media/files/{stored}", dependencies=[SCREEN], response_class=FileResponse,
            responses=MEDIA_ANSWER)
def media_file(request: Request, stored: Annotated[str, PathParam(max_length=80)]) -> FileResponse:
    lib = library(request)
    path = lib.path_of(stored)
    if path is None:
        raise ApiError(404, f"fichier inconnu de la médiathèque : {stored}",
                       en=f"no such file in the media library: {stored}")
    item = next(i for i in lib.items() if i.stored == stored)
    return FileResponse(path, media_type=item.mime, headers={"Cache-Control": IMMUTABLE})


@router.get("/api/speech/status", dependencies=[GM], response_model=SpeechStatus)
def speech_status(request: Request) -> dict[str, Any]:
    voice = speech(request)
    return {"available": voice.available(), "voice": voice.voice, "rate_wpm": voice.rate}


async def _spoken(request: Request, text: str) -> FileResponse:
    try:
        spoken = await asyncio.to_thread(speech(request).speak, text)
    except SpeechUnavailable as exc:
        raise _refused(exc) from exc
    return FileResponse(spoken.path, media_type="audio/wav",
                        headers={"Cache-Control": SPOKEN, "X-Speech-Cache": "miss" if spoken.made else "hit"})


@router.get("/api/speech/clues/{clue_id}", dependencies=[SCREEN], response_class=FileResponse,
            responses=SPEECH_ANSWER)
async def clue_speech(request: Request, service: ServiceDep,
                      clue_id: Annotated[str, PathParam(max_length=40)]) -> FileResponse:
    """A clue sent this game, spoken in French (a screen can speak only what was sent)."""
    clue = next((c for c in service.ctx.engine.clues if c.id == clue_id), None)
    if clue is None:
        raise ApiError(404, f"indice inconnu : {clue_id}", en=f"unknown clue: {clue_id}")
    # in the wording the group's profile shows (a shorter one for a group that reads little)
    wording = service.views.clue_wording(clue)
    return await _spoken(request, wording.fr if wording is not None else clue.text)


@router.get("/api/speech", dependencies=[GM], response_class=FileResponse,
            responses=SPEECH_ANSWER)
async def text_speech(request: Request,
                      text: Annotated[str, Query(min_length=1, max_length=MAX_CHARS)]) -> FileResponse:
    """Any text spoken, for the game master to hear before sending it."""
    return await _spoken(request, text)


# -- the game master's hand on the screens' sound (controller/mixer.py) -------------------
@contextmanager
def bad_input() -> Iterator[None]:
    """An unknown room or file in an order is bad input: 422, nothing changed."""
    try:
        yield
    except (NotFoundError, InvalidValue) as exc:
        raise ApiError.of(422, exc) from exc


class VolumeOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: Room = Field(description="a node id")
    volume: float = Field(ge=0, le=1, allow_inf_nan=False, description="0 to 1 (0 to 100 %)")


class MuteOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    muted: bool


class PlayingItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(max_length=80, description="the element, stable while it plays")
    file: str = Field(max_length=64, description="a name of the library; empty: a clue's voice")
    kind: Literal["music", "cue", "voice", "video"]
    paused: bool
    muted: bool
    volume: float = Field(ge=0, le=1, allow_inf_nan=False)
    played_s: float = Field(ge=0, allow_inf_nan=False, description="seconds since it started playing "
                            "(a looping music may play for days)")


class PlayingReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: Room
    screen: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$",
                        description="this page, as long as it is open")
    items: list[PlayingItem] = Field(max_length=16)
    gone: bool = Field(default=False, description="the page is closing")


@router.get("/api/media/mix", dependencies=[GM], response_model=MixView)
def mix(service: ServiceDep) -> dict[str, Any]:
    return service.mixer.view()


@router.post("/api/media/volume", dependencies=[GM], response_model=MixView)
async def set_volume(request: Request, body: VolumeOrder, service: ServiceDep) -> dict[str, Any]:
    with bad_input():
        service.mixer.set_volume(body.room, body.volume, who=actor(request))
    return service.mixer.view()


@router.post("/api/media/mute", dependencies=[GM], response_model=MixView)
async def mute(request: Request, body: MuteOrder, service: ServiceDep) -> dict[str, Any]:
    service.mixer.mute(body.muted, who=actor(request))
    return service.mixer.view()


@router.post("/api/media/playing", dependencies=[SCREEN], response_model=PlayingHeard)
async def playing(request: Request, body: PlayingReport, service: ServiceDep) -> dict[str, bool]:
    """A room screen says what it plays now (a screen only for its own room)."""
    who = principal(request)
    if who.role == "screen" and who.room != body.room:
        raise ApiError(403, OTHER_ROOM[0], en=OTHER_ROOM[1])
    with bad_input():
        service.mixer.report(body.room, body.screen, [i.model_dump() for i in body.items], gone=body.gone)
    return {"ok": True}


@router.get("/api/speech/messages", dependencies=[SCREEN], response_class=FileResponse,
            responses=SPEECH_ANSWER)
async def message_speech(request: Request, service: ServiceDep,
                         text: Annotated[str, Query(min_length=1, max_length=MAX_CHARS)]) -> FileResponse:
    """A message of this game shown on the caller's screen, spoken in French: what a group
    that reads little hears (docs/media.md, « Profils du groupe »). A screen can speak only
    a message it was shown."""
    room = principal(request).room
    if not any(m.text == text and (m.room is None or room is None or m.room == room)
               for m in service.ctx.engine.messages):
        raise ApiError(404, "message inconnu sur cet écran", en="no such message on this screen")
    return await _spoken(request, text)
