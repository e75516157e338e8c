"""The group's profile: how the room screens render cues for this group (docs/media.md,
« Profils du groupe »). It changes the rendering, never the puzzles.

Chosen at the start dialog, kept with the session (its record), changed by the game
master at any time. ``children`` is the group's own field (:attr:`Engine.children`); the
rest is here. :func:`wording` is the one rule that says which wording of a text a group
sees: the short one when it reads little, the children's one when there are children,
then the profile's language when the text is written in it, French otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from config.game import RTL_LANGUAGES, Clue, Text


@dataclass(frozen=True, slots=True)
class GroupProfile:
    """What the group needs of the room screens (besides children)."""

    #: reads little French: larger text, pictograms, the short wording, everything spoken
    low_literacy: bool = False
    #: the explanations in this language too (``en``, ``ar``…; None: French only)
    language: str | None = None
    #: hard of hearing: every voice subtitled, a full-screen flash for the chime and sounds
    hard_of_hearing: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"low_literacy": self.low_literacy, "language": self.language,
                "hard_of_hearing": self.hard_of_hearing}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GroupProfile:
        data = data or {}
        return cls(low_literacy=bool(data.get("low_literacy")), language=data.get("language") or None,
                   hard_of_hearing=bool(data.get("hard_of_hearing")))

    def summary(self, children: bool) -> str:
        """In words for the audit log and the console: « enfants, lit peu, arabe »."""
        parts = [w for on, w in ((children, "enfants"), (self.low_literacy, "lit peu le français"),
                                 (self.hard_of_hearing, "malentendants")) if on]
        if self.language:
            parts.append(LANGUAGE_NAMES.get(self.language, self.language))
        return ", ".join(parts) or "aucun besoin particulier"


#: each language a group may choose, named in French (the console's list)
LANGUAGE_NAMES = {"en": "anglais", "ar": "arabe", "pt": "portugais", "tr": "turc"}


def direction(lang: str) -> str:
    """``rtl`` for a language written right to left, else ``ltr``."""
    return "rtl" if lang in RTL_LANGUAGES else "ltr"


def said(text: Text, language: str | None) -> dict[str, Any]:
    """*text* as a screen shows it: in *language* when written in it (French then beneath,
    small), else French."""
    lang = language if language and text.has(language) else "fr"
    return {"text": text.get(lang), "lang": lang, "dir": direction(lang),
            "fr": text.fr if lang != "fr" else None}


def wording(clue: Clue, parcours: str, profile: GroupProfile, *, children: bool) -> Text:
    """Which wording of *clue* the group sees (short, children's, or the clue's own)."""
    for wanted, variant in ((profile.low_literacy, "short"), (children, "kids")):
        if wanted and (text := clue.variant_for(parcours, variant)) is not None:
            return text
    return clue.text_for(parcours)


def translations(texts: Iterable[Text], language: str | None) -> dict[str, dict[str, Any]]:
    """Each French text of *texts* written in *language* → how a screen shows it."""
    if not language:
        return {}
    return {t.fr: said(t, language) for t in texts if t.has(language)}
