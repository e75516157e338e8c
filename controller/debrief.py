"""The debrief of one session: what the group did, theme by theme, and its budget.

One function, :func:`debrief`, turns a session as the store keeps it
(:meth:`controller.store.Store.session`: the session row, its puzzle results, budget lines,
clues) into what the debrief page shows and ``GET /api/history/sessions/{id}/debrief`` /
``GET /api/game/debrief`` return. The same code serves the session that just ended and any
past one, so what the organisers see after the game is what the history shows later.

A puzzle's ``outcome``:

* ``solved`` — by the players (also when a node solved it on its own while the controller
  was away: the players did it);
* ``forced`` — force-solved by the game master;
* ``skipped`` — solved on the way when the game master skipped to a later puzzle;
* ``unsolved`` — reached (available) but not solved;
* ``not_reached`` — never became available.
"""

from __future__ import annotations

from typing import Any

from config.game import BudgetAction, Game, Obligation
from config.sheet import Choice, SheetWords, ThemeName
from controller.engine import LineKind, month_figures

#: the game's themes in the order the debrief shows them (``story`` last: the framing)
THEMES = ("upkeep", "waste", "budget", "rights", "diy", "story")
OUTCOMES = ("solved", "forced", "skipped", "unsolved", "not_reached")
#: how the engine labels the budget line of a clue that costs (``Engine.send_clue``)
CLUE_LINE = "Indice"


def outcome(status: str, solved_by: str | None) -> str:
    """What became of one puzzle (see the module docstring)."""
    if status != "solved":
        return "unsolved" if status == "available" else "not_reached"
    by = solved_by or ""
    if by == "players" or by.startswith("node "):
        return "solved"
    return "skipped" if by.endswith("(saut)") else "forced"


def debrief(session: dict[str, Any], game: Game | None = None,
            words: SheetWords | None = None) -> dict[str, Any]:
    """The debrief of *session* (a :meth:`Store.session` dict); *game* adds the English
    labels and room names when the game file still has them, *words* (config/sheet.yaml)
    the themes' names."""
    names = words.names() if words else {}
    puzzles_cfg = {p.id: p for p in game.puzzles} if game else {}
    rooms = {n.id: n.label for n in game.nodes} if game else {}
    lines = session.get("budget_lines") or []
    # what each puzzle did to the budget (its actions), apart from what its clues cost
    budget_per_puzzle: dict[str, int] = {}
    for line in lines:
        if line.get("puzzle") and not _is_clue(line):
            budget_per_puzzle[line["puzzle"]] = budget_per_puzzle.get(line["puzzle"], 0) + line["amount"]

    puzzles = []
    for row in session.get("puzzles_detail") or []:
        cfg = puzzles_cfg.get(row["puzzle_id"])
        room = rooms.get(row["room"])
        result = outcome(row["status"], row.get("solved_by"))
        puzzles.append({
            "id": row["puzzle_id"], "label": row["label"],
            "label_en": (cfg.label.en if cfg else None) or row["label"],
            "theme": row["theme"], "room": row["room"],
            "room_label": room.fr if room else row["room"],
            "room_label_en": (room.en if room else None) or (room.fr if room else row["room"]),
            "outcome": result, "solved_by": row.get("solved_by"),
            "available_at_s": _r(row.get("available_at_s")), "solved_at_s": _r(row.get("solved_at_s")),
            # time spent only means something when the players solved it themselves
            "time_s": _r(row.get("duration_s")) if result == "solved" else None,
            "clues": row.get("clues") or 0,
            "budget": budget_per_puzzle.get(row["puzzle_id"], 0),   # its actions, clues apart
        })

    themes = []
    for theme in sorted({p["theme"] for p in puzzles},
                        key=lambda t: THEMES.index(t) if t in THEMES else len(THEMES)):
        mine = [p for p in puzzles if p["theme"] == theme]
        counts = {o: sum(p["outcome"] == o for p in mine) for o in OUTCOMES}
        times = [p["time_s"] for p in mine if p["time_s"] is not None]
        themes.append({"theme": theme, **named(names.get(theme), theme), "puzzles": mine,
                       "total": len(mine), **counts,
                       "time_s": _r(sum(times)) if times else None,
                       "clues": sum(p["clues"] for p in mine),
                       "budget": sum(p["budget"] for p in mine)})

    start = session.get("budget_start") or 0
    balance, history = start, []
    for line in lines:
        balance += line["amount"]
        history.append({"at_s": _r(line["at_s"]), "amount": line["amount"], "label": line["label"],
                        "label_en": line.get("label_en") or line["label"],
                        "puzzle": line.get("puzzle"), "clue": _is_clue(line),
                        "obligation": line.get("obligation"), "kind": line.get("kind"),
                        "balance": balance})
    clues = session.get("clues_detail") or []
    totals = {o: sum(p["outcome"] == o for p in puzzles) for o in OUTCOMES}
    return {
        "session": {k: session.get(k) for k in (
            "id", "date", "parcours", "players", "children", "started", "ended", "started_at",
            "ended_at", "result", "result_label", "phase", "closed", "duration_s", "time_used_s",
            "time_used", "check_override")},
        "puzzles_total": len(puzzles), **totals,
        "clues": session.get("clues") or 0,
        "clues_sent": session.get("clues_sent") or len(clues),
        "clues_free": sum(1 for c in clues if c.get("counts") and not c.get("puzzle")),
        "clue_cost": sum(c.get("cost") or 0 for c in clues if c.get("counts")),
        "budget": {"start": session.get("budget_start"), "final": session.get("final_budget"),
                   "change": (session.get("final_budget") or 0) - start
                   if session.get("final_budget") is not None else None,
                   "history": history,
                   "month": month_figures(start, ((b["amount"], b.get("kind")) for b in lines)),
                   "bills": bills(lines, game),
                   "late": -sum(b["amount"] for b in lines
                                if b.get("kind") in (LineKind.CHARGED, LineKind.LATE_FEE))},
        "themes": themes,
        "puzzles": puzzles,
        "evaluation": session.get("evaluation"),
    }


