"""Load a game file: YAML → pydantic models, every error with its file, line and path.

>>> game = load_game(SHIPPED_GAME)            # raises GameConfigError listing every error
>>> game.apartment.id
'temoin'
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from config.game import ConfigIssue, Game, NodePart, Unchecked, node_part_issues, semantic_issues

CONFIG_DIR = Path(__file__).resolve().parent
SHIPPED_GAME = CONFIG_DIR / "apartment.yaml"
SCHEMA_FILE = CONFIG_DIR / "apartment.schema.json"
#: a game file larger than this is refused before parsing (a technician's file is ~30 KB)
MAX_FILE_BYTES = 2 * 1024 * 1024

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class LocatedIssue:
    """A :class:`ConfigIssue` placed in the file: ``apartment.yaml:42:9: error: nodes[1].props[0].pin: …``.

    *line* and *column* (both from 1) are those of the key that is wrong (of the item when a
    key is missing), as editors and compilers print them.
    """

    file: str
    line: int | None
    path: Path_
    message: str
    severity: str = "error"
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
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


class _Locator:
    """Where each path of the YAML document starts: a mapping key's own mark for
    ``(…, key)`` (so an error points at the wrong key, not at its item), an item's mark for
    ``(…, index)``."""

    def __init__(self, root: yaml.Node) -> None:
        self.marks: dict[Path_, yaml.Mark] = {}
        self.nodes: dict[Path_, yaml.Node] = {}
        self._walk(root, (), root.start_mark)

    def _walk(self, node: yaml.Node, path: Path_, mark: yaml.Mark) -> None:
        self.marks.setdefault(path, mark)
        self.nodes.setdefault(path, node)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                self._walk(value_node, (*path, key), key_node.start_mark)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i), item.start_mark)

    def locate(self, source: str, issue: ConfigIssue) -> LocatedIssue:
        path = self._pin_key(issue.path, issue.pin) if issue.pin is not None else issue.path
        mark = next((self.marks[path[:end]] for end in range(len(path), -1, -1)
                     if path[:end] in self.marks), None)
        return LocatedIssue(source, mark.line + 1 if mark else None, path, issue.message,
                            issue.severity, mark.column + 1 if mark else None)

    def _pin_key(self, path: Path_, pin: int) -> Path_:
        """The path of the key under *path* whose value is the BCM number *pin* (a pin
        conflict is reported on its prop, but the line to fix is the one naming the pin)."""
        found = [p for p, node in self.nodes.items()
                 if p[:len(path)] == path and len(p) > len(path) and p[len(path)] not in ("id", "label")
                 and isinstance(node, yaml.ScalarNode) and node.tag.endswith(":int")
                 and node.value.isdigit() and int(node.value) == pin]
        return found[-1] if found else path


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
    "budget", "message", "sound", "video", "timer", "end_game", "Text", "PerParcours", "TextPerParcours",
    "int", "str", "list[str]", "Requires", "list[constrained-str]", "EventCondition", "Condition",
})


def _schema_issues(exc: ValidationError) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors():
        message = err["msg"]
        if err["type"] == "value_error":   # "Value error, <what our validator said>"
            message = str(err.get("ctx", {}).get("error", message))
        issues.append(ConfigIssue(_clean_loc(err["loc"]), message))
    return issues


# -- checking the valid parts of a file with schema errors ---------------------------------
#: the lists whose items can be left out one by one (a node, a prop, a puzzle, an action, a
#: clue, a condition) so the rest of the file is still cross-checked; None matches an index
ITEM_LISTS: tuple[tuple[str | None, ...], ...] = (
    ("nodes",), ("nodes", None, "props"), ("puzzles",), ("puzzles", None, "actions"),
    ("puzzles", None, "clues"), ("puzzles", None, "solve", "of"),
)
#: stands in for an apartment with errors: the cross-checks never read it
_STUB_APARTMENT = {"id": "unchecked", "name": "unchecked"}


def _is_item_list(path: Path_) -> bool:
    return any(len(pattern) == len(path)
               and all((want is None and isinstance(got, int)) or want == got
                       for want, got in zip(pattern, path, strict=True))
               for pattern in ITEM_LISTS)


class _Pruned:
    """The file's data with every item that has a schema error left out, so that the
    cross-reference and pin checks still run on the rest; keeps the way back from a path
    in the pruned data to the path in the file."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = copy.deepcopy(data)
        #: original path of an item list → original indices of the items still in it
        self.kept: dict[Path_, list[int]] = {}
        self.nodes: set[str] = set()
        self.props: set[str] = set()
        self.puzzles: set[str] = set()

    def original(self, path: Path_) -> Path_:
        out: list[str | int] = []
        for part in path:
            kept = self.kept.get(tuple(out))
            out.append(kept[part] if isinstance(part, int) and kept is not None else part)
        return tuple(out)

    def _get(self, path: Path_) -> Any:
        value: Any = self.data
        for part in path:
            value = value[part]
        return value

    def drop(self, paths: list[Path_]) -> bool:
        """Leave out what holds each error at *paths* (pruned-data paths); False when an
        error is not inside any item that can be left out."""
        items: set[Path_] = set()
        for path in paths:
            cut = next((path[:end] for end in range(len(path), 0, -1)
                        if isinstance(path[end - 1], int) and _is_item_list(path[:end - 1])), None)
            if cut is not None:
                items.add(cut)
            elif path[:1] == ("apartment",):
                self.data["apartment"] = _STUB_APARTMENT
            elif path and isinstance(path[0], str) and path[0] not in Game.model_fields:
                self.data.pop(path[0], None)
            else:
                return False
        for item in sorted(items, key=lambda p: (len(p), p[-1]), reverse=True):
            if any(item[:len(other)] == other and item != other for other in items):
                continue   # inside an item that goes as a whole
            self._remember(item)
            parent = item[:-1]
            original = self.original(parent)
            kept = self.kept.setdefault(original, list(range(len(self._get(parent)))))
            del kept[item[-1]]
            del self._get(parent)[item[-1]]
        return True

    def _remember(self, item: Path_) -> None:
        value = self._get(item)
        ident = value.get("id") if isinstance(value, dict) else None
        if item[0] == "puzzles" and len(item) == 2:
            self.puzzles.add(str(ident))
        elif item[0] == "nodes" and len(item) == 2:
            self.nodes.add(str(ident))
            for prop in value.get("props") or [] if isinstance(value, dict) else []:
                if isinstance(prop, dict):
                    self.props.add(f"{ident}.{prop.get('id')}")
        elif item[0] == "nodes" and len(item) == 4:
            self.props.add(f"{self._get(item[:2]).get('id')}.{ident}")

    def unchecked(self) -> Unchecked:
        return Unchecked(frozenset(self.nodes), frozenset(self.props), frozenset(self.puzzles))


