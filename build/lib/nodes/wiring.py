"""The technician's wiring sheet of a node: every prop, every pin, what to connect."""

from __future__ import annotations

from config.game import Node

#: BCM GPIO number -> physical pin of the 40-pin header (all Pi models since the B+)
BCM_TO_PHYSICAL: dict[int, int] = {
    2: 3, 3: 5, 4: 7, 17: 11, 27: 13, 22: 15, 10: 19, 9: 21, 11: 23, 5: 29, 6: 31, 13: 33,
    19: 35, 26: 37, 14: 8, 15: 10, 18: 12, 23: 16, 24: 18, 25: 22, 8: 24, 7: 26, 12: 32,
    16: 36, 20: 38, 21: 40,
}
GROUND_PINS = (6, 9, 14, 20, 25, 30, 34, 39)


def wiring_rows(node: Node) -> list[dict[str, str]]:
    rows = []
    for prop in node.props:
        for use in prop.pin_uses():
            pull = {True: "pull-up", False: "pull-down", None: "-"}[use.pull_up]
            rows.append({"prop": prop.id, "kind": prop.kind, "role": use.role,
                         "bcm": f"GPIO{use.pin}", "physical": str(BCM_TO_PHYSICAL.get(use.pin, "?")),
                         "direction": use.direction, "pull": pull, "connect": use.connect})
    if node.emergency is not None:
        pin = node.emergency.pin
        rows.append({"prop": "(emergency)", "kind": "button", "role": "emergency release input",
                     "bcm": f"GPIO{pin}", "physical": str(BCM_TO_PHYSICAL.get(pin, "?")),
                     "direction": "in", "pull": "pull-up" if node.emergency.pull_up else "pull-down",
                     "connect": "red mushroom button (NO) between pin and GND"})
    return sorted(rows, key=lambda r: int(r["physical"]) if r["physical"].isdigit() else 99)


_COLUMNS = ("physical", "bcm", "prop", "kind", "role", "direction", "pull", "connect")
_TITLES = {"physical": "pin", "bcm": "BCM", "prop": "prop", "kind": "kind", "role": "role",
           "direction": "dir", "pull": "pull", "connect": "connect to"}


def wiring_sheet(node: Node, *, markdown: bool = False) -> str:
    """The sheet as a terminal table, or Markdown with ``markdown=True``."""
    rows = wiring_rows(node)
    title = f"Wiring of node {node.id} — {node.label.fr}"
    footer = (f"Ground: physical pins {', '.join(map(str, GROUND_PINS))}. 3V3: pins 1 and 17 "
              "(never 5 V into a GPIO). Relays: use the NO contact so a power cut opens the maglock.")
    if markdown:
        lines = [f"# {title}", "", "| " + " | ".join(_TITLES[c] for c in _COLUMNS) + " |",
                 "|" + "---|" * len(_COLUMNS)]
        lines += ["| " + " | ".join(r[c] for c in _COLUMNS) + " |" for r in rows]
        return "\n".join([*lines, "", footer, ""])
    widths = {c: max([len(_TITLES[c])] + [len(r[c]) for r in rows]) for c in _COLUMNS}
    out = [title, "", "  ".join(_TITLES[c].ljust(widths[c]) for c in _COLUMNS).rstrip(),
           "  ".join("-" * widths[c] for c in _COLUMNS)]
    out += ["  ".join(r[c].ljust(widths[c]) for c in _COLUMNS).rstrip() for r in rows]
    return "\n".join([*out, "", footer])
