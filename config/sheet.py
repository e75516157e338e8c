"""The take-home sheet's words, as data (``config/sheet.yaml``): one line of advice per
theme and the useful phone numbers, edited by the staff without touching the code."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.game import Theme

PATH = Path(__file__).with_name("sheet.yaml")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The limits keep the sheet on one A4 page whatever the staff write (measured in Chromium:
# tests/browser/test_sheet.py); they also keep to FALC's short lines.
class ThemeAdvice(_Model):
    icon: str = Field(min_length=1, max_length=8)
    title: str = Field(min_length=1, max_length=30)
    advice: str = Field(min_length=1, max_length=60, description="one short sentence (FALC)")


class Contact(_Model):
    icon: str = Field(min_length=1, max_length=8)
    who: str = Field(min_length=1, max_length=26)
    phone: str = Field(pattern=r"^[0-9+][0-9 .]{2,24}$")
    example: bool = Field(default=False, description="a placeholder, printed « exemple »")


class SheetWords(_Model):
    themes: dict[Theme, ThemeAdvice]
    contacts: tuple[Contact, ...] = Field(min_length=1, max_length=6)


class SheetWordsError(ValueError):
    """``config/sheet.yaml`` cannot be read or does not fit :class:`SheetWords`."""


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
        where = "; ".join(".".join(str(p) for p in e["loc"]) + f" : {e['msg']}" for e in exc.errors())
        msg = f"{path} mal rempli — {where}"
        raise SheetWordsError(msg) from exc
