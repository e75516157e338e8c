"""The follow-up phone questionnaire, as data (``config/followup.yaml``).

The staff edit the questions there; the controller shows them on the call list and checks
each answer against its question (:meth:`Questionnaire.check`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.game import Text

PATH = Path(__file__).with_name("followup.yaml")
QuestionKind = Literal["scale", "yes_no", "choice", "text"]
TEXT_MAX = 1000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Question(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    kind: QuestionKind
    text: Text
    options: tuple[Text, ...] = ()

    @model_validator(mode="after")
    def _options_for_a_choice(self) -> Question:
        if (self.kind == "choice") != bool(self.options):
            msg = f"question {self.id}: options are for a choice, and a choice needs them"
            raise ValueError(msg)
        return self

    def problem(self, answer: Any) -> tuple[str, str] | None:
        """Why *answer* does not fit this question (French, English), or None."""
        if self.kind == "scale" and not (type(answer) is int and 1 <= answer <= 5):
            return "une note de 1 à 5", "a rating from 1 to 5"
        if self.kind == "yes_no" and type(answer) is not bool:
            return "oui ou non (true, false)", "yes or no (true, false)"
        if self.kind == "choice" and not (type(answer) is int and 0 <= answer < len(self.options)):
            return (f"le numéro d'une réponse proposée (0 à {len(self.options) - 1})",
                    f"the number of an offered answer (0 to {len(self.options) - 1})")
        if self.kind == "text" and not (isinstance(answer, str) and len(answer) <= TEXT_MAX):
            return f"un texte de {TEXT_MAX} caractères au plus", f"a text of at most {TEXT_MAX} characters"
        return None


class Questionnaire(_Model):
    purpose: Text
    questions: tuple[Question, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _ids_once(self) -> Questionnaire:
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            msg = "each question id once only"
            raise ValueError(msg)
        return self

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)


@cache
def load(path: Path = PATH) -> Questionnaire:
    return Questionnaire.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
