"""The follow-up phone calls: consent, call list, answers, erasure (GDPR).

At the end of a session, each household may give a phone number *and* its consent to be
called once, a month later, for the questionnaire of ``config/followup.yaml``. Minimal
data: a number, the session it came from, when; no name. The number is erased as soon as
the call is recorded, and :data:`RETENTION_S` (3 months) after it was given whatever
happens (:meth:`Followup.purge`, run before every reading); a household may ask for what
is kept (:meth:`Followup.export`) and for its erasure (:meth:`Followup.erase`) at any time.
Every access to the numbers writes a line in the audit log (who, when, which contact —
never the number itself). The answers stay with the session, without the number.

Erased means gone from the disk too: the store overwrites what it deletes with zeros
(``secure_delete``) and, after each erasure, empties its ``-wal`` file (:meth:`Store.scrub`),
where the page that held the number would otherwise stay until overwritten; what it could
not empty (a backup reading, a full disk) the next erasure or hourly round does.

No copy of the store that leaves it holds a number (:func:`strip_numbers`, applied by
:mod:`controller.backup` to every backup and every restore): a backup is kept up to a
year, a number 3 months at most. A restored store's pending calls say why their number is
gone (``erased_why`` ``"restore"``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any

from config.followup import Questionnaire
from controller.core.errors import Bilingual, EngineError, NotFoundError
from controller.store import Store

log = logging.getLogger(__name__)

DAY_S = 24 * 3600
#: the call is due one month after the session
CALL_AFTER_S = 30 * DAY_S
#: the number is erased 3 months after it was given, called or not
RETENTION_S = 90 * DAY_S
#: a French phone number: 10 digits from 0, or +33 then 9 digits (spaces, dots, dashes allowed)
PHONE = re.compile(r"^(?:0|\+33 ?)[1-9](?:[ .-]?\d{2}){4}$")


class BadAnswer(Bilingual, ValueError):
    """An answer that does not fit its question (HTTP 422)."""


def normalise_phone(raw: str) -> str:
    """``06 12 34 56 78`` and ``+33 6 12 34 56 78`` → ``0612345678``; refused otherwise."""
    text = raw.strip()
    if not PHONE.match(text):
        raise BadAnswer("numéro de téléphone incorrect : 10 chiffres, par exemple 06 12 34 56 78",
                        en="wrong phone number: 10 digits, for example 06 12 34 56 78")
    digits = re.sub(r"\D", "", text)
    return "0" + digits[2:] if digits.startswith("33") else digits


def _unknown(contact_id: int) -> NotFoundError:
    return NotFoundError(f"contact inconnu : n° {contact_id}", en=f"unknown contact: no. {contact_id}")


def _audit(db: sqlite3.Connection, at: float, who: str, action: str, *, contact_id: int | None,
           session_id: str | None, detail: str = "") -> None:
    db.execute("INSERT INTO audit (session_id, at, elapsed_s, who, action, target, detail) "
               "VALUES (?, ?, NULL, ?, ?, ?, ?)",
               (session_id, at, who, action, None if contact_id is None else f"contact {contact_id}", detail))


def strip_numbers(db: sqlite3.Connection, at: float) -> int:
    """Erase every number kept in *db*, a copy of the store about to be written out (a backup,
    a restore); how many. The consent, the call pending or made, the answers stay: only the
    number goes, with an audit line each, so a restored store says why. A copy of a store
    older than the follow-up has nothing to erase."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'followup_contacts'"
                  ).fetchone() is None:
        return 0
    rows = db.execute("SELECT id, session_id FROM followup_contacts WHERE phone IS NOT NULL").fetchall()
    for contact_id, session_id in rows:
        db.execute("UPDATE followup_contacts SET phone = NULL, erased_at = ?, erased_why = 'restore' "
                   "WHERE id = ?", (at, contact_id))
        _audit(db, at, "controller", "followup_erase", contact_id=contact_id, session_id=session_id,
               detail="une sauvegarde ne garde aucun numéro")
    return len(rows)


