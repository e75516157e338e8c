"""``escape-apartment config …``: check a game file, write its JSON Schema."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from config.game import Game
from config.loader import SCHEMA_FILE, SHIPPED_GAME, GameConfigError, json_schema, load_game_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="check a game file or write its JSON Schema")
    sub = parser.add_subparsers(dest="config_cmd", required=True)
    check = sub.add_parser("check", help="validate a game file and print a summary")
    check.add_argument("file", nargs="?", default=str(SHIPPED_GAME), type=Path)
    check.set_defaults(func=cmd_check)
    schema = sub.add_parser("schema", help="write the JSON Schema of game files")
    schema.add_argument("-o", "--output", type=Path, default=None,
                        help=f"file to write (default: stdout; the shipped one is {SCHEMA_FILE})")
    schema.set_defaults(func=cmd_schema)


def cmd_check(args: argparse.Namespace) -> int:
    try:
        loaded = load_game_file(args.file)
    except GameConfigError as exc:
        errors = [i for i in exc.issues if i.severity == "error"]
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"\n{len(errors)} error(s) in {args.file}", file=sys.stderr)
        return 1
    for warning in loaded.warnings:
        print(warning)
    print(summary(loaded.game))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    text = json_schema()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


def summary(game: Game) -> str:
    """A one-screen summary: rooms, props, puzzles, pins used."""
    apt = game.apartment
    lines = [f"{apt.name.fr} ({apt.id}): {apt.duration_min} min, at most {apt.max_players} players",
             f"{len(game.nodes)} rooms, {sum(len(n.props) for n in game.nodes)} props, "
             f"{len(game.puzzles)} puzzles", ""]
    for node in game.nodes:
        pins = sorted({u.pin for p in node.props for u in p.pin_uses()})
        kinds = Counter(p.kind for p in node.props)
        kind_text = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        lines.append(f"  {node.id:<10} {node.label.fr:<24} {kind_text}")
        lines.append(f"  {'':<10} pins (BCM): {', '.join(map(str, pins)) or '-'}")
    lines.append("")
    for puzzle in game.puzzles:
        reqs = ",".join(puzzle.required_ids()) or "-"
        flag = " [final]" if puzzle.final else ""
        lines.append(f"  {puzzle.id:<18} {puzzle.theme:<7} in {puzzle.room:<9} after {reqs}{flag}")
    return "\n".join(lines)