def _valid_parts(data: dict[str, Any], schema: list[ConfigIssue]) -> tuple[Game, _Pruned] | None:
    """The game made of the items without schema errors, or None if what is wrong is the
    file's very frame (no node or no puzzle left, a list that is not a list …)."""
    pruned = _Pruned(data)
    paths = [issue.path for issue in schema]
    while pruned.drop(paths):
        try:
            return Game.model_validate(pruned.data), pruned
        except ValidationError as exc:
            # what pruning itself broke (a list left empty …) goes too, unreported
            paths = [_clean_loc(err["loc"]) for err in exc.errors()]
    return None


def parse_game(text: str, *, source: str = "<string>",
               media: Collection[str] | None = None) -> LoadedGame:
    """Parse and validate a game from YAML *text*; raise :class:`GameConfigError` listing
    every error of the file: the schema errors of every item, and the cross-reference and
    pin checks of every item that has none. *media*: the names of the media library its
    sounds and videos must be in (None: not checked)."""
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
        column = mark.column + 1 if mark is not None else None
        raise GameConfigError([LocatedIssue(source, line, (), f"not valid YAML: {exc}",
                                            column=column)]) from exc
    if not isinstance(data, dict):
        raise GameConfigError([LocatedIssue(source, 1, (), "the file must be a YAML mapping "
                                            "with apartment, nodes and puzzles")])
    locator = _Locator(node)
    try:
        game = Game.model_validate(data)
    except ValidationError as exc:
        schema = _dedup(_schema_issues(exc))
        found: list[ConfigIssue] = []
        valid = _valid_parts(data, schema)
        if valid is not None:
            part, pruned = valid
            found = [ConfigIssue(pruned.original(i.path), i.message, i.severity, i.pin)
                     for i in semantic_issues(part, pruned.unchecked(), media)]
        located = [locator.locate(source, i) for i in [*schema, *found]]
        errors = _in_file_order([i for i in located if i.severity == "error"])
        raise GameConfigError(errors + [i for i in located if i.severity != "error"]) from exc
    located = [locator.locate(source, i) for i in semantic_issues(game, media=media)]
    errors = [i for i in located if i.severity == "error"]
    if errors:
        raise GameConfigError(_in_file_order(errors) + [i for i in located if i.severity != "error"])
    return LoadedGame(game=game, warnings=located, source=source)


def _in_file_order(issues: list[LocatedIssue]) -> list[LocatedIssue]:
    return sorted(issues, key=lambda i: (i.line or 0, i.column or 0))


def _dedup(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: set[tuple[Path_, str]] = set()
    out = []
    for issue in issues:
        if (issue.path, issue.message) not in seen:
            seen.add((issue.path, issue.message))
            out.append(issue)
    return out


def parse_node_part(data: Any, *, source: str = "<part>") -> NodePart:
    """Validate one node's part of a game (``config.game.NodePart``) as it came over MQTT;
    raise :class:`GameConfigError` listing every error (no line numbers: it is JSON)."""
    try:
        part = NodePart.model_validate(data)
    except ValidationError as exc:
        raise GameConfigError([LocatedIssue(source, None, i.path, i.message)
                               for i in _dedup(_schema_issues(exc))]) from exc
    errors = [LocatedIssue(source, None, i.path, i.message)
              for i in node_part_issues(part) if i.severity == "error"]
    if errors:
        raise GameConfigError(errors)
    return part


def load_game(path: str | Path, *, media: Collection[str] | None = None) -> Game:
    """Load and validate the game file at *path* (*media*: see :func:`parse_game`)."""
    return load_game_file(path, media=media).game


def load_game_file(path: str | Path, *, media: Collection[str] | None = None) -> LoadedGame:
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
    return parse_game(text, source=str(path), media=media)


def json_schema() -> str:
    """The JSON Schema of the game file (for editors: yaml-language-server)."""
    schema = Game.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Escape apartment game"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
