"""A node's part carries only what a node uses: no translation beyond French and English,
no short or children's wording, no pictogram or voice (docs/mqtt.md, « One game file for
every Pi »). A node shows no text: what only the screens read stays on the controller, so
a node on the previous software takes the part, and its hash changes only with what the
node plays.

The previous software's models are a frozen copy, ``frozen/game_0623e36.py.txt``: byte for
byte ``config/game.py`` of commit 0623e36, the last one before the texts' translations
(``git show 0623e36:config/game.py``). A copy, not ``git show main:…`` at test time: main
moves (once this is merged, it would compare the models with themselves) and a checkout
without history has no main. It imports today's ``props.models`` and ``protocol``, which
that commit shared with today. Replace it when the nodes of the apartments run a newer
release.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from config.game import LANGUAGES, Game
from config.loader import SHIPPED_GAME, load_game

PREVIOUS = Path(__file__).parent / "frozen" / "game_0623e36.py.txt"


@pytest.fixture(scope="module")
def previous() -> Iterator[ModuleType]:
    """``config.game`` as the nodes on the previous software run it."""
    name = "previous_config_game"
    loader = importlib.machinery.SourceFileLoader(name, str(PREVIOUS))
    spec = importlib.util.spec_from_file_location(name, PREVIOUS, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module      # pydantic resolves the annotations in the module's namespace
    try:
        loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


@pytest.fixture(scope="module")
def shipped() -> Game:
    return load_game(SHIPPED_GAME)


def local(game: Game) -> Game:
    """*game* with every puzzle played by its node, so that every clue is in a part."""
    return game.model_copy(update={"puzzles": [p.model_copy(update={"local": True}) for p in game.puzzles]})


def test_the_previous_node_software_takes_every_part_of_the_shipped_game(previous: ModuleType,
                                                                        shipped: Game) -> None:
    # the shipped game has what the previous software does not know, in its nodes' parts
    texts = [t for p in shipped.puzzles if p.local for t in (p.label, *(c.text for c in p.clues))]
    assert any(t.has("ar") for t in texts if hasattr(t, "has"))
    assert any(c.short is not None for p in shipped.puzzles if p.local for c in p.clues)
    for game in (shipped, local(shipped)):
        for node in game.nodes:
            data = game.part(node.id).as_data()
            # what the node on the previous software does with it (config/loader.py
            # parse_node_part): its models forbid an unknown key
            part = previous.NodePart.model_validate(data)
            assert [i for i in previous.node_part_issues(part) if i.severity == "error"] == []
            # it reads every key, and would write the part back the same
            assert part.model_dump(mode="json") == data, node.id


def with_screen_wordings(game: Game, arabic: str) -> Game:
    """*game* with every text in Arabic (*arabic*), and every clue with a short and a
    children's wording."""
    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            # the intro's subtitles are files named per language, not a text
            value = {k: v if k == "intro" else walk(v) for k, v in value.items()}
            if "fr" in value and set(value) <= set(LANGUAGES):
                value["ar"] = f"{arabic} {value['fr']}"
        elif isinstance(value, list):
            value = [walk(v) for v in value]
        return value

    data = walk(game.model_dump(mode="json"))
    for puzzle in data["puzzles"]:
        for clue in puzzle["clues"]:
            clue["short"] = {"fr": "Court.", "ar": arabic}
            clue["kids"] = {"primo": "Pour les petits.", "locataire": {"fr": "Pour les enfants.", "tr": arabic}}
    return Game.model_validate(data)


def test_an_arabic_translation_or_a_short_wording_changes_no_nodes_part(shipped: Game) -> None:
    game = local(shipped)
    before = {n.id: game.part(n.id) for n in game.nodes}
    for arabic in ("نص", "نص آخر"):
        changed = with_screen_wordings(game, arabic)
        assert changed.puzzles[0].label.ar == f"{arabic} {game.puzzles[0].label.fr}"
        assert changed.puzzles[0].clues[0].kids is not None
        for node in game.nodes:
            part = changed.part(node.id)
            assert part == before[node.id], node.id         # what a reload compares
            assert part.content_hash() == before[node.id].content_hash(), node.id
    # what a node plays (and the French it is written in) does change its part
    first = game.puzzles[0]
    clue = first.clues[0].model_copy(update={"text": first.clues[0].text_for("primo").model_copy(
        update={"fr": "Autre indice."})})
    reworded = game.model_copy(update={"puzzles": [first.model_copy(update={"clues": [clue]}),
                                                   *game.puzzles[1:]]})
    assert reworded.part(first.room).content_hash() != before[first.room].content_hash()


def test_a_nodes_part_carries_no_screen_wording_even_when_written(shipped: Game) -> None:
    game = with_screen_wordings(local(shipped), "نص")
    for node in game.nodes:
        part = game.part(node.id)
        texts = [part.apartment.name, part.node.label,
                 *(t for p in part.puzzles for t in (p.label, *(c.text_for(pc) for c in p.clues
                                                              for pc in ("primo", "locataire"))))]
        assert all(t.ar is None and t.pt is None and t.tr is None for t in texts), node.id
        assert all(c.short is None and c.kids is None and c.icon is None and c.voice is None
                   for p in part.puzzles for c in p.clues), node.id
    # the game itself keeps them for the screens
    assert game.puzzles[0].label.ar is not None
    assert all(c.short is not None for p in game.puzzles for c in p.clues)
