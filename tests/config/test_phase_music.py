"""``music:`` in a game file: each room's music per moment of the game, checked against
the media library and the game's rooms, each error at the line to fix (docs/media.md)."""

from __future__ import annotations

from config.loader import SHIPPED_GAME, load_game_file, parse_game
from tests.config.test_media_actions import GAME, LIBRARY, errors_of

MUSIC = """\
music:
  hall:
    welcome: {file: chime.wav, volume: 0.3}
    game: {file: solved.wav}
  salon:
    victory: {file: chime.wav, volume: 0.8}
"""


def test_a_rooms_music_per_moment_loads_and_is_among_the_files_the_room_preloads() -> None:
    game = parse_game(GAME + MUSIC, media=LIBRARY).game
    welcome = game.music_for("hall", "welcome")
    assert welcome is not None and (welcome.file, welcome.volume) == ("chime.wav", 0.3)
    game_music = game.music_for("hall", "game")
    assert game_music is not None and game_music.volume == 0.5   # the default
    assert game.music_for("hall", "victory") is None               # a moment left out is silent
    assert game.music_for("cuisine", "game") is None and game.music_for("hall", None) is None
    assert game.media_files("salon") == {"solved.wav", "chime.wav"}   # the cue and its music
    assert {"chime.wav", "solved.wav"} <= game.media_files("hall")


def test_a_music_file_not_in_the_library_is_refused_in_french_at_its_line() -> None:
    errors = errors_of(GAME + MUSIC.replace("game: {file: solved.wav}", "game: {file: valse.mp3}"))
    assert errors == ["game.yaml:28:12: error: music.hall.game.file: fichier absent de la "
                      "médiathèque : 'valse.mp3' (à téléverser sur la page du technicien, ou nom "
                      "mal écrit)"]


def test_music_for_an_unknown_room_or_moment_is_an_error() -> None:
    errors = errors_of(GAME + MUSIC.replace("  salon:", "  cuisine:"))
    assert errors == ["game.yaml:29:3: error: music.cuisine: unknown room 'cuisine' (music is by node id)"]
    errors = errors_of(GAME + MUSIC.replace("victory:", "triumph:"))
    assert len(errors) == 1 and "music.salon.triumph" in errors[0]


def test_the_shipped_game_plays_shipped_sounds_as_its_music() -> None:
    shipped = frozenset(p.name for p in (SHIPPED_GAME.parent.parent / "dashboard/static/media").glob("*")
                        if p.suffix != ".md")   # the sounds, and the intro video with its subtitles
    game = load_game_file(SHIPPED_GAME, media=shipped).game
    assert game.music and all(game.music_for(room, "game") for room in game.music)
