"""The year's calendar: the sessions planned ahead and the groups registered for them.

A planned session has a date, a time, a game master and a parcours. Groups are
registered on it ahead (a household referred by the landlord, another by the CCAS…):
each with its adults and children counted apart, its households, whether it is a
first-time tenant (``primo``) or a current tenant (``locataire``), who referred it and
whether it is its first visit. Everyone counts towards the apartment's ``max_players``,
children included: a group that would make the session too big is refused and nothing is
written. Starting the planned session opens the game's check with that group
(:meth:`Planning.start_fields`); the session played is then linked to the plan.

The rows live in the controller's database (tables ``planned`` and ``planned_groups``,
``controller/store.py``).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from controller.core.errors import Bilingual, EngineError, NotFoundError
from controller.store import Store

Tenancy = Literal["primo", "locataire"]
Referral = Literal["osica_cal", "ccas", "mds", "service_habitat", "autre"]
#: what the staff read for each referral source
REFERRAL_LABELS: dict[str, tuple[str, str]] = {
    "osica_cal": ("OSICA (commission d'attribution)", "OSICA (allocation committee)"),
    "ccas": ("CCAS", "CCAS (social services)"),
    "mds": ("MDS (maison des solidarités)", "MDS (social services)"),
    "service_habitat": ("service habitat", "housing service"),
    "autre": ("autre", "other"),
}


class TooManyPlayers(Bilingual, ValueError):
    """A group that would put more people in the apartment than it takes (HTTP 409)."""


class AlreadyPlayed(EngineError):
    """A change to a planned session that has been played already (HTTP 409)."""


def _too_many(total: int, top: int, already: int) -> TooManyPlayers:
    fr = (f"{top} joueurs au plus, enfants compris : ce groupe ferait {total} personnes"
          + (f" (déjà {already} inscrites)" if already else ""))
    en = (f"at most {top} players, children included: this group would make {total} people"
          + (f" ({already} registered already)" if already else ""))
    return TooManyPlayers(fr, en=en)


def _unknown(planned_id: int) -> NotFoundError:
    return NotFoundError(f"séance prévue inconnue : n° {planned_id}",
                         en=f"unknown planned session: no. {planned_id}")


class Planning:
    """The calendar, kept in *store*."""

    def __init__(self, store: Store, *, max_players: int, wall: Any = time.time) -> None:
        self.store = store
        self.max_players = max_players
        self.wall = wall

    # -- reading ------------------------------------------------------------------------
    def sessions(self, *, date_from: str | None = None, date_to: str | None = None) -> list[dict[str, Any]]:
        """Planned sessions in date and time order, each with its groups and totals."""
        where, args = ["1"], []
        if date_from:
            where.append("p.date >= ?")
            args.append(date_from)
        if date_to:
            where.append("p.date <= ?")
            args.append(date_to)
        clause = " AND ".join(where)   # constants only; the values are bound
        plans = self.store.read(
            f"SELECT * FROM planned p WHERE {clause} ORDER BY p.date, p.time, p.id", args)  # noqa: S608
        groups = self.store.read(
            "SELECT g.* FROM planned_groups g JOIN planned p ON p.id = g.planned_id "  # noqa: S608
            f"WHERE {clause} ORDER BY g.id", args)
        by_plan: dict[int, list[dict[str, Any]]] = {}
        for g in groups:
            by_plan.setdefault(g["planned_id"], []).append(self._group_view(g))
        return [self._view(p, by_plan.get(p["id"], [])) for p in plans]

    def session(self, planned_id: int) -> dict[str, Any]:
        rows = self.store.read("SELECT * FROM planned WHERE id = ?", (planned_id,))
        if not rows:
            raise _unknown(planned_id)
        groups = self.store.read("SELECT * FROM planned_groups WHERE planned_id = ? ORDER BY id",
                                 (planned_id,))
        return self._view(rows[0], [self._group_view(g) for g in groups])

    def start_fields(self, planned_id: int) -> dict[str, Any]:
        """What the game's check opens with: the plan's parcours and its registered people."""
        plan = self.session(planned_id)
        if plan["session_id"] is not None:
            raise AlreadyPlayed(f"la séance prévue n° {planned_id} a déjà été lancée",
                                en=f"planned session no. {planned_id} was started already")
        if plan["players"] == 0:
            raise EngineError("aucun groupe inscrit sur cette séance : inscrivez-en un d'abord",
                              en="no group registered on this session: register one first")
        return {"parcours": plan["parcours"], "players": plan["players"],
                "children": plan["children"] > 0}

    @staticmethod
    def _group_view(g: dict[str, Any]) -> dict[str, Any]:
        fr, en = REFERRAL_LABELS.get(g["referral"], (g["referral"], g["referral"]))
        return {"id": g["id"], "adults": g["adults"], "children": g["children"],
                "households": g["households"], "tenancy": g["tenancy"], "referral": g["referral"],
                "referral_label": fr, "referral_label_en": en, "first_visit": bool(g["first_visit"])}

    def _view(self, p: dict[str, Any], groups: list[dict[str, Any]]) -> dict[str, Any]:
        adults = sum(g["adults"] for g in groups)
        children = sum(g["children"] for g in groups)
        return {"id": p["id"], "date": p["date"], "time": p["time"], "game_master": p["game_master"],
                "parcours": p["parcours"], "note": p["note"], "session_id": p["session_id"],
                "groups": groups, "adults": adults, "children": children,
                "households": sum(g["households"] for g in groups), "players": adults + children,
                "places_left": max(0, self.max_players - adults - children),
                "max_players": self.max_players}

    # -- writing ------------------------------------------------------------------------
    def plan(self, *, date: str, time_of_day: str, game_master: str, parcours: str,
             note: str = "") -> dict[str, Any]:
        with self.store.transaction() as db:
            cursor = db.execute(
                "INSERT INTO planned (date, time, game_master, parcours, note, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (date, time_of_day, game_master, parcours, note, self.wall()))
        return self.session(int(cursor.lastrowid or 0))

    def change(self, planned_id: int, **fields: Any) -> dict[str, Any]:
        """Change the date, time, game master, parcours or note of a session not played yet."""
        columns = {"date": "date", "time_of_day": "time", "game_master": "game_master",
                   "parcours": "parcours", "note": "note"}
        sets = [(columns[k], v) for k, v in fields.items() if k in columns and v is not None]
        with self.store.transaction() as db:
            self._editable(db, planned_id)
            for column, value in sets:   # column names are the constants above
                db.execute(f"UPDATE planned SET {column} = ? WHERE id = ?", (value, planned_id))  # noqa: S608
        return self.session(planned_id)

    def cancel(self, planned_id: int) -> None:
        """Take a session not played yet off the calendar, with its groups."""
        with self.store.transaction() as db:
            self._editable(db, planned_id)
            db.execute("DELETE FROM planned_groups WHERE planned_id = ?", (planned_id,))
            db.execute("DELETE FROM planned WHERE id = ?", (planned_id,))

    def register(self, planned_id: int, *, adults: int, children: int, households: int,
                 tenancy: str, referral: str, first_visit: bool) -> dict[str, Any]:
        """Register a group on a planned session; refused (nothing written) when the session
        would hold more than ``max_players`` people, children included."""
        with self.store.transaction() as db:
            self._editable(db, planned_id)
            already = db.execute(
                "SELECT COALESCE(SUM(adults + children), 0) FROM planned_groups WHERE planned_id = ?",
                (planned_id,)).fetchone()[0]
            if already + adults + children > self.max_players:
                raise _too_many(already + adults + children, self.max_players, already)
            db.execute(
                "INSERT INTO planned_groups (planned_id, adults, children, households, tenancy, "
                "referral, first_visit, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (planned_id, adults, children, households, tenancy, referral, int(first_visit),
                 self.wall()))
        return self.session(planned_id)

    def unregister(self, planned_id: int, group_id: int) -> dict[str, Any]:
        with self.store.transaction() as db:
            self._editable(db, planned_id)
            gone = db.execute("DELETE FROM planned_groups WHERE id = ? AND planned_id = ?",
                              (group_id, planned_id)).rowcount
            if not gone:
                raise NotFoundError(f"groupe inconnu sur cette séance : n° {group_id}",
                                    en=f"unknown group on this session: no. {group_id}")
        return self.session(planned_id)

    def link(self, planned_id: int, session_id: str) -> dict[str, Any]:
        """The planned session was started as game session *session_id*."""
        with self.store.transaction() as db:
            db.execute("UPDATE planned SET session_id = ? WHERE id = ?", (session_id, planned_id))
        return self.session(planned_id)

    @staticmethod
    def _editable(db: Any, planned_id: int) -> None:
        row = db.execute("SELECT session_id FROM planned WHERE id = ?", (planned_id,)).fetchone()
        if row is None:
            raise _unknown(planned_id)
        if row[0] is not None:
            raise AlreadyPlayed(f"la séance prévue n° {planned_id} a déjà été jouée : elle ne change plus",
                                en=f"planned session no. {planned_id} was played: it no longer changes")
