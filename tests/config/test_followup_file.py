"""The follow-up questionnaire file (config/followup.yaml): the shipped one loads, and a
hand-edited one with a mistake is refused, saying what is wrong; each answer is checked
against its question."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from config.followup import PATH, Questionnaire, load


def test_the_shipped_questionnaire_says_its_purpose_and_has_each_kind_of_question():
    q = load()
    assert "effacé" in q.purpose.fr and q.purpose.en
    assert {x.kind for x in q.questions} == {"scale", "yes_no", "choice", "text"}
    assert all(x.text.en for x in q.questions), "English beside the French"


@pytest.mark.parametrize(("change", "words"), [
    (lambda d: d["questions"][0].update(kind="choice"), "options are for a choice"),
    (lambda d: d["questions"][2].pop("options"), "a choice needs them"),
    (lambda d: d["questions"].append(dict(d["questions"][0])), "each question id once only"),
    (lambda d: d["questions"][0].update(kind="stars"), "kind"),
])
def test_a_broken_questionnaire_is_refused(change, words: str):
    data = yaml.safe_load(PATH.read_text(encoding="utf-8"))
    change(data)
    with pytest.raises(ValidationError, match=words):
        Questionnaire.model_validate(data)


@pytest.mark.parametrize(("question", "answer", "fits"), [
    ("useful", 5, True), ("useful", 0, False), ("useful", True, False), ("useful", "4", False),
    ("changed_at_home", False, True), ("changed_at_home", 1, False),
    ("theme_used", 5, True), ("theme_used", 6, False), ("theme_used", -1, False),
    ("remark", "merci", True), ("remark", "x" * 1001, False), ("remark", 3, False),
])
def test_each_answer_is_checked_against_its_question(question: str, answer, fits: bool):
    assert (load().question(question).problem(answer) is None) is fits
