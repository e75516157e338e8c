"""``sounds:`` in a game file: the sound of each game event on the room screens, checked
against the media library, each error at the line to fix (docs/media.md)."""

from __future__ import annotations

from config.loader import SHIPPED_GAME, load_game_file, parse_game
from tests.config.test_media_actions import GAME, LIBRARY, errors_of

SOUNDS = """\
sounds:
  solved: {file: solved.wav, volume: 0.8}
  wrong_code: {file: chime.wav}
"""


def test_event_sounds_load_and_every_room_preloads_them() -> None:
    game = parse_game(GAME + SOUNDS, media=LIBRARY).game
    sounds = game.event_sounds()
    assert {k: (s.file, s.volume) for k, s in sounds.items()} == {
        "solved": ("solved.wav", 0.8), "wrong_code": ("chime.wav", 1.0)}   # 1: the default
    assert game.sounds.unlock is None                        # an event left out is silent
    for node in game.nodes:   # any room may have its puzzle solved, its code typed wrong
        assert {"solved.wav", "chime.wav"} <= game.media_files(node.id)


def test_an_event_sound_not_in_the_library_is_refused_in_french_at_its_line() -> None:
    lines = len(GAME.splitlines())
    errors = errors_of(GAME + SOUNDS.replace("{file: chime.wav}", "{file: buzzer.mp3}"))
    assert errors == [f"game.yaml:{lines + 3}:16: error: sounds.wrong_code.file: fichier absent de "
                      "la médiathèque : 'buzzer.mp3' (à téléverser sur la page du technicien, ou "
                      "nom mal écrit)"]


def test_an_unknown_event_or_a_volume_out_of_range_is_an_error() -> None:
    errors = errors_of(GAME + SOUNDS.replace("wrong_code:", "applause:"))
    assert len(errors) == 1 and "sounds.applause" in errors[0]
    errors = errors_of(GAME + SOUNDS.replace("volume: 0.8", "volume: 3"))
    assert len(errors) == 1 and "sounds.solved.volume" in errors[0]


def test_the_shipped_game_plays_shipped_sounds_on_every_event() -> None:
    shipped = frozenset(p.name for p in (SHIPPED_GAME.parent.parent / "dashboard/static/media").iterdir() if p.suffix != ".md")
    game = load_game_file(SHIPPED_GAME, media=shipped).game
    assert set(game.event_sounds()) == {"solved", "wrong_code", "unlock", "budget_up", "budget_down",
                                        "clue_chime"}
