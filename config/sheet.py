"""The words of the debrief and of the take-home sheet, as data (``config/sheet.yaml``),
edited by the staff without touching the code: per theme one line of advice (the sheet),
the practical message said at the debrief, who to call and what a household may do at
home; the story's title; the useful phone numbers; the feelings the group picks from at the
debrief; the sheet's own words. One file, so the debrief (controller/debrief.py), the
sheet (controller/sheet.py), the history and the year's report name the themes and say
the same thing. French first; each text may have its English (``title_en``,
``advice_en``, ``message_en``, ``label_en``, ``who_en``, ``labels.*.en``) for the pages
and the sheet in English; French where it has none."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from config.game import Text, Theme

PATH = Path(__file__).with_name("sheet.yaml")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The limits keep the sheet on one A4 page whatever the staff write (measured in Chromium:
# tests/browser/test_sheet.py); they also keep to FALC's short lines.
# The debrief's limits keep each step on a room TV (1920x1080) without scrolling
# (measured: tests/browser/test_debrief_steps.py).
ChoiceId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class Choice(_Model):
    """One pictogram the group picks at the debrief (a feeling, a thing to do at home)."""

    id: ChoiceId
    icon: str = Field(min_length=1, max_length=8)
    label: str = Field(min_length=1, max_length=50)
    label_en: str | None = Field(default=None, min_length=1, max_length=50)

    def name(self, lang: str = "fr") -> str:
        return (self.label_en if lang == "en" else None) or self.label


class ThemeName(_Model):
    """How the pages, the sheet and the report name a theme: its pictogram and title."""

    icon: str = Field(min_length=1, max_length=8)
    title: str = Field(min_length=1, max_length=30)
    title_en: str | None = Field(default=None, min_length=1, max_length=30)


class ThemeAdvice(ThemeName):
    advice: str = Field(min_length=1, max_length=60, description="one short sentence (FALC)")
    message: str | None = Field(default=None, min_length=1, max_length=220,
                                description="the practical message said at the debrief")
    call: tuple[ChoiceId, ...] = Field(default=(), max_length=3,
                                       description="who to call about it: ids of contacts")
    at_home: tuple[Choice, ...] = Field(default=(), max_length=3,
                                        description="what a household may do at home")
    advice_en: str | None = Field(default=None, min_length=1, max_length=60)
    message_en: str | None = Field(default=None, min_length=1, max_length=220)

    def get(self, lang: str = "fr") -> tuple[str, str]:
        """The title and the advice in *lang* (French when not translated)."""
        if lang == "en":
            return self.title_en or self.title, self.advice_en or self.advice
        return self.title, self.advice

    def said(self, lang: str = "fr") -> str:
        """The practical message in *lang*; the advice when the file gives no message."""
        if self.message:
            return (self.message_en if lang == "en" else None) or self.message
        return self.get(lang)[1]


class Contact(_Model):
    id: ChoiceId | None = Field(default=None, description="how a theme's « call » names it")
    icon: str = Field(min_length=1, max_length=8)
    who: str = Field(min_length=1, max_length=26)
    phone: str = Field(pattern=r"^[0-9+][0-9 .]{2,24}$")
    example: bool = Field(default=False, description="a placeholder, printed « exemple »")
    who_en: str | None = Field(default=None, min_length=1, max_length=26)

    def name(self, lang: str = "fr") -> str:
        return (self.who_en if lang == "en" else None) or self.who


#: the longest of the sheet's own words: a line, a budget line (beside its amount), a
#: heading (in larger type)
LABEL_MAX = 38
LABEL_LIMITS = {"start": 30, "paid": 30, "late": 30, "left": 30,
                "title": 26, "budget": 26, "advice": 26, "numbers": 26}


def label_max(name: str) -> int:
    return LABEL_LIMITS.get(name, LABEL_MAX)


class SheetLabels(_Model):
    """The sheet's own words (its headings and lines), French with their English."""

    title: Text
    workshop: Text
    we_were: Text = Field(description="{n}: how many people")
    budget: Text
    start: Text
    paid: Text
    late: Text
    left: Text
    late_costs_more: Text
    advice: Text
    numbers: Text
    example: Text
    print: Text
    date: Text = Field(description="{day} {month} {year}: the workshop's date")
    months: tuple[Text, ...] = Field(min_length=12, max_length=12)

    @model_validator(mode="after")
    def _placeholders_fit(self) -> SheetLabels:
        for name, text in self:
            top = label_max(name)
            for words in (text,) if isinstance(text, Text) else ():
                if max(len(words.fr), len(words.en or "")) > top:
                    msg = f"{name}: {top} characters at most (one page, FALC's short lines)"
                    raise ValueError(msg)
        for lang in ("fr", "en"):
            try:
                self.we_were.get(lang).format(n=4)
                self.date.get(lang).format(day=4, month="mai", year=2026)
            except (KeyError, IndexError, ValueError) as exc:
                msg = f"only {{n}} in we_were, {{day}} {{month}} {{year}} in date ({lang}): {exc!r}"
                raise ValueError(msg) from None
        return self


