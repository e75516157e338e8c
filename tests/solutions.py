"""The solution sheet of the shipped game, as data: used by the engine tests (events) and
by the play-through over the real broker (gestures on the simulated props).

It is the same sheet as docs/game.md gives the game masters.
"""

from __future__ import annotations

from typing import Any

#: (node, prop, gesture, value) for a simulated hand, per parcours, in play order
GESTURES: dict[str, list[tuple[str, str, str, Any]]] = {
    parcours: [
        ("hall", "mailbox_keypad", "type", codes["mailbox"]),
        ("entree", "door_keypad", "type", codes["front_door"] + "#"),
        ("entree", "door_keypad", "type", codes["repairs"] + "#"),
        ("cuisine", "hood_switch", "hold", 2.3),
        ("cuisine", "ingredients", "present", "04a1b2c3"),
        ("cuisine", "ingredients", "remove", None),
        ("cuisine", "ingredients", "present", "04b2c3d4"),
        ("cuisine", "ingredients", "remove", None),
        ("cuisine", "ingredients", "present", "04c3d4e5"),
        ("cuisine", "ingredients", "remove", None),
        ("sdb", "window", "open", None),
        ("sdb", "vmc_button", "hold", 2.3),
        ("sdb", "pests_keypad", "type", codes["pests"] + "#"),
        ("sejour", "budget_keypad", "type", codes["household_budget"] + "#"),
        ("chambre", "documents", "present", "0a00112233"),
        ("chambre", "documents", "remove", None),
        ("chambre", "documents", "present", "0a00445566"),
        ("chambre", "documents", "remove", None),
        ("chambre", "music_button", "press", None),
        ("poubelles", "bins", "present", {"bin": "jaune", "uid": "05a1a1a1"}),
        ("poubelles", "bins", "present", {"bin": "verte", "uid": "05b2b2b2"}),
        ("poubelles", "bins", "present", {"bin": "grise", "uid": "05c3c3c3"}),
    ]
    for parcours, codes in {
        "primo": {"mailbox": "0412", "front_door": "3179", "repairs": "135", "pests": "714",
                  "household_budget": "700"},
        "locataire": {"mailbox": "1507", "front_door": "2468", "repairs": "246", "pests": "417",
                      "household_budget": "658"},
    }.items()
}

#: the events the props emit for those gestures (what the engine sees)
_EVENTS_OF = {"type": "code", "hold": "held", "present": "tag", "open": "opened", "press": "press"}


def events(parcours: str) -> list[tuple[str, str, str, Any]]:
    out = []
    for node, prop, gesture, value in GESTURES[parcours]:
        if gesture == "remove":
            continue
        if prop == "bins":
            out.append((node, prop, "placed", value))
        elif gesture == "type":
            out.append((node, prop, "code", value.rstrip("#")))
        else:
            out.append((node, prop, _EVENTS_OF[gesture], value))
    return out


#: the budget at the end of a perfect run (no paid clue)
FINAL_BUDGET = {"primo": 1450 - 620 + 15 + 12 + 20 - 115 - 15 + 100 + 10,
                "locataire": 1380 - 580 + 15 + 12 + 20 - 130 - 12 + 100 + 10}
