"""``do: sound`` / ``do: video`` in a game file: checked against the media library's names,
each error in French at the line to fix (docs/media.md)."""

from __future__ import annotations

import pytest

from config.game import SoundAction, VideoAction
from config.loader import GameConfigError, parse_game

LIBRARY = frozenset({"chime.wav", "solved.wav", "intro.mp4"})
GAME = """\
apartment: {id: t, name: Test}
nodes:
  - id: hall
    label: Hall
    props:
      - {id: k, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20]}
      - {id: lock, kind: maglock, relay: 17, door: 27}
  - id: salon
    label: Salon
    props: []
puzzles:
  - id: a
    label: A
    theme: budget
    room: hall
    solve: {when: event, prop: hall.k, event: code, equals: "1234"}
    actions:
      - {do: unlock, target: hall.lock}
      - do: sound
        file: solved.wav
        room: [hall, salon]
        volume: 0.6
      - {do: video, file: intro.mp4, room: hall}
    final: true
"""


def errors_of(text: str, media: frozenset[str] | None = LIBRARY) -> list[str]:
    with pytest.raises(GameConfigError) as info:
        parse_game(text, source="game.yaml", media=media)
    return [str(i) for i in info.value.issues if i.severity == "error"]


def test_sound_and_video_actions_load_with_their_rooms_volume_and_loop() -> None:
    game = parse_game(GAME, media=LIBRARY).game
    sound, video = game.puzzles[0].actions[1:]
    assert isinstance(sound, SoundAction) and isinstance(video, VideoAction)
    assert sound.rooms == ("hall", "salon") and sound.volume == 0.6 and not sound.loop
    assert video.rooms == ("hall",)
    assert game.media_files() == {"solved.wav", "intro.mp4"}


def test_a_sound_naming_a_file_not_in_the_library_is_refused_in_french_at_its_line() -> None:
    errors = errors_of(GAME.replace("file: solved.wav", "file: applause.wav"))
    assert errors == ["game.yaml:20:9: error: puzzles[0].actions[1].file: fichier absent de la "
                      "médiathèque : 'applause.wav' (à téléverser sur la page du technicien, ou nom "
                      "mal écrit)"]


def test_a_missing_file_is_found_even_when_another_item_has_a_schema_error() -> None:
    text = GAME.replace("file: solved.wav", "file: applause.wav").replace("volume: 0.6", "volume: 3")
    errors = errors_of(text)
    assert any("actions[1].volume" in e for e in errors)
    text = GAME.replace("{do: video, file: intro.mp4", "{do: video, file: film.mp4").replace(
        "volume: 0.6", "volume: 3")
    assert any("game.yaml:23:21:" in e and "'film.mp4'" in e for e in errors_of(text))


def test_an_unknown_room_of_a_sound_is_an_error_and_without_a_library_files_are_not_checked() -> None:
    errors = errors_of(GAME.replace("room: [hall, salon]", "room: [hall, cuisine]"))
    assert errors == ["game.yaml:21:9: error: puzzles[0].actions[1].room: unknown room 'cuisine'"]
    # a node checks its part without the library (it plays nothing)
    assert parse_game(GAME.replace("solved.wav", "anything.wav"), media=None).game


def test_a_nodes_part_carries_no_media_so_a_node_of_older_software_takes_it() -> None:
    local = GAME.replace("    final: true\n", "    final: true\n    local: true\n")
    game = parse_game(local, media=LIBRARY).game
    part = game.part("hall")
    assert [a.do for a in part.puzzles[0].actions] == ["unlock"]
    assert [a.do for a in game.puzzles[0].actions] == ["unlock", "sound", "video"]   # the controller's
    data = part.as_data()
    assert "sound" not in str(data) and "intro.mp4" not in str(data)