class Followup:
    """The follow-up contacts and answers, kept in *store*."""

    def __init__(self, store: Store, questionnaire: Questionnaire | None = None, *,
                 wall: Callable[[], float] = time.time) -> None:
        # NOTE: the questionnaire only for recording a call: the hourly erasing must go on
        # (and the controller start) even with a followup.yaml a hand broke
        self.store = store
        self.questionnaire = questionnaire
        self.wall = wall

    def _audit(self, db: Any, who: str, action: str, *, contact_id: int | None, session_id: str | None,
               detail: str = "") -> None:
        _audit(db, self.wall(), who, action, contact_id=contact_id, session_id=session_id, detail=detail)

    # -- the rule of retention ------------------------------------------------------------
    def purge(self) -> int:
        """Erase every number given more than 3 months ago; how many were erased."""
        now = self.wall()
        with self.store.transaction() as db:
            rows = db.execute("SELECT id, session_id FROM followup_contacts WHERE phone IS NOT NULL "
                              "AND given_at <= ?", (now - RETENTION_S,)).fetchall()
            for contact_id, session_id in rows:
                db.execute("UPDATE followup_contacts SET phone = NULL, erased_at = ?, "
                           "erased_why = 'retention' WHERE id = ?", (now, contact_id))
                self._audit(db, "controller", "followup_erase", contact_id=contact_id,
                            session_id=session_id, detail="3 mois écoulés")
        if rows or self.store.scrub_pending:
            self.store.scrub()
        return len(rows)

    # -- writing ------------------------------------------------------------------------
    def consent(self, session_id: str, *, phone: str, consent: bool, who: str) -> dict[str, Any]:
        """A household of a finished session agrees to be called: its number is kept.
        No consent, no number: refused."""
        if not consent:
            raise BadAnswer("sans accord, aucun numéro n'est gardé",
                            en="without consent, no number is kept")
        number = normalise_phone(phone)
        with self.store.transaction() as db:
            row = db.execute("SELECT result FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"session inconnue {session_id!r}", en=f"unknown session {session_id!r}")
            if row[0] not in ("won", "lost", "aborted"):
                raise EngineError(f"la session {session_id} n'est pas terminée",
                                  en=f"session {session_id} has not ended")
            cursor = db.execute("INSERT INTO followup_contacts (session_id, phone, consent, given_at) "
                                "VALUES (?, ?, 1, ?)", (session_id, number, self.wall()))
            contact_id = int(cursor.lastrowid or 0)
            self._audit(db, who, "followup_consent", contact_id=contact_id, session_id=session_id)
        return self._contact(contact_id)

    def record_call(self, contact_id: int, answers: Mapping[str, Any], *, who: str) -> dict[str, Any]:
        """The call is done: its answers are kept with the session, the number is erased."""
        if self.questionnaire is None:
            msg = "no questionnaire given: a call cannot be recorded"
            raise RuntimeError(msg)
        for question_id, answer in answers.items():
            question = self.questionnaire.question(question_id)
            if question is None:
                raise BadAnswer(f"question inconnue : {question_id}", en=f"unknown question: {question_id}")
            if (problem := question.problem(answer)) is not None:
                raise BadAnswer(f"réponse à « {question.text.fr} » : {problem[0]}",
                                en=f"answer to '{question.text.get('en')}': {problem[1]}")
        now = self.wall()
        with self.store.transaction() as db:
            row = db.execute("SELECT session_id, called_at, phone FROM followup_contacts WHERE id = ?",
                             (contact_id,)).fetchone()
            if row is None:
                raise _unknown(contact_id)
            if row[1] is not None:
                raise EngineError("cet appel est déjà enregistré", en="this call is recorded already")
            if row[2] is None:
                raise EngineError("ce numéro est déjà effacé : l'appel ne peut plus être enregistré",
                                  en="this number is erased already: the call can no longer be recorded")
            for question_id, answer in answers.items():
                db.execute("INSERT INTO followup_answers (contact_id, session_id, question, answer, at) "
                           "VALUES (?, ?, ?, ?, ?)",
                           (contact_id, row[0], question_id, json.dumps(answer), now))
            db.execute("UPDATE followup_contacts SET called_at = ?, phone = NULL, erased_at = ?, "
                       "erased_why = 'called' WHERE id = ?", (now, now, contact_id))
            self._audit(db, who, "followup_call", contact_id=contact_id, session_id=row[0],
                        detail=f"{len(answers)} réponse(s)")
        self.store.scrub()
        return self._contact(contact_id)

    def erase(self, contact_id: int, *, who: str) -> dict[str, Any]:
        """On the household's request: its number and its answers are erased."""
        now = self.wall()
        with self.store.transaction() as db:
            row = db.execute("SELECT session_id FROM followup_contacts WHERE id = ?",
                             (contact_id,)).fetchone()
            if row is None:
                raise _unknown(contact_id)
            db.execute("DELETE FROM followup_answers WHERE contact_id = ?", (contact_id,))
            db.execute("UPDATE followup_contacts SET phone = NULL, erased_at = ?, erased_why = 'request' "
                       "WHERE id = ?", (now, contact_id))
            self._audit(db, who, "followup_erase", contact_id=contact_id, session_id=row[0],
                        detail="à la demande du foyer")
        self.store.scrub()
        return {"id": contact_id, "erased_at": now}

    # -- reading (each one audited) -------------------------------------------------------
    def due(self, *, who: str, include_all: bool = False) -> list[dict[str, Any]]:
        """The call list: numbers kept whose month has passed (*include_all*: every contact,
        called, erased or not due yet)."""
        self.purge()
        where = "1" if include_all else "c.phone IS NOT NULL AND c.called_at IS NULL AND c.given_at <= ?"
        args = () if include_all else (self.wall() - CALL_AFTER_S,)
        ids = [r["id"] for r in self.store.read(
            f"SELECT c.id FROM followup_contacts c WHERE {where} ORDER BY c.given_at", args)]  # noqa: S608
        with self.store.transaction() as db:
            self._audit(db, who, "followup_list", contact_id=None, session_id=None,
                        detail=f"{len(ids)} contact(s)")
        return [self._contact(i) for i in ids]

    def export(self, contact_id: int, *, who: str) -> dict[str, Any]:
        """Everything kept about one household's follow-up, with who accessed it."""
        self.purge()
        contact = self._contact(contact_id)
        with self.store.transaction() as db:
            self._audit(db, who, "followup_export", contact_id=contact_id, session_id=contact["session_id"])
        audit = self.store.read("SELECT at, elapsed_s, who, action, target, detail FROM audit "
                                "WHERE target = ? ORDER BY id", (f"contact {contact_id}",))
        return {"contact": contact, "audit": audit}

    def _contact(self, contact_id: int) -> dict[str, Any]:
        rows = self.store.read(
            "SELECT c.*, s.date AS session_date FROM followup_contacts c "
            "JOIN sessions s ON s.id = c.session_id WHERE c.id = ?", (contact_id,))
        if not rows:
            raise _unknown(contact_id)
        c = rows[0]
        answers = {r["question"]: json.loads(r["answer"]) for r in self.store.read(
            "SELECT question, answer FROM followup_answers WHERE contact_id = ?", (contact_id,))}
        return {"id": c["id"], "session_id": c["session_id"], "session_date": c["session_date"],
                "phone": c["phone"], "consent": bool(c["consent"]), "given_at": c["given_at"],
                "due_at": c["given_at"] + CALL_AFTER_S, "erase_at": c["given_at"] + RETENTION_S,
                "called_at": c["called_at"], "erased_at": c["erased_at"], "erased_why": c["erased_why"],
                "answers": answers}


async def purge_every(followup: Followup, seconds: float = 3600.0) -> None:
    """Erase the numbers past their 3 months once an hour, while the controller runs (every
    reading purges too: nobody ever sees a number past its time). In a worker thread: the
    WAL checkpoint after an erasure is no work for the event loop."""
    while True:
        try:
            await asyncio.to_thread(followup.purge)
        except Exception:   # a full disk: the next round tries again; the game goes on
            log.exception("erasing the old follow-up numbers failed")
        await asyncio.sleep(seconds)