def bills(lines: list[dict[str, Any]], game: Game | None = None) -> list[dict[str, Any]]:
    """The month's bills as the session's budget lines tell them: ``paid`` during the game,
    ``charged`` at the end (what was due, its late fee, and what an unpaid bill leads to),
    or ``due`` (a session not over). The words come from the game file when it still has
    the bill, else from the lines."""
    budget = game.apartment.budget if game else None
    known: list[Obligation] = list(budget.obligations) if budget else []
    ids = [o.id for o in known]
    ids += [i for i in dict.fromkeys(b.get("obligation") for b in lines) if i and i not in ids]
    out = []
    for oid in ids:
        mine = [b for b in lines if b.get("obligation") == oid]
        paid = -sum(b["amount"] for b in mine if b.get("kind") in (LineKind.PAID, LineKind.CANCEL))
        charged = -sum(b["amount"] for b in mine if b.get("kind") == LineKind.CHARGED)
        fee = -sum(b["amount"] for b in mine if b.get("kind") == LineKind.LATE_FEE)
        cfg = next((o for o in known if o.id == oid), None)
        label = cfg.label if cfg else None
        fee_label = cfg.late_fee_label if cfg else None
        consequence = cfg.consequence if cfg else None
        out.append({
            "id": oid, "label": label.fr if label else oid,
            "label_en": (label.en if label else None) or (label.fr if label else oid),
            "icon": cfg.icon if cfg else "🧾",
            "status": "charged" if charged else "paid" if paid > 0 else "due",
            "paid": max(paid, 0), "charged": charged, "late_fee": fee,
            "late_fee_label": fee_label.fr if fee_label else None,
            "late_fee_label_en": fee_label.get("en") if fee_label else None,
            "consequence": consequence.fr if consequence else None,
            "consequence_en": consequence.get("en") if consequence else None,
        })
    return out


def _is_clue(line: dict[str, Any]) -> bool:
    if line.get("kind"):
        return line["kind"] == LineKind.CLUE
    return line["label"] == CLUE_LINE or line["label"].startswith(CLUE_LINE + " :")


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# -- the debrief that teaches, step by step ------------------------------------------------
#: the four steps of a pedagogic debrief: how did you feel; what happened; what you
#: learned, theme by theme (one page per theme); what you will do at home
STEPS = ("feelings", "story", "learned", "home")


def pages(d: dict[str, Any], words: SheetWords) -> list[dict[str, Any]]:
    """The debrief's pages, in order: one per step, step 3 one per theme the group played
    that the words file teaches (the story is the framing, not a lesson)."""
    themes = [t["theme"] for t in d["themes"] if t["theme"] in words.themes]
    return [{"step": 1, "kind": "feelings", "theme": None},
            {"step": 2, "kind": "story", "theme": None},
            *({"step": 3, "kind": "theme", "theme": t} for t in themes),
            {"step": 4, "kind": "home", "theme": None}]


def page(d: dict[str, Any], words: SheetWords, index: int, answers: dict[str, dict[str, int]],
         game: Game | None = None) -> dict[str, Any]:
    """What page *index* of :func:`pages` shows, with the budget lines that go with it:
    the month's start and end (how did you feel), every line at its moment (what happened),
    the lines of the theme's puzzles and bills (each theme), the whole month (at home)."""
    kind = pages(d, words)[index]
    budget = d["budget"]
    lines = [_line(b) for b in budget["history"]]
    top = {"start": budget["start"], "final": budget["final"], "change": budget["change"]}
    if kind["kind"] == "feelings":
        return {"kind": "feelings", "budget": top, "result": d["session"]["result"],
                "time_used_s": d["session"]["time_used_s"], "solved": d["solved"],
                "puzzles_total": d["puzzles_total"],
                "choices": _counted(words.feelings, answers.get("feelings", {}))}
    if kind["kind"] == "story":
        return {"kind": "story", "budget": top, "events": story(d)}
    if kind["kind"] == "theme":
        return {"kind": "theme", **_theme_page(d, words, kind["theme"], lines, game)}
    return {"kind": "home", "budget": top, "month": budget["month"], "lines": lines,
            "bills": [_bill(b) for b in budget["bills"]],
            "themes": [{"theme": t, **named(w, t),
                        "choices": _counted(w.at_home, answers.get("at_home", {}))}
                       for t, w in words.themes.items() if w.at_home]}


