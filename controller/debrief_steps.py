"""The debrief that teaches: its pages, the page on the room screens, what the group answered.

The game master walks the group through the four steps of :data:`controller.debrief.STEPS`
on the debrief page (next, previous); the room screens show the same page, big, while the
game is in its debrief phase (:meth:`DebriefSteps.screen`, in the screen view). The page
and the answers (how many picked each feeling, each thing to do at home: counts, never a
name) are kept with the session in the store (``debrief_progress``, ``debrief_answers``),
so a restarted controller shows the same page and nothing answered is lost.

Answers are set whole (each step's counts replace the old ones): sending the same answers
twice changes nothing, and a refused answer changes nothing either.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from config.game import Game
from config.sheet import SheetWords, SheetWordsError
from config.sheet import load as load_words
from controller.core.errors import Bilingual, NotFoundError
from controller.debrief import debrief, named, page, pages
from controller.store import SessionNotEnded, Store, StoreError

ENDED = ("won", "lost", "aborted")
#: what the group answers, and where the words file lists the pictograms
ANSWER_STEPS = ("feelings", "at_home")


class BadDebriefAnswer(Bilingual, ValueError):
    """A page or an answer that does not fit the session (HTTP 422)."""


class DebriefSteps:
    """The debrief's pages of each session, kept in *store*; *game* the game file now."""

    def __init__(self, store: Store, *, game: Callable[[], Game | None] = lambda: None,
                 words: Callable[[], SheetWords] = load_words,
                 wall: Callable[[], float] = time.time) -> None:
        self.store = store
        self.game = game
        self.words = words
        self.wall = wall
        #: the screens' page: (session, revision) it was made for, and the page
        self._screen: tuple[tuple[str, int], dict[str, Any]] | None = None
        self._revision = 0

    # -- reading ----------------------------------------------------------------------
    def _session(self, session_id: str) -> dict[str, Any]:
        row = self.store.session(session_id)
        if row is None:
            raise NotFoundError(f"session inconnue {session_id!r}", en=f"unknown session {session_id!r}")
        return row

    def _state(self, session_id: str) -> tuple[int, dict[str, dict[str, int]]]:
        rows = self.store.read("SELECT page FROM debrief_progress WHERE session_id = ?", (session_id,))
        answers = self.store.debrief_answers([session_id]).get(session_id, {})
        return (rows[0]["page"] if rows else 0), answers

    def view(self, session_id: str) -> dict[str, Any]:
        """The session's debrief: its pages, the current one and what it shows, the answers."""
        row = self._session(session_id)
        words = self.words()
        d = debrief(row, self.game(), words)
        index, answers = self._state(session_id)
        index = min(index, len(pages(d, words)) - 1)   # a words file with fewer themes since
        return self._view(row, d, words, index, answers)

    def _view(self, row: dict[str, Any], d: dict[str, Any], words: SheetWords, index: int,
              answers: dict[str, dict[str, int]]) -> dict[str, Any]:
        all_pages = pages(d, words)
        titled = [{**p, **(named(words.themes[p["theme"]], p["theme"]) if p["theme"]
                           else {"icon": None, "title": None, "title_en": None})} for p in all_pages]
        return {"session": row["id"], "ended": row["result"] in ENDED, "players": row["players"],
                "page": index, "step": all_pages[index]["step"], "pages": titled,
                "content": page(d, words, index, answers, self.game()),
                "answers": {s: answers.get(s, {}) for s in ANSWER_STEPS}}

    def screen(self, session_id: str | None) -> dict[str, Any] | None:
        """The page the room screens show (made again only when the page or the answers
        change: the screens' view is built on every push)."""
        if session_id is None:
            return None
        key = (session_id, self._revision)
        if self._screen is None or self._screen[0] != key:
            try:
                self._screen = (key, self.view(session_id))
            except (NotFoundError, SheetWordsError, StoreError):
                return None   # the screens show « Place au débrief », never a broken push
        return self._screen[1]

    # -- changing ---------------------------------------------------------------------
    def _ended(self, session_id: str) -> dict[str, Any]:
        row = self._session(session_id)
        if row["result"] not in ENDED:
            msg = f"la partie {session_id} n'est pas terminée : le débrief vient après"
            raise SessionNotEnded(msg, en=f"session {session_id} has not ended: the debrief comes after")
        return row

    def go(self, session_id: str, index: int, *, who: str) -> dict[str, Any]:
        """Show page *index* (from 0) of the session's debrief, on the console and the screens."""
        row = self._ended(session_id)
        words = self.words()
        d = debrief(row, self.game(), words)
        count = len(pages(d, words))
        if not 0 <= index < count:
            raise BadDebriefAnswer(f"page du débrief inconnue : {index + 1} (de 1 à {count})",
                                   en=f"unknown debrief page: {index + 1} (1 to {count})")
        with self.store.transaction() as db:
            db.execute("""INSERT INTO debrief_progress (session_id, page, who, at) VALUES (?, ?, ?, ?)
                          ON CONFLICT (session_id) DO UPDATE SET page = excluded.page,
                              who = excluded.who, at = excluded.at""",
                       (session_id, index, who, self.wall()))
        self._revision += 1
        return self._view(row, d, words, index, self._state(session_id)[1])

    def record(self, session_id: str, answers: Mapping[str, Mapping[str, int] | None], *,
               who: str) -> dict[str, Any]:
        """Set what the group answered at a step (``feelings``, ``at_home``): how many
        picked each pictogram. A step left out (None) keeps its answers."""
        row = self._ended(session_id)
        words = self.words()
        known = {"feelings": [c.id for c in words.feelings], "at_home": list(words.home_choices())}
        game = self.game()
        most = row["players"] or (game.apartment.max_players if game else 6)
        given = {step: counts for step, counts in answers.items() if counts is not None}
        for step, counts in given.items():
            _check(step, counts, known[step], most)
        at = self.wall()
        with self.store.transaction() as db:
            for step, counts in given.items():
                db.execute("DELETE FROM debrief_answers WHERE session_id = ? AND step = ?",
                           (session_id, step))
                db.executemany(
                    "INSERT INTO debrief_answers (session_id, step, choice, count) VALUES (?, ?, ?, ?)",
                    [(session_id, step, c, counts[c]) for c in known[step] if counts.get(c)])
                detail = ", ".join(f"{c} {n}" for c, n in counts.items() if n) or "aucun"
                db.execute("INSERT INTO audit (session_id, at, elapsed_s, who, action, target, detail) "
                           "VALUES (?, ?, NULL, ?, 'debrief_answers', ?, ?)",
                           (session_id, at, who, step, detail))
        self._revision += 1
        return self.view(session_id)


def _check(step: str, counts: Mapping[str, int], known: list[str], most: int) -> None:
    """Refuse an answer that names no pictogram of *step* or counts more people than the
    group has (a feeling is one per person)."""
    for choice, n in counts.items():
        if choice not in known:
            names = ", ".join(known)
            raise BadDebriefAnswer(f"choix inconnu : {choice!r} (les choix : {names})",
                                   en=f"unknown choice: {choice!r} (the choices: {names})")
        if n > most:
            raise BadDebriefAnswer(f"{n} réponses pour {choice!r} : le groupe compte {most} personnes",
                                   en=f"{n} answers for {choice!r}: the group has {most} people")
    total = sum(counts.values())
    if step == "feelings" and total > most:
        raise BadDebriefAnswer(f"{total} ressentis pour {most} personnes : un par personne au plus",
                               en=f"{total} feelings for {most} people: one per person at most")
