"""The year's impact report: what the town tells its funders (docs/evaluation.md).

:func:`year_report` reads the figures of one period (a calendar year by default, or any
range of dates) from the controller's store: the sessions planned and held against the
target, the people who came (adults, children, households, who referred them, their
parcours, first visits), the results and times, the clues per puzzle (which puzzles are
too hard), the themes learned, the ratings and the follow-up answers.
:func:`report_csvs` turns it into CSV files for a spreadsheet, :func:`report_html` into
the « Bilan de l'année » page (inline SVG charts, an A4 print stylesheet), which
:func:`controller.sheet.write_pdf` prints to a PDF.

Anonymised by construction: the queries read counts and categories only. Nothing here
reads the game master's name, a planned session's note, the group's comment, a phone
number, a free-text follow-up answer, who recorded what, or the session ids
(:data:`LEFT_OUT` says so on every report).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import statistics
import subprocess
import zipfile
from collections import Counter
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, get_args

from config import sheet as sheet_words
from config.followup import Questionnaire
from config.game import Theme
from controller.core.errors import Bilingual
from controller.planning import REFERRAL_LABELS
from controller.store import Store

#: the action's plan: 24 workshops a year, twice a month
DEFAULT_TARGET = 24
MONTHS_SHORT = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.",
                "déc.")
PARCOURS_LABELS = {"primo": "primo-accédant", "locataire": "locataire en place"}
RESULT_LABELS = {"won": "gagnée", "lost": "temps écoulé", "aborted": "arrêtée",
                 "in_progress": "pas finie"}
#: what no report, page or file ever shows (read nowhere by this module)
LEFT_OUT = (
    "le nom de l'animateur et la note d'une séance prévue",
    "les commentaires des groupes",
    "les numéros de téléphone (et qui a noté quoi)",
    "les réponses libres (texte) au questionnaire : seul leur nombre est compté",
    "les numéros des parties",
)
#: the CSV files, in the order of the page
CSV_TABLES = ("resume", "seances", "orientation", "parcours", "enigmes", "themes", "notes", "suivi",
              "debrief")
#: the debrief's steps whose answers the groups give as counts per pictogram (the store's
#: ``debrief_answers``), and the words of config/sheet.yaml that name their pictograms
DEBRIEF_STEPS = {"feelings": "Comment le groupe s'est senti", "at_home": "Ce que le groupe fera chez lui"}
SHEET_WORDS = Path(__file__).resolve().parents[1] / "config" / "sheet.yaml"


class ReportError(Bilingual, ValueError):
    """A period that makes no report (its end before its start)."""


@dataclass(frozen=True, slots=True)
class Period:
    start: dt.date
    end: dt.date

    @classmethod
    def year(cls, year: int) -> Period:
        return cls(dt.date(year, 1, 1), dt.date(year, 12, 31))

    @classmethod
    def of(cls, *, year: int | None = None, start: dt.date | None = None, end: dt.date | None = None,
           today: dt.date | None = None) -> Period:
        """*start*–*end* if given (the other end from *year*), else the calendar *year*
        (default: this year)."""
        whole = cls.year(year or (today or dt.date.today()).year)
        period = cls(start or whole.start, end or whole.end)
        if period.start > period.end:
            raise ReportError("la date de début est après la date de fin",
                              en="the start date is after the end date")
        return period

    @property
    def label(self) -> str:
        if (self.start.month, self.start.day, self.end.month, self.end.day) == (1, 1, 12, 31) \
                and self.start.year == self.end.year:
            return f"année {self.start.year}"
        return f"du {french_date(self.start)} au {french_date(self.end)}"


# -- French numbers and dates ---------------------------------------------------------------
def french_date(day: dt.date) -> str:
    """« 4 décembre 2026 », the month's name from the words file (« 04/12/2026 » when it
    cannot be read)."""
    try:
        month = sheet_words.load().labels.months[day.month - 1].get("fr")
    except (OSError, sheet_words.SheetWordsError):
        return day.strftime("%d/%m/%Y")
    return f"{day.day} {month} {day.year}"


def french_number(value: float | None, digits: int = 1) -> str:
    """``1 234,5`` (a narrow no-break space between thousands, a decimal comma)."""
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}" if digits and round(value, digits) != round(value) else f"{round(value):,}"
    return text.replace(",", "\u202f").replace(".", ",").replace("-", "−")


def minutes(seconds: float | None) -> str:
    """``42 min 05 s``."""
    if seconds is None:
        return "—"
    total = round(seconds)
    return f"{total // 60} min {total % 60:02d} s"


def theme_labels() -> dict[str, str]:
    """The themes' French names, as config/sheet.yaml names them for every page (without
    their pictogram: a spreadsheet cell or a printed table is plainer without); their ids
    when the file cannot be read."""
    words = sheet_words.load_or_none()
    names = words.names() if words else {}
    return {t: names[t].title if t in names else t for t in get_args(Theme)}


# -- the figures -------------------------------------------------------------------------
def _spread(values: list[float]) -> dict[str, Any]:
    return {"count": len(values),
            "median_s": round(statistics.median(values), 1) if values else None,
            "min_s": round(min(values), 1) if values else None,
            "max_s": round(max(values), 1) if values else None}


def year_report(store: Store, period: Period, *, target: int = DEFAULT_TARGET,
                questionnaire: Questionnaire | None = None) -> dict[str, Any]:
    """The figures of *period*: counts and categories only (see the module docstring)."""
    span = (period.start.isoformat(), period.end.isoformat())
    held = store.read(
        """SELECT s.id, s.date, s.started_at, s.parcours, s.players, s.result, s.time_used_s,
                  s.clues, e.rating, e.learned, p.id AS planned_id
           FROM sessions s LEFT JOIN evaluations e ON e.session_id = s.id
                LEFT JOIN planned p ON p.session_id = s.id
           WHERE s.started_at IS NOT NULL AND s.date BETWEEN ? AND ?
           ORDER BY s.started_at""", span)
    planned = store.read("SELECT id, date, session_id FROM planned WHERE date BETWEEN ? AND ?", span)
    groups = store.read(
        """SELECT g.adults, g.children, g.households, g.referral, g.first_visit, s.parcours
           FROM planned_groups g JOIN planned p ON p.id = g.planned_id
                JOIN sessions s ON s.id = p.session_id
           WHERE s.started_at IS NOT NULL AND s.date BETWEEN ? AND ?""", span)
    puzzle_rows = store.read(
        """SELECT p.puzzle_id, MIN(p.position) AS position, MAX(p.label) AS label,
                  MAX(p.theme) AS theme, COUNT(*) AS sessions,
                  SUM(p.status != 'locked') AS reached, SUM(p.status = 'solved') AS solved,
                  SUM(p.status = 'solved' AND p.solved_by = 'players') AS by_players,
                  SUM(p.clues) AS clues
           FROM puzzle_results p JOIN sessions s ON s.id = p.session_id
           WHERE s.started_at IS NOT NULL AND s.date BETWEEN ? AND ?
           GROUP BY p.puzzle_id""", span)
    answers = store.read(
        """SELECT a.question, a.answer FROM followup_answers a JOIN sessions s ON s.id = a.session_id
           WHERE s.started_at IS NOT NULL AND s.date BETWEEN ? AND ?""", span)
    contacts = store.read(
        """SELECT c.called_at IS NOT NULL AS called, c.erased_why FROM followup_contacts c
           JOIN sessions s ON s.id = c.session_id
           WHERE s.started_at IS NOT NULL AND s.date BETWEEN ? AND ?""", span)
    return {
        "period": {"from": span[0], "to": span[1], "label": period.label},
        "sessions": _sessions(held, planned, target),
        "participants": _participants(held, groups),
        "by_referral": _by_referral(groups),
        "by_parcours": _by_parcours(held, groups),
        "results": {k: sum(1 for s in held if (s["result"] or "in_progress") == k) for k in RESULT_LABELS},
        "times": {"won": _spread([s["time_used_s"] for s in held
                                  if s["result"] == "won" and s["time_used_s"] is not None]),
                  "finished": _spread([s["time_used_s"] for s in held
                                       if s["result"] in ("won", "lost", "aborted")
                                       and s["time_used_s"] is not None])},
        "puzzles": _puzzles(puzzle_rows),
        "themes": _themes(held),
        "ratings": _ratings(held),
        "followup": _followup(contacts, answers, questionnaire),
        "debrief": _debrief(store, span),
        "months": _months(held, planned),
        "table": [{"date": s["date"], "parcours": s["parcours"], "players": s["players"],
                   "planned": s["planned_id"] is not None, "result": s["result"] or "in_progress",
                   "time_used_s": s["time_used_s"], "clues": s["clues"], "rating": s["rating"]}
                  for s in held],
        "left_out": list(LEFT_OUT),
    }


def _sessions(held: list[dict[str, Any]], planned: list[dict[str, Any]], target: int) -> dict[str, Any]:
    held_ids = {s["id"] for s in held}
    planned_held = sum(1 for p in planned if p["session_id"] in held_ids)
    return {"planned": len(planned), "held": len(held), "target": target,
            "planned_held": planned_held, "planned_not_held": len(planned) - planned_held,
            "unplanned": sum(1 for s in held if s["planned_id"] is None),
            "of_target": round(len(held) / target, 3) if target else None}


def _participants(held: list[dict[str, Any]], groups: list[dict[str, Any]]) -> dict[str, Any]:
    first = [g for g in groups if g["first_visit"]]
    return {"people": sum(s["players"] for s in held),
            "adults": sum(g["adults"] for g in groups),
            "children": sum(g["children"] for g in groups),
            "households": sum(g["households"] for g in groups),
            "groups": len(groups),
            "first_visit_households": sum(g["households"] for g in first),
            "first_visit_people": sum(g["adults"] + g["children"] for g in first),
            # a session started without the calendar: its people are counted, not split
            "unregistered_people": sum(s["players"] for s in held if s["planned_id"] is None)}


def _by_referral(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key, (label, _en) in REFERRAL_LABELS.items():
        mine = [g for g in groups if g["referral"] == key]
        out.append({"referral": key, "label": label, "groups": len(mine),
                    "households": sum(g["households"] for g in mine),
                    "adults": sum(g["adults"] for g in mine),
                    "children": sum(g["children"] for g in mine),
                    "people": sum(g["adults"] + g["children"] for g in mine)})
    return out


def _by_parcours(held: list[dict[str, Any]], groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key, label in PARCOURS_LABELS.items():
        mine = [g for g in groups if g["parcours"] == key]
        sessions = [s for s in held if s["parcours"] == key]
        out.append({"parcours": key, "label": label, "sessions": len(sessions),
                    "people": sum(s["players"] for s in sessions),
                    "adults": sum(g["adults"] for g in mine),
                    "children": sum(g["children"] for g in mine),
                    "households": sum(g["households"] for g in mine),
                    "won": sum(1 for s in sessions if s["result"] == "won")})
    return out


def _puzzles(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per puzzle, the hardest first: most clues per session that reached it, then the
    fewest solved by the players themselves."""
    out = []
    for r in rows:
        reached = r["reached"] or 0
        out.append({"id": r["puzzle_id"], "label": r["label"], "theme": r["theme"],
                    "sessions": r["sessions"], "reached": reached, "solved": r["solved"] or 0,
                    "solved_by_players": r["by_players"] or 0, "clues": r["clues"] or 0,
                    "clues_per_session": round((r["clues"] or 0) / reached, 2) if reached else None,
                    "players_rate": round((r["by_players"] or 0) / reached, 3) if reached else None,
                    "position": r["position"]})
    out.sort(key=lambda p: (-(p["clues_per_session"] or 0), p["players_rate"] if p["players_rate"]
                            is not None else 1, p["position"]))
    for p in out:
        del p["position"]
    return out


