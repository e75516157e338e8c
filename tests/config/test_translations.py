"""Translations of the game's texts: a French string, or {fr: …, en: …, ar: …, pt: …, tr: …}
with French required; an unknown language is refused at its line (docs/media.md,
« Profils du groupe »)."""

from __future__ import annotations

from config.loader import SHIPPED_GAME, load_game, parse_game
from tests.config.test_loader import errors_of

GAME = """\
apartment: {id: t, name: {fr: Test, ar: "اختبار"}}
nodes:
  - id: hall
    label: LABEL
    props:
      - {id: k, kind: keypad, rows: [5, 6, 13, 19], cols: [12, 16, 20]}
puzzles:
  - id: a
    label: A
    theme: budget
    room: hall
    solve: {when: event, prop: hall.k, event: code, equals: "1234"}
    actions: [{do: message, text: {fr: Bravo, tr: Bravo}}]
    clues:
      - CLUE
    final: true
"""


def game_text(label: str = "Hall", clue: str = "Un indice.") -> str:
    return GAME.replace("LABEL", label).replace("CLUE", clue)


def test_texts_carry_translations_and_the_game_offers_their_languages():
    game = parse_game(game_text(
        label='{fr: Hall, en: Hall, ar: "المدخل", pt: Entrada}',
        clue='{text: {fr: "Le code.", en: "The code."}, short: {fr: Code, ar: "الرمز"}, '
             'kids: {primo: "Le code !", locataire: {fr: "Le code, ami !", tr: "Kod!"}}}')).game
    assert game.node("hall").label.get("ar") == "المدخل"
    assert game.node("hall").label.get("tr") == "Hall", "not written in Turkish: French"
    clue = game.puzzle("a").clues[0]
    assert clue.variant_for("primo", "short").get("ar") == "الرمز"
    assert clue.variant_for("locataire", "kids").get("tr") == "Kod!"
    assert clue.variant_for("primo", "kids").fr == "Le code !"
    assert game.languages() == ("en", "ar", "pt", "tr")


def test_a_text_without_french_is_refused_at_its_line():
    assert errors_of(game_text(label="{en: Hall, ar: \"المدخل\"}")) == [
        "game.yaml:4:5: error: nodes[0].label.fr: Field required"]
    assert errors_of(game_text(clue="{text: {en: The code.}}")) == [
        "game.yaml:15:10: error: puzzles[0].clues[0].text.fr: Field required"]


def test_an_unknown_language_is_refused_at_its_line():
    (error,) = errors_of(game_text(label="{fr: Hall, de: Eingang}"))
    assert error.startswith("game.yaml:4:5: error: nodes[0].label: unknown language 'de'")
    (error,) = errors_of(game_text(clue="{text: Le code., short: {fr: Code, xx: Kode}}"))
    assert error.startswith("game.yaml:15:26: error: puzzles[0].clues[0].short: unknown language 'xx'")


def test_the_shipped_game_speaks_english_arabic_and_portuguese_on_the_room_screens():
    game = load_game(SHIPPED_GAME)
    assert {"en", "ar", "pt"} <= set(game.languages())
    for language in ("en", "ar", "pt"):
        missing = [t.fr for t in game.player_texts() if not t.has(language)]
        assert missing == [], f"not written in {language}"
