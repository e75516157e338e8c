"""Errors people read: French first, the same in English beside it.

An order the game refuses, an unknown room, a node that does not answer: the game master
reads the message on the console, in French; the English pages show :attr:`Bilingual.en`.
The HTTP API answers every error as ``{"detail": "<français>", "detail_en": "<English>"}``
(``controller/api/errors.py``, docs/dashboard.md "Errors").

>>> str(EngineError("la partie est en pause", en="the game is paused"))
'la partie est en pause'
>>> EngineError("la partie est en pause", en="the game is paused").en
'the game is paused'
"""

from __future__ import annotations


class Bilingual(Exception):
    """An error whose message (``str(exc)``) is French and whose :attr:`en` is English.

    *en* may be left out by code that has none yet: the French is then shown everywhere
    (tests/controller/test_errors.py checks that the controller's own errors all have one).
    """

    def __init__(self, fr: str, *, en: str | None = None) -> None:
        super().__init__(fr)
        self.fr = fr
        self.en = en or fr


class EngineError(Bilingual, ValueError):
    """An order that the game's current state does not allow (HTTP 409)."""


class NotFoundError(EngineError, LookupError):
    """An order about a puzzle, clue, room, node or prop the game does not have (HTTP 404)."""


class InvalidValue(Bilingual, ValueError):
    """A request field's value is refused by a validator of ours (HTTP 422): pydantic
    accepts a ValueError from a validator and keeps it, so its English is not lost."""