def _themes(held: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: Counter[str] = Counter()
    for s in held:
        if s["learned"] is not None:
            counts.update(json.loads(s["learned"]))
    labels = theme_labels()
    rated = sum(1 for s in held if s["learned"] is not None)
    return [{"theme": t, "label": labels.get(t, t), "groups": counts[t], "of_groups": rated}
            for t in labels if t != "story" or counts[t]]


def _ratings(held: list[dict[str, Any]]) -> dict[str, Any]:
    ratings = [s["rating"] for s in held if s["rating"] is not None]
    return {"count": len(ratings),
            "mean": round(statistics.fmean(ratings), 2) if ratings else None,
            "distribution": [{"rating": n, "count": ratings.count(n)} for n in range(1, 6)]}


def _answer_label(kind: str, value: Any, options: list[str]) -> str | None:
    """An answer as the staff read it; None for free text (never shown)."""
    if kind == "yes_no" and isinstance(value, bool):
        return "oui" if value else "non"
    if kind == "scale" and type(value) is int:
        return str(value)
    if kind == "choice" and type(value) is int and 0 <= value < len(options):
        return options[value]
    return None


def _followup(contacts: list[dict[str, Any]], answers: list[dict[str, Any]],
              questionnaire: Questionnaire | None) -> dict[str, Any]:
    by_question: dict[str, list[Any]] = {}
    for a in answers:
        by_question.setdefault(a["question"], []).append(json.loads(a["answer"]))
    questions = []
    known = list(questionnaire.questions) if questionnaire else []
    for q in known:
        given = by_question.pop(q.id, [])
        options = [o.fr for o in q.options]
        labels = [_answer_label(q.kind, v, options) for v in given]
        order = {"scale": ["1", "2", "3", "4", "5"], "yes_no": ["oui", "non"],
                 "choice": options}.get(q.kind, [])
        counts = Counter(x for x in labels if x is not None)
        questions.append({"id": q.id, "text": q.text.fr, "kind": q.kind, "answered": len(given),
                          "answers": [{"answer": o, "count": counts[o]} for o in order]})
    for question_id, given in by_question.items():   # a question since taken out of the file
        questions.append({"id": question_id, "text": question_id, "kind": "text", "answered": len(given),
                          "answers": []})
    return {"contacts": len(contacts), "called": sum(1 for c in contacts if c["called"]),
            "erased_uncalled": sum(1 for c in contacts if not c["called"] and c["erased_why"] is not None),
            "questions": questions}


def debrief_labels(path: Path = SHEET_WORDS) -> dict[str, str]:
    """The words of the debrief's pictograms (``feelings``, each theme's ``at_home``), by id;
    none when the words file cannot be read (the report then shows the ids)."""
    try:
        words = sheet_words.load(path)
    except (OSError, sheet_words.SheetWordsError):
        return {}
    items = list(words.feelings)
    for theme in words.themes.values():
        items += theme.at_home
    return {i.id: i.label for i in items}


def _debrief(store: Store, span: tuple[str, str]) -> list[dict[str, Any]]:
    """What the groups answered at the debrief's steps, added up (counts per pictogram);
    empty when no group answered in the period."""
    rows = store.read(
        """SELECT a.step, a.choice, SUM(a.count) AS n FROM debrief_answers a
           JOIN sessions s ON s.id = a.session_id
           WHERE s.started_at IS NOT NULL AND s.date BETWEEN ? AND ?
           GROUP BY a.step, a.choice ORDER BY n DESC, a.choice""", span)
    if not rows:
        return []
    labels = debrief_labels()
    return [{"step": step, "label": label,
             "answers": [{"choice": r["choice"], "label": labels.get(r["choice"], r["choice"]),
                          "count": r["n"]} for r in rows if r["step"] == step]}
            for step, label in DEBRIEF_STEPS.items()]


def _months(held: list[dict[str, Any]], planned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = sorted({s["date"][:7] for s in held} | {p["date"][:7] for p in planned})
    return [{"month": k, "label": f"{MONTHS_SHORT[int(k[5:7]) - 1]} {k[2:4]}",
             "planned": sum(1 for p in planned if p["date"][:7] == k),
             "held": sum(1 for s in held if s["date"][:7] == k)} for k in keys]


# -- CSV files -------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    """A value as a French-locale spreadsheet reads it: decimal comma, no thousands separator."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, float):
        return (f"{value:.2f}".rstrip("0").rstrip(".") or "0").replace(".", ",")
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text   # no formula from a cell


def _french_csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    out.write("\ufeff")   # the BOM: the spreadsheet reads the accents as UTF-8
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


def _mins(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 2)


def _date_fr(iso: str) -> str:
    return dt.date.fromisoformat(iso).strftime("%d/%m/%Y")


def report_csvs(r: dict[str, Any]) -> dict[str, str]:
    """One CSV per table of the report (``;`` between fields, decimal comma, dates
    JJ/MM/AAAA, UTF-8 with a BOM: what a French-locale spreadsheet opens as numbers and dates)."""
    s, p, t = r["sessions"], r["participants"], r["times"]
    summary = [
        ["période", r["period"]["label"]],
        ["séances prévues", s["planned"]], ["séances tenues", s["held"]], ["objectif", s["target"]],
        ["séances prévues et tenues", s["planned_held"]],
        ["séances prévues non tenues", s["planned_not_held"]],
        ["séances hors planning", s["unplanned"]],
        ["participants", p["people"]], ["adultes inscrits", p["adults"]], ["enfants inscrits", p["children"]],
        ["foyers", p["households"]], ["groupes", p["groups"]],
        ["foyers venus pour la première fois", p["first_visit_households"]],
        ["personnes venues pour la première fois", p["first_visit_people"]],
        ["participants sans inscription", p["unregistered_people"]],
        *[[f"parties : {RESULT_LABELS[k]}", v] for k, v in r["results"].items()],
        ["temps des parties gagnées, médiane (min)", _mins(t["won"]["median_s"])],
        ["temps des parties gagnées, minimum (min)", _mins(t["won"]["min_s"])],
        ["temps des parties gagnées, maximum (min)", _mins(t["won"]["max_s"])],
        ["temps des parties finies, médiane (min)", _mins(t["finished"]["median_s"])],
        ["temps des parties finies, minimum (min)", _mins(t["finished"]["min_s"])],
        ["temps des parties finies, maximum (min)", _mins(t["finished"]["max_s"])],
        ["groupes ayant donné une note", r["ratings"]["count"]],
        ["note moyenne (sur 5)", r["ratings"]["mean"]],
        ["foyers d'accord pour être rappelés", r["followup"]["contacts"]],
        ["foyers rappelés", r["followup"]["called"]],
        ["foyers effacés sans appel", r["followup"]["erased_uncalled"]],
    ]
    themes = theme_labels()
    followup_rows = []
    for q in r["followup"]["questions"]:
        followup_rows.append([q["text"], "(réponses données)", q["answered"]])
        followup_rows += [[q["text"], a["answer"], a["count"]] for a in q["answers"]]
    return {
        "resume": _french_csv(["indicateur", "valeur"], summary),
        "seances": _french_csv(
            ["date", "parcours", "participants", "prevue", "resultat", "temps_min", "indices", "note"],
            [[_date_fr(x["date"]), PARCOURS_LABELS.get(x["parcours"], x["parcours"]), x["players"],
              x["planned"], RESULT_LABELS.get(x["result"], x["result"]), _mins(x["time_used_s"]),
              x["clues"], x["rating"]] for x in r["table"]]),
        "orientation": _french_csv(
            ["orientation", "groupes", "foyers", "adultes", "enfants", "personnes"],
            [[x["label"], x["groups"], x["households"], x["adults"], x["children"], x["people"]]
             for x in r["by_referral"]]),
        "parcours": _french_csv(
            ["parcours", "seances", "participants", "adultes", "enfants", "foyers", "gagnees"],
            [[x["label"], x["sessions"], x["people"], x["adults"], x["children"], x["households"], x["won"]]
             for x in r["by_parcours"]]),
        "enigmes": _french_csv(
            ["rang", "enigme", "theme", "seances", "atteinte", "resolue", "resolue_par_les_joueurs",
             "indices", "indices_par_seance"],
            [[i + 1, x["label"], themes.get(x["theme"] or "", x["theme"]), x["sessions"], x["reached"],
              x["solved"],
              x["solved_by_players"], x["clues"], x["clues_per_session"]]
             for i, x in enumerate(r["puzzles"])]),
        "themes": _french_csv(["theme", "groupes_disant_avoir_appris", "groupes_ayant_repondu"],
                              [[x["label"], x["groups"], x["of_groups"]] for x in r["themes"]]),
        "notes": _french_csv(["note", "groupes"],
                             [[x["rating"], x["count"]] for x in r["ratings"]["distribution"]]),
        "suivi": _french_csv(["question", "reponse", "nombre"], followup_rows),
        "debrief": _french_csv(["etape", "reponse", "nombre"],
                               [[d["label"], a["label"], a["count"]]
                                for d in r["debrief"] for a in d["answers"]]),
    }


def report_zip(r: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in report_csvs(r).items():
            z.writestr(f"{name}.csv", text.encode("utf-8"))
    return out.getvalue()


# -- the page ------------------------------------------------------------------------------
_CSS = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 11pt; line-height: 1.35; color: #111;
       background: #fff; margin: 0 auto; max-width: 190mm; padding: 4mm; }
h1 { font-size: 20pt; margin: 0 0 2mm; }
h2 { font-size: 14pt; margin: 6mm 0 2mm; border-bottom: 2px solid #333; }
nav a { margin-right: 1em; }
section { break-inside: avoid; }
table { border-collapse: collapse; width: 100%; margin: 2mm 0; font-size: 10pt; }
th, td { border-bottom: 1px solid #bbb; padding: 1mm 2mm; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 3mm; margin: 3mm 0; }
.kpi { border: 1px solid #999; border-radius: 2mm; padding: 2mm; }
.kpi b { display: block; font-size: 18pt; }
svg.chart { display: block; width: 100%; height: auto; margin: 2mm 0; }
svg.chart text { font-family: inherit; font-size: 11px; fill: #111; }
svg.chart .bar { fill: #2f6db5; }
svg.chart .bar.planned { fill: #c9d6e8; }
.note { font-size: 9.5pt; color: #444; }
.controls { background: #eef2f7; padding: 3mm; border-radius: 2mm; margin-bottom: 4mm; }
.controls a.button, .controls button { margin: 1mm 2mm 1mm 0; }
@media print { .screen-only { display: none !important; } body { padding: 0; } }
"""

#: one bar chart's geometry (pixels of the SVG's own space: it scales to the page)
_W, _LABEL_W, _ROW_H, _NUM_W = 640, 230, 22, 60


def bar_chart(rows: list[tuple[str, float]], *, chart_id: str, unit: str = "",
              digits: int = 0) -> str:
    """A horizontal bar chart as inline SVG: one ``rect.bar`` per row (zero rows too)."""
    top = max([v for _, v in rows] + [0]) or 1
    height = _ROW_H * len(rows) + 6
    parts = [f'<svg class="chart" id="{chart_id}" viewBox="0 0 {_W} {height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value) in enumerate(rows):
        y = 3 + i * _ROW_H
        w = (_W - _LABEL_W - _NUM_W) * value / top
        parts.append(f'<text x="{_LABEL_W - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
                     f'<rect class="bar" x="{_LABEL_W}" y="{y + 3}" width="{w:.1f}" height="{_ROW_H - 6}">'
                     f"<title>{escape(label)} : {french_number(value, digits)}{unit}</title></rect>"
                     f'<text x="{_LABEL_W + w + 5:.1f}" y="{y + 15}">'
                     f"{french_number(value, digits)}{unit}</text>")
    parts.append("</svg>")
    return "".join(parts)


def month_chart(months: list[dict[str, Any]]) -> str:
    """Per month, the sessions planned (light) and held (dark), side by side."""
    top = max([max(m["planned"], m["held"]) for m in months] + [1])
    col = 52
    width, height = max(col * len(months) + 20, 200), 150
    parts = [f'<svg class="chart" id="chart-months" viewBox="0 0 {width} {height}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for i, m in enumerate(months):
        x = 10 + i * col
        for j, (kind, value) in enumerate((("planned", m["planned"]), ("held", m["held"]))):
            h = 100 * value / top
            cls = "bar planned" if kind == "planned" else "bar"
            what = "prévues" if kind == "planned" else "tenues"
            parts.append(f'<rect class="{cls}" x="{x + j * 20}" y="{115 - h:.1f}" width="18" '
                         f'height="{h:.1f}">'
                         f"<title>{escape(m['label'])} : {value} {what}</title></rect>"
                         f'<text x="{x + j * 20 + 9}" y="{110 - h:.1f}" text-anchor="middle">{value}</text>')
        parts.append(f'<text x="{x + 19}" y="{135}" text-anchor="middle">{escape(m["label"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(header: list[str], rows: list[list[Any]], numeric: set[int]) -> str:
    head = "".join(f'<th class="{"n" if i in numeric else ""}">{escape(h)}</th>'
                   for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"n" if i in numeric else ""}">{escape(str(c))}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kpi(value: str, label: str, kpi_id: str) -> str:
    return f'<div class="kpi" id="kpi-{kpi_id}"><b>{escape(value)}</b>{escape(label)}</div>'


def report_html(r: dict[str, Any], *, controls: str = "") -> str:
    """The « Bilan de l'année » page; *controls* (the period's form, the download links)
    only on screen."""
    s, p, res, t = r["sessions"], r["participants"], r["results"], r["times"]
    n = french_number
    kpis = "".join([
        _kpi(f"{s['held']} / {s['target']}", "séances tenues / objectif", "held"),
        _kpi(str(s["planned"]), "séances prévues", "planned"),
        _kpi(n(p["people"], 0), "participants", "people"),
        _kpi(n(p["households"], 0), "foyers inscrits", "households"),
        _kpi(n(p["adults"], 0), "adultes inscrits", "adults"),
        _kpi(n(p["children"], 0), "enfants inscrits", "children"),
        _kpi(n(p["first_visit_households"], 0), "foyers venus une première fois", "first"),
        _kpi(n(r["ratings"]["mean"], 2) + " / 5" if r["ratings"]["mean"] is not None else "—",
             "note moyenne des groupes", "rating")])
    puzzles = r["puzzles"]
    followup = "".join(
        f'<h3>{escape(q["text"])}</h3><p class="note">{q["answered"]} réponse(s)'
        + (" — réponses libres non reprises ici (elles peuvent nommer des personnes)." if q["kind"] == "text"
           else ".") + "</p>"
        + (bar_chart([(a["answer"], a["count"]) for a in q["answers"]], chart_id=f"chart-followup-{q['id']}")
           if q["answers"] else "")
        for q in r["followup"]["questions"])
    debrief = "".join(
        f'<h3>{escape(d["label"])}</h3>'
        + bar_chart([(a["label"], a["count"]) for a in d["answers"]], chart_id=f"chart-debrief-{d['step']}")
        for d in r["debrief"] if d["answers"])
    if debrief:
        debrief = f'<section id="debrief"><h2>Au débrief, les groupes ont dit</h2>{debrief}</section>'
    unregistered = (f"{n(p['unregistered_people'], 0)} participants de séances hors planning ne sont "
                    "pas détaillés." if p["unregistered_people"] else "")
    return f"""<!doctype html>
<html lang="fr"><head><meta charset="utf-8">
<title>Bilan de l'année — Appartement témoin</title><style>{_CSS}</style></head>
<body class="report" data-from="{escape(r['period']['from'])}" data-to="{escape(r['period']['to'])}">
{controls}
<h1>Bilan de l'atelier « Appartement témoin »</h1>
<p>Période : <b id="period">{escape(r['period']['label'])}</b>
(du {escape(_date_fr(r['period']['from']))} au {escape(_date_fr(r['period']['to']))}).</p>
<div class="kpis">{kpis}</div>

<section id="sessions"><h2>Les séances</h2>
<p>{s['held']} séances tenues pour un objectif de {s['target']} ({n((s['of_target'] or 0) * 100, 0)} %) ;
{s['planned']} prévues au planning, dont {s['planned_held']} tenues et {s['planned_not_held']} non tenues ;
{s['unplanned']} tenue(s) hors planning.</p>
{month_chart(r['months']) if r['months'] else ''}
<p class="note">Clair : séances prévues ; foncé : séances tenues.</p></section>

<section id="participants"><h2>Les participants</h2>
<p>{n(p['people'], 0)} participants en tout : {n(p['adults'], 0)} adultes et {n(p['children'], 0)} enfants
inscrits, {n(p['households'], 0)} foyers en {p['groups']} groupes ; {n(p['first_visit_households'], 0)} foyers
({n(p['first_visit_people'], 0)} personnes) venaient pour la première fois.
{unregistered}</p>
<h3>Qui les a orientés (personnes)</h3>
{bar_chart([(x['label'], x['people']) for x in r['by_referral']], chart_id='chart-referral')}
{_table(['orientation', 'groupes', 'foyers', 'adultes', 'enfants', 'personnes'],
        [[x['label'], x['groups'], x['households'], x['adults'], x['children'], x['people']]
         for x in r['by_referral']],
        {1, 2, 3, 4, 5})}
<h3>Par parcours</h3>
{_table(['parcours', 'séances', 'participants', 'adultes', 'enfants', 'foyers', 'gagnées'],
        [[x['label'], x['sessions'], x['people'], x['adults'], x['children'], x['households'], x['won']]
         for x in r['by_parcours']], {1, 2, 3, 4, 5, 6})}</section>

<section id="results"><h2>Les résultats</h2>
{bar_chart([(RESULT_LABELS[k], v) for k, v in res.items()], chart_id='chart-results')}
{_table(['parties', 'nombre', 'temps médian', 'le plus court', 'le plus long'],
        [['gagnées', t['won']['count'], minutes(t['won']['median_s']), minutes(t['won']['min_s']),
          minutes(t['won']['max_s'])],
         ['toutes les parties finies', t['finished']['count'], minutes(t['finished']['median_s']),
          minutes(t['finished']['min_s']), minutes(t['finished']['max_s'])]], {1, 2, 3, 4})}</section>

<section id="puzzles"><h2>Les énigmes : les indices donnés</h2>
<p>Les plus difficiles en premier : le plus d'indices par séance qui l'a atteinte.</p>
{bar_chart([(x['label'], x['clues_per_session'] or 0) for x in puzzles], chart_id='chart-puzzles', digits=2)}
{_table(['énigme', 'atteinte', 'résolue par les joueurs', 'indices', 'indices par séance'],
        [[x['label'], x['reached'], x['solved_by_players'], x['clues'], n(x['clues_per_session'], 2)]
         for x in puzzles], {1, 2, 3, 4})}</section>

<section id="themes"><h2>Ce que les groupes disent avoir appris</h2>
{bar_chart([(x['label'], x['groups']) for x in r['themes']], chart_id='chart-themes')}
<p class="note">Nombre de groupes (sur {r['ratings']['count']} qui ont répondu au débrief).</p></section>

<section id="ratings"><h2>Les notes des groupes</h2>
<p>{r['ratings']['count']} groupes ont donné une note ; moyenne
{n(r['ratings']['mean'], 2) if r['ratings']['mean'] is not None else '—'} sur 5.</p>
{bar_chart([(f"{x['rating']} sur 5", x['count']) for x in r['ratings']['distribution']],
           chart_id='chart-ratings')}
</section>

<section id="followup"><h2>Le questionnaire téléphonique (un mois après)</h2>
<p>{r['followup']['contacts']} foyers d'accord pour être rappelés ; {r['followup']['called']} rappelés ;
{r['followup']['erased_uncalled']} numéro(s) effacé(s) sans appel.</p>
{followup}</section>

{debrief}
<section id="left-out"><h2>Anonymat</h2>
<p class="note">Ce bilan ne compte que des nombres. Il ne montre jamais :
{escape(' ; '.join(r['left_out']))}.</p>
</section>
</body></html>
"""


def page_controls(r: dict[str, Any], *, query: str, year: int) -> str:
    """The period's form and the download links (not printed)."""
    links = "".join(f'<a class="button" href="/api/report/csv/{t}?{escape(query)}" download>{t}.csv</a>'
                    for t in CSV_TABLES)
    return f"""<div class="controls screen-only">
<nav><a href="/console">Console</a><a href="/planning">Planning</a><a href="/history">Historique</a></nav>
<form id="period-form" method="get" action="/report"
 onsubmit="for (const f of this.elements) if (f.name && !f.value) f.disabled = true">
<label>Année <input type="number" name="year" min="2000" max="2100" value="{year}"></label>
<label>ou du <input type="date" name="from" value=""></label>
<label>au <input type="date" name="to" value=""></label>
<label>objectif <input type="number" name="target" min="1" max="1000"
 value="{r['sessions']['target']}"></label>
<button type="submit">Afficher</button></form>
<p><button type="button" onclick="window.print()">🖨️ Imprimer</button>
<a class="button" id="pdf" href="/report/{year}.pdf?{escape(query)}">PDF</a>
<a class="button" id="csv-zip" href="/api/report/csv?{escape(query)}" download>
Tous les tableaux (CSV, zip)</a>
{links}</p>
<p class="note">Tableaux CSV : séparés par des points-virgules, virgule décimale, dates JJ/MM/AAAA,
UTF-8 : ils s'ouvrent tels quels dans LibreOffice ou Excel réglés en français.</p></div>"""


# -- escape-apartment report --year 2026 --pdf OUT ---------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("report", help="the year's impact report (PDF with --pdf, CSV with --csv)")
    cmd.add_argument("--year", type=int, default=None, help="the calendar year (default: this year)")
    cmd.add_argument("--from", dest="start", type=dt.date.fromisoformat, default=None,
                     help="first day, YYYY-MM-DD (instead of the calendar year)")
    cmd.add_argument("--to", dest="end", type=dt.date.fromisoformat, default=None,
                     help="last day, YYYY-MM-DD")
    cmd.add_argument("--target", type=int, default=DEFAULT_TARGET, help="sessions planned for the year")
    cmd.add_argument("--pdf", type=Path, default=None, help="write a PDF here (headless Chromium)")
    cmd.add_argument("--html", type=Path, default=None, help="write the HTML page here")
    cmd.add_argument("--csv", type=Path, default=None, help="write the CSV files (zip) here")
    cmd.add_argument("--data-dir", default=None, help="where the store is (env ESCAPE_DATA_DIR)")
    cmd.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from config import followup as questionnaire_file
    from controller.core.config import Settings
    from controller.sheet import write_pdf
    from controller.store import DB_NAME, StoreError

    settings = Settings.with_flags(DATA_DIR=args.data_dir)
    db = settings.DATA_DIR / DB_NAME
    if not db.is_file():
        print(f"Pas de base de parties ici : {db}")
        return 1
    try:
        period = Period.of(year=args.year, start=args.start, end=args.end)
        store = Store(db)
    except (ReportError, StoreError) as exc:
        print(f"Bilan impossible : {exc}")
        return 1
    try:
        report = year_report(store, period, target=args.target, questionnaire=questionnaire_file.load())
    finally:
        store.close()
    html = report_html(report)
    if args.html:
        args.html.write_text(html, encoding="utf-8")
    if args.csv:
        args.csv.write_bytes(report_zip(report))
    if args.pdf:
        try:
            write_pdf(html, args.pdf)
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            print(f"PDF impossible : {exc}")
            return 1
        print(f"Bilan écrit : {args.pdf}")
    if not (args.html or args.pdf or args.csv):
        print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0
