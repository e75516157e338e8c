"""The media library and the clues' speech, from outside: HTTP only, over the real app
with access control on (docs/media.md).

An upload is judged on its content: a good WAV is kept under its SHA-256, listed and
served with byte ranges and a cache for ever; a file that is no sound (even named .mp3),
a WAV named .mp3, a file too large: refused in French, nothing kept. A clue is spoken by
espeak-ng once per text; without espeak-ng the refusal says so and the game goes on.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import uuid
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from config.game import Game
from config.loader import GameConfigError, parse_game
from controller.api.auth import AuthSettings
from controller.api.routes import media as media_routes
from controller.main import create_app
from controller.media import SHIPPED_DIR
from controller.speech import as_said
from protocol.mqtt import BrokerAddress
from tests.conftest import BrokerHandle
from tests.controller.conftest import GAME

AUTH = AuthSettings(gm_password="gm-password", tech_password="tech-password",
                    screen_secret="media-screen-secret", session_secret="media-session-secret")
OCTETS = {"Content-Type": "application/octet-stream"}


def tone_wav(seconds: float = 0.5, freq: float = 440.0, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate)))
                               for i in range(int(rate * seconds))))
    return out.getvalue()


@contextmanager
def running(game: Game, broker: BrokerHandle, tmp_path: Path) -> Iterator[FastAPI]:
    """The controller playing *game* on *broker*, started (its lifespan run) for test clients."""
    application = create_app(game=game, auth=AUTH, db_path=tmp_path / "escape.db",
                             broker=BrokerAddress(broker.host, broker.port))
    with TestClient(application):
        yield application


@pytest.fixture
def app(embedded_broker: BrokerHandle, tmp_path: Path, game: Game) -> Iterator[FastAPI]:
    with running(game, embedded_broker, tmp_path) as application:
        yield application


def logged(app: FastAPI, password: str) -> TestClient:
    client = TestClient(app, follow_redirects=False, headers={"Content-Type": "application/json"})
    assert client.post("/api/login", json={"password": password}).status_code == 200
    return client


@pytest.fixture
def tech(app: FastAPI) -> TestClient:
    return logged(app, "tech-password")


def upload(client: TestClient, name: str, body: bytes):
    return client.post("/api/media", params={"name": name}, content=body, headers=OCTETS)


def names(client: TestClient) -> set[str]:
    reply = client.get("/api/media")
    assert reply.status_code == 200, reply.text
    return {f["name"] for f in reply.json()["files"]}


def stored_files(tmp_path: Path) -> list[str]:
    folder = tmp_path / "media"
    return sorted(p.name for p in folder.iterdir() if p.name != "library.json") if folder.exists() else []


def assert_french_refusal(reply, status: int, words: str) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert words in body["detail"], body
    assert body["detail_en"] and body["detail_en"] != body["detail"]


def test_the_shipped_sounds_are_listed_with_their_duration(tech: TestClient) -> None:
    files = {f["name"]: f for f in tech.get("/api/media").json()["files"]}
    assert {"chime.wav", "solved.wav", "wrong.wav", "unlock.wav", "ambiance.wav"} <= set(files)
    assert files["chime.wav"]["shipped"] and files["chime.wav"]["kind"] == "audio"
    assert 1.0 < files["chime.wav"]["duration_s"] < 2.0
    assert files["ambiance.wav"]["duration_s"] == pytest.approx(16.0, abs=0.01)


def test_a_sound_uploaded_is_kept_by_its_hash_listed_served_with_ranges_and_deleted(
        tech: TestClient, tmp_path: Path) -> None:
    body = tone_wav()
    reply = upload(tech, "porte_qui_grince.wav", body)
    assert reply.status_code == 201, reply.text
    item = reply.json()
    digest = hashlib.sha256(body).hexdigest()
    assert item["hash"] == digest and item["format"] == "WAV" and item["bytes"] == len(body)
    assert item["duration_s"] == pytest.approx(0.5, abs=0.01)
    assert stored_files(tmp_path) == [f"{digest}.wav"]
    assert "porte_qui_grince.wav" in names(tech)

    served = tech.get(item["url"])
    assert served.status_code == 200 and served.content == body
    assert served.headers["content-type"] == "audio/wav"
    assert "immutable" in served.headers["cache-control"]
    assert served.headers["accept-ranges"] == "bytes"
    part = tech.get(item["url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == body[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(body)}"

    again = upload(tech, "porte_qui_grince.wav", body)
    assert_french_refusal(again, 409, "existe déjà")

    gone = tech.request("DELETE", "/api/media/porte_qui_grince.wav")
    assert gone.status_code == 200, gone.text
    assert "porte_qui_grince.wav" not in names(tech)
    assert stored_files(tmp_path) == []
    assert tech.get(item["url"]).status_code == 404


def test_a_file_that_is_no_sound_renamed_mp3_is_refused_in_french_and_nothing_kept(
        tech: TestClient, tmp_path: Path) -> None:
    before = names(tech)
    fake = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40     # a picture, renamed
    reply = upload(tech, "musique.mp3", fake)
    assert_french_refusal(reply, 415, "ni un son ni une vidéo")
    assert names(tech) == before
    assert stored_files(tmp_path) == []


def test_a_wav_named_mp3_is_refused_the_type_is_read_from_the_content(tech: TestClient,
                                                                        tmp_path: Path) -> None:
    reply = upload(tech, "musique.mp3", tone_wav())
    assert_french_refusal(reply, 415, "doit finir par .wav")
    assert stored_files(tmp_path) == []


def test_a_file_too_large_is_refused_in_french_and_nothing_kept(
        tech: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media_routes, "MAX_BYTES", 20_000)
    body = tone_wav(seconds=2.0)            # 32 KB
    assert_french_refusal(upload(tech, "long.wav", body), 413, "trop gros")

    def chunks() -> Iterator[bytes]:        # no Content-Length: counted as it comes
        yield from (body[i:i + 4096] for i in range(0, len(body), 4096))

    streamed = tech.post("/api/media", params={"name": "long.wav"}, content=chunks(), headers=OCTETS)
    assert_french_refusal(streamed, 413, "trop gros")
    assert stored_files(tmp_path) == []
    assert "long.wav" not in names(tech)


def test_only_the_technician_uploads_or_deletes_and_a_shipped_sound_stays(app: FastAPI) -> None:
    gm = logged(app, "gm-password")
    assert "chime.wav" in names(gm)          # the game master reads the library
    assert upload(gm, "x.wav", tone_wav()).status_code == 403
    assert gm.request("DELETE", "/api/media/chime.wav").status_code == 403
    anonymous = TestClient(app)
    assert upload(anonymous, "x.wav", tone_wav()).status_code == 401
    tech = logged(app, "tech-password")
    assert_french_refusal(tech.request("DELETE", "/api/media/chime.wav"), 409, "livré avec le jeu")
    assert_french_refusal(upload(tech, "Musique Été.wav", tone_wav()), 422, "nom de fichier refusé")


def test_a_room_screen_loads_a_media_file_with_its_token(app: FastAPI) -> None:
    tech = logged(app, "tech-password")
    url = next(f["url"] for f in tech.get("/api/media").json()["files"] if f["name"] == "chime.wav")
    screen = TestClient(app)
    reply = screen.get(url, params={"token": AUTH.screen_token("hall")})
    assert reply.status_code == 200 and reply.content[:4] == b"RIFF"
    assert screen.get(url).status_code == 401


# -- speech ---------------------------------------------------------------------------------
def send_clue(client: TestClient, text: str) -> str:
    started = client.post("/api/game/start", json={"parcours": "primo", "players": 4})
    assert started.status_code in (200, 409), started.text
    reply = client.post("/api/clues", json={"text": text, "room": "hall"})
    assert reply.status_code == 200, reply.text
    return reply.json()["clue"]["id"]


def test_a_clue_is_spoken_once_per_text_and_served_to_its_screen(app: FastAPI, tmp_path: Path) -> None:
    gm = logged(app, "gm-password")
    text = "Regardez la date sur le bail, dans la boîte aux lettres."
    first = send_clue(gm, text)
    screen = TestClient(app)
    token = {"token": AUTH.screen_token("hall")}
    spoken = screen.get(f"/api/speech/clues/{first}", params=token)
    assert spoken.status_code == 200, spoken.text
    assert spoken.headers["content-type"] == "audio/wav" and spoken.content[:4] == b"RIFF"
    assert spoken.headers["x-speech-cache"] == "miss"
    made = sorted((tmp_path / "speech").iterdir())
    assert len(made) == 1
    stamp = made[0].stat().st_mtime_ns

    second = send_clue(gm, text)                   # the same words again: no new synthesis
    assert second != first
    again = screen.get(f"/api/speech/clues/{second}", params=token)
    assert again.headers["x-speech-cache"] == "hit" and again.content == spoken.content
    assert sorted((tmp_path / "speech").iterdir()) == made
    assert made[0].stat().st_mtime_ns == stamp
    assert app.state.speech.made == 1

    assert screen.get("/api/speech/clues/nope", params=token).status_code == 404


def test_without_espeak_ng_speech_is_refused_in_french_and_the_clue_still_shown(app: FastAPI) -> None:
    app.state.speech.program = "espeak-ng-not-installed"
    gm = logged(app, "gm-password")
    clue = send_clue(gm, "Un indice que personne ne dira.")
    reply = gm.get(f"/api/speech/clues/{clue}")
    assert_french_refusal(reply, 503, "espeak-ng n'est pas installé")
    assert gm.get("/api/speech/status").json()["available"] is False
    shown = gm.get("/api/state").json()["game"]["clues"]
    assert any(c["id"] == clue for c in shown)


# -- cues: a sound action of the game file, carried to the room screens ---------------------
@pytest.fixture
def sound_app(embedded_broker: BrokerHandle, tmp_path: Path) -> Iterator[FastAPI]:
    text = GAME.format(apartment_id=f"t{uuid.uuid4().hex[:10]}").replace(
        "      - {do: unlock, target: hall.box_lock}",
        "      - {do: unlock, target: hall.box_lock}\n"
        "      - {do: sound, file: unlock.wav, room: hall, volume: 0.7}")
    game = parse_game(text, media={"unlock.wav"}).game
    with running(game, embedded_broker, tmp_path) as application:
        yield application


def test_a_sound_action_reaches_its_rooms_screen_with_the_url_to_play_and_no_other(sound_app: FastAPI) -> None:
    gm = logged(sound_app, "gm-password")
    assert gm.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
    hall, salon = TestClient(sound_app), TestClient(sound_app)
    hall.params = {"token": AUTH.screen_token("hall")}
    salon.params = {"token": AUTH.screen_token("salon")}
    assert hall.get("/api/state").json()["game"]["cues"] == []
    preload = hall.get("/api/state").json()["game"]["preload"]      # loaded before it is needed
    assert [p["file"] for p in preload] == ["unlock.wav"] and hall.get(preload[0]["url"]).status_code == 200
    assert salon.get("/api/state").json()["game"]["preload"] == []

    assert gm.post("/api/game/puzzles/mailbox/solve").status_code == 200
    cues = hall.get("/api/state").json()["game"]["cues"]
    assert [(c["id"], c["kind"], c["file"], c["volume"], c["loop"]) for c in cues] == \
        [(1, "sound", "unlock.wav", 0.7, False)]
    played = hall.get(cues[0]["url"])
    assert played.status_code == 200 and played.headers["content-type"] == "audio/wav"
    assert salon.get("/api/state").json()["game"]["cues"] == []


def test_codes_hours_and_the_hash_key_are_said_as_a_person_would() -> None:
    assert as_said("Tapez  0412 puis #.") == "Tapez 0 4 1 2 puis dièse ."
    assert as_said("Rendez-vous à 12 h 30 ou 9h05, loyer 1507 €") == \
        "Rendez-vous à 12 heures 30 ou 9 heures 05, loyer 1507 €"


def test_a_game_file_playing_a_sound_not_in_the_library_is_refused_on_reload_at_its_line(
        embedded_broker: BrokerHandle, tmp_path: Path, game: Game) -> None:
    path = tmp_path / "game.yaml"
    good = GAME.format(apartment_id=game.apartment.id)
    path.write_text(good, encoding="utf-8")
    application = create_app(game=game, auth=AUTH, db_path=tmp_path / "escape.db", config_path=path,
                             broker=BrokerAddress(embedded_broker.host, embedded_broker.port))
    with TestClient(application):
        tech = logged(application, "tech-password")
        bad = good.replace("      - {do: unlock, target: hall.box_lock}",
                           "      - {do: unlock, target: hall.box_lock}\n"
                           "      - {do: sound, file: applaudissements.wav, room: hall}")
        path.write_text(bad, encoding="utf-8")
        line = bad.splitlines().index("      - {do: sound, file: applaudissements.wav, room: hall}") + 1
        reply = tech.post("/api/config/reload", json={})
        assert reply.status_code == 422, reply.text
        assert reply.json()["errors"] == [
            f"{path}:{line}:21: error: puzzles[0].actions[1].file: fichier absent de la médiathèque : "
            "'applaudissements.wav' (à téléverser sur la page du technicien, ou nom mal écrit)"]
        # uploaded, the same file is taken
        assert upload(tech, "applaudissements.wav", tone_wav()).status_code == 201
        reply = tech.post("/api/config/reload", json={})
        assert reply.status_code == 200 and reply.json()["status"] == "reloaded", reply.text
        assert tech.request("DELETE", "/api/media/applaudissements.wav").status_code == 409


def test_an_upload_cut_by_a_crash_leaves_nothing_behind(tmp_path: Path) -> None:
    from controller.media import MediaLibrary

    (tmp_path / "media").mkdir()
    (tmp_path / "media" / ".upload-abc123").write_bytes(b"half a file")
    library = MediaLibrary(tmp_path / "media")
    assert list((tmp_path / "media").iterdir()) == []
    assert "chime.wav" in library.names()


def test_a_full_disk_refuses_an_upload_and_a_speech_in_french_and_keeps_nothing(
        embedded_broker: BrokerHandle, tmp_path: Path, game: Game) -> None:
    from tests.support.diskfull import fill, small_tmpfs

    with small_tmpfs(tmp_path / "data", size_kb=512) as data:
        application = create_app(game=game, auth=AUTH, db_path=data / "escape.db",
                                 broker=BrokerAddress(embedded_broker.host, embedded_broker.port))
        with TestClient(application):
            tech = logged(application, "tech-password")
            body = tone_wav(seconds=40.0)          # 640 KB: more than the disk holds
            assert_french_refusal(upload(tech, "trop_gros.wav", body), 507, "disque plein")
            assert stored_files(data) == []
            assert "trop_gros.wav" not in names(tech)
            assert upload(tech, "petit.wav", tone_wav(0.2)).status_code == 201   # room for a small one
            fill(data / "filler")                  # now the disk is full
            reply = tech.get("/api/speech", params={"text": "Un texte qui ne tiendra pas sur le disque."})
            assert_french_refusal(reply, 503, "synthèse vocale a échoué")
            assert [p.name for p in (data / "speech").iterdir()] == []


def test_the_game_master_plays_music_in_one_room_and_stops_it(app: FastAPI) -> None:
    gm = logged(app, "gm-password")
    assert gm.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
    hall, salon = TestClient(app), TestClient(app)
    hall.params = {"token": AUTH.screen_token("hall")}
    salon.params = {"token": AUTH.screen_token("salon")}
    reply = gm.post("/api/media/play", json={"file": "ambiance.wav", "room": "salon", "volume": 0.4,
                                             "loop": True})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"id": 1, "kind": "sound", "file": "ambiance.wav", "rooms": ["salon"]}
    cue = salon.get("/api/state").json()["game"]["cues"][-1]
    assert (cue["file"], cue["volume"], cue["loop"]) == ("ambiance.wav", 0.4, True)
    assert salon.get(cue["url"]).status_code == 200
    assert hall.get("/api/state").json()["game"]["cues"] == []

    stop = gm.post("/api/media/stop", json={"room": ["salon"]})
    assert stop.status_code == 200 and stop.json()["kind"] == "stop"
    last = salon.get("/api/state").json()["game"]["cues"][-1]
    assert last["kind"] == "stop" and last["url"] is None
    audit = [e["action"] for e in gm.get("/api/state").json()["game"]["audit"]]
    assert "media_sound" in audit and "media_stop" in audit

    assert_french_refusal(gm.post("/api/media/play", json={"file": "absent.wav"}), 422,
                          "n'est pas dans la médiathèque")
    assert_french_refusal(gm.post("/api/media/play", json={"file": "chime.wav", "room": "cave"}), 422,
                          "pièce inconnue")
    assert hall.post("/api/media/play", json={"file": "chime.wav"}).status_code == 403


# -- the introduction video, its subtitles, and what a clue shows and plays -----------------
INTRO = "intro:\n  file: intro.webm\n  room: hall\n  subtitles: {fr: intro-fr.vtt, en: intro-en.vtt}\n"


def intro_game(extra: str = INTRO, *, media: frozenset[str] | None = None) -> Game:
    text = GAME.format(apartment_id=f"t{uuid.uuid4().hex[:10]}").replace(
        '      - {text: "Jour puis mois.", cost: 20}',
        '      - {text: "Jour puis mois.", cost: 20, icon: "📅", voice: unlock.wav}')
    return parse_game(text + extra, media=media if media is not None else
                      {"intro.webm", "intro-fr.vtt", "intro-en.vtt", "unlock.wav"}).game


@pytest.fixture
def intro_app(embedded_broker: BrokerHandle, tmp_path: Path) -> Iterator[FastAPI]:
    with running(intro_game(), embedded_broker, tmp_path) as application:
        yield application


def screen(app: FastAPI, room: str) -> TestClient:
    client = TestClient(app)
    client.params = {"token": AUTH.screen_token(room)}
    return client


def test_the_shipped_intro_video_and_its_subtitles_are_in_the_library(tech: TestClient) -> None:
    files = {f["name"]: f for f in tech.get("/api/media").json()["files"]}
    video = files["intro.webm"]
    assert (video["kind"], video["format"], video["mime"]) == ("video", "WebM (vidéo)", "video/webm")
    assert 30 <= video["duration_s"] <= 60 and video["bytes"] < 3_000_000 and video["shipped"]
    for lang in ("fr", "en"):
        vtt = files[f"intro-{lang}.vtt"]
        assert (vtt["kind"], vtt["mime"]) == ("subtitles", "text/vtt")
        assert 0 < vtt["duration_s"] <= video["duration_s"]


def test_a_webm_and_a_webvtt_uploaded_are_read_from_their_content(tech: TestClient, tmp_path: Path) -> None:
    body = (SHIPPED_DIR / "intro.webm").read_bytes()
    reply = upload(tech, "presentation.webm", body)
    assert reply.status_code == 201, reply.text
    item = reply.json()
    assert (item["kind"], item["format"]) == ("video", "WebM (vidéo)")
    assert item["duration_s"] == pytest.approx(45.4, abs=2)
    vtt = "WEBVTT\n\n00:00.500 --> 00:02.000\nBonjour.\n\n1\n00:01:02.000 --> 00:01:04.250\nAu revoir.\n"
    reply = upload(tech, "presentation-fr.vtt", vtt.encode())
    assert reply.status_code == 201, reply.text
    assert (reply.json()["kind"], reply.json()["duration_s"]) == ("subtitles", 64.25)
    assert stored_files(tmp_path) == sorted([f"{hashlib.sha256(body).hexdigest()}.webm",
                                             f"{hashlib.sha256(vtt.encode()).hexdigest()}.vtt"])


@pytest.mark.parametrize(("name", "body", "words"), [
    ("film.webm", b"Ceci est un texte, pas une video.\n" * 50, "ni un son ni une vidéo reconnus"),
    ("film.webm", (SHIPPED_DIR / "intro.webm").read_bytes()[:600], "vidéo WebM est incomplète"),
    ("film.webm", (SHIPPED_DIR / "intro.webm").read_bytes()[:-1000], "vidéo WebM est incomplète"),
    # a codec the screens' Chromium does not decode (its id changed in place)
    ("film.webm", (SHIPPED_DIR / "intro.webm").read_bytes().replace(b"V_VP9", b"V_XYZ", 1),
     "codée en A_OPUS, V_XYZ, que les écrans ne lisent pas"),
    ("film.vtt", b"Ceci est un texte, pas des sous-titres.\n", "ni un son ni une vidéo reconnus"),
    ("film.vtt", b"WEBVTT\n\nBonjour sans horaire.\n", "aucune réplique"),
    ("film.webm", (SHIPPED_DIR / "intro-fr.vtt").read_bytes(), "son nom doit finir par .vtt"),
])
def test_a_file_that_is_no_video_or_subtitles_is_refused_in_french_and_nothing_kept(
        tech: TestClient, tmp_path: Path, name: str, body: bytes, words: str) -> None:
    assert_french_refusal(upload(tech, name, body), 415, words)
    assert stored_files(tmp_path) == [] and name not in names(tech)


def test_the_intro_video_is_served_with_ranges_and_caching_and_its_subtitles_as_text_vtt(
        app: FastAPI) -> None:
    gm, hall = logged(app, "gm-password"), screen(app, "hall")
    files = {f["name"]: f for f in gm.get("/api/media").json()["files"]}
    body = (SHIPPED_DIR / "intro.webm").read_bytes()
    part = hall.get(files["intro.webm"]["url"], headers={"Range": "bytes=1000-4999"})
    assert part.status_code == 206 and part.content == body[1000:5000]
    assert part.headers["content-range"] == f"bytes 1000-4999/{len(body)}"
    assert part.headers["content-type"] == "video/webm"
    assert part.headers["cache-control"] == media_routes.IMMUTABLE
    assert hall.get(files["intro.webm"]["url"]).headers["accept-ranges"] == "bytes"
    vtt = hall.get(files["intro-fr.vtt"]["url"])
    assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.text.startswith("WEBVTT") and vtt.headers["cache-control"] == media_routes.IMMUTABLE


def test_the_intro_plays_on_its_screen_with_its_subtitles_and_a_clue_carries_its_pictogram_and_voice(
        intro_app: FastAPI) -> None:
    gm, hall, salon = logged(intro_app, "gm-password"), screen(intro_app, "hall"), screen(intro_app, "salon")
    assert {"intro.webm", "intro-fr.vtt", "intro-en.vtt"} <= {p["file"] for p in
                                                              hall.get("/api/state").json()["game"]["preload"]}
    assert gm.post("/api/game/check", json={"parcours": "primo", "players": 4}).status_code == 200
    reply = gm.post("/api/media/intro", json={})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"id": 1, "kind": "video", "file": "intro.webm", "rooms": ["hall"]}
    cue = hall.get("/api/state").json()["game"]["cues"][-1]
    assert cue["kind"] == "video" and hall.get(cue["url"]).status_code == 200
    assert [(s["lang"], s["file"]) for s in cue["subtitles"]] == [("fr", "intro-fr.vtt"), ("en", "intro-en.vtt")]
    assert hall.get(cue["subtitles"][0]["url"]).text.startswith("WEBVTT")
    assert salon.get("/api/state").json()["game"]["cues"] == []
    assert "media_video" in [e["action"] for e in gm.get("/api/state").json()["game"]["audit"]]
    assert_french_refusal(gm.post("/api/media/play", json={"file": "intro-fr.vtt", "room": "hall"}), 422,
                          "fichier de sous-titres")

    assert gm.post("/api/game/briefing", json={"override_reason": "essai sans les pièces"}).status_code == 200
    assert gm.post("/api/game/start", json={"parcours": "primo", "players": 4}).status_code == 200
    written = gm.post("/api/clues", json={"puzzle": "mailbox", "index": 1})
    free = gm.post("/api/clues", json={"text": "Regardez sous le paillasson.", "room": "hall"})
    assert written.status_code == 200 and free.status_code == 200, (written.text, free.text)
    clues = {c["id"]: c for c in hall.get("/api/state").json()["game"]["clues"]}
    mine = clues[written.json()["clue"]["id"]]
    assert mine["icon"] == "📅" and hall.get(mine["voice_url"]).status_code == 200
    assert (clues[free.json()["clue"]["id"]]["icon"], clues[free.json()["clue"]["id"]]["voice_url"]) == ("💡", None)


def test_a_game_without_intro_says_so_in_french(app: FastAPI) -> None:
    assert_french_refusal(logged(app, "gm-password").post("/api/media/intro", json={}), 404,
                          "pas de vidéo de présentation")


def test_an_intro_or_a_voice_not_in_the_library_or_in_an_unknown_room_is_refused_at_its_line() -> None:
    bad = INTRO.replace("room: hall", "room: cave").replace("intro-en.vtt", "intro-de.vtt")
    with pytest.raises(GameConfigError) as caught:
        intro_game(bad, media={"intro.webm", "intro-fr.vtt"})
    text = str(caught.value)
    assert "intro.room: unknown room 'cave'" in text
    assert "intro.subtitles.en: fichier absent de la médiathèque : 'intro-de.vtt'" in text
    assert "clues[1].voice: fichier absent de la médiathèque : 'unlock.wav'" in text
    with pytest.raises(GameConfigError, match="subtitles"):
        intro_game(INTRO.replace("intro-fr.vtt", "intro-fr.srt"))


def test_a_nodes_part_is_the_same_with_or_without_a_clues_pictogram_and_voice() -> None:
    """A node plays no media: a clue's icon and voice stay on the controller, so a node
    whose software predates them takes the same part, with the same hash."""
    def local(game: Game) -> Game:
        return game.model_copy(update={"puzzles": [p.model_copy(update={"local": True}) for p in game.puzzles]})

    with_media = local(intro_game())
    assert any(c.icon for p in with_media.puzzles for c in p.clues)
    without = local(parse_game(GAME.format(apartment_id=with_media.apartment.id), media=set()).game)
    data = with_media.part("hall").as_data()
    assert data["puzzles"] and all("icon" not in c and "voice" not in c
                                   for p in data["puzzles"] for c in p["clues"])
    assert with_media.part("hall").content_hash() == without.part("hall").content_hash()


def test_an_intro_that_is_no_video_is_refused_in_french_when_played(embedded_broker: BrokerHandle,
                                                                     tmp_path: Path) -> None:
    game = intro_game(INTRO.replace("file: intro.webm", "file: unlock.wav"))
    application = create_app(game=game, auth=AUTH, db_path=tmp_path / "escape.db",
                             broker=BrokerAddress(embedded_broker.host, embedded_broker.port))
    with TestClient(application):
        gm = logged(application, "gm-password")
        assert_french_refusal(gm.post("/api/media/intro", json={}), 409, "n'est pas une vidéo")
        assert screen(application, "hall").get("/api/state").json()["game"]["cues"] == []
