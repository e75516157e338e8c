"""Load a game file: YAML → pydantic models, every error with its file, line and path.

>>> game = load_game(SHIPPED_GAME)            # raises GameConfigError listing every error
>>> game.apartment.id
'temoin'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from config.game import ConfigIssue, Game, semantic_issues

CONFIG_DIR = Path(__file__).resolve().parent
SHIPPED_GAME = CONFIG_DIR / "apartment.yaml"
SCHEMA_FILE = CONFIG_DIR / "apartment.schema.json"
#: a game file larger than this is refused before parsing (a technician's file is ~30 KB)
MAX_FILE_BYTES = 2 * 1024 * 1024

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class LocatedIssue:
    """A :class:`ConfigIssue` placed in the file: ``apartment.yaml:42: nodes[1].props[0]: …``."""

    file: str
    line: int | None
    path: Path_
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity}: {format_path(self.path) or '(file)'}: {self.message}"


class GameConfigError(ValueError):
    """The game file has errors; :attr:`issues` lists all of them."""

    def __init__(self, issues: list[LocatedIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


@dataclass
class LoadedGame:
    game: Game
    warnings: list[LocatedIssue] = field(default_factory=list)
    source: str = ""


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_map(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), lines)


def _line_for(path: Path_, lines: dict[Path_, int]) -> int | None:
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


def _clean_loc(loc: tuple[Any, ...]) -> Path_:
    # pydantic puts the discriminator's tag ('keypad', 'event'...) and function names into
    # the location of union members; a technician only wants the path in the file.
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and not (
            part.startswith(("function-", "tagged-union[")) or part in _UNION_TAGS
        )):
            out.append(part)
    return tuple(out)


_UNION_TAGS = frozenset({
    "keypad", "maglock", "button", "reed_switch", "pressure_mat", "led", "relay", "buzzer",
    "mfrc522", "rdm6300", "sorting", "event", "all", "sequence", "lock", "unlock", "command",
    "budget", "message", "timer", "end_game", "Text", "PerParcours", "TextPerParcours", "int", "str",
    "list[str]", "Requires", "list[constrained-str]", "EventCondition", "Condition",
})


def parse_game(text: str, *, source: str = "<string>") -> LoadedGame:
    """Parse and validate a game from YAML *text*; raise :class:`GameConfigError`."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise GameConfigError([LocatedIssue(source, line, (), f"not valid YAML: {exc}")]) from exc
    if not isinstance(data, dict):
        raise GameConfigError([LocatedIssue(source, 1, (), "the file must be a YAML mapping "
                                            "with apartment, nodes and puzzles")])
    lines: dict[Path_, int] = {}
    _line_map(node, (), lines)
    try:
        game = Game.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            path = _clean_loc(err["loc"])
            issues.append(LocatedIssue(source, _line_for(path, lines), path, err["msg"]))
        raise GameConfigError(_dedup(issues)) from exc
    found: list[ConfigIssue] = semantic_issues(game)
    located = [LocatedIssue(source, _line_for(i.path, lines), i.path, i.message, i.severity)
               for i in found]
    errors = [i for i in located if i.severity == "error"]
    if errors:
        raise GameConfigError(errors + [i for i in located if i.severity != "error"])
    return LoadedGame(game=game, warnings=located, source=source)


def _dedup(issues: list[LocatedIssue]) -> list[LocatedIssue]:
    seen: set[tuple[Path_, str]] = set()
    out = []
    for issue in issues:
        if (issue.path, issue.message) not in seen:
            seen.add((issue.path, issue.message))
            out.append(issue)
    return out


def load_game(path: str | Path) -> Game:
    """Load and validate the game file at *path*."""
    return load_game_file(path).game


def load_game_file(path: str | Path) -> LoadedGame:
    """Like :func:`load_game`, also returning the warnings."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise GameConfigError([LocatedIssue(str(path), None, (),
                                                f"file is {size} bytes, over {MAX_FILE_BYTES}")])
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GameConfigError([LocatedIssue(str(path), None, (), f"cannot read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise GameConfigError([LocatedIssue(str(path), None, (), "not UTF-8 text")]) from exc
    return parse_game(text, source=str(path))


def json_schema() -> str:
    """The JSON Schema of the game file (for editors: yaml-language-server)."""
    schema = Game.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Escape apartment game"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