def story(d: dict[str, Any]) -> list[dict[str, Any]]:
    """What happened, in the order it happened: the start, each puzzle the group reached
    (where, what became of it, its clues, what it did to the budget), the end (and the
    bills charged then). Plain facts; the pages say them in words."""
    history = d["budget"]["history"]
    events: list[dict[str, Any]] = [{"kind": "start", "at_s": 0.0, "lines": []}]
    reached = [p for p in d["puzzles"] if p["outcome"] != "not_reached"]
    for p in sorted(reached, key=lambda p: (p["solved_at_s"] is None, p["solved_at_s"] or 0)):
        events.append({
            "kind": "puzzle", "at_s": p["solved_at_s"], "label": p["label"], "label_en": p["label_en"],
            "room": p["room_label"], "room_en": p["room_label_en"], "outcome": p["outcome"],
            "clues": p["clues"], "theme": p["theme"],
            "lines": [_line(b) for b in history if b["puzzle"] == p["id"]]})
    s = d["session"]
    events.append({"kind": "end", "at_s": s["time_used_s"], "result": s["result"],
                   "not_reached": d["not_reached"],
                   "lines": [_line(b) for b in history if b["puzzle"] is None]})
    return events


def _theme_page(d: dict[str, Any], words: SheetWords, theme: str, lines: list[dict[str, Any]],
                game: Game | None) -> dict[str, Any]:
    w = words.themes[theme]
    mine = next(t for t in d["themes"] if t["theme"] == theme)
    ids = {p["id"] for p in mine["puzzles"]}
    # the bills this theme's puzzles pay: the game file says which; else the lines do
    paid_by = {a.pays: p.theme for p in (game.puzzles if game else ()) for a in p.actions
               if isinstance(a, BudgetAction) and a.pays}
    paid_by.update({b["obligation"]: theme for b in lines if b["obligation"] and b["puzzle"] in ids})
    bills_here = {o for o, t in paid_by.items() if t == theme}
    themed = [b for b in lines if b["puzzle"] in ids or b["obligation"] in bills_here]
    ordered = sorted(themed, key=lambda b: b["at_s"] or 0)
    contacts = [c for c in (words.contact(i) for i in w.call) if c is not None]
    themes = [t for t in (p["theme"] for p in pages(d, words)) if t]
    return {"theme": theme, **named(w, theme), "message": w.said("fr"), "message_en": w.said("en"),
            "advice": w.advice, "advice_en": w.get("en")[1],
            "index": themes.index(theme) + 1, "of": len(themes),
            "puzzles": [{"label": p["label"], "label_en": p["label_en"], "room": p["room_label"],
                         "room_en": p["room_label_en"], "outcome": p["outcome"], "clues": p["clues"],
                         "time_s": p["time_s"]} for p in mine["puzzles"]],
            "lines": ordered, "total": sum(b["amount"] for b in ordered),
            "bills": [_bill(b) for b in d["budget"]["bills"] if b["id"] in bills_here],
            "contacts": [{"icon": c.icon, "who": c.who, "who_en": c.name("en"), "phone": c.phone,
                          "example": c.example}
                         for c in contacts]}


def named(name: ThemeName | None, theme: str) -> dict[str, Any]:
    """A theme's pictogram and title, French and English, as the words file names it (its
    id when the file cannot be read: the page still shows)."""
    if name is None:
        return {"icon": None, "title": theme, "title_en": theme}
    return {"icon": name.icon, "title": name.title, "title_en": name.title_en or name.title}


def _counted(choices: tuple[Choice, ...], counts: dict[str, int]) -> list[dict[str, Any]]:
    return [{"id": c.id, "icon": c.icon, "label": c.label, "label_en": c.name("en"),
             "count": counts.get(c.id, 0)} for c in choices]


def _line(b: dict[str, Any]) -> dict[str, Any]:
    return {k: b[k] for k in ("at_s", "amount", "label", "label_en", "puzzle", "obligation", "kind",
                              "balance")}


def _bill(b: dict[str, Any]) -> dict[str, Any]:
    return {k: b[k] for k in ("id", "label", "label_en", "icon", "status", "paid", "charged", "late_fee")}