class SheetWords(_Model):
    themes: dict[Theme, ThemeAdvice]
    contacts: tuple[Contact, ...] = Field(min_length=1, max_length=6)
    feelings: tuple[Choice, ...] = Field(default=(), max_length=6,
                                         description="how did you feel: the pictograms to pick from")
    # a default, so a words file written before the story had its name still loads
    story: ThemeName = Field(default=ThemeName(icon="📖", title="L'histoire", title_en="The story"),
                             description="the story's name: the framing of the game, not a lesson")

    @model_validator(mode="after")
    def _names_known_and_once(self) -> SheetWords:
        contacts = [c.id for c in self.contacts if c.id]
        if len(set(contacts)) != len(contacts):
            msg = "contacts: the same id twice"
            raise ValueError(msg)
        for theme, words in self.themes.items():
            unknown = [c for c in words.call if c not in contacts]
            if unknown:
                msg = f"themes.{theme}.call: unknown contact {unknown[0]!r} (ids of contacts: {contacts})"
                raise ValueError(msg)
        for what, ids in (("feelings", [c.id for c in self.feelings]),
                          ("at_home", [c.id for t in self.themes.values() for c in t.at_home])):
            if len(set(ids)) != len(ids):
                msg = f"{what}: the same id twice"
                raise ValueError(msg)
        return self

    def contact(self, contact_id: str) -> Contact | None:
        return next((c for c in self.contacts if c.id == contact_id), None)

    def home_choices(self) -> dict[str, Choice]:
        """Every thing to do at home, by id, the themes' order."""
        return {c.id: c for t in self.themes.values() for c in t.at_home}

    def names(self) -> dict[str, ThemeName]:
        """Every theme's pictogram and title (the story's too), the file's order."""
        return {**self.themes, "story": self.story}
    labels: SheetLabels


class SheetWordsError(ValueError):
    """``config/sheet.yaml`` cannot be read or does not fit :class:`SheetWords`."""


def load_or_none() -> SheetWords | None:
    """The words, or None when the file cannot be read: a page that only names the themes
    still shows (their ids), the debrief's own pages say what to correct."""
    try:
        return load()
    except SheetWordsError:
        return None


@cache
def load(path: Path | None = None) -> SheetWords:
    """The sheet's words (*path*, default ``config/sheet.yaml``); :class:`SheetWordsError`
    says which field to correct."""
    path = path or PATH
    try:
        return SheetWords.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        msg = f"{path} illisible : {exc}"
        raise SheetWordsError(msg) from exc
    except ValidationError as exc:
        # a rule across fields (a theme calling an unknown contact) names its field itself
        where = "; ".join((".".join(str(p) for p in e["loc"]) + " : " if e["loc"] else "")
                          + e["msg"].removeprefix("Value error, ") for e in exc.errors())
        msg = f"{path} mal rempli — {where}"
        raise SheetWordsError(msg) from exc
